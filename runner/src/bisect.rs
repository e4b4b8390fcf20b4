//! `kregress bisect`: find the commit that brought a failure (or a throughput
//! drop) into one cell of a scenario.
//!
//! Built like syzkaller's pkg/bisect: the search ([`search`]) is pure — a
//! list of commits and a [`Tester`] that says good, bad or skip for one commit
//! — and knows nothing of kernels or VMs. How a commit is tested is separate:
//! [`StepJudge`] turns the runs of one step into a verdict (pure, with the
//! rules below), and [`KernelTester`] builds the commit in kregress's own clone
//! (incrementally, through [`crate::kernel::build`]) and boots the cell.
//!
//! Rules of a step (signature mode):
//! * a run that shows the target signature makes the step BAD at once;
//! * `k` clean runs make it GOOD, `k` chosen from the reproduction rate seen
//!   on BAD ([`runs_for_good`]);
//! * a different failure (another crash, warning or hang), a kernel that does
//!   not build, a variant patch that does not apply, or a kernel that does not
//!   boot (ERROR) make it SKIP: they say nothing about the target bug;
//! * a harness failure (MISS) is retried [`MISS_RETRIES`] times, then the
//!   bisection stops with its reason (the host is broken, not the kernel).
//!
//! `k` comes from a lower confidence bound on BAD's reproduction rate
//! (Wilson, 95 % one-sided), not from the point estimate: 3 hits in 3 runs
//! do not prove the bug shows every time.
//!
//! Throughput mode: every step runs [`THROUGHPUT_RUNS`] times and the rule
//! book decides ([`crate::rules::throughput_rule`], GOOD's boots as the
//! baseline, the timing mode's noise floor): BAD when it says
//! THROUGHPUT_REGRESSION by at least the threshold, GOOD when it says
//! NO_CHANGE, an improvement or a smaller regression; INCONCLUSIVE runs more
//! (up to `--max-runs`), then SKIPs. Any failure makes it SKIP. The cell's
//! timing mode is the scenario's (icount for dio-read/dio-write), so a 3 %
//! threshold is meaningful.

use crate::error::{bad_input, infra, kernel as kernel_err, Class, Error, Result};
use crate::kernel::{self, source, KernelSpec};
pub use crate::kernel::source::CommitInfo;
use crate::results::{self, CellResult, Outcome};
use crate::rules::{self, Status};
use crate::scenario::{self, Cell, Scenario, Source, Variant};
use crate::vm::{self, Accel};
use serde::Serialize;
use std::path::PathBuf;

/// Harness failures (MISS) tolerated in a row before the bisection stops.
pub const MISS_RETRIES: u32 = 2;
/// Runs per step in throughput mode (the fewest the rule book judges).
pub const THROUGHPUT_RUNS: u32 = rules::MIN_SAMPLES as u32;
/// Probability wanted of seeing a bug in a GOOD step if it is there.
pub const DETECTION: f64 = 0.95;
/// z of the one-sided 95 % Wilson lower bound on BAD's reproduction rate.
pub const WILSON_Z: f64 = 1.6449;

/// What one tested commit is to the search (not [`crate::compare::Verdict`],
/// which compares two sets of runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepVerdict {
    Good,
    Bad,
    Skip,
}

impl StepVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            StepVerdict::Good => "good",
            StepVerdict::Bad => "bad",
            StepVerdict::Skip => "skip",
        }
    }
}

/// What testing one commit gave.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub commit: String,
    pub verdict: StepVerdict,
    /// VM runs done for this step.
    pub runs: u32,
    /// Failure titles seen, one per failed run, in order.
    pub titles: Vec<String>,
    /// Wall time of the kernel build (0 on a cache hit).
    pub build_seconds: f64,
    /// Why the verdict, in a few words.
    pub reason: String,
    /// The metric of every PASS run (throughput mode).
    pub metric: Vec<f64>,
    pub bzimage_sha256: Option<String>,
}

impl StepResult {
    pub fn skip(commit: &str, reason: impl Into<String>) -> StepResult {
        StepResult {
            commit: commit.to_string(),
            verdict: StepVerdict::Skip,
            runs: 0,
            titles: vec![],
            build_seconds: 0.0,
            reason: reason.into(),
            metric: vec![],
            bzimage_sha256: None,
        }
    }
}

/// Tests one commit. An `Err` stops the bisection (the host or harness failed).
pub trait Tester {
    fn test(&mut self, commit: &str) -> Result<StepResult>;
}

/// Where the search ended.
#[derive(Debug, Clone)]
pub struct Search {
    /// The first bad commit, when the tested commits pin it down.
    pub culprit: Option<String>,
    /// Commits that may be the first bad one (the culprit alone when known).
    pub candidates: Vec<String>,
    pub steps: Vec<StepResult>,
}

/// The next commit to test between `lo` (last good index, -1 = GOOD) and
/// `hi` (first bad index): the untested one nearest to the middle.
fn next(lo: isize, hi: isize, skipped: &[bool]) -> Option<usize> {
    let mid = lo + (hi - lo) / 2;
    (lo + 1..hi).filter(|&i| !skipped[i as usize]).min_by_key(|&i| ((i - mid).abs(), i)).map(|i| i as usize)
}

/// Bisects `commits`: oldest first, GOOD's descendants up to and including
/// BAD (the last, known bad); GOOD is known good. Each commit is tested at
/// most once; `on_step` sees every step as it finishes.
pub fn search(commits: &[String], t: &mut dyn Tester, on_step: &mut dyn FnMut(&StepResult)) -> Result<Search> {
    assert!(!commits.is_empty(), "search needs at least BAD");
    let (mut lo, mut hi) = (-1isize, commits.len() as isize - 1);
    let mut skipped = vec![false; commits.len()];
    let mut steps = Vec::new();
    while let Some(i) = next(lo, hi, &skipped) {
        let r = t.test(&commits[i])?;
        on_step(&r);
        match r.verdict {
            StepVerdict::Good => lo = i as isize,
            StepVerdict::Bad => hi = i as isize,
            StepVerdict::Skip => skipped[i] = true,
        }
        steps.push(r);
    }
    let candidates: Vec<String> = commits[(lo + 1) as usize..=hi as usize].to_vec();
    let culprit = (candidates.len() == 1).then(|| candidates[0].clone());
    Ok(Search { culprit, candidates, steps })
}

/// Lower bound of the one-sided 95 % Wilson score interval of a rate of
/// `hits` in `runs`: the rate BAD reproduces at is at least this with 95 %
/// confidence. 3/3 gives 0.53, 10/10 0.79, 1/3 0.08.
pub fn wilson_lower(hits: u32, runs: u32) -> f64 {
    if runs == 0 {
        return 0.0;
    }
    let (n, z) = (runs as f64, WILSON_Z);
    let p = hits as f64 / n;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z * z / n)).max(0.0)
}

/// Clean runs that make a step GOOD when BAD reproduced in `hits` of
/// `runs`: with `rate` the Wilson lower bound ([`wilson_lower`]), the fewest
/// `k` with `1 - (1 - rate)^k >= 95 %`, i.e. `ceil(ln 0.05 / ln(1 - rate))`,
/// at least 1 and at most `max_runs`; with the reason in words.
pub fn runs_for_good(hits: u32, runs: u32, max_runs: u32) -> (u32, String) {
    let max_runs = max_runs.max(1);
    let rate = wilson_lower(hits, runs);
    let need = if rate >= 1.0 {
        1
    } else if rate <= 0.0 {
        u32::MAX
    } else {
        ((1.0 - DETECTION).ln() / (1.0 - rate).ln()).ceil().max(1.0) as u32
    };
    let k = need.min(max_runs);
    let seen = format!(
        "BAD reproduced in {hits}/{runs} runs (at least {:.0}% with 95% confidence, Wilson lower bound)",
        rate * 100.0
    );
    let why = if need <= max_runs {
        format!("{seen}: a bug reproducing that often shows within {k} run(s) with >= {:.0}% probability", DETECTION * 100.0)
    } else {
        format!(
            "{seen}: {} runs would be needed for {:.0}% detection, capped by --max-runs at {k} ({:.0}% detection)",
            if need == u32::MAX { "infinitely many".to_string() } else { need.to_string() },
            DETECTION * 100.0,
            detection(rate, k) * 100.0
        )
    };
    (k, why)
}

/// Probability that `runs` runs show a bug reproducing at `rate`.
pub fn detection(rate: f64, runs: u32) -> f64 {
    1.0 - (1.0 - rate).powi(runs as i32)
}

/// Confidence in the result: every BAD verdict saw the signature (certain);
/// a GOOD verdict is right with the probability its clean runs would have
/// shown the bug, at the rate's lower bound. The product over the GOOD steps:
/// the probability that no GOOD verdict hid the bug, if it reproduces at
/// least at `rate`.
pub fn confidence(steps: &[StepResult], rate: f64) -> f64 {
    steps.iter().filter(|s| s.verdict == StepVerdict::Good).map(|s| detection(rate, s.runs)).product()
}

/// One run of a step, as the judge sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunObs {
    Pass { metric: Option<f64> },
    Fail { title: String, problems: Vec<String> },
    /// The kernel did not boot.
    Error { title: String },
    /// The harness failed.
    Miss { reason: String },
}

impl RunObs {
    pub fn from_cell(r: &CellResult, metric: &str) -> RunObs {
        let title = r.title.clone().unwrap_or_default();
        match r.outcome {
            Outcome::Pass => RunObs::Pass { metric: r.metrics.get(metric).copied() },
            Outcome::Fail => RunObs::Fail { title, problems: r.problems.clone() },
            Outcome::Error => RunObs::Error { title },
            Outcome::Miss | Outcome::Skip => RunObs::Miss { reason: title },
        }
    }
}

/// How a step decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Run `runs` times whatever happens (measuring BAD).
    Measure { runs: u32 },
    /// BAD at the first run showing `signature`; GOOD after `k` clean runs.
    Signature { signature: String, k: u32 },
    /// `runs` samples of the metric against GOOD's, up to `max_runs` while
    /// the rule book says INCONCLUSIVE.
    Throughput { baseline: Vec<f64>, threshold_pct: f64, floor_pct: f64, runs: u32, max_runs: u32 },
}

/// Whether a failure title (or one of its problems) is the target signature.
pub fn matches_signature(signature: &str, title: &str, problems: &[String]) -> bool {
    !signature.is_empty() && (title == signature || title.contains(signature) || problems.iter().any(|p| p.contains(signature)))
}

pub enum Decision {
    More,
    Done(StepVerdict, String),
    Abort(String),
}

/// Turns the runs of one step into a verdict, run by run.
#[derive(Debug, Clone)]
pub struct StepJudge {
    pub mode: Mode,
    pub runs: u32,
    pub titles: Vec<String>,
    pub metric: Vec<f64>,
    misses: u32,
}

impl StepJudge {
    pub fn new(mode: Mode) -> StepJudge {
        StepJudge { mode, runs: 0, titles: vec![], metric: vec![], misses: 0 }
    }

    pub fn push(&mut self, o: RunObs) -> Decision {
        if let RunObs::Miss { reason } = &o {
            self.misses += 1;
            if self.misses > MISS_RETRIES {
                return Decision::Abort(format!("harness failed {} times in a row: {reason}", self.misses));
            }
            return Decision::More;
        }
        self.misses = 0;
        self.runs += 1;
        match &o {
            RunObs::Fail { title, .. } | RunObs::Error { title } => self.titles.push(title.clone()),
            RunObs::Pass { metric: Some(m) } => self.metric.push(*m),
            _ => {}
        }
        match (&self.mode, &o) {
            (Mode::Measure { runs }, _) => {
                if self.runs >= *runs || matches!(o, RunObs::Error { .. }) {
                    return Decision::Done(StepVerdict::Skip, format!("measured {} run(s)", self.runs));
                }
                Decision::More
            }
            (_, RunObs::Error { title }) => Decision::Done(StepVerdict::Skip, format!("did not boot: {title}")),
            (Mode::Signature { signature, .. }, RunObs::Fail { title, problems }) => {
                if matches_signature(signature, title, problems) {
                    Decision::Done(StepVerdict::Bad, format!("signature seen in run {}", self.runs))
                } else {
                    Decision::Done(StepVerdict::Skip, format!("a different failure: {title}"))
                }
            }
            (Mode::Signature { k, .. }, RunObs::Pass { .. }) => {
                if self.runs >= *k {
                    Decision::Done(StepVerdict::Good, format!("{} clean run(s)", self.runs))
                } else {
                    Decision::More
                }
            }
            (Mode::Throughput { .. }, RunObs::Fail { title, .. }) => Decision::Done(StepVerdict::Skip, format!("failed: {title}")),
            (Mode::Throughput { baseline, threshold_pct, floor_pct, runs, max_runs }, RunObs::Pass { .. }) => {
                if self.runs < *runs {
                    return Decision::More;
                }
                match throughput_verdict(baseline, &self.metric, *threshold_pct, *floor_pct) {
                    None if self.runs < *max_runs => Decision::More,
                    None => Decision::Done(StepVerdict::Skip, format!("throughput still inconclusive after {} runs", self.runs)),
                    Some((v, why)) => Decision::Done(v, why),
                }
            }
            (_, RunObs::Miss { .. }) => unreachable!(),
        }
    }
}

/// A throughput step by the rule book, GOOD's boots as the baseline: BAD
/// when it says THROUGHPUT_REGRESSION by at least `threshold_pct` (negative,
/// e.g. -3); GOOD for NO_CHANGE, an improvement or a smaller regression;
/// `None` (more runs) when it says INCONCLUSIVE.
pub fn throughput_verdict(baseline: &[f64], samples: &[f64], threshold_pct: f64, floor_pct: f64) -> Option<(StepVerdict, String)> {
    let (status, note, st) = rules::throughput_rule(baseline, samples, floor_pct);
    let why = match (st.to_median, st.from_median, st.delta_pct, st.ci_low, st.ci_high) {
        (Some(s), Some(b), Some(d), Some(lo), Some(hi)) => format!(
            "median {s:.1} vs GOOD {b:.1}: {d:+.2}% (95% CI {lo:+.2}..{hi:+.2}%, threshold {threshold_pct:+.1}%, noise floor {floor_pct:.2}%): {} ({note})",
            status.as_str()
        ),
        _ => format!("{}: {note}", status.as_str()),
    };
    match status {
        Status::Inconclusive => None,
        Status::ThroughputRegression if st.delta_pct.is_some_and(|d| d <= threshold_pct) => Some((StepVerdict::Bad, why)),
        _ => Some((StepVerdict::Good, why)),
    }
}

// ---- testing commits with real kernels and VMs --------------------------

/// Builds a commit (plus the variant's patches) and runs the cell.
pub struct KernelTester<'a> {
    pub scenario: &'a Scenario,
    pub variant: Variant,
    pub cell: Cell,
    pub repo: PathBuf,
    /// Patches applied before the variant's (the revert check's revert).
    pub extra_patches: Vec<PathBuf>,
    pub initrd: PathBuf,
    pub accel_want: Accel,
    pub accel: Option<Accel>,
    pub run_dir: PathBuf,
    pub jobs: usize,
    pub mode: Mode,
    pub metric: String,
    /// Step counter, for directory names.
    pub n: usize,
    /// Kernel builds started (cache hits included).
    pub builds: usize,
}

impl Tester for KernelTester<'_> {
    fn test(&mut self, commit: &str) -> Result<StepResult> {
        self.n += 1;
        self.builds += 1;
        let short = &commit[..commit.len().min(12)];
        eprintln!("bisect: step {}: building {short}", self.n);
        let mut patches = self.extra_patches.clone();
        patches.extend(self.variant.patches.iter().cloned());
        let spec = KernelSpec {
            variant: format!("bisect-{short}"),
            source: Source::Git { repo: self.repo.clone(), rev: commit.to_string() },
            rev: Some(commit.to_string()),
            base: self.variant.kernel.base.clone(),
            fragments: self.variant.kernel.fragments.clone(),
            patches,
        };
        let k = match kernel::build(&spec, self.jobs) {
            Ok(k) => k,
            Err(e) => return build_skip_reason(&e).map(|why| StepResult::skip(commit, why)).ok_or(e),
        };
        let build_seconds = if k.cache_hit { 0.0 } else { k.seconds };
        let accel = match self.accel {
            Some(a) => a,
            None => {
                let a = vm::resolve_accel(self.accel_want, &k.bzimage)?;
                self.accel = Some(a);
                a
            }
        };
        let dir = self.run_dir.join("steps").join(format!("{:02}-{short}", self.n));
        let mut judge = StepJudge::new(self.mode.clone());
        let mut attempt = 0;
        let (verdict, reason) = loop {
            attempt += 1;
            let mut cell = self.cell.clone();
            cell.run = attempt;
            let (res, _) = crate::run::run_boot(&[cell], &k, &self.initrd, accel, &dir, self.scenario.run.panic_on_warn)?;
            let Some(r) = res.into_iter().next() else { return Err(infra("run_boot gave no result")) };
            eprintln!("bisect:   run {attempt}: {:?}{}", r.outcome, r.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default());
            match judge.push(RunObs::from_cell(&r, &self.metric)) {
                Decision::More => continue,
                Decision::Done(v, why) => break (v, why),
                Decision::Abort(why) => return Err(infra(format!("bisect: testing {short}: {why}; results in {}", dir.display()))),
            }
        };
        Ok(StepResult {
            commit: commit.to_string(),
            verdict,
            runs: judge.runs,
            titles: judge.titles,
            build_seconds,
            reason,
            metric: judge.metric,
            bzimage_sha256: crate::cache::sha256_file(&k.bzimage).ok(),
        })
    }
}

/// Why a commit whose kernel was not built is a SKIP: "build failed: " and
/// the compiler's error line ([`crate::error::Error::compiler_error`]) when
/// it did not compile, the message when a patch did not apply (bad input,
/// one line). `None` for any other failure: the host's, which stops the bisection.
fn build_skip_reason(e: &Error) -> Option<String> {
    let head = || e.msg.lines().next().unwrap_or("").chars().take(300).collect::<String>();
    match e.class {
        Class::Kernel => Some(format!("build failed: {}", e.compiler_error.clone().unwrap_or_else(head))),
        Class::BadInput => Some(head()),
        _ => None,
    }
}

/// The history a bisection reads: kregress's clone of `--repo` (a
/// [`source::Tree`], through git) or, in unit tests, a list of commits.
pub trait Repo {
    /// Whether `ancestor` is `descendant` or one of its ancestors.
    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool;
    /// The commits after `from` up to and including `to` along first parents, oldest first.
    fn first_parent_range(&self, from: &str, to: &str) -> Result<Vec<String>>;
    /// `commit`'s full id, subject and author.
    fn describe(&self, commit: &str) -> Result<CommitInfo>;
    /// `commit`'s first parent.
    fn parent(&self, commit: &str) -> Result<String>;
    /// A patch that undoes `commit`.
    fn revert_diff(&self, commit: &str) -> Result<String>;
}

impl Repo for source::Tree {
    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        source::Tree::is_ancestor(self, ancestor, descendant)
    }
    fn first_parent_range(&self, from: &str, to: &str) -> Result<Vec<String>> {
        source::Tree::first_parent_range(self, from, to)
    }
    fn describe(&self, commit: &str) -> Result<CommitInfo> {
        source::Tree::describe(self, commit)
    }
    fn parent(&self, commit: &str) -> Result<String> {
        source::Tree::parent(self, commit)
    }
    fn revert_diff(&self, commit: &str) -> Result<String> {
        source::Tree::revert_diff(self, commit)
    }
}

/// A commit as the report shows it; the id alone when the repository cannot say more.
fn info(repo: &dyn Repo, c: &str) -> CommitInfo {
    repo.describe(c).unwrap_or_else(|_| CommitInfo { commit: c.to_string(), subject: String::new(), author: String::new() })
}

/// The metrics a throughput bisection can follow.
pub const METRICS: &[&str] = &["fast_mb_per_s", "slow_mb_per_s", "ops_per_s"];

pub struct BisectOpts {
    pub scenario: PathBuf,
    pub repo: PathBuf,
    pub good: String,
    pub bad: String,
    pub only: String,
    pub variant: Option<String>,
    pub signature: Option<String>,
    pub max_runs: u32,
    pub metric: Option<String>,
    pub threshold_pct: f64,
    pub accel: Accel,
    pub results_root: PathBuf,
    pub jobs: usize,
}

/// BAD's runs against the signature (signature mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reproduction {
    // In bisect.json's order, which has always been alphabetical.
    pub hits: u32,
    /// `hits / runs`.
    pub rate: f64,
    /// The one-sided 95 % Wilson lower bound of the rate ([`wilson_lower`]).
    pub rate_lower_95: f64,
    pub runs: u32,
}

/// One tested commit as bisect.json and bisect.md show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BisectStep {
    // In bisect.json's order, which has always been alphabetical.
    /// Wall time of the kernel build, to 0.1 s (0 on a cache hit).
    pub build_seconds: f64,
    pub commit: String,
    /// The metric of every PASS run (throughput mode).
    pub metric: Vec<f64>,
    pub reason: String,
    pub runs: u32,
    pub subject: String,
    pub titles: Vec<String>,
    pub verdict: StepVerdict,
}

impl BisectStep {
    pub fn new(r: &StepResult, subject: String) -> BisectStep {
        BisectStep {
            build_seconds: (r.build_seconds * 10.0).round() / 10.0,
            commit: r.commit.clone(),
            metric: r.metric.clone(),
            reason: r.reason.clone(),
            runs: r.runs,
            subject,
            titles: r.titles.clone(),
            verdict: r.verdict,
        }
    }
}

/// What BAD with the culprit reverted gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevertCheck {
    /// BAD with the revert is good: the culprit is confirmed.
    Good,
    /// BAD with the revert is still bad.
    Bad,
    /// No single culprit, or BAD with the revert could not be tested (the
    /// revert does not apply or build, another failure).
    NotApplicable,
}

impl RevertCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            RevertCheck::Good => "good",
            RevertCheck::Bad => "bad",
            RevertCheck::NotApplicable => "not-applicable",
        }
    }
}

/// The whole report, as bisect.json holds it (not [`crate::triage::Report`],
/// a kernel report on a console).
#[derive(Debug, Clone, Serialize)]
pub struct BisectReport {
    pub scenario: String,
    pub cell: String,
    pub variant: String,
    pub good: CommitInfo,
    pub bad: CommitInfo,
    pub mode: String,
    pub signature: Option<String>,
    pub reproduction: Option<Reproduction>,
    pub k: u32,
    pub k_reason: String,
    pub culprit: Option<CommitInfo>,
    pub candidates: Vec<CommitInfo>,
    pub steps: Vec<BisectStep>,
    pub builds: usize,
    /// Signature mode: the probability that no GOOD verdict hid the bug
    /// ([`confidence`]); `None` in throughput mode, where every step is the
    /// rule book's verdict on 95 % intervals instead.
    pub confidence: Option<f64>,
    pub confidence_note: String,
    pub no_op_change: Option<bool>,
    pub revert_check: RevertCheck,
    pub revert_note: String,
    pub results_dir: PathBuf,
    pub log: String,
}

/// Runs a whole bisection: checks GOOD and BAD, searches, checks the revert.
pub fn run(o: &BisectOpts) -> Result<BisectReport> {
    let s = scenario::load(&o.scenario)?;
    let variant = match &o.variant {
        Some(v) => s.select(std::slice::from_ref(v))?[0].clone(),
        None => s.variants[0].clone(),
    };
    let mut filter = scenario::Filter::parse(&o.only)?;
    filter.variant = Some(variant.name.clone());
    let cells = s.cells(&filter, Some(1));
    if cells.len() != 1 {
        let ids: Vec<String> = cells.iter().map(|c| c.axes()).collect();
        return Err(bad_input(format!(
            "--only {}: bisect needs exactly one cell of variant {}, this selects {}: {}",
            o.only,
            variant.name,
            cells.len(),
            if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
        )));
    }
    let cell = cells[0].clone();
    let metric = o.metric.clone().unwrap_or_default();
    if !metric.is_empty() && !METRICS.contains(&metric.as_str()) {
        return Err(bad_input(format!("--metric {metric}: give one of {}", METRICS.join(", "))));
    }

    // kregress's clone of the repository (the user's checkout is never touched).
    let scratch = tempfile::tempdir().map_err(|e| infra(format!("temp dir: {e}")))?;
    let log = scratch.path().join("git.log");
    let tree = source::prepare(&Source::Git { repo: o.repo.clone(), rev: o.bad.clone() }, None, &log)?;
    let clone: &dyn Repo = &tree;
    // prepare resolved BAD.
    let (good, bad) = match source::resolve(&o.repo, &o.good)? {
        Some(good) => (good, tree.commit.clone()),
        None => return Err(bad_input(format!("{}: no commit {}", o.repo.display(), o.good))),
    };
    if !clone.is_ancestor(&good, &bad) {
        return Err(bad_input(format!("--good {} is not an ancestor of --bad {}", o.good, o.bad)));
    }
    let commits = clone.first_parent_range(&good, &bad)?;
    if commits.is_empty() {
        return Err(bad_input("--good and --bad are the same commit"));
    }
    let (run_id, run_dir) = results::new_run_dir(&o.results_root, &format!("bisect-{}", s.name))?;
    let _ = std::fs::copy(&log, run_dir.join("git.log"));
    eprintln!("bisect: {} commit(s) from {} to {}, cell {}", commits.len(), &good[..12], &bad[..12], cell.axes());

    let image = crate::image::build(&crate::image::ImageOptions::default()).map_err(|e| infra(format!("initramfs: {e}")))?;
    let mut t = KernelTester {
        scenario: &s,
        variant: variant.clone(),
        cell: cell.clone(),
        repo: o.repo.clone(),
        extra_patches: vec![],
        initrd: image.path.clone(),
        accel_want: o.accel,
        accel: None,
        run_dir: run_dir.clone(),
        jobs: o.jobs,
        mode: Mode::Measure { runs: 1 },
        metric: if metric.is_empty() { "fast_mb_per_s".into() } else { metric.clone() },
        n: 0,
        builds: 0,
    };
    let mut bisect_log = vec!["git bisect start".to_string()];
    let log_step = |r: &StepResult, log: &mut Vec<String>| {
        let i = info(clone, &r.commit);
        log.push(format!("# {}: [{}] {}", r.verdict.as_str(), i.commit, i.subject));
        log.push(format!("git bisect {} {}", r.verdict.as_str(), i.commit));
    };
    let mut all_steps: Vec<StepResult> = Vec::new();
    let (signature, reproduction, rate, k, k_reason, mode);

    if metric.is_empty() {
        // BAD first: it names the signature and gives the reproduction rate.
        let bad_runs = o.max_runs.clamp(1, 3);
        t.mode = Mode::Measure { runs: bad_runs };
        let mut rb = t.test(&bad)?;
        if rb.runs == 0 {
            return Err(kernel_err(format!("BAD {} could not be tested: {}", &bad[..12], rb.reason)));
        }
        let sig = match &o.signature {
            Some(sg) => sg.clone(),
            None => rules::dominant_title(rb.titles.iter().map(String::as_str)).ok_or_else(|| {
                kernel_err(format!("BAD {} is not bad: {} clean run(s) of {}; nothing to bisect", &bad[..12], rb.runs, cell.axes()))
            })?,
        };
        if sig.starts_with("boot failed") {
            return Err(kernel_err(format!("BAD {} does not boot ({sig}); nothing to bisect", &bad[..12])));
        }
        let hits = rb.titles.iter().filter(|tt| matches_signature(&sig, tt, &[])).count() as u32;
        if hits == 0 {
            return Err(kernel_err(format!("BAD {} is not bad: {:?} not seen in {} run(s) (seen: {:?})", &bad[..12], sig, rb.runs, rb.titles)));
        }
        rb.verdict = StepVerdict::Bad;
        rb.reason = format!("signature in {hits}/{} run(s)", rb.runs);
        (k, k_reason) = runs_for_good(hits, rb.runs, o.max_runs);
        eprintln!("bisect: signature {sig:?}; k = {k}: {k_reason}");
        rate = wilson_lower(hits, rb.runs);
        reproduction = Some(Reproduction { hits, rate: hits as f64 / rb.runs as f64, rate_lower_95: rate, runs: rb.runs });
        log_step(&rb, &mut bisect_log);
        all_steps.push(rb);
        t.mode = Mode::Signature { signature: sig.clone(), k };
        let rg = t.test(&good)?;
        log_step(&rg, &mut bisect_log);
        match rg.verdict {
            StepVerdict::Good => {}
            StepVerdict::Bad => return Err(kernel_err(format!("GOOD {} is not good: it shows {sig:?} too", &good[..12]))),
            StepVerdict::Skip => return Err(kernel_err(format!("GOOD {} could not be tested: {}", &good[..12], rg.reason))),
        }
        all_steps.push(rg);
        signature = Some(sig);
        mode = "signature".to_string();
    } else {
        t.mode = Mode::Measure { runs: THROUGHPUT_RUNS };
        let mut rg = t.test(&good)?;
        if rg.metric.len() < THROUGHPUT_RUNS as usize {
            return Err(kernel_err(format!("GOOD {} could not be measured: {} ({:?})", &good[..12], rg.reason, rg.titles)));
        }
        rg.verdict = StepVerdict::Good;
        let floor = rules::min_floor(cell.timing, &metric);
        t.mode = Mode::Throughput { baseline: rg.metric.clone(), threshold_pct: o.threshold_pct, floor_pct: floor, runs: THROUGHPUT_RUNS, max_runs: o.max_runs.max(THROUGHPUT_RUNS) };
        log_step(&rg, &mut bisect_log);
        all_steps.push(rg);
        let rb = t.test(&bad)?;
        log_step(&rb, &mut bisect_log);
        if rb.verdict != StepVerdict::Bad {
            return Err(kernel_err(format!("BAD {} is not bad: {}", &bad[..12], rb.reason)));
        }
        all_steps.push(rb);
        (k, k_reason) = (THROUGHPUT_RUNS, format!("throughput mode: {THROUGHPUT_RUNS} runs per step ({} timing), noise floor {floor:.2}%", cell.timing));
        (signature, reproduction, rate, mode) = (None, None, 1.0, format!("throughput {metric} {:+}% ({} timing)", o.threshold_pct, cell.timing));
    }

    let inner = &commits[..commits.len() - 1];
    let mut found = if inner.is_empty() {
        Search { culprit: Some(bad.clone()), candidates: vec![bad.clone()], steps: vec![] }
    } else {
        // BAD is already known bad: search the commits strictly between.
        let mut with_bad: Vec<String> = inner.to_vec();
        with_bad.push(bad.clone());
        let mut shown = Vec::new();
        let f = search(&with_bad, &mut t, &mut |r| {
            eprintln!("bisect: {} is {} ({}, {} run(s))", &r.commit[..12], r.verdict.as_str(), r.reason, r.runs);
            shown.push(r.clone());
        })?;
        for r in &shown {
            log_step(r, &mut bisect_log);
        }
        f
    };
    all_steps.append(&mut found.steps);

    // No-op: the culprit's bzImage is byte for byte its parent's.
    let no_op_change = found.culprit.as_ref().and_then(|c| {
        let parent = clone.parent(c).ok()?;
        no_op(&all_steps, c, &parent)
    });

    // Revert check: BAD with the culprit reverted should be good.
    let (revert_check, revert_note) = match &found.culprit {
        Some(c) if *c != good => {
            let patch = run_dir.join("revert.patch");
            crate::cache::write_atomic(&patch, clone.revert_diff(c)?.as_bytes())?;
            t.extra_patches = vec![patch];
            if let Some(sig) = &signature {
                t.mode = Mode::Signature { signature: sig.clone(), k };
            } // else: still the throughput mode against GOOD's samples
            let r = t.test(&bad)?;
            t.extra_patches.clear();
            let out = match r.verdict {
                StepVerdict::Good => (RevertCheck::Good, format!("BAD with {} reverted: {}", &c[..12], r.reason)),
                StepVerdict::Bad => (RevertCheck::Bad, format!("BAD with {} reverted is still bad: {}", &c[..12], r.reason)),
                StepVerdict::Skip => (RevertCheck::NotApplicable, format!("BAD with {} reverted: {}", &c[..12], r.reason)),
            };
            all_steps.push(StepResult { reason: format!("revert check: {}", r.reason), ..r });
            out
        }
        _ => (RevertCheck::NotApplicable, "no single culprit".into()),
    };
    if let Some(c) = &found.culprit {
        let i = info(clone, c);
        bisect_log.push(format!("# first bad commit: [{}] {}", i.commit, i.subject));
    } else {
        bisect_log.push(format!("# only skipped commits left to test; candidates: {}", found.candidates.join(" ")));
    }

    let (conf, conf_note) = if signature.is_some() {
        let c = confidence(&all_steps, rate);
        (
            Some((c * 1000.0).round() / 1000.0),
            format!("product over the GOOD steps of 1 - (1 - r)^runs, r = {rate:.3} the Wilson 95% lower bound of BAD's reproduction rate: the probability that none of them hid the bug"),
        )
    } else {
        (None, "throughput mode: each step is the rule book's verdict on 95% bootstrap intervals of the boots' medians; no reproduction rate applies".into())
    };
    let report = BisectReport {
        scenario: s.name.clone(),
        cell: cell.axes(),
        variant: variant.name.clone(),
        good: info(clone, &good),
        bad: info(clone, &bad),
        mode,
        signature,
        reproduction,
        k,
        k_reason,
        culprit: found.culprit.as_ref().map(|c| info(clone, c)),
        candidates: found.candidates.iter().map(|c| info(clone, c)).collect(),
        steps: all_steps.iter().map(|r| BisectStep::new(r, info(clone, &r.commit).subject)).collect(),
        builds: t.builds,
        confidence: conf,
        confidence_note: conf_note,
        no_op_change,
        revert_check,
        revert_note,
        results_dir: run_dir.clone(),
        log: bisect_log.join("\n") + "\n",
    };
    crate::cache::write_atomic(&run_dir.join("bisect.log"), report.log.as_bytes())?;
    crate::cache::write_atomic(&run_dir.join("bisect.json"), &serde_json::to_vec_pretty(&report).unwrap())?;
    crate::cache::write_atomic(&run_dir.join("bisect.md"), markdown(&report).as_bytes())?;
    let _ = run_id;
    Ok(report)
}

/// Whether `culprit` built the same bzImage as `parent` (None when either
/// was not built). The revert check (BAD + revert) is not the culprit's build.
pub fn no_op(steps: &[StepResult], culprit: &str, parent: &str) -> Option<bool> {
    let sha = |c: &str| steps.iter().find(|r| r.commit == c && !r.reason.starts_with("revert check")).and_then(|r| r.bzimage_sha256.clone());
    Some(sha(culprit)? == sha(parent)?)
}

/// bisect.md: the result, then every step.
pub fn markdown(r: &BisectReport) -> String {
    let mut s = format!("# bisect: {} / {} ({})\n\n", r.scenario, r.cell, r.variant);
    s += &format!("GOOD `{}` {}  \nBAD `{}` {}  \nmode: {}\n\n", &r.good.commit[..12], r.good.subject, &r.bad.commit[..12], r.bad.subject, r.mode);
    if r.mode.contains("icount") {
        s += "Throughput in icount timing is MB per *virtual* second (guest time = instructions executed).\n\n";
    }
    if let Some(sig) = &r.signature {
        s += &format!("signature: `{sig}`  \nk = {}: {}\n\n", r.k, r.k_reason);
    }
    match &r.culprit {
        Some(c) => s += &format!("**first bad commit: `{}` {}** ({})\n\n", c.commit, c.subject, c.author),
        None => {
            s += "**no single culprit**: skipped commits leave these candidates:\n\n";
            for c in &r.candidates {
                s += &format!("- `{}` {} ({})\n", c.commit, c.subject, c.author);
            }
            s += "\n";
        }
    }
    s += &format!(
        "confidence: {} ({})  \nno-op change: {}  \nrevert check: {} ({})  \nkernel builds: {}\n\n",
        r.confidence.map_or("n/a".to_string(), |c| format!("{c:.3}")),
        r.confidence_note,
        r.no_op_change.map(|b| if b { "yes (bzImage identical to its parent's)" } else { "no" }).unwrap_or("n/a"),
        r.revert_check.as_str(),
        r.revert_note,
        r.builds
    );
    s += "| # | commit | subject | verdict | runs | build s | titles / reason |\n|---|---|---|---|---|---|---|\n";
    // Build seconds and titles as JSON writes them (`0.0`, `["a"]`), as this table always has.
    for (i, st) in r.steps.iter().enumerate() {
        s += &format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |\n",
            i + 1,
            st.commit.get(..12).unwrap_or(""),
            st.subject.replace('|', "\\|"),
            st.verdict.as_str(),
            st.runs,
            serde_json::to_string(&st.build_seconds).unwrap_or_default(),
            format!("{} {}", serde_json::to_string(&st.titles).unwrap_or_default(), st.reason).replace('|', "\\|")
        );
    }
    s += "\nReplay: `git bisect replay bisect.log`\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Scripted verdicts; counts calls.
    struct Fake {
        verdicts: BTreeMap<String, StepVerdict>,
        tested: Vec<String>,
    }

    impl Tester for Fake {
        fn test(&mut self, c: &str) -> Result<StepResult> {
            self.tested.push(c.to_string());
            let mut r = StepResult::skip(c, "scripted");
            r.verdict = self.verdicts[c];
            r.runs = 1;
            Ok(r)
        }
    }

    fn history(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:03}")).collect()
    }

    /// Commits before `culprit` good, from it on bad, `skip` skipped.
    fn fake(commits: &[String], culprit: usize, skip: &[usize]) -> Fake {
        let verdicts = commits
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = if skip.contains(&i) { StepVerdict::Skip } else if i < culprit { StepVerdict::Good } else { StepVerdict::Bad };
                (c.clone(), v)
            })
            .collect();
        Fake { verdicts, tested: vec![] }
    }

    #[test]
    fn culprit_found_in_log2_steps_at_every_position() {
        for n in [1usize, 2, 3, 7, 17, 100, 1000] {
            let commits = history(n);
            let bound = (n as f64).log2().ceil() as usize;
            for culprit in 0..n {
                let mut f = fake(&commits, culprit, &[]);
                let s = search(&commits, &mut f, &mut |_| {}).unwrap();
                assert_eq!(s.culprit.as_deref(), Some(commits[culprit].as_str()), "n={n} culprit={culprit}");
                assert!(f.tested.len() <= bound, "n={n} culprit={culprit}: {} tests > {bound}", f.tested.len());
                assert!(!f.tested.contains(commits.last().unwrap()), "BAD retested");
                let unique: BTreeSet<_> = f.tested.iter().collect();
                assert_eq!(unique.len(), f.tested.len(), "a commit tested twice");
            }
        }
    }

    #[test]
    fn skip_right_before_the_culprit_leaves_both_as_candidates() {
        let commits = history(17);
        for culprit in 1..16 {
            let mut f = fake(&commits, culprit, &[culprit - 1]);
            let s = search(&commits, &mut f, &mut |_| {}).unwrap();
            // Only the skipped one and the culprit can be first bad.
            assert_eq!(s.candidates, vec![commits[culprit - 1].clone(), commits[culprit].clone()], "culprit={culprit}");
            assert_eq!(s.culprit, None);
            assert!(f.tested.len() <= 5 + 2, "culprit={culprit}: {} tests", f.tested.len());
        }
    }

    #[test]
    fn skip_right_after_the_culprit_still_finds_it() {
        let commits = history(17);
        for culprit in 0..15 {
            let mut f = fake(&commits, culprit, &[culprit + 1]);
            let s = search(&commits, &mut f, &mut |_| {}).unwrap();
            assert_eq!(s.culprit.as_deref(), Some(commits[culprit].as_str()), "culprit={culprit}");
        }
    }

    #[test]
    fn all_skipped_gives_every_commit_as_candidate() {
        let commits = history(5);
        let mut f = fake(&commits, 4, &[0, 1, 2, 3]);
        let s = search(&commits, &mut f, &mut |_| {}).unwrap();
        assert_eq!(s.candidates, commits);
        assert_eq!(f.tested.len(), 4);
    }

    fn fail(t: &str) -> RunObs {
        RunObs::Fail { title: t.into(), problems: vec![] }
    }
    const SIG: &str = "INFO: task hung in ext4_break_layouts";

    fn decide(mode: Mode, runs: Vec<RunObs>) -> (String, u32) {
        let mut j = StepJudge::new(mode);
        for r in runs {
            match j.push(r) {
                Decision::More => {}
                Decision::Done(v, _) => return (v.as_str().into(), j.runs),
                Decision::Abort(why) => return (format!("abort: {why}"), j.runs),
            }
        }
        ("more".into(), j.runs)
    }

    #[test]
    fn step_rules() {
        let sig = || Mode::Signature { signature: SIG.into(), k: 3 };
        let pass = || RunObs::Pass { metric: None };
        // Bad at the first matching failure.
        assert_eq!(decide(sig(), vec![pass(), fail(SIG), pass()]), ("bad".into(), 2));
        // Good after k clean runs.
        assert_eq!(decide(sig(), vec![pass(), pass(), pass(), fail(SIG)]), ("good".into(), 3));
        assert_eq!(decide(sig(), vec![pass(), pass()]), ("more".into(), 2));
        // An unrelated crash is a skip, not bad.
        assert_eq!(decide(sig(), vec![pass(), fail("WARNING in try_grab_page")]), ("skip".into(), 2));
        // The signature as one of the problems counts.
        let hidden = RunObs::Fail { title: "BUG: unable to handle kernel".into(), problems: vec![format!("Hang: {SIG}")] };
        assert_eq!(decide(sig(), vec![hidden]), ("bad".into(), 1));
        // A kernel that does not boot is a skip.
        assert_eq!(decide(sig(), vec![RunObs::Error { title: "boot failed: no agent hello".into() }]), ("skip".into(), 1));
        // Harness failures are retried, then abort.
        let miss = || RunObs::Miss { reason: "DAX not active on /mnt/f".into() };
        assert_eq!(decide(sig(), vec![miss(), pass(), miss(), miss(), pass(), pass()]), ("good".into(), 3));
        let (v, _) = decide(sig(), vec![miss(), miss(), miss()]);
        assert!(v.starts_with("abort: harness failed 3 times") && v.contains("DAX not active"), "{v}");
    }

    #[test]
    fn throughput_rules() {
        // icount-like figures: GOOD at 874 MB/s, a 1 % floor, a -3 % threshold.
        let mode = |runs| Mode::Throughput { baseline: vec![874.0, 874.4, 874.2], threshold_pct: -3.0, floor_pct: 1.0, runs, max_runs: 5 };
        let p = |m: f64| RunObs::Pass { metric: Some(m) };
        // -5 %: bad.
        assert_eq!(decide(mode(3), vec![p(830.0), p(830.5), p(830.2)]), ("bad".into(), 3));
        assert_eq!(decide(mode(3), vec![p(874.1), p(874.3), p(873.9)]), ("good".into(), 3));
        // -2 %: a real regression, but smaller than the threshold: good.
        assert_eq!(decide(mode(3), vec![p(856.5), p(856.6), p(856.4)]), ("good".into(), 3));
        assert_eq!(decide(mode(3), vec![p(830.0), fail(SIG)]), ("skip".into(), 2));
        // Inconclusive (large spread) runs more, up to max_runs, then skips.
        let noisy = vec![p(600.0), p(610.0), p(900.0), p(880.0), p(620.0), p(874.0)];
        assert_eq!(decide(mode(3), noisy), ("skip".into(), 5));
    }

    #[test]
    fn wilson_lower_bound() {
        // Values from the closed form, z = 1.6449 (one-sided 95 %).
        let near = |a: f64, b: f64| (a - b).abs() < 5e-4;
        assert!(near(wilson_lower(3, 3), 0.5258), "{}", wilson_lower(3, 3));
        assert!(near(wilson_lower(10, 10), 0.7871), "{}", wilson_lower(10, 10));
        assert!(near(wilson_lower(1, 3), 0.0783), "{}", wilson_lower(1, 3));
        assert_eq!(wilson_lower(0, 5), 0.0);
        assert_eq!(wilson_lower(0, 0), 0.0);
        // Below the point estimate, and tighter with more runs.
        assert!(wilson_lower(2, 3) < 2.0 / 3.0 && wilson_lower(20, 30) > wilson_lower(2, 3));
    }

    #[test]
    fn adaptive_k_from_the_lower_bound() {
        // ceil(ln 0.05 / ln(1 - lower)): 3/3 is no longer k = 1.
        assert_eq!(runs_for_good(3, 3, 10).0, 5); // 0.526: 4.01
        assert_eq!(runs_for_good(10, 10, 10).0, 2); // 0.787: 1.94
        assert_eq!(runs_for_good(2, 3, 20).0, 11); // 0.254: 10.2
        let (k, why) = runs_for_good(1, 3, 5);
        assert_eq!(k, 5);
        assert!(why.contains("capped by --max-runs at 5") && why.contains("33% detection"), "{why}");
        let (k, why) = runs_for_good(3, 3, 10);
        assert!(why.contains("3/3") && why.contains("at least 53%"), "{why}");
        assert!(detection(wilson_lower(3, 3), k) >= 0.95);
    }

    #[test]
    fn confidence_multiplies_good_steps() {
        let step = |v, runs| StepResult { verdict: v, runs, ..StepResult::skip("c", "") };
        let steps = vec![step(StepVerdict::Good, 2), step(StepVerdict::Bad, 1), step(StepVerdict::Skip, 0), step(StepVerdict::Good, 2)];
        assert!((confidence(&steps, 0.5) - 0.75 * 0.75).abs() < 1e-9);
        assert_eq!(confidence(&steps, 1.0), 1.0);
    }

    /// The reason comes from the error's typed field, not from its text:
    /// a message with an older error line in its tail does not win.
    #[test]
    fn a_build_failure_is_named_by_the_compiler_error() {
        let msg = "kernel build failed for variant bisect-ec08: `make -C /x bzImage` failed (exit status: 2); full log: /k/build.log; last lines:\n  CC      mm/gup.o\nmm/gup.c:10:1: error: a later error\nmake[3]: *** [scripts/Makefile.build:250: block/bio.o] Error 1";
        let line = "../../sources/git-1/block/bio.c:1752:29: error: expected expression before ';' token";
        let e = kernel_err(msg).with_compiler_error(Some(line.into()));
        assert_eq!(build_skip_reason(&e).unwrap(), format!("build failed: {line}"));
        let e = kernel_err("kernel build failed for variant bisect-ec08: `make` failed\nld: cannot find -lfoo");
        assert_eq!(build_skip_reason(&e).unwrap(), "build failed: kernel build failed for variant bisect-ec08: `make` failed");
        let e = bad_input("patch /r/revert.patch does not apply: block/bio.c: hunk `@@ -1121,7 +1121,12 @@` rejected");
        assert_eq!(build_skip_reason(&e).unwrap(), e.msg);
        assert!(build_skip_reason(&infra("No space left on device")).is_none(), "a host failure must stop the bisection");
    }

    #[test]
    fn no_op_compares_the_culprits_bzimage_with_its_parents() {
        let built = |c: &str, sha: Option<&str>| StepResult { bzimage_sha256: sha.map(str::to_string), ..StepResult::skip(c, "") };
        let steps = vec![built("p", Some("aa")), built("c", Some("aa")), built("d", Some("bb")), built("s", None)];
        assert_eq!(no_op(&steps, "c", "p"), Some(true));
        assert_eq!(no_op(&steps, "d", "c"), Some(false));
        assert_eq!(no_op(&steps, "s", "d"), None);
        assert_eq!(no_op(&steps, "c", "never-built"), None);
    }


    /// A report with every field set, as one bisection could give.
    fn sample_report() -> BisectReport {
        let c = |h: &str, s: &str| CommitInfo { commit: h.repeat(40), subject: s.into(), author: "A U Thor <a@example.org>".into() };
        let step = |h: &str, subject: &str, verdict, titles: Vec<&str>, build_seconds, reason: &str, metric| BisectStep {
            build_seconds,
            commit: h.repeat(40),
            metric,
            reason: reason.into(),
            runs: 3,
            subject: subject.into(),
            titles: titles.into_iter().map(String::from).collect(),
            verdict,
        };
        BisectReport {
            scenario: "bisect-fixture".into(),
            cell: "pmem-ext4-pte-truncate-during-dio".into(),
            variant: "stock".into(),
            good: c("a", "good one"),
            bad: c("b", "bad | tip"),
            mode: "signature".into(),
            signature: Some(SIG.into()),
            reproduction: Some(Reproduction { hits: 2, rate: 2.0 / 3.0, rate_lower_95: 0.254, runs: 3 }),
            k: 11,
            k_reason: "BAD reproduced in 2/3 runs".into(),
            culprit: Some(c("c", "the culprit")),
            candidates: vec![c("c", "the culprit")],
            steps: vec![
                step("b", "bad | tip", StepVerdict::Bad, vec![SIG, SIG], 0.0, "signature in 2/3 run(s)", vec![]),
                step("c", "the culprit", StepVerdict::Good, vec![], 123.4, "revert check: 3 clean run(s)", vec![874.5, 870.0]),
            ],
            builds: 2,
            confidence: Some(0.95),
            confidence_note: "product".into(),
            no_op_change: Some(false),
            revert_check: RevertCheck::NotApplicable,
            revert_note: "BAD with cccccccccccc reverted: patch does not apply".into(),
            results_dir: PathBuf::from("results/bisect-x"),
            log: "git bisect start\n".into(),
        }
    }

    /// bisect.json and bisect.md byte for byte as they were when the steps
    /// were `serde_json::Value`s (the golden files were written by that code).
    #[test]
    fn report_files_keep_their_form() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bisect");
        let r = sample_report();
        let json = String::from_utf8(serde_json::to_vec_pretty(&r).unwrap()).unwrap();
        assert_eq!(json, std::fs::read_to_string(data.join("report.json")).unwrap());
        assert_eq!(markdown(&r), std::fs::read_to_string(data.join("report.md")).unwrap());
    }
}