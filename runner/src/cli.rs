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
    /// Boot the scenario's cells and judge them against its expectations.
    Run {
        scenario: PathBuf,
        /// Select cells, e.g. variant=fixed,backend=nvdimm,fs=xfs,mapping=pte,workload=dio-read
        #[arg(long, default_value = "")]
        only: String,
        /// Runs per cell (default: the scenario's `run.runs`).
        #[arg(long)]
        runs: Option<u32>,
        /// Continue a run: only the cells missing from results/RUN_ID run.
        #[arg(long)]
        resume: Option<String>,
        /// auto probes KVM once per host and falls back to TCG.
        #[arg(long, value_enum, default_value = "auto")]
        accel: AccelArg,
        /// Where runs are stored.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Guests at once (default: one per two cores and 4 GiB of memory).
        #[arg(short, long)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Compare the variants inside one run, or the same cells across two runs (old, new).
    Compare {
        #[arg(required = true, num_args = 1..=2)]
        runs: Vec<String>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Run scenarios and compare every cell with the previous nightly; exit 1 on a regression.
    Nightly {
        /// Scenario files (default: every scenarios/*.yaml, historical/ excluded).
        scenarios: Vec<PathBuf>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// `last` (the previous nightly of each scenario), `none`, or a run id.
        #[arg(long, default_value = "last")]
        baseline: String,
        /// Nights in the throughput charts and reference.
        #[arg(long, default_value_t = 14)]
        history: usize,
        /// Also write one combined report of all scenarios here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        accel: AccelArg,
        #[arg(short, long)]
        jobs: Option<usize>,
    },
    /// Render the nightly report (summary.md, report.html, junit.xml, kcidb.json) of stored runs.
    Report {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "last")]
        baseline: String,
        #[arg(long, default_value_t = 14)]
        history: usize,
        /// One combined report here instead of one in each RUN_DIR/report.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Find the commit that broke one cell: git bisect driven by kernel builds and VM runs.
    Bisect {
        scenario: PathBuf,
        /// The git repository to bisect (kregress clones it; your checkout is never touched).
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        good: String,
        #[arg(long)]
        bad: String,
        /// The one cell, e.g. backend=memmap,fs=ext4,mapping=pte,workload=truncate-during-dio
        #[arg(long)]
        only: String,
        /// Whose patches go on top of every commit (default: the first variant).
        #[arg(long)]
        variant: Option<String>,
        /// Failure title that makes a run bad (default: the one BAD shows).
        #[arg(long)]
        signature: Option<String>,
        /// Most VM runs per step.
        #[arg(long, default_value_t = 10)]
        max_runs: u32,
        /// Throughput bisection on this metric (mb_per_s or ops_per_s).
        #[arg(long)]
        metric: Option<String>,
        /// With --metric: bad below GOOD's median by more than this, e.g. -10%.
        #[arg(long, default_value = "-10%", allow_hyphen_values = true)]
        threshold: String,
        #[arg(long, value_enum, default_value = "auto")]
        accel: AccelArg,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Parallel make jobs (default: cores + 1).
        #[arg(short, long)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Boot again exactly what a cell booted (bzImage, initramfs and QEMU's arguments, checked by hash) and judge it.
    Replay {
        /// A cell's directory (results/RUN/VARIANT/AXES/runN) or a bundle (.tar.gz).
        target: PathBuf,
        /// A new directory for the replay (default: replay-TIME in the cell's directory, or BUNDLE-replay-TIME here).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pack a cell (kernel, .config, initramfs, QEMU's command, console, result, README) into one tar.gz.
    Bundle {
        /// A cell's directory (results/RUN/VARIANT/AXES/runN).
        cell: PathBuf,
        /// The bundle (default: kregress-RUN-CELL.tar.gz here).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Find kernel reports (WARNING, BUG, hung task...) in a saved console log.
    Triage {
        console: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelArg> for crate::vm::Accel {
    fn from(a: AccelArg) -> Self {
        match a {
            AccelArg::Auto => crate::vm::Accel::Auto,
            AccelArg::Kvm => crate::vm::Accel::Kvm,
            AccelArg::Tcg => crate::vm::Accel::Tcg,
        }
    }
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) + 1
}

/// TCG guests are CPU-bound (2 vCPUs each) and take 3 GiB: one guest per two
/// cores and 4 GiB, at least one.
pub fn default_vms() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok()))
        .map(|kib| kib >> 20)
        .unwrap_or(4);
    (cores / 2).min(mem_gib / 4).max(1)
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
        Cmd::Run { scenario, only, runs, resume, accel, results, jobs, json } => {
            let s = scenario::load(&scenario)?;
            if let Some(n) = runs {
                scenario::check_runs(n).map_err(|m| crate::error::bad_input(format!("--runs: {m}")))?;
            }
            let opts = crate::run::RunOpts {
                only: scenario::Filter::parse(&only)?,
                runs,
                resume,
                accel: accel.into(),
                results_root: results,
                jobs: jobs.unwrap_or_else(default_vms),
            };
            let rec = crate::run::run(&s, &opts)?;
            let unexpected = |c: &crate::results::CellResult| !crate::run::as_expected(&s, c);
            let floors = crate::rules::NoiseFloors::of(&rec);
            let verdicts = crate::compare::compare_variants(&rec, &floors)?;
            let summary = crate::report::summary_md(&rec, &verdicts, &floors.note(), unexpected);
            crate::cache::write_atomic(&rec.results_dir.join("summary.md"), summary.as_bytes())?;
            crate::cache::write_atomic(&rec.results_dir.join("verdicts.json"), &serde_json::to_vec_pretty(&verdicts).unwrap())?;
            if json {
                let mut v = serde_json::to_value(&rec).unwrap();
                v["verdicts"] = serde_json::to_value(&verdicts).unwrap();
                v["noise_floors"] = serde_json::to_value(&floors).unwrap();
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                println!("{summary}");
            }
            let n_unexpected = rec.cells.iter().filter(|c| unexpected(c)).count();
            let missed = rec.cells.iter().any(|c| c.outcome == crate::results::Outcome::Miss);
            Ok(if missed { 3 } else if n_unexpected > 0 { 1 } else { 0 })
        }
        Cmd::Compare { runs, results } => {
            let dirs: Vec<PathBuf> = runs.iter().map(|r| crate::results::find(&results, r)).collect::<Result<_>>()?;
            let recs: Vec<crate::results::RunRecord> = dirs.iter().map(|d| crate::results::load(d)).collect::<Result<_>>()?;
            if let [old, new] = recs.as_slice() {
                if old.scenario != new.scenario {
                    return Err(crate::error::bad_input(format!(
                        "compare: {} is a run of scenario {}, {} of scenario {}: only runs of one scenario are compared",
                        dirs[0].display(),
                        old.scenario,
                        dirs[1].display(),
                        new.scenario
                    )));
                }
            }
            let floors = crate::rules::NoiseFloors::of(recs.last().unwrap());
            let verdicts = match recs.as_slice() {
                [one] => crate::compare::compare_variants(one, &floors)?,
                [old, new] => crate::compare::compare_runs(old, new, &floors)?,
                _ => return Err(crate::error::bad_input("compare: give one run (variants within it) or two (old, new)")),
            };
            println!("noise floor: {}\n\n{}", floors.note(), crate::compare::render_table(&verdicts));
            Ok(0)
        }
        Cmd::Nightly { scenarios, results, baseline, history, out, accel, jobs } => {
            let accel = accel.into();
            let opts = crate::nightly::NightlyOpts { results, baseline: crate::nightly::Baseline::parse(&baseline), history, out, accel, jobs: jobs.unwrap_or_else(default_vms) };
            crate::nightly::nightly(&scenarios, &opts)
        }
        Cmd::Report { runs, baseline, history, out } => crate::report::report_cmd(&runs, &crate::nightly::Baseline::parse(&baseline), history, out.as_deref()),
        Cmd::Bisect { scenario, repo, good, bad, only, variant, signature, max_runs, metric, threshold, accel, results, jobs, json } => {
            let threshold_pct: f64 = threshold
                .trim_end_matches('%')
                .parse()
                .map_err(|_| crate::error::bad_input(format!("--threshold {threshold}: give a percentage such as -10%")))?;
            let opts = crate::bisect::BisectOpts {
                scenario,
                repo,
                good,
                bad,
                only,
                variant,
                signature,
                max_runs,
                metric,
                threshold_pct,
                accel: accel.into(),
                results_root: results,
                jobs: jobs.unwrap_or_else(default_jobs),
            };
            let r = crate::bisect::run(&opts)?;
            if json {
                let mut v = serde_json::to_value(&r).unwrap();
                v["culprit"] = match &r.culprit {
                    Some(c) => serde_json::json!({"commit": c.commit, "subject": c.subject, "author": c.author}),
                    None => serde_json::Value::Null,
                };
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                println!("{}", crate::bisect::markdown(&r));
                println!("results: {}", r.results_dir.display());
            }
            Ok(0)
        }
        Cmd::Replay { target, out } => crate::replay::replay_cmd(&target, out.as_deref()),
        Cmd::Bundle { cell, output } => {
            let out = crate::replay::bundle::pack(&cell, output.as_deref())?;
            println!("{}", out.display());
            Ok(0)
        }
        Cmd::Triage { console, json } => {
            let bad = |e: std::io::Error| crate::error::bad_input(format!("{}: {e}", console.display()));
            let found = crate::triage::scan(std::fs::File::open(&console).map_err(bad)?).map_err(bad)?;
            let mut reports = found.kept.iter().collect::<Vec<_>>();
            reports.sort_by_key(|r| r.start_line);
            let omitted = found.omitted();
            if json {
                let omitted: Vec<_> = omitted.iter().map(|(t, n)| serde_json::json!({"title": t, "count": n})).collect();
                let v = serde_json::json!({ "reports": reports, "omitted": omitted, "omitted_other": found.others });
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else if reports.is_empty() {
                println!("{}: no kernel reports", console.display());
            } else {
                for r in &reports {
                    println!("{}:{}: {} [{}]{}", console.display(), r.start_line, r.title, r.kind, if r.corrupted { " (corrupted)" } else { "" });
                }
                for (t, n) in &omitted {
                    println!("{}: {n} more reports titled {t} not listed", console.display());
                }
                if found.others > 0 {
                    println!("{}: {} more reports with other titles not listed", console.display(), found.others);
                }
            }
            Ok(0)
        }
    }
}

fn build(file: &PathBuf, only: &[String], jobs: usize, json: bool) -> Result<i32> {
    let s = scenario::load(file)?;
    let mut rows = Vec::new();
    let mut first_err: Option<Error> = None;
    for v in s.select(only)? {
        match kernel::build(&KernelSpec::new(v), jobs) {
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

