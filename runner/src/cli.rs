//! The command line: each subcommand parses its arguments, calls the modules
//! that do the work and prints their plain results (text or --json).

use crate::error::{Class, Error, Result};
use crate::kernel::{self, KernelSpec};
use crate::scenario;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "kregress", version, about = "QEMU-driven kernel regression suite for pmem/DAX and GUP bugs")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Check a scenario file without building anything.
    Validate { scenario: PathBuf },
    /// Build the kernels of a scenario's variants (cached).
    Build {
        scenario: PathBuf,
        /// Build only this variant (repeatable).
        #[arg(long = "variant")]
        variants: Vec<String>,
        /// Parallel make jobs (default: cores + 1).
        #[arg(short, long)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) + 1
}

pub fn main(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Validate { scenario } => {
            let s = scenario::load(&scenario)?;
            println!(
                "{}: ok: scenario {}, {} variant(s): {}",
                scenario.display(),
                s.name,
                s.variants.len(),
                s.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
            );
            Ok(0)
        }
        Cmd::Build { scenario, variants, jobs, json } => build(&scenario, &variants, jobs.unwrap_or_else(default_jobs), json),
    }
}

fn build(file: &PathBuf, only: &[String], jobs: usize, json: bool) -> Result<i32> {
    let s = scenario::load(file)?;
    let mut rows = Vec::new();
    let mut first_err: Option<Error> = None;
    for v in s.select(only)? {
        match kernel::build(&KernelSpec::new(&s, v), jobs) {
            Ok(a) => {
                if !json {
                    println!(
                        "{}: {} in {:.1} s\n  bzImage {}\n  config  {}\n  log     {}",
                        a.variant,
                        if a.cache_hit { "cache hit" } else { "built" },
                        a.seconds,
                        a.bzimage.display(),
                        a.config.display(),
                        a.log.display()
                    );
                }
                rows.push(serde_json::json!({
                    "variant": a.variant, "bzimage": a.bzimage, "config": a.config,
                    "log": a.log, "cache_hit": a.cache_hit, "seconds": a.seconds,
                }));
            }
            // Bad input or a broken host stops everything; a kernel that does
            // not build is a result (ERROR) and the other variants still build.
            Err(e) if e.class == Class::Kernel => {
                eprintln!("{}: ERROR: {}", v.name, e);
                rows.push(serde_json::json!({"variant": v.name, "error": e.msg}));
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap());
    }
    Ok(first_err.map(|e| e.exit_code()).unwrap_or(0))
}
