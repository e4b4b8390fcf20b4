//! The rule book: how two groups of runs of one cell turn into a verdict.
//! `compare` (variants inside a run, or one variant across two runs),
//! `nightly`/`report` (tonight against earlier nights) and `bisect` (a step
//! against GOOD) all decide here, so a rule is written once.
//!
//! **Outcomes.** Each side's runs (SKIP ignored) reduce to a [`State`]:
//! FAIL with a title when any run is FAIL or ERROR (a kernel that does not
//! build or boot is the kernel's fault), PASS when every run passed, UNKNOWN
//! when runs are missing their verdict (MISS: the harness failed), ABSENT
//! when there are none. Then ([`outcome_rule`]), `from` being the baseline:
//!
//! | from              | to        | status                          |
//! |-------------------|-----------|---------------------------------|
//! | any               | ABSENT    | INCONCLUSIVE                    |
//! | any               | UNKNOWN   | INCONCLUSIVE                    |
//! | ABSENT or UNKNOWN | PASS      | NEW_CELL                        |
//! | ABSENT            | FAIL      | NEW_CELL                        |
//! | UNKNOWN           | FAIL      | INCONCLUSIVE (it may have failed before too) |
//! | PASS              | FAIL      | NEW_FAILURE                     |
//! | FAIL              | PASS      | FIXED                           |
//! | FAIL t            | FAIL t    | STILL_FAILING                   |
//! | FAIL t            | FAIL u    | CHANGED_FAILURE                 |
//! | PASS              | PASS      | throughput, per metric (below)  |
//!
//! A side's title is the most frequent title of its failing runs, the first
//! seen winning a tie ([`dominant_title`]).
//!
//! **Throughput** ([`throughput_rule`]), per metric (GUP-fast and slow GUP
//! are separate kernel paths and get separate verdicts). A sample is one
//! boot's value (its fastest pass after the warm-up in icount timing, their
//! median in wall timing, see
//! [`crate::results::metrics_from_samples`]): passes inside one boot are not
//! independent, boots are. Both sides need [`MIN_SAMPLES`] boots, else
//! INCONCLUSIVE. `d` is the change of the medians in percent, with its 95 %
//! bootstrap interval:
//!
//! | interval excludes 0 | \|d\| > noise floor | status                          |
//! |---------------------|---------------------|---------------------------------|
//! | yes                 | yes                 | THROUGHPUT_REGRESSION/_IMPROVEMENT |
//! | yes                 | no                  | NO_CHANGE (real, below the floor) |
//! | no                  | no                  | NO_CHANGE                       |
//! | no                  | yes                 | INCONCLUSIVE (large but noisy)  |
//!
//! The Mann-Whitney p-value is reported but does not decide: with 3 vs 3
//! boots its smallest two-sided value is 0.1.
//!
//! **Noise floor** ([`NoiseFloors`]), per timing mode and metric (the
//! metrics are not equally steady): the largest change between the odd- and
//! even-numbered boots of the baseline variant over its cells in that mode
//! (an A/A comparison inside the run), never below the minimum
//! ([`min_floor`]). Cells measured in different timing modes are never
//! compared ([`same_timing`]).

use crate::error::{bad_input, Result};
use crate::outcome::Outcome;
use crate::results::{CellResult, RunRecord};
use crate::scenario::Timing;
use crate::stats::{self, median};
use serde::Serialize;
use std::collections::BTreeMap;

/// Fewest boots per side for a throughput verdict.
pub const MIN_SAMPLES: usize = 3;

/// Smallest noise floor of a metric in a timing mode, in percent; the
/// figures are from docs/PERFORMANCE.md ("Timing modes"), measured on this
/// project's 2-core machine. Per metric so that a metric found less steady
/// can get its own; today only the mode decides.
///
/// * wall: identical boots on a shared 2-core host move by 14 % (A/A, 3
///   boots) to ±25 % (a kernel build beside them); 5 % is the least ever
///   assumed, and the run's own A/A estimate raises it.
/// * icount: a deterministic guest (one vCPU counting instructions, no
///   RDRAND, a virtual RTC, no address randomization: see vm.rs) gives the
///   same figure to 0.01 MB/s in every boot, with a kernel build beside it
///   or not (A/A spread 0.00 %). Before RDRAND and the RTC were pinned,
///   whole boots settled on slow-GUP values up to 2.5 % apart and single
///   passes were off by up to 8 %. 1 % is what is still called noise: a
///   code change smaller than that (an inlining decision, a moved line) is
///   real but not a regression worth a report.
pub fn min_floor(t: Timing, _metric: &str) -> f64 {
    match t {
        Timing::Wall => 5.0,
        Timing::Icount => 1.0,
    }
}

/// The verdict on one cell or metric, old side against new; `regressed` says which make kregress exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The old side passed, the new side fails.
    NewFailure,
    /// The old side failed, every new run passes.
    Fixed,
    /// Both sides fail with the same title.
    StillFailing,
    /// Both sides fail, with different titles.
    ChangedFailure,
    /// Slower beyond the noise floor, with enough boots on each side and an interval that excludes zero.
    ThroughputRegression,
    /// Faster beyond the noise floor, by the same test.
    ThroughputImprovement,
    /// Both pass and no throughput change outside the noise.
    NoChange,
    /// The old side has no verdict for the cell (absent, or MISS while the new side passes).
    NewCell,
    /// Nothing can be said: no new runs, a harness failure, or too few boots or too much noise for throughput.
    Inconclusive,
}

crate::text::named!(Status {
    NewFailure => "NEW_FAILURE",
    Fixed => "FIXED",
    StillFailing => "STILL_FAILING",
    ChangedFailure => "CHANGED_FAILURE",
    ThroughputRegression => "THROUGHPUT_REGRESSION",
    ThroughputImprovement => "THROUGHPUT_IMPROVEMENT",
    NoChange => "NO_CHANGE",
    NewCell => "NEW_CELL",
    Inconclusive => "INCONCLUSIVE",
});

impl Status {
    /// A change for the worse: what makes `run`, `nightly` and `report` exit 1.
    pub fn regressed(self) -> bool {
        matches!(self, Status::NewFailure | Status::ChangedFailure | Status::ThroughputRegression)
    }
}

/// What one side's runs say.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Absent,
    Pass,
    /// At least one FAIL or ERROR; the dominant title.
    Fail(String),
    /// No failure, but runs without a verdict (MISS); why.
    Unknown(String),
}

/// The most frequent title, the first seen winning a tie.
pub fn dominant_title<'a>(titles: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for t in titles {
        match counts.iter_mut().find(|(x, _)| *x == t) {
            Some(e) => e.1 += 1,
            None => counts.push((t, 1)),
        }
    }
    // max_by_key keeps the last maximum: go backwards so the first seen wins.
    counts.iter().rev().max_by_key(|(_, n)| *n).map(|(t, _)| t.to_string())
}

pub fn state(rs: &[&CellResult]) -> State {
    let rs: Vec<&&CellResult> = rs.iter().filter(|r| r.outcome != Outcome::Skip).collect();
    if rs.is_empty() {
        return State::Absent;
    }
    let failing: Vec<&str> = rs
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Error))
        .map(|r| r.title.as_deref().unwrap_or("FAIL (no title)"))
        .collect();
    if let Some(t) = dominant_title(failing) {
        return State::Fail(t);
    }
    if rs.iter().all(|r| r.outcome == Outcome::Pass) {
        State::Pass
    } else {
        let why = rs.iter().find(|r| r.outcome != Outcome::Pass).and_then(|r| r.title.clone()).unwrap_or_else(|| "MISS".into());
        State::Unknown(why)
    }
}

/// The outcome part of the rule book; `None` when both sides passed and
/// throughput decides.
pub fn outcome_rule(from: &State, to: &State) -> Option<(Status, String)> {
    use State::*;
    Some(match (from, to) {
        (_, Absent) => (Status::Inconclusive, "no runs on the new side".into()),
        (_, Unknown(why)) => (Status::Inconclusive, format!("harness: {why}")),
        (Absent, Pass) => (Status::NewCell, "not in the baseline".into()),
        (Unknown(why), Pass) => (Status::NewCell, format!("baseline had no verdict ({why})")),
        (Absent, Fail(_)) => (Status::NewCell, "fails; not in the baseline".into()),
        (Unknown(why), Fail(_)) => (Status::Inconclusive, format!("fails; the baseline had no verdict ({why}), so new or not is unknown")),
        (Pass, Fail(_)) => (Status::NewFailure, "the baseline passed".into()),
        (Fail(_), Pass) => (Status::Fixed, "the baseline failed, every run passes".into()),
        (Fail(a), Fail(b)) if a == b => (Status::StillFailing, "same failure on both sides".into()),
        (Fail(a), Fail(_)) => (Status::ChangedFailure, format!("the baseline failed with: {a}")),
        (Pass, Pass) => return None,
    })
}

/// A storm cell's signatures over its seeds: a failure title tonight that
/// no run of the baseline showed is a NEW_FAILURE, whatever the dominant
/// titles say (`HANG` on both sides plus a new `WARNING` is not
/// STILL_FAILING). `None` for other cells, when nothing is new, or when the
/// baseline has no verdict to compare with ([`State::Pass`] or [`State::Fail`]).
pub fn storm_rule(old: &[&CellResult], new: &[&CellResult]) -> Option<(Status, String)> {
    if !new.iter().any(|c| c.storm.is_some()) || !matches!(state(old), State::Pass | State::Fail(_)) {
        return None;
    }
    let failed = |rs: &[&CellResult]| -> Vec<(String, u64)> {
        rs.iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Error))
            .map(|r| (r.title.clone().unwrap_or_else(|| "FAIL (no title)".into()), r.storm.as_ref().map_or(0, |s| s.seed)))
            .collect()
    };
    let seen: Vec<String> = failed(old).into_iter().map(|(t, _)| t).collect();
    let mut fresh: Vec<String> = vec![];
    for (t, seed) in failed(new) {
        let line = format!("{t} (seed {seed})");
        if !seen.contains(&t) && !fresh.iter().any(|f| f.starts_with(&format!("{t} (seed "))) {
            fresh.push(line);
        }
    }
    (!fresh.is_empty()).then(|| (Status::NewFailure, format!("new storm signature(s): {}", fresh.join("; "))))
}

/// The statistics of one throughput comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// The old side's median, in the metric's unit (MB/s or ops/s).
    pub from_median: Option<f64>,
    /// 95 % bootstrap interval of `from_median`.
    pub from_median_ci: Option<[f64; 2]>,
    /// The new side's median, in the metric's unit.
    pub to_median: Option<f64>,
    /// 95 % bootstrap interval of `to_median`.
    pub to_median_ci: Option<[f64; 2]>,
    /// Change of the median from `from` to `to`, in percent.
    pub delta_pct: Option<f64>,
    /// 95 % bootstrap interval of `delta_pct`.
    pub ci_low: Option<f64>,
    /// Upper end of the 95 % bootstrap interval of `delta_pct` (`ci_low` is the lower).
    pub ci_high: Option<f64>,
    /// Two-sided Mann-Whitney U p-value (reported, not deciding).
    pub p_value: Option<f64>,
}

impl Stats {
    /// The change with its interval as every report prints it:
    /// `-12.3% [-15.0, -9.8]`, `-12.3%` without an interval, `-` without a change.
    pub fn delta_text(&self) -> String {
        match (self.delta_pct, self.ci_low, self.ci_high) {
            (Some(d), Some(lo), Some(hi)) => format!("{d:+.1}% [{lo:+.1}, {hi:+.1}]"),
            (Some(d), _, _) => format!("{d:+.1}%"),
            _ => "-".into(),
        }
    }
}

/// The throughput part of the rule book: `a` the baseline's boots, `b` the
/// other side's, one value per boot.
pub fn throughput_rule(a: &[f64], b: &[f64], floor_pct: f64) -> (Status, String, Stats) {
    let mut s = Stats::default();
    if !a.is_empty() {
        s.from_median = Some(median(a));
        s.from_median_ci = stats::bootstrap_median_ci(a);
    }
    if !b.is_empty() {
        s.to_median = Some(median(b));
        s.to_median_ci = stats::bootstrap_median_ci(b);
    }
    if a.len() < MIN_SAMPLES || b.len() < MIN_SAMPLES {
        let note = format!("too few boots to judge ({} vs {}, need {MIN_SAMPLES} each)", a.len(), b.len());
        return (Status::Inconclusive, note, s);
    }
    s.p_value = stats::mann_whitney_p(a, b);
    let (ma, mb) = (median(a), median(b));
    if ma == 0.0 {
        return (Status::Inconclusive, "baseline median is zero".into(), s);
    }
    let d = (mb - ma) / ma * 100.0;
    s.delta_pct = Some(d);
    let Some([lo, hi]) = stats::bootstrap_delta_ci(a, b) else {
        return (Status::Inconclusive, "no interval".into(), s);
    };
    (s.ci_low, s.ci_high) = (Some(lo), Some(hi));
    let excludes_zero = lo > 0.0 || hi < 0.0;
    let above = d.abs() > floor_pct;
    let (status, note) = match (excludes_zero, above) {
        (true, true) if d < 0.0 => (Status::ThroughputRegression, "interval excludes 0, above the noise floor"),
        (true, true) => (Status::ThroughputImprovement, "interval excludes 0, above the noise floor"),
        (true, false) => (Status::NoChange, "interval excludes 0 but the change is within the noise floor"),
        (false, false) => (Status::NoChange, "interval includes 0, within the noise floor"),
        (false, true) => (Status::Inconclusive, "large change but the interval includes 0: more runs"),
    };
    (status, note.to_string(), s)
}

/// The timing mode of a group of runs; an error naming both when they mix.
pub fn same_timing(what: &str, groups: &[(&str, &[&CellResult])]) -> Result<Option<Timing>> {
    let mut seen: Option<(Timing, String)> = None;
    for (name, rs) in groups {
        for r in rs.iter() {
            match &seen {
                None => seen = Some((r.timing, format!("{name} run{}", r.run))),
                Some((t, first)) if *t != r.timing => {
                    return Err(bad_input(format!(
                        "{what}: {first} was measured in {t} timing but {name} run{} in {}: throughput in different timing modes is not comparable",
                        r.run, r.timing
                    )))
                }
                _ => {}
            }
        }
    }
    Ok(seen.map(|(t, _)| t))
}

/// Every metric name the runs report, sorted.
pub fn metric_names(groups: &[&[&CellResult]]) -> Vec<String> {
    let mut v: Vec<String> = groups.iter().flat_map(|g| g.iter()).flat_map(|r| r.metrics.keys().cloned()).collect();
    v.sort();
    v.dedup();
    v
}

/// One value per PASS boot of `metric`.
pub fn samples(rs: &[&CellResult], metric: &str) -> Vec<f64> {
    rs.iter().filter(|r| r.outcome == Outcome::Pass).filter_map(|r| r.metrics.get(metric).copied()).filter(|x| x.is_finite()).collect()
}

/// The noise floor of each timing mode and metric of a run, with how it was found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NoiseFloors {
    pub floors: BTreeMap<Timing, BTreeMap<String, Floor>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    pub pct: f64,
    /// The A/A estimate (odd vs even boots), when the run had enough.
    pub aa_pct: Option<f64>,
    pub min_pct: f64,
}

impl NoiseFloors {
    /// Floors for `rec`: the A/A spread of its baseline (first) variant per
    /// timing mode and metric, never below [`min_floor`].
    pub fn of(rec: &RunRecord) -> NoiseFloors {
        let base = rec.cells.first().map(|c| c.variant.as_str()).unwrap_or_default();
        let mut out = NoiseFloors::default();
        for t in [Timing::Icount, Timing::Wall] {
            let cells: Vec<&CellResult> = rec.cells.iter().filter(|c| c.timing == t && c.variant == base).collect();
            for m in metric_names(&[&cells]) {
                let aa = aa_spread(&cells, &m);
                let min_pct = min_floor(t, &m);
                let f = Floor { pct: aa.unwrap_or(0.0).max(min_pct), aa_pct: aa, min_pct };
                out.floors.entry(t).or_default().insert(m, f);
            }
        }
        out
    }

    /// The floor of a metric in a timing mode (its minimum when the run had none).
    pub fn get(&self, t: Timing, metric: &str) -> f64 {
        self.floors.get(&t).and_then(|m| m.get(metric)).map_or(min_floor(t, metric), |f| f.pct)
    }

    /// `icount: fast_mb_per_s 1.00% (A/A 0.01%), ...; wall: ...`.
    pub fn note(&self) -> String {
        if self.floors.is_empty() {
            return "none (nothing measured)".into();
        }
        let per_mode: Vec<String> = self
            .floors
            .iter()
            .map(|(t, ms)| {
                let parts: Vec<String> = ms
                    .iter()
                    .map(|(m, f)| {
                        let how = match f.aa_pct {
                            Some(aa) if aa > f.min_pct => format!("A/A {aa:.2}%"),
                            Some(aa) => format!("A/A {aa:.2}%, minimum {:.1}%", f.min_pct),
                            None => format!("minimum {:.1}%: too few boots for A/A", f.min_pct),
                        };
                        format!("{m} {:.2}% ({how})", f.pct)
                    })
                    .collect();
                format!("{t}: {}", parts.join(", "))
            })
            .collect();
        format!("{} (A/A = odd vs even boots of the baseline variant)", per_mode.join("; "))
    }
}

/// The largest |change %| of `metric` between the odd- and even-numbered
/// boots of each cell whose boots all passed; `None` when no cell has both
/// halves. The maximum (not a mean): the floor must cover the noisiest cell.
pub fn aa_spread(cells: &[&CellResult], metric: &str) -> Option<f64> {
    let mut keys: Vec<String> = cells.iter().map(|c| c.key().axes()).collect();
    keys.sort();
    keys.dedup();
    let mut floor: Option<f64> = None;
    for k in keys {
        let rs: Vec<&CellResult> = cells.iter().copied().filter(|c| c.key().axes() == k).collect();
        if rs.iter().any(|r| r.outcome != Outcome::Pass) {
            continue;
        }
        let half = |odd: bool| -> Vec<f64> {
            let h: Vec<&CellResult> = rs.iter().copied().filter(|r| (r.run % 2 == 1) == odd).collect();
            samples(&h, metric)
        };
        let (a, b) = (half(true), half(false));
        if a.is_empty() || b.is_empty() || median(&a) == 0.0 {
            continue;
        }
        let d = ((median(&b) - median(&a)) / median(&a) * 100.0).abs();
        floor = Some(floor.map_or(d, |f: f64| f.max(d)));
    }
    floor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailKind;
    use std::path::PathBuf;

    fn run(outcome: Outcome, title: Option<&str>) -> CellResult {
        CellResult {
            variant: "v".into(),
            backend: "memmap".into(),
            mode: "fsdax".into(),
            fs: "ext4".into(),
            mapping: "pte".into(),
            workload: "dio-read".into(),
            run: 1,
            outcome,
            kind: (outcome == Outcome::Fail).then_some(FailKind::Hang),
            title: title.map(str::to_string),
            timing: Timing::Icount,
            metrics: BTreeMap::new(),
            samples: vec![],
            problems: vec![],
            console: PathBuf::new(),
            seconds: 0.0,
            workload_seconds: None,
            boot_seconds: None,
            foreign_lines: 0,
            storm: None,
        }
    }

    fn st(rs: &[CellResult]) -> State {
        state(&rs.iter().collect::<Vec<_>>())
    }

    const HANG: &str = "INFO: task hung in ext4_break_layouts";
    const WARN: &str = "WARNING in free_zone_device_page";

    #[test]
    fn a_storm_signature_the_baseline_never_showed_is_a_new_failure() {
        let storm = |k: u32, title: Option<&str>| {
            let mut c = run(if title.is_some() { Outcome::Fail } else { Outcome::Pass }, title);
            c.run = k;
            c.storm = Some(crate::results::StormRecord::fixture(40 + k as u64, 30));
            c
        };
        let (hang, warn) = (HANG, WARN);
        let old = [storm(1, Some(hang)), storm(2, None), storm(3, Some(hang))];
        let new = [storm(1, Some(hang)), storm(2, Some(warn)), storm(3, Some(hang)), storm(4, Some(warn))];
        let (o, n): (Vec<_>, Vec<_>) = (old.iter().collect(), new.iter().collect());
        // By dominant titles alone it is still failing.
        assert_eq!(outcome_rule(&state(&o), &state(&n)).unwrap().0, Status::StillFailing);
        assert_eq!(storm_rule(&o, &n), Some((Status::NewFailure, format!("new storm signature(s): {warn} (seed 42)"))));
        // Nothing new; no baseline verdict; not a storm.
        assert_eq!(storm_rule(&o, &o), None);
        assert_eq!(storm_rule(&[], &n), None);
        let plain = [run(Outcome::Fail, Some(warn))];
        assert_eq!(storm_rule(&o, &plain.iter().collect::<Vec<_>>()), None);
    }

    #[test]
    fn states() {
        let pass = || run(Outcome::Pass, None);
        let fail = |t| run(Outcome::Fail, Some(t));
        assert_eq!(st(&[]), State::Absent);
        assert_eq!(st(&[run(Outcome::Skip, None)]), State::Absent);
        assert_eq!(st(&[pass(), pass()]), State::Pass);
        assert_eq!(st(&[pass(), fail(HANG)]), State::Fail(HANG.into()));
        // ERROR (did not build or boot) is the kernel's failure, not unknown.
        assert_eq!(st(&[pass(), run(Outcome::Error, Some("boot failed: x"))]), State::Fail("boot failed: x".into()));
        // A seen failure is real even beside a MISS; PASS + MISS is unknown.
        assert_eq!(st(&[run(Outcome::Miss, Some("DAX not active")), fail(WARN)]), State::Fail(WARN.into()));
        assert_eq!(st(&[pass(), run(Outcome::Miss, Some("DAX not active"))]), State::Unknown("DAX not active".into()));
        // The title vote: most frequent, first seen on a tie.
        assert_eq!(st(&[fail(WARN), fail(HANG), fail(HANG)]), State::Fail(HANG.into()));
        assert_eq!(st(&[fail(WARN), fail(HANG)]), State::Fail(WARN.into()));
        assert_eq!(dominant_title([]), None);
        assert_eq!(dominant_title(["a", "b", "b"]).as_deref(), Some("b"));
    }

    /// Every row of the outcome table.
    #[test]
    fn outcome_table() {
        use State::*;
        let f = |t: &str| Fail(t.to_string());
        let u = || Unknown("MISS".into());
        let rows: Vec<(State, State, Option<Status>)> = vec![
            (Pass, Absent, Some(Status::Inconclusive)),
            (f(HANG), Absent, Some(Status::Inconclusive)),
            (Pass, u(), Some(Status::Inconclusive)),
            (f(HANG), u(), Some(Status::Inconclusive)),
            (Absent, Pass, Some(Status::NewCell)),
            (u(), Pass, Some(Status::NewCell)),
            (Absent, f(HANG), Some(Status::NewCell)),
            (u(), f(HANG), Some(Status::Inconclusive)),
            (Pass, f(HANG), Some(Status::NewFailure)),
            (f(HANG), Pass, Some(Status::Fixed)),
            (f(HANG), f(HANG), Some(Status::StillFailing)),
            (f(HANG), f(WARN), Some(Status::ChangedFailure)),
            (Pass, Pass, None),
        ];
        for (from, to, want) in rows {
            assert_eq!(outcome_rule(&from, &to).map(|(s, _)| s), want, "{from:?} -> {to:?}");
        }
        assert!(Status::NewFailure.regressed() && Status::ChangedFailure.regressed() && Status::ThroughputRegression.regressed());
        assert!(!Status::Fixed.regressed() && !Status::Inconclusive.regressed() && !Status::NewCell.regressed());
    }

    /// Every row of the throughput table, plus the sample-count and zero rules.
    #[test]
    fn throughput_table() {
        let base = [874.0, 874.2, 874.4];
        let rule = |b: &[f64], floor| throughput_rule(&base, b, floor);
        // Interval excludes 0, above the floor: a regression / improvement, with its size.
        let (s, _, st) = rule(&[830.0, 831.0, 829.5], 1.0);
        assert_eq!(s, Status::ThroughputRegression);
        assert!((st.delta_pct.unwrap() + 5.056).abs() < 0.001 && st.ci_high.unwrap() < 0.0, "{st:?}");
        assert_eq!(rule(&[910.0, 911.0, 912.0], 1.0).0, Status::ThroughputImprovement);
        // Interval excludes 0, within the floor: NO_CHANGE.
        assert_eq!(rule(&[870.0, 870.1, 870.2], 1.0).0, Status::NoChange);
        // Interval includes 0, within the floor.
        assert_eq!(rule(&[874.1, 874.3, 873.9], 1.0).0, Status::NoChange);
        // Interval includes 0 but a large change: INCONCLUSIVE (nightly said NO_CHANGE here once).
        let (s, note, _) = throughput_rule(&[300.0, 100.0, 310.0], &[150.0, 320.0, 90.0], 5.0);
        assert_eq!(s, Status::Inconclusive, "{note}");
        // Too few boots on either side.
        assert_eq!(throughput_rule(&base[..2], &base, 1.0).0, Status::Inconclusive);
        assert_eq!(throughput_rule(&base, &[874.0], 1.0).0, Status::Inconclusive);
        assert_eq!(throughput_rule(&[0.0, 0.0, 0.0], &base, 1.0).0, Status::Inconclusive);
        // The floor decides between the first two rows.
        assert_eq!(rule(&[860.0, 860.5, 861.0], 1.0).0, Status::ThroughputRegression);
        assert_eq!(rule(&[860.0, 860.5, 861.0], 2.0).0, Status::NoChange);
    }

    #[test]
    fn timing_modes_never_mix() {
        let a = run(Outcome::Pass, None);
        let mut b = run(Outcome::Pass, None);
        b.timing = Timing::Wall;
        b.run = 2;
        assert_eq!(same_timing("x", &[("stock", &[&a]), ("fixed", &[&a])]).unwrap(), Some(Timing::Icount));
        let e = same_timing("cell memmap-ext4-pte-dio-read", &[("stock", &[&a]), ("fixed", &[&b])]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("stock run1") && msg.contains("icount") && msg.contains("fixed run2 in wall"), "{msg}");
    }

    #[test]
    fn noise_floor_per_mode_from_odd_vs_even_boots() {
        let boot = |r: u32, t: Timing, fast: f64| {
            let mut c = run(Outcome::Pass, None);
            c.run = r;
            c.timing = t;
            c.metrics.insert("fast_mb_per_s".into(), fast);
            c
        };
        let rec = RunRecord::fixture(
            "r",
            vec![
                boot(1, Timing::Icount, 874.0),
                boot(2, Timing::Icount, 880.0),
                boot(3, Timing::Icount, 874.0),
                boot(1, Timing::Wall, 300.0),
                boot(2, Timing::Wall, 310.0),
            ],
        );
        let f = NoiseFloors::of(&rec);
        // icount: |880 - 874| / 874 = 0.69 %, below the 1 % minimum.
        assert_eq!(f.floors[&Timing::Icount]["fast_mb_per_s"].aa_pct.map(|x| (x * 100.0).round()), Some(69.0));
        assert_eq!(f.get(Timing::Icount, "fast_mb_per_s"), 1.0);
        // wall: 3.3 % A/A, floored at 5 %.
        assert_eq!(f.get(Timing::Wall, "fast_mb_per_s"), 5.0);
        // Nothing measured: the minimum of the mode.
        assert_eq!(f.get(Timing::Icount, "slow_mb_per_s"), 1.0);
        let note = f.note();
        assert!(
            note.contains("icount: fast_mb_per_s 1.00% (A/A 0.69%, minimum 1.0%)") && note.contains("wall: fast_mb_per_s 5.00%"),
            "{note}"
        );
        // An A/A spread above the minimum raises the floor.
        let mut noisy = rec.clone();
        noisy.cells[1].metrics.insert("fast_mb_per_s".into(), 900.0);
        assert!((NoiseFloors::of(&noisy).get(Timing::Icount, "fast_mb_per_s") - 2.9748).abs() < 1e-3);
    }
}
