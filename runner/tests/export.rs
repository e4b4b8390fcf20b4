//! Build once, boot elsewhere, through the binary as a CI job runs it: the
//! default scenario's kernels (from the cache the other tests build and
//! use: a hit when warm) are exported, imported into an empty kernel cache
//! and booted with no kernel build; a tampered export is refused before any
//! boot; a variant of another key is built, not imported.
//!
//! The empty caches share the warm cache's unpacked sources (a symbolic
//! link): computing a key prepares the source, and unpacking it again costs
//! minutes without testing anything more (docs/PERFORMANCE.md measures it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const SCENARIO: &str = "scenarios/bio-release-devmap-wakeup.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cache the other tests use, as kregress finds it.
fn warm_cache() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("KREGRESS_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|x| x.join("kregress")))
        .unwrap_or_else(|| env("HOME").unwrap_or_else(|| "/tmp".into()).join(".cache/kregress"))
}

/// A new kernel cache in `dir` with no kernel, no build directory and no
/// initramfs, sharing the warm cache's unpacked sources.
fn empty_cache(dir: &Path) -> PathBuf {
    let c = dir.join("cache");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::create_dir_all(warm_cache().join("sources")).unwrap();
    std::os::unix::fs::symlink(warm_cache().join("sources"), c.join("sources")).unwrap();
    c
}

fn kregress(cache: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kregress"));
    c.current_dir(root()).args(args);
    if let Some(cache) = cache {
        c.env("KREGRESS_CACHE", cache);
    }
    c.output().expect("run kregress")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Files named `name` anywhere under `dir`.
fn found(dir: &Path, name: &str) -> usize {
    walkdir::WalkDir::new(dir).into_iter().flatten().filter(|e| e.file_name() == name).count()
}

#[test]
fn exported_kernels_boot_from_an_empty_cache_without_a_build_and_a_bad_export_never_boots() {
    let t = tempfile::tempdir().unwrap();
    let kernels = t.path().join("kernels");
    let exp = kregress(None, &["build", SCENARIO, "--export", kernels.to_str().unwrap()]);
    assert!(exp.status.success(), "build --export: {}", text(&exp.stderr));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(kernels.join("kernels.json")).unwrap()).unwrap();
    for v in ["stock", "fixed"] {
        assert_eq!(index["kernels"][v]["key"].as_str().unwrap().len(), 64, "{index:#}");
        assert!(kernels.join(v).join("bzImage").is_file());
    }

    // One cell from an empty cache: imported, a cache hit, booted; no make.
    let cache = empty_cache(t.path());
    let results = t.path().join("results");
    let only = "variant=fixed,workload=dio-read";
    let started = Instant::now();
    let run = kregress(
        Some(&cache),
        &["run", SCENARIO, "--import", kernels.to_str().unwrap(), "--only", only, "--json", "--results", results.to_str().unwrap()],
    );
    let seconds = started.elapsed().as_secs_f64();
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "fixed: imported kernel {} from {}",
            &index["kernels"]["fixed"]["key"].as_str().unwrap()[..12],
            kernels.join("fixed").display()
        )),
        "{err}"
    );
    assert!(err.contains("fixed: cache hit"), "{err}");
    assert!(!err.contains("make -j") && !cache.join("build").exists(), "a kernel was built:\n{err}");
    let rec: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(rec["cells"].as_array().unwrap().len(), 1, "{rec:#}");
    assert_eq!(rec["cells"][0]["outcome"], "PASS", "{rec:#}");
    assert_eq!(rec["kernels"]["fixed"]["key"], index["kernels"]["fixed"]["key"]);
    // A cold kernel build is over 7 min on this machine kind (docs/PERFORMANCE.md); the import is seconds.
    let line = err.lines().find(|l| l.starts_with("fixed: imported kernel")).unwrap();
    let import_s: f64 = line.split(" in ").nth(1).and_then(|r| r.split(" s ").next()).and_then(|x| x.parse().ok()).expect(line);
    assert!(import_s < 60.0, "{line}");
    eprintln!("run --import of one cell from an empty kernel cache: {seconds:.1} s, of it the import {import_s:.1} s");

    // A tampered bzImage: exit 2 naming it, and nothing boots.
    let bad = t.path().join("bad");
    assert!(Command::new("cp").arg("-r").arg(&kernels).arg(&bad).status().unwrap().success());
    let img = bad.join("fixed/bzImage");
    let mut b = std::fs::read(&img).unwrap();
    b[4096] ^= 0x40;
    std::fs::write(&img, &b).unwrap();
    let cache2 = empty_cache(&t.path().join("two"));
    let results2 = t.path().join("results2");
    let run = kregress(
        Some(&cache2),
        &["run", SCENARIO, "--import", bad.to_str().unwrap(), "--only", only, "--results", results2.to_str().unwrap()],
    );
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}: sha256 ", img.display())) && err.contains("corrupt or was changed"), "{err}");
    assert_eq!(found(&results2, "console.log") + found(&results2, "qemu.cmdline"), 0, "a boot happened");
    let published = std::fs::read_dir(cache2.join("kernels")).unwrap().flatten().any(|e| e.path().join("meta.json").exists());
    assert!(!published, "the tampered kernel reached the cache");

    // A variant of another key (an extra patch): not imported, built (here
    // a patch that does not apply, so the build fails in seconds: ERROR, exit 1).
    let p = t.path().join("mismatch");
    std::fs::create_dir_all(p.join("kernel-configs")).unwrap();
    for f in ["qemu-minimal", "pmem-dax", "debug"] {
        std::fs::copy(root().join(format!("kernel-configs/{f}.config")), p.join(format!("kernel-configs/{f}.config"))).unwrap();
    }
    std::fs::write(p.join("extra.patch"), "--- a/block/bio.c\n+++ b/block/bio.c\n@@ -1,1 +1,1 @@\n-no such line in bio.c\n+x\n").unwrap();
    let scenario = std::fs::read_to_string(root().join(SCENARIO)).unwrap();
    let start = scenario.find("variants:").unwrap();
    let end = scenario.find("run:").unwrap();
    let scenario = format!("{}variants:\n  - {{ name: fixed, patches: [extra.patch] }}\n{}", &scenario[..start], &scenario[end..]);
    let scenario = scenario.split("expect:").next().unwrap();
    std::fs::write(p.join("s.yaml"), scenario).unwrap();
    let cache3 = empty_cache(&t.path().join("three"));
    let results3 = t.path().join("results3");
    let run = kregress(
        Some(&cache3),
        &[
            "run",
            p.join("s.yaml").to_str().unwrap(),
            "--import",
            kernels.to_str().unwrap(),
            "--only",
            "workload=dio-read",
            "--json",
            "--results",
            results3.to_str().unwrap(),
        ],
    );
    let err = text(&run.stderr);
    assert!(
        err.contains(&format!("is not in {}/kernels.json: its fixed is kernel ", kernels.display())) && err.contains("(other patches"),
        "{err}"
    );
    assert!(!err.contains("imported kernel"), "{err}");
    // The build was tried: its patch does not apply (the scenario's fault: exit 2).
    assert!(err.contains("applying patches") && err.contains("extra.patch does not apply"), "no build was tried:\n{err}");
    assert_eq!(run.status.code(), Some(2), "{err}");
}
