//! `kregress bisect` on real kernels: a git history of Debian's
//! linux-source-6.1 made by scripts/make-bisect-fixture, where one commit
//! brings back the bio-release hang (truncate stuck in ext4_break_layouts).
//! Every step builds a real kernel (incrementally, in kregress's clone) and
//! boots it in QEMU. The fixture is built once and kept in the kregress cache
//! under a key of the script's bytes and arguments.

mod common;

use common::{fixture, root};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// One bisection at a time: each boots guests and builds kernels on 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bisect(repo: &Path, good: &str, bad: &str) -> (i32, Value, String) {
    bisect_with(repo, good, bad, &["--only", "workload=truncate-during-dio", "--max-runs", "2"])
}

fn bisect_with(repo: &Path, good: &str, bad: &str, extra: &[&str]) -> (i32, Value, String) {
    // Relative, as the default `results` is: the revert check once failed
    // only with a relative --results.
    let results = "target/kregress-test-bisect";
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["bisect", "scenarios/bisect-fixture.yaml", "--repo"])
        .arg(repo)
        .args(["--good", good, "--bad", bad, "--json", "--results"])
        .arg(results)
        .args(extra)
        .output()
        .expect("run kregress bisect");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stderr}\nbisect took {:.0} s", started.elapsed().as_secs_f64());
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}); status {}; stderr:\n{stderr}", out.status));
    (out.status.code().unwrap_or(-1), v, stderr)
}

#[test]
fn bisect_finds_the_hang_culprit_and_its_revert_is_good() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (repo, h) = fixture();
    let (code, v, _) = bisect(&repo, &h["good"], &h["bad"]);
    eprintln!("{v:#}");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["culprit"]["commit"], h["culprit"].as_str(), "{v:#}");
    assert_eq!(v["culprit"]["subject"], "block: release bio pages with folio_put_refs()");
    assert_eq!(v["signature"], "INFO: task hung in ext4_break_layouts", "{v:#}");
    assert_eq!(v["revert_check"], "good", "{v:#}");
    assert_eq!(v["no_op_change"], false, "{v:#}");
    let steps = v["steps"].as_array().unwrap();
    // BAD, GOOD, at most ceil(log2(18)) = 5 search steps, the revert check.
    assert!(steps.len() <= 2 + 5 + 1, "{} steps", steps.len());
    for s in steps {
        for f in ["commit", "verdict", "runs", "titles", "build_seconds"] {
            assert!(!s[f].is_null(), "step without {f}: {s:#}");
        }
    }
    let dir = root().join(v["results_dir"].as_str().unwrap());
    let log = std::fs::read_to_string(dir.join("bisect.log")).unwrap();
    assert!(log.contains(&format!("# first bad commit: [{}]", h["culprit"])), "{log}");
    assert!(log.contains(&format!("git bisect good {}", h["good"])), "{log}");
    assert!(dir.join("bisect.json").is_file() && dir.join("bisect.md").is_file());
    // The log replays in plain git: same first bad commit.
    let replay = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "d=$(mktemp -d) && git clone -q --shared --no-checkout {} $d && cd $d && sed 's/^git bisect start$/git bisect start --no-checkout/' {} > $d.log && git bisect replay $d.log | tail -n 20; rm -rf $d $d.log",
            repo.display(),
            dir.join("bisect.log").display()
        ))
        .output()
        .unwrap();
    let replay = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.contains(&format!("{} is the first bad commit", h["culprit"])), "git bisect replay: {replay}");
}

#[test]
fn bisect_with_a_broken_neighbour_leaves_it_and_the_culprit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (repo, h) = fixture();
    let (code, v, _) = bisect(&repo, &h["good"], &h["broken-bad"]);
    eprintln!("{v:#}");
    assert_eq!(code, 0, "{v:#}");
    assert!(v["culprit"].is_null(), "{v:#}");
    let cands: Vec<&str> = v["candidates"].as_array().unwrap().iter().map(|c| c["commit"].as_str().unwrap()).collect();
    assert_eq!(cands, vec![h["broken"].as_str(), h["broken-culprit"].as_str()], "{v:#}");
    let broken = v["steps"].as_array().unwrap().iter().find(|s| s["commit"] == h["broken"].as_str()).expect("broken commit tested");
    assert_eq!(broken["verdict"], "skip");
    assert!(broken["reason"].as_str().unwrap().contains("build failed"), "{broken:#}");
    assert_eq!(v["revert_check"], "not-applicable");
}

/// The fixture itself (no kernel build, no VM): commit 1 has the 6.1.0
/// put_page() loop, the culprit brings back folio_put_refs() and touches only
/// block/bio.c, and the broken line has the build breaker right before it.
#[test]
fn fixture_history_is_as_described() {
    let (repo, h) = fixture();
    let git = |args: &[&str]| {
        let o = Command::new("git").arg("-C").arg(&repo).args(args).output().unwrap();
        assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let good_bio = git(&["show", &format!("{}:block/bio.c", h["good"])]);
    assert!(good_bio.contains("\t\tput_page(bvec->bv_page);") && !good_bio.contains("folio_put_refs(fi.folio, nr_pages)"));
    let bad_bio = git(&["show", &format!("{}:block/bio.c", h["bad"])]);
    assert!(bad_bio.contains("folio_put_refs(fi.folio, nr_pages)"));
    assert_eq!(git(&["diff", "--name-only", &format!("{}^", h["culprit"]), &h["culprit"]]).trim(), "block/bio.c");
    assert_eq!(git(&["rev-list", "--count", &format!("{}..{}", h["good"], h["bad"])]).trim(), "17");
    assert_eq!(git(&["rev-parse", &format!("{}^", h["broken-culprit"])]).trim(), h["broken"]);
    assert_eq!(git(&["rev-parse", &format!("{}^", h["broken"])]).trim(), git(&["rev-parse", &format!("{}^", h["culprit"])]).trim());
    // Same content at the tips: the broken line only differs on the way.
    assert_eq!(git(&["diff", "--stat", &h["bad"], &h["broken-bad"]]).trim(), "");
    assert_eq!(git(&["diff", "--name-only", &format!("{}^", h["slow"]), &h["slow"]]).trim(), "drivers/nvdimm/pmem.c");
    assert!(!git(&["diff", "--name-only", &h["good"], &h["slow-bad"]]).contains("block/bio.c"), "the slow line has the culprit");
    // The user's repository is a plain checkout on master, clean.
    assert_eq!(git(&["status", "--porcelain"]).trim(), "");
}

/// Throughput bisection in icount timing: dio-read's GUP-fast metric drops
/// at the ndelay(250)-per-page commit (by 6.4 %, measured: 867.20 → 811.66
/// MB per virtual second), found with a -3 % threshold (wall-clock timing
/// needed -30 % against TCG noise).
#[test]
fn bisect_throughput_finds_a_5_percent_slowdown_with_a_3_percent_threshold() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (repo, h) = fixture();
    let (code, v, _) =
        bisect_with(&repo, &h["good"], &h["slow-bad"], &["--only", "workload=dio-read", "--metric", "fast_mb_per_s", "--threshold", "-3%"]);
    eprintln!("{v:#}");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["culprit"]["commit"], h["slow"].as_str(), "{v:#}");
    assert_eq!(v["revert_check"], "good", "{v:#}");
    assert!(v["mode"].as_str().unwrap().contains("icount"), "{v:#}");
    // The culprit's step: a regression between -3 % and -10 %, decided by the rule book.
    let step =
        v["steps"].as_array().unwrap().iter().find(|s| s["commit"] == h["slow"].as_str() && s["verdict"] == "bad").expect("culprit step");
    let reason = step["reason"].as_str().unwrap();
    assert!(reason.contains("THROUGHPUT_REGRESSION"), "{reason}");
    let d: f64 = reason.split("): ").next().unwrap().split(": ").nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
    assert!((-10.0..=-3.0).contains(&d), "{d} from {reason}");
    assert!(v["confidence"].is_null(), "no reproduction-rate confidence in throughput mode: {v:#}");
}
