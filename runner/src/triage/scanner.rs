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
pub const MAX_LINES: usize = 2000;

/// A report that got no line while this many went by is over.
pub const IDLE_LINES: usize = 1000;

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
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one console line (with or without its newline). Returns the
    /// reports that this line completed.
    pub fn push_line(&mut self, raw: &str) -> Vec<Report> {
        self.line_no += 1;
        let mut done = Vec::new();
        if self.line_no % 64 == 0 {
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
    pub fn flush(&mut self) -> Vec<Report> {
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
        r.text.push_str(&line.text);
        r.text.push('\n');
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
