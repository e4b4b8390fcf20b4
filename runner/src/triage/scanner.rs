//! The streaming state machine: console lines in, finished reports out.
//!
//! A report opens on a header line and collects the lines printed by the
//! same context (same task or CPU with CONFIG_PRINTK_CALLER, else the whole
//! console) until it is over:
//! - the oops end marker (`---[ end trace ... ]---`, `---[ end Kernel panic`);
//! - the panic it caused, once the report has enough lines of its own;
//! - another report header in the same context;
//! - a message that prints a stack without being a bug (fault injection);
//! - [`MAX_LINES`] lines, [`IDLE_LINES`] console lines without a line of
//!   its own (its task went quiet), or the end of the log.
//!
//! Each line is looked at once and each report is named once when it
//! closes, so the whole scan is linear in the size of the log.

use super::clean::{clean_line, Cleaned, Context};
use super::patterns::{find_group, is_continuation, line_markers, Markers, GROUPS};
use super::title::{describe, normalize};
use super::Report;

/// A report longer than this is closed anyway (a flood of all-CPU backtraces).
pub(crate) const MAX_LINES: usize = 2000;

/// A report that got no line while this many went by is over.
pub(crate) const IDLE_LINES: usize = 1000;

/// A report's text stops growing at this many bytes (its lines are still
/// looked at): a report is named by its first lines.
pub(crate) const MAX_TEXT: usize = 256 << 10;

/// Open reports at once (one per printing context, rarely more).
const MAX_OPEN: usize = 16;

/// After a report ends, its panic or trailing "Oops" within this many lines
/// is part of it, not a new report.
const ABSORB_LINES: usize = 100;

/// Lines of a report before a following panic is taken as its end rather
/// than as part of it (a WARNING with panic_on_warn may print its stack
/// only after "Kernel panic").
const MIN_LINES: usize = 22;
/// KMSAN reports have no "Call Trace:" and fewer lines.
const MIN_LINES_KMSAN: usize = 16;

struct Open {
    group: usize,
    context: Context,
    start_line: usize,
    end_line: usize,
    /// Cleaned lines, '\n'-terminated.
    text: String,
    lines: usize,
    /// Lines counted towards MIN_LINES (not questionable, same context).
    counted: usize,
    min_lines: usize,
    /// After "Sending NMI from CPU": other CPUs' lines belong here too.
    cpu_traceback: bool,
}

/// Streaming console triage; see the module doc.
#[derive(Default)]
pub struct Scanner {
    line_no: usize,
    open: Vec<Open>,
    /// Context and line of the reports that ended recently.
    ended: Vec<(Context, usize)>,
}

impl Scanner {
    /// A scanner at the start of a console, with nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one console line (with or without its newline). Returns the
    /// reports that this line completed.
    pub fn push_line(&mut self, raw: &str) -> Vec<Report> {
        self.line_no += 1;
        let mut done = Vec::new();
        if self.line_no.is_multiple_of(64) {
            self.close_idle(&mut done);
        }
        let group = find_group(raw);
        if group.is_none() && self.open.is_empty() {
            return done; // the common case: quiet console
        }
        let line = clean_line(raw);
        let marks = line_markers(raw);
        // Reports this line belongs to, walked downwards so that removing
        // one keeps the others' indices valid.
        let Some(g) = group else {
            for i in (0..self.open.len()).rev() {
                if self.belongs(i, line.context) {
                    self.append(i, &line, marks, &mut done);
                }
            }
            return done;
        };
        let targets: Vec<usize> = (0..self.open.len()).rev().filter(|&i| self.belongs(i, line.context)).collect();
        // Continuation and weak headers join the report in progress.
        let joins = GROUPS[g].weak || is_continuation(raw);
        let strong_open = targets.iter().any(|&i| !GROUPS[self.open[i].group].weak);
        if joins && strong_open {
            for i in targets {
                self.append(i, &line, marks, &mut done);
            }
            return done;
        }
        if joins && targets.is_empty() && self.recently_ended(line.context) {
            return done; // the panic after a finished report
        }
        for i in targets {
            if GROUPS[self.open[i].group].weak {
                if !GROUPS[g].weak {
                    self.open.remove(i); // the real header is here
                    continue;
                }
            } else if matches!(line.context, Context::Task(_) | Context::Cpu(_)) {
                // With caller ids the task's report goes on through the
                // next one it prints, as syzkaller reads such logs: the
                // second oops often holds the first one's stack.
                self.append(i, &line, marks, &mut done);
                continue;
            }
            let old = self.open.remove(i);
            done.push(self.finish_report(old));
        }
        self.start(g, line);
        done
    }

    /// Closes the reports still open (e.g. the VM went quiet).
    pub(crate) fn flush(&mut self) -> Vec<Report> {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by_key(|r| r.start_line);
        open.into_iter().map(|r| self.finish_report(r)).collect()
    }

    /// End of the log: closes what is still open.
    pub fn finish(mut self) -> Vec<Report> {
        self.flush()
    }

    /// Ends reports whose context went quiet, and the oldest ones when too
    /// many are open, so that each line is checked against few reports.
    fn close_idle(&mut self, done: &mut Vec<Report>) {
        for i in (0..self.open.len()).rev() {
            if self.open[i].end_line + IDLE_LINES < self.line_no {
                let r = self.open.remove(i);
                done.push(self.finish_report(r));
            }
        }
        while self.open.len() > MAX_OPEN {
            let r = self.open.remove(0); // opened first
            done.push(self.finish_report(r));
        }
        // Only recent ends matter (one per context, and contexts are many under a storm).
        let now = self.line_no;
        self.ended.retain(|&(_, at)| now - at <= ABSORB_LINES);
    }

    fn belongs(&self, i: usize, context: Context) -> bool {
        let r = &self.open[i];
        r.context == context || (r.cpu_traceback && matches!(context, Context::Cpu(_)))
    }

    fn recently_ended(&self, context: Context) -> bool {
        self.ended.iter().any(|&(c, at)| c == context && self.line_no - at <= ABSORB_LINES)
    }

    fn start(&mut self, group: usize, line: Cleaned) {
        let min_lines = if line.text.contains("BUG: KMSAN:") { MIN_LINES_KMSAN } else { MIN_LINES };
        let mut text = String::with_capacity(4096);
        text.push_str(&line.text);
        text.push('\n');
        self.open.push(Open {
            group,
            context: line.context,
            start_line: self.line_no,
            end_line: self.line_no,
            text,
            lines: 1,
            counted: 1,
            min_lines,
            cpu_traceback: false,
        });
    }

    fn append(&mut self, i: usize, line: &Cleaned, marks: Markers, done: &mut Vec<Report>) {
        let r = &mut self.open[i];
        if !line.questionable {
            r.counted += 1;
        }
        if marks.taint_note {
            return;
        }
        if marks.nmi_backtrace {
            r.cpu_traceback = true;
        } else if marks.panic && r.counted > r.min_lines {
            // The panic this report caused: the report is complete.
            self.end(i, done);
            return;
        }
        if marks.stack_noise {
            // Its own stack would be taken for the report's.
            self.end(i, done);
            return;
        }
        if r.text.len() + line.text.len() < MAX_TEXT {
            r.text.push_str(&line.text);
            r.text.push('\n');
        }
        r.lines += 1;
        r.end_line = self.line_no;
        if marks.end_marker || r.lines >= MAX_LINES {
            self.end(i, done);
        }
    }

    fn end(&mut self, i: usize, done: &mut Vec<Report>) {
        let r = self.open.remove(i);
        // Keep the list short: only the last end per context matters.
        self.ended.retain(|&(c, _)| c != r.context);
        self.ended.push((r.context, self.line_no));
        done.push(self.finish_report(r));
    }

    fn finish_report(&self, r: Open) -> Report {
        let lines: Vec<&str> = r.text.lines().collect();
        let d = describe(&GROUPS[r.group], &lines);
        Report {
            title: normalize(&d.title),
            kind: d.kind,
            corrupted: d.corrupted,
            frame: d.frame,
            start_line: r.start_line,
            end_line: r.end_line,
            text: r.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::{parse, Kind};

    const WARN: &str = "\
[    7.3] ------------[ cut here ]------------
[    7.3] WARNING: CPU: 1 PID: 51 at mm/memremap.c:473 free_zone_device_page+0x13/0x8f
[    7.3] RIP: 0010:free_zone_device_page+0x13/0x8f
[    7.3] Call Trace:
[    7.3]  <TASK>
[    7.3]  ? __bio_release_pages+0x89/0xa3
[    7.3]  </TASK>
[    7.3] ---[ end trace 0000000000000000 ]---";

    #[test]
    fn report_completes_on_its_end_marker() {
        let mut s = Scanner::new();
        let mut got = Vec::new();
        for (i, line) in WARN.lines().enumerate() {
            let done = s.push_line(line);
            if i + 1 < WARN.lines().count() {
                assert!(done.is_empty(), "completed early at line {}", i + 1);
            }
            got.extend(done);
        }
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!((r.title.as_str(), r.kind, r.corrupted), ("WARNING in free_zone_device_page", Kind::Warn, false));
        assert_eq!((r.start_line, r.end_line), (2, 8));
        assert!(s.finish().is_empty());
    }

    #[test]
    fn panic_after_a_report_is_part_of_it() {
        let log = format!("{WARN}\n[    7.4] Kernel panic - not syncing: panic_on_warn set ...\n");
        let titles: Vec<String> = parse(&log).into_iter().map(|r| r.title).collect();
        assert_eq!(titles, ["WARNING in free_zone_device_page"]);
        // On its own, the panic is a report (whose header was lost).
        let alone = parse("[    7.4] Kernel panic - not syncing: panic_on_warn set ...\n");
        assert_eq!((alone[0].title.as_str(), alone[0].corrupted), ("kernel panic: panic_on_warn set", true));
    }

    #[test]
    fn strong_header_replaces_weak_one() {
        let log = "\
[    1.0] page:ffd4000000fdc000 refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x3f700
[    1.0] page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)
[    1.0] ------------[ cut here ]------------
[    1.0] kernel BUG at include/linux/mm.h:1180!
[    1.0] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[    1.0] RIP: 0010:try_grab_folio+0x1ab/0x1c0
[    1.0] Call Trace:
[    1.0]  <TASK>
[    1.0]  follow_page_pte+0x2b1/0x3f0
[    1.0]  </TASK>
[    1.0] ---[ end trace 0000000000000000 ]---
";
        let r = parse(log);
        assert_eq!(r.len(), 1, "{r:#?}");
        assert_eq!((r[0].title.as_str(), r[0].kind), ("kernel BUG in try_grab_folio", Kind::Crash));
        // Without a BUG after it, the page dump is reported by itself.
        let alone = parse(&log.lines().take(2).collect::<Vec<_>>().join("\n"));
        assert_eq!(alone[0].title, "BUG: page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == NUM)");
    }

    #[test]
    fn interleaved_tasks_are_told_apart() {
        let log = "\
[   10.0][  T100] INFO: task fio:100 blocked for more than 120 seconds.
[   10.0][  T200] WARNING: CPU: 0 PID: 200 at mm/gup.c:224 try_grab_page+0x1f/0x84
[   10.0][  T100] Call Trace:
[   10.0][  T200] RIP: 0010:try_grab_page+0x1f/0x84
[   10.0][  T100]  __schedule+0x1/0x2
[   10.0][  T200] Call Trace:
[   10.0][  T100]  schedule+0x1/0x2
[   10.0][  T200]  follow_page_pte+0x2b1/0x3f0
[   10.0][  T100]  rwsem_down_write_slowpath+0x1/0x2
[   10.0][  T200] ---[ end trace 0000000000000000 ]---
[   10.0][  T100]  ext4_break_layouts+0x1/0x2
";
        let titles: Vec<(String, Kind)> = parse(log).into_iter().map(|r| (r.title, r.kind)).collect();
        assert_eq!(
            titles,
            [("INFO: task hung in ext4_break_layouts".to_string(), Kind::Hang), ("WARNING in try_grab_page".to_string(), Kind::Warn)]
        );
    }

    #[test]
    fn streaming_and_whole_log_agree() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/corpus/kregress/debian-6.1.192-gup-fast-devmap-noref.console.log");
        let log = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("kregress console {path} missing: {e}"));
        let mut s = Scanner::new();
        let mut streamed: Vec<Report> = log.lines().flat_map(|l| s.push_line(l)).collect();
        streamed.extend(s.finish());
        assert_eq!(streamed, parse(&log));
        assert_eq!(streamed.len(), 2);
    }

    #[test]
    fn quiet_context_closes_its_report() {
        let mut s = Scanner::new();
        assert!(s.push_line("[    1.0][  T5] INFO: task a:5 blocked for more than 120 seconds.").is_empty());
        let done: Vec<Report> = (0..IDLE_LINES + 64).flat_map(|_| s.push_line("[    1.0][  T6] chatter")).collect();
        assert_eq!(done.len(), 1);
        assert!(done[0].corrupted, "no stack: {:?}", done[0]);
    }
}
