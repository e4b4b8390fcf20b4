//! Console triage: finds the kernel reports in a console log and names them.
//!
//! The title of a report is the identity of a bug everywhere in kregress
//! (comparison, bisection, nightly reports), so titles follow syzkaller's
//! format: `WARNING in free_zone_device_page`, `KASAN: use-after-free Read
//! in foo`, `INFO: task hung in ext4_break_layouts`, `possible deadlock in
//! bar`. The same bug gets the same title on every run: addresses, offsets,
//! line numbers and ids are normalized away.
//!
//! - [`clean`]: strips printk prefixes and console noise, tells the context.
//! - [`patterns`]: the tables of report types, title formats, skip lists.
//! - [`stack`]: finds the guilty frame in stack traces.
//! - [`title`]: names a report and normalizes the name.
//! - [`scanner`]: the streaming line-by-line state machine.
//!
//! ```
//! use kregress::triage::{parse, Kind};
//! let log = "[    7.3] WARNING: CPU: 1 PID: 51 at mm/gup.c:224 try_grab_page+0x1f/0x84\n\
//!            [    7.3] RIP: 0010:try_grab_page+0x1f/0x84\n\
//!            [    7.3] Call Trace:\n\
//!            [    7.3]  follow_page_pte+0x2b1/0x3f0\n\
//!            [    7.3] ---[ end trace 0000000000000000 ]---\n";
//! let reports = parse(log);
//! assert_eq!(reports[0].title, "WARNING in try_grab_page");
//! assert_eq!(reports[0].kind, Kind::Warn);
//! ```

pub mod clean;
pub mod patterns;
pub mod scanner;
pub mod stack;
pub mod title;

use serde::{Deserialize, Serialize};

pub use scanner::Scanner;

/// What kind of failure a report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// Oops, BUG, kernel BUG at, general protection fault, panic.
    Crash,
    /// WARN_ON and friends, refcount_t warnings.
    Warn,
    /// Hung task, soft lockup, RCU stall, workqueue lockup.
    Hang,
    /// Lockdep: possible deadlock, inconsistent lock state, locking bugs.
    Lockdep,
    /// Sleeping in atomic context.
    AtomicSleep,
    /// KASAN, KFENCE, KMSAN, bad paging requests, corrupted lists.
    MemorySafety,
    /// KCSAN.
    DataRace,
    /// UBSAN reports other than out-of-bounds accesses.
    Ubsan,
    /// kmemleak.
    Leak,
    /// The machine rebooted under the test.
    Reboot,
    /// Anything else that still is a failure (tooling errors).
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Crash => "CRASH",
            Kind::Warn => "WARN",
            Kind::Hang => "HANG",
            Kind::Lockdep => "LOCKDEP",
            Kind::AtomicSleep => "ATOMIC_SLEEP",
            Kind::MemorySafety => "MEMORY_SAFETY",
            Kind::DataRace => "DATA_RACE",
            Kind::Ubsan => "UBSAN",
            Kind::Leak => "LEAK",
            Kind::Reboot => "REBOOT",
            Kind::Other => "OTHER",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kernel report found in a console log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// syzkaller-style title, stable across runs.
    pub title: String,
    pub kind: Kind,
    /// The report is cut, interleaved with another, or lacks its stack.
    pub corrupted: bool,
    /// The guilty function named in the title, if any.
    pub frame: Option<String>,
    /// 1-based line numbers in the log: the header and the last line taken.
    pub start_line: usize,
    pub end_line: usize,
    /// The report's lines, cleaned of printk prefixes.
    pub text: String,
}

/// All reports in a whole log, in the order they start.
pub fn parse(log: &str) -> Vec<Report> {
    let mut scanner = Scanner::new();
    let mut reports = Vec::new();
    let log = log.strip_suffix('\n').unwrap_or(log);
    for line in log.split('\n') {
        reports.extend(scanner.push_line(line));
    }
    reports.extend(scanner.finish());
    reports.sort_by_key(|r| r.start_line);
    reports
}
