//! Host faults during a real run: the results filesystem fills up. The run
//! must stop (no more guests), keep every cell it finished, exit 3 naming
//! the file it could not write, and `--resume` must complete it. Needs root
//! (it mounts a small tmpfs), as CI and the development machines have.

mod common;

use common::root;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A tmpfs of `size` at a fresh directory, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let d = tempfile::tempdir().unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(d.path()).status().unwrap();
        assert!(st.success(), "mount -t tmpfs failed: this test needs root");
        Tmpfs(d)
    }
    fn resize(&self, size: &str) {
        let st = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.0.path()).status().unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

fn kregress(args: &[&str], results: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kregress")).current_dir(root()).args(args).arg("--results").arg(results).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("kregress {args:?}:\n{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// QEMU processes whose command line names `path`.
fn qemus_under(path: &Path) -> Vec<String> {
    let want = path.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("qemu-system") && c.contains(&want))
        .collect()
}

#[test]
fn a_full_disk_stops_the_run_keeps_finished_cells_and_resume_completes() {
    // Room for the results of the first of the two boots (a ~20 KB console,
    // its agent log, the QEMU command line and three result.json: 12 pages
    // of tmpfs with run.json), not the second's.
    let fs = Tmpfs::new("64k");
    let args = ["run", "scenarios/fixed-matrix.yaml", "--only", "backend=memmap,fs=ext4", "--runs", "1", "--jobs", "1"];
    let (code, stderr) = kregress(&args, fs.0.path());
    assert_eq!(code, 3, "a full disk is the host's fault (exit 3)");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("No space left on device") && last.contains(&fs.0.path().display().to_string()),
        "the error names the file: {last}"
    );
    assert_eq!(qemus_under(fs.0.path()), Vec::<String>::new(), "a guest outlived the run");

    let run = std::fs::read_dir(fs.0.path()).unwrap().next().unwrap().unwrap().path();
    let rec: Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let kept = rec["cells"].as_array().unwrap().len();
    assert_eq!(kept, 3, "the first boot's three cells are kept");
    for c in rec["cells"].as_array().unwrap() {
        let console = Path::new(c["console"].as_str().unwrap());
        assert!(console.with_file_name("result.json").is_file(), "a kept cell lost its result: {c:#}");
    }

    fs.resize("64m");
    let id = run.file_name().unwrap().to_str().unwrap();
    let (code, _) = kregress(&[&args[..], &["--resume", id]].concat(), fs.0.path());
    assert_eq!(code, 0);
    let rec: Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let mut ids: Vec<String> = rec["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}/{}/{}/{}/{}", c["backend"], c["fs"], c["mapping"], c["workload"], c["run"]))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "{rec:#}");
    assert!(rec["cells"].as_array().unwrap().iter().all(|c| c["outcome"] == "PASS"), "{rec:#}");
}

/// NVDIMM backing files are reserved up front: on a full disk the boot is a
/// host error, not a guest killed by SIGBUS that looks like a kernel crash.
#[test]
fn nvdimm_backing_files_on_a_full_disk_are_a_host_error() {
    let fs = Tmpfs::new("64m");
    let (code, stderr) =
        kregress(&["run", "scenarios/fixed-matrix.yaml", "--only", "backend=nvdimm,fs=ext4,mapping=pte,workload=dio-read"], fs.0.path());
    assert_eq!(code, 3);
    assert!(stderr.contains("reserving 1 GiB for the NVDIMM backing file"), "{stderr}");
    assert_eq!(qemus_under(fs.0.path()), Vec::<String>::new());
}

/// The disk fills while the guest prints, then frees again (another job
/// cleaned up): the console kept has a hole. It must not be judged: the boot
/// stops at the first failed write, exit 3 naming console.log. (Before, the
/// write errors were ignored and the cell was judged and saved from the
/// console with a hole: exit 0.)
#[test]
fn a_console_that_could_not_be_written_is_not_judged() {
    let fs = Tmpfs::new("1m");
    let filler = fs.0.path().join("filler");
    // Leave about 12 KB: the run directory and the first part of the console.
    let free = |p: &Path| {
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    };
    let room = free(fs.0.path());
    std::fs::write(&filler, vec![1u8; (room - 12 * 1024) as usize]).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kregress"))
        .current_dir(root())
        .args(["run", "scenarios/fixed-matrix.yaml", "--only", "backend=memmap,fs=ext4,mapping=pte,workload=dio-read", "--results"])
        .arg(fs.0.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Full: give the space back, as a cleanup elsewhere would.
    let t = std::time::Instant::now();
    while free(fs.0.path()) > 0 && t.elapsed() < std::time::Duration::from_secs(300) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Long enough for the printing guest to hit the full disk for sure.
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::remove_file(&filler).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(3), "a console with a hole was judged");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains("console.log") && last.contains("No space left on device"), "{last}");
    assert_eq!(qemus_under(fs.0.path()), Vec::<String>::new());
}
