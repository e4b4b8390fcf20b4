//! `kregress reduce CELL_DIR`: the smallest storm that still fails as a
//! failing storm cell did, printed as a scenario line (the start of a fixed
//! workload and of a bisection).
//!
//! Built like [`crate::bisect`]: [`reduce_impl`] is the reduction on any
//! [`Trial`] (the unit tests drive it with a scripted one), [`run`] builds
//! the real kernel, initramfs and a [`KernelTrial`] that boots the cell. A
//! candidate is judged by bisect's [`StepJudge`] in signature mode: it
//! reproduces at the first boot that shows the cell's title (kept), it does
//! not after `boots` clean boots (left out: a race may need more), and
//! another failure or a kernel that did not boot leaves it out too.
//!
//! The moves, in order, each tried on what the moves before kept: drop each
//! op kind of the start's list once (while more than one is left), then
//! halve the threads while the half still fails, then the seconds. The seed
//! stays: every candidate is the seed's streams over a smaller mix. Bounded
//! by a number of boots and a wall budget, checked before each boot (a boot
//! in flight finishes); `on_step` sees the reduction after every step, so
//! reduce.json holds the steps done whenever kregress stops.

use crate::bisect::{Decision, Mode, RunObs, StepJudge, StepVerdict};
use crate::error::{bad_input, infra, Findings, Result};
use crate::results::{self, CellResult, StormRecord};
use crate::scenario::{self, Cell, StormOp, WorkloadName};
use crate::vm::{self, Accel};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Boots per candidate before it counts as not reproducing (`--boots`).
pub const DEFAULT_BOOTS: u32 = 3;
/// Most boots of a whole reduction (`--max-boots`).
pub const DEFAULT_MAX_BOOTS: u32 = 40;

/// A storm's parameters: what a candidate changes (the seed never does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Storm {
    pub seed: u64,
    pub threads: u32,
    pub seconds: u32,
    pub ops: Vec<StormOp>,
}

impl Storm {
    pub fn of(r: &StormRecord) -> Storm {
        Storm { seed: r.seed, threads: r.threads, seconds: r.seconds, ops: r.ops.clone() }
    }

    /// `- { name: storm, seconds: 15, threads: 2, seed: 7, ops: [dio-read-fast, truncate] }`:
    /// a line of a scenario's `run.workloads`.
    pub fn scenario_line(&self) -> String {
        let ops: Vec<&str> = self.ops.iter().map(|o| o.as_str()).collect();
        format!("- {{ name: storm, seconds: {}, threads: {}, seed: {}, ops: [{}] }}", self.seconds, self.threads, self.seed, ops.join(", "))
    }
}

/// How much a reduction may spend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    /// Boots of one candidate without the signature before it is left out.
    pub boots: u32,
    /// Boots of the whole reduction.
    pub max_boots: u32,
    /// Wall time of the whole reduction, in seconds.
    pub wall_seconds: u64,
}

/// Boots one candidate once: step `step`'s `attempt`-th boot. An `Err`
/// stops the reduction (the host failed).
pub trait Trial {
    fn boot(&mut self, step: usize, attempt: u32, storm: &Storm) -> Result<RunObs>;
}

/// One candidate tried.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub n: usize,
    /// `drop punch`, `threads 4 -> 2`, `seconds 60 -> 30`.
    pub change: String,
    pub storm: Storm,
    /// It reproduced the signature: later steps start from it.
    pub kept: bool,
    pub boots: u32,
    /// Failure titles seen, one per failing boot.
    pub titles: Vec<String>,
    pub reason: String,
    pub seconds: f64,
}

/// A reduction, done or stopped.
#[derive(Debug, Clone, Serialize)]
pub struct Reduction {
    /// The cell reduced (`stock/memmap-ext4-pte-storm/run1`).
    pub cell: String,
    pub signature: String,
    pub budget: Budget,
    pub start: Storm,
    /// The smallest storm that reproduced (the start when none did).
    pub smallest: Storm,
    /// [`Storm::scenario_line`] of `smallest`.
    pub scenario_line: String,
    pub steps: Vec<Step>,
    pub boots: u32,
    pub seconds: f64,
    /// Why it stopped before trying every move (a budget, the harness), if it did.
    pub stopped: Option<String>,
    /// It stopped because the harness failed (MISS after retries): exit 3.
    pub harness_failed: bool,
}

/// The candidate after `cur` for move `m`, or none when the move does not apply.
fn candidate(cur: &Storm, m: &Move) -> Option<(String, Storm)> {
    match *m {
        Move::Drop(op) if cur.ops.len() > 1 && cur.ops.contains(&op) => {
            Some((format!("drop {op}"), Storm { ops: cur.ops.iter().copied().filter(|o| *o != op).collect(), ..cur.clone() }))
        }
        Move::Threads if cur.threads > 1 => {
            Some((format!("threads {} -> {}", cur.threads, cur.threads / 2), Storm { threads: cur.threads / 2, ..cur.clone() }))
        }
        Move::Seconds if cur.seconds > 1 => {
            Some((format!("seconds {} -> {}", cur.seconds, cur.seconds / 2), Storm { seconds: cur.seconds / 2, ..cur.clone() }))
        }
        _ => None,
    }
}

enum Move {
    Drop(StormOp),
    Threads,
    Seconds,
}

/// Reduces `start` (which failed with `signature`) on any [`Trial`]; see
/// the module's documentation for the moves and the budget. `on_step` is
/// called with the reduction so far after each step (to save it).
pub fn reduce_impl(
    cell: &str,
    start: &Storm,
    signature: &str,
    budget: Budget,
    t: &mut dyn Trial,
    on_step: &mut dyn FnMut(&Reduction) -> Result<()>,
) -> Result<Reduction> {
    let began = Instant::now();
    let mut r = Reduction {
        cell: cell.to_string(),
        signature: signature.to_string(),
        budget,
        start: start.clone(),
        smallest: start.clone(),
        scenario_line: start.scenario_line(),
        steps: vec![],
        boots: 0,
        seconds: 0.0,
        stopped: None,
        harness_failed: false,
    };
    let mode = Mode::Signature { signature: signature.to_string(), k: budget.boots.max(1) };
    let moves: Vec<Move> = start.ops.iter().map(|o| Move::Drop(*o)).collect();
    let halvings = [Move::Threads, Move::Seconds];
    let mut i = 0;
    // Drops are tried once each; a halving again while it is kept.
    while let Some(m) = moves.get(i).or_else(|| halvings.get(i - moves.len())) {
        let Some((change, storm)) = candidate(&r.smallest, m) else {
            i += 1;
            continue;
        };
        let step_began = Instant::now();
        let mut judge = StepJudge::new(mode.clone());
        let mut attempt = 0;
        let n = r.steps.len() + 1;
        let (verdict, reason) = loop {
            if r.boots >= budget.max_boots {
                r.stopped = Some(format!("--max-boots {} used", budget.max_boots));
            } else if began.elapsed() >= Duration::from_secs(budget.wall_seconds) {
                r.stopped =
                    Some(format!("the wall budget of {} used", humantime::format_duration(Duration::from_secs(budget.wall_seconds))));
            }
            if r.stopped.is_some() {
                break (None, String::new());
            }
            attempt += 1;
            r.boots += 1;
            match judge.push(t.boot(n, attempt, &storm)?) {
                Decision::More => continue,
                Decision::Done(v, why) => break (Some(v), why),
                Decision::Abort(why) => {
                    r.stopped = Some(format!("the harness failed: {why}"));
                    r.harness_failed = true;
                    break (None, String::new());
                }
            }
        };
        let kept = verdict == Some(StepVerdict::Bad);
        let reason = match verdict {
            Some(StepVerdict::Bad) => format!("reproduced: {reason}"),
            Some(StepVerdict::Good) => format!("not reproduced in {} boot(s) (a race may need more)", judge.runs),
            Some(StepVerdict::Skip) => format!("left out: {reason}"),
            None => format!("not finished: {}", r.stopped.as_deref().unwrap_or("")),
        };
        if attempt > 0 {
            r.steps.push(Step {
                n,
                change,
                storm: storm.clone(),
                kept,
                boots: attempt,
                titles: judge.titles.clone(),
                reason,
                seconds: step_began.elapsed().as_secs_f64(),
            });
        }
        if kept {
            r.smallest = storm;
            r.scenario_line = r.smallest.scenario_line();
        }
        // A halving that was kept is tried again on the half.
        if !kept || matches!(m, Move::Drop(_)) {
            i += 1;
        }
        r.seconds = began.elapsed().as_secs_f64();
        if attempt > 0 {
            on_step(&r)?;
        }
        if r.stopped.is_some() {
            break;
        }
    }
    r.seconds = began.elapsed().as_secs_f64();
    Ok(r)
}

/// reduce.md: the result first, then every step.
pub fn markdown(r: &Reduction) -> String {
    let mut s = format!("# kregress reduce: {}\n\nSignature: `{}`\n\n", r.cell, r.signature);
    s += &format!("Start:    `{}`\n\nSmallest: `{}`\n\n", r.start.scenario_line(), r.scenario_line);
    s += &format!(
        "{} boot(s), {:.0} s; budget: {} boot(s) per candidate, {} in all, {}.\n\n",
        r.boots,
        r.seconds,
        r.budget.boots,
        r.budget.max_boots,
        humantime::format_duration(Duration::from_secs(r.budget.wall_seconds))
    );
    if let Some(why) = &r.stopped {
        s += &format!("Stopped before trying every move: {why}.\n\n");
    }
    s += "A candidate that did not reproduce within its boots is left out; a race may need more boots (`--boots`).\n\n";
    s += "| step | change | boots | kept | why |\n|---|---|---|---|---|\n";
    for st in &r.steps {
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            st.n,
            st.change,
            st.boots,
            if st.kept { "yes" } else { "no" },
            st.reason.replace('|', "\\|")
        );
    }
    s
}

// ---- the real trial: the cell's kernel booted in QEMU ----------------------

/// Boots the reduced cell with a candidate's storm: the cell's kernel
/// (rebuilt from the cache by its scenario) and initramfs, one boot per attempt.
pub struct KernelTrial {
    pub cell: Cell,
    pub kernel: crate::kernel::KernelArtifact,
    pub initrd: PathBuf,
    pub accel: Accel,
    pub panic_on_warn: bool,
    /// The reduction's directory: step NN's boots go into `NN/`.
    pub dir: PathBuf,
}

impl Trial for KernelTrial {
    fn boot(&mut self, step: usize, attempt: u32, storm: &Storm) -> Result<RunObs> {
        let mut cell = self.cell.clone();
        cell.run = attempt;
        cell.workload.seed = Some(storm.seed);
        cell.workload.threads = Some(storm.threads);
        cell.workload.seconds = Some(storm.seconds);
        cell.workload.ops = Some(storm.ops.clone());
        cell.workload.reruns = Some(0);
        let dir = self.dir.join(format!("{step:02}"));
        let (res, _) = crate::run::run_boot(&[cell], &self.kernel, &self.initrd, self.accel, &dir, self.panic_on_warn)?;
        let r = res.into_iter().next().ok_or_else(|| infra("run_boot gave no result"))?;
        eprintln!("reduce: step {step} boot {attempt}: {}{}", r.outcome, r.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default());
        Ok(RunObs::from_cell(&r, ""))
    }
}

/// The options of `kregress reduce`.
pub struct ReduceOpts {
    pub cell_dir: PathBuf,
    pub budget: Budget,
    pub accel: Accel,
    pub jobs: usize,
}

/// What `reduce` starts from: a failing storm cell's record, checked.
/// Bad input (exit 2, one line) when `dir` is not a failing storm cell.
pub fn failing_storm(dir: &Path) -> Result<(CellResult, StormRecord, String)> {
    let c = results::load_cell(dir)?;
    let shown = dir.join("result.json").display().to_string();
    let Some(st) = c.storm.clone() else {
        return Err(bad_input(format!("{shown}: not a storm cell (workload {})", c.workload)));
    };
    let title = c.title.clone().filter(|t| !t.is_empty());
    match (c.outcome, title) {
        (crate::outcome::Outcome::Fail, Some(t)) => Ok((c, st, t)),
        (crate::outcome::Outcome::Fail, None) => Err(bad_input(format!("{shown}: a FAIL without a title: no signature to reduce"))),
        (o, _) => Err(bad_input(format!("{shown}: the cell is {o}, not a failing cell"))),
    }
}

/// `kregress reduce`: checks the cell (bad input before anything is built),
/// finds its scenario through run.json (`<run>/<variant>/<axes>/runN`),
/// builds its kernel (cached) and the initramfs and runs [`reduce_impl`]
/// into `CELL_DIR/reduce/` (`reduce.1/`... when that exists), saving
/// reduce.json after every step and reduce.md at the end.
pub fn run(o: &ReduceOpts) -> Result<(Reduction, PathBuf)> {
    let (c, st, signature) = failing_storm(&o.cell_dir)?;
    if o.budget.boots == 0 || o.budget.max_boots == 0 {
        return Err(bad_input("--boots and --max-boots: at least 1"));
    }
    let run_dir = o.cell_dir.ancestors().nth(3).filter(|d| d.join("run.json").is_file()).ok_or_else(|| {
        bad_input(format!("{}: not a cell of a run (no run.json three directories up: RUN/VARIANT/AXES/runN)", o.cell_dir.display()))
    })?;
    let rec = results::load(run_dir)?;
    let s = scenario::load(&rec.scenario_file)?;
    let v = s.select(std::slice::from_ref(&c.variant))?[0].clone();
    let fs = if c.mode == "devdax" { String::new() } else { format!(",fs={}", c.fs) };
    let only = format!("variant={},backend={},mode={}{fs},mapping={},workload=storm", c.variant, c.backend, c.mode, c.mapping);
    let cells = s.cells(&scenario::Filter::parse(&only)?, Some(1));
    let Some(cell) = cells.into_iter().find(|x| x.workload.name == WorkloadName::Storm) else {
        return Err(bad_input(format!("{}: has no cell {only} any more", s.file.display())));
    };
    let kernel = crate::kernel::build(&crate::kernel::KernelSpec::new(&v), o.jobs)?;
    // The kernel the cell failed on, not whatever the scenario builds today.
    if let Some(k) = rec.kernels.get(&c.variant).filter(|k| k.key != kernel.key) {
        return Err(bad_input(format!(
            "{}: variant {} now builds kernel {}, but the cell ran on {}: reduce would not test the kernel that failed",
            s.file.display(),
            c.variant,
            kernel.key,
            k.key
        )));
    }
    let image = crate::image::build(&crate::image::ImageOptions::default())?;
    let accel = vm::resolve_accel(o.accel, &kernel.bzimage)?;
    let (_, dir) = results::new_dir(&o.cell_dir, "reduce")?;
    let id = c.key().id();
    eprintln!("reduce: {id}: {signature}; start {}; results in {}", Storm::of(&st).scenario_line(), dir.display());
    let mut trial = KernelTrial { cell, kernel, initrd: image.path, accel, panic_on_warn: s.run.panic_on_warn, dir: dir.clone() };
    let save = |r: &Reduction| crate::cache::write_atomic(&dir.join("reduce.json"), &serde_json::to_vec_pretty(r).unwrap());
    let r = reduce_impl(&id, &Storm::of(&st), &signature, o.budget, &mut trial, &mut |r| save(r))?;
    save(&r)?;
    crate::cache::write_atomic(&dir.join("reduce.md"), markdown(&r).as_bytes())?;
    Ok((r, dir))
}

/// The exit code's findings: the harness failing stops a reduction with 3.
pub fn findings(r: &Reduction) -> Findings {
    Findings { kernel_failed: false, harness_failed: r.harness_failed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StormOp::*;

    const HANG: &str = "INFO: task hung in ext4_break_layouts";

    /// Fails with HANG when `fails` says so of the storm; records every boot.
    struct Scripted<F: FnMut(&Storm, u32) -> RunObs> {
        fails: F,
        boots: Vec<(usize, u32, Storm)>,
    }

    impl<F: FnMut(&Storm, u32) -> RunObs> Trial for Scripted<F> {
        fn boot(&mut self, step: usize, attempt: u32, storm: &Storm) -> Result<RunObs> {
            self.boots.push((step, attempt, storm.clone()));
            Ok((self.fails)(storm, attempt))
        }
    }

    fn hang() -> RunObs {
        RunObs::Fail { title: HANG.into(), problems: vec![] }
    }
    fn pass() -> RunObs {
        RunObs::Pass { metric: None }
    }
    fn start() -> Storm {
        Storm { seed: 7, threads: 4, seconds: 60, ops: vec![DioReadFast, DioWriteSlow, Truncate, Punch, Fork, Msync] }
    }
    fn budget() -> Budget {
        Budget { boots: 3, max_boots: 40, wall_seconds: 3600 }
    }

    #[test]
    fn reduces_to_the_ops_threads_and_seconds_that_still_fail() {
        // The bug needs O_DIRECT into the mapping and truncate or punch, two
        // threads and 10 s.
        let needs = |s: &Storm, _: u32| {
            let fails =
                s.ops.contains(&DioReadFast) && (s.ops.contains(&Truncate) || s.ops.contains(&Punch)) && s.threads >= 2 && s.seconds >= 10;
            if fails {
                hang()
            } else {
                pass()
            }
        };
        let mut t = Scripted { fails: needs, boots: vec![] };
        let mut saved = 0;
        let r = reduce_impl("stock/memmap-ext4-pte-storm/run1", &start(), HANG, budget(), &mut t, &mut |r| {
            saved += 1;
            assert_eq!(r.steps.len(), saved, "saved after every step");
            Ok(())
        })
        .unwrap();
        assert_eq!(r.smallest, Storm { seed: 7, threads: 2, seconds: 15, ops: vec![DioReadFast, Punch] });
        assert_eq!(r.scenario_line, "- { name: storm, seconds: 15, threads: 2, seed: 7, ops: [dio-read-fast, punch] }");
        let changes: Vec<(&str, bool, u32)> = r.steps.iter().map(|s| (s.change.as_str(), s.kept, s.boots)).collect();
        assert_eq!(
            changes,
            [
                ("drop dio-read-fast", false, 3),
                ("drop dio-write-slow", true, 1),
                ("drop truncate", true, 1),
                ("drop punch", false, 3),
                ("drop fork", true, 1),
                ("drop msync", true, 1),
                ("threads 4 -> 2", true, 1),
                ("threads 2 -> 1", false, 3),
                ("seconds 60 -> 30", true, 1),
                ("seconds 30 -> 15", true, 1),
                ("seconds 15 -> 7", false, 3),
            ]
        );
        assert_eq!((r.boots, t.boots.len() as u32, r.stopped.as_deref()), (19, 19, None));
        assert!(r.steps[0].reason.contains("not reproduced in 3 boot(s) (a race may need more)"), "{}", r.steps[0].reason);
        // The seed never changes; every candidate is tried by its own step number.
        assert!(t.boots.iter().all(|(_, _, s)| s.seed == 7));
        assert_eq!(t.boots.iter().map(|b| (b.0, b.1)).filter(|b| b.0 == 1).collect::<Vec<_>>(), [(1, 1), (1, 2), (1, 3)]);
        let md = markdown(&r);
        assert!(md.contains("Smallest: `- { name: storm, seconds: 15, threads: 2, seed: 7, ops: [dio-read-fast, punch] }`"), "{md}");
        assert!(md.contains("| 4 | drop punch | 3 | no | not reproduced in 3 boot(s)"), "{md}");
    }

    #[test]
    fn a_candidate_stops_at_its_first_reproduction_and_another_failure_leaves_it_out() {
        // Without fork the hang comes back on the second boot; without msync
        // the kernel WARNs instead.
        let mut t = Scripted {
            fails: |s: &Storm, attempt| match (s.ops.len(), s.ops.contains(&Fork), s.ops.contains(&Msync)) {
                (_, false, true) if attempt < 2 => pass(),
                (_, true, false) => RunObs::Fail { title: "WARNING in free_zone_device_page".into(), problems: vec![] },
                _ => hang(),
            },
            boots: vec![],
        };
        let st = Storm { seed: 1, threads: 1, seconds: 1, ops: vec![Fork, Msync] };
        let r = reduce_impl("c", &st, HANG, budget(), &mut t, &mut |_| Ok(())).unwrap();
        assert_eq!((r.steps[0].kept, r.steps[0].boots), (true, 2), "{:?}", r.steps[0]);
        // One op left: nothing more to drop, threads and seconds at 1.
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.smallest.ops, [Msync]);

        let st = Storm { seed: 1, threads: 1, seconds: 1, ops: vec![Msync, Fork] };
        let r = reduce_impl("c", &st, HANG, budget(), &mut t, &mut |_| Ok(())).unwrap();
        assert_eq!((r.steps[0].kept, r.steps[0].boots), (false, 1));
        assert_eq!(r.steps[0].reason, "left out: a different failure: WARNING in free_zone_device_page");
        assert_eq!(r.steps[0].titles, ["WARNING in free_zone_device_page"]);
    }

    #[test]
    fn the_budgets_stop_it_with_the_steps_done() {
        // Nothing smaller reproduces: 3 boots per candidate, 7 allowed.
        let mut t = Scripted { fails: |_: &Storm, _| pass(), boots: vec![] };
        let mut saved = vec![];
        let r = reduce_impl("c", &start(), HANG, Budget { max_boots: 7, ..budget() }, &mut t, &mut |r| {
            saved.push(r.steps.len());
            Ok(())
        })
        .unwrap();
        assert_eq!((r.boots, t.boots.len()), (7, 7));
        assert_eq!(r.stopped.as_deref(), Some("--max-boots 7 used"));
        assert_eq!(r.smallest, start());
        assert_eq!(r.steps.iter().map(|s| s.boots).collect::<Vec<_>>(), [3, 3, 1]);
        assert!(r.steps[2].reason.starts_with("not finished: --max-boots 7 used"), "{}", r.steps[2].reason);
        assert_eq!(saved, [1, 2, 3]);
        assert!(markdown(&r).contains("Stopped before trying every move: --max-boots 7 used."));

        // A wall budget already spent: no boot at all.
        let mut t = Scripted { fails: |_: &Storm, _| hang(), boots: vec![] };
        let r = reduce_impl("c", &start(), HANG, Budget { wall_seconds: 0, ..budget() }, &mut t, &mut |_| Ok(())).unwrap();
        assert_eq!((r.boots, r.steps.len()), (0, 0));
        assert_eq!(r.stopped.as_deref(), Some("the wall budget of 0s used"));
    }

    #[test]
    fn a_harness_that_keeps_failing_stops_it_with_exit_3() {
        let mut t = Scripted { fails: |_: &Storm, _| RunObs::Miss { reason: "DAX not active".into() }, boots: vec![] };
        let r = reduce_impl("c", &start(), HANG, budget(), &mut t, &mut |_| Ok(())).unwrap();
        assert!(r.harness_failed);
        assert_eq!(r.boots, 3);
        assert!(r.stopped.as_deref().unwrap().contains("harness failed 3 times in a row: DAX not active"), "{:?}", r.stopped);
        assert_eq!(crate::error::exit_code(&Ok(findings(&r))), 3);
    }

    #[test]
    fn only_a_failing_storm_cell_is_reduced() {
        let d = tempfile::tempdir().unwrap();
        let base = r#"{"variant":"stock","backend":"memmap","fs":"ext4","mapping":"pte","workload":"storm","run":1,"outcome":"FAIL","kind":"HANG",
            "title":"INFO: task hung in ext4_break_layouts","console":"c","seconds":1.0,
            "storm":{"seed":7,"threads":3,"seconds":60,"ops":["truncate","dio-read-fast"],"streams":"s"}}"#;
        let write = |s: &str| std::fs::write(d.path().join("result.json"), s).unwrap();
        write(base);
        let (_, st, sig) = failing_storm(d.path()).unwrap();
        assert_eq!((Storm::of(&st).ops, sig.as_str()), (vec![Truncate, DioReadFast], HANG));
        for (from, to, want) in [
            ("\"FAIL\"", "\"PASS\"", "result.json: the cell is PASS, not a failing cell"),
            (",\n            \"storm\":{\"seed\":7,\"threads\":3,\"seconds\":60,\"ops\":[\"truncate\",\"dio-read-fast\"],\"streams\":\"s\"}", "", "result.json: not a storm cell (workload storm)"),
            ("\"INFO: task hung in ext4_break_layouts\"", "null", "result.json: a FAIL without a title"),
            ("\"truncate\"", "\"truncat\"", "result.json:3:"),
        ] {
            write(&base.replace(from, to));
            let e = failing_storm(d.path()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{to}: {e}");
            assert!(e.msg.contains(want) && !e.msg.contains('\n'), "{to}: {e}");
        }
    }
}
