//! `kregress replay` and `kregress bundle` on a real cell: a real kernel
//! (from the build cache, built if missing) booted in real QEMU, replayed
//! from its results directory, then bundled and replayed from the bundle.
//! Three boots of one cell (some minutes under TCG).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kregress(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kregress")).current_dir(root()).args(args).output().expect("run kregress")
}

fn text(o: &Output) -> String {
    format!("status {}\nstdout:\n{}\nstderr:\n{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// The nonce on the kernel command line of a boot.json.
fn nonce(boot: &Value) -> String {
    let args = boot["qemu_args"].as_array().unwrap();
    let append = args.iter().position(|a| a == "-append").unwrap();
    let cmdline = args[append + 1].as_str().unwrap();
    cmdline.split(' ').find_map(|w| w.strip_prefix("kregress.nonce=")).unwrap().to_string()
}

#[test]
fn a_failing_cell_replays_from_its_results_and_from_its_bundle_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    // The 2017 GUP-fast class on 6.1: the first O_DIRECT into the DAX mapping warns.
    let o = kregress(&[
        "run",
        "scenarios/gup-fast-devmap-ref.yaml",
        "--only",
        "variant=regressed,workload=dio-read",
        "--json",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rec: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cell = &rec["cells"][0];
    assert_eq!((cell["outcome"].as_str(), cell["title"].as_str()), (Some("FAIL"), Some("WARNING in free_zone_device_page")), "{cell:#}");
    let dir = Path::new(cell["console"].as_str().unwrap()).parent().unwrap().to_path_buf();
    let boot = json(&dir.join("boot.json"));
    let console = std::fs::read(dir.join("console.log")).unwrap();
    let expected = "original: FAIL WARN: WARNING in free_zone_device_page\n  replay:   FAIL WARN: WARNING in free_zone_device_page\n";

    // From the results directory, into a new directory inside the cell's.
    let o = kregress(&["replay", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(expected), "{}", text(&o));
    let replays: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("replay-"))
        .collect();
    assert_eq!(replays.len(), 1, "{replays:?}");
    let replayed = json(&replays[0].join("result.json"));
    assert_eq!(
        (replayed["outcome"].as_str(), replayed["title"].as_str()),
        (Some("FAIL"), Some("WARNING in free_zone_device_page")),
        "{replayed:#}"
    );
    let again = json(&replays[0].join("boot.json"));
    assert_eq!((&again["bzimage"], &again["initramfs"]), (&boot["bzimage"], &boot["initramfs"]), "the same files");
    assert_ne!(nonce(&again), nonce(&boot), "a fresh nonce per boot");
    assert!(!replays[0].join("pmem").exists(), "the NVDIMM files are removed");
    // The original cell is as the run left it.
    assert_eq!(std::fs::read(dir.join("console.log")).unwrap(), console);
    assert_eq!(json(&dir.join("boot.json")), boot);
    assert_eq!(json(&dir.join("result.json"))["title"], cell["title"]);

    // Bundled, and replayed from the bundle somewhere else.
    let bundle = tmp.path().join("cell.tar.gz");
    let o = kregress(&["bundle", dir.to_str().unwrap(), "-o", bundle.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = tmp.path().join("from-bundle");
    let o = kregress(&["replay", bundle.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(expected), "{}", text(&o));
    assert_eq!(json(&out.join("result.json"))["title"], cell["title"]);
    let readme = std::fs::read_to_string(out.join("bundle/README")).unwrap();
    assert!(readme.contains(" -kernel bzImage -initrd initramfs.cpio.gz -append "), "{readme}");
    // The README's one line boots it by hand (a deadline in case the guest hangs).
    let line = readme.lines().find(|l| l.contains("qemu-system-x86_64")).unwrap().trim();
    let o = Command::new("timeout").args(["600", "sh", "-c", line]).current_dir(out.join("bundle")).output().unwrap();
    let console = String::from_utf8_lossy(&o.stdout);
    assert!(console.contains("WARNING: CPU:") && console.contains("free_zone_device_page"), "{}", text(&o));
    // The bundle's kernel is what the cell booted, byte for byte.
    assert_eq!(std::fs::read(out.join("bundle/bzImage")).unwrap(), std::fs::read(boot["bzimage"]["path"].as_str().unwrap()).unwrap());
    // A replay never writes over a directory that exists.
    let o = kregress(&["replay", bundle.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
