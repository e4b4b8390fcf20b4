//! Sharded runs for real: the default scenario run unsharded, then as
//! shards 1/2 and 2/2 in two `kregress` processes at the same time, merged
//! with `kregress merge`: the merged run has the unsharded run's cells,
//! outcomes and titles, and `kregress compare` reads it. Kernels come from
//! the build cache (built if missing).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

const SCENARIO: &str = "scenarios/bio-release-devmap-wakeup.yaml";

fn kregress(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kregress"));
    c.current_dir(common::root()).args(args);
    c
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e}); status {}; stderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
}

/// Each cell of a run record as `(id, outcome, title)`.
fn cells(rec: &Value) -> Vec<(String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    rec["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = format!(
                "{}/{}-{}-{}-{}-{}/run{}",
                s(&c["variant"]),
                s(&c["backend"]),
                s(&c["fs"]),
                s(&c["mapping"]),
                s(&c["workload"]),
                s(&c["mode"]),
                c["run"]
            );
            (id, s(&c["outcome"]), s(&c["title"]))
        })
        .collect()
}

/// The one line of a refused command on stderr (exit 2).
fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn bad_shard_options_are_refused_before_anything_runs() {
    let r = tempfile::tempdir().unwrap();
    let results = r.path().to_str().unwrap();
    for spec in ["0/2", "3/2", "x", "1/0"] {
        let err = refused(&kregress(&["run", SCENARIO, "--results", results, "--shard", spec]).output().unwrap());
        assert!(err.contains("--shard"), "{spec}: {err}");
    }
    let err = refused(&kregress(&["run", SCENARIO, "--results", results, "--shard", "1/2", "--group", "../x"]).output().unwrap());
    assert!(err.contains("--group"), "{err}");
    // clap's own message (several lines, as for any misused option).
    let out = kregress(&["run", SCENARIO, "--results", results, "--group", "g"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("--shard"), "--group needs --shard: {err}");
    let err = refused(&kregress(&["merge", results]).output().unwrap());
    assert!(err.contains("not a run directory"), "{err}");
    assert_eq!(std::fs::read_dir(r.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn a_resume_must_be_the_same_shard() {
    let r = tempfile::tempdir().unwrap();
    let id = "20261126-162904-bio-release-devmap-wakeup";
    let stored = common::root().join("runner/tests/data/runs").join(id).join("run.json");
    std::fs::create_dir_all(r.path().join(id)).unwrap();
    std::fs::copy(stored, r.path().join(id).join("run.json")).unwrap();
    let results = r.path().to_str().unwrap();
    let err = refused(&kregress(&["run", SCENARIO, "--results", results, "--resume", id, "--shard", "1/2"]).output().unwrap());
    assert!(err.contains("that run is not a shard, this one would be shard 1/2 of group g"), "{err}");
}

#[test]
fn a_shard_beyond_the_boots_is_a_run_of_no_cell() {
    // The default scenario has 4 boots: shard 5/5 boots nothing, and is a run.
    let r = tempfile::tempdir().unwrap();
    let out = kregress(&["run", SCENARIO, "--json", "--shard", "5/5", "--results", r.path().to_str().unwrap()]).output().unwrap();
    let rec = json(&out);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cells(&rec).is_empty());
    assert_eq!(rec["shard"]["plan"].as_array().unwrap().len(), 4);
    assert!(Path::new(rec["results_dir"].as_str().unwrap()).join("summary.md").is_file());
    assert_eq!(rec["shard"]["balance"], "count");
    // Balanced by a stored run's seconds (its directory or its run.json): recorded as such.
    let id = "20261126-162904-bio-release-devmap-wakeup";
    let stored = common::root().join("runner/tests/data/runs").join(id);
    for timings in [stored.clone(), stored.join("run.json")] {
        let args = ["run", SCENARIO, "--json", "--shard", "5/5", "--results", r.path().to_str().unwrap(), "--timings"];
        let rec = json(&kregress(&args).arg(&timings).output().unwrap());
        assert_eq!(rec["shard"]["balance"], format!("seconds of run {id}"));
    }
    let missing = r.path().join("nothing");
    let err = refused(&kregress(&["run", SCENARIO, "--shard", "1/2", "--timings", missing.to_str().unwrap()]).output().unwrap());
    assert!(err.starts_with("kregress: --timings "), "{err}");
}

#[test]
fn two_shards_in_two_processes_merge_into_the_unsharded_run() {
    let began = std::time::Instant::now();
    let r = tempfile::tempdir().unwrap();
    let dir = |name: &str| r.path().join(name).to_str().unwrap().to_string();

    let whole = kregress(&["run", SCENARIO, "--json", "--results", &dir("whole")]).output().unwrap();
    let whole_rec = json(&whole);
    eprintln!("unsharded: {:.0} s", began.elapsed().as_secs_f64());

    let t = std::time::Instant::now();
    let spawn = |i: &str, results: &str| {
        kregress(&["run", SCENARIO, "--json", "--shard", i, "--results", results])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (one, two) = (spawn("1/2", &dir("one")), spawn("2/2", &dir("two")));
    let (one, two) = (one.wait_with_output().unwrap(), two.wait_with_output().unwrap());
    eprintln!("two shards at once: {:.0} s", t.elapsed().as_secs_f64());
    let (one_rec, two_rec) = (json(&one), json(&two));
    assert_eq!((one_rec["shard"]["index"].as_u64(), two_rec["shard"]["index"].as_u64()), (Some(1), Some(2)));
    assert_eq!(one_rec["shard"]["group"], two_rec["shard"]["group"], "derived without talking, the same group");
    assert!(!cells(&one_rec).is_empty() && !cells(&two_rec).is_empty(), "each shard booted a part");
    let one_dir = one_rec["results_dir"].as_str().unwrap().to_string();
    let two_dir = two_rec["results_dir"].as_str().unwrap().to_string();
    for d in [&one_dir, &two_dir] {
        assert!(Path::new(d).join("summary.md").is_file(), "a shard is a complete run: {d}");
    }

    let merged = kregress(&["merge", &one_dir, &two_dir, "--json", "--out", &dir("merged")]).output().unwrap();
    let merged_rec = json(&merged);
    assert_eq!(cells(&merged_rec), cells(&whole_rec), "the merged run's cells, outcomes and titles are the unsharded run's");
    assert_eq!(merged.status.code(), whole.status.code(), "and its exit code");
    for f in ["run.json", "summary.md", "report.html", "verdicts.json"] {
        assert!(PathBuf::from(dir("merged")).join(f).is_file(), "{f}");
    }
    // compare reads it: alone (its variants) and against the unsharded run.
    let whole_dir = whole_rec["results_dir"].as_str().unwrap();
    for args in [vec!["compare", &dir("merged")], vec!["compare", whole_dir, &dir("merged")]] {
        let out = kregress(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("truncate-during-dio"), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        if args.len() == 2 {
            assert!(text.contains("FIXED"), "stock's hang is gone in fixed: {text}");
        }
    }

    // Shard 1 alone: refused, or with --partial shard 2's cells are MISS.
    let err = refused(&kregress(&["merge", &one_dir, "--out", &dir("alone")]).output().unwrap());
    assert!(err.contains("shard(s) 2/2 not given"), "{err}");
    let partial = kregress(&["merge", &one_dir, "--partial", "--json", "--out", &dir("partial")]).output().unwrap();
    assert_eq!(partial.status.code(), Some(3), "a MISS is the harness's failure, as in run");
    let got = cells(&json(&partial));
    assert_eq!(got.len(), cells(&whole_rec).len());
    for (id, outcome, title) in &got {
        match cells(&two_rec).iter().any(|c| &c.0 == id) {
            true => assert_eq!((outcome.as_str(), title.as_str()), ("MISS", "shard 2/2 missing from the merge"), "{id}"),
            false => assert!(cells(&one_rec).iter().any(|c| c == &(id.clone(), outcome.clone(), title.clone())), "{id}"),
        }
    }
    eprintln!("whole test: {:.0} s", began.elapsed().as_secs_f64());
}
