//! What several test files share: the project root and the bisect fixture.

#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fixture repository and the hashes the script printed.
pub fn fixture() -> (PathBuf, BTreeMap<String, String>) {
    let script = root().join("scripts/make-bisect-fixture");
    let args = ["--culprit", "9", "--broken-neighbour", "--slow", "6"];
    let mut key = kregress::cache::Key::new("bisect-fixture-v1");
    key.file("script", &script).unwrap();
    for a in args {
        key.part("arg", a.as_bytes());
    }
    let top = kregress::cache::dir("fixtures").unwrap();
    let name = format!("bisect-{}", &key.hex()[..12]);
    let dir = top.join(&name);
    let hashes = top.join(format!("{name}.hashes"));
    let _lock = kregress::cache::lock(&top.join(format!("{name}.lock"))).unwrap();
    if !hashes.is_file() {
        let tmp = top.join(format!("{name}.tmp"));
        let out = Command::new("bash").arg(&script).arg(&tmp).args(args).output().expect("run make-bisect-fixture");
        assert!(out.status.success(), "make-bisect-fixture failed: {}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
        std::fs::write(&hashes, &out.stdout).unwrap();
    }
    let text = std::fs::read_to_string(&hashes).unwrap();
    let map = text.lines().filter_map(|l| l.split_once(' ')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    (dir, map)
}
