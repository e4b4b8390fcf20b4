//! `kill -9` of the real kregress binary at its busiest: during a kernel
//! build (make linking vmlinux), a VM run (QEMU), a LAVA job (lava-run and
//! its QEMU) and a bisection step. Within
//! 5 s nothing it started may be left: no make, cc1, ld or QEMU, and not its
//! reaper either. (kregress runs no cargo: the guest agent is built with
//! kregress itself, runner/build.rs.)
//!
//! Before the kill every descendant is recorded with its start time (a pid
//! can be reused); and the test process is a child subreaper, so whatever
//! kregress's tree orphans (even a process started after the snapshot) is
//! re-parented to it and counted too.

mod common;

use common::{fixture, root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One case at a time: each is the only kregress the test process has.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long after the kill every process kregress started must be gone.
const GRACE: Duration = Duration::from_secs(5);

/// A process as /proc shows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    ppid: i32,
    /// Clock ticks after boot: tells a reused pid apart.
    start: u64,
    state: char,
    comm: String,
    cmdline: String,
}

fn stat(pid: i32) -> Option<Proc> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let f: Vec<&str> = s[close + 2..].split(' ').collect();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Some(Proc {
        pid,
        ppid: f[1].parse().ok()?,
        start: f[19].parse().ok()?,
        state: f[0].chars().next()?,
        comm: s[open + 1..close].to_string(),
        cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string(),
    })
}

/// Every process below `top` (not `top` itself).
fn descendants(top: i32) -> Vec<Proc> {
    let all: Vec<Proc> =
        std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter_map(stat).collect();
    let mut out: Vec<Proc> = Vec::new();
    let mut parents = vec![top];
    while let Some(p) = parents.pop() {
        for c in all.iter().filter(|c| c.ppid == p) {
            parents.push(c.pid);
            out.push(c.clone());
        }
    }
    out
}

/// Still running: same pid and start time, and not a zombie.
fn alive(p: &Proc) -> bool {
    stat(p.pid).is_some_and(|q| q.start == p.start && q.state != 'Z' && q.state != 'X')
}

fn show(ps: &[Proc]) -> String {
    ps.iter()
        .map(|p| format!("  {} {} [{}] {}", p.pid, p.comm, p.state, p.cmdline.chars().take(160).collect::<String>()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// kregress, started as a user would, its output kept in `dir`.
struct Kregress {
    child: Child,
    stderr: PathBuf,
}

impl Kregress {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Kregress {
        // Orphans of kregress's tree come to us, not to init.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
        let stderr = dir.join(format!("stderr-{}", args[0]));
        let mut c = Command::new(env!("CARGO_BIN_EXE_kregress"));
        c.current_dir(root()).args(args).stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        Kregress { child: c.spawn().expect("start kregress"), stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `busy` holds for kregress's descendants (and its stderr);
    /// fails if kregress exits first or `limit` passes.
    fn wait_until(&mut self, what: &str, limit: Duration, busy: impl Fn(&[Proc], &str) -> bool) {
        let started = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("kregress exited ({st}) before {what}; stderr:\n{}", self.stderr());
            }
            if busy(&descendants(self.child.id() as i32), &self.stderr()) {
                eprintln!("{what} after {:.1} s", started.elapsed().as_secs_f64());
                return;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("no {what} within {limit:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, then within [`GRACE`] nothing kregress started may run:
    /// neither what was there at the kill nor anything re-parented to us.
    fn kill_leaves_nothing(mut self, case: &str) {
        let me = std::process::id() as i32;
        let before = descendants(self.child.id() as i32);
        let err = self.stderr();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        eprintln!("{case}: kregress said, last:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        eprintln!("{case}: killing kregress with {} descendants:\n{}", before.len(), show(&before));
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().unwrap();
        let killed = Instant::now();
        let left = loop {
            let mut left: Vec<Proc> = before.iter().filter(|p| alive(p)).cloned().collect();
            for p in descendants(me) {
                if p.state == 'Z' {
                    unsafe { libc::waitpid(p.pid, std::ptr::null_mut(), libc::WNOHANG) };
                } else if !left.iter().any(|q| q.pid == p.pid) {
                    left.push(p);
                }
            }
            if left.is_empty() || killed.elapsed() > GRACE {
                break left;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !left.is_empty() {
            for p in &left {
                unsafe { libc::kill(p.pid, libc::SIGKILL) };
            }
            panic!("{case}: {} process(es) kregress started still run {GRACE:?} after it was killed:\n{}", left.len(), show(&left));
        }
        eprintln!("{case}: all {} gone {:.2} s after the kill", before.len(), killed.elapsed().as_secs_f64());
    }
}

/// make bzImage links vmlinux: ld runs for seconds and prints nothing, so
/// an orphaned one goes on. (Not a moment when cc1 runs, as the issue
/// measured: a compile ends within a second or two, orphaned or not; and an
/// orphan that prints dies of SIGPIPE when kregress's end of its pipe goes.)
fn linking(ps: &[Proc]) -> bool {
    ps.iter().any(|p| p.comm == "make" && p.cmdline.contains("bzImage"))
        && ps.iter().any(|p| p.comm == "ld" && p.cmdline.contains("vmlinux"))
}

/// A patch to `file` of the tree at `commit` in `repo` that adds a comment
/// no build has seen: the kernel is a cache miss, rebuilt incrementally.
fn random_patch(dir: &Path, repo: &Path, commit: &str) -> PathBuf {
    let file = "init/calibrate.c";
    let out = Command::new("git").arg("-C").arg(repo).args(["show", &format!("{commit}:{file}")]).output().unwrap();
    assert!(out.status.success(), "git show {commit}:{file} in {}: {}", repo.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let head: Vec<&str> = text.lines().take(3).collect();
    let nonce =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let mut p = format!("--- a/{file}\n+++ b/{file}\n@@ -1,3 +1,4 @@\n+/* kregress kill test {nonce} */\n");
    for l in head {
        p += &format!(" {l}\n");
    }
    let path = dir.join("random.patch");
    std::fs::write(&path, p).unwrap();
    path
}

fn fragments() -> String {
    ["qemu-minimal", "pmem-dax", "debug"].map(|f| root().join(format!("kernel-configs/{f}.config")).display().to_string()).join(", ")
}

/// Killed while `make bzImage` links; then the same build completes, past what
/// the killed make left half-written, into a bzImage that is whole, and
/// incrementally (not the whole kernel again).
#[test]
fn kill_during_a_kernel_build() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tree = kregress::kernel::source::prepare(
        &kregress::scenario::Source::Debian("linux-source-6.1".into()),
        None,
        &dir.path().join("git.log"),
    )
    .unwrap();
    let patch = random_patch(dir.path(), &tree.dir, &tree.commit);
    let scenario = dir.path().join("kill-build.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: kill-build\nkernel:\n  source: {{ debian: linux-source-6.1 }}\n  base: tinyconfig\n  fragments: [{}]\nvariants:\n  - {{ name: k, patches: [{}] }}\nrun:\n  workloads: [{{ name: dio-read, size: 32M, passes: 1 }}]\n",
            fragments(),
            patch.display()
        ),
    )
    .unwrap();
    let s = scenario.to_str().unwrap();
    let mut k = Kregress::start(dir.path(), &["build", s, "--json"], &[]);
    k.wait_until("make bzImage linking", Duration::from_secs(600), |ps, _| linking(ps));
    k.kill_leaves_nothing("kernel build");

    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kregress")).current_dir(root()).args(["build", s, "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("the build again: {:.0} s\n{stderr}", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "the build after the kill failed ({}):\n{stderr}", out.status);
    assert!(stderr.contains("did not finish: removed"), "the killed make's outputs were not removed:\n{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bzimage = PathBuf::from(rows[0]["bzimage"].as_str().unwrap());
    let entry = bzimage.parent().unwrap().to_path_buf();
    let log = std::fs::read_to_string(entry.join("build.log")).unwrap();
    let compiled = log.lines().filter(|l| l.trim_start().starts_with("CC ")).count();
    let vmlinux = std::fs::metadata(entry.join("vmlinux")).unwrap().len();
    let whole = kregress::kernel::bzimage::check(&std::fs::read(&bzimage).unwrap(), None, vmlinux);
    // The entry's key is random: no later build can hit it.
    std::fs::remove_dir_all(&entry).unwrap();
    assert_eq!(whole, Ok(()), "{}", bzimage.display());
    assert!(compiled < 50, "the build after the kill compiled {compiled} files: the whole kernel again");
}

/// `kregress run` killed while QEMU boots the guest.
#[test]
fn kill_during_a_vm_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let args = [
        "run",
        "scenarios/bio-release-devmap-wakeup.yaml",
        "--only",
        "variant=stock,workload=dio-read",
        "--runs",
        "1",
        "--accel",
        "tcg",
        "--results",
        results.to_str().unwrap(),
    ];
    let mut k = Kregress::start(dir.path(), &args, &[]);
    k.wait_until("QEMU booting the guest", Duration::from_secs(900), |ps, _| {
        ps.iter().any(|p| p.comm.starts_with("qemu-system") && p.cmdline.contains("-kernel"))
    });
    k.kill_leaves_nothing("VM run");
}

/// `kregress lava --local` killed while lava-run's QEMU boots the guest
/// (pexpect starts QEMU in a session of its own, on a pty).
#[test]
fn kill_during_a_lava_job() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (out, results) = (dir.path().join("lava"), dir.path().join("results"));
    let args = [
        "lava",
        "scenarios/bio-release-devmap-wakeup.yaml",
        "--only",
        "variant=stock,workload=dio-read",
        "--runs",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--local",
        "--results",
        results.to_str().unwrap(),
    ];
    let mut k = Kregress::start(dir.path(), &args, &[]);
    k.wait_until("lava-run's QEMU booting the guest", Duration::from_secs(900), |ps, _| {
        ps.iter().any(|p| p.comm.starts_with("qemu-system") && p.cmdline.contains("-kernel"))
    });
    k.kill_leaves_nothing("LAVA job");
}

/// `kregress bisect` on the bisect fixture, killed in its first step while
/// it builds that commit's kernel (a cache miss: the variant's patch is new).
#[test]
fn kill_during_a_bisect_step() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (repo, h) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let patch = random_patch(dir.path(), &repo, &h["bad"]);
    let text = std::fs::read_to_string(root().join("scenarios/bisect-fixture.yaml")).unwrap();
    let (head, rest) = text.split_once("kernel:").unwrap();
    let run = &rest[rest.find("run:").unwrap()..];
    let scenario = dir.path().join("kill-bisect.yaml");
    std::fs::write(
        &scenario,
        format!(
            "{head}kernel:\n  source: {{ git: {}, rev: master }}\n  base: tinyconfig\n  fragments: [{}]\nvariants:\n  - {{ name: tip, patches: [{}] }}\n{run}",
            repo.display(),
            fragments(),
            patch.display()
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let args = [
        "bisect",
        scenario.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--good",
        &h["good"],
        "--bad",
        &h["bad"],
        "--only",
        "workload=truncate-during-dio",
        "--accel",
        "tcg",
        "--results",
        results.to_str().unwrap(),
    ];
    let mut k = Kregress::start(dir.path(), &args, &[]);
    k.wait_until("bisect step 1 linking", Duration::from_secs(1800), |ps, err| err.contains("bisect: step 1") && linking(ps));
    k.kill_leaves_nothing("bisect step");
}
