//! Builds the real Debian linux-source-6.1 kernel for both variants of the
//! default scenario through the `kregress` binary, as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_json(scenario: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["build", scenario, "--json"])
        .output()
        .expect("run kregress");
    assert!(out.status.success(), "kregress build failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints a JSON array")
}

/// The disassembly of one function, without addresses (they shift between builds).
fn disasm(vmlinux: &str, func: &str) -> String {
    let out = Command::new("objdump")
        .args(["-d", "--no-addresses", "--no-show-raw-insn", &format!("--disassemble={func}"), vmlinux])
        .output()
        .expect("objdump (binutils)");
    assert!(out.status.success(), "objdump failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("<{func}>:")), "{func} not found in {vmlinux}");
    text
}

#[test]
fn builds_both_variants_caches_them_and_keeps_each_patch_in_its_own_image() {
    let first = build_json("scenarios/bio-release-devmap-wakeup.yaml");
    assert_eq!(first.len(), 2);
    for row in &first {
        for key in ["variant", "bzimage", "config", "log", "cache_hit", "seconds"] {
            assert!(row.get(key).is_some(), "missing {key} in {row}");
        }
        assert!(Path::new(row["bzimage"].as_str().unwrap()).is_file());
        let cfg = std::fs::read_to_string(row["config"].as_str().unwrap()).unwrap();
        for opt in ["CONFIG_FS_DAX=y", "CONFIG_ZONE_DEVICE=y", "CONFIG_TMPFS=y", "CONFIG_ADVISE_SYSCALLS=y"] {
            assert!(cfg.lines().any(|l| l == opt), "{opt} missing from {}", row["config"]);
        }
    }

    // A second call with the same inputs is a cache hit that runs no make.
    let second = build_json("scenarios/bio-release-devmap-wakeup.yaml");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(b["cache_hit"], true, "{b}");
        assert_eq!(a["bzimage"], b["bzimage"]);
    }

    let (stock, fixed) = (&second[0], &second[1]);
    assert_eq!(stock["variant"], "stock");
    assert_eq!(fixed["variant"], "fixed");
    let img = |r: &serde_json::Value| std::fs::read(r["bzimage"].as_str().unwrap()).unwrap();
    assert_ne!(img(stock), img(fixed), "the two variants' bzImages are identical");

    // The patched function, and only the patched variant, calls the devmap hook.
    let vmlinux = |r: &serde_json::Value| Path::new(r["bzimage"].as_str().unwrap()).with_file_name("vmlinux");
    let s = disasm(vmlinux(stock).to_str().unwrap(), "__bio_release_pages");
    let f = disasm(vmlinux(fixed).to_str().unwrap(), "__bio_release_pages");
    assert!(!s.contains("put_devmap_managed_page_refs"), "stock already has the fix:\n{s}");
    assert!(f.contains("__put_devmap_managed_page_refs"), "fixed lacks the fix:\n{f}");
}

/// A kernel that does not compile is the kernel's failure (ERROR, exit 1),
/// reported with the failing command's last lines and the log's path.
#[test]
fn a_broken_kernel_is_an_error_with_the_compiler_message_and_log() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("kernel-configs")).unwrap();
    for f in ["qemu-minimal", "pmem-dax", "debug"] {
        std::fs::copy(root().join(format!("kernel-configs/{f}.config")), p.join(format!("kernel-configs/{f}.config"))).unwrap();
    }
    std::fs::write(
        p.join("broken.patch"),
        "--- a/block/bio.c\n+++ b/block/bio.c\n@@ -1,3 +1,4 @@\n+#error kregress-test-broken-build\n // SPDX-License-Identifier: GPL-2.0\n /*\n  * Copyright (C) 2001 Jens Axboe <axboe@kernel.dk>\n",
    )
    .unwrap();
    std::fs::write(
        p.join("broken.yaml"),
        "name: broken\nkernel:\n  source: { debian: linux-source-6.1 }\n  base: tinyconfig\n  fragments: [kernel-configs/qemu-minimal.config, kernel-configs/pmem-dax.config, kernel-configs/debug.config]\nvariants:\n  - { name: broken, patches: [broken.patch] }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kregress")).args(["build", "--json"]).arg(p.join("broken.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let err = rows[0]["error"].as_str().unwrap();
    assert!(err.contains("kernel build failed for variant broken"), "{err}");
    assert!(err.contains("kregress-test-broken-build"), "compiler message missing: {err}");
    let log = err.split("full log: ").nth(1).and_then(|r| r.split(';').next()).expect("log path in the message");
    assert!(std::fs::read_to_string(log).unwrap().contains("kregress-test-broken-build"));
}
