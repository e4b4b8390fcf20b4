//! Running external programs (make, git, tar, ldd, mkfs, qemu): the
//! one way kregress starts a process, so that nothing it starts outlives it
//! and nothing runs unbounded.
//!
//! Lifetime. Each child leads its own process group, and everything it starts
//! (make's cc1 and ld) stays in that group. The group is killed when
//! the child is reaped, on Ctrl-C/SIGTERM (`kill_all`), and when kregress
//! dies in any way, `kill -9` included: [`start_reaper`] forks, first thing in
//! `main`, a reaper that holds one end of a socket. Every child announces its
//! group on that socket from between fork and exec, so before it can start
//! anything; kregress announces each group's end when it reaps the child.
//! When kregress dies, the socket reads EOF and the reaper SIGKILLs every
//! group still announced, then exits. PR_SET_PDEATHSIG on the direct child
//! alone (the earlier answer) left the grandchildren running: an orphaned
//! cc1 or ld keeps its group. A child subreaper does not help either: it
//! adopts orphans only while it is alive, and `kill -9` is what it would not
//! survive. The reaper is one sleeping process, in its own process group (a
//! signal to kregress's group leaves it to clean up), with no file open but
//! its socket and /dev/null; it cannot outlive kregress, whose death is its
//! only wake-up.
//!
//! Deadlines. Each command gets one (`deadline`); when it passes, the
//! group is killed and the command fails as Infra (exit 3), named.
//!
//! Every command is logged with its full command line, and a failure names
//! the command, its exit status and the last lines of its output.

use crate::error::{infra, Context, Result};
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

/// How long each kind of command may run. Generous: a deadline is for a
/// command that hangs (a git waiting on a lock),
/// never for a slow machine; each is ten times or more what it takes on the
/// 2-core machine of docs/PERFORMANCE.md.
pub(crate) mod deadline {
    use std::time::Duration;

    /// A question answered at once: `git rev-parse`, `gcc --version`, `ldd`,
    /// mkfs of the 512 MiB filesystem image (0.05 s).
    pub(crate) const QUICK: Duration = Duration::from_secs(120);
    /// Work on a whole kernel tree: `tar -xf` of the 140 MB source tarball
    /// (~30 s), `git add -A`/`commit`/`reset --hard`/`clone`/`fetch` of it,
    /// the config makes (~8 s).
    pub(crate) const TREE: Duration = Duration::from_secs(30 * 60);
    // `make bzImage` has none: it takes what the scenario's configuration
    // asks (7 min cold for tinyconfig here, hours for a distribution
    // config). QEMU has the scenario's boot and run deadlines (crate::vm).
}

fn groups() -> &'static Mutex<HashSet<i32>> {
    static G: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    G.get_or_init(|| Mutex::new(HashSet::new()))
}

/// kregress's end of the reaper's socket; -1 without a reaper (the library
/// used from a test, where each direct child still has PR_SET_PDEATHSIG).
static REAPER: AtomicI32 = AtomicI32::new(-1);

/// One message to the reaper: +pgid (announced) or -pgid (reaped). A
/// SOCK_SEQPACKET message is never split or merged; MSG_NOSIGNAL: a dead
/// reaper is no reason to die of SIGPIPE. Async-signal-safe (a child calls
/// it between fork and exec).
fn tell_reaper(fd: i32, msg: i32) {
    unsafe { libc::send(fd, (&msg as *const i32).cast(), 4, libc::MSG_NOSIGNAL) };
}

/// Starts the reaper (see the module doc). Call it first in `main`, before
/// any thread exists: it forks.
pub fn start_reaper() -> Result<()> {
    let mut fds = [0i32; 2];
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(infra(format!("creating the reaper's socket: {}", std::io::Error::last_os_error())));
    }
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    match unsafe { libc::fork() } {
        -1 => Err(infra(format!("starting the reaper: {}", std::io::Error::last_os_error()))),
        0 => {
            drop(ours);
            reaper(theirs)
        }
        _ => {
            REAPER.store(ours.as_raw_fd(), Ordering::SeqCst);
            std::mem::forget(ours); // open for kregress's whole life
            Ok(())
        }
    }
}

/// The reaper's life: collect the groups, and at EOF kill those left.
fn reaper(sock: OwnedFd) -> ! {
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_NAME, c"kregress-reaper".as_ptr());
        // The socket becomes fd 3, stdio /dev/null, whatever fds they had.
        let high = libc::fcntl(sock.as_raw_fd(), libc::F_DUPFD, 10);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        libc::dup2(high, 3);
        // Nothing else of kregress's (a pipe a caller waits on, say) stays open here.
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
    }
    std::mem::forget(sock);
    // pgid → its leader's start time when announced (None: already gone).
    let mut live: Vec<(i32, Option<u64>)> = Vec::new();
    let mut buf = [0u8; 4];
    loop {
        let n = unsafe { libc::recv(3, buf.as_mut_ptr().cast(), 4, 0) };
        if n == 4 {
            match i32::from_ne_bytes(buf) {
                g if g > 0 => live.push((g, start_time(g))),
                g => live.retain(|(x, _)| *x != -g),
            }
        } else if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    for (g, start) in live {
        // Only our group: its leader is still the process announced, or
        // gone (while a member lives, its group's number is not reused).
        let now = start_time(g);
        if now.is_none() || now == start {
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
    }
    unsafe { libc::_exit(0) }
}

/// Field 22 of /proc/PID/stat: when the process started.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].split(' ').nth(19)?.parse().ok()
}

/// Makes `cmd`'s process the leader of its own group, announced to the
/// reaper before it can start anything, and killed if kregress dies before
/// it (PR_SET_PDEATHSIG; the reaper gets the rest of its group). For a
/// child that makes itself a session leader (rexpect's setsid), the group
/// is already its own.
pub(crate) fn bind(cmd: &mut Command) {
    let parent = std::process::id() as i32;
    let reaper = REAPER.load(Ordering::SeqCst);
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            if reaper >= 0 {
                tell_reaper(reaper, libc::getpid());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1); // kregress died before PDEATHSIG was armed
            }
            Ok(())
        });
    }
}

/// A bound child's group, for [`kill_all`].
pub(crate) fn track(pgid: i32) {
    groups().lock().unwrap().insert(pgid);
}

/// The group is dead and its leader reaped: forget it, and tell the reaper.
pub(crate) fn untrack(pgid: i32) {
    groups().lock().unwrap().remove(&pgid);
    let fd = REAPER.load(Ordering::SeqCst);
    if fd >= 0 {
        tell_reaper(fd, -pgid);
    }
}

/// Kills every live child process group; called from the signal handler.
pub(crate) fn kill_all() {
    if let Ok(g) = groups().lock() {
        for pgid in g.iter() {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// Work kregress started outside this machine (a LAVA lab's job) that an
/// interrupt must also stop: each hook is called once, after the children
/// are killed, from the handler's thread (not a signal context).
static INTERRUPT_HOOKS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Adds `hook` to what Ctrl-C/SIGTERM runs before kregress exits (see [`install_signal_handler`]).
pub(crate) fn on_interrupt(hook: fn()) {
    let mut h = INTERRUPT_HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    if !h.contains(&hook) {
        h.push(hook);
    }
}

/// Installs the Ctrl-C/SIGTERM handler once: kill the children, run the
/// [`on_interrupt`] hooks, then exit 130.
/// Results already written stay: every write is atomic.
pub fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        kill_all();
        let hooks = INTERRUPT_HOOKS.lock().map(|h| h.clone()).unwrap_or_default();
        for h in hooks {
            h();
        }
        eprintln!("kregress: interrupted; children killed");
        std::process::exit(130);
    });
}

/// Kills a group when its deadline passes, unless stopped first.
struct Watchdog {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(pgid: i32, limit: Duration) -> Watchdog {
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || match rx.recv_timeout(limit) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                true
            }
            _ => false,
        });
        Watchdog { stop, thread }
    }

    /// Whether it fired.
    fn stop(self) -> bool {
        drop(self.stop);
        self.thread.join().unwrap_or(false)
    }
}

const EXPIRED: &str = "did not finish within its deadline";

/// Whether `e` says a command ran past its deadline: an Infra error, even
/// where a failing command means bad input (a `git rev-parse` that finds no
/// commit).
pub(crate) fn expired(e: &crate::error::Error) -> bool {
    e.class == crate::error::Class::Infra && e.msg.contains(EXPIRED)
}

/// A bound child, tracked until reaped, killed (with its group) on drop.
pub(crate) struct Guard {
    pub(crate) child: Child,
    pgid: i32,
    line: String,
    deadline: Option<(Duration, Watchdog)>,
    reaped: bool,
}

impl Guard {
    /// Starts `cmd`; with a deadline, its group is killed when it passes and
    /// [`Guard::wait`] says so.
    pub(crate) fn spawn(cmd: &mut Command, deadline: Option<Duration>) -> Result<Guard> {
        let line = show(cmd);
        bind(cmd);
        let child = cmd.spawn().map_err(|e| infra(format!("cannot start `{line}`: {e}")).because(e))?;
        let pgid = child.id() as i32;
        track(pgid);
        let deadline = deadline.map(|d| (d, Watchdog::start(pgid, d)));
        Ok(Guard { child, pgid, line, deadline, reaped: false })
    }

    /// Waits for the child to exit, then [`Guard::reap`]s it.
    pub(crate) fn wait(&mut self) -> Result<ExitStatus> {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // WNOWAIT: exited, not yet reaped, so its pid is still ours.
        while unsafe { libc::waitid(libc::P_PID, self.pgid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(infra(format!("waiting for `{}`: {e}", self.line)));
            }
        }
        self.reap()
    }

    /// Kills the group and reaps the child.
    pub(crate) fn kill(&mut self) {
        let _ = self.reap();
    }

    /// Kills what is left of the group (e.g. a compiler), then reaps the
    /// leader. Every kill comes first: until the leader is reaped, its pid,
    /// the group's number, cannot be reused by another process.
    fn reap(&mut self) -> Result<ExitStatus> {
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let expired = self.deadline.take().map(|(d, w)| (d, w.stop()));
        untrack(self.pgid);
        self.reaped = true;
        let st = self.child.wait().context(|| format!("waiting for `{}`", self.line))?;
        match expired {
            Some((d, true)) => Err(infra(format!("`{}` {EXPIRED} of {} s: killed", self.line, d.as_secs()))),
            _ => Ok(st),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
        }
    }
}

/// The command line as a shell would show it.
pub(crate) fn show(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s += &format!("{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    s += &cmd.get_program().to_string_lossy();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            s += &format!(" '{}'", a.replace('\'', "'\\''"));
        } else {
            s += &format!(" {a}");
        }
    }
    s
}

/// Runs `cmd` to completion, appending `$ cmdline` and all its output to `log`
/// and calling `on_line` for each output line (progress). Fails with the
/// command, its status and the last lines when it exits non-zero, and when
/// `deadline` passes.
pub(crate) fn run_logged(mut cmd: Command, log: &Path, deadline: Option<Duration>, mut on_line: impl FnMut(&str)) -> Result<()> {
    let mut f = File::options().create(true).append(true).open(log).context(|| format!("opening log {}", log.display()))?;
    let line = show(&cmd);
    writeln!(f, "$ {line}").context(|| format!("writing {}", log.display()))?;
    let (r, w) = std::io::pipe().context(|| "creating a pipe".into())?;
    let w2 = w.try_clone().context(|| "duplicating a pipe".into())?;
    cmd.stdin(Stdio::null()).stdout(w).stderr(w2);
    let mut g = Guard::spawn(&mut cmd, deadline)?;
    drop(cmd); // closes our copies of the write end, so the reader sees EOF
    let mut tail: VecDeque<String> = VecDeque::new();
    for l in BufReader::new(r).split(b'\n') {
        let l = l.context(|| format!("reading output of `{line}`"))?;
        let l = String::from_utf8_lossy(&l).into_owned();
        let _ = writeln!(f, "{l}");
        on_line(&l);
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(l);
    }
    let st = g.wait()?;
    if st.success() {
        return Ok(());
    }
    let tail: Vec<String> = tail.into_iter().collect();
    Err(infra(format!("`{line}` failed ({st}); full log: {}; last lines:\n{}", log.display(), tail.join("\n"))))
}

/// What a finished command printed.
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs a short command to completion within `deadline` and keeps its
/// output, whatever its exit status.
pub(crate) fn capture(mut cmd: Command, deadline: Duration) -> Result<Captured> {
    let line = show(&cmd);
    let (r, w) = std::io::pipe().context(|| "creating a pipe".into())?;
    let (er, ew) = std::io::pipe().context(|| "creating a pipe".into())?;
    cmd.stdin(Stdio::null()).stdout(w).stderr(ew);
    let mut g = Guard::spawn(&mut cmd, Some(deadline))?;
    drop(cmd);
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(er).read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    BufReader::new(r).read_to_string(&mut stdout).context(|| format!("reading output of `{line}`"))?;
    let status = g.wait()?;
    let stderr = err.join().unwrap_or_default();
    Ok(Captured { status, stdout, stderr })
}

/// Runs a short command and returns its stdout; a failure carries its stderr.
pub(crate) fn output(cmd: Command, deadline: Duration) -> Result<String> {
    let line = show(&cmd);
    let c = capture(cmd, deadline)?;
    if !c.status.success() {
        return Err(infra(format!("`{line}` failed ({}): {}", c.status, c.stderr.trim())));
    }
    Ok(c.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_deadline_is_killed_with_its_group_and_named() {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30 & sleep 30; echo never"]);
        let started = std::time::Instant::now();
        let e = output(c, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(e.class, crate::error::Class::Infra);
        assert!(e.msg.contains("`sh -c 'sleep 30 & sleep 30; echo never'` did not finish within its deadline"), "{}", e.msg);
        assert!(expired(&e));
    }

    #[test]
    fn a_command_within_its_deadline_gives_its_output() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = capture(c, deadline::QUICK).unwrap();
        assert_eq!((o.status.code(), o.stdout.as_str(), o.stderr.as_str()), (Some(3), "out\n", "err\n"));
    }
}
