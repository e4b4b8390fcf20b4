//! `kregress reduce` and `kregress storm` on bad input: exit 2 and one line
//! naming what is wrong, before any kernel is built or booted (no VM here;
//! part of the fast tier).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kregress(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kregress")).current_dir(root()).args(args).output().expect("run kregress")
}

/// Exit 2 with one line on stderr containing `want`, nothing on stdout.
fn bad(args: &[&str], want: &str) {
    let o = kregress(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    assert!(o.stdout.is_empty(), "{args:?}");
}

/// A failing storm cell's result.json under RUN/stock/memmap-ext4-pte-storm/run1.
const STORM_FAIL: &str = r#"{"variant":"stock","backend":"memmap","fs":"ext4","mapping":"pte","workload":"storm","run":1,
"outcome":"FAIL","kind":"HANG","title":"INFO: task hung in ext4_break_layouts","console":"console.log","seconds":70.0,
"storm":{"seed":7,"threads":3,"seconds":60,"ops":["truncate","dio-read-fast"],"streams":"s"}}"#;

#[test]
fn reduce_refuses_what_is_not_a_failing_storm_cell() {
    let d = tempfile::tempdir().unwrap();
    let cell = d.path().join("run/stock/memmap-ext4-pte-storm/run1");
    std::fs::create_dir_all(&cell).unwrap();
    let c = cell.to_str().unwrap();
    // No result.json at all.
    bad(&["reduce", d.path().to_str().unwrap()], "result.json");
    // A stored cell of another workload.
    let dio = "runner/tests/data/runs/20261126-162904-bio-release-devmap-wakeup/stock/memmap-ext4-pte-truncate-during-dio/run1";
    bad(&["reduce", dio], "not a storm cell (workload truncate-during-dio)");
    // A storm cell that passed.
    std::fs::write(cell.join("result.json"), STORM_FAIL.replace("\"FAIL\"", "\"PASS\"")).unwrap();
    bad(&["reduce", c], "the cell is PASS, not a failing cell");
    // A failing storm cell, but no run.json above it to find its scenario.
    std::fs::write(cell.join("result.json"), STORM_FAIL).unwrap();
    bad(&["reduce", c], "not a cell of a run (no run.json three directories up");
    // Budgets.
    bad(&["reduce", c, "--budget", "soon"], "--budget soon: ");
    bad(&["reduce", c, "--budget", "0s"], "--budget 0s: at least 1s");
    bad(&["reduce", c, "--boots", "0"], "--boots and --max-boots: at least 1");
}

#[test]
fn storm_refuses_a_selection_without_storm_cells_and_a_bad_budget() {
    let s = "scenarios/bio-release-devmap-wakeup.yaml";
    bad(&["storm", s, "--budget", "3m"], "bio-release-devmap-wakeup.yaml: the selection has no storm cell");
    bad(&["storm", s, "--budget", "3m", "--only", "workload=dio-read"], "--only workload=dio-read: a storm session runs storm cells only");
    bad(&["storm", s, "--budget", "soon"], "--budget soon: ");
    bad(&["storm", s, "--budget", "3m", "--only", "colour=red"], "--only colour=red");
    bad(&["storm", "no/such.yaml", "--budget", "3m"], "no/such.yaml");
}
