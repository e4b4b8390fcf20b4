//! kregress: builds Linux kernels with and without a fix, boots each in QEMU
//! with emulated persistent memory, runs DAX + O_DIRECT workloads that pin
//! ZONE_DEVICE pages through GUP, and compares what happened.
//!
//! The pipeline, one stage per module (docs/ARCHITECTURE.md has the map):
//!
//! ```text
//! scenario → kernel → image → vm → run → triage → results → compare/rules → post
//!   → report (pure renderers) / nightly / bisect / replay / reduce / seeds (storm sessions)
//! ```
//!
//! Below them, with no import of anything above: `outcome`, `stats`, `text`,
//! `error` (one error type, one exit-code table), `cache`, `proc`, `ui`, `yaml`.

pub mod bisect;
pub mod cache;
pub mod compare;
pub mod console;
pub mod cli;
pub mod error;
pub mod fsimage;
pub mod image;
pub mod nightly;
pub mod post;
pub mod reduce;
pub mod outcome;
pub mod kernel;
pub mod proc;
pub mod replay;
pub mod report;
pub mod results;
pub mod rules;
pub mod run;
pub mod scenario;
pub mod seeds;
pub mod stats;
pub mod text;
pub mod triage;
pub mod ui;
pub mod vm;
pub mod yaml;
