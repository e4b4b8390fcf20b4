//! The command line: each subcommand parses its arguments, calls the modules
//! that do the work and prints their plain results (text or --json).

use crate::error::{Class, Findings, Result};
use crate::kernel::{self, KernelSpec};
use crate::nightly::{Baseline, RunReport};
use crate::outcome::Outcome;
use crate::post::{self, Show};
use crate::scenario;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// The command line: `kregress <command> ...`; `main` parses it and hands it to [`run`].
#[derive(Parser)]
#[command(name = "kregress", version, about = "QEMU-driven kernel regression suite for pmem/DAX and GUP bugs")]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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
        /// Also write the built kernels here (bzImage, vmlinux, config, meta.json per variant, and kernels.json), for `run --import`.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Boot the scenario's cells and judge them against its expectations.
    Run(RunArgs),
    /// Compare the variants inside one run, or the same cells across two runs (old, new).
    Compare {
        #[arg(required = true, num_args = 1..=2)]
        runs: Vec<String>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Make one run of the shards of a sharded run (`run --shard I/N`), as if it had run unsharded.
    Merge {
        /// The shards' run directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The merged run's directory (default: a new run under --results).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Merge without some shards or cells: those cells are MISS.
        #[arg(long)]
        partial: bool,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run scenarios and compare every cell with the previous nightly; exit 1 on a regression.
    Nightly(NightlyArgs),
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
    Bisect(BisectArgs),
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
    /// Run a scenario's storm cells with seeds START, START+1, ... until the budget ends; failures by signature.
    Storm(StormArgs),
    /// Reduce a failing storm cell to the smallest op mix, threads and seconds that still fail with its title.
    Reduce(ReduceArgs),
    /// Write the cells' boots as LAVA jobs (one per boot); run them with lava-run (--local) or at a lab (--submit) and judge them.
    Lava(LavaArgs),
    /// Find kernel reports (WARNING, BUG, hung task...) in a saved console log.
    Triage {
        console: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

// The options of `run`, `nightly` and `bisect`: a struct each, so that their
// arms in `run` are one call. (`//`, not `///`: clap would show a doc
// comment here as the subcommand's help, which the variant's gives.)
#[derive(clap::Args)]
pub(crate) struct RunArgs {
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
    /// Every storm workload runs from this seed (replays a storm; 0 to 2^53-1).
    #[arg(long)]
    seed: Option<u64>,
    /// auto probes KVM once per host and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// Where runs are stored.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Guests at once (default: one per two cores and 4 GiB of memory).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Install the kernels `build --export DIR` wrote, when their key is this host's (checked), before building.
    #[arg(long, value_name = "DIR")]
    import: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    /// Boot only part I of N of the selection, e.g. 2/4 (I counts from 1): whole boots, balanced by
    /// --timings or else by count, the same partition on every machine. A shard is a complete run
    /// (maybe of no cell, when N exceeds the boots); `kregress merge` makes one run of the N.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// The run group the shards share (default: derived from the scenario file, kregress's
    /// version, --only, --runs, --seed and N, so the jobs of one pipeline agree).
    #[arg(long, requires = "shard", value_name = "ID")]
    group: Option<String>,
    /// A previous run (its directory or run.json) whose cells' seconds balance the shards; give every shard the same one.
    #[arg(long, requires = "shard", value_name = "RUN")]
    timings: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct LavaArgs {
    scenario: PathBuf,
    /// Select cells, as `run --only`.
    #[arg(long, default_value = "")]
    only: String,
    /// Runs per cell (default: the scenario's `run.runs`).
    #[arg(long)]
    runs: Option<u32>,
    /// Where the jobs (jobs/ID/job.yaml), jobs.json and the artifacts go.
    #[arg(long)]
    out: PathBuf,
    /// The URL that serves OUT/artifacts (kernels and initramfs as BASE/KEY/FILE); file:// URLs without it.
    #[arg(long)]
    artifact_url: Option<String>,
    /// Run each job here with lava-run (lava-dispatcher) and judge it.
    #[arg(long, conflicts_with = "submit")]
    local: bool,
    /// Submit each job to the LAVA lab at this URL (REST API v0.2), wait, and judge it.
    #[arg(long, requires = "token")]
    submit: Option<String>,
    /// The lab's API token (with --submit).
    #[arg(long)]
    token: Option<String>,
    /// Where runs are stored (--local, --submit).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(crate) struct StormArgs {
    scenario: PathBuf,
    /// Wall time for the session, e.g. 30m (a boot in flight finishes).
    #[arg(long)]
    budget: String,
    /// Select cells, as `run --only` (the storm workload is implied).
    #[arg(long, default_value = "")]
    only: String,
    /// The first seed (default: the scenario's storm seed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    #[arg(long, default_value = "results")]
    results: PathBuf,
    #[arg(short, long)]
    jobs: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(crate) struct ReduceArgs {
    /// The failing storm cell's directory (results/RUN/VARIANT/AXES/runN).
    cell: PathBuf,
    /// Boots of a candidate without the failure before it is left out (a race may need more).
    #[arg(long, default_value_t = crate::reduce::DEFAULT_BOOTS)]
    boots: u32,
    /// Most boots of the whole reduction.
    #[arg(long, default_value_t = crate::reduce::DEFAULT_MAX_BOOTS)]
    max_boots: u32,
    /// Most wall time of the whole reduction (a boot in flight finishes), e.g. 90m.
    #[arg(long, default_value = "2h")]
    budget: String,
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// Parallel make jobs, should the kernel not be cached (default: cores + 1).
    #[arg(short, long)]
    jobs: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(crate) struct NightlyArgs {
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
    /// Select cells as `run --only` does, in every scenario (a scenario
    /// with no selected cell is left out; none at all is an error).
    #[arg(long, default_value = "")]
    only: String,
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    #[arg(short, long)]
    jobs: Option<usize>,
    /// As `run --import`: kernels of `build --export DIR`, used when their key is this host's.
    #[arg(long, value_name = "DIR")]
    import: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct BisectArgs {
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum AccelArg {
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

/// Runs the command `cli` names; what it found decides the exit code
/// ([`crate::error::exit_code`], called by main for every command).
pub fn run(cli: Cli) -> Result<Findings> {
    match cli.cmd {
        Cmd::Validate { scenario } => validate(&scenario),
        Cmd::Build { scenario, variants, jobs, export, json } => {
            build(&scenario, &variants, jobs.unwrap_or_else(kernel::default_jobs), export.as_deref(), json)
        }
        Cmd::Run(args) => run_scenario(args),
        Cmd::Compare { runs, results } => compare(&runs, &results),
        Cmd::Merge { dirs, out, partial, results, json } => merge(&dirs, out.as_deref(), partial, &results, json),
        Cmd::Nightly(args) => nightly(args),
        Cmd::Report { runs, baseline, history, out } => report(&runs, &Baseline::parse(&baseline), history, out.as_deref()),
        Cmd::Bisect(args) => bisect(args),
        Cmd::Replay { target, out } => crate::replay::replay_cmd(&target, out.as_deref()),
        Cmd::Bundle { cell, output } => bundle(&cell, output.as_deref()),
        Cmd::Storm(args) => storm(args),
        Cmd::Reduce(args) => reduce(args),
        Cmd::Lava(args) => lava(args),
        Cmd::Triage { console, json } => triage(&console, json),
    }
}

/// What a command prints of its results: text, or JSON with `--json`.
fn show(json: bool) -> Show {
    if json {
        Show::Json
    } else {
        Show::Text
    }
}

/// `kregress validate`: loads the scenario (every check `run` makes first) and says what it holds.
fn validate(scenario: &Path) -> Result<Findings> {
    let s = scenario::load(scenario)?;
    let cells = s.cells(&scenario::Filter::default(), None);
    let boots = crate::run::boot_groups(&cells.iter().collect::<Vec<_>>()).len();
    println!(
        "{}: ok: scenario {}, {} variant(s): {}; {} cell(s) in {} boot(s)",
        scenario.display(),
        s.name,
        s.variants.len(),
        s.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", "),
        cells.len(),
        boots
    );
    Ok(Findings::default())
}

/// `kregress run`: boots the selected cells, then the one post-run path
/// (summary.md, verdicts.json, the expectations).
fn run_scenario(a: RunArgs) -> Result<Findings> {
    let mut s = scenario::load(&a.scenario)?;
    if let Some(n) = a.runs {
        scenario::check_runs(n).map_err(|m| crate::error::bad_input(format!("--runs: {m}")))?;
    }
    let only = scenario::Filter::parse(&a.only)?;
    if let Some(seed) = a.seed {
        s.override_seed(seed, &only)?;
    }
    let shard = match &a.shard {
        Some(spec) => {
            let (index, count) = crate::run::ShardOpts::parse(spec)?;
            Some(crate::run::ShardOpts { index, count, group: a.group, timings: a.timings })
        }
        None => None,
    };
    let opts = crate::run::RunOpts {
        only,
        runs: a.runs,
        resume: a.resume,
        accel: a.accel.into(),
        results_root: a.results,
        jobs: a.jobs.unwrap_or_else(crate::run::default_vms),
        seed_per_run: None,
        shard,
        import: a.import,
    };
    let rec = crate::run::run(&s, &opts)?;
    post::finish(&post::RunDone::judge(&s, &rec)?, show(a.json))
}

/// `kregress lava`: writes the jobs; with --local or --submit, runs them and
/// then the post-run path of `run` on the run they made.
fn lava(a: LavaArgs) -> Result<Findings> {
    let s = scenario::load(&a.scenario)?;
    if let Some(n) = a.runs {
        scenario::check_runs(n).map_err(|m| crate::error::bad_input(format!("--runs: {m}")))?;
    }
    let target = match (a.local, a.submit, a.token) {
        (true, ..) => crate::lava::Target::Local,
        (_, Some(url), Some(token)) => crate::lava::Target::Submit { url, token },
        _ => crate::lava::Target::Write,
    };
    let opts = crate::lava::LavaOpts {
        only: scenario::Filter::parse(&a.only)?,
        runs: a.runs,
        out: a.out,
        artifact_url: a.artifact_url,
        target,
        results_root: a.results,
    };
    match crate::lava::run(&s, &opts)? {
        Some(rec) => post::finish(&post::RunDone::judge(&s, &rec)?, show(a.json)),
        None => Ok(Findings::default()),
    }
}

/// `kregress merge`: one run of the shards, then the post-run path of `run`
/// (so its files and exit code are those of the same cells run unsharded).
fn merge(dirs: &[PathBuf], out: Option<&Path>, partial: bool, results: &Path, json: bool) -> Result<Findings> {
    let (s, rec) = crate::merge::merge(dirs, out, results, partial)?;
    post::finish(&post::RunDone::judge(&s, &rec)?, show(json))
}

/// `kregress storm`: the storm cells with seeds START, START+1, ... until the budget ends;
/// prints the signatures found (storm.json beside the run).
fn storm(a: StormArgs) -> Result<Findings> {
    let StormArgs { scenario, budget, only, seed, accel, results, jobs, json } = a;
    let s = scenario::load(&scenario)?;
    let budget = parse_budget("--budget", &budget)?;
    let only = scenario::Filter::parse(&only)?;
    let start = match seed {
        Some(n) => n,
        None => crate::seeds::storm_filter(&s, &only).map(|f| s.cells(&f, Some(1))[0].workload.spec().seed)?,
    };
    let opts = crate::run::RunOpts {
        only,
        runs: None,
        resume: None,
        accel: accel.into(),
        results_root: results,
        jobs: jobs.unwrap_or_else(crate::run::default_vms),
        seed_per_run: None,
        shard: None,
        import: None,
    };
    let (rec, report) = crate::seeds::run(&s, &opts, start, budget, None)?;
    post::finish(&post::RunDone::judge(&s, &rec)?, Show::Nothing)?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&report).unwrap()),
        false => print!("{}", report.text()),
    }
    Ok(Findings { kernel_failed: !report.signatures.is_empty(), harness_failed: rec.cells.iter().any(|c| c.outcome == Outcome::Miss) })
}

/// `kregress reduce`: the smallest storm that still fails with the cell's title.
fn reduce(a: ReduceArgs) -> Result<Findings> {
    let ReduceArgs { cell, boots, max_boots, budget, accel, jobs, json } = a;
    let wall = parse_budget("--budget", &budget)?;
    let budget = crate::reduce::Budget { boots, max_boots, wall_seconds: wall.as_secs() };
    let opts = crate::reduce::ReduceOpts { cell_dir: cell, budget, accel: accel.into(), jobs: jobs.unwrap_or_else(kernel::default_jobs) };
    let (r, dir) = crate::reduce::run(&opts)?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&r).unwrap()),
        false => {
            if let Some(why) = &r.stopped {
                println!("stopped: {why}");
            }
            println!("{} boot(s), {:.0} s, {} step(s); reduce.json and reduce.md in {}", r.boots, r.seconds, r.steps.len(), dir.display());
            println!("{}", r.scenario_line);
        }
    }
    Ok(crate::reduce::findings(&r))
}

/// `kregress compare`: the variants of one run against its first, or two
/// runs of one scenario cell by cell; prints the verdict table.
fn compare(runs: &[String], results: &Path) -> Result<Findings> {
    let dirs: Vec<PathBuf> = runs.iter().map(|r| crate::results::find(results, r)).collect::<Result<_>>()?;
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
    Ok(Findings::default())
}

/// `kregress bisect`: the options checked, then [`crate::bisect::run`] and
/// the post-run path of its runs.
fn bisect(a: BisectArgs) -> Result<Findings> {
    let threshold_pct: f64 = a
        .threshold
        .trim_end_matches('%')
        .parse()
        .map_err(|_| crate::error::bad_input(format!("--threshold {}: give a percentage such as -10%", a.threshold)))?;
    let opts = crate::bisect::BisectOpts {
        scenario: a.scenario,
        repo: a.repo,
        good: a.good,
        bad: a.bad,
        only: a.only,
        variant: a.variant,
        signature: a.signature,
        max_runs: a.max_runs,
        metric: a.metric,
        threshold_pct,
        accel: a.accel.into(),
        results_root: a.results,
        jobs: a.jobs.unwrap_or_else(kernel::default_jobs),
    };
    post::finish(&crate::bisect::run(&opts)?, show(a.json))
}

/// `kregress bundle`: packs the cell and prints the tarball's path.
fn bundle(cell: &Path, output: Option<&Path>) -> Result<Findings> {
    let out = crate::replay::bundle::pack(cell, output)?;
    println!("{}", out.display());
    Ok(Findings::default())
}

/// `kregress triage`: the kernel reports in a saved console log, in log order.
fn triage(console: &Path, json: bool) -> Result<Findings> {
    let bad = |e: std::io::Error| crate::error::bad_input(format!("{}: {e}", console.display())).because(e);
    let found = crate::triage::scan(std::fs::File::open(console).map_err(bad)?).map_err(bad)?;
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
    Ok(Findings::default())
}

/// `kregress build`: a kernel that does not build is a kernel failure; the
/// other variants still build (and those that did are exported, with `--export`).
fn build(file: &std::path::Path, only: &[String], jobs: usize, export: Option<&Path>, json: bool) -> Result<Findings> {
    let s = scenario::load(file)?;
    if let Some(dir) = export {
        kernel::export::existing(dir)?;
    }
    let mut rows = Vec::new();
    let mut failed = false;
    let mut built = Vec::new();
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
                built.push(a);
            }
            // Bad input or a broken host stops everything; a kernel that does
            // not build is a result (ERROR) and the other variants still build.
            Err(e) if e.class == Class::Kernel => {
                eprintln!("{}: ERROR: {}", v.name, e);
                rows.push(serde_json::json!({"variant": v.name, "error": e.msg}));
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(dir) = export {
        kernel::export::export(&built, dir)?;
        if !json {
            println!("exported {} kernel(s) to {} ({})", built.len(), dir.display(), kernel::export::INDEX);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap());
    }
    Ok(Findings { kernel_failed: failed, harness_failed: false })
}

/// The default scenario set: every scenarios/*.yaml (historical/ is a
/// subfolder, so it is left out), sorted.
fn default_scenarios(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| crate::error::bad_input(format!("{}: {e}", dir.display())).because(e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    Ok(v)
}

/// `kregress nightly`: runs each scenario (the run loop of `kregress run`,
/// then its post-run path: summary.md, verdicts.json), marks the run as a
/// nightly, judges it against its baseline and writes the reports. A
/// regression is a kernel failure, a MISS the harness's.
fn nightly(a: NightlyArgs) -> Result<Findings> {
    let only = scenario::Filter::parse(&a.only)?;
    let (baseline, accel, jobs) = (Baseline::parse(&a.baseline), a.accel.into(), a.jobs.unwrap_or_else(crate::run::default_vms));
    let files = if a.scenarios.is_empty() { default_scenarios(Path::new("scenarios"))? } else { a.scenarios };
    // Validate every file before the first (long) run.
    let loaded: Vec<scenario::Scenario> = files.iter().map(|f| scenario::load(f)).collect::<Result<_>>()?;
    let selected: Vec<&scenario::Scenario> = loaded.iter().filter(|s| !s.cells(&only, None).is_empty()).collect();
    if selected.is_empty() {
        return Err(crate::error::bad_input("nightly --only: the filter selects no cell in any scenario"));
    }
    let mut reports = Vec::new();
    for s in selected {
        // A storm with a `budget:` runs seeds back to back (its scenario
        // seed first, as run 1 of its cell), the longest budget for all.
        let storm = crate::seeds::nightly_plan(s, &only);
        let run_opts = crate::run::RunOpts {
            only: only.clone(),
            runs: None,
            resume: None,
            accel,
            results_root: a.results.clone(),
            jobs,
            seed_per_run: storm.as_ref().map(|(_, seed, _)| *seed),
            shard: None,
            import: a.import.clone(),
        };
        let mut rec = crate::run::run(s, &run_opts)?;
        if let Some((budget, seed, storms)) = storm {
            let done = rec.cells.iter().filter(|c| c.storm.is_some()).map(|c| c.run).max().unwrap_or(0);
            rec = crate::seeds::run(s, &crate::run::RunOpts { only: storms, ..run_opts }, seed, budget, Some((&rec, done)))?.0;
        }
        crate::cache::write_atomic(
            &rec.results_dir.join(crate::nightly::MARKER),
            serde_json::json!({"scenario_file": s.file}).to_string().as_bytes(),
        )?;
        post::finish(&post::RunDone::judge(s, &rec)?, Show::Nothing)?;
        reports.push(RunReport::load(&rec.results_dir, &baseline, a.history)?);
    }
    post::publish(&reports, None)?;
    if let Some(out) = &a.out {
        post::write_all(&reports, out)?;
    }
    Ok(Findings {
        kernel_failed: crate::nightly::regressed(&reports),
        harness_failed: reports.iter().flat_map(|r| &r.rec.cells).any(|c| c.outcome == Outcome::Miss),
    })
}

/// `kregress report`: judges each stored run against its baseline, writes
/// repro.sh into its failing cells and the report into RUN_DIR/report (or
/// one combined report into `out`); prints the headline. A regression is a
/// kernel failure, as in `nightly`.
fn report(runs: &[PathBuf], which: &Baseline, history: usize, out: Option<&std::path::Path>) -> Result<Findings> {
    let reports: Vec<RunReport> = runs.iter().map(|d| RunReport::load(d, which, history)).collect::<Result<_>>()?;
    post::publish(&reports, out)?;
    Ok(Findings { kernel_failed: crate::nightly::regressed(&reports), harness_failed: false })
}

/// A budget such as `30m` or `1h30m` (humantime), at least a second: bad input otherwise.
pub fn parse_budget(flag: &str, text: &str) -> Result<std::time::Duration> {
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 => Ok(d),
        Ok(_) => Err(crate::error::bad_input(format!("{flag} {text}: at least 1s"))),
        Err(e) => Err(crate::error::bad_input(format!("{flag} {text}: {e} (e.g. 30m, 1h30m)"))),
    }
}
