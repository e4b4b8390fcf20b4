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
