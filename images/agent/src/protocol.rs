//! Wire protocol between the guest agent and the runner.
//!
//! The agent prints one JSON object per console line, at the start of the
//! line, behind a fixed marker and the boot's nonce:
//!
//! ```text
//! KREGRESS> 5f0c8a2e9b1d7c43 {"type":"hello","version":"0.1.0","kernel":"6.1.0","uptime_s":1.62}
//! ```
//!
//! The runner draws the nonce at random for every boot and passes it on the
//! kernel command line (`kregress.nonce=`, see [`crate::config`]); a line
//! counts only when it starts with the marker followed by that nonce. Console
//! text that merely contains the marker (a printk echoing a file name, a line
//! from another boot) is "foreign": ignored, and counted by [`LineParser`].
//!
//! The serial console also carries kernel messages, which may cut one of our
//! lines in two; [`LineParser`] puts such a line back together. This module
//! is the one place that formats and parses protocol lines.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fixed prefix at the start of every protocol line.
pub const MARKER: &str = "KREGRESS> ";

/// What makes console text look like a protocol line, wherever it is.
const MARKER_WORD: &str = "KREGRESS>";

/// The longest nonce accepted.
pub(crate) const MAX_NONCE: usize = 64;

/// Whether `s` can be a boot's nonce: 1 to [`MAX_NONCE`] ASCII letters and digits.
pub(crate) fn is_nonce(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NONCE && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What the agent prints in place of a nonce when it has none (the runner
/// ignores such lines): not a valid nonce, so never taken for one.
const NO_NONCE: &str = "-";

static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Binds [`Message::emit`] to this boot's nonce (the agent calls it once, before
/// its first message). Returns false when a nonce was set already.
pub fn set_nonce(nonce: &str) -> bool {
    NONCE.set(nonce.to_string()).is_ok()
}

/// Guest milliseconds between two [`Message::Alive`] lines of a running workload.
pub const ALIVE_EVERY_MS: u64 = 2000;
/// Version of the message set; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Which GUP path a pass exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gup {
    /// The mapping was pre-faulted: get_user_pages_fast() finds the PTEs.
    Fast,
    /// Fresh mapping, never touched: GUP-fast fails and the slow path faults.
    Slow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
/// How a workload (or the teardown) ended.
pub enum Outcome {
    /// It ran and its checks held.
    Pass,
    /// It ran and failed: see the [`FailKind`].
    Fail,
    /// The harness could not run the test (e.g. DAX not active, setup failed).
    Miss,
    /// Not run (e.g. skipped after an earlier hang wedged the filesystem).
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
/// Why a workload (or the teardown) failed.
pub enum FailKind {
    /// A call, or the whole workload, did not return within its limit.
    Hang,
    /// Data read back differs from what was written.
    DataCorruption,
    /// A call failed with an errno the workload does not expect.
    IoError,
}

/// One thread (task) and its kernel stack, from `/proc/<pid>/task/<tid>/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadStack {
    /// Process (thread group) id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// Thread name.
    pub comm: String,
    /// State letter from /proc/.../stat (R, S, D, ...).
    pub state: String,
    /// Where the thread sleeps, from /proc/.../wchan.
    pub wchan: String,
    /// Frames without the `"[<0>] "` prefix, innermost first, e.g. "ext4_break_layouts+0x1a9/0x2c0".
    pub stack: Vec<String>,
}

/// Every message the agent prints. Serialized with an internal `type` tag in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// First line after the agent started.
    Hello {
        /// The agent's version.
        version: String,
        /// [`PROTOCOL_VERSION`] of the agent.
        protocol: u32,
        /// `uname -r`.
        kernel: String,
        /// Guest uptime when the agent printed hello (kernel boot time to agent).
        uptime_s: f64,
    },
    /// Progress: a setup/teardown step finished (or failed: `ok` false).
    Step {
        /// The step: "config", "pmem", "mkfs", "mount", ...
        name: String,
        /// Whether it succeeded.
        ok: bool,
        /// What it did (the command, the devices), or why it failed.
        detail: String,
        /// How long it took.
        elapsed_ms: u64,
    },
    /// STATX_ATTR_DAX of the test file.
    DaxCheck {
        /// The test file.
        path: String,
        /// Whether STATX_ATTR_DAX is set.
        dax: bool,
    },
    /// A workload begins.
    WorkloadStart {
        /// The workload's name (`dio-read`, ...).
        name: String,
        /// Its every parameter, as the kernel command line spells it.
        spec: String,
    },
    /// One measured pass of a throughput workload.
    Sample {
        /// The workload's name.
        workload: String,
        /// The pass, from 0 (a warm-up).
        pass: u32,
        /// The GUP path of this run of the pass.
        gup: Gup,
        /// Throughput in MB/s (per virtual second under icount).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mb_per_s: Option<f64>,
        /// Operations per second, for workloads that count operations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops_per_s: Option<f64>,
    },
    /// How a workload ended.
    WorkloadResult {
        /// The workload's name.
        name: String,
        /// PASS, FAIL, MISS or SKIP.
        outcome: Outcome,
        /// Why it failed (FAIL only).
        kind: Option<FailKind>,
        /// The errno of the failed call, when a call failed.
        errno: Option<i32>,
        /// What was done and seen, or what went wrong, in one line.
        detail: String,
        /// Mean throughput over all passes (throughput workloads).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mb_per_s: Option<f64>,
        /// Operations per second (race workloads, and some throughput ones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops_per_s: Option<f64>,
        /// Free-form counters (ios, truncates, efault, ...).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        counters: BTreeMap<String, u64>,
    },
    /// Something did not finish within its deadline.
    Hang {
        /// "workload" or "teardown".
        phase: String,
        /// Workload name or teardown step.
        what: String,
        /// The operation that is stuck, e.g. "ftruncate" or "umount".
        op: String,
        /// How long it had been waiting.
        waited_s: f64,
        /// The agent's threads and its children's, and every other task in D state, with their kernel stacks.
        threads: Vec<ThreadStack>,
    },
    /// How the teardown (umount, unbinding the pmem devices) ended.
    Teardown {
        /// PASS, FAIL, or SKIP (an earlier hang left the filesystem wedged).
        outcome: Outcome,
        /// Why it failed (FAIL only).
        kind: Option<FailKind>,
        /// What each step did and how long it took, or what went wrong.
        detail: String,
        /// How long the teardown took.
        elapsed_ms: u64,
    },
    /// Fatal agent-side error (bad configuration, setup failed); the run is MISS.
    Error {
        /// Where: "mount" (the early mounts), "config", "pmem", "mkfs", "dax-check", or "panic".
        phase: String,
        /// What went wrong.
        detail: String,
    },
    /// A workload still runs: printed every [`ALIVE_EVERY_MS`] of guest time
    /// while one does, so the runner can tell a slow guest (under icount a
    /// busy guest second takes 13-25 host seconds) from one that stopped.
    Alive {
        /// The running workload's name.
        workload: String,
        /// Guest time since the workload began.
        elapsed_ms: u64,
    },
    /// Last line before power-off.
    Done {
        /// False when the harness itself failed (configuration, setup, teardown);
        /// workload failures are results, not a failed harness.
        ok: bool,
        /// Time from the agent's start to this line.
        elapsed_ms: u64,
    },
}

impl Message {
    /// The console line for this message in the boot bound to `nonce`,
    /// without the trailing newline.
    pub fn to_line(&self, nonce: &str) -> String {
        // Serializing these types cannot fail (no maps with non-string keys, no NaN issues:
        // serde_json writes non-finite floats as null).
        let json = serde_json::to_string(self).expect("message serializes");
        format!("{MARKER}{nonce} {json}")
    }

    /// Print the message on stdout (the console in the guest), with the nonce
    /// given to [`set_nonce`] (`-`, never a nonce, before). The whole line goes out
    /// in one write(2), bypassing std's buffer, and lines from several threads never mix.
    pub fn emit(&self) {
        use std::io::Write;
        use std::os::unix::io::FromRawFd;
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let mut line = self.to_line(NONCE.get().map_or(NO_NONCE, |n| n.as_str()));
        line.push('\n');
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = std::io::stdout().flush();
        // fd 1 is borrowed, never closed.
        let mut out = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
        let _ = out.write_all(line.as_bytes());
        // Wait until the tty has sent the line: kernel messages the agent provokes next
        // (sysrq, a WARNING) then come after it instead of in its middle. ENOTTY off a tty.
        unsafe { libc::tcdrain(1) };
    }
}

/// What a console line is to the protocol of one boot.
enum Head<'a> {
    /// Starts with the marker and the boot's nonce: the JSON that follows.
    Ours(&'a str),
    /// Holds the marker, but not at the start or not with the boot's nonce.
    Foreign,
    /// Holds no marker.
    Other,
}

fn head<'a>(line: &'a str, nonce: &str) -> Head<'a> {
    if let Some(rest) = line.strip_prefix(MARKER) {
        match rest.strip_prefix(nonce).and_then(|r| r.strip_prefix(' ')) {
            Some(json) if is_nonce(nonce) => Head::Ours(json),
            _ => Head::Foreign,
        }
    } else if line.contains(MARKER_WORD) {
        Head::Foreign
    } else {
        Head::Other
    }
}

/// Parse one console line of the boot bound to `nonce`. Returns `None` unless
/// the line starts with the marker and the nonce, followed by one complete
/// message (a trailing `\r` is ignored).
pub fn parse_line(line: &str, nonce: &str) -> Option<Message> {
    match head(line.trim_end_matches(['\r', '\n']), nonce) {
        Head::Ours(json) => serde_json::from_str(json.trim()).ok(),
        _ => None,
    }
}

/// Start of a printk timestamp "[   30.520227] " in `s`, if any.
fn printk_prefix(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find('[').map(|i| i + from) {
        let mut j = i + 1;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let d0 = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > d0 && j < b.len() && b[j] == b'.' {
            j += 1;
            let f0 = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > f0 && b.get(j) == Some(&b']') {
                return Some(i);
            }
        }
        from = i + 1;
    }
    None
}

/// What [`LineParser::push`] made of a console line.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A message of this boot (a whole line, or the last piece of a split one).
    Message(Message),
    /// Protocol-looking text that is not this boot's: the marker elsewhere
    /// than at the start of the line, or a wrong or missing nonce. Ignored.
    Foreign,
    /// Anything else: kernel output, or the first piece of a split message.
    Other,
}

/// Stateful console parser for the runner, bound to one boot's nonce: like
/// [`parse_line`], but also puts back together a protocol line that a
/// kernel message split, e.g.
///
/// ```text
/// KREGRESS> 5f0c8a2e9b1d7c43 {"type":"hang",...,"waited_s":10.0,"[   30.520227] sysrq: Show Blocked State
/// threads":[...]}
/// ```
///
/// Whole kernel lines in between are skipped; a line that cannot be completed within
/// a few lines is dropped.
#[derive(Debug, Default)]
pub struct LineParser {
    nonce: String,
    pending: Option<String>,
    waited: u32,
    foreign: u64,
}

impl LineParser {
    const MAX_LINES: u32 = 16;

    /// A parser for the boot whose nonce is `nonce`: 1 to 64 ASCII letters and
    /// digits (given anything else, it accepts no line).
    pub fn new(nonce: &str) -> Self {
        LineParser { nonce: nonce.to_string(), ..Self::default() }
    }

    /// Foreign lines seen so far.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// Feed one console line.
    pub fn push(&mut self, line: &str) -> Parsed {
        let line = line.trim_end_matches(['\r', '\n']);
        let foreign = match head(line, &self.nonce) {
            Head::Ours(json) => {
                self.pending = None;
                if let Ok(m) = serde_json::from_str(json.trim()) {
                    return Parsed::Message(m);
                }
                self.hold(json.to_string());
                return Parsed::Other;
            }
            // Another boot's line (or none's) starts here: whatever was pending is lost.
            Head::Foreign if line.starts_with(MARKER_WORD) => {
                self.pending = None;
                return self.count_foreign();
            }
            Head::Foreign => true,
            Head::Other => false,
        };
        let (Some(mut pending), true) = (self.pending.take(), self.waited < Self::MAX_LINES) else {
            return if foreign { self.count_foreign() } else { Parsed::Other };
        };
        self.waited += 1;
        if printk_prefix(line) == Some(0) {
            // A whole kernel line between the two halves.
            self.pending = Some(pending);
            return if foreign { self.count_foreign() } else { Parsed::Other };
        }
        // The rest of a split line (which may quote the marker).
        pending.push_str(line);
        if let Ok(m) = serde_json::from_str(pending.trim()) {
            return Parsed::Message(m);
        }
        self.hold(pending);
        Parsed::Other
    }

    fn count_foreign(&mut self) -> Parsed {
        self.foreign += 1;
        Parsed::Foreign
    }

    fn hold(&mut self, mut json: String) {
        if let Some(i) = printk_prefix(&json) {
            json.truncate(i);
        }
        if self.pending.is_none() {
            self.waited = 0;
        }
        self.pending = Some(json);
    }
}

/// The symbolic name of an errno value (`EOPNOTSUPP`), as titles and details print it;
/// `errno N` for one not in the table.
pub fn errno_name(e: i32) -> std::borrow::Cow<'static, str> {
    std::borrow::Cow::Borrowed(match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EXDEV => "EXDEV",
        libc::ENOTTY => "ENOTTY",
        libc::ESRCH => "ESRCH",
        libc::ECHILD => "ECHILD",
        libc::E2BIG => "E2BIG",
        libc::EHWPOISON => "EHWPOISON",
        libc::ENODATA => "ENODATA",
        _ => return std::borrow::Cow::Owned(format!("errno {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message> {
        let mut counters = BTreeMap::new();
        counters.insert("truncates".to_string(), 473);
        vec![
            Message::Hello { version: "0.1.0".into(), protocol: PROTOCOL_VERSION, kernel: "6.1.0".into(), uptime_s: 1.5 },
            Message::Step { name: "mkfs".into(), ok: true, detail: "mkfs.ext4 /dev/pmem0".into(), elapsed_ms: 420 },
            Message::DaxCheck { path: "/mnt/pmem/testfile".into(), dax: true },
            Message::WorkloadStart { name: "dio-read".into(), spec: "dio-read:size=64M:passes=2".into() },
            Message::Sample { workload: "dio-read".into(), pass: 1, gup: Gup::Slow, mb_per_s: Some(312.5), ops_per_s: None },
            Message::WorkloadResult {
                name: "truncate-during-dio".into(),
                outcome: Outcome::Fail,
                kind: Some(FailKind::Hang),
                errno: None,
                detail: "ftruncate did not return within 10 s".into(),
                mb_per_s: None,
                ops_per_s: Some(55.0),
                counters,
            },
            Message::Hang {
                phase: "workload".into(),
                what: "truncate-during-dio".into(),
                op: "ftruncate".into(),
                waited_s: 10.0,
                threads: vec![ThreadStack {
                    pid: 1,
                    tid: 57,
                    comm: "truncate".into(),
                    state: "D".into(),
                    wchan: "ext4_break_layouts".into(),
                    stack: vec!["ext4_break_layouts+0x1a9/0x2c0".into(), "ext4_setattr+0x3b/0x9d0".into()],
                }],
            },
            Message::Teardown { outcome: Outcome::Pass, kind: None, detail: "umount 0.1 s".into(), elapsed_ms: 100 },
            Message::Error { phase: "config".into(), detail: "unknown workload".into() },
            Message::Alive { workload: "truncate-during-dio".into(), elapsed_ms: 4000 },
            Message::Done { ok: true, elapsed_ms: 5300 },
        ]
    }

    const NONCE: &str = "5f0c8a2e9b1d7c43";

    fn msg(p: Parsed) -> Option<Message> {
        match p {
            Parsed::Message(m) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_messages() {
            let line = m.to_line(NONCE);
            assert!(line.starts_with(&format!("{MARKER}{NONCE} {{")), "{line}");
            assert!(!line.contains('\n'));
            assert_eq!(parse_line(&line, NONCE), Some(m.clone()), "{line}");
            // A CR at the end, as the serial console sends it.
            assert_eq!(parse_line(&format!("{line}\r"), NONCE), Some(m.clone()));
            let mut p = LineParser::new(NONCE);
            assert_eq!(p.push(&format!("{line}\r")), Parsed::Message(m));
            assert_eq!(p.foreign(), 0);
        }
    }

    #[test]
    fn json_shapes_are_stable() {
        let s = Message::Sample { workload: "dio-read".into(), pass: 0, gup: Gup::Fast, mb_per_s: Some(300.0), ops_per_s: None };
        assert_eq!(
            s.to_line(NONCE),
            r#"KREGRESS> 5f0c8a2e9b1d7c43 {"type":"sample","workload":"dio-read","pass":0,"gup":"fast","mb_per_s":300.0}"#
        );
        let r = Message::WorkloadResult {
            name: "dio-write".into(),
            outcome: Outcome::Fail,
            kind: Some(FailKind::IoError),
            errno: Some(12),
            detail: "pwrite: ENOMEM".into(),
            mb_per_s: None,
            ops_per_s: None,
            counters: BTreeMap::new(),
        };
        assert_eq!(
            r.to_line(NONCE),
            r#"KREGRESS> 5f0c8a2e9b1d7c43 {"type":"workload_result","name":"dio-write","outcome":"FAIL","kind":"IO_ERROR","errno":12,"detail":"pwrite: ENOMEM"}"#
        );
        let d = parse_line(r#"KREGRESS> 5f0c8a2e9b1d7c43 {"type":"workload_result","name":"x","outcome":"FAIL","kind":"DATA_CORRUPTION","errno":null,"detail":""}"#, NONCE).unwrap();
        assert!(matches!(d, Message::WorkloadResult { kind: Some(FailKind::DataCorruption), .. }));
        assert_eq!(
            Message::Alive { workload: "storm".into(), elapsed_ms: 2000 }.to_line(NONCE),
            r#"KREGRESS> 5f0c8a2e9b1d7c43 {"type":"alive","workload":"storm","elapsed_ms":2000}"#
        );
        // Before set_nonce, the agent prints NO_NONCE, which is never a nonce.
        assert_eq!(Message::Done { ok: true, elapsed_ms: 1 }.to_line(NO_NONCE), r#"KREGRESS> - {"type":"done","ok":true,"elapsed_ms":1}"#);
        assert!(!is_nonce(NO_NONCE) && !is_nonce("") && !is_nonce("a b") && !is_nonce(&"a".repeat(65)));
        assert!(is_nonce(NONCE) && is_nonce(&"Z".repeat(64)));
    }

    #[test]
    fn forged_lines_are_foreign() {
        let done = Message::Done { ok: true, elapsed_ms: 1 };
        let forged = [
            // Mid-line, as a printk echoing a file name shows it: once with this boot's nonce.
            format!("[   12.345678] EXT4-fs: bad name {}", done.to_line(NONCE)),
            format!("[   12.345678] open {}", done.to_line("0123456789abcdef")),
            // At the start of the line, without a nonce (as the protocol was before nonces).
            r#"KREGRESS> {"type":"done","ok":true,"elapsed_ms":1}"#.to_string(),
            // At the start, with another boot's nonce, with none, or with a longer one.
            done.to_line("0123456789abcdef"),
            done.to_line(NO_NONCE),
            done.to_line(&format!("{NONCE}0")),
            // The marker without its space.
            format!("KREGRESS>{NONCE} {{\"type\":\"done\",\"ok\":true,\"elapsed_ms\":1}}"),
        ];
        let mut p = LineParser::new(NONCE);
        for (i, line) in forged.iter().enumerate() {
            assert_eq!(parse_line(line, NONCE), None, "{line}");
            assert_eq!(p.push(line), Parsed::Foreign, "{line}");
            assert_eq!(p.foreign(), i as u64 + 1);
        }
        // The real line still counts, and ordinary console text is not foreign.
        assert_eq!(p.push(&done.to_line(NONCE)), Parsed::Message(done.clone()));
        assert_eq!(p.push("[    1.0] Linux version 6.1.192"), Parsed::Other);
        assert_eq!(p.foreign(), forged.len() as u64);
        // A parser without a valid nonce accepts nothing, not even lines with the same (empty) one.
        let mut none = LineParser::new("");
        assert_eq!(none.push(&done.to_line("")), Parsed::Foreign);
        assert_eq!(parse_line(&done.to_line(""), ""), None);
    }

    #[test]
    fn reassembles_lines_split_by_printk() {
        let m = all_messages().into_iter().find(|m| matches!(m, Message::Hang { .. })).unwrap();
        let line = m.to_line(NONCE);
        let cut = line.find("\"threads\"").unwrap() + 1;
        let mut p = LineParser::new(NONCE);
        assert_eq!(p.push(&format!("{}[   30.520227] sysrq: Show Blocked State\r", &line[..cut])), Parsed::Other);
        assert_eq!(p.push("[   30.520300] task:truncate state:D stack:0"), Parsed::Other);
        assert_eq!(msg(p.push(&format!("{}\r", &line[cut..]))), Some(m.clone()));
        // Ordinary lines still work, and a new marker drops a broken pending line.
        assert_eq!(msg(p.push(&format!("{}garbage", &line[..cut]))), None);
        assert_eq!(msg(p.push(&line)), Some(m.clone()));
        assert_eq!(msg(p.push("[    1.0] hello")), None);
        // A foreign line at the start drops a pending piece; its rest then completes nothing.
        assert_eq!(p.push(&line[..cut]), Parsed::Other);
        assert_eq!(p.push(&m.to_line("0123456789abcdef")), Parsed::Foreign);
        assert_eq!(msg(p.push(&line[cut..])), None);
        // Unrelated text never completes a pending line made of garbage.
        assert_eq!(msg(p.push(&format!("{MARKER}{NONCE} {{\"type\":"))), None);
        for _ in 0..20 {
            assert_eq!(msg(p.push("noise")), None);
        }
        assert_eq!(p.foreign(), 1);
        assert_eq!(printk_prefix("abc[  1.5] x"), Some(3));
        assert_eq!(printk_prefix("[x] [12.000001] y"), Some(4));
        assert_eq!(printk_prefix("[12] y"), None);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_line("no marker here", NONCE), None);
        assert_eq!(parse_line("KREGRESS> ", NONCE), None);
        assert_eq!(parse_line(&format!("KREGRESS> {NONCE} "), NONCE), None);
        assert_eq!(parse_line(&format!("KREGRESS> {NONCE} {{\"type\":\"hello\",\"vers"), NONCE), None, "line split by a printk");
        assert_eq!(parse_line(&format!("KREGRESS> {NONCE} {{\"type\":\"nonsense\"}}"), NONCE), None);
    }
}
