//! What became of one cell: its [`Outcome`] and, for a FAIL, its
//! [`FailKind`]. The words a scenario's `expect` and a run's results share,
//! so they sit below both ([`crate::scenario`], [`crate::results`]).

/// KCIDB-style status of a cell (KCIDB's own names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The workload finished and the kernel reported nothing.
    Pass,
    /// The kernel under test misbehaved: a report, a hang, bad data or an I/O error (see [`FailKind`]).
    Fail,
    /// The kernel under test did not build or boot.
    Error,
    /// The harness failed (QEMU missing, agent protocol broken, DAX not active).
    Miss,
    /// The agent skipped the workload: the kernel, its config or the mode lacks what it needs.
    Skip,
}

crate::text::named!(Outcome { Pass => "PASS", Fail => "FAIL", Error => "ERROR", Miss => "MISS", Skip => "SKIP" });

/// What kind of failure a FAIL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// An oops, BUG, panic, memory-safety report (KASAN) or unexpected reboot.
    Crash,
    /// A WARNING or another non-fatal kernel report (lockdep, KCSAN, UBSAN, a leak).
    Warn,
    /// The guest stopped answering: a hung task, soft lockup, RCU stall or the run deadline.
    Hang,
    /// The workload read back other bytes than it wrote.
    DataCorruption,
    /// A read or write the workload did failed.
    IoError,
}

crate::text::named!(FailKind { Crash => "CRASH", Warn => "WARN", Hang => "HANG", DataCorruption => "DATA_CORRUPTION", IoError => "IO_ERROR" });

impl Outcome {
    /// The kernel's fault: FAIL, or ERROR (it did not build or boot).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_spelled_once_for_people_and_files() {
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_string(o).unwrap(), format!("\"{o}\""));
            assert_eq!(serde_json::from_str::<Outcome>(&format!("\"{}\"", o.as_str())).unwrap(), *o);
        }
        assert_eq!(FailKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(), ["CRASH", "WARN", "HANG", "DATA_CORRUPTION", "IO_ERROR"]);
        assert_eq!(serde_json::from_str::<FailKind>("\"IO_ERROR\"").unwrap(), FailKind::IoError);
        let e = serde_json::from_str::<FailKind>("\"Warn\"").unwrap_err().to_string();
        assert!(e.starts_with("unknown variant `Warn`, expected one of `CRASH`, `WARN`, `HANG`, `DATA_CORRUPTION`, `IO_ERROR`"), "{e}");
        let e = serde_json::from_str::<Outcome>("7").unwrap_err().to_string();
        assert!(e.contains("expected one of `PASS` `FAIL` `ERROR` `MISS` `SKIP`"), "{e}");
    }
}
