//! Deadlines and hang reports: run a blocking operation on its own thread and give up
//! waiting after a deadline; collect the kernel stacks of the tasks that matter.

use std::sync::mpsc;
use std::time::Duration;

use kregress_agent::{Message, ThreadStack};

/// Run `f` on a new thread and wait at most `timeout`. `None` means it did not finish:
/// the thread is left behind (it is probably stuck in the kernel, in D state).
pub fn with_deadline<T: Send + 'static>(name: &str, timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name(name.chars().take(15).collect()).spawn(move || {
        let _ = tx.send(f());
    });
    if spawned.is_err() {
        return None;
    }
    rx.recv_timeout(timeout).ok()
}

/// Blocking calls in progress in workload threads, for the per-call watchdog.
static OPS: std::sync::Mutex<Vec<(u64, &'static str, std::time::Instant)>> = std::sync::Mutex::new(Vec::new());
static OP_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Registers a blocking call until the guard is dropped.
pub struct OpGuard(u64);

pub fn op_begin(name: &'static str) -> OpGuard {
    let id = OP_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    OPS.lock().unwrap_or_else(|e| e.into_inner()).push((id, name, std::time::Instant::now()));
    OpGuard(id)
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        OPS.lock().unwrap_or_else(|e| e.into_inner()).retain(|(id, _, _)| *id != self.0);
    }
}

/// The call that has been running longest, and for how long.
fn oldest_op() -> Option<(&'static str, Duration)> {
    let ops = OPS.lock().unwrap_or_else(|e| e.into_inner());
    ops.iter().map(|(_, n, t)| (*n, t.elapsed())).max_by_key(|(_, d)| *d)
}

/// What the running workload has counted so far (a storm's ops per kind),
/// published by the workload so that a hang's result still carries it.
static PROGRESS: std::sync::Mutex<std::collections::BTreeMap<String, u64>> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Publishes the running workload's counters (replacing the last ones).
pub fn set_progress(c: std::collections::BTreeMap<String, u64>) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = c;
}

/// The counters last published, cleared.
pub fn take_progress() -> std::collections::BTreeMap<String, u64> {
    std::mem::take(&mut *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// How a watched workload ended.
pub enum Watched<T> {
    Done(T),
    /// One call blocked longer than the hang limit (reported already).
    OpHang {
        op: &'static str,
        waited: Duration,
    },
    /// The whole workload overran its deadline (reported already).
    Deadline,
}

/// Run `f` on its own thread; every 100 ms check the registered calls (limit `hang`)
/// and the overall `deadline`. On a hang the stacks are reported and the thread is left behind.
pub fn run_watched<T: Send + 'static>(
    name: &str,
    deadline: Duration,
    hang: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Watched<T> {
    let start = std::time::Instant::now();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name(name.chars().take(15).collect()).spawn(move || {
        let _ = tx.send(f());
    });
    if spawned.is_err() {
        return Watched::Deadline;
    }
    let mut alive = 1;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(v) => return Watched::Done(v),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Watched::Deadline,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some((op, waited)) = oldest_op() {
            if waited > hang {
                report_hang("workload", name, op, waited);
                return Watched::OpHang { op, waited };
            }
        }
        if start.elapsed() > deadline {
            report_hang("workload", name, "workload", start.elapsed());
            return Watched::Deadline;
        }
        // Still running: say so (see Message::Alive).
        if start.elapsed() >= Duration::from_millis(alive * kregress_agent::protocol::ALIVE_EVERY_MS) {
            Message::Alive { workload: name.to_string(), elapsed_ms: start.elapsed().as_millis() as u64 }.emit();
            alive += 1;
        }
    }
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// (comm, state, ppid) from /proc/<pid>/task/<tid>/stat.
fn parse_stat(stat: &str) -> Option<(String, String, i32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.to_string();
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// Kernel stack lines without the "[<0>] " prefix.
fn parse_stack(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| match l.find("] ") {
            Some(i) if l.starts_with("[<") => l[i + 2..].trim().to_string(),
            _ => l.trim().to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every thread of the agent and of its children, plus every other task in D state
/// (kernel threads included), with their kernel stacks.
fn collect_stacks() -> Vec<ThreadStack> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let mut pids: Vec<i32> = procs.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        let mut tids: Vec<i32> = tasks.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        tids.sort();
        for tid in tids {
            let base = format!("/proc/{pid}/task/{tid}");
            let Some((comm, state, ppid)) = parse_stat(&read(&format!("{base}/stat"))) else {
                continue;
            };
            if !(pid == me || ppid == me || state == "D") {
                continue;
            }
            out.push(ThreadStack {
                pid,
                tid,
                comm,
                state,
                wchan: read(&format!("{base}/wchan")).trim().to_string(),
                stack: parse_stack(&read(&format!("{base}/stack"))),
            });
        }
    }
    out
}

/// Emit a `hang` message with the stacks, then ask the kernel to dump blocked tasks
/// (sysrq w; silently nothing when CONFIG_MAGIC_SYSRQ is off).
pub fn report_hang(phase: &str, what: &str, op: &str, waited: Duration) {
    Message::Hang { phase: phase.into(), what: what.into(), op: op.into(), waited_s: waited.as_secs_f64(), threads: collect_stacks() }
        .emit();
    let _ = std::fs::write("/proc/sysrq-trigger", "w");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_stack_parsing() {
        let (comm, state, ppid) = parse_stat("57 (trunc (x)) D 1 1 0 0 -1 4194560").unwrap();
        assert_eq!((comm.as_str(), state.as_str(), ppid), ("trunc (x)", "D", 1));
        let s = parse_stack("[<0>] ext4_break_layouts+0x1a9/0x2c0\n[<0>] ext4_setattr+0x3b/0x9d0\n");
        assert_eq!(s, vec!["ext4_break_layouts+0x1a9/0x2c0", "ext4_setattr+0x3b/0x9d0"]);
    }

    #[test]
    fn deadline_gives_up() {
        assert_eq!(with_deadline("quick", Duration::from_secs(5), || 7), Some(7));
        assert_eq!(with_deadline("slow", Duration::from_millis(50), || std::thread::sleep(Duration::from_secs(2))), None);
    }

    #[test]
    fn watchdog_catches_a_blocked_call() {
        match run_watched("w", Duration::from_secs(30), Duration::from_millis(200), || {
            let _op = op_begin("sleep");
            std::thread::sleep(Duration::from_secs(2));
        }) {
            Watched::OpHang { op, waited } => {
                assert!(op == "sleep" && waited >= Duration::from_millis(200))
            }
            _ => panic!("expected an op hang"),
        }
        assert!(matches!(run_watched("w", Duration::from_secs(5), Duration::from_secs(5), || 3), Watched::Done(3)));
        assert!(matches!(
            run_watched("w", Duration::from_millis(200), Duration::from_secs(5), || std::thread::sleep(Duration::from_secs(2))),
            Watched::Deadline
        ));
    }

    #[test]
    fn collects_own_threads() {
        let st = collect_stacks();
        assert!(st.iter().any(|t| t.pid == std::process::id() as i32));
    }
}
