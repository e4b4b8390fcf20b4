//! kregress-agent: the guest side of kregress.
//!
//! The library holds what the runner and the agent share: the wire protocol
//! ([`protocol`]: `KREGRESS> NONCE {json}` console lines) and the guest configuration
//! carried on the kernel command line ([`config`]). The binary (`src/main.rs`
//! and its modules: setup, workloads, hang, sys) is the static PID-1 agent itself.

#![warn(missing_docs)]

pub mod config;
pub mod protocol;

pub use config::{Backend, ConfigError, Fs, GuestConfig, Mapping, Mode, StormOp, WorkloadKind, WorkloadSpec};
pub use protocol::{errno_name, parse_line, FailKind, Gup, LineParser, Message, Outcome, Parsed, ThreadStack, MARKER, PROTOCOL_VERSION};

/// Agent version, reported in `hello`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
