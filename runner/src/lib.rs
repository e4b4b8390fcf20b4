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

#![deny(missing_docs)]

mod bisect;
pub mod cache;
pub mod cli;
mod compare;
pub mod console;
pub mod error;
mod fsimage;
pub mod image;
pub mod kernel;
mod lava;
mod merge;
pub mod nightly;
pub mod outcome;
pub mod post;
pub mod proc;
mod reduce;
mod replay;
pub mod report;
pub mod results;
mod rules;
mod run;
pub mod scenario;
mod seeds;
mod stats;
mod text;
pub mod triage;
mod ui;
pub mod vm;
mod yaml;
