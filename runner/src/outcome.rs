//! What became of one cell: its [`Outcome`] and, for a FAIL, its
//! [`FailKind`]. The words a scenario's `expect` and a run's results share,
//! so they sit below both ([`crate::scenario`], [`crate::results`]).

use serde::{Deserialize, Serialize};

/// KCIDB-style status of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Pass,
    Fail,
    /// The kernel under test did not build or boot.
    Error,
    /// The harness failed (QEMU missing, agent protocol broken, DAX not active).
    Miss,
    Skip,
}

/// What kind of failure a FAIL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailKind {
    Crash,
    Warn,
    Hang,
    DataCorruption,
    IoError,
}

impl Outcome {
    /// The kernel's fault: FAIL, or ERROR (it did not build or boot).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Error)
    }
}
