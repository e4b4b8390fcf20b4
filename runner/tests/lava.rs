//! `kregress lava --local`, with lava-dispatcher's real `lava-run` and real
//! QEMU, judges a cell as `kregress run` does: the same outcome, kind and
//! title for a passing dio-read on `fixed` and the stock truncate hang of
//! the default scenario (its kernels are cached). Four boots, one at a time:
//! about 2.5 minutes here. CI installs lava-dispatcher (scripts/install-deps):
//! without `lava-run` the test fails, it does not skip.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIO: &str = "scenarios/bio-release-devmap-wakeup.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kregress ARGS... --json`: the run record it prints.
fn kregress(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kregress")).current_dir(root()).args(args).arg("--json").output().expect("run kregress");
    let stderr = String::from_utf8_lossy(&out.stderr);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kregress {args:?}: no JSON run record ({e}); {}; stderr:\n{stderr}", out.status))
}

fn only_cell(rec: &Value) -> &Value {
    let cells = rec["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{rec:#}");
    &cells[0]
}

#[test]
fn a_cell_through_lava_run_is_judged_as_a_local_run() {
    let help = Command::new("lava-run").arg("--help").output();
    assert!(
        help.is_ok_and(|o| o.status.success()),
        "lava-run is missing: scripts/install-deps installs lava-dispatcher (apt-get install --no-install-recommends lava-dispatcher)"
    );
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let results = results.to_str().unwrap();
    for (only, outcome, kind, title) in [
        ("variant=fixed,workload=dio-read", "PASS", Value::Null, Value::Null),
        ("variant=stock,workload=truncate-during-dio", "FAIL", "HANG".into(), "INFO: task hung in ext4_break_layouts".into()),
    ] {
        let started = std::time::Instant::now();
        let local = kregress(&["run", SCENARIO, "--only", only, "--runs", "1", "--accel", "tcg", "--results", results]);
        let local_s = started.elapsed().as_secs_f64();
        let out = dir.path().join(only.replace([',', '='], "-"));
        let started = std::time::Instant::now();
        let lava =
            kregress(&["lava", SCENARIO, "--only", only, "--runs", "1", "--out", out.to_str().unwrap(), "--local", "--results", results]);
        eprintln!("{only}: kregress run {local_s:.1} s, kregress lava --local {:.1} s", started.elapsed().as_secs_f64());
        let (l, v) = (only_cell(&local), only_cell(&lava));
        for field in ["outcome", "kind", "title"] {
            assert_eq!(v[field], l[field], "{only}: {field} differs\nlava: {v:#}\nlocal: {l:#}");
        }
        assert_eq!((&v["outcome"], &v["kind"], &v["title"]), (&Value::from(outcome), &kind, &title), "{v:#}");
        // The run is an ordinary run directory; its console holds the agent's lines unescaped.
        let console = std::fs::read_to_string(v["console"].as_str().unwrap()).unwrap();
        assert!(console.contains(r#"{"type":"hello""#) && !console.contains(r#"\""#), "{}", v["console"]);
        let index: Value = serde_json::from_slice(&std::fs::read(out.join("jobs.json")).unwrap()).unwrap();
        let job = &index["jobs"][0];
        assert!(job["cells"][0].as_str().unwrap().ends_with("/run1"), "{index:#}");
        // LAVA's own verdict is kept beside the job, not used.
        let lava_json: Value =
            serde_json::from_slice(&std::fs::read(out.join("jobs").join(job["id"].as_str().unwrap()).join("lava.json")).unwrap()).unwrap();
        assert!(lava_json["lava"]["result"].is_string(), "{lava_json:#}");
    }
}
