//! Progress for long work: an indicatif spinner on a terminal, plain
//! timestamped lines otherwise (CI logs), never both.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    last_plain: Instant,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix}: {wide_msg}").unwrap());
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { bar, label: label.to_string(), started: Instant::now(), last_plain: Instant::now() }
    }

    /// A new phase ("config", "make"): always shown.
    pub fn phase(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => eprintln!("[{:>6.1}s] {}: {msg}", self.started.elapsed().as_secs_f64(), self.label),
        }
    }

    /// Detail within a phase (the file being compiled): on a terminal at
    /// once, in plain mode at most once a minute as a heartbeat.
    pub fn detail(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None if self.last_plain.elapsed() > Duration::from_secs(60) => {
                self.last_plain = Instant::now();
                eprintln!("[{:>6.1}s] {}: {msg}", self.started.elapsed().as_secs_f64(), self.label);
            }
            None => {}
        }
    }

    pub fn finish(self, msg: &str) {
        match self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None => eprintln!("[{:>6.1}s] {}: {msg}", self.started.elapsed().as_secs_f64(), self.label),
        }
    }
}

/// Cells done out of a total, with failures so far: a bar on a terminal,
/// one line per event otherwise. Shared by the run's worker threads.
pub struct Counter {
    bar: Option<ProgressBar>,
    failures: std::sync::atomic::AtomicU64,
}

impl Counter {
    pub fn new(what: &str, total: u64) -> Counter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(&format!("[{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what}, {{prefix}} {{wide_msg}}"))
                    .unwrap(),
            );
            b.set_prefix("0 failed");
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Counter { bar, failures: Default::default() }
    }

    /// Something started (a boot): the bar's message, or a plain line.
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => eprintln!("{msg}"),
        }
    }

    /// One item finished; `failed` counts it among the failures.
    pub fn done(&self, line: &str, failed: bool) {
        let f = self.failures.fetch_add(failed as u64, std::sync::atomic::Ordering::SeqCst) + failed as u64;
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.set_prefix(format!("{f} failed"));
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
