//! Nightly regression checking: every cell of a new run against the same
//! cell (variant, backend, fs, mapping, workload) of a baseline run of the
//! same scenario, by default the previous nightly.
//!
//! Per cell, the runs of each side are first reduced to a state — PASS (all
//! runs passed), FAIL with a title (any FAIL or ERROR: a kernel that did not
//! boot is the kernel's fault), or UNKNOWN (MISS/SKIP only: the harness
//! failed) — and then ([`classify`]):
//!
//! | baseline        | new            | status                                   |
//! |-----------------|----------------|------------------------------------------|
//! | absent/UNKNOWN  | PASS           | NEW_CELL                                 |
//! | absent/UNKNOWN  | FAIL           | NEW_CELL (absent) / NEW_FAILURE (UNKNOWN)|
//! | PASS            | FAIL           | NEW_FAILURE                              |
//! | FAIL            | PASS           | FIXED                                    |
//! | FAIL t          | FAIL t         | STILL_FAILING                            |
//! | FAIL t          | FAIL u         | CHANGED_FAILURE                          |
//! | any             | UNKNOWN        | INCONCLUSIVE                             |
//! | PASS            | PASS           | throughput, below                        |
//!
//! Throughput: one run per night gives one sample per side, too few for an
//! interval, so the reference is the baseline's PASS samples pooled with
//! those of the earlier nightlies in the history window. With at least
//! [`compare::MIN_SAMPLES`] reference samples, `d` = change of the medians
//! in percent with its 95 % bootstrap CI ([`compare::bootstrap_delta_ci`]),
//! and the rule of [`crate::compare`]: CI excludes 0 and |d| > noise floor
//! → THROUGHPUT_REGRESSION / _IMPROVEMENT, otherwise NO_CHANGE.

use crate::compare::{self, MIN_SAMPLES};
use crate::error::{bad_input, Result};
use crate::results::{self, CellResult, Outcome, RunRecord};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Marker file in a run directory: the run was made by `kregress nightly`.
pub const MARKER: &str = "nightly.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    NewFailure,
    Fixed,
    StillFailing,
    ChangedFailure,
    ThroughputRegression,
    ThroughputImprovement,
    NoChange,
    NewCell,
    Inconclusive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NewFailure => "NEW_FAILURE",
            Status::Fixed => "FIXED",
            Status::StillFailing => "STILL_FAILING",
            Status::ChangedFailure => "CHANGED_FAILURE",
            Status::ThroughputRegression => "THROUGHPUT_REGRESSION",
            Status::ThroughputImprovement => "THROUGHPUT_IMPROVEMENT",
            Status::NoChange => "NO_CHANGE",
            Status::NewCell => "NEW_CELL",
            Status::Inconclusive => "INCONCLUSIVE",
        }
    }

    /// What makes `kregress nightly` exit 1.
    pub fn regressed(self) -> bool {
        matches!(self, Status::NewFailure | Status::ChangedFailure | Status::ThroughputRegression)
    }
}

/// The verdict of one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellVerdict {
    /// `variant/backend-fs-mapping-workload`.
    pub cell: String,
    pub status: Status,
    /// Outcome counts of the baseline's runs (`PASS 1/1`), `None` when absent.
    pub old: Option<String>,
    pub new: String,
    pub old_title: Option<String>,
    pub new_title: Option<String>,
    /// "MB/s" or "ops/s"; empty when no throughput was compared.
    pub unit: String,
    /// Median of the reference samples (baseline + earlier nightlies).
    pub ref_median: Option<f64>,
    pub ref_samples: usize,
    pub new_median: Option<f64>,
    pub delta_pct: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub noise_floor_pct: f64,
    pub note: String,
}

/// `variant/backend-fs-mapping-workload`: the cell across runs and nights.
pub fn cell_name(r: &CellResult) -> String {
    format!("{}/{}", r.variant, compare::cell_key(r))
}

enum State {
    Absent,
    Pass,
    Fail(String),
    Unknown(String),
}

fn state(rs: &[&CellResult]) -> State {
    let rs: Vec<&&CellResult> = rs.iter().filter(|r| r.outcome != Outcome::Skip).collect();
    if rs.is_empty() {
        return State::Absent;
    }
    let failing: Vec<&&CellResult> = rs.iter().copied().filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Error)).collect();
    if !failing.is_empty() {
        // The most frequent title names the failure (first seen wins a tie).
        let titles: Vec<String> = failing
            .iter()
            .map(|r| r.title.clone().unwrap_or_else(|| "FAIL (no title)".into()))
            .collect();
        let best = titles.iter().max_by_key(|t| (titles.iter().filter(|x| x == t).count(), std::cmp::Reverse(titles.iter().position(|x| x == *t)))).unwrap();
        return State::Fail(best.clone());
    }
    if rs.iter().all(|r| r.outcome == Outcome::Pass) {
        State::Pass
    } else {
        let why = rs.iter().find(|r| r.outcome != Outcome::Pass).and_then(|r| r.title.clone()).unwrap_or_else(|| "MISS".into());
        State::Unknown(why)
    }
}

/// Throughput samples of the PASS runs in the given unit.
fn samples(rs: &[&CellResult], mb: bool) -> Vec<f64> {
    rs.iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .filter_map(|r| if mb { r.mb_per_s } else { r.ops_per_s })
        .filter(|x| x.is_finite())
        .collect()
}

/// One cell: `old` the baseline's runs, `new` tonight's, `earlier` the runs
/// of older nightlies in the history window (pooled into the throughput
/// reference only). Rules in the module doc.
pub fn classify(old: &[&CellResult], new: &[&CellResult], earlier: &[&CellResult], noise_floor_pct: f64) -> CellVerdict {
    let first = new.first().or(old.first()).expect("classify: no runs on either side");
    let mut v = CellVerdict {
        cell: cell_name(first),
        status: Status::Inconclusive,
        old: (!old.is_empty()).then(|| compare::outcome_counts(old)),
        new: compare::outcome_counts(new),
        old_title: None,
        new_title: None,
        unit: String::new(),
        ref_median: None,
        ref_samples: 0,
        new_median: None,
        delta_pct: None,
        ci_low: None,
        ci_high: None,
        noise_floor_pct,
        note: String::new(),
    };
    let (o, n) = (state(old), state(new));
    if let State::Fail(t) = &o {
        v.old_title = Some(t.clone());
    }
    if let State::Fail(t) = &n {
        v.new_title = Some(t.clone());
    }
    (v.status, v.note) = match (&o, &n) {
        (_, State::Absent) => (Status::Inconclusive, "not run tonight".into()),
        (_, State::Unknown(why)) => (Status::Inconclusive, format!("harness: {why}")),
        (State::Absent, _) => (Status::NewCell, "not in the baseline".into()),
        (State::Unknown(why), State::Pass) => (Status::NewCell, format!("baseline had no verdict ({why})")),
        (State::Unknown(why), State::Fail(_)) => (Status::NewFailure, format!("fails; baseline had no verdict ({why})")),
        (State::Pass, State::Fail(_)) => (Status::NewFailure, "passed in the baseline".into()),
        (State::Fail(_), State::Pass) => (Status::Fixed, "failed in the baseline".into()),
        (State::Fail(a), State::Fail(b)) if a == b => (Status::StillFailing, "same title as the baseline".into()),
        (State::Fail(a), State::Fail(_)) => (Status::ChangedFailure, format!("baseline failed with: {a}")),
        (State::Pass, State::Pass) => {
            throughput(&mut v, old, new, earlier, noise_floor_pct);
            return v;
        }
    };
    v
}

fn throughput(v: &mut CellVerdict, old: &[&CellResult], new: &[&CellResult], earlier: &[&CellResult], noise: f64) {
    // Tonight's unit decides: MB/s when reported, else ops/s.
    let mb = new.iter().any(|r| r.mb_per_s.is_some());
    let b = samples(new, mb);
    if b.is_empty() {
        (v.status, v.note) = (Status::NoChange, "all pass, no throughput measured".into());
        return;
    }
    let pooled: Vec<&CellResult> = old.iter().chain(earlier).copied().collect();
    let a = samples(&pooled, mb);
    v.unit = if mb { "MB/s" } else { "ops/s" }.into();
    v.new_median = Some(compare::median(&b));
    v.ref_samples = a.len();
    if a.is_empty() {
        (v.status, v.note) = (Status::NoChange, "all pass; no throughput reference".into());
        return;
    }
    let ref_median = compare::median(&a);
    v.ref_median = Some(ref_median);
    v.delta_pct = (ref_median != 0.0).then(|| (compare::median(&b) - ref_median) / ref_median * 100.0);
    if a.len() < MIN_SAMPLES {
        v.status = Status::NoChange;
        v.note = format!("all pass; throughput not judged ({} reference samples, need {MIN_SAMPLES})", a.len());
        return;
    }
    let (Some(d), Some([lo, hi])) = (v.delta_pct, compare::bootstrap_delta_ci(&a, &b)) else {
        (v.status, v.note) = (Status::NoChange, "all pass; reference median is zero".into());
        return;
    };
    (v.ci_low, v.ci_high) = (Some(lo), Some(hi));
    let excludes_zero = lo > 0.0 || hi < 0.0;
    (v.status, v.note) = match (excludes_zero, d.abs() > noise) {
        (true, true) if d < 0.0 => (Status::ThroughputRegression, "CI excludes 0, above noise".into()),
        (true, true) => (Status::ThroughputImprovement, "CI excludes 0, above noise".into()),
        (true, false) => (Status::NoChange, "CI excludes 0 but within noise floor".into()),
        (false, _) => (Status::NoChange, "CI includes 0".into()),
    };
}

/// Every cell of `new` (and every cell only the baseline had) against
/// `baseline`; `earlier` are older nightlies, pooled for throughput.
pub fn classify_runs(baseline: Option<&RunRecord>, new: &RunRecord, earlier: &[RunRecord], noise_floor_pct: f64) -> Vec<CellVerdict> {
    let mut names: Vec<String> = Vec::new();
    for c in new.cells.iter().chain(baseline.iter().flat_map(|b| &b.cells)) {
        let n = cell_name(c);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let of = |rec: &RunRecord, name: &str| -> Vec<CellResult> { rec.cells.iter().filter(|c| cell_name(c) == name).cloned().collect() };
    names
        .iter()
        .map(|name| {
            let old = baseline.map(|b| of(b, name)).unwrap_or_default();
            let new_runs = of(new, name);
            let earl: Vec<CellResult> = earlier.iter().flat_map(|r| of(r, name)).collect();
            classify(&refs(&old), &refs(&new_runs), &refs(&earl), noise_floor_pct)
        })
        .collect()
}

fn refs(v: &[CellResult]) -> Vec<&CellResult> {
    v.iter().collect()
}

/// Stored runs of `scenario` under `root`, oldest first, with their directories.
pub fn runs_of(root: &Path, scenario: &str) -> Vec<(PathBuf, RunRecord)> {
    let mut out: Vec<(PathBuf, RunRecord)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file())
        .filter_map(|p| results::load(&p).ok().map(|r| (p, r)))
        .filter(|(_, r)| r.scenario == scenario)
        .collect();
    out.sort_by(|a, b| (&a.1.started, &a.1.run_id).cmp(&(&b.1.started, &b.1.run_id)));
    out
}

/// Which run a new one is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// The latest earlier nightly of the scenario (marked with [`MARKER`]),
    /// else the latest earlier run of it.
    Last,
    /// A run id or directory.
    Run(String),
    None,
}

impl Baseline {
    pub fn parse(s: &str) -> Baseline {
        match s {
            "last" => Baseline::Last,
            "none" => Baseline::None,
            _ => Baseline::Run(s.to_string()),
        }
    }
}

/// The baseline of `new` (in `root`) and up to `history - 1` earlier runs of
/// its scenario (oldest first, the baseline's night included when it is one).
pub fn baseline_and_history(root: &Path, new: &RunRecord, which: &Baseline, history: usize) -> Result<(Option<RunRecord>, Vec<RunRecord>)> {
    let earlier: Vec<(PathBuf, RunRecord)> =
        runs_of(root, &new.scenario).into_iter().filter(|(_, r)| (&r.started, &r.run_id) < (&new.started, &new.run_id)).collect();
    let nightlies: Vec<&(PathBuf, RunRecord)> = earlier.iter().filter(|(p, _)| p.join(MARKER).is_file()).collect();
    // Prefer the nightlies; a results folder that has none uses every earlier run.
    let window: Vec<RunRecord> = if nightlies.is_empty() { earlier.iter().map(|(_, r)| r.clone()).collect() } else { nightlies.iter().map(|(_, r)| r.clone()).collect() };
    let window: Vec<RunRecord> = window[window.len().saturating_sub(history.saturating_sub(1))..].to_vec();
    let base = match which {
        Baseline::None => None,
        Baseline::Last => window.last().cloned(),
        Baseline::Run(id) => {
            let dir = results::find(root, id)?;
            let b = results::load(&dir)?;
            if b.scenario != new.scenario {
                return Err(bad_input(format!("baseline {id} is scenario {}, not {}", b.scenario, new.scenario)));
            }
            Some(b)
        }
    };
    Ok((base, window))
}

pub struct NightlyOpts {
    pub results: PathBuf,
    pub baseline: Baseline,
    pub history: usize,
    pub out: Option<PathBuf>,
    pub accel: crate::vm::Accel,
    pub jobs: usize,
}

/// The default scenario set: every scenarios/*.yaml (historical/ is a
/// subfolder, so it is left out), sorted.
pub fn default_scenarios(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad_input(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    Ok(v)
}

/// `kregress nightly`: runs each scenario (the run loop of `kregress run`),
/// marks the run as a nightly, judges it against its baseline and writes
/// the reports. Exit 1 on a regression, else 3 when a cell MISSed, else 0.
pub fn nightly(scenarios: &[PathBuf], opts: &NightlyOpts) -> Result<i32> {
    let files = if scenarios.is_empty() { default_scenarios(Path::new("scenarios"))? } else { scenarios.to_vec() };
    // Validate every file before the first (long) run.
    let loaded: Vec<crate::scenario::Scenario> = files.iter().map(|f| crate::scenario::load(f)).collect::<Result<_>>()?;
    let mut reports = Vec::new();
    for s in &loaded {
        let run_opts = crate::run::RunOpts {
            only: crate::scenario::Filter::default(),
            runs: None,
            resume: None,
            accel: opts.accel,
            results_root: opts.results.clone(),
            jobs: opts.jobs,
        };
        let rec = crate::run::run(s, &run_opts)?;
        crate::cache::write_atomic(&rec.results_dir.join(MARKER), serde_json::json!({"scenario_file": s.file}).to_string().as_bytes())?;
        reports.push(crate::report::RunReport::load(&rec.results_dir, &opts.baseline, opts.history)?);
    }
    crate::report::publish(&reports, None)?;
    if let Some(out) = &opts.out {
        crate::report::write_all(&reports, out)?;
    }
    let missed = reports.iter().flat_map(|r| &r.rec.cells).any(|c| c.outcome == Outcome::Miss);
    Ok(if crate::report::regressed(&reports) { 1 } else if missed { 3 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::FailKind;

    fn cell(variant: &str, workload: &str, run: u32, outcome: Outcome, title: Option<&str>, mb: Option<f64>) -> CellResult {
        CellResult {
            variant: variant.into(),
            backend: "memmap".into(),
            fs: "ext4".into(),
            mapping: "pte".into(),
            workload: workload.into(),
            run,
            outcome,
            kind: (outcome == Outcome::Fail).then_some(FailKind::Hang),
            title: title.map(str::to_string),
            mb_per_s: mb,
            ops_per_s: None,
            problems: vec![],
            console: PathBuf::from("console.log"),
            seconds: 1.0,
            boot_seconds: None,
        }
    }

    fn pass(mb: f64) -> CellResult {
        cell("fixed", "dio-read", 1, Outcome::Pass, None, Some(mb))
    }

    fn fail(title: &str) -> CellResult {
        cell("fixed", "dio-read", 1, Outcome::Fail, Some(title), None)
    }

    fn st(old: &[CellResult], new: &[CellResult], earlier: &[CellResult]) -> CellVerdict {
        classify(&refs(old), &refs(new), &refs(earlier), 5.0)
    }

    #[test]
    fn outcome_transitions() {
        let hang = "INFO: task hung in ext4_break_layouts";
        assert_eq!(st(&[pass(300.0)], &[fail(hang)], &[]).status, Status::NewFailure);
        assert_eq!(st(&[fail(hang)], &[pass(300.0)], &[]).status, Status::Fixed);
        assert_eq!(st(&[fail(hang)], &[fail(hang)], &[]).status, Status::StillFailing);
        let v = st(&[fail(hang)], &[fail("WARNING in free_zone_device_page")], &[]);
        assert_eq!(v.status, Status::ChangedFailure);
        assert_eq!(v.old_title.as_deref(), Some(hang));
        assert_eq!(st(&[], &[pass(300.0)], &[]).status, Status::NewCell);
        let miss = cell("fixed", "dio-read", 1, Outcome::Miss, Some("DAX not active"), None);
        assert_eq!(st(&[pass(300.0)], std::slice::from_ref(&miss), &[]).status, Status::Inconclusive);
        assert_eq!(st(std::slice::from_ref(&miss), &[pass(300.0)], &[]).status, Status::NewCell);
        assert_eq!(st(&[miss], &[fail(hang)], &[]).status, Status::NewFailure);
        // A kernel that stopped booting is a new failure, not a harness problem.
        let err = cell("fixed", "dio-read", 1, Outcome::Error, Some("boot failed: no agent hello within 60 s"), None);
        assert_eq!(st(&[pass(300.0)], &[err], &[]).status, Status::NewFailure);
    }

    #[test]
    fn one_failing_run_of_three_is_a_new_failure() {
        let new = [pass(300.0), cell("fixed", "dio-read", 2, Outcome::Fail, Some("WARNING in try_grab_page"), None), pass(310.0)];
        let v = st(&[pass(300.0)], &new, &[]);
        assert_eq!(v.status, Status::NewFailure);
        assert_eq!(v.new_title.as_deref(), Some("WARNING in try_grab_page"));
    }

    #[test]
    fn throughput_needs_a_reference_and_a_real_drop() {
        // One sample in the baseline: not judged, even for a 50 % drop.
        let v = st(&[pass(300.0)], &[pass(150.0)], &[]);
        assert_eq!(v.status, Status::NoChange);
        assert!(v.note.contains("not judged"), "{}", v.note);
        // Baseline + earlier nightlies tightly around 300: 150 is a regression.
        let hist = [pass(298.0), pass(303.0), pass(301.0), pass(299.0)];
        let v = st(&[pass(300.0)], &[pass(150.0)], &hist);
        assert_eq!(v.status, Status::ThroughputRegression, "{v:?}");
        assert!(v.delta_pct.unwrap() < -45.0 && v.ci_high.unwrap() < 0.0, "{v:?}");
        assert_eq!(st(&[pass(300.0)], &[pass(450.0)], &hist).status, Status::ThroughputImprovement);
        // 2 % is within the 5 % noise floor.
        assert_eq!(st(&[pass(300.0)], &[pass(294.0)], &hist).status, Status::NoChange);
    }

    #[test]
    fn baseline_is_the_previous_run_of_the_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs");
        let new = results::load(&root.join("20261126-162904-bio-release-devmap-wakeup")).unwrap();
        let (b, h) = baseline_and_history(&root, &new, &Baseline::Last, 14).unwrap();
        assert_eq!(b.unwrap().run_id, "20261126-162808-bio-release-devmap-wakeup");
        let ids: Vec<&str> = h.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["20261126-160848-bio-release-devmap-wakeup", "20261126-161042-bio-release-devmap-wakeup", "20261126-162808-bio-release-devmap-wakeup"]);
        // --history 2: tonight and one earlier night.
        assert_eq!(baseline_and_history(&root, &new, &Baseline::Last, 2).unwrap().1.len(), 1);
        let first = results::load(&root.join("20261126-160848-bio-release-devmap-wakeup")).unwrap();
        assert!(baseline_and_history(&root, &first, &Baseline::Last, 14).unwrap().0.is_none());
    }

    /// The two stored fixed-matrix runs: the first had its xfs/pmd cells
    /// MISS (mkfs failed), the second passed everything.
    #[test]
    fn stored_fixed_matrix_runs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs");
        let old = results::load(&root.join("20261126-160608-fixed-matrix")).unwrap();
        let new = results::load(&root.join("20261126-161418-fixed-matrix")).unwrap();
        let vs = classify_runs(Some(&old), &new, &[], 5.0);
        assert_eq!(vs.len(), 24);
        let new_cells: Vec<&str> = vs.iter().filter(|v| v.status == Status::NewCell).map(|v| v.cell.as_str()).collect();
        assert_eq!(new_cells, ["fixed/memmap-xfs-pmd-dio-read", "fixed/memmap-xfs-pmd-dio-write", "fixed/memmap-xfs-pmd-truncate-during-dio"]);
        assert!(vs.iter().filter(|v| v.status != Status::NewCell).all(|v| v.status == Status::NoChange), "{vs:#?}");
        // Reversed (a night that lost them), those cells are INCONCLUSIVE, never NO_CHANGE.
        let back = classify_runs(Some(&new), &old, &[], 5.0);
        assert_eq!(back.iter().filter(|v| v.status == Status::Inconclusive).count(), 3);
    }
}
