//! Running external programs (make, git, patch, qemu) so that they never
//! outlive kregress: each child leads its own process group, dies with us
//! (PR_SET_PDEATHSIG), and is killed as a group on Ctrl-C/SIGTERM.
//! Every command is logged with its full command line, and a failure names
//! the command, its exit status and the last lines of its output.

use crate::error::{infra, Context, Result};
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};

fn groups() -> &'static Mutex<HashSet<i32>> {
    static G: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    G.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Registers a child (leader of its own group or session) for Ctrl-C cleanup.
pub fn register(pgid: i32) {
    groups().lock().unwrap().insert(pgid);
}

pub fn unregister(pgid: i32) {
    groups().lock().unwrap().remove(&pgid);
}

/// Kills every live child process group; called from the signal handler.
pub fn kill_all() {
    if let Ok(g) = groups().lock() {
        for pgid in g.iter() {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// Installs the Ctrl-C/SIGTERM handler once: kill the children, then exit 130.
/// Results already written stay: every write is atomic.
pub fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        kill_all();
        eprintln!("kregress: interrupted; children killed");
        std::process::exit(130);
    });
}

/// A child in its own process group, registered for cleanup; killed on drop.
pub struct Guard {
    pub child: Child,
    pgid: i32,
}

impl Guard {
    pub fn spawn(cmd: &mut Command) -> Result<Guard> {
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| infra(format!("cannot start `{}`: {e}", show(cmd))))?;
        let pgid = child.id() as i32;
        groups().lock().unwrap().insert(pgid);
        Ok(Guard { child, pgid })
    }

    pub fn wait(&mut self) -> Result<ExitStatus> {
        let st = self.child.wait().context(|| "waiting for a child".into())?;
        groups().lock().unwrap().remove(&self.pgid);
        // Grandchildren left in the group (e.g. a compiler) go too.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        Ok(st)
    }

    pub fn kill(&mut self) {
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        groups().lock().unwrap().remove(&self.pgid);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if groups().lock().map(|g| g.contains(&self.pgid)).unwrap_or(false) {
            self.kill();
        }
    }
}

/// The command line as a shell would show it.
pub fn show(cmd: &Command) -> String {
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
/// command, its status and the last lines when it exits non-zero.
pub fn run_logged(mut cmd: Command, log: &Path, mut on_line: impl FnMut(&str)) -> Result<()> {
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(log)
        .context(|| format!("opening log {}", log.display()))?;
    let line = show(&cmd);
    writeln!(f, "$ {line}").context(|| format!("writing {}", log.display()))?;
    let (r, w) = std::io::pipe().context(|| "creating a pipe".into())?;
    let w2 = w.try_clone().context(|| "duplicating a pipe".into())?;
    cmd.stdin(Stdio::null()).stdout(w).stderr(w2);
    let mut g = Guard::spawn(&mut cmd)?;
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
    Err(infra(format!(
        "`{line}` failed ({st}); full log: {}; last lines:\n{}",
        log.display(),
        tail.join("\n")
    )))
}

/// Runs a short command and returns its stdout; a failure carries its stderr.
pub fn output(mut cmd: Command) -> Result<String> {
    let line = show(&cmd);
    let (r, w) = std::io::pipe().context(|| "creating a pipe".into())?;
    let (er, ew) = std::io::pipe().context(|| "creating a pipe".into())?;
    cmd.stdin(Stdio::null()).stdout(w).stderr(ew);
    let mut g = Guard::spawn(&mut cmd)?;
    drop(cmd);
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(er), &mut s);
        s
    });
    let mut out = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(r), &mut out)
        .context(|| format!("reading output of `{line}`"))?;
    let st = g.wait()?;
    let err = err.join().unwrap_or_default();
    if !st.success() {
        return Err(infra(format!("`{line}` failed ({st}): {}", err.trim())));
    }
    Ok(out)
}
