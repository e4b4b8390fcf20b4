//! Unit tests of the comparison: hand-built records, hand-computed values.

use super::*;
use crate::rules::{self, NoiseFloors};
use std::path::PathBuf;

const HUNG: &str = "INFO: task hung in ext4_break_layouts";

/// One run of `variant` in the pmem-ext4-dax cell of `workload`.
fn run(
    variant: &str,
    workload: &str,
    run: u32,
    outcome: Outcome,
    kind: Option<FailKind>,
    title: Option<&str>,
    mb: Option<f64>,
) -> CellResult {
    CellResult {
        variant: variant.into(),
        backend: "pmem".into(),
        mode: "fsdax".into(),
        fs: "ext4".into(),
        mapping: "dax".into(),
        workload: workload.into(),
        run,
        outcome,
        kind,
        title: title.map(String::from),
        timing: Timing::Wall,
        metrics: mb.map(|m| [("mb_per_s".to_string(), m)].into_iter().collect()).unwrap_or_default(),
        samples: vec![],
        problems: Vec::new(),
        console: PathBuf::from("console.log"),
        seconds: 1.0,
        workload_seconds: None,
        boot_seconds: None,
        foreign_lines: 0,
        storm: None,
    }
}

fn pass(variant: &str, workload: &str, n: u32, mb: f64) -> CellResult {
    run(variant, workload, n, Outcome::Pass, None, None, Some(mb))
}

/// Passing runs 1..=k of `variant` with the given throughputs.
fn passes(variant: &str, workload: &str, mbs: &[f64]) -> Vec<CellResult> {
    mbs.iter().enumerate().map(|(i, &mb)| pass(variant, workload, i as u32 + 1, mb)).collect()
}

fn record(run_id: &str, cells: Vec<CellResult>) -> RunRecord {
    RunRecord { scenario: "test".into(), ..RunRecord::fixture(run_id, cells) }
}

/// Every cell in wall timing with this noise floor.
fn floors(pct: f64) -> NoiseFloors {
    let mut f = NoiseFloors::default();
    for m in ["mb_per_s", "ops_per_s"] {
        f.floors.entry(Timing::Wall).or_default().insert(m.into(), rules::Floor { pct, aa_pct: None, min_pct: pct });
    }
    f
}

fn cv(rec: &RunRecord, floor: f64) -> Vec<Verdict> {
    compare_variants(rec, &floors(floor)).unwrap()
}

fn cr(old: &RunRecord, new: &RunRecord, floor: f64) -> Vec<Verdict> {
    compare_runs(old, new, &floors(floor)).unwrap()
}

fn aa(rec: &RunRecord, variant: &str) -> Option<f64> {
    rules::aa_spread(&rec.cells.iter().filter(|c| c.variant == variant).collect::<Vec<_>>(), "mb_per_s")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn fixed_hang() {
    let mut cells: Vec<CellResult> =
        (1..=3).map(|i| run("stock", "dio", i, Outcome::Fail, Some(FailKind::Hang), Some(HUNG), None)).collect();
    cells.extend(passes("fixed", "dio", &[100.0, 101.0, 99.0]));
    let v = cv(&record("r", cells), 5.0);
    assert_eq!(v.len(), 1);
    let v = &v[0];
    assert_eq!(v.cell, "pmem-ext4-dax-dio");
    assert_eq!((v.from_variant.as_str(), v.to_variant.as_str()), ("stock", "fixed"));
    assert_eq!(v.verdict, Status::Fixed);
    assert_eq!(v.from, format!("HANG 3/3 ({HUNG})"));
    assert_eq!(v.to, "PASS 3/3");
    assert_eq!(v.to_string(), "FIXED");
    assert_eq!(v.noise_floor_pct, 5.0);
}

#[test]
fn regressed_warn_and_mixed_counts() {
    let mut cells = passes("stock", "gup", &[50.0, 51.0, 49.0]);
    cells.push(pass("new", "gup", 1, 50.0));
    for i in 2..=3 {
        cells.push(run("new", "gup", i, Outcome::Fail, Some(FailKind::Warn), Some("WARNING in foo"), Some(50.0)));
    }
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::NewFailure);
    assert_eq!(v.from, "PASS 3/3");
    assert_eq!(v.to, "WARN 2/3 (WARNING in foo), PASS 1/3");
    // Outcome verdicts do not compute throughput statistics.
    assert_eq!(v.stats.delta_pct, None);
}

#[test]
fn still_failing_and_titles() {
    let cells = vec![
        run("stock", "w", 1, Outcome::Fail, Some(FailKind::Crash), Some("BUG: a"), None),
        run("stock", "w", 2, Outcome::Fail, Some(FailKind::Crash), Some("BUG: b"), None),
        run("stock", "w", 3, Outcome::Fail, Some(FailKind::Crash), Some("BUG: b"), None),
        run("fix", "w", 1, Outcome::Pass, None, None, None),
        run("fix", "w", 2, Outcome::Fail, Some(FailKind::Warn), Some("WARNING in bar"), None),
    ];
    let v = &cv(&record("r", cells), 5.0)[0];
    // Both sides fail, with different dominant titles (the one rule book, as nightly).
    assert_eq!(v.verdict, Status::ChangedFailure);
    assert!(v.note.contains("BUG: b"), "{}", v.note);
    assert_eq!(v.from, "CRASH 3/3 (BUG: b; +1 other)");
    // Tied counts: PASS sorts before failures.
    assert_eq!(v.to, "PASS 1/2, WARN 1/2 (WARNING in bar)");
}

#[test]
fn throughput_regression_of_20_percent() {
    let mut cells = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    cells.extend(passes("slow", "dio", &[80.0, 80.8, 79.2]));
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::ThroughputRegression);
    assert_eq!(v.unit, "MB/s");
    assert_eq!(v.stats.from_median, Some(100.0));
    assert_eq!(v.stats.to_median, Some(80.0));
    assert!(close(v.stats.delta_pct.unwrap(), -20.0, 1e-9));
    let (lo, hi) = (v.stats.ci_low.unwrap(), v.stats.ci_high.unwrap());
    // Every resampled ratio lies between 79.2/101 and 80.8/99.
    assert!(lo >= -21.6 && hi <= -18.3 && lo < hi, "[{lo}, {hi}]");
    // Complete separation of 3 vs 3: 2 of the 20 splits are this extreme.
    assert!(close(v.stats.p_value.unwrap(), 0.1, 1e-12));
    assert_eq!(v.to_string(), "THROUGHPUT_REGRESSION(-20.0%)");
    let json = serde_json::to_value(v).unwrap();
    assert_eq!(json["verdict"], "THROUGHPUT_REGRESSION");
}

#[test]
fn throughput_improvement() {
    let mut cells = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    cells.extend(passes("fast", "dio", &[110.0, 111.0, 109.0]));
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::ThroughputImprovement);
    assert_eq!(v.to_string(), "THROUGHPUT_IMPROVEMENT(+10.0%)");
    // The same data under a 12 % noise floor is a real but ignorable change.
    let mut cells = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    cells.extend(passes("fast", "dio", &[110.0, 111.0, 109.0]));
    let v = &cv(&record("r", cells), 12.0)[0];
    assert_eq!(v.verdict, Status::NoChange);
    assert_eq!(v.noise_floor_pct, 12.0);
}

#[test]
fn tiny_noisy_difference_is_no_change() {
    let mut cells = passes("stock", "dio", &[100.0, 104.0, 97.0, 102.0, 95.0]);
    cells.extend(passes("new", "dio", &[99.0, 103.0, 96.0, 101.5, 98.0]));
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::NoChange);
    assert!(close(v.stats.delta_pct.unwrap(), -1.0, 1e-9));
    assert!(v.stats.ci_low.unwrap() < 0.0 && v.stats.ci_high.unwrap() > 0.0);
    assert!(v.stats.p_value.unwrap() > 0.5);
}

#[test]
fn large_noisy_difference_is_inconclusive() {
    let mut cells = passes("stock", "dio", &[100.0, 60.0, 140.0]);
    cells.extend(passes("new", "dio", &[80.0, 150.0, 50.0]));
    let v = &cv(&record("r", cells), 5.0)[0];
    assert!(close(v.stats.delta_pct.unwrap(), -20.0, 1e-9));
    assert_eq!(v.verdict, Status::Inconclusive);
}

#[test]
fn aa_is_no_change() {
    let runs = passes("stock", "dio", &[100.0, 103.0, 98.0]);
    let refs: Vec<&CellResult> = runs.iter().collect();
    let v = &compare_groups("c", "stock", &refs, "stock", &refs, &floors(5.0)).unwrap()[0];
    assert_eq!(v.verdict, Status::NoChange);
    assert_eq!(v.stats.delta_pct, Some(0.0));
    assert!(v.stats.ci_low.unwrap() <= 0.0 && v.stats.ci_high.unwrap() >= 0.0);
    assert_eq!(v.stats.p_value, Some(1.0));
    // Two names for the same kernel in one record, and one kernel in two runs.
    let mut cells = runs.clone();
    cells.extend(passes("stock-again", "dio", &[101.0, 99.0, 102.0]));
    assert_eq!(cv(&record("r", cells), 5.0)[0].verdict, Status::NoChange);
    let v = cr(&record("old", runs.clone()), &record("new", runs), 5.0);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].verdict, Status::NoChange);
    assert_eq!((v[0].from_variant.as_str(), v[0].to_variant.as_str()), ("stock@old", "stock@new"));
}

#[test]
fn compare_runs_pairs_variant_and_cell() {
    let mut old = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    old.extend(passes("fix", "dio", &[50.0, 50.0, 50.0]));
    let mut new = passes("stock", "dio", &[80.0, 80.8, 79.2]);
    new.extend(passes("fix", "dio", &[50.0, 50.5, 49.5]));
    new.push(pass("fix", "mmap", 1, 1.0));
    let v = cr(&record("a", old), &record("b", new), 5.0);
    let labels: Vec<(String, String, String)> = v.iter().map(|v| (v.cell.clone(), v.to_variant.clone(), v.to_string())).collect();
    assert_eq!(
        labels,
        vec![
            ("pmem-ext4-dax-dio".into(), "stock@b".into(), "THROUGHPUT_REGRESSION(-20.0%)".into()),
            ("pmem-ext4-dax-dio".into(), "fix@b".into(), "NO_CHANGE".into()),
            ("pmem-ext4-dax-mmap".into(), "fix@b".into(), "NEW_CELL".into()),
        ]
    );
    assert_eq!(v[2].from, "no runs");
}

#[test]
fn inconclusive_cases() {
    // ERROR beside passes is the kernel's failure (it did not boot once), as in nightly.
    let mut cells = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    cells.extend(passes("new", "dio", &[100.0, 101.0]));
    cells.push(run("new", "dio", 3, Outcome::Error, None, Some("kernel did not boot"), None));
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::NewFailure);
    assert_eq!(v.to, "PASS 2/3, ERROR 1/3 (kernel did not boot)");
    // MISS beside passes: the missing run could have failed.
    let mut cells = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    cells.extend(passes("new", "dio", &[100.0, 101.0]));
    cells.push(run("new", "dio", 3, Outcome::Miss, None, Some("DAX not active"), None));
    assert_eq!(cv(&record("r", cells), 5.0)[0].verdict, Status::Inconclusive);

    // MISS in the baseline cannot show a regression either.
    let mut cells = vec![run("stock", "dio", 1, Outcome::Miss, None, None, None)];
    cells.extend((1..=3).map(|i| run("new", "dio", i, Outcome::Fail, Some(FailKind::Hang), Some(HUNG), None)));
    assert_eq!(cv(&record("r", cells), 5.0)[0].verdict, Status::Inconclusive);

    // Two samples per side are too few, however clear the difference.
    let mut cells = passes("stock", "dio", &[100.0, 100.0]);
    cells.extend(passes("new", "dio", &[50.0, 50.0]));
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::Inconclusive);
    assert_eq!((v.stats.from_median, v.stats.to_median), (Some(100.0), Some(50.0)));
    assert_eq!(v.stats.delta_pct, None);

    // A baseline of skipped runs only has nothing to compare with: a new cell, never NO_CHANGE.
    let cells = vec![run("stock", "dio", 1, Outcome::Skip, None, None, None), pass("new", "dio", 1, 1.0)];
    assert_eq!(cv(&record("r", cells), 5.0)[0].verdict, Status::NewCell);
    // And the other way round: nothing ran on the new side.
    let cells = vec![pass("stock", "dio", 1, 1.0), run("new", "dio", 1, Outcome::Skip, None, None, None)];
    assert_eq!(cv(&record("r", cells), 5.0)[0].verdict, Status::Inconclusive);
}

#[test]
fn no_throughput_at_all_is_no_change() {
    let cells = vec![run("stock", "dio", 1, Outcome::Pass, None, None, None), run("new", "dio", 1, Outcome::Pass, None, None, None)];
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.verdict, Status::NoChange);
    assert_eq!(v.unit, "");
}

#[test]
fn ops_per_s_when_no_mb_per_s() {
    let mut cells = Vec::new();
    for (variant, ops) in [("stock", [1000.0, 1010.0, 990.0]), ("new", [700.0, 707.0, 693.0])] {
        for (i, o) in ops.iter().enumerate() {
            let mut r = run(variant, "trunc", i as u32 + 1, Outcome::Pass, None, None, None);
            r.metrics.insert("ops_per_s".into(), *o);
            cells.push(r);
        }
    }
    let v = &cv(&record("r", cells), 5.0)[0];
    assert_eq!(v.unit, "ops/s");
    assert_eq!(v.to_string(), "THROUGHPUT_REGRESSION(-30.0%)");
}

/// The race measured in icount timing: its figures are ops per virtual
/// second, and the table's note on icount does not call them MB.
#[test]
fn icount_ops_per_s_are_not_called_mb() {
    let mut cells = Vec::new();
    for (variant, ops) in [("stock", [1000.0, 1010.0, 990.0]), ("new", [700.0, 707.0, 693.0])] {
        for (i, o) in ops.iter().enumerate() {
            let mut r = run(variant, "trunc", i as u32 + 1, Outcome::Pass, None, None, None);
            r.timing = Timing::Icount;
            r.metrics.insert("ops_per_s".into(), *o);
            cells.push(r);
        }
    }
    let vs = cv(&record("r", cells), 5.0);
    assert_eq!(vs[0].unit, "ops/s (virtual time)");
    let t = render_table(&vs);
    assert!(t.contains("1000 [990, 1010] ops/s (virtual time)") && t.contains("icount figures are per virtual second"), "{t}");
    assert!(!t.contains("MB"), "{t}");
}

#[test]
fn baseline_is_first_variant_in_order_of_appearance() {
    let mut cells = passes("zeta", "dio", &[100.0, 100.0, 100.0]);
    cells.extend(passes("alpha", "dio", &[100.0, 100.0, 100.0]));
    cells.extend(passes("beta", "dio", &[100.0, 100.0, 100.0]));
    let v = cv(&record("r", cells), 5.0);
    let pairs: Vec<(&str, &str)> = v.iter().map(|v| (v.from_variant.as_str(), v.to_variant.as_str())).collect();
    assert_eq!(pairs, vec![("zeta", "alpha"), ("zeta", "beta")]);
    // A single variant has nothing to compare against.
    assert!(cv(&record("r", passes("zeta", "dio", &[1.0])), 5.0).is_empty());
}

#[test]
fn the_same_verdict_twice() {
    let a = [100.0, 97.0, 104.0, 99.0, 101.0];
    let b = [90.0, 95.0, 93.0, 99.0, 88.0];
    // Field for field, intervals included (the bootstrap has a fixed seed).
    let mut cells = passes("stock", "dio", &a);
    cells.extend(passes("new", "dio", &b));
    let rec = record("r", cells);
    assert_eq!(cv(&rec, 5.0), cv(&rec, 5.0));
}

#[test]
fn noise_floor_from_odd_and_even_runs() {
    // Cell dio: odd runs 100, 101 (median 100.5), even 103, 104 (103.5):
    // 2.985 %. Cell mmap: odd 200, even 190: 5 %. The largest wins.
    let mut cells = passes("stock", "dio", &[100.0, 103.0, 101.0, 104.0]);
    cells.extend(passes("stock", "mmap", &[200.0, 190.0]));
    // A failing cell says nothing about throughput noise.
    cells.push(pass("stock", "gup", 1, 10.0));
    cells.push(run("stock", "gup", 2, Outcome::Fail, Some(FailKind::Warn), Some("WARNING"), Some(1.0)));
    // Other variants are not looked at.
    cells.extend(passes("other", "dio", &[1.0, 1000.0]));
    let rec = record("r", cells);
    assert!(close(aa(&rec, "stock").unwrap(), 5.0, 1e-9));
    let dio_only = record("r", passes("stock", "dio", &[100.0, 103.0, 101.0, 104.0]));
    assert!(close(aa(&dio_only, "stock").unwrap(), 300.0 / 100.5, 1e-9));
    // One run: no halves to compare.
    assert_eq!(aa(&record("r", passes("stock", "dio", &[1.0])), "stock"), None);
    assert_eq!(aa(&rec, "absent"), None);
}

#[test]
fn table_shows_cells_outcomes_statistics_and_verdict() {
    let mut cells = passes("stock", "dio", &[100.0, 101.0, 99.0]);
    cells.extend(passes("slow", "dio", &[80.0, 80.8, 79.2]));
    cells.extend((1..=3).map(|i| run("stock", "gup", i, Outcome::Fail, Some(FailKind::Hang), Some(HUNG), None)));
    cells.extend(passes("slow", "gup", &[5.0, 5.0, 5.0]));
    let t = render_table(&cv(&record("r", cells), 5.0));
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("| cell "), "{t}");
    assert!(lines[1].starts_with("|---"), "{t}");
    let dio = lines[2];
    for s in [
        "pmem-ext4-dax-dio",
        "stock → slow",
        "PASS 3/3 → PASS 3/3",
        "100 [99.0, 101] MB/s",
        "80.0 [79.2, 80.8] MB/s",
        "-20.0% [",
        "0.100",
        "THROUGHPUT_REGRESSION(-20.0%)",
    ] {
        assert!(dio.contains(s), "{s:?} missing in {dio}");
    }
    let gup = lines[3];
    assert!(gup.contains(&format!("HANG 3/3 ({HUNG}) → PASS 3/3")) && gup.contains("| FIXED"), "{gup}");
    // Columns line up: every table row is as wide as the header.
    let w = lines[0].chars().count();
    assert!(lines[..4].iter().all(|l| l.chars().count() == w), "{t}");
    assert_eq!(lines.last().unwrap(), &"noise floor: mb_per_s 5.00% in wall timing");
}

#[test]
fn table_escapes_pipes_in_titles() {
    let cells = vec![
        run("stock", "w", 1, Outcome::Fail, Some(FailKind::Crash), Some("BUG: a|b"), None),
        run("new", "w", 1, Outcome::Pass, None, None, None),
    ];
    let t = render_table(&cv(&record("r", cells), 5.0));
    assert!(t.contains("CRASH 1/1 (BUG: a\\|b) → PASS 1/1"), "{t}");
}
