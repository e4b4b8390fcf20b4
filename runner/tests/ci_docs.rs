//! The CI workflows in docs/ci cannot rot: each parses as YAML (with
//! serde_yaml, the crate kregress reads scenarios with), the sharded ones
//! have the shape docs/ci.md describes (a build job, N shard jobs that need
//! it, a merge job that needs them), and every `kregress` command they run
//! names a subcommand and flags that the built binary's `--help` lists.

use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ci")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(docs().join(name)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("docs/ci/{name}: {e}"))
}

/// Every string in `v` (keys left out), depth first.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Sequence(s) => s.iter().for_each(|x| strings(x, out)),
        Value::Mapping(m) => m.values().for_each(|x| strings(x, out)),
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// Each `kregress SUBCOMMAND ...` in the scripts of `v`: (subcommand, its `--flags`), one per command line.
fn commands(v: &Value) -> Vec<(String, BTreeSet<String>)> {
    let mut texts = Vec::new();
    strings(v, &mut texts);
    let mut out = Vec::new();
    for line in texts.iter().flat_map(|t| t.lines()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // The binary as the workflows run it, by path (bin/kregress, ./target/release/kregress)
        // where a command starts: not the word in a job's name, nor `cp target/release/kregress bin/`.
        let starts = |at: usize| at == 0 || ["&&", "||", ";", "|", "then", "do"].contains(&words[at - 1]);
        let Some(at) = (0..words.len()).find(|&at| words[at].ends_with("/kregress") && starts(at)) else { continue };
        let Some(sub) = words.get(at + 1) else { continue };
        let flags = words[at + 2..]
            .iter()
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
            .filter(|w| w.starts_with("--"))
            .map(|w| w.split('=').next().unwrap().to_string())
            .collect();
        out.push((sub.to_string(), flags));
    }
    out
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kregress")).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "kregress {args:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every kregress command of every workflow exists, with every flag it passes.
#[test]
fn every_kregress_command_in_the_workflows_exists() {
    let top = help(&[]);
    let mut seen = 0;
    for name in ["github-nightly.yml", "gitlab-ci.yml", "github-sharded.yml", "gitlab-sharded.yml"] {
        for (sub, flags) in commands(&load(name)) {
            assert!(top.lines().any(|l| l.trim_start().starts_with(&format!("{sub} "))), "docs/ci/{name}: kregress has no command {sub}");
            let h = help(&[&sub]);
            for f in flags {
                assert!(h.contains(&format!("{f} ")) || h.contains(&format!("{f}\n")), "docs/ci/{name}: kregress {sub} has no {f}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 15, "only {seen} flags found: the scanner misses the commands");
}

/// The scanner sees a command that does not exist (the check above can fail).
#[test]
fn a_missing_flag_is_seen() {
    let v: Value = serde_yaml::from_str(
        "name: kregress sharded\njob:\n  script:\n    - cp target/release/kregress bin/\n    - chmod +x k && bin/kregress run x --no-such-flag 'quoted' --shard 1/2\n",
    )
    .unwrap();
    let c = commands(&v);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, "run");
    assert_eq!(c[0].1, ["--no-such-flag", "--shard"].into_iter().map(String::from).collect());
    assert!(!help(&["run"]).contains("--no-such-flag"));
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| v.get(k).unwrap_or_else(|| panic!("no {k} in {path:?}")))
}

/// build → matrix of shards → merge, with the kernels and shards passed as artifacts.
#[test]
fn the_github_workflow_builds_once_shards_and_merges() {
    let w = load("github-sharded.yml");
    let jobs = get(&w, &["jobs"]);
    assert_eq!(get(jobs, &["shard", "needs"]).as_str(), Some("build"));
    let matrix = get(jobs, &["shard", "strategy", "matrix", "shard"]).as_sequence().unwrap();
    let n = get(&w, &["env", "SHARDS"]).as_u64().unwrap();
    assert_eq!(matrix.len() as u64, n, "SHARDS differs from the matrix");
    assert_eq!(matrix.iter().map(|x| x.as_u64().unwrap()).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let merge_needs: Vec<_> = get(jobs, &["merge", "needs"]).as_sequence().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert!(merge_needs.contains(&"shard"));
    let run = commands(get(jobs, &["shard"]));
    assert!(run.iter().any(|(s, f)| s == "run" && f.contains("--import") && f.contains("--shard") && f.contains("--group")), "{run:?}");
    let build = commands(get(jobs, &["build"]));
    assert!(build.iter().any(|(s, f)| s == "build" && f.contains("--export")), "{build:?}");
    let merge = commands(get(jobs, &["merge"]));
    assert!(merge.iter().any(|(s, _)| s == "merge") && merge.iter().any(|(s, _)| s == "report"), "{merge:?}");
}

/// The same on GitLab: `parallel: N` and CI_NODE_INDEX/CI_NODE_TOTAL, `needs:` between the stages.
#[test]
fn the_gitlab_pipeline_builds_once_shards_and_merges() {
    let w = load("gitlab-sharded.yml");
    let shard = get(&w, &["kregress-shard"]);
    assert!(get(shard, &["parallel"]).as_u64().unwrap() >= 2);
    assert_eq!(get(shard, &["needs"]).as_sequence().unwrap()[0].as_str(), Some("kregress-build"));
    let mut texts = Vec::new();
    strings(get(shard, &["script"]), &mut texts);
    assert!(texts.iter().any(|t| t.contains("--shard \"$CI_NODE_INDEX/$CI_NODE_TOTAL\"")), "{texts:?}");
    // Run ids are start times: two shards of one second must not share a directory in the merge job.
    assert!(texts.iter().any(|t| t.contains("--results \"shards/$CI_NODE_INDEX\"")), "{texts:?}");
    let needs = get(&w, &["kregress-merge", "needs"]).as_sequence().unwrap();
    assert!(needs.iter().any(|n| get(n, &["job"]).as_str() == Some("kregress-shard")));
    let build = commands(get(&w, &["kregress-build"]));
    assert!(build.iter().any(|(s, f)| s == "build" && f.contains("--export")), "{build:?}");
}
