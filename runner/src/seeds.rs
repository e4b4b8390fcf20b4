//! Storm sessions (`kregress storm SCENARIO --budget 30m`, and a storm
//! workload's `budget:` in a nightly): a scenario's storm cells run with
//! seeds START, START+1, ... back to back until a wall budget ends.
//!
//! Every seed is one more run of the storm cells in ONE ordinary run
//! directory: run k ran seed START+k-1 (its result's `storm.seed` says so),
//! so `report`, `compare` and `nightly` read it as any run, and the rule
//! book compares a storm cell's failures over all its seeds. Beside run.json,
//! storm.json lists every seed tried and the failures deduplicated by
//! signature (the title), each with its first seed and its count.
//!
//! [`session`] is the loop on any runner of one seed (the unit tests drive
//! it with a fake); [`StormReport::of`] is a pure function of the run record.

use crate::error::{bad_input, Result};
use crate::outcome::Outcome;
use crate::results::{CellResult, RunRecord};
use crate::run::RunOpts;
use crate::scenario::{Filter, Scenario, WorkloadName};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Most seeds in one session: the most runs of a cell ([`crate::scenario::limits::MAX_RUNS`]).
pub const MAX_SEEDS: u32 = crate::scenario::limits::MAX_RUNS;

/// Runs seeds `start+done`, `start+done+1`, ... (runs `done+1`, `done+2`,
/// ...: `done` seeds ran before) by `one(run, seed)` while `elapsed()` is
/// under `budget` and fewer than [`MAX_SEEDS`] ran in all; the budget is
/// checked before each seed (a seed in flight finishes). Returns the runs
/// made in all and why it stopped.
pub fn session(
    start: u64,
    done: u32,
    budget: Duration,
    elapsed: &dyn Fn() -> Duration,
    one: &mut dyn FnMut(u32, u64) -> Result<()>,
) -> Result<(u32, String)> {
    let mut run = done;
    loop {
        if elapsed() >= budget {
            return Ok((run, format!("the budget of {} ended", humantime::format_duration(budget))));
        }
        if run >= MAX_SEEDS {
            return Ok((run, format!("{MAX_SEEDS} seeds, the most runs of a cell")));
        }
        let seed = start + run as u64;
        if seed > crate::scenario::limits::MAX_SEED {
            return Ok((run, "the largest seed".into()));
        }
        run += 1;
        one(run, seed)?;
    }
}

/// `only` narrowed to the storm cells: bad input when it names another
/// workload or selects no storm cell of `s`.
pub fn storm_filter(s: &Scenario, only: &Filter) -> Result<Filter> {
    let mut f = only.clone();
    match f.workload {
        None => f.workload = Some(WorkloadName::Storm),
        Some(WorkloadName::Storm) => {}
        Some(w) => return Err(bad_input(format!("--only workload={w}: a storm session runs storm cells only"))),
    }
    if s.cells(&f, Some(1)).is_empty() {
        return Err(bad_input(format!("{}: the selection has no storm cell", s.file.display())));
    }
    Ok(f)
}

/// What a nightly adds for `s` under the night's `only`: the longest storm
/// `budget:` of its workloads, the seed to start from and the storm cells
/// the night selected; None when it has no budget or the night selected
/// no storm cell of it.
pub fn nightly_plan(s: &Scenario, only: &Filter) -> Option<(Duration, u64, Filter)> {
    let (budget, seed) = s.run.workloads.iter().filter_map(|w| Some((w.storm_budget()?, w.spec().seed))).max()?;
    Some((budget, seed, storm_filter(s, only).ok()?))
}

/// A session of `s`'s storm cells that `opts.only` selects, from seed
/// `start`, until `budget` ends: every seed a run of one run directory
/// (made by the first, resumed by the next: [`crate::run::run`] with
/// [`RunOpts::seed_per_run`]), storm.json rewritten after each seed.
/// `continued` is a run whose first `done` seeds already ran (a nightly's),
/// continued with the next.
pub fn run(
    s: &Scenario,
    opts: &RunOpts,
    start: u64,
    budget: Duration,
    continued: Option<(&RunRecord, u32)>,
) -> Result<(RunRecord, StormReport)> {
    if start > crate::scenario::limits::MAX_SEED {
        return Err(bad_input(format!("--seed {start}: not from 0 to {}", crate::scenario::limits::MAX_SEED)));
    }
    let only = storm_filter(s, &opts.only)?;
    let began = Instant::now();
    let mut last: Option<RunRecord> = continued.map(|(r, _)| r.clone());
    let save = |rec: &RunRecord, stopped: &str| {
        let r = StormReport::of(rec, budget, began.elapsed().as_secs_f64(), stopped.to_string());
        crate::cache::write_atomic(&rec.results_dir.join("storm.json"), &serde_json::to_vec_pretty(&r).unwrap())?;
        Ok::<_, crate::error::Error>(r)
    };
    let (_, stopped) = session(start, continued.map_or(0, |(_, n)| n), budget, &|| began.elapsed(), &mut |run, seed| {
        eprintln!("storm: seed {seed} (run {run}), {:.0} s of {}", began.elapsed().as_secs_f64(), humantime::format_duration(budget));
        let o = RunOpts {
            only: only.clone(),
            runs: Some(run),
            resume: last.as_ref().map(|r| r.results_dir.display().to_string()),
            seed_per_run: Some(start),
            ..opts.clone()
        };
        let rec = crate::run::run(s, &o)?;
        save(&rec, "running")?;
        last = Some(rec);
        Ok(())
    })?;
    let rec = last.ok_or_else(|| bad_input(format!("storm: the budget of {} let no seed run", humantime::format_duration(budget))))?;
    let report = save(&rec, &stopped)?;
    Ok((rec, report))
}

/// One seed of a session: what each of its storm cells did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedRun {
    pub seed: u64,
    pub run: u32,
    /// `stock/memmap-ext4-pte-storm: PASS`, `...: FAIL HANG: INFO: task hung in ...`.
    pub cells: Vec<String>,
}

/// One failure signature of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    pub title: String,
    pub kind: Option<String>,
    /// The first seed that showed it, and its cell (`stock/memmap-ext4-pte-storm/run3`).
    pub first_seed: u64,
    pub first_cell: String,
    /// Cells (over all seeds) that failed with it.
    pub count: u32,
    pub seeds: Vec<u64>,
    /// The first cell's reproduction rate (`reproduced 2/3`), when it was rerun.
    pub reproduced: Option<String>,
}

/// storm.json: a session, from its run record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StormReport {
    pub run_id: String,
    pub scenario: String,
    pub budget_seconds: u64,
    pub seconds: f64,
    pub stopped: String,
    pub seeds: Vec<SeedRun>,
    /// Failing cells' signatures, deduplicated, in the order first seen.
    pub signatures: Vec<Signature>,
}

impl StormReport {
    /// The session's report from its run record: the storm cells, by seed.
    pub fn of(rec: &RunRecord, budget: Duration, seconds: f64, stopped: String) -> StormReport {
        let mut cells: Vec<&CellResult> = rec.cells.iter().filter(|c| c.storm.is_some()).collect();
        cells.sort_by_key(|c| (c.run, c.key().id()));
        let mut seeds: BTreeMap<u32, SeedRun> = BTreeMap::new();
        let mut sigs: Vec<Signature> = vec![];
        for c in cells {
            let seed = c.storm.as_ref().map_or(0, |s| s.seed);
            let kind = c.kind.map(|k| k.as_str().to_string());
            let what = format!(
                "{}{}{}",
                c.outcome,
                kind.as_deref().map(|k| format!(" {k}")).unwrap_or_default(),
                c.title.as_deref().map(|t| format!(": {t}")).unwrap_or_default()
            );
            seeds.entry(c.run).or_insert(SeedRun { seed, run: c.run, cells: vec![] }).cells.push(format!(
                "{}/{}: {what}",
                c.variant,
                c.key().axes()
            ));
            if !matches!(c.outcome, Outcome::Fail | Outcome::Error) {
                continue;
            }
            let title = c.title.clone().unwrap_or_else(|| "FAIL (no title)".into());
            match sigs.iter_mut().find(|s| s.title == title) {
                Some(s) => {
                    s.count += 1;
                    if !s.seeds.contains(&seed) {
                        s.seeds.push(seed);
                    }
                }
                None => sigs.push(Signature {
                    title,
                    kind,
                    first_seed: seed,
                    first_cell: c.key().id(),
                    count: 1,
                    seeds: vec![seed],
                    reproduced: c.storm.as_ref().and_then(|s| s.reproduced.as_ref()).map(|r| r.line()),
                }),
            }
        }
        StormReport {
            run_id: rec.run_id.clone(),
            scenario: rec.scenario.clone(),
            budget_seconds: budget.as_secs(),
            seconds,
            stopped,
            seeds: seeds.into_values().collect(),
            signatures: sigs,
        }
    }

    /// What the terminal shows: the seeds, then one line per signature.
    pub fn text(&self) -> String {
        let mut s = format!(
            "storm {}: {} seed(s) in {:.0} s ({}), run {}\n",
            self.scenario,
            self.seeds.len(),
            self.seconds,
            self.stopped,
            self.run_id
        );
        if self.signatures.is_empty() {
            s += "no failure\n";
        }
        for g in &self.signatures {
            let rate = g.reproduced.as_deref().map(|r| format!(", {r}")).unwrap_or_default();
            s += &format!("{} x{}: first seed {} ({}{rate}); seeds {:?}\n", g.title, g.count, g.first_seed, g.first_cell, g.seeds);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailKind;
    use crate::results::StormRecord;
    use std::cell::Cell as C;

    /// A nightly's storm seeds keep the night's `--only` (a seeded session
    /// of every variant was run under `--only variant=regressed` once).
    #[test]
    fn a_nightly_storm_budget_keeps_the_nights_selection() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/storm.yaml");
        let mut s = crate::scenario::load(&file).unwrap();
        assert!(nightly_plan(&s, &Filter::default()).is_none(), "no budget: no seeds");
        s.run.workloads[0].budget = Some("20s".into());
        let (budget, seed, f) = nightly_plan(&s, &Filter::parse("variant=regressed").unwrap()).unwrap();
        assert_eq!((budget, seed), (Duration::from_secs(20), 1));
        let cells: Vec<String> = s.cells(&f, None).iter().map(|c| c.variant.clone()).collect();
        assert_eq!(cells, ["regressed"]);
        assert!(nightly_plan(&s, &Filter::parse("workload=dio-read").unwrap()).is_none(), "storms not selected");
    }

    #[test]
    fn seeds_run_back_to_back_until_the_budget_ends() {
        // Each seed takes 50 s of a 120 s budget: the third starts at 100 s
        // and finishes (the budget is a bound, not a kill).
        let clock = C::new(0u64);
        let mut ran = vec![];
        let (n, why) = session(5, 0, Duration::from_secs(120), &|| Duration::from_secs(clock.get()), &mut |run, seed| {
            ran.push((run, seed));
            clock.set(clock.get() + 50);
            Ok(())
        })
        .unwrap();
        assert_eq!((n, ran), (3, vec![(1, 5), (2, 6), (3, 7)]));
        assert_eq!(why, "the budget of 2m ended");
        // No seed when the budget is spent; at most MAX_SEEDS.
        assert_eq!(session(0, 0, Duration::ZERO, &|| Duration::ZERO, &mut |_, _| panic!("ran")).unwrap().0, 0);
        assert_eq!(session(0, 0, Duration::from_secs(1), &|| Duration::ZERO, &mut |_, _| Ok(())).unwrap().0, MAX_SEEDS);
        // An error (the host) stops it.
        assert!(session(0, 0, Duration::from_secs(1), &|| Duration::ZERO, &mut |_, _| Err(crate::error::infra("disk full"))).is_err());
        // A nightly's run 1 (seed 5) is done: the session goes on with run 2, seed 6.
        let mut ran = vec![];
        let clock = C::new(0u64);
        session(5, 1, Duration::from_secs(60), &|| Duration::from_secs(clock.get()), &mut |run, seed| {
            ran.push((run, seed));
            clock.set(clock.get() + 50);
            Ok(())
        })
        .unwrap();
        assert_eq!(ran, [(2, 6), (3, 7)]);
    }

    fn cell(variant: &str, run: u32, seed: u64, fail: Option<&str>) -> CellResult {
        let st = StormRecord::fixture(seed, 60);
        CellResult {
            variant: variant.into(),
            backend: "memmap".into(),
            mode: "fsdax".into(),
            fs: "ext4".into(),
            mapping: "pte".into(),
            workload: "storm".into(),
            run,
            outcome: if fail.is_some() { Outcome::Fail } else { Outcome::Pass },
            kind: fail.map(|_| FailKind::Hang),
            title: fail.map(String::from),
            timing: crate::scenario::Timing::Wall,
            metrics: BTreeMap::new(),
            samples: vec![],
            problems: vec![],
            console: Default::default(),
            seconds: 1.0,
            workload_seconds: None,
            boot_seconds: None,
            foreign_lines: 0,
            storm: Some(st),
        }
    }

    #[test]
    fn failures_are_listed_once_per_signature_with_the_first_seed_and_the_count() {
        let hang = "INFO: task hung in ext4_break_layouts";
        let warn = "WARNING in free_zone_device_page";
        let mut c3 = cell("stock", 3, 12, Some(hang));
        c3.storm.as_mut().unwrap().reproduced = Some(crate::results::Reproduced { runs: 3, same: 2, reruns: vec![] });
        let cells = vec![
            cell("fixed", 1, 10, None),
            cell("stock", 1, 10, None),
            cell("stock", 2, 11, Some(warn)),
            c3,
            cell("stock", 4, 13, Some(hang)),
            cell("fixed", 4, 13, Some(hang)),
        ];
        let rec = RunRecord::fixture("r", cells);
        let r = StormReport::of(&rec, Duration::from_secs(1800), 1790.0, "the budget of 30m ended".into());
        assert_eq!(
            r.seeds.iter().map(|s| (s.run, s.seed, s.cells.len())).collect::<Vec<_>>(),
            [(1, 10, 2), (2, 11, 1), (3, 12, 1), (4, 13, 2)]
        );
        assert_eq!(r.seeds[1].cells, ["stock/memmap-ext4-pte-storm: FAIL HANG: WARNING in free_zone_device_page"]);
        let sigs: Vec<(&str, u64, &str, u32, &[u64])> =
            r.signatures.iter().map(|s| (s.title.as_str(), s.first_seed, s.first_cell.as_str(), s.count, &s.seeds[..])).collect();
        assert_eq!(
            sigs,
            [
                (warn, 11, "stock/memmap-ext4-pte-storm/run2", 1, &[11][..]),
                (hang, 12, "stock/memmap-ext4-pte-storm/run3", 3, &[12, 13][..])
            ]
        );
        assert_eq!(r.signatures[1].reproduced.as_deref(), Some("reproduced 2/3"));
        assert!(r.text().contains("INFO: task hung in ext4_break_layouts x3: first seed 12 (stock/memmap-ext4-pte-storm/run3, reproduced 2/3); seeds [12, 13]"), "{}", r.text());
    }
}
