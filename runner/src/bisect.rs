//! `kregress bisect`: find the commit that brought a failure (or a throughput
//! drop) into one cell of a scenario.
//!
//! Built like syzkaller's pkg/bisect: the search ([`search`]) is pure — a
//! list of commits and a [`Tester`] that says good, bad or skip for one commit
//! in the [`Mode`] the call passes — and knows nothing of kernels or VMs. How
//! a commit is tested is separate: [`StepJudge`] turns the runs of one step
//! into a verdict (pure, with the rules below), and [`KernelTester`] builds the
//! commit in kregress's own clone (incrementally, through
//! [`crate::kernel::build`]) and boots the cell.
//!
//! [`run`] builds those real dependencies (the clone, read through [`Repo`],
//! the initramfs, the [`KernelTester`]) and hands them to [`run_impl`], which
//! is the bisection on any history and tester: [`establish`] (BAD and GOOD,
//! and the mode of every later step), [`search`], [`no_op_check`],
//! [`revert_check`]. The unit tests drive it with a list of commits and a
//! scripted tester.
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
pub(crate) use crate::kernel::source::CommitInfo;
use crate::kernel::{self, source, KernelSpec};
use crate::outcome::Outcome;
use crate::results::{self, CellResult};
use crate::rules::{self, Status};
use crate::scenario::{self, Cell, Scenario, Source, Timing, Variant};
use crate::vm::{self, Accel};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepVerdict {
    Good,
    Bad,
    Skip,
}

crate::text::named!(StepVerdict { Good => "good", Bad => "bad", Skip => "skip" });

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
    /// The commit reverted on top of this one: the revert check's step.
    pub reverted: Option<String>,
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
            reverted: None,
        }
    }
}

/// Tests one commit: builds it (with `revert` applied first when given,
/// then the variant's patches) and judges its runs in `mode`. An `Err` stops
/// the bisection (the host or harness failed).
pub trait Tester {
    fn test(&mut self, commit: &str, mode: &Mode, revert: Option<&Path>) -> Result<StepResult>;
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
/// most once, in `mode`; `on_step` sees every step as it finishes.
pub fn search(commits: &[String], mode: &Mode, t: &mut dyn Tester, on_step: &mut dyn FnMut(&StepResult)) -> Result<Search> {
    assert!(!commits.is_empty(), "search needs at least BAD");
    let (mut lo, mut hi) = (-1isize, commits.len() as isize - 1);
    let mut skipped = vec![false; commits.len()];
    let mut steps = Vec::new();
    while let Some(i) = next(lo, hi, &skipped) {
        let r = t.test(&commits[i], mode, None)?;
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
    let seen = format!("BAD reproduced in {hits}/{runs} runs (at least {:.0}% with 95% confidence, Wilson lower bound)", rate * 100.0);
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
    Pass {
        metric: Option<f64>,
    },
    Fail {
        title: String,
        problems: Vec<String>,
    },
    /// The kernel did not boot.
    Error {
        title: String,
    },
    /// The harness failed.
    Miss {
        reason: String,
    },
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
    pub initrd: PathBuf,
    pub accel_want: Accel,
    pub accel: Option<Accel>,
    pub run_dir: PathBuf,
    pub jobs: usize,
    /// What a PASS run's metric is ([`RunObs::from_cell`]).
    pub metric: String,
    /// Step counter, for directory names.
    pub n: usize,
}

impl Tester for KernelTester<'_> {
    fn test(&mut self, commit: &str, mode: &Mode, revert: Option<&Path>) -> Result<StepResult> {
        self.n += 1;
        let id = short(commit);
        eprintln!("bisect: step {}: building {id}", self.n);
        let patches = revert.map(Path::to_path_buf).into_iter().chain(self.variant.patches.iter().cloned()).collect();
        let spec = KernelSpec {
            variant: format!("bisect-{id}"),
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
        let dir = self.run_dir.join("steps").join(format!("{:02}-{id}", self.n));
        let mut judge = StepJudge::new(mode.clone());
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
                Decision::Abort(why) => return Err(infra(format!("bisect: testing {id}: {why}; results in {}", dir.display()))),
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
            reverted: None,
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

/// What [`run`] resolved for [`run_impl`]: the names the report gives, the
/// cell's timing and the commits, GOOD and BAD as full ids.
#[derive(Debug, Clone)]
pub struct Target {
    pub scenario: String,
    pub variant: String,
    /// The cell's axes ([`Cell::axes`]).
    pub cell: String,
    /// The cell's timing: throughput mode's noise floor.
    pub timing: Timing,
    pub good: String,
    pub bad: String,
    /// The commits strictly between GOOD and BAD along BAD's first parents, oldest first.
    pub between: Vec<String>,
    /// `results/<run-id>/`: revert.patch is written there.
    pub run_dir: PathBuf,
}

/// The first 12 characters of a commit id, as messages show it.
fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// The commits strictly between `good` and `bad` along `bad`'s first
/// parents, oldest first; bad input when GOOD is not an ancestor of BAD or is BAD.
pub fn commits_between(repo: &dyn Repo, o: &BisectOpts, good: &str, bad: &str) -> Result<Vec<String>> {
    if !repo.is_ancestor(good, bad) {
        return Err(bad_input(format!("--good {} is not an ancestor of --bad {}", o.good, o.bad)));
    }
    let mut commits = repo.first_parent_range(good, bad)?;
    // The last is BAD itself.
    if commits.pop().is_none() {
        return Err(bad_input("--good and --bad are the same commit"));
    }
    Ok(commits)
}

/// Runs a whole bisection: resolves the cell and the commits, builds the
/// real dependencies (kregress's clone of the repository, the initramfs, a
/// [`KernelTester`]) and runs [`run_impl`]. The post-run path
/// ([`crate::post::finish`]) writes bisect.log, bisect.json and bisect.md.
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
        let ids: Vec<String> = cells.iter().map(|c| c.key().axes()).collect();
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
    let scratch = tempfile::tempdir().map_err(|e| infra(format!("temp dir: {e}")).because(e))?;
    let log = scratch.path().join("git.log");
    let clone = source::prepare(&Source::Git { repo: o.repo.clone(), rev: o.bad.clone() }, None, &log)?;
    // prepare resolved BAD.
    let (good, bad) = match source::resolve(&o.repo, &o.good)? {
        Some(good) => (good, clone.commit.clone()),
        None => return Err(bad_input(format!("{}: no commit {}", o.repo.display(), o.good))),
    };
    let between = commits_between(&clone, o, &good, &bad)?;
    let (_, run_dir) = results::new_run_dir(&o.results_root, &format!("bisect-{}", s.name))?;
    let _ = std::fs::copy(&log, run_dir.join("git.log"));
    eprintln!("bisect: {} commit(s) from {} to {}, cell {}", between.len() + 1, short(&good), short(&bad), cell.key().axes());

    let image = crate::image::build(&crate::image::ImageOptions::default())?;
    let mut tester = KernelTester {
        scenario: &s,
        variant: variant.clone(),
        cell: cell.clone(),
        repo: o.repo.clone(),
        initrd: image.path.clone(),
        accel_want: o.accel,
        accel: None,
        run_dir: run_dir.clone(),
        jobs: o.jobs,
        metric: if metric.is_empty() { "fast_mb_per_s".into() } else { metric },
        n: 0,
    };
    let target = Target {
        scenario: s.name.clone(),
        variant: variant.name,
        cell: cell.key().axes(),
        timing: cell.timing,
        good,
        bad,
        between,
        run_dir,
    };
    run_impl(o, &target, &clone, &mut tester)
}

/// A bisection on any history and any tester (syzkaller's runImpl): checks
/// BAD and GOOD ([`establish`]), searches the commits between ([`search`]),
/// asks whether the culprit changed the bzImage at all ([`no_op_check`]) and
/// whether reverting it makes BAD good ([`revert_check`]). It writes only
/// revert.patch, into `at.run_dir`.
pub fn run_impl(o: &BisectOpts, at: &Target, repo: &dyn Repo, t: &mut dyn Tester) -> Result<BisectReport> {
    let ends = establish(o, at, t)?;
    let mut steps = ends.steps;
    let (culprit, candidates) = if at.between.is_empty() {
        (Some(at.bad.clone()), vec![at.bad.clone()])
    } else {
        // BAD is already known bad: search the commits strictly between.
        let mut with_bad = at.between.clone();
        with_bad.push(at.bad.clone());
        let found = search(&with_bad, &ends.mode, t, &mut |r| {
            eprintln!("bisect: {} is {} ({}, {} run(s))", short(&r.commit), r.verdict.as_str(), r.reason, r.runs);
        })?;
        steps.extend(found.steps);
        (found.culprit, found.candidates)
    };
    let mut log = bisect_log(repo, &steps);
    match &culprit {
        Some(c) => {
            let i = info(repo, c);
            log.push(format!("# first bad commit: [{}] {}", i.commit, i.subject));
        }
        None => log.push(format!("# only skipped commits left to test; candidates: {}", candidates.join(" "))),
    }

    let no_op_change = no_op_check(repo, &steps, culprit.as_deref());
    let (revert_check, revert_note) = match &culprit {
        Some(c) => {
            let (check, note, step) = revert_check(repo, t, &ends.mode, c, &at.bad, &at.run_dir.join("revert.patch"))?;
            steps.push(step);
            (check, note)
        }
        None => (RevertCheck::NotApplicable, "no single culprit".into()),
    };

    let (conf, conf_note) = if ends.signature.is_some() {
        let c = confidence(&steps, ends.rate);
        (
            Some((c * 1000.0).round() / 1000.0),
            format!("product over the GOOD steps of 1 - (1 - r)^runs, r = {:.3} the Wilson 95% lower bound of BAD's reproduction rate: the probability that none of them hid the bug", ends.rate),
        )
    } else {
        (None, "throughput mode: each step is the rule book's verdict on 95% bootstrap intervals of the boots' medians; no reproduction rate applies".into())
    };
    Ok(BisectReport {
        scenario: at.scenario.clone(),
        cell: at.cell.clone(),
        variant: at.variant.clone(),
        good: info(repo, &at.good),
        bad: info(repo, &at.bad),
        mode: ends.name,
        signature: ends.signature,
        reproduction: ends.reproduction,
        k: ends.k,
        k_reason: ends.k_reason,
        culprit: culprit.as_ref().map(|c| info(repo, c)),
        candidates: candidates.iter().map(|c| info(repo, c)).collect(),
        steps: steps.iter().map(|r| BisectStep::new(r, info(repo, &r.commit).subject)).collect(),
        // Every step builds a kernel (cache hits included).
        builds: steps.len(),
        confidence: conf,
        confidence_note: conf_note,
        no_op_change,
        revert_check,
        revert_note,
        results_dir: at.run_dir.clone(),
        log: log.join("\n") + "\n",
    })
}

/// bisect.log's lines for `steps` (BAD's, GOOD's and the search's: the
/// revert check is no `git bisect` step), as `git bisect replay` reads them,
/// with the subjects as comments.
fn bisect_log(repo: &dyn Repo, steps: &[StepResult]) -> Vec<String> {
    let mut log = vec!["git bisect start".to_string()];
    for r in steps {
        let i = info(repo, &r.commit);
        log.push(format!("# {}: [{}] {}", r.verdict.as_str(), i.commit, i.subject));
        log.push(format!("git bisect {} {}", r.verdict.as_str(), i.commit));
    }
    log
}

/// What testing BAD and GOOD established: how every later step is judged.
#[derive(Debug, Clone)]
pub struct Ends {
    /// BAD's and GOOD's steps, in the order they were tested.
    pub steps: Vec<StepResult>,
    /// The mode of every later step: the search's and the revert check's.
    pub mode: Mode,
    /// The report's `mode`: "signature", or "throughput METRIC T% (TIMING timing)".
    pub name: String,
    pub signature: Option<String>,
    pub reproduction: Option<Reproduction>,
    /// The lower bound of BAD's reproduction rate (1 in throughput mode).
    pub rate: f64,
    pub k: u32,
    pub k_reason: String,
}

/// Tests BAD and GOOD, in the mode `--metric` asks for: signature mode
/// ([`establish_signature`]) without one, throughput mode
/// ([`establish_throughput`]) with one. An `Err` (kernel class, exit 1)
/// when BAD is not bad or GOOD is not good: there is nothing to bisect.
pub fn establish(o: &BisectOpts, at: &Target, t: &mut dyn Tester) -> Result<Ends> {
    match o.metric.as_deref().filter(|m| !m.is_empty()) {
        None => establish_signature(o, at, t),
        Some(metric) => establish_throughput(o, at, metric, t),
    }
}

/// Signature mode: BAD first, measured over up to 3 runs: its most common
/// failure title is the signature (unless `--signature` names it) and its
/// hits give k ([`runs_for_good`]); then GOOD, which must not show it in k runs.
pub fn establish_signature(o: &BisectOpts, at: &Target, t: &mut dyn Tester) -> Result<Ends> {
    let bad = short(&at.bad);
    let mut rb = t.test(&at.bad, &Mode::Measure { runs: o.max_runs.clamp(1, 3) }, None)?;
    if rb.runs == 0 {
        return Err(kernel_err(format!("BAD {bad} could not be tested: {}", rb.reason)));
    }
    let sig = match &o.signature {
        Some(sg) => sg.clone(),
        None => rules::dominant_title(rb.titles.iter().map(String::as_str))
            .ok_or_else(|| kernel_err(format!("BAD {bad} is not bad: {} clean run(s) of {}; nothing to bisect", rb.runs, at.cell)))?,
    };
    if sig.starts_with("boot failed") {
        return Err(kernel_err(format!("BAD {bad} does not boot ({sig}); nothing to bisect")));
    }
    let hits = rb.titles.iter().filter(|tt| matches_signature(&sig, tt, &[])).count() as u32;
    if hits == 0 {
        return Err(kernel_err(format!("BAD {bad} is not bad: {:?} not seen in {} run(s) (seen: {:?})", sig, rb.runs, rb.titles)));
    }
    rb.verdict = StepVerdict::Bad;
    rb.reason = format!("signature in {hits}/{} run(s)", rb.runs);
    let (k, k_reason) = runs_for_good(hits, rb.runs, o.max_runs);
    eprintln!("bisect: signature {sig:?}; k = {k}: {k_reason}");
    let rate = wilson_lower(hits, rb.runs);
    let reproduction = Reproduction { hits, rate: hits as f64 / rb.runs as f64, rate_lower_95: rate, runs: rb.runs };
    let mode = Mode::Signature { signature: sig.clone(), k };
    let rg = t.test(&at.good, &mode, None)?;
    match rg.verdict {
        StepVerdict::Good => {}
        StepVerdict::Bad => return Err(kernel_err(format!("GOOD {} is not good: it shows {sig:?} too", short(&at.good)))),
        StepVerdict::Skip => return Err(kernel_err(format!("GOOD {} could not be tested: {}", short(&at.good), rg.reason))),
    }
    Ok(Ends {
        steps: vec![rb, rg],
        mode,
        name: "signature".into(),
        signature: Some(sig),
        reproduction: Some(reproduction),
        rate,
        k,
        k_reason,
    })
}

/// Throughput mode: GOOD first, [`THROUGHPUT_RUNS`] boots whose `metric`
/// is the baseline; then BAD, which the rule book must call a regression
/// of at least `--threshold` against it.
pub fn establish_throughput(o: &BisectOpts, at: &Target, metric: &str, t: &mut dyn Tester) -> Result<Ends> {
    let mut rg = t.test(&at.good, &Mode::Measure { runs: THROUGHPUT_RUNS }, None)?;
    if rg.metric.len() < THROUGHPUT_RUNS as usize {
        return Err(kernel_err(format!("GOOD {} could not be measured: {} ({:?})", short(&at.good), rg.reason, rg.titles)));
    }
    rg.verdict = StepVerdict::Good;
    let floor = rules::min_floor(at.timing, metric);
    let mode = Mode::Throughput {
        baseline: rg.metric.clone(),
        threshold_pct: o.threshold_pct,
        floor_pct: floor,
        runs: THROUGHPUT_RUNS,
        max_runs: o.max_runs.max(THROUGHPUT_RUNS),
    };
    let rb = t.test(&at.bad, &mode, None)?;
    if rb.verdict != StepVerdict::Bad {
        return Err(kernel_err(format!("BAD {} is not bad: {}", short(&at.bad), rb.reason)));
    }
    Ok(Ends {
        steps: vec![rg, rb],
        mode,
        name: format!("throughput {metric} {:+}% ({} timing)", o.threshold_pct, at.timing),
        signature: None,
        reproduction: None,
        rate: 1.0,
        k: THROUGHPUT_RUNS,
        k_reason: format!("throughput mode: {THROUGHPUT_RUNS} runs per step ({} timing), noise floor {floor:.2}%", at.timing),
    })
}

/// The revert check: BAD with `culprit` reverted (its revert diff written
/// to `patch`, applied before the variant's patches), judged in `mode` as
/// the search's steps were. Good when that makes BAD good, bad when BAD
/// stays bad, not applicable when the step is a skip (the revert does not
/// apply or build, another failure). Returns the check, its note and the
/// step, marked as the revert's ([`StepResult::reverted`]).
pub fn revert_check(
    repo: &dyn Repo,
    t: &mut dyn Tester,
    mode: &Mode,
    culprit: &str,
    bad: &str,
    patch: &Path,
) -> Result<(RevertCheck, String, StepResult)> {
    crate::cache::write_atomic(patch, repo.revert_diff(culprit)?.as_bytes())?;
    let r = t.test(bad, mode, Some(patch))?;
    let c = short(culprit);
    let (check, note) = match r.verdict {
        StepVerdict::Good => (RevertCheck::Good, format!("BAD with {c} reverted: {}", r.reason)),
        StepVerdict::Bad => (RevertCheck::Bad, format!("BAD with {c} reverted is still bad: {}", r.reason)),
        StepVerdict::Skip => (RevertCheck::NotApplicable, format!("BAD with {c} reverted: {}", r.reason)),
    };
    let step = StepResult { reason: format!("revert check: {}", r.reason), reverted: Some(culprit.to_string()), ..r };
    Ok((check, note, step))
}

/// The no-op check: whether `culprit` built the same bzImage as its parent
/// ([`no_op`]); `None` without a single culprit or when either was not built.
pub fn no_op_check(repo: &dyn Repo, steps: &[StepResult], culprit: Option<&str>) -> Option<bool> {
    let c = culprit?;
    no_op(steps, c, &repo.parent(c).ok()?)
}

/// Whether `culprit` built the same bzImage as `parent` (None when either
/// was not built). The revert check's step (BAD + revert) is not BAD's build.
pub fn no_op(steps: &[StepResult], culprit: &str, parent: &str) -> Option<bool> {
    let sha = |c: &str| steps.iter().find(|r| r.commit == c && r.reverted.is_none()).and_then(|r| r.bzimage_sha256.clone());
    Some(sha(culprit)? == sha(parent)?)
}

/// bisect.md: the result, then every step.
pub fn markdown(r: &BisectReport) -> String {
    let mut s = format!("# bisect: {} / {} ({})\n\n", r.scenario, r.cell, r.variant);
    s += &format!(
        "GOOD `{}` {}  \nBAD `{}` {}  \nmode: {}\n\n",
        short(&r.good.commit),
        r.good.subject,
        short(&r.bad.commit),
        r.bad.subject,
        r.mode
    );
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
pub(crate) mod tests {
    use super::*;
    use crate::vm::Accel;
    use std::collections::{BTreeMap, BTreeSet};

    /// Scripted verdicts; counts calls.
    struct Fake {
        verdicts: BTreeMap<String, StepVerdict>,
        tested: Vec<String>,
    }

    impl Tester for Fake {
        fn test(&mut self, c: &str, _: &Mode, _: Option<&Path>) -> Result<StepResult> {
            self.tested.push(c.to_string());
            let mut r = StepResult::skip(c, "scripted");
            r.verdict = self.verdicts[c];
            r.runs = 1;
            Ok(r)
        }
    }

    /// The mode search passes on (Fake does not read it).
    const ANY: Mode = Mode::Measure { runs: 1 };

    fn history(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:03}")).collect()
    }

    /// Commits before `culprit` good, from it on bad, `skip` skipped.
    fn fake(commits: &[String], culprit: usize, skip: &[usize]) -> Fake {
        let verdicts = commits
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = if skip.contains(&i) {
                    StepVerdict::Skip
                } else if i < culprit {
                    StepVerdict::Good
                } else {
                    StepVerdict::Bad
                };
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
                let s = search(&commits, &ANY, &mut f, &mut |_| {}).unwrap();
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
            let s = search(&commits, &ANY, &mut f, &mut |_| {}).unwrap();
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
            let s = search(&commits, &ANY, &mut f, &mut |_| {}).unwrap();
            assert_eq!(s.culprit.as_deref(), Some(commits[culprit].as_str()), "culprit={culprit}");
        }
    }

    #[test]
    fn all_skipped_gives_every_commit_as_candidate() {
        let commits = history(5);
        let mut f = fake(&commits, 4, &[0, 1, 2, 3]);
        let s = search(&commits, &ANY, &mut f, &mut |_| {}).unwrap();
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
        // The revert check's build of the same commit (here listed first) is not its build.
        let reverted = StepResult { reverted: Some("c".into()), ..built("c", Some("cc")) };
        let steps = vec![reverted, built("p", Some("aa")), built("c", Some("aa"))];
        assert_eq!(no_op(&steps, "c", "p"), Some(true));
    }

    // ---- run_impl on a list of commits and a scripted tester ----------------

    /// A linear history: GOOD first, BAD last; ids of 40 characters, `c03…` the fourth.
    struct Line(Vec<String>);

    fn line(n: usize) -> Line {
        Line((0..n).map(|i| format!("c{i:02}{}", "0".repeat(37))).collect())
    }

    impl Line {
        fn at(&self, c: &str) -> usize {
            self.0.iter().position(|x| x == c).unwrap_or_else(|| panic!("no commit {c}"))
        }
        fn c(&self, i: usize) -> String {
            self.0[i].clone()
        }
    }

    impl Repo for Line {
        fn is_ancestor(&self, a: &str, d: &str) -> bool {
            self.at(a) <= self.at(d)
        }
        fn first_parent_range(&self, from: &str, to: &str) -> Result<Vec<String>> {
            Ok(self.0[self.at(from) + 1..=self.at(to)].to_vec())
        }
        fn describe(&self, c: &str) -> Result<CommitInfo> {
            Ok(CommitInfo { commit: c.into(), subject: format!("subject {}", &c[..3]), author: "A U Thor <a@example.org>".into() })
        }
        fn parent(&self, c: &str) -> Result<String> {
            self.at(c).checked_sub(1).map(|i| self.c(i)).ok_or_else(|| infra("root commit"))
        }
        fn revert_diff(&self, c: &str) -> Result<String> {
            Ok(format!("revert {}\n", &c[..3]))
        }
    }

    /// One call the scripted tester got.
    #[derive(Debug, Clone, PartialEq)]
    struct Call {
        commit: String,
        mode: Mode,
        /// The text of the revert patch it was given.
        revert: Option<String>,
    }

    /// A tester that plays kernels: `run(call, n)` is what run `n` of the
    /// call's kernel shows (`Err` at run 1: the kernel was not built, with
    /// that reason), and the real [`StepJudge`] judges the runs in the mode
    /// the call passed. Every call is recorded. A kernel's bzImage hash is
    /// its commit's id, but for the commits `same_image` maps to another.
    struct Kernels<F> {
        run: F,
        same_image: BTreeMap<String, String>,
        calls: Vec<Call>,
    }

    fn kernels<F: Fn(&Call, u32) -> std::result::Result<RunObs, String>>(run: F) -> Kernels<F> {
        Kernels { run, same_image: BTreeMap::new(), calls: vec![] }
    }

    impl<F: Fn(&Call, u32) -> std::result::Result<RunObs, String>> Tester for Kernels<F> {
        fn test(&mut self, commit: &str, mode: &Mode, revert: Option<&Path>) -> Result<StepResult> {
            let call = Call { commit: commit.into(), mode: mode.clone(), revert: revert.map(|p| std::fs::read_to_string(p).unwrap()) };
            self.calls.push(call.clone());
            if let Err(why) = (self.run)(&call, 1) {
                return Ok(StepResult::skip(commit, why));
            }
            let image = self.same_image.get(commit).cloned().unwrap_or(commit.into());
            let mut judge = StepJudge::new(mode.clone());
            for n in 1..=100 {
                match judge.push((self.run)(&call, n).unwrap()) {
                    Decision::More => {}
                    Decision::Done(verdict, reason) => {
                        let image = if revert.is_some() { format!("{image}+revert") } else { image };
                        let (runs, titles, metric) = (judge.runs, judge.titles, judge.metric);
                        return Ok(StepResult {
                            verdict,
                            runs,
                            titles,
                            reason,
                            metric,
                            bzimage_sha256: Some(image),
                            ..StepResult::skip(commit, "")
                        });
                    }
                    Decision::Abort(why) => return Err(infra(why)),
                }
            }
            panic!("the judge never decided on {commit} in {mode:?}")
        }
    }

    const CULPRIT: usize = 5;

    fn pass() -> RunObs {
        RunObs::Pass { metric: None }
    }

    /// The hang from `CULPRIT` on, in 2 runs of 3 (runs 1 and 3 of every 3);
    /// BAD with its revert is clean.
    fn hangs(l: &Line) -> impl Fn(&Call, u32) -> std::result::Result<RunObs, String> + '_ {
        hangs_from(l, CULPRIT)
    }

    fn hangs_from(l: &Line, culprit: usize) -> impl Fn(&Call, u32) -> std::result::Result<RunObs, String> + '_ {
        move |call, n| Ok(if l.at(&call.commit) >= culprit && call.revert.is_none() && n % 3 != 2 { fail(SIG) } else { pass() })
    }

    /// The metric from `CULPRIT` on 5 % lower (830 vs 874 MB/s), BAD with its revert as fast as GOOD.
    fn slows(l: &Line) -> impl Fn(&Call, u32) -> std::result::Result<RunObs, String> + '_ {
        move |call, n| {
            let base = if l.at(&call.commit) >= CULPRIT && call.revert.is_none() { 830.0 } else { 874.0 };
            Ok(RunObs::Pass { metric: Some(base + [0.0, 0.4, 0.2][n as usize % 3]) })
        }
    }

    fn opts(metric: Option<&str>) -> BisectOpts {
        BisectOpts {
            scenario: "scenarios/bisect-fixture.yaml".into(),
            repo: "/nowhere".into(),
            good: "c00".into(),
            bad: "master".into(),
            only: String::new(),
            variant: None,
            signature: None,
            max_runs: 5,
            metric: metric.map(String::from),
            threshold_pct: -3.0,
            accel: Accel::Tcg,
            results_root: "results".into(),
            jobs: 1,
        }
    }

    fn target(l: &Line, run_dir: &Path) -> Target {
        let n = l.0.len();
        Target {
            scenario: "bisect-fixture".into(),
            variant: "stock".into(),
            cell: "pmem-ext4-pte-truncate-during-dio".into(),
            timing: Timing::Icount,
            good: l.c(0),
            bad: l.c(n - 1),
            between: l.0[1..n - 1].to_vec(),
            run_dir: run_dir.into(),
        }
    }

    /// The modes of the calls, by commit, in order; the revert's as `+revert`.
    fn modes(calls: &[Call]) -> Vec<(String, Mode)> {
        calls.iter().map(|c| (format!("{}{}", &c.commit[..3], if c.revert.is_some() { "+revert" } else { "" }), c.mode.clone())).collect()
    }

    /// Signature mode end to end: BAD measured (3 runs), then every other
    /// step (GOOD, the search's, the revert check's) judged against BAD's
    /// signature with k clean runs; the culprit, the revert check and the
    /// log as `git bisect replay` reads it.
    #[test]
    fn a_signature_bisection_passes_the_signature_mode_to_every_step_after_bad() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let mut t = kernels(hangs(&l));
        let r = run_impl(&opts(None), &target(&l, d.path()), &l, &mut t).unwrap();
        let (k, k_reason) = runs_for_good(2, 3, 5);
        let sig = Mode::Signature { signature: SIG.into(), k };
        let want: Vec<(String, Mode)> = [
            ("c07", Mode::Measure { runs: 3 }),
            ("c00", sig.clone()),
            ("c03", sig.clone()),
            ("c05", sig.clone()),
            ("c04", sig.clone()),
            ("c07+revert", sig.clone()),
        ]
        .into_iter()
        .map(|(c, m)| (c.to_string(), m))
        .collect();
        assert_eq!(modes(&t.calls), want);
        assert_eq!(t.calls.last().unwrap().revert.as_deref(), Some("revert c05\n"));
        assert_eq!(std::fs::read_to_string(d.path().join("revert.patch")).unwrap(), "revert c05\n");

        assert_eq!(r.culprit.as_ref().map(|c| c.commit.as_str()), Some(l.0[CULPRIT].as_str()));
        assert_eq!((r.signature.as_deref(), r.k, r.k_reason.as_str()), (Some(SIG), k, k_reason.as_str()));
        assert_eq!(r.reproduction, Some(Reproduction { hits: 2, rate: 2.0 / 3.0, rate_lower_95: wilson_lower(2, 3), runs: 3 }));
        assert_eq!(r.revert_check, RevertCheck::Good);
        assert_eq!(r.revert_note, format!("BAD with c05000000000 reverted: {k} clean run(s)"));
        assert_eq!(r.no_op_change, Some(false));
        assert_eq!((r.builds, r.steps.len()), (6, 6));
        let verdicts: Vec<&str> = r.steps.iter().map(|s| s.verdict.as_str()).collect();
        assert_eq!(verdicts, ["bad", "good", "good", "bad", "good", "good"]);
        assert_eq!(r.steps[0].reason, "signature in 2/3 run(s)");
        assert_eq!(r.steps[5].reason, format!("revert check: {k} clean run(s)"));
        assert_eq!(r.steps[3].subject, "subject c05");
        let c = |i: usize| l.c(i);
        let log = format!(
            "git bisect start\n# bad: [{0}] subject c07\ngit bisect bad {0}\n# good: [{1}] subject c00\ngit bisect good {1}\n# good: [{2}] subject c03\ngit bisect good {2}\n# bad: [{3}] subject c05\ngit bisect bad {3}\n# good: [{4}] subject c04\ngit bisect good {4}\n# first bad commit: [{3}] subject c05\n",
            c(7),
            c(0),
            c(3),
            c(5),
            c(4)
        );
        assert_eq!(r.log, log, "the revert check is no git bisect step");
        // Four GOOD steps of k runs: GOOD, c03, c04 and (as it always was) the revert check's.
        let conf = detection(wilson_lower(2, 3), k).powi(4);
        assert!((r.confidence.unwrap() - (conf * 1000.0).round() / 1000.0).abs() < 1e-9, "{:?} vs {conf}", r.confidence);
    }

    /// Throughput mode end to end: GOOD measured (3 runs), then every
    /// other step (BAD, the search's, the revert check's) judged by the rule
    /// book against GOOD's samples.
    #[test]
    fn a_throughput_bisection_passes_the_throughput_mode_to_every_step_after_good() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let mut t = kernels(slows(&l));
        let r = run_impl(&opts(Some("fast_mb_per_s")), &target(&l, d.path()), &l, &mut t).unwrap();
        let th = Mode::Throughput { baseline: vec![874.4, 874.2, 874.0], threshold_pct: -3.0, floor_pct: 1.0, runs: 3, max_runs: 5 };
        let want: Vec<(String, Mode)> = [
            ("c00", Mode::Measure { runs: 3 }),
            ("c07", th.clone()),
            ("c03", th.clone()),
            ("c05", th.clone()),
            ("c04", th.clone()),
            ("c07+revert", th.clone()),
        ]
        .into_iter()
        .map(|(c, m)| (c.to_string(), m))
        .collect();
        assert_eq!(modes(&t.calls), want);
        assert_eq!(r.culprit.as_ref().map(|c| c.commit.as_str()), Some(l.0[CULPRIT].as_str()));
        assert_eq!(r.mode, "throughput fast_mb_per_s -3% (icount timing)");
        assert_eq!((r.signature.as_ref(), r.reproduction.as_ref(), r.confidence), (None, None, None));
        assert_eq!(r.revert_check, RevertCheck::Good, "{}", r.revert_note);
        let verdicts: Vec<&str> = r.steps.iter().map(|s| s.verdict.as_str()).collect();
        assert_eq!(verdicts, ["good", "bad", "good", "bad", "good", "good"]);
        assert!(r.steps[1].reason.contains("THROUGHPUT_REGRESSION"), "{}", r.steps[1].reason);
    }

    /// No single culprit (the commit before it does not build): no revert
    /// check, no no-op answer, and the log says what is left.
    #[test]
    fn without_a_single_culprit_there_is_no_revert_check() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let hang = hangs(&l);
        let mut t =
            kernels(
                |call: &Call, n| {
                    if call.commit == l.c(CULPRIT - 1) {
                        Err("build failed: mm/gup.c:1:1: error: x".into())
                    } else {
                        hang(call, n)
                    }
                },
            );
        let r = run_impl(&opts(None), &target(&l, d.path()), &l, &mut t).unwrap();
        assert_eq!(r.culprit, None);
        assert_eq!(r.candidates.iter().map(|c| c.commit.clone()).collect::<Vec<_>>(), vec![l.c(4), l.c(5)]);
        assert_eq!((r.revert_check, r.revert_note.as_str(), r.no_op_change), (RevertCheck::NotApplicable, "no single culprit", None));
        assert!(t.calls.iter().all(|c| c.revert.is_none()));
        assert!(r.log.ends_with(&format!("# only skipped commits left to test; candidates: {} {}\n", l.c(4), l.c(5))), "{}", r.log);
    }

    /// establish in signature mode: BAD's runs name the signature and k,
    /// GOOD is held to them; a GOOD that shows the signature, or cannot be
    /// tested, and a BAD that is not bad, stop the bisection (exit 1).
    #[test]
    fn establishing_bad_and_good_by_signature() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let at = target(&l, d.path());
        let mut t = kernels(hangs(&l));
        let ends = establish(&opts(None), &at, &mut t).unwrap();
        let (k, k_reason) = runs_for_good(2, 3, 5);
        assert_eq!(
            (ends.mode.clone(), ends.k, ends.k_reason.as_str()),
            (Mode::Signature { signature: SIG.into(), k }, k, k_reason.as_str())
        );
        assert_eq!((ends.name.as_str(), ends.rate), ("signature", wilson_lower(2, 3)));
        let steps: Vec<_> = ends.steps.iter().map(|s| (&s.commit[..3], s.verdict, s.runs, s.titles.len())).collect();
        assert_eq!(steps, vec![("c07", StepVerdict::Bad, 3, 2), ("c00", StepVerdict::Good, k, 0)]);

        let err = |run: &dyn Fn(&Call, u32) -> std::result::Result<RunObs, String>, o: &BisectOpts| {
            let e = establish(o, &at, &mut kernels(run)).unwrap_err();
            assert_eq!(e.class, Class::Kernel, "{}", e.msg);
            e.msg
        };
        let hang = hangs(&l);
        let good_hangs = |c: &Call, n| if l.at(&c.commit) == 0 { Ok(fail(SIG)) } else { hang(c, n) };
        assert_eq!(err(&good_hangs, &opts(None)), format!("GOOD c00000000000 is not good: it shows {SIG:?} too"));
        let good_unbuilt = |c: &Call, n| if l.at(&c.commit) == 0 { Err("build failed: mm/gup.c:1:1: error: x".into()) } else { hang(c, n) };
        assert_eq!(err(&good_unbuilt, &opts(None)), "GOOD c00000000000 could not be tested: build failed: mm/gup.c:1:1: error: x");
        let good_other = |c: &Call, n| if l.at(&c.commit) == 0 { Ok(fail("WARNING in try_grab_page")) } else { hang(c, n) };
        assert_eq!(err(&good_other, &opts(None)), "GOOD c00000000000 could not be tested: a different failure: WARNING in try_grab_page");

        assert_eq!(
            err(&|_: &Call, _| Ok(pass()), &opts(None)),
            "BAD c07000000000 is not bad: 3 clean run(s) of pmem-ext4-pte-truncate-during-dio; nothing to bisect"
        );
        let named = BisectOpts { signature: Some("BUG: KASAN".into()), ..opts(None) };
        assert!(err(&hang, &named).starts_with("BAD c07000000000 is not bad: \"BUG: KASAN\" not seen in 3 run(s)"));
        assert_eq!(err(&|_: &Call, _| Err("build failed: x".into()), &opts(None)), "BAD c07000000000 could not be tested: build failed: x");
    }

    /// establish in throughput mode: GOOD's 3 samples are the baseline BAD
    /// is judged against; a GOOD that cannot be measured, and a BAD that is
    /// not slower by the threshold, stop the bisection (exit 1).
    #[test]
    fn establishing_good_and_bad_by_throughput() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let at = target(&l, d.path());
        let o = opts(Some("fast_mb_per_s"));
        let ends = establish(&o, &at, &mut kernels(slows(&l))).unwrap();
        assert_eq!(
            ends.steps.iter().map(|s| (&s.commit[..3], s.verdict)).collect::<Vec<_>>(),
            vec![("c00", StepVerdict::Good), ("c07", StepVerdict::Bad)]
        );
        assert_eq!(ends.steps[0].metric, vec![874.4, 874.2, 874.0]);
        let Mode::Throughput { baseline, .. } = &ends.mode else { panic!("{:?}", ends.mode) };
        assert_eq!(baseline, &ends.steps[0].metric);

        let err = |run: &dyn Fn(&Call, u32) -> std::result::Result<RunObs, String>| {
            let e = establish(&o, &at, &mut kernels(run)).unwrap_err();
            assert_eq!(e.class, Class::Kernel, "{}", e.msg);
            e.msg
        };
        let slow = slows(&l);
        let good_fails = |c: &Call, n| if l.at(&c.commit) == 0 && n == 2 { Ok(fail(SIG)) } else { slow(c, n) };
        assert_eq!(err(&good_fails), format!("GOOD c00000000000 could not be measured: measured 3 run(s) ([{SIG:?}])"));
        let all_fast = |c: &Call, n| slow(&Call { commit: l.c(0), ..c.clone() }, n);
        let e = err(&all_fast);
        assert!(e.starts_with("BAD c07000000000 is not bad: median") && e.contains("NO_CHANGE"), "{e}");
    }

    /// The revert check: BAD with the culprit's revert (written as a patch
    /// and passed to the tester), judged in the mode given; good when that
    /// passes, bad when BAD still fails, not applicable when the revert does
    /// not apply.
    #[test]
    fn the_revert_check() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let (culprit, bad, patch) = (l.c(CULPRIT), l.c(7), d.path().join("revert.patch"));
        let mode = Mode::Signature { signature: SIG.into(), k: 2 };
        let check = |run: &dyn Fn(&Call, u32) -> std::result::Result<RunObs, String>| {
            let mut t = kernels(run);
            let out = revert_check(&l, &mut t, &mode, &culprit, &bad, &patch).unwrap();
            assert_eq!(t.calls, vec![Call { commit: bad.clone(), mode: mode.clone(), revert: Some("revert c05\n".into()) }]);
            assert_eq!(out.2.reverted.as_deref(), Some(culprit.as_str()));
            assert!(out.2.reason.starts_with("revert check: "), "{}", out.2.reason);
            (out.0, out.1)
        };
        assert_eq!(check(&hangs(&l)), (RevertCheck::Good, "BAD with c05000000000 reverted: 2 clean run(s)".into()));
        assert_eq!(
            check(&|_: &Call, _| Ok(fail(SIG))),
            (RevertCheck::Bad, "BAD with c05000000000 reverted is still bad: signature seen in run 1".into())
        );
        let rejected = |c: &Call, _| match c.revert {
            Some(_) => Err(format!("patch {} does not apply: block/bio.c: hunk `@@ -1121,7 +1121,12 @@` rejected", patch.display())),
            None => Ok(pass()),
        };
        let (check, note) = check(&rejected);
        assert_eq!(check, RevertCheck::NotApplicable);
        assert!(
            note.starts_with("BAD with c05000000000 reverted: patch ")
                && note.ends_with("does not apply: block/bio.c: hunk `@@ -1121,7 +1121,12 @@` rejected"),
            "{note}"
        );
    }

    /// The no-op check through run_impl: the culprit's bzImage against its
    /// parent's, whichever step built them.
    #[test]
    fn the_no_op_check() {
        let (l, d) = (line(8), tempfile::tempdir().unwrap());
        let mut t = kernels(hangs(&l));
        t.same_image.insert(l.c(CULPRIT), l.c(CULPRIT - 1));
        let r = run_impl(&opts(None), &target(&l, d.path()), &l, &mut t).unwrap();
        assert_eq!(r.no_op_change, Some(true));
        // The culprit is BAD itself (nothing between): its parent is GOOD.
        let r = run_impl(&opts(None), &target(&l, d.path()), &l, &mut kernels(hangs(&l))).unwrap();
        assert_eq!(r.no_op_change, Some(false), "the culprit's bzImage differs from its parent's");
        let two = line(2);
        let mut t = kernels(hangs_from(&two, 1));
        t.same_image.insert(two.c(1), two.c(0));
        let r = run_impl(&opts(None), &target(&two, d.path()), &two, &mut t).unwrap();
        assert_eq!(r.culprit.map(|c| c.commit), Some(two.c(1)));
        assert_eq!(r.no_op_change, Some(true), "the culprit is BAD itself; its parent is GOOD");
        assert_eq!(no_op_check(&l, &[], None), None);
    }

    /// GOOD must be an ancestor of BAD and another commit; the commits
    /// between are those strictly between. Bad input (exit 2) else.
    #[test]
    fn commits_between_good_and_bad() {
        let l = line(5);
        let o = BisectOpts { good: "v1".into(), bad: "v0".into(), ..opts(None) };
        assert_eq!(commits_between(&l, &o, &l.c(0), &l.c(4)).unwrap(), l.0[1..4].to_vec());
        assert_eq!(commits_between(&l, &o, &l.c(3), &l.c(4)).unwrap(), Vec::<String>::new());
        let e = commits_between(&l, &o, &l.c(4), &l.c(0)).unwrap_err();
        assert_eq!((e.exit_code(), e.msg.as_str()), (2, "--good v1 is not an ancestor of --bad v0"));
        let e = commits_between(&l, &o, &l.c(2), &l.c(2)).unwrap_err();
        assert_eq!((e.exit_code(), e.msg.as_str()), (2, "--good and --bad are the same commit"));
    }

    /// A report with every field set, as one bisection could give.
    pub(crate) fn sample_report() -> BisectReport {
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
