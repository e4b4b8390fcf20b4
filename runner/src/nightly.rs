//! Nightly regression checking: every cell of a new run against the same
//! cell (variant, backend, fs, mapping, workload) of a baseline run of the
//! same scenario, by default the previous nightly.
//!
//! The verdict is the rule book's (`crate::rules`): outcomes first, then
//! throughput per metric. The throughput reference is the baseline's PASS
//! boots pooled with those of the earlier nightlies in the history window
//! (one night's runs are few); tonight's side is tonight's boots. Both need
//! `rules::MIN_SAMPLES` boots, so a scenario judged on throughput every
//! night runs its cells 3 times (`run.runs: 3`); with fewer, throughput is
//! INCONCLUSIVE and only outcomes are judged.
//!
//! A judged run is a [`RunReport`]: plain data, which the renderers of
//! [`crate::report`] turn into text and `kregress nightly`/`report` write.

use crate::compare;
use crate::error::{bad_input, Result};
use crate::results::{self, CellResult, RunRecord};
use crate::rules::{self, NoiseFloors, Stats};
use crate::scenario::Timing;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::rules::Status;

/// Marker file in a run directory: the run was made by `kregress nightly`.
pub(crate) const MARKER: &str = "nightly.json";

/// The verdict of one cell (an outcome row) or of one metric of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellVerdict {
    /// `variant/backend-fs-mapping-workload`.
    pub cell: String,
    /// The metric this row judges; empty for an outcome row.
    pub metric: String,
    /// How guest time ran in the cell's boots (`icount` or `wall`); none when neither side ran it.
    pub timing: Option<Timing>,
    /// The night-over-night verdict (NEW_FAILURE, FIXED, REGRESSED, ...) from the rules table.
    pub status: Status,
    /// Outcome counts of the baseline's runs (`PASS 1/1`), `None` when absent.
    pub old: Option<String>,
    /// Outcome counts of tonight's runs, e.g. `FAIL 2/3`.
    pub new: String,
    /// The baseline's failure title, when the baseline failed.
    pub old_title: Option<String>,
    /// Tonight's failure title, when tonight failed.
    pub new_title: Option<String>,
    /// "MB/s" or "ops/s" (said to be virtual time in icount); empty when no throughput was compared.
    pub unit: String,
    /// Boots in the reference (baseline + earlier nightlies).
    pub ref_samples: usize,
    /// `from_*` is the reference, `to_*` tonight.
    #[serde(flatten)]
    pub stats: Stats,
    /// Throughput changes smaller than this (percent of the reference) count as noise; 0 for outcome rows.
    pub noise_floor_pct: f64,
    /// Why the rule gave this status, in words (e.g. "too few boots to judge (1 vs 1)").
    pub note: String,
}

/// One cell: `old` the baseline's runs, `new` tonight's, `earlier` the runs
/// of older nightlies in the history window (pooled into the throughput
/// reference only). An error when tonight and the reference were measured
/// in different timing modes.
pub(crate) fn classify(
    old: &[&CellResult],
    new: &[&CellResult],
    earlier: &[&CellResult],
    floors: &NoiseFloors,
) -> Result<Vec<CellVerdict>> {
    let first = new.first().or(old.first()).expect("classify: no runs on either side");
    let name = first.key().name();
    let pooled: Vec<&CellResult> = old.iter().chain(earlier).copied().collect();
    let timing = rules::same_timing(&format!("nightly: cell {name}"), &[("reference", &pooled), ("tonight", new)])?;
    let (o, n) = (rules::state(old), rules::state(new));
    let title = |s: &rules::State| match s {
        rules::State::Fail(t) => Some(t.clone()),
        _ => None,
    };
    let row = |metric: &str, status, note: String, stats, ref_samples| CellVerdict {
        cell: name.clone(),
        metric: metric.to_string(),
        timing,
        status,
        old: (!old.is_empty()).then(|| compare::outcome_counts(old)),
        new: compare::outcome_counts(new),
        old_title: title(&o),
        new_title: title(&n),
        unit: crate::results::row_unit(timing, metric),
        ref_samples,
        stats,
        noise_floor_pct: timing.map_or(0.0, |t| floors.get(t, metric)),
        note,
    };
    if let Some((status, note)) = rules::storm_rule(old, new).or_else(|| rules::outcome_rule(&o, &n)) {
        let note = if matches!(n, rules::State::Absent) { "not run tonight".to_string() } else { note };
        return Ok(vec![row("", status, note, Stats::default(), 0)]);
    }
    let metrics = rules::metric_names(&[new]);
    if metrics.is_empty() {
        return Ok(vec![row("", Status::NoChange, "all pass, no throughput measured".into(), Stats::default(), 0)]);
    }
    Ok(metrics
        .iter()
        .map(|m| {
            let a = rules::samples(&pooled, m);
            let floor = timing.map_or(0.0, |t| floors.get(t, m));
            let (status, note, stats) = rules::throughput_rule(&a, &rules::samples(new, m), floor);
            row(m, status, note, stats, a.len())
        })
        .collect())
}

/// Every cell of `new` (and every cell only the baseline had that `new`'s
/// `--only` selects) against `baseline`; `earlier` are older nightlies,
/// pooled for throughput.
pub(crate) fn classify_runs(
    baseline: Option<&RunRecord>,
    new: &RunRecord,
    earlier: &[RunRecord],
    floors: &NoiseFloors,
) -> Result<Vec<CellVerdict>> {
    let mut names: Vec<String> = Vec::new();
    let selected = baseline.iter().flat_map(|b| &b.cells).filter(|c| new.only.matches(&c.key()));
    for c in new.cells.iter().chain(selected) {
        let n = c.key().name();
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let of = |rec: &RunRecord, name: &str| -> Vec<CellResult> { rec.cells.iter().filter(|c| c.key().name() == name).cloned().collect() };
    let mut out = Vec::new();
    for name in &names {
        let old = baseline.map(|b| of(b, name)).unwrap_or_default();
        let new_runs = of(new, name);
        let earl: Vec<CellResult> = earlier.iter().flat_map(|r| of(r, name)).collect();
        out.extend(classify(&refs(&old), &refs(&new_runs), &refs(&earl), floors)?);
    }
    Ok(out)
}

fn refs(v: &[CellResult]) -> Vec<&CellResult> {
    v.iter().collect()
}

/// Stored runs of `scenario` under `root`, oldest first, with their directories.
pub(crate) fn runs_of(root: &Path, scenario: &str) -> Vec<(PathBuf, RunRecord)> {
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
    /// The latest earlier nightly of the scenario (marked with `MARKER`),
    /// else the latest earlier run of it.
    Last,
    /// A run id or directory.
    Run(String),
    /// No baseline: every cell is judged on tonight's runs alone.
    None,
}

impl Baseline {
    pub(crate) fn parse(s: &str) -> Baseline {
        match s {
            "last" => Baseline::Last,
            "none" => Baseline::None,
            _ => Baseline::Run(s.to_string()),
        }
    }
}

/// The baseline of `new` (in `root`) and up to `history - 1` earlier runs of
/// its scenario (oldest first, the baseline's night included when it is one).
/// The window bounds the history only: with `--history 1` the baseline is
/// still the last earlier run.
pub(crate) fn baseline_and_history(
    root: &Path,
    new: &RunRecord,
    which: &Baseline,
    history: usize,
) -> Result<(Option<RunRecord>, Vec<RunRecord>)> {
    let earlier: Vec<(PathBuf, RunRecord)> =
        runs_of(root, &new.scenario).into_iter().filter(|(_, r)| (&r.started, &r.run_id) < (&new.started, &new.run_id)).collect();
    let nightlies: Vec<&(PathBuf, RunRecord)> = earlier.iter().filter(|(p, _)| p.join(MARKER).is_file()).collect();
    // Prefer the nightlies; a results folder that has none uses every earlier run.
    let candidates: Vec<RunRecord> = if nightlies.is_empty() {
        earlier.iter().map(|(_, r)| r.clone()).collect()
    } else {
        nightlies.iter().map(|(_, r)| r.clone()).collect()
    };
    let window: Vec<RunRecord> = candidates[candidates.len().saturating_sub(history.saturating_sub(1))..].to_vec();
    let base = match which {
        Baseline::None => None,
        Baseline::Last => candidates.last().cloned(),
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

/// One run judged against its baseline: the plain data the report
/// renderers ([`crate::report`]) take. [`RunReport::new`] judges and reads
/// the console excerpts the reports quote, so that rendering reads no file.
pub struct RunReport {
    /// Where the run is stored now (run.json, cell directories).
    pub(crate) dir: PathBuf,
    pub(crate) rec: RunRecord,
    pub(crate) baseline: Option<RunRecord>,
    /// Earlier runs of the scenario in the history window, oldest first.
    pub(crate) history: Vec<RunRecord>,
    /// Every cell's verdict and every metric's, in cell order.
    pub verdicts: Vec<CellVerdict>,
    /// Within the run: each variant against the first, cell by cell
    /// (`compare::compare_variants`, what the run's summary.md tables).
    pub ab: Vec<compare::Verdict>,
    pub(crate) floors: NoiseFloors,
    /// What the reports quote of each failing run's console log, by the run's [`CellResult::id`].
    pub(crate) excerpts: BTreeMap<String, Excerpt>,
}

impl RunReport {
    /// Judges `rec` (stored in `dir`) against `baseline`, pooling `history`
    /// into the throughput reference (see the module's documentation), and
    /// reads the excerpts of its failing runs' console logs.
    pub fn new(dir: PathBuf, rec: RunRecord, baseline: Option<RunRecord>, history: Vec<RunRecord>) -> Result<RunReport> {
        let floors = NoiseFloors::of(&rec);
        // The baseline is pooled once; the history supplies the other nights.
        let earlier: Vec<RunRecord> = history.iter().filter(|h| baseline.as_ref().is_none_or(|b| b.run_id != h.run_id)).cloned().collect();
        let verdicts = classify_runs(baseline.as_ref(), &rec, &earlier, &floors)?;
        let ab = compare::compare_variants(&rec, &floors)?;
        let excerpts = rec
            .cells
            .iter()
            .filter(|c| c.outcome.is_failure())
            .map(|c| (c.key().id(), Excerpt::read(&dir.join(c.key().id()).join("console.log"))))
            .collect();
        Ok(RunReport { dir, rec, baseline, history, verdicts, ab, floors, excerpts })
    }

    /// Loads the run in `dir` and finds its baseline and history among the
    /// runs beside it (its results folder).
    pub fn load(dir: &Path, which: &Baseline, history: usize) -> Result<RunReport> {
        let rec = results::load(dir)?;
        // A bare run id ("20261126-...") has the empty path as parent.
        let root = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let (base, hist) = baseline_and_history(root, &rec, which, history)?;
        RunReport::new(dir.to_path_buf(), rec, base, hist)
    }

    /// Tonight's runs of the cell named `name` (`variant/backend-fs-mapping-workload`).
    pub(crate) fn runs(&self, name: &str) -> Vec<&CellResult> {
        self.rec.cells.iter().filter(|c| c.key().name() == name).collect()
    }

    /// The directory of one run of a cell, where the run is stored now.
    pub(crate) fn cell_dir(&self, c: &CellResult) -> PathBuf {
        self.dir.join(c.key().id())
    }

    /// `n` lines (at most [`EXCERPT_LINES`]) of the console log of a failing run `c`.
    pub(crate) fn excerpt(&self, c: &CellResult, n: usize) -> String {
        self.excerpts.get(&c.key().id()).map_or_else(|| "(not a failing run: no excerpt)".to_string(), |e| e.lines(n))
    }
}

/// Whether any cell of `reports` regressed against its baseline: a new or
/// changed failure, or a throughput regression.
pub fn regressed(reports: &[RunReport]) -> bool {
    reports.iter().flat_map(|r| &r.verdicts).any(|v| v.status.regressed())
}

/// The most lines a report quotes of one console log.
pub(crate) const EXCERPT_LINES: usize = 20;

/// What a report quotes of a failing run's console log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Excerpt {
    /// The first [`EXCERPT_LINES`] lines of the first kernel report triage finds.
    Report(Vec<String>),
    /// No kernel report (e.g. a hang the agent saw): the log's last
    /// [`EXCERPT_LINES`] lines, without the agent's protocol lines (which
    /// junit.xml repeats badly), each cut to 200 characters.
    Tail(Vec<String>),
    /// Why the log could not be read.
    Unreadable(String),
}

impl Excerpt {
    /// Reads the excerpt of the console log at `console`.
    pub(crate) fn read(console: &Path) -> Excerpt {
        let bytes = match read_console(console) {
            Ok(b) => b,
            Err(e) => return Excerpt::Unreadable(format!("(no console log at {}: {e})", console.display())),
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(rep) = crate::triage::parse(&text).into_iter().next() {
            return Excerpt::Report(rep.text.lines().take(EXCERPT_LINES).map(str::to_string).collect());
        }
        let lines: Vec<String> =
            text.lines().filter(|l| !l.starts_with(kregress_agent::MARKER)).map(|l| l.chars().take(200).collect()).collect();
        Excerpt::Tail(lines[lines.len().saturating_sub(EXCERPT_LINES)..].to_vec())
    }

    /// `n` lines of it: the first of a report, the last of a tail.
    pub(crate) fn lines(&self, n: usize) -> String {
        match self {
            Excerpt::Report(l) => l[..l.len().min(n)].join("\n"),
            Excerpt::Tail(l) => l[l.len().saturating_sub(n)..].join("\n"),
            Excerpt::Unreadable(why) => why.clone(),
        }
    }
}

/// The most of a console log a report reads: its start, where the first
/// kernel report is.
pub(crate) const CONSOLE_READ_MAX: u64 = 16 << 20;

/// The first [`CONSOLE_READ_MAX`] bytes of a stored console log: a regular
/// file, not a symbolic link (a stored run may come from another machine:
/// a link to /dev/zero or to a secret must not end up in a report).
fn read_console(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO does not wait for a writer.
    let f = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.take(CONSOLE_READ_MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{FailKind, Outcome};

    fn cell(variant: &str, workload: &str, run: u32, outcome: Outcome, title: Option<&str>, mb: Option<f64>) -> CellResult {
        CellResult {
            variant: variant.into(),
            backend: "memmap".into(),
            mode: "fsdax".into(),
            fs: "ext4".into(),
            mapping: "pte".into(),
            workload: workload.into(),
            run,
            outcome,
            kind: (outcome == Outcome::Fail).then_some(FailKind::Hang),
            title: title.map(str::to_string),
            timing: Timing::Icount,
            metrics: mb.map(|m| [("fast_mb_per_s".to_string(), m)].into_iter().collect()).unwrap_or_default(),
            samples: vec![],
            problems: vec![],
            console: PathBuf::from("console.log"),
            seconds: 1.0,
            workload_seconds: None,
            boot_seconds: None,
            foreign_lines: 0,
            storm: None,
        }
    }

    fn pass(mb: f64) -> CellResult {
        cell("fixed", "dio-read", 1, Outcome::Pass, None, Some(mb))
    }

    fn fail(title: &str) -> CellResult {
        cell("fixed", "dio-read", 1, Outcome::Fail, Some(title), None)
    }

    fn floors() -> NoiseFloors {
        NoiseFloors::default()
    }

    fn st(old: &[CellResult], new: &[CellResult], earlier: &[CellResult]) -> CellVerdict {
        let mut v = classify(&refs(old), &refs(new), &refs(earlier), &floors()).unwrap();
        assert_eq!(v.len(), 1, "{v:#?}");
        v.remove(0)
    }

    #[test]
    fn a_storm_signature_not_in_the_baseline_is_a_new_failure_of_the_night() {
        let (hang, warn) = ("INFO: task hung in ext4_break_layouts", "WARNING in free_zone_device_page");
        let storm = |run: u32, title: &str| {
            let mut c = cell("stock", "storm", run, Outcome::Fail, Some(title), None);
            c.timing = Timing::Wall;
            c.storm = Some(crate::results::StormRecord::fixture(run as u64, 30));
            c
        };
        let v = st(&[storm(1, hang), storm(2, hang)], &[storm(1, hang), storm(2, hang), storm(3, warn)], &[]);
        assert_eq!((v.status, v.note.as_str()), (Status::NewFailure, "new storm signature(s): WARNING in free_zone_device_page (seed 3)"));
        assert!(v.status.regressed());
        assert_eq!(st(&[storm(1, hang)], &[storm(1, hang), storm(2, hang)], &[]).status, Status::StillFailing);
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
        // A baseline without a verdict cannot make a failure new.
        assert_eq!(st(&[miss], &[fail(hang)], &[]).status, Status::Inconclusive);
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
    fn throughput_needs_three_boots_a_side_and_a_real_drop() {
        let tonight = |xs: &[f64]| -> Vec<CellResult> {
            xs.iter().enumerate().map(|(i, m)| cell("fixed", "dio-read", i as u32 + 1, Outcome::Pass, None, Some(*m))).collect()
        };
        // One boot in the reference: not judged, even for a 50 % drop.
        let v = st(&[pass(874.0)], &tonight(&[437.0, 437.0, 437.0]), &[]);
        assert_eq!(v.status, Status::Inconclusive);
        assert!(v.note.contains("too few boots"), "{}", v.note);
        // Baseline + earlier nightlies tightly around 874 (icount: 1 % floor).
        let hist = [pass(874.1), pass(874.4), pass(874.2), pass(873.9)];
        let v = st(&[pass(874.0)], &tonight(&[437.0, 437.2, 436.9]), &hist);
        assert_eq!(v.status, Status::ThroughputRegression, "{v:?}");
        assert!(v.stats.delta_pct.unwrap() < -45.0 && v.stats.ci_high.unwrap() < 0.0, "{v:?}");
        assert_eq!(v.unit, "MB/s (virtual time)");
        assert_eq!(v.ref_samples, 5);
        assert_eq!(st(&[pass(874.0)], &tonight(&[920.0, 921.0, 919.0]), &hist).status, Status::ThroughputImprovement);
        // 0.5 % is within the icount floor.
        assert_eq!(st(&[pass(874.0)], &tonight(&[869.6, 869.7, 869.5]), &hist).status, Status::NoChange);
        // One boot tonight: too few.
        assert_eq!(st(&[pass(874.0)], &tonight(&[437.0]), &hist).status, Status::Inconclusive);
    }

    #[test]
    fn reference_and_tonight_in_different_timing_modes_are_refused() {
        let mut wall = pass(300.0);
        wall.timing = Timing::Wall;
        let e = classify(&refs(&[wall]), &refs(&[pass(874.0)]), &[], &floors()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("wall") && e.to_string().contains("icount"), "{e}");
    }

    /// `nightly --only`: a cell the night did not select is not judged (it
    /// was not run, which says nothing about it); one it selected and did
    /// not get is.
    #[test]
    fn cells_left_out_by_only_are_not_judged() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs");
        let base = results::load(&root.join("20261126-162904-bio-release-devmap-wakeup")).unwrap();
        let mut night = base.clone();
        night.only = crate::scenario::Filter::parse("workload=truncate-during-dio").unwrap();
        night.cells.retain(|c| c.workload == "truncate-during-dio" && c.variant == "stock");
        let v = classify_runs(Some(&base), &night, &[], &floors()).unwrap();
        let cells: Vec<&str> = v.iter().map(|r| r.cell.as_str()).collect();
        assert!(!cells.is_empty() && cells.iter().all(|c| c.ends_with("truncate-during-dio")), "{cells:?}");
        // fixed's truncate-during-dio was selected and is missing: said so.
        let fixed = v.iter().find(|r| r.cell.starts_with("fixed/")).expect("the selected, missing cell is judged");
        assert_eq!((fixed.status, fixed.note.as_str()), (Status::Inconclusive, "not run tonight"));
        // Without a selection every baseline cell counts.
        night.only = Default::default();
        assert!(classify_runs(Some(&base), &night, &[], &floors()).unwrap().iter().any(|r| r.cell.ends_with("dio-read")));
    }

    #[test]
    fn baseline_is_the_previous_run_of_the_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs");
        let new = results::load(&root.join("20261126-162904-bio-release-devmap-wakeup")).unwrap();
        let (b, h) = baseline_and_history(&root, &new, &Baseline::Last, 14).unwrap();
        assert_eq!(b.as_ref().unwrap().run_id, "20261126-162808-bio-release-devmap-wakeup");
        let ids: Vec<&str> = h.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "20261126-160848-bio-release-devmap-wakeup",
                "20261126-161042-bio-release-devmap-wakeup",
                "20261126-162808-bio-release-devmap-wakeup"
            ]
        );
        // --history 2: tonight and one earlier night.
        assert_eq!(baseline_and_history(&root, &new, &Baseline::Last, 2).unwrap().1.len(), 1);
        // --history 1 (and 0): tonight alone in the charts, judged against the same baseline.
        for n in [1, 0] {
            let (b1, h1) = baseline_and_history(&root, &new, &Baseline::Last, n).unwrap();
            assert_eq!(b1.map(|b| b.run_id), b.as_ref().map(|b| b.run_id.clone()), "--history {n}");
            assert!(h1.is_empty(), "--history {n}");
        }
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
        let vs = classify_runs(Some(&old), &new, &[], &NoiseFloors::of(&new)).unwrap();
        assert_eq!(vs.len(), 24);
        let new_cells: Vec<&str> = vs.iter().filter(|v| v.status == Status::NewCell).map(|v| v.cell.as_str()).collect();
        assert_eq!(
            new_cells,
            ["fixed/memmap-xfs-pmd-dio-read", "fixed/memmap-xfs-pmd-dio-write", "fixed/memmap-xfs-pmd-truncate-during-dio"]
        );
        // One boot a side: throughput is not judged, and never called NO_CHANGE.
        for v in vs.iter().filter(|v| v.status != Status::NewCell) {
            assert_eq!(v.status, Status::Inconclusive, "{v:#?}");
            assert!(v.note.contains("too few boots to judge (1 vs 1"), "{v:#?}");
            assert_eq!(v.timing, Some(Timing::Wall), "stored runs predate icount: {v:#?}");
        }
        // Reversed (a night that lost them), those cells are INCONCLUSIVE, never NO_CHANGE.
        let back = classify_runs(Some(&new), &old, &[], &NoiseFloors::of(&old)).unwrap();
        assert_eq!(back.iter().filter(|v| v.status == Status::Inconclusive && v.note.starts_with("harness")).count(), 3);
    }
}
