//! Nightly runs with real kernels and VMs: a scenario whose variant gains
//! the fix, keeps it, then loses it again over four nights.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scenario named `flip` whose variant `k` is stock 6.1 or has the fix.
fn scenario(dir: &Path, fixed: bool) -> PathBuf {
    let patches =
        if fixed { format!("[{}]", root().join("scenarios/patches/bio-release-devmap-wakeup.patch").display()) } else { "[]".into() };
    let f = dir.join(if fixed { "fixed.yaml" } else { "stock.yaml" });
    std::fs::write(
        &f,
        format!(
            "name: flip\nkernel:\n  source: {{ debian: linux-source-6.1 }}\n  base: tinyconfig\n  fragments: [kernel-configs/qemu-minimal.config, kernel-configs/pmem-dax.config, kernel-configs/debug.config]\nvariants:\n  - {{ name: k, patches: {patches} }}\nrun:\n  workloads: [{{ name: truncate-during-dio, seconds: 10 }}]\n"
        ),
    )
    .unwrap();
    f
}

/// One night: (exit code, the verdict of the one cell).
fn night(results: &Path, scenario: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["nightly", "--results"])
        .arg(results)
        .arg(scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(results).unwrap().flatten().map(|e| e.path()).filter(|p| p.join("run.json").is_file()).collect();
    runs.sort();
    let last = runs.last().unwrap_or_else(|| panic!("no run stored; stderr:\n{stderr}"));
    // A nightly's run leaves what every run leaves: summary.md and verdicts.json.
    let md = std::fs::read_to_string(last.join("summary.md")).unwrap_or_else(|e| panic!("{}/summary.md: {e}", last.display()));
    assert!(md.starts_with("# flip — run ") && md.contains("| k/memmap-ext4-pte-truncate-during-dio/run1 |"), "{md}");
    let verdicts: Value = serde_json::from_slice(&std::fs::read(last.join("verdicts.json")).unwrap()).unwrap();
    assert_eq!(verdicts, serde_json::json!([]), "one variant: no variant to compare with");
    let n: Value = serde_json::from_slice(&std::fs::read(last.join("report/nightly.json")).unwrap()).unwrap();
    let v = n[0]["verdicts"][0].clone();
    assert_eq!(v["cell"], "k/memmap-ext4-pte-truncate-during-dio", "{n:#}\n{stderr}");
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn fix_gained_is_fixed_unchanged_is_not_judged_fix_lost_is_new_failure_and_repro_reproduces() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("kernel-configs")).unwrap();
    for f in ["qemu-minimal", "pmem-dax", "debug"] {
        std::fs::copy(root().join(format!("kernel-configs/{f}.config")), d.path().join(format!("kernel-configs/{f}.config"))).unwrap();
    }
    let results = d.path().join("results");
    let (stock, fixed) = (scenario(d.path(), false), scenario(d.path(), true));

    let (_, v) = night(&results, &stock);
    assert_eq!(v["status"], "NEW_CELL", "{v:#}");
    let (code, v) = night(&results, &fixed);
    assert_eq!(v["status"], "FIXED", "{v:#}");
    assert_eq!(code, 0);
    // Passing again: the outcome did not change; one boot a night is too few
    // to judge ops/s, and the rule book says so instead of NO_CHANGE.
    let (code, v) = night(&results, &fixed);
    assert_eq!((v["status"].as_str(), v["metric"].as_str()), (Some("INCONCLUSIVE"), Some("ops_per_s")), "{v:#}");
    assert!(v["note"].as_str().unwrap().contains("too few boots to judge (1 vs 1"), "{v:#}");
    assert_eq!(v["new"], "PASS 1/1", "{v:#}");
    assert_eq!(code, 0);
    let (code, v) = night(&results, &stock);
    assert_eq!(v["status"], "NEW_FAILURE", "{v:#}");
    assert_eq!(code, 1, "a regression fails the night");

    // The failing cell's repro.sh re-runs exactly that cell and fails the same way.
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&results).unwrap().flatten().map(|e| e.path()).collect();
    runs.sort();
    let repro = runs.last().unwrap().join("k/memmap-ext4-pte-truncate-during-dio/run1/repro.sh");
    assert!(repro.is_file(), "no {}", repro.display());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kregress")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh").arg(&repro).current_dir(root()).env("PATH", path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("INFO: task hung in ext4_break_layouts"), "{text}");
}

/// `nightly --only` that selects no cell in any scenario is bad input,
/// refused before anything is built or booted.
#[test]
fn nightly_only_selecting_nothing_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["nightly", "--only", "variant=nosuch", "--results"])
        .arg(d.path().join("results"))
        .arg("scenarios/bio-release-devmap-wakeup.yaml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nightly --only: the filter selects no cell in any scenario"), "{stderr}");
    assert!(!d.path().join("results").exists(), "nothing written");
}
