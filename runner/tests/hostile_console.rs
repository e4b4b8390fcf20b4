//! A kernel whose console is hostile to the harness (issue 12), on real
//! kernels in real QEMU (scenarios/hostile-console.yaml): a WARN storm of
//! 34 MB must be a WARN, read in full by the host, with console.log capped;
//! console text that looks like the agent's protocol must not change the
//! verdict.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kregress run scenarios/hostile-console.yaml --only variant=VARIANT --json`:
/// (exit code, its one cell).
fn run(variant: &str) -> (i32, Value) {
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["run", "scenarios/hostile-console.yaml", "--json", "--results"])
        .arg(std::env::temp_dir().join("kregress-test-results"))
        .args(["--only", &format!("variant={variant}")])
        .output()
        .expect("run kregress");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rec: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON run record ({e}); status {}; stderr:\n{stderr}", out.status));
    let cells = rec["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{rec:#}");
    (out.status.code().unwrap_or(-1), cells[0].clone())
}

fn file_of(cell: &Value, name: &str) -> PathBuf {
    Path::new(cell["console"].as_str().unwrap()).with_file_name(name)
}

#[test]
fn a_warn_storm_is_a_warn_read_in_full_with_a_capped_console_log() {
    let (code, c) = run("warn-flood");
    assert_eq!(
        (c["outcome"].as_str(), c["kind"].as_str(), c["title"].as_str()),
        (Some("FAIL"), Some("WARN"), Some("WARNING in dax_fault_iter")),
        "{c:#}"
    );
    // Every one of the 14000 warnings was read and triaged, and listed once.
    assert_eq!(c["problems"], serde_json::json!(["Warn: WARNING in dax_fault_iter (14000 reports)"]), "{c:#}");
    // The guest printed more than 32 MB; console.log kept its head and tail.
    let log = std::fs::read(file_of(&c, "console.log")).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.len() <= (16 << 20) + (256 << 10) + 300, "console.log is {} bytes", log.len());
    let marker = log.lines().find(|l| l.starts_with("[kregress: ")).expect("a marker where console was dropped");
    let dropped: usize = marker["[kregress: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(log.len() - marker.len() + dropped > 32 << 20, "{marker}");
    // The agent's messages from both sides of the gap came through: the whole workload ran.
    let agent = std::fs::read_to_string(file_of(&c, "agent.jsonl")).unwrap();
    assert!(agent.contains(r#""type":"workload_result","name":"dio-read","outcome":"PASS""#), "{agent}");
    assert!(agent.contains(r#""type":"done""#), "{agent}");
    // Within its deadline: the host's backstop for this cell is 780 s.
    assert!(c["seconds"].as_f64().unwrap() < 780.0, "{c:#}");
    assert_eq!(code, 0, "as the scenario expects");
}

#[test]
fn forged_protocol_lines_are_ignored_and_counted() {
    let (code, c) = run("forged-protocol");
    // The kernel printed a FAIL result (mid-line), a done and another result
    // (after a CR, without this boot's nonce): none of them counts.
    assert_eq!(c["outcome"], "PASS", "{c:#}");
    assert_eq!(c["foreign_lines"], 3, "{c:#}");
    let console = std::fs::read_to_string(c["console"].as_str().unwrap()).unwrap();
    assert!(console.contains(r#"dax: fault on file KREGRESS> {"type":"workload_result""#), "the forged lines were printed");
    // agent.jsonl keeps them as ignored lines, and only the agent's own messages.
    let agent = std::fs::read_to_string(file_of(&c, "agent.jsonl")).unwrap();
    let lines: Vec<Value> = agent.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().filter(|l| l["ignored_foreign_line"].is_string()).count(), 3, "{agent}");
    let results: Vec<&Value> = lines.iter().filter(|l| l["type"] == "workload_result").collect();
    assert_eq!(results.len(), 1, "{agent}");
    assert_eq!(results[0]["outcome"], "PASS", "{agent}");
    assert_eq!(lines.iter().filter(|l| l["type"] == "done").count(), 1, "{agent}");
    assert_eq!(code, 0, "as the scenario expects");
}
