//! Console triage: finds the kernel reports in a console log and names them.
//!
//! The title of a report is the identity of a bug everywhere in kregress
//! (comparison, bisection, nightly reports), so titles follow syzkaller's
//! format: `WARNING in free_zone_device_page`, `KASAN: use-after-free Read
//! in foo`, `INFO: task hung in ext4_break_layouts`, `possible deadlock in
//! bar`. The same bug gets the same title on every run: addresses, offsets,
//! line numbers and ids are normalized away.
//!
//! - `clean`: strips printk prefixes and console noise, tells the context.
//! - `patterns`: the tables of report types, title formats, skip lists.
//! - `stack`: finds the guilty frame in stack traces.
//! - `title`: names a report and normalizes the name.
//! - `scanner`: the streaming line-by-line state machine.
//! - [`Reports`]: what a console held, in bounded memory however many
//!   reports it printed.
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

pub(crate) mod clean;
pub(crate) mod patterns;
pub(crate) mod scanner;
pub(crate) mod stack;
pub(crate) mod title;

use serde::Serialize;
use std::collections::HashMap;

pub use scanner::Scanner;

/// What kind of failure a report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

crate::text::named!(Kind {
    Crash => "CRASH",
    Warn => "WARN",
    Hang => "HANG",
    Lockdep => "LOCKDEP",
    AtomicSleep => "ATOMIC_SLEEP",
    MemorySafety => "MEMORY_SAFETY",
    DataRace => "DATA_RACE",
    Ubsan => "UBSAN",
    Leak => "LEAK",
    Reboot => "REBOOT",
    Other => "OTHER",
});

/// One kernel report found in a console log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// syzkaller-style title, stable across runs.
    pub title: String,
    /// What kind of report (CRASH, WARN, HANG, KASAN, ...), from the pattern that matched.
    pub kind: Kind,
    /// The report is cut, interleaved with another, or lacks its stack.
    pub corrupted: bool,
    /// The guilty function named in the title, if any.
    pub frame: Option<String>,
    /// 1-based line number in the log of the report's header line.
    pub start_line: usize,
    /// 1-based line number in the log of the last line taken into the report.
    pub end_line: usize,
    /// The report's lines, cleaned of printk prefixes.
    pub text: String,
}

/// The reports of one console in bounded memory, however many the kernel
/// printed (a WARN storm prints the same report thousands of times): the
/// first [`Reports::KEEP`] whole; after them the first of each title (up to
/// [`Reports::KEEP_TITLES`] titles) or kind not kept yet, its text cut to
/// [`Reports::LATE_TEXT`] bytes; every other report is only counted.
#[derive(Debug, Default)]
pub struct Reports {
    /// The reports kept, in the order they were completed.
    pub kept: Vec<Report>,
    /// Per title kept: how many reports had it, kept or not.
    counts: HashMap<String, usize>,
    kinds: Vec<Kind>,
    /// Reports dropped whose title was not kept either.
    pub others: usize,
}

impl Reports {
    /// Reports kept whole: the first 100 of a console.
    pub const KEEP: usize = 100;
    /// Most distinct titles kept once [`Reports::KEEP`] reports are.
    pub const KEEP_TITLES: usize = 1000;
    /// Bytes of text kept of each report after the first [`Reports::KEEP`].
    pub const LATE_TEXT: usize = 4096;

    /// Takes a finished report: kept, cut or only counted, by the rules above.
    pub fn push(&mut self, mut r: Report) {
        if let Some(n) = self.counts.get_mut(&r.title) {
            *n += 1;
            if self.kept.len() >= Self::KEEP {
                return;
            }
        } else if self.kept.len() >= Self::KEEP {
            if self.counts.len() >= Self::KEEP_TITLES && self.kinds.contains(&r.kind) {
                self.others += 1;
                return;
            }
            if r.text.len() > Self::LATE_TEXT {
                let mut cut = Self::LATE_TEXT;
                while !r.text.is_char_boundary(cut) {
                    cut -= 1;
                }
                r.text.truncate(cut);
            }
            self.counts.insert(r.title.clone(), 1);
        } else {
            self.counts.insert(r.title.clone(), 1);
        }
        if !self.kinds.contains(&r.kind) {
            self.kinds.push(r.kind);
        }
        self.kept.push(r);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// How many reports had `title`, kept or not (0 for a title not kept).
    pub(crate) fn count(&self, title: &str) -> usize {
        self.counts.get(title).copied().unwrap_or(0)
    }

    /// Every report seen.
    pub fn total(&self) -> usize {
        self.counts.values().sum::<usize>() + self.others
    }

    /// Titles with reports that were not kept, and how many, most first.
    pub(crate) fn omitted(&self) -> Vec<(String, usize)> {
        let mut kept: HashMap<&str, usize> = HashMap::new();
        for r in &self.kept {
            *kept.entry(r.title.as_str()).or_default() += 1;
        }
        let mut v: Vec<(String, usize)> =
            self.counts.iter().map(|(t, n)| (t.clone(), n - kept[t.as_str()])).filter(|(_, omitted)| *omitted > 0).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

impl FromIterator<Report> for Reports {
    fn from_iter<I: IntoIterator<Item = Report>>(iter: I) -> Self {
        let mut r = Reports::default();
        for x in iter {
            r.push(x);
        }
        r
    }
}

/// The reports of a console read from `input` as it comes, in bounded memory.
pub(crate) fn scan(mut input: impl std::io::Read) -> std::io::Result<Reports> {
    let mut scanner = Scanner::new();
    let mut reports = Reports::default();
    let mut lines = crate::console::Lines::default();
    let mut buf = vec![0; crate::console::CHUNK];
    let mut each = |line: &str| {
        scanner.push_line(line).into_iter().for_each(|r| reports.push(r));
        true
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines.push(&buf[..n], &mut each);
    }
    lines.finish(&mut each);
    scanner.finish().into_iter().for_each(|r| reports.push(r));
    Ok(reports)
}

/// The reports in a whole log, in the order they start: all of them when
/// there are few, else those [`Reports`] keeps.
pub fn parse(log: &str) -> Vec<Report> {
    let mut reports = scan(log.as_bytes()).expect("reading memory does not fail").kept;
    reports.sort_by_key(|r| r.start_line);
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUG: &str = "[    1.000000] BUG: unable to handle page fault for address: ffffffffff600000\n";

    #[test]
    fn a_storm_of_reports_is_counted_not_kept() {
        // 20 000 one-line reports, then one of another kind: 100 kept, the rest counted.
        let mut log = BUG.repeat(20_000);
        log += "[    2.000000] WARNING: CPU: 0 PID: 1 at mm/gup.c:1 try_grab_page+0x1/0x2\n";
        let r = scan(log.as_bytes()).unwrap();
        assert_eq!(r.kept.len(), Reports::KEEP + 1);
        assert_eq!(r.total(), 20_001);
        let title = r.kept[0].title.clone();
        assert_eq!(r.count(&title), 20_000);
        assert_eq!(r.omitted(), [(title, 20_000 - Reports::KEEP)]);
        assert_eq!(r.kept.last().unwrap().kind, Kind::Warn);
        assert_eq!(r.others, 0);
    }

    #[test]
    fn titles_beyond_the_cap_are_counted_unless_of_a_new_kind() {
        let report = |title: String, kind| Report {
            title,
            kind,
            corrupted: false,
            frame: None,
            start_line: 1,
            end_line: 1,
            text: "x".repeat(10_000),
        };
        let mut r = Reports::default();
        for i in 0..Reports::KEEP + Reports::KEEP_TITLES + 10 {
            r.push(report(format!("WARNING in f{i}"), Kind::Warn));
        }
        assert_eq!(r.kept.len(), Reports::KEEP_TITLES);
        assert_eq!(r.others, Reports::KEEP + 10);
        assert!(r.kept[..Reports::KEEP].iter().all(|k| k.text.len() == 10_000));
        assert!(r.kept[Reports::KEEP..].iter().all(|k| k.text.len() == Reports::LATE_TEXT));
        r.push(report("kernel BUG in g".into(), Kind::Crash));
        assert_eq!(r.kept.last().unwrap().title, "kernel BUG in g");
    }
}
