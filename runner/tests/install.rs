//! `cargo install --path runner` gives a kregress that works without its
//! checkout, proved as a user would see it: the sources are copied out of
//! the checkout, installed from there (`--debug`, into a temporary root),
//! and the copy is deleted before the installed binary runs; the binary then
//! runs from a directory holding nothing but one scenario, its kernel-configs
//! fragments and its patches, builds the initramfs and boots one cell of the
//! default scenario (its kernel from the kernel cache).
//!
//! Cost: warm, the install is a no-op build (the copy keeps its files' mtimes
//! and its target directory lives on in `CARGO_TARGET_TMPDIR`) and the cell
//! boots in ~30 s under TCG; cold (a fresh target directory, as in CI), the
//! install builds kregress's dependencies and the agent once more: see
//! docs/PERFORMANCE.md.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cp -a` (mtimes kept: a warm install target stays warm).
fn copy(from: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let st = Command::new("cp").arg("-a").arg(from).arg(into).status().unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), into.display());
}

/// Runs `cmd` to its end, its output in `log`; fails the test past `limit`.
fn run_logged(mut cmd: Command, log: &Path, limit: Duration) -> std::process::ExitStatus {
    let f = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null()).stdout(f.try_clone().unwrap()).stderr(f);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {limit:?}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_installed_kregress_runs_a_scenario_with_no_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install");

    // The sources a crate user has: the workspace manifest and lock file,
    // the runner and the agent. Not the tests, scenarios or scripts.
    let src = work.join("src");
    let _ = std::fs::remove_dir_all(&src);
    for (from, into) in [
        ("Cargo.toml", ""),
        ("Cargo.lock", ""),
        ("runner/Cargo.toml", "runner"),
        ("runner/build.rs", "runner"),
        ("runner/src", "runner"),
        ("runner/benches", "runner"),
        ("images/agent", "images"),
        ("images/initramfs.yaml", "images"),
    ] {
        copy(&root().join(from), &src.join(into));
    }

    let prefix = tmp.path().join("prefix");
    let started = Instant::now();
    let mut install = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    install
        .args(["install", "--locked", "--debug", "--path"])
        .arg(src.join("runner"))
        .arg("--root")
        .arg(&prefix)
        .env("CARGO_TARGET_DIR", work.join("target"));
    let log = tmp.path().join("install.log");
    let st = run_logged(install, &log, Duration::from_secs(3600));
    assert!(st.success(), "cargo install failed ({st}):\n{}", std::fs::read_to_string(&log).unwrap());
    eprintln!("cargo install: {:.1} s", started.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&src).unwrap();
    let kregress = prefix.join("bin/kregress");
    assert!(kregress.is_file(), "cargo install left no {}", kregress.display());

    // A project holding one scenario and what it names, nothing else.
    let project = tmp.path().join("project");
    let scenario = "scenarios/bio-release-devmap-wakeup.yaml";
    copy(&root().join(scenario), &project.join("scenarios"));
    copy(&root().join("scenarios/patches/bio-release-devmap-wakeup.patch"), &project.join("scenarios/patches"));
    copy(&root().join("kernel-configs"), &project);

    let started = Instant::now();
    let out = Command::new(&kregress)
        .current_dir(&project)
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO")
        .args(["run", scenario, "--only", "variant=stock,workload=dio-read", "--runs", "1", "--accel", "tcg", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("kregress run: {:.1} s\n{stderr}", started.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(0), "kregress run: {}\n{stderr}", out.status);
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = rec["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{rec:#}");
    assert_eq!(cells[0]["outcome"], "PASS", "{rec:#}");
    // The results went where a user would look: under the project.
    let results = project.join(rec["results_dir"].as_str().unwrap());
    assert!(results.starts_with(&project), "{}", results.display());
    assert!(results.join("run.json").is_file());
}
