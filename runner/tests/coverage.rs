//! The GUP/ZONE_DEVICE surface beyond plain O_DIRECT (issue 11), on real
//! kernels in real QEMU: one cell of each workload family on stock 6.1 (the
//! full matrix is scenarios/survey.yaml, not CI), and for device-dax and the
//! other families with an oracle proof, the variant from scenarios/oracles/
//! whose small patch breaks the path must make the workload FAIL.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kregress run SCENARIO --only FILTER --json`: (exit code, run record).
fn run(scenario: &str, only: &str) -> (i32, Value) {
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["run", scenario, "--json", "--results"])
        .arg(std::env::temp_dir().join("kregress-test-results"))
        .args(["--only", only])
        .output()
        .expect("run kregress");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rec: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON run record ({e}); status {}; stderr:\n{stderr}", out.status));
    (out.status.code().unwrap_or(-1), rec)
}

/// The cell of `variant` whose id contains `axes` (e.g. `nvdimm-devdax-pmd-dio-read`).
fn cell<'a>(rec: &'a Value, variant: &str, axes: &str) -> &'a Value {
    rec["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["variant"] == variant
                && format!(
                    "{}-{}-{}-{}",
                    c["backend"].as_str().unwrap(),
                    c["fs"].as_str().unwrap(),
                    c["mapping"].as_str().unwrap(),
                    c["workload"].as_str().unwrap()
                ) == axes
        })
        .unwrap_or_else(|| panic!("no cell {variant}/{axes} in {rec:#}"))
}

fn console(c: &Value) -> String {
    std::fs::read_to_string(c["console"].as_str().unwrap()).unwrap_or_default()
}

fn agent_lines(c: &Value) -> String {
    let dir = Path::new(c["console"].as_str().unwrap()).parent().unwrap().to_path_buf();
    std::fs::read_to_string(dir.join("agent.jsonl")).unwrap_or_default()
}

#[test]
fn devdax_dio_passes_on_stock_and_fails_without_the_devmap_page_reference() {
    let (code, rec) = run("scenarios/oracles/devdax.yaml", "workload=dio-read");
    for m in ["pte", "pmd"] {
        let good = cell(&rec, "stock", &format!("nvdimm-devdax-{m}-dio-read"));
        assert_eq!(good["outcome"], "PASS", "{good:#}\n{}", console(good));
        assert_eq!(good["mode"], "devdax", "{good:#}");
        assert!(good["metrics"]["fast_mb_per_s"].as_f64().unwrap() > 0.0, "{good:#}");
        let lines = agent_lines(good);
        assert!(lines.contains("-> devdax (sysfs)") && lines.contains("/dev/dax"), "no devdax setup step:\n{lines}");
        // The teardown unbinds the device-dax instance and the nd dax device.
        assert!(lines.contains("unbound from device_dax") && lines.contains("unbound from dax_pmem"), "{lines}");
    }
    let bad = cell(&rec, "gup-pte-noref", "nvdimm-devdax-pte-dio-read");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("WARN")), "{bad:#}");
    assert_eq!(bad["title"], "WARNING in free_zone_device_page", "{bad:#}");
    let bad = cell(&rec, "gup-huge-noref", "nvdimm-devdax-pmd-dio-read");
    assert_eq!(bad["outcome"], "FAIL", "{bad:#}\n{}", console(bad));
    assert_eq!(code, 0, "every cell as the scenario expects: {rec:#}");
}

#[test]
fn hwpoison_signals_the_poisoner_and_fails_when_memory_failure_kills_no_one() {
    let (code, rec) = run("scenarios/oracles/hwpoison.yaml", "backend=nvdimm,mapping=pmd,workload=hwpoison");
    for axes in ["nvdimm-xfs-pmd-hwpoison", "nvdimm-devdax-pmd-hwpoison"] {
        let good = cell(&rec, "stock", axes);
        assert_eq!(good["outcome"], "PASS", "{good:#}\n{}", console(good));
        let lines = agent_lines(good);
        assert!(lines.contains("BUS_MCEERR_AR") && lines.contains("BUS_MCEERR_AO"), "{lines}");
        let bad = cell(&rec, "no-kill", axes);
        assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("IO_ERROR")), "{bad:#}");
        assert!(bad["title"].as_str().unwrap().starts_with("IO_ERROR in hwpoison"), "{bad:#}");
    }
    assert_eq!(code, 0, "every cell as the scenario expects: {rec:#}");
}

/// The survey's finding: 6.1.192 lacks d1d4e0bdf8a9, so a write into a
/// shared extent leaves the old block mapped (DATA_CORRUPTION); with that
/// commit backported the corruption is gone and the next missing piece of
/// the v6.2 fsdax reflink series warns instead.
#[test]
fn reflink_cow_on_dax_leaves_a_stale_mapping_on_stock_6_1_and_the_backport_removes_it() {
    let (code, rec) = run("scenarios/reflink-dax-cow.yaml", "mapping=pte,variant=stock");
    let bad = cell(&rec, "stock", "memmap-xfs-pte-reflink-dio");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("DATA_CORRUPTION")), "{bad:#}\n{}", console(bad));
    assert!(bad["title"].as_str().unwrap().contains("stale PTE"), "{bad:#}");
    assert_eq!(code, 0, "as the scenario expects: {rec:#}");
    let (code, rec) = run("scenarios/reflink-dax-cow.yaml", "mapping=pte,variant=cow-invalidate");
    let next = cell(&rec, "cow-invalidate", "memmap-xfs-pte-reflink-dio");
    assert_eq!(next["outcome"], "FAIL", "{next:#}");
    let problems = next["problems"].to_string();
    assert!(problems.contains("WARNING in dax_insert_entry"), "the next missing piece warns: {next:#}");
    assert!(!problems.contains("DATA_CORRUPTION"), "the backport removes the stale mapping: {next:#}");
    assert_eq!(code, 0, "as the scenario expects: {rec:#}");
}

/// A kernel as a variant (its own `source:`), and the survey's 6.12 finding.
#[test]
fn reflink_on_6_12_hits_the_pin_bug_for_shared_fsdax_pages() {
    let (code, rec) = run("scenarios/reflink-dax-cow.yaml", "mapping=pte,variant=deb6.12");
    let c = cell(&rec, "deb6.12", "memmap-xfs-pte-reflink-dio");
    assert_eq!((c["outcome"].as_str(), c["kind"].as_str()), (Some("FAIL"), Some("CRASH")), "{c:#}");
    assert_eq!(c["title"], "kernel BUG in follow_page_pte", "{c:#}");
    let log = console(c);
    assert!(log.contains("6.12.") && log.contains("PageAnonExclusive"), "a 6.12 kernel, the pin check:\n{log}");
    assert_eq!(code, 0, "{rec:#}");
}

#[test]
fn reflink_is_skipped_with_the_reason_on_ext4() {
    let (_, rec) = run("scenarios/coverage.yaml", "backend=memmap,mode=fsdax,fs=ext4,mapping=pte,workload=reflink-dio");
    let c = cell(&rec, "stock", "memmap-ext4-pte-reflink-dio");
    assert_eq!(c["outcome"], "SKIP", "{c:#}");
    assert!(c["title"].as_str().unwrap().contains("EOPNOTSUPP"), "{c:#}");
}

#[test]
fn uring_fixed_refuses_fsdax_longterm_pins_and_fails_when_the_kernel_allows_them() {
    let (code, rec) = run("scenarios/oracles/uring.yaml", "backend=memmap,mode=fsdax,fs=ext4,mapping=pte,workload=uring-fixed");
    let good = cell(&rec, "stock", "memmap-ext4-pte-uring-fixed");
    assert_eq!(good["outcome"], "PASS", "{good:#}\n{}", console(good));
    assert!(agent_lines(good).contains("refused with EOPNOTSUPP (expected)"), "{}", agent_lines(good));
    let bad = cell(&rec, "broken-uring-fixed-longterm", "memmap-ext4-pte-uring-fixed");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("IO_ERROR")), "{bad:#}");
    assert!(bad["problems"].to_string().contains("registration of an fsdax mapping succeeded"), "{bad:#}");
    let broken_dio = cell(&rec, "broken-uring-dio-short-bio", "memmap-ext4-pte-uring-fixed");
    assert_eq!(broken_dio["kind"], "DATA_CORRUPTION", "the control goes through the short bio: {broken_dio:#}");
    assert_eq!(code, 0, "every cell as the scenario expects: {rec:#}");
}

#[test]
fn uring_dio_with_32_in_flight_verifies_and_fails_on_a_short_async_bio() {
    let (code, rec) = run("scenarios/oracles/uring.yaml", "backend=nvdimm,mode=devdax,mapping=pmd,workload=uring-dio,variant=stock");
    let good = cell(&rec, "stock", "nvdimm-devdax-pmd-uring-dio");
    assert_eq!(good["outcome"], "PASS", "{good:#}\n{}", console(good));
    assert!(good["metrics"]["fast_mb_per_s"].as_f64().unwrap() > 0.0, "{good:#}");
    assert_eq!(code, 0);
    let (code, rec) = run(
        "scenarios/oracles/uring.yaml",
        "backend=memmap,mode=fsdax,fs=ext4,mapping=pte,workload=uring-dio,variant=broken-uring-dio-short-bio",
    );
    let bad = cell(&rec, "broken-uring-dio-short-bio", "memmap-ext4-pte-uring-dio");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("DATA_CORRUPTION")), "{bad:#}");
    assert_eq!(code, 0, "{rec:#}");
}

#[test]
fn remote_gup_and_vmsplice_verify_and_each_fails_on_its_own_broken_path() {
    let (code, rec) = run("scenarios/oracles/remote.yaml", "backend=memmap,mode=fsdax,fs=ext4,mapping=pte");
    for w in ["remote-gup", "vmsplice"] {
        let good = cell(&rec, "stock", &format!("memmap-ext4-pte-{w}"));
        assert_eq!(good["outcome"], "PASS", "{good:#}\n{}", console(good));
    }
    let bad = cell(&rec, "broken-remote-gup", "memmap-ext4-pte-remote-gup");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("DATA_CORRUPTION")), "{bad:#}");
    assert_eq!(cell(&rec, "broken-remote-gup", "memmap-ext4-pte-vmsplice")["outcome"], "PASS");
    let bad = cell(&rec, "broken-vmsplice", "memmap-ext4-pte-vmsplice");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("DATA_CORRUPTION")), "{bad:#}");
    assert_eq!(cell(&rec, "broken-vmsplice", "memmap-ext4-pte-remote-gup")["outcome"], "PASS");
    assert_eq!(code, 0, "every cell as the scenario expects: {rec:#}");
}

#[test]
fn fork_during_dio_keeps_both_sides_and_unmap_races_are_clean_and_the_cow_break_fails() {
    let (code, rec) = run("scenarios/oracles/cow.yaml", "backend=memmap,mode=fsdax,fs=ext4,mapping=pte");
    for w in ["fork-cow-dio", "unmap-during-dio"] {
        let good = cell(&rec, "stock", &format!("memmap-ext4-pte-{w}"));
        assert_eq!(good["outcome"], "PASS", "{good:#}\n{}", console(good));
        assert!(good["metrics"].as_object().is_some_and(|m| !m.is_empty()), "a figure for {w}: {good:#}");
    }
    let bad = cell(&rec, "broken-fork-cow-parent-writable", "memmap-ext4-pte-fork-cow-dio");
    assert_eq!((bad["outcome"].as_str(), bad["kind"].as_str()), (Some("FAIL"), Some("DATA_CORRUPTION")), "{bad:#}");
    assert!(bad["title"].as_str().unwrap().contains("fork children saw wrong data"), "{bad:#}");
    assert_eq!(code, 0, "every cell as the scenario expects: {rec:#}");
}

#[test]
fn devdax_refuses_private_mappings_and_fork_cow_is_skipped_there() {
    let (_, rec) = run("scenarios/coverage.yaml", "backend=nvdimm,mode=devdax,mapping=pmd,workload=fork-cow-dio");
    let c = cell(&rec, "stock", "nvdimm-devdax-pmd-fork-cow-dio");
    assert_eq!(c["outcome"], "SKIP", "{c:#}");
    assert!(c["title"].as_str().unwrap().contains("EINVAL"), "{c:#}");
}
