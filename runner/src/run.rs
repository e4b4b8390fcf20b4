//! The run loop: expand a scenario into cells, build what is missing, boot
//! one guest per cell, and turn what it printed (agent messages and kernel
//! reports) into a cell result. Judging is a pure function of plain data
//! ([`judge`]) so that it is tested without a VM.

use crate::error::{bad_input, infra, Context, Result};
use crate::kernel::{self, KernelArtifact, KernelSpec};
use crate::outcome::{FailKind, Outcome};
use crate::results::{self, CellResult, PassSample, RunRecord, ShardRecord, StormRecord};
use crate::scenario::{Cell, Filter, Scenario, Timing};
use crate::triage;
use crate::vm::{self, Accel, Control, VmSpec};
use kregress_agent::{GuestConfig, LineParser, Message, Parsed};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOpts {
    pub only: Filter,
    pub runs: Option<u32>,
    pub resume: Option<String>,
    pub accel: Accel,
    pub results_root: PathBuf,
    pub jobs: usize,
    /// `kregress storm`: run k of a storm cell runs seed `START + k - 1`
    /// (none: every run of it runs the workload's seed).
    pub seed_per_run: Option<u64>,
    /// `--shard I/N`: boot only this shard's part of the selection.
    pub shard: Option<ShardOpts>,
    /// `--import DIR`: kernels `build --export` wrote, installed into the
    /// cache before the build when their key is this host's.
    pub import: Option<PathBuf>,
}

/// The kregress version a run records (run.json's `host.kregress`, a shard's `kregress`): merge refuses shards of two.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `kregress run --shard I/N [--group ID] [--timings RUN]`.
#[derive(Debug, Clone)]
pub struct ShardOpts {
    /// This shard, from 1 to `count`.
    pub index: u32,
    /// How many shards.
    pub count: u32,
    /// The run group (none: derived, see [`shard_record`]).
    pub group: Option<String>,
    /// A run (its directory or run.json) whose cells' seconds balance the shards (none: by count).
    pub timings: Option<PathBuf>,
}

impl ShardOpts {
    /// `I/N` with 1 <= I <= N; bad input naming `--shard` otherwise.
    pub fn parse(spec: &str) -> Result<(u32, u32)> {
        let bad = |why: &str| bad_input(format!("--shard {:?}: {why}", spec.chars().take(40).collect::<String>()));
        let (i, n) = spec.split_once('/').ok_or_else(|| bad("give I/N, e.g. 1/4 (the first of four)"))?;
        let num = |s: &str| s.parse::<u32>().ok().filter(|_| s.bytes().all(|b| b.is_ascii_digit()));
        let (Some(i), Some(n)) = (num(i), num(n)) else { return Err(bad("give I/N, e.g. 1/4 (the first of four)")) };
        if n == 0 || i == 0 || i > n {
            return Err(bad("I counts from 1 to N (1/2 and 2/2 are the two halves)"));
        }
        Ok((i, n))
    }
}

/// `shard 1/2 of group G`, or `not a shard`.
pub(crate) fn shard_name(s: Option<&ShardRecord>) -> String {
    match s {
        Some(s) => format!("shard {}/{} of group {}", s.index, s.count, s.group),
        None => "not a shard".into(),
    }
}

/// Greedy LPT: boots in decreasing expected milliseconds (ties in their
/// order) each onto the least loaded shard (ties: the lowest); the shard
/// (from 1) of each boot. Integers only, so every machine computes the
/// same partition from the same weights. Shards beyond the boots' count stay empty.
pub(crate) fn partition(weights: &[u64], count: u32) -> Vec<u32> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(weights[g]));
    let mut load = vec![0u64; (count as usize).min(weights.len())];
    let mut plan = vec![0u32; weights.len()];
    for g in order {
        let (s, _) = load.iter().enumerate().min_by_key(|&(s, l)| (*l, s)).unwrap();
        load[s] += weights[g];
        plan[g] = s as u32 + 1;
    }
    plan
}

/// Each boot's expected milliseconds from `timings` (a previous run): the
/// sum of its cells' seconds there, a cell matched by its key, else by its
/// key in any run (their mean). A boot none of whose cells is known weighs
/// the mean of the known boots; with none known (or no timings) every boot
/// weighs the same: balance by count.
pub(crate) fn expected_ms(groups: &[Vec<Cell>], timings: Option<&RunRecord>) -> Vec<u64> {
    let known = |c: &Cell| -> Option<f64> {
        let t = timings?;
        let k = c.key();
        if let Some(r) = t.cells.iter().find(|r| r.key() == k) {
            return Some(r.seconds);
        }
        let same: Vec<f64> =
            t.cells.iter().filter(|r| crate::scenario::CellKey { run: k.run, ..r.key() } == k).map(|r| r.seconds).collect();
        (!same.is_empty()).then(|| same.iter().sum::<f64>() / same.len() as f64)
    };
    let ms: Vec<Option<u64>> = groups
        .iter()
        .map(|g| {
            let secs: Vec<f64> = g.iter().filter_map(known).collect();
            (!secs.is_empty()).then(|| (secs.iter().sum::<f64>() * 1000.0).round() as u64)
        })
        .collect();
    let k: Vec<u64> = ms.iter().flatten().copied().collect();
    let fill = if k.is_empty() { 1 } else { (k.iter().sum::<u64>() / k.len() as u64).max(1) };
    ms.into_iter().map(|m| m.unwrap_or(fill)).collect()
}

/// This shard's record (run.json's `shard`) for the selection `cells` of
/// `s`: the partition of its boots, and the group, `--group` or derived
/// from what decides the selection and its partition (the scenario file's
/// bytes, kregress's version, `--only`, `--runs`, the cells' seeds (`--seed`)
/// and N), so that the N jobs of one pipeline agree without talking.
pub(crate) fn shard_record(s: &Scenario, cells: &[Cell], opts: &RunOpts, o: &ShardOpts) -> Result<ShardRecord> {
    let timings = match &o.timings {
        Some(p) => {
            let dir = if p.file_name().is_some_and(|n| n == "run.json") { p.parent().unwrap_or(Path::new(".")) } else { p };
            Some(results::load(dir).map_err(|e| bad_input(format!("--timings {}: {}", p.display(), e.msg)))?)
        }
        None => None,
    };
    let groups = boot_groups(&cells.iter().collect::<Vec<_>>());
    let weights = expected_ms(&groups, timings.as_ref());
    let plan = partition(&weights, o.count);
    let balance = match &timings {
        Some(t) => format!("seconds of run {}", t.run_id),
        None => "count".to_string(),
    };
    let scenario_sha256 = crate::cache::sha256_file(&s.file)?;
    let kregress = VERSION.to_string();
    let group = match &o.group {
        Some(g) => {
            crate::scenario::check_name("--group", g).map_err(bad_input)?;
            g.clone()
        }
        None => {
            let mut key = crate::cache::Key::new("kregress-shard-group-v1");
            key.part("scenario", scenario_sha256.as_bytes()).part("kregress", kregress.as_bytes());
            key.part("only", serde_json::to_string(&opts.only).unwrap().as_bytes());
            let seeds: Vec<u64> = cells.iter().map(|c| c.workload.spec().seed).collect();
            key.part("runs", format!("{:?}", opts.runs).as_bytes()).part("seeds", format!("{seeds:?}").as_bytes());
            key.part("count", o.count.to_string().as_bytes());
            format!("g{}", &key.hex()[..16])
        }
    };
    Ok(ShardRecord { index: o.index, count: o.count, group, scenario_sha256, kregress, runs: opts.runs, balance, plan })
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

/// What the guest said and the console showed, for [`judge`].
#[derive(Debug, Default)]
pub struct Seen {
    pub messages: Vec<Message>,
    pub reports: triage::Reports,
    /// Console lines that looked like protocol lines without being this boot's (ignored).
    pub foreign_lines: u64,
    pub booted: bool,
    pub exit: Option<vm::Exit>,
    pub boot_deadline_s: u64,
}

/// The agent's configuration for one cell.
pub fn guest_config(c: &Cell) -> GuestConfig {
    GuestConfig {
        backend: c.backend,
        mode: c.mode,
        fs: c.fs,
        mapping: c.mapping,
        workloads: vec![c.workload.spec()],
        ..GuestConfig::default()
    }
}

/// Guest milliseconds an icount boot waits before its first workload (see
/// `GuestConfig::settle_ms`): 3 s, plus a phase that differs between run
/// indexes (0..1 s). Under icount a boot replays exactly: without the phase,
/// the runs of one kernel would be copies of one boot, not samples, and a
/// kernel whose background work happens to meet a timed pass would meet it
/// in every run. The phase comes from the run index, so a rerun reproduces it.
pub fn settle_ms(run: u32) -> u32 {
    3000 + run.wrapping_mul(389) % 1000
}

fn fail_kind(k: triage::Kind) -> FailKind {
    use triage::Kind::*;
    match k {
        Crash | MemorySafety | Reboot => FailKind::Crash,
        Hang => FailKind::Hang,
        Warn | Lockdep | AtomicSleep | DataRace | Ubsan | Leak | Other => FailKind::Warn,
    }
}

fn severity(k: FailKind) -> u8 {
    match k {
        FailKind::Crash => 5,
        FailKind::Hang => 4,
        FailKind::DataCorruption => 3,
        FailKind::Warn => 2,
        FailKind::IoError => 1,
    }
}

/// The title of an agent-side hang: the stuck thread's stack read the same
/// way the kernel's hung-task reports are, so both name the bug alike.
fn hang_title(threads: &[kregress_agent::ThreadStack], what: &str, op: &str) -> String {
    // The stuck task: one waiting for pinned DAX pages in a *_break_layouts
    // (it waits interruptibly, in S, holding the inode lock: tasks in D behind
    // it on that lock are its victims, as a storm shows), else one in D state,
    // else the thread doing the stuck operation, else any real kernel wait
    // (not a sleep, a futex, a wait for children or an idle io_uring worker).
    let stuck = threads
        .iter()
        .find(|t| t.state == "S" && t.stack.iter().any(|f| f.contains("_break_layouts+")))
        .or_else(|| threads.iter().find(|t| t.state == "D"))
        .or_else(|| threads.iter().find(|t| !t.comm.is_empty() && op.contains(t.comm.as_str())))
        .or_else(|| {
            threads.iter().find(|t| {
                t.wchan != "0" && !["futex", "do_wait", "hrtimer_nanosleep", "io_wqe_worker"].iter().any(|w| t.wchan.starts_with(w))
            })
        })
        .or(threads.first());
    if let Some(t) = stuck {
        let mut text = format!("INFO: task {}:{} blocked for more than 10 seconds.\nCall Trace:\n", t.comm, t.pid);
        for f in &t.stack {
            text += &format!(" {f}\n");
        }
        if let Some(r) = triage::parse(&text).into_iter().next() {
            return r.title;
        }
    }
    format!("INFO: task hung in {what}")
}

/// Outcome, kind, title and every problem of a cell, from what was seen.
pub fn judge(seen: &Seen) -> (Outcome, Option<FailKind>, Option<String>, Vec<String>) {
    // (kind, title) of every failure, kernel reports first, each title once
    // (a WARN storm repeats one report thousands of times: its count is listed).
    let mut problems: Vec<(FailKind, String)> = Vec::new();
    let mut listed: Vec<String> = Vec::new();
    for r in &seen.reports.kept {
        let k = fail_kind(r.kind);
        if !problems.iter().any(|p| *p == (k, r.title.clone())) {
            problems.push((k, r.title.clone()));
            listed.push(match seen.reports.count(&r.title) {
                n if n > 1 => format!("{k:?}: {} ({n} reports)", r.title),
                _ => format!("{k:?}: {}", r.title),
            });
        }
    }
    if seen.reports.others > 0 {
        listed.push(format!("and {} more kernel reports with other titles", seen.reports.others));
    }
    let reported = problems.len();
    let mut miss: Option<String> = None;
    for m in &seen.messages {
        match m {
            Message::DaxCheck { dax: false, path } => miss = miss.or(Some(format!("DAX not active on {path}"))),
            Message::Error { phase, detail } => miss = miss.or(Some(format!("agent {phase}: {detail}"))),
            Message::Hang { what, threads, op, .. } => problems.push((FailKind::Hang, hang_title(threads, what, op))),
            Message::WorkloadResult { name, kind: Some(k), errno, detail, .. } => {
                let k = match k {
                    kregress_agent::FailKind::Hang => FailKind::Hang,
                    kregress_agent::FailKind::DataCorruption => FailKind::DataCorruption,
                    kregress_agent::FailKind::IoError => FailKind::IoError,
                };
                let title = match (k, errno) {
                    (FailKind::IoError, Some(e)) => format!("IO_ERROR in {name}: {}", kregress_agent::errno_name(*e)),
                    (FailKind::Hang, _) => continue, // the Hang message names it
                    _ => format!("{k:?} in {name}: {detail}").replace("DataCorruption", "DATA_CORRUPTION").replace("IoError", "IO_ERROR"),
                };
                problems.push((k, title));
            }
            Message::Teardown { kind: Some(kregress_agent::FailKind::Hang), detail, .. }
                if !problems.iter().any(|(k, _)| *k == FailKind::Hang) =>
            {
                problems.push((FailKind::Hang, format!("INFO: teardown hung: {detail}")));
            }
            _ => {}
        }
    }
    let finished = seen.messages.iter().any(|m| matches!(m, Message::WorkloadResult { .. }));
    // The agent skipped the workload: the kernel, its config or the mode lacks what it needs.
    let skipped = seen.messages.iter().find_map(|m| match m {
        Message::WorkloadResult { outcome: kregress_agent::Outcome::Skip, detail, .. } => Some(detail.clone()),
        _ => None,
    });
    listed.extend(problems[reported..].iter().map(|(k, t)| format!("{k:?}: {t}")));

    if !seen.booted {
        let title = match (problems.first(), seen.exit) {
            (Some((_, t)), _) => format!("boot failed: {t}"),
            (None, Some(vm::Exit::BootTimeout)) => format!("boot failed: no agent hello within {} s", seen.boot_deadline_s),
            _ => "boot failed: QEMU exited before the agent started".to_string(),
        };
        return (Outcome::Error, None, Some(title), listed);
    }
    if let Some(worst) = problems.iter().map(|(k, _)| severity(*k)).max() {
        let (k, t) = problems.iter().find(|(k, _)| severity(*k) == worst).unwrap();
        return (Outcome::Fail, Some(*k), Some(t.clone()), listed);
    }
    if let Some(m) = miss {
        return (Outcome::Miss, None, Some(m), listed);
    }
    match seen.exit {
        Some(vm::Exit::RunTimeout) => (Outcome::Fail, Some(FailKind::Hang), Some("HANG: the guest stopped answering".into()), listed),
        // Not a hang: the agent, which judges hangs in guest time, still spoke.
        Some(vm::Exit::Overtime) => (
            Outcome::Miss,
            None,
            Some("the guest still ran at twice the host's deadline: too slow a host for this workload's deadline".into()),
            listed,
        ),
        _ if !finished => (Outcome::Miss, None, Some("the agent gave no result for the workload (protocol broken?)".into()), listed),
        _ if skipped.is_some() => (Outcome::Skip, None, skipped, listed),
        _ => (Outcome::Pass, None, None, listed),
    }
}

/// Pass samples and metrics of the cell (see [`results::metrics_from_samples`]):
/// per-path MB/s from the passes after the warm-up, or the race's ops/s.
fn throughput(seen: &Seen, timing: Timing) -> (Vec<PassSample>, BTreeMap<String, f64>) {
    let samples: Vec<PassSample> = seen
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Sample { pass, gup, mb_per_s: Some(x), .. } => {
                Some(PassSample { pass: *pass, gup: *gup, mb_per_s: *x, warmup: *pass == 0 })
            }
            _ => None,
        })
        .collect();
    let mut metrics = results::metrics_from_samples(&samples, timing);
    for m in &seen.messages {
        if let Message::WorkloadResult { ops_per_s: Some(x), .. } = m {
            if x.is_finite() {
                metrics.insert("ops_per_s".into(), *x);
            }
        }
    }
    (samples, metrics)
}

/// Cells that share a boot: same variant, backend, mode, filesystem, mapping, run
/// and timing mode.
pub fn boot_groups(cells: &[&Cell]) -> Vec<Vec<Cell>> {
    let mut groups: Vec<Vec<Cell>> = Vec::new();
    for c in cells {
        match groups.iter_mut().find(|g| {
            let h = &g[0];
            (&h.variant, h.backend, h.mode, h.fs, h.mapping, h.run, h.timing)
                == (&c.variant, c.backend, c.mode, c.fs, c.mapping, c.run, c.timing)
        }) {
            Some(g) => g.push((*c).clone()),
            None => groups.push(vec![(*c).clone()]),
        }
    }
    groups
}

/// What one boot saw, split per workload: messages before the first
/// workload (hello, setup, DAX check) count for every cell; kernel reports
/// belong to the workload running when they started; teardown to the last.
#[derive(Default)]
struct Split {
    common: Vec<Message>,
    per: Vec<Seen>,
    current: Option<usize>,
    /// The workload whose result ended the boot early (a failure taints the guest).
    stop_after: Option<usize>,
    /// Per cell: when its workload started and when its result came (host time).
    began: Vec<Option<Instant>>,
    ended: Vec<Option<Instant>>,
}

impl Split {
    fn cell(&mut self) -> usize {
        self.current.unwrap_or(0)
    }
}

/// What one boot of `cells` boots: the agent's configuration (with a fresh
/// nonce), QEMU's spec and the record of it all, deadlines included. The one
/// place a boot is planned: [`run_boot`] boots it here, `crate::lava` writes
/// it as a LAVA job.
pub(crate) struct BootPlan {
    pub(crate) cfg: GuestConfig,
    pub(crate) spec: VmSpec,
    pub(crate) boot: results::BootRecord,
}

/// The host's deadlines for a boot of `cfg`, in seconds: (boot, run). The
/// agent's deadlines are guest seconds. Under icount an idle guest jumps
/// ahead (sleep=off) but a busy one runs ~75 M instructions (guest ns) per
/// host second here: the backstop allows 4 host seconds per guest second of
/// the deadlines, which are generous (a dio workload uses ~2 of 120). TCG
/// and a busy host slow everything: the backstop is scaled for them.
pub(crate) fn boot_deadlines(cfg: &GuestConfig, icount: bool, accel: Accel) -> (u64, u64) {
    let virt = if icount { 4 } else { 1 };
    let work: u64 = (cfg.workloads.iter().map(|w| w.deadline as u64).sum::<u64>() + cfg.teardown as u64 + 4) * virt;
    let scale = if accel == Accel::Tcg { 3 } else { 1 };
    (60 * scale, work + 60 * scale)
}

/// Plans one boot of `cells` (same variant/backend/fs/mapping/run) in
/// `dir` (NVDIMM backing files go in `dir/pmem`), see [`BootPlan`].
pub(crate) fn plan_boot(
    cells: &[Cell],
    k: &KernelArtifact,
    initrd: &Path,
    accel: Accel,
    dir: &Path,
    panic_on_warn: bool,
) -> Result<BootPlan> {
    let mut cfg = guest_config(&cells[0]);
    for c in &cells[1..] {
        cfg.workloads.extend(guest_config(c).workloads);
    }
    let icount = cells[0].timing == Timing::Icount;
    let (boot_deadline_s, run_deadline_s) = boot_deadlines(&cfg, icount, accel);
    cfg.premade = true;
    cfg.virtual_time = icount;
    cfg.settle_ms = if icount { settle_ms(cells[0].run) } else { 0 };
    // Only lines carrying this boot's nonce are the agent's (see kregress_agent::protocol).
    cfg.nonce = boot_nonce()?;
    let spec = VmSpec {
        bzimage: k.bzimage.clone(),
        initrd: initrd.to_path_buf(),
        backend: cells[0].backend,
        // icount with two vCPUs stalls QEMU 7.2 at SMP bring-up.
        smp: if icount { 1 } else { 2 },
        icount,
        append: cfg.to_cmdline(),
        panic_on_warn,
        workdir: dir.join("pmem"),
    };
    // What this boot boots, for `kregress replay` (hashed before QEMU starts).
    let boot = results::BootRecord {
        qemu_args: vm::args(&spec, accel),
        bzimage: results::FileRecord::of(&k.bzimage)?,
        initramfs: results::FileRecord::of(initrd)?,
        config: results::FileRecord::of(&k.config)?,
        boot_deadline_s,
        run_deadline_s,
        workloads: cells.iter().map(|c| c.workload.name.as_str().to_string()).collect(),
    };
    Ok(BootPlan { cfg, spec, boot })
}

/// Boots once for `cells` (same variant/backend/fs/mapping/run), running
/// their workloads in order. A failing workload stops the guest: its state
/// is tainted, so the cells after it are returned to be run in a new boot.
pub fn run_boot(
    cells: &[Cell],
    k: &KernelArtifact,
    initrd: &Path,
    accel: Accel,
    run_dir: &Path,
    panic_on_warn: bool,
) -> Result<(Vec<CellResult>, Vec<Cell>)> {
    let dir = results::cell_dir(run_dir, &cells[0]);
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let BootPlan { cfg, spec, boot } = plan_boot(cells, k, initrd, accel, &dir, panic_on_warn)?;
    let nvdimm = (spec.backend == vm::Backend::Nvdimm).then_some(spec.workdir.as_path());
    let mut seen = observe(&boot, &boot.qemu_args, nvdimm, &cfg.nonce, &dir)?;
    judge_boot(cells, run_dir, &dir, &mut seen)
}

/// Judges the cells of a boot that `seen` observed in `dir` (the first
/// cell's directory), each in its own directory under `run_dir` with the
/// boot's files linked in; returns their results and the cells the boot
/// did not run (after a failure), for a new boot.
pub(crate) fn judge_boot(cells: &[Cell], run_dir: &Path, dir: &Path, seen: &mut Observed) -> Result<(Vec<CellResult>, Vec<Cell>)> {
    let mut out = Vec::new();
    for (i, c) in cells.iter().enumerate().take(seen.last + 1) {
        let cdir = results::cell_dir(run_dir, c);
        std::fs::create_dir_all(&cdir).context(|| format!("creating {}", cdir.display()))?;
        if cdir != dir {
            for f in BOOT_FILES {
                let _ = std::fs::remove_file(cdir.join(f));
                std::fs::hard_link(dir.join(f), cdir.join(f)).context(|| format!("linking {f} into {}", cdir.display()))?;
            }
        }
        let res = seen.judged(i, CellResult::new(c, Outcome::Pass, cdir.join("console.log")));
        results::save_cell(&cdir, &res)?;
        out.push(res);
    }
    Ok((out, cells[seen.last + 1..].to_vec()))
}

/// The files [`observe`] leaves in a boot's directory, shared (hard-linked)
/// by every cell the boot ran.
pub const BOOT_FILES: [&str; 4] = ["console.log", "agent.jsonl", "qemu.cmdline", "boot.json"];

/// What one boot showed, per workload, ready to be judged.
pub struct Observed {
    split: Split,
    vm: vm::VmRun,
    boot_deadline_s: u64,
    /// The boot's wall time.
    seconds: f64,
    /// The last workload judged: the one whose failure stopped the guest, the
    /// one running when it died, or the last. Those after it did not run.
    pub last: usize,
}

/// Boots QEMU with `args` (a run's, or a replay's: `boot`'s made to boot
/// here), keeping `boot` (as boot.json), console.log, agent.jsonl and
/// qemu.cmdline in `dir`, and reads the console: the agent's lines carrying
/// `nonce` and the kernel's reports, split per workload of `boot`. With
/// `nvdimm`, the NVDIMM backing files are made there and removed after.
pub fn observe(boot: &results::BootRecord, args: &[String], nvdimm: Option<&Path>, nonce: &str, dir: &Path) -> Result<Observed> {
    let mut w = Watcher::new(boot, nonce, dir, Instant::now())?;
    let deadlines = vm::Deadlines::new(Duration::from_secs(boot.boot_deadline_s), Duration::from_secs(boot.run_deadline_s));
    let r = vm::boot(args, nvdimm, deadlines, &dir.join("console.log"), |line| w.line(line, Instant::now()))?;
    if let Some(d) = nvdimm {
        let _ = std::fs::remove_dir_all(d);
    }
    w.finish(r)
}

/// Reads one boot's console line by line (from QEMU, or from a LAVA job's
/// log, `crate::lava`): the agent's lines carrying the boot's nonce go to
/// agent.jsonl, and they and the kernel's reports are split per workload.
pub(crate) struct Watcher {
    parser: LineParser,
    scanner: triage::Scanner,
    split: Split,
    agent: std::fs::File,
    agent_err: Option<std::io::Error>,
    dir: PathBuf,
    boot_deadline_s: u64,
    started: Instant,
}

impl Watcher {
    /// Keeps `boot` as boot.json in `dir` and starts agent.jsonl there; the
    /// boot's wall time counts from `started`.
    pub(crate) fn new(boot: &results::BootRecord, nonce: &str, dir: &Path, started: Instant) -> Result<Watcher> {
        results::save_boot(dir, boot)?;
        let n = boot.workloads.len();
        let agent = std::fs::File::create(dir.join("agent.jsonl")).context(|| format!("creating {}/agent.jsonl", dir.display()))?;
        Ok(Watcher {
            parser: LineParser::new(nonce),
            scanner: triage::Scanner::new(),
            split: Split { per: (0..n).map(|_| Seen::default()).collect(), began: vec![None; n], ended: vec![None; n], ..Split::default() },
            agent,
            agent_err: None,
            dir: dir.to_path_buf(),
            boot_deadline_s: boot.boot_deadline_s,
            started,
        })
    }

    /// One console line, seen at `now`: what the guest's state is after it
    /// (`Control::Stop`: a workload failed and more were to run, or
    /// agent.jsonl cannot be written; read no further).
    pub(crate) fn line(&mut self, line: &str, now: Instant) -> Control {
        let n = self.split.per.len();
        let split = &mut self.split;
        for rep in self.scanner.push_line(line) {
            let i = split.cell();
            split.per[i].reports.push(rep);
        }
        let m = match self.parser.push(line) {
            Parsed::Message(m) => m,
            Parsed::Foreign => {
                let i = split.cell();
                split.per[i].foreign_lines += 1;
                // Counted in the result; the first few are kept in agent.jsonl.
                if self.parser.foreign() <= 10 {
                    let line: String = line.chars().take(300).collect();
                    if let Err(e) = writeln!(self.agent, "{}", serde_json::json!({ "ignored_foreign_line": line })) {
                        self.agent_err.get_or_insert(e);
                        return Control::Stop;
                    }
                }
                return Control::Continue;
            }
            Parsed::Other => return Control::Continue,
        };
        if let Err(e) = writeln!(self.agent, "{}", serde_json::to_string(&m).unwrap_or_default()) {
            // The agent's record is the cell's evidence: a boot that cannot keep it stops.
            self.agent_err.get_or_insert(e);
            return Control::Stop;
        }
        let mut ctl = Control::Alive;
        match &m {
            Message::Hello { .. } => ctl = Control::Booted,
            Message::WorkloadStart { .. } => {
                let i = split.current.map_or(0, |i| (i + 1).min(n - 1));
                split.current = Some(i);
                split.began[i] = Some(now);
            }
            Message::Done { .. } => ctl = Control::Finished,
            _ => {}
        }
        match (&m, split.current) {
            (Message::Hello { .. } | Message::Step { .. } | Message::DaxCheck { .. } | Message::Error { .. }, None) => split.common.push(m),
            (Message::WorkloadResult { .. }, Some(i)) => {
                split.ended[i] = Some(now);
                // A SKIP leaves the guest as clean as a PASS.
                let failed =
                    !matches!(&m, Message::WorkloadResult { outcome: kregress_agent::Outcome::Pass | kregress_agent::Outcome::Skip, .. })
                        || !split.per[i].reports.is_empty();
                split.per[i].messages.push(m);
                if failed && i + 1 < n {
                    split.stop_after = Some(i);
                    ctl = Control::Stop;
                }
            }
            _ => {
                let i = split.cell();
                split.per[i].messages.push(m);
            }
        }
        ctl
    }

    /// The console ended as `r` says (qemu.cmdline is written from it): what
    /// the boot showed, ready to be judged.
    pub(crate) fn finish(self, r: vm::VmRun) -> Result<Observed> {
        let dir = &self.dir;
        if let Some(e) = self.agent_err {
            return Err(infra(format!("writing {}: {e}", dir.join("agent.jsonl").display())));
        }
        let mut split = self.split;
        for rep in self.scanner.finish() {
            let i = split.cell();
            split.per[i].reports.push(rep);
        }
        crate::cache::write_atomic(&dir.join("qemu.cmdline"), format!("{}\n", r.cmdline).as_bytes())?;
        let n = split.per.len();
        // Cells that got a result (or the one that was running) are judged; the rest go back.
        let done = split.per.iter().any(|p| p.messages.iter().any(|m| matches!(m, Message::Done { .. })));
        let last = match split.stop_after {
            Some(i) => i,
            // A guest that never booted fails every cell alike.
            None if done || r.hello_seconds.is_none() => n - 1,
            // Died or timed out: the running workload is judged, the rest rerun.
            None => split.cell(),
        };
        Ok(Observed { split, vm: r, boot_deadline_s: self.boot_deadline_s, seconds: self.started.elapsed().as_secs_f64(), last })
    }
}

impl Observed {
    /// `base` (the cell of workload `i`, `i <= last`) judged from what the
    /// boot showed for it (see [`judge`]).
    pub fn judged(&mut self, i: usize, base: CellResult) -> CellResult {
        let mut seen = std::mem::take(&mut self.split.per[i]);
        let mut msgs = self.split.common.clone();
        msgs.append(&mut seen.messages);
        seen.messages = msgs;
        seen.booted = self.vm.hello_seconds.is_some();
        seen.exit = Some(self.vm.exit);
        seen.boot_deadline_s = self.boot_deadline_s;
        let (outcome, kind, title, problems) = judge(&seen);
        let (samples, metrics) =
            if outcome == Outcome::Pass || kind == Some(FailKind::Warn) { throughput(&seen, base.timing) } else { Default::default() };
        CellResult {
            outcome,
            kind,
            title,
            samples,
            metrics,
            problems,
            seconds: self.seconds / (self.last + 1) as f64,
            workload_seconds: match (self.split.began[i], self.split.ended[i]) {
                (Some(b), Some(e)) => Some(((e - b).as_secs_f64() * 100.0).round() / 100.0),
                _ => None,
            },
            boot_seconds: self.vm.hello_seconds,
            foreign_lines: seen.foreign_lines,
            storm: base.storm.clone().map(|st| StormRecord { executed: storm_executed(&seen), ..st }),
            ..base
        }
    }
}

/// A storm's ops executed per kind: the `op.<kind>` counters of its result.
fn storm_executed(seen: &Seen) -> BTreeMap<String, u64> {
    seen.messages
        .iter()
        .filter_map(|m| match m {
            Message::WorkloadResult { counters, .. } => Some(counters),
            _ => None,
        })
        .flat_map(|c| c.iter().filter_map(|(k, v)| Some((k.strip_prefix("op.")?.to_string(), *v))))
        .collect()
}

/// A fresh nonce for one boot: 64 bits from getrandom(2), in hex.
pub fn boot_nonce() -> Result<String> {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(infra(format!("getrandom: {}", std::io::Error::last_os_error())));
    }
    Ok(hex::encode(b))
}

pub(crate) fn host_info(accel: Accel) -> results::HostInfo {
    let cmd = |p: &str, a: &str| {
        let mut c = std::process::Command::new(p);
        c.arg(a);
        crate::proc::output(c, crate::proc::deadline::QUICK).ok().and_then(|o| o.lines().next().map(str::to_string)).unwrap_or_default()
    };
    results::HostInfo {
        accel: Some(accel),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        gcc: cmd("gcc", "--version"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        kregress: VERSION.to_string(),
        qemu: cmd("qemu-system-x86_64", "--version"),
    }
}

/// The progress line of a finished cell: `[3/8] fixed/memmap-ext4-pte-dio-read/run1: FAIL HANG (title)`,
/// outcomes spelled as everywhere else.
pub(crate) fn progress_line(n: usize, total: usize, res: &CellResult) -> String {
    format!(
        "[{n}/{total}] {}: {}{}{}",
        res.key().id(),
        res.outcome,
        res.kind.map(|k| format!(" {k}")).unwrap_or_default(),
        res.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default()
    )
}

/// The kernel of every variant `cells` use, built or from the cache, each
/// recorded in `records`: a variant that does not build gets its
/// message instead (its cells are ERROR, see [`build_error`]).
pub(crate) type Kernels = BTreeMap<String, std::result::Result<KernelArtifact, String>>;

/// `--import`: installs the export's kernel of `spec` into the cache when
/// the export holds it, and says in one line what it did.
fn import(spec: &KernelSpec, dir: &Path) -> Result<()> {
    use kernel::export::Imported;
    let started = Instant::now();
    let (what, key) = kernel::export::import(spec, dir)?;
    let (v, key) = (&spec.variant, &key[..12]);
    match what {
        Imported::Installed { from } => eprintln!(
            "{v}: imported kernel {key} from {} in {:.1} s (key computed; sizes, sha256 and bzImage checked)",
            from.display(),
            started.elapsed().as_secs_f64()
        ),
        Imported::Cached => eprintln!("{v}: kernel {key} is in the cache already: {} not read", dir.display()),
        Imported::Absent(why) => {
            eprintln!("{v}: kernel {key} is not in {}/{}: {why}: building it", dir.display(), kernel::export::INDEX)
        }
    }
    Ok(())
}

/// Builds the kernels of `cells` (see [`Kernels`]).
pub(crate) fn build_kernels(
    s: &Scenario,
    cells: &[&Cell],
    import_from: Option<&Path>,
    records: &mut BTreeMap<String, results::KernelRecord>,
) -> Result<Kernels> {
    let mut kernels = Kernels::new();
    for c in cells {
        if kernels.contains_key(&c.variant) {
            continue;
        }
        let v = s.variants.iter().find(|v| v.name == c.variant).unwrap();
        if let Some(dir) = import_from {
            import(&KernelSpec::new(v), dir)?;
        }
        let k = match kernel::build(&KernelSpec::new(v), kernel::default_jobs()) {
            Ok(k) => Ok(k),
            Err(e) if e.class == crate::error::Class::Kernel => Err(e.msg),
            Err(e) => return Err(e),
        };
        if let Ok(k) = &k {
            let cfg_sha = crate::cache::sha256_file(&k.config).unwrap_or_default();
            let rk = results::KernelRecord {
                bzimage: k.bzimage.clone(),
                commit: k.commit.clone(),
                config_sha256: cfg_sha,
                key: k.key.clone(),
                source: k.source.clone(),
            };
            records.insert(c.variant.clone(), rk);
        }
        kernels.insert(c.variant.clone(), k);
    }
    Ok(kernels)
}

/// A new run of `s`, in a new directory under `root`, with no cell yet.
pub(crate) fn new_record(s: &Scenario, root: &Path) -> Result<RunRecord> {
    let (run_id, dir) = results::new_run_dir(root, &s.name)?;
    Ok(RunRecord {
        run_id,
        scenario: s.name.clone(),
        scenario_file: s.file.clone(),
        results_dir: dir,
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        host: results::HostInfo::default(),
        kernels: BTreeMap::new(),
        only: Default::default(),
        shard: None,
        merged: None,
        cells: vec![],
    })
}

/// Runs (or resumes) the selected cells of `s`; the record is saved after every cell.
pub fn run(s: &Scenario, opts: &RunOpts) -> Result<RunRecord> {
    let mut cells = s.cells(&opts.only, opts.runs);
    if let Some(start) = opts.seed_per_run {
        seed_per_run(&mut cells, start);
    }
    if cells.is_empty() {
        return Err(bad_input(format!("{}: the filter selects no cell", s.file.display())));
    }
    // A shard boots its part of the selection's boots (maybe none: an empty shard is a complete run of no cell).
    let shard = opts.shard.as_ref().map(|o| shard_record(s, &cells, opts, o)).transpose()?;
    if let Some(sh) = &shard {
        let mine: Vec<bool> = sh.plan.iter().map(|&p| p == sh.index).collect();
        let groups = boot_groups(&cells.iter().collect::<Vec<_>>());
        cells = groups.into_iter().zip(mine).filter(|(_, m)| *m).flat_map(|(g, _)| g).collect();
    }
    let mut rec = match &opts.resume {
        Some(id) => {
            let dir = results::find(&opts.results_root, id)?;
            let mut rec = results::load(&dir)?;
            rec.results_dir = dir;
            rec
        }
        None => new_record(s, &opts.results_root)?,
    };
    if opts.resume.is_some() && rec.shard != shard {
        return Err(bad_input(format!(
            "--resume {}: that run is {}, this one would be {}: resume it with the same --shard, --group, --timings, --only and --runs",
            rec.run_id,
            shard_name(rec.shard.as_ref()),
            shard_name(shard.as_ref())
        )));
    }
    rec.shard = shard;
    // The latest selection defines the run (a resume may widen it).
    rec.only = opts.only.clone();
    let todo: Vec<&Cell> = cells.iter().filter(|c| !rec.cells.iter().any(|d| d.key() == c.key())).collect();

    let kernels = build_kernels(s, &todo, opts.import.as_deref(), &mut rec.kernels)?;
    let image = crate::image::build(&crate::image::ImageOptions::default())?;
    let any_kernel = kernels.values().find_map(|k| k.as_ref().ok());
    let accel = match any_kernel {
        Some(k) => vm::resolve_accel(opts.accel, &k.bzimage)?,
        None => Accel::Tcg,
    };
    rec.host = host_info(accel);
    results::save(&rec)?;

    let total = todo.len();
    let bar = crate::ui::Counter::new("cells", total as u64);
    let rec = std::sync::Mutex::new(rec);
    let results_dir = rec.lock().unwrap().results_dir.clone();
    let done = std::sync::atomic::AtomicUsize::new(0);
    work_queue(
        opts.jobs,
        boot_groups(&todo),
        |group| match &kernels[&group[0].variant] {
            Ok(k) => {
                let names: Vec<&str> = group.iter().map(|c| c.workload.name.as_str()).collect();
                bar.note(&format!("booting {} ({}) for {}", group[0].variant, group[0].key().axes(), names.join(", ")));
                let (res, rest) = run_boot(&group, k, &image.path, accel, &results_dir, s.run.panic_on_warn)?;
                Ok((res, Some(rest).filter(|r| !r.is_empty())))
            }
            Err(msg) => Ok((group.iter().map(|c| build_error(c, msg, &results_dir)).collect(), None)),
        },
        |res: CellResult| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            bar.done(&progress_line(n, total, &res), res.outcome != Outcome::Pass);
            let mut r = rec.lock().unwrap();
            r.cells.push(res);
            results::save(&r)
        },
    )?;
    bar.finish();
    let mut rec = rec.into_inner().unwrap();
    for c in &todo {
        if let Ok(k) = &kernels[&c.variant] {
            reproduce(c, &mut rec, |dir| Ok(run_boot(std::slice::from_ref(*c), k, &image.path, accel, dir, s.run.panic_on_warn)?.0))?;
        }
    }
    // Stable order (workers finish out of order): as the matrix lists them.
    rec.cells.sort_by_key(|c| cells.iter().position(|x| x.key() == c.key()).unwrap_or(usize::MAX));
    results::save(&rec)?;
    Ok(rec)
}

/// Run k of each storm cell runs seed `start + k - 1` ([`RunOpts::seed_per_run`]).
fn seed_per_run(cells: &mut [Cell], start: u64) {
    for c in cells.iter_mut().filter(|c| c.workload.name == crate::scenario::WorkloadName::Storm) {
        c.workload.seed = Some(start + u64::from(c.run) - 1);
    }
}

/// A storm cell that FAILed is run again with its seed, its
/// [`crate::scenario::Workload::storm_reruns`] times, each boot by `boot`
/// into `<cell>/rerunK/`; how often its title came back (as the rerun's
/// title or among its reports) goes into its result (`reproduced k/n`, a race
/// need not come back every time) and run.json. Any other cell is left alone.
fn reproduce(c: &Cell, rec: &mut RunRecord, boot: impl Fn(&Path) -> Result<Vec<CellResult>>) -> Result<()> {
    let n = c.workload.storm_reruns();
    let Some(i) = rec.cells.iter().position(|r| r.key() == c.key() && r.outcome == Outcome::Fail && r.storm.is_some()) else {
        return Ok(());
    };
    if n == 0 {
        return Ok(());
    }
    let cdir = results::cell_dir(&rec.results_dir, c);
    let mut rep = results::Reproduced { runs: 0, same: 0, reruns: vec![] };
    for k in 1..=n {
        eprintln!(
            "{}: FAIL ({}), rerun {k}/{n} with seed {}",
            c.key().id(),
            rec.cells[i].title.as_deref().unwrap_or(""),
            c.workload.spec().seed
        );
        let again = boot(&cdir.join(format!("rerun{k}")))?;
        let Some(r) = again.first() else { continue };
        rep.runs += 1;
        // The original's failure came back: as the title, or among the reports
        // (a race may add a more severe one, e.g. a hang after the same WARN).
        let title = rec.cells[i].title.as_deref().unwrap_or("");
        if r.outcome == Outcome::Fail && (r.title.as_deref() == Some(title) || r.problems.iter().any(|p| p.ends_with(title))) {
            rep.same += 1;
        }
        let kind = r.kind.map(|k| format!(" {}", k.as_str())).unwrap_or_default();
        rep.reruns.push(format!("{}{kind}{}", r.outcome, r.title.as_deref().map(|t| format!(": {t}")).unwrap_or_default()));
    }
    if let Some(st) = rec.cells[i].storm.as_mut() {
        st.reproduced = Some(rep);
    }
    results::save_cell(&cdir, &rec.cells[i])?;
    results::save(rec)
}

/// Up to `jobs` workers take boot groups from the front of a queue: `boot`
/// runs one and returns its results and the cells it left (a failure taints
/// a guest: they go back in front, for a new boot); `save` records each
/// result. A worker that fails (`boot` or `save`) stops the others from
/// taking more groups: they finish and save the guest they run. Every worker
/// is joined before the first error is returned, so no finished cell is lost.
fn work_queue<G: Send, R>(
    jobs: usize,
    groups: Vec<G>,
    boot: impl Fn(G) -> Result<(Vec<R>, Option<G>)> + Sync,
    save: impl Fn(R) -> Result<()> + Sync,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(groups));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let work = || -> Result<()> {
                        while !stop.load(SeqCst) {
                            let Some(group) = queue.lock().unwrap().pop_front() else { return Ok(()) };
                            let (results, rest) = boot(group)?;
                            if let Some(rest) = rest {
                                queue.lock().unwrap().push_front(rest);
                            }
                            for r in results {
                                save(r)?;
                            }
                        }
                        Ok(())
                    };
                    let r = work();
                    if r.is_err() {
                        stop.store(true, SeqCst);
                    }
                    r
                })
            })
            .collect();
        let mut first = Ok(());
        for w in workers {
            let r = w.join().map_err(|_| infra("a run worker panicked")).and_then(|r| r);
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

pub(crate) fn build_error(c: &Cell, msg: &str, run_dir: &Path) -> CellResult {
    CellResult {
        title: Some("kernel build failed".into()),
        problems: vec![msg.to_string()],
        ..CellResult::new(c, Outcome::Error, results::cell_dir(run_dir, c).join("console.log"))
    }
}

/// Whether a cell came out as the scenario expects (PASS unless an `expect` says otherwise).
pub fn as_expected(s: &Scenario, r: &CellResult) -> bool {
    let Some(e) = s.expect.iter().rev().find(|e| e.filter().matches(&r.key())) else {
        // No expectation: PASS, or SKIP (the kernel or mode lacks the feature, said with its reason).
        return matches!(r.outcome, Outcome::Pass | Outcome::Skip);
    };
    r.outcome == e.outcome
        && e.kind.is_none_or(|k| r.kind == Some(k))
        && e.title.as_ref().is_none_or(|t| r.title.as_deref().is_some_and(|rt| rt.contains(t.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs() {
        assert_eq!(ShardOpts::parse("1/2").unwrap(), (1, 2));
        assert_eq!(ShardOpts::parse("7/4000000000").unwrap(), (7, 4_000_000_000));
        for bad in ["0/2", "3/2", "x", "1/0", "0/0", "1", "/2", "1/", "+1/2", "1/-2", " 1/2", "1/2/3", "99999999999/1"] {
            let e = ShardOpts::parse(bad).unwrap_err();
            assert!(e.exit_code() == 2 && e.to_string().starts_with("--shard ") && !e.to_string().contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn lpt_puts_the_longest_boot_first_onto_the_least_loaded_shard() {
        // 10 8 7 6 5 4 on 2 shards: 10→1, 8→2, 7→2 (15), 6→1 (16), 5→2 (20), 4→1 (20).
        assert_eq!(partition(&[5, 10, 4, 8, 7, 6], 2), vec![2, 1, 1, 2, 2, 1]);
        // By count (equal weights): ties go in the boots' order to the lowest shard.
        assert_eq!(partition(&[1; 5], 2), vec![1, 2, 1, 2, 1]);
        assert_eq!(partition(&[1; 5], 3), vec![1, 2, 3, 1, 2]);
        // More shards than boots: the last shards are empty; a huge N costs nothing.
        assert_eq!(partition(&[3, 2], 5), vec![1, 2]);
        assert_eq!(partition(&[3, 2], u32::MAX), vec![1, 2]);
        assert_eq!(partition(&[], 2), Vec::<u32>::new());
        // Balanced: the largest load is at most the optimum plus the smallest boot.
        let w: Vec<u64> = (1..=40).map(|i| (i * 7919) % 101 + 1).collect();
        let plan = partition(&w, 4);
        let load = |s: u32| w.iter().zip(&plan).filter(|(_, p)| **p == s).map(|(w, _)| w).sum::<u64>();
        let (max, total) = ((1..=4).map(load).max().unwrap(), w.iter().sum::<u64>());
        assert!(max <= total / 4 + 1 + w.iter().min().unwrap(), "{max} of {total}");
    }

    /// The default scenario's cells, and a run record of them with `secs` seconds each (by position).
    fn default_cells() -> Vec<Cell> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bio-release-devmap-wakeup.yaml");
        crate::scenario::load(&file).unwrap().cells(&Filter::default(), Some(2))
    }

    #[test]
    fn expected_seconds_come_from_the_timings_run() {
        let cells = default_cells();
        let groups = boot_groups(&cells.iter().collect::<Vec<_>>());
        // No timings: by count.
        assert!(expected_ms(&groups, None).iter().all(|&w| w == 1));
        // Every cell 1.5 s: a boot weighs its cells' sum.
        let mut rec = RunRecord::fixture(
            "r",
            cells.iter().map(|c| CellResult { seconds: 1.5, ..CellResult::new(c, Outcome::Pass, PathBuf::new()) }).collect(),
        );
        let w = expected_ms(&groups, Some(&rec));
        assert_eq!(w, groups.iter().map(|g| 1500 * g.len() as u64).collect::<Vec<_>>());
        // Run 2 unknown: its cells weigh as run 1's (the mean of the same cell's runs).
        rec.cells.retain(|c| c.run == 1);
        assert_eq!(expected_ms(&groups, Some(&rec)), w);
        // A variant unknown: its boots weigh the mean of the known boots.
        rec.cells.retain(|c| c.variant == "stock");
        let w2 = expected_ms(&groups, Some(&rec));
        let known: Vec<u64> = groups.iter().zip(&w2).filter(|(g, _)| g[0].variant == "stock").map(|(_, w)| *w).collect();
        let mean = known.iter().sum::<u64>() / known.len() as u64;
        assert!(groups.iter().zip(&w2).filter(|(g, _)| g[0].variant == "fixed").all(|(_, w)| *w == mean), "{w2:?}");
    }

    #[test]
    fn a_boot_is_never_split_across_shards() {
        let cells = default_cells();
        let groups = boot_groups(&cells.iter().collect::<Vec<_>>());
        assert!(groups.iter().any(|g| g.len() > 1), "the default scenario has boots of several cells");
        for n in 1..=groups.len() as u32 + 1 {
            let plan = partition(&expected_ms(&groups, None), n);
            // Every cell in exactly one shard, whole boots.
            let mut seen = std::collections::BTreeSet::new();
            for (g, p) in groups.iter().zip(&plan) {
                assert!((1..=n).contains(p));
                for c in g {
                    assert!(seen.insert(c.key().id()), "{} twice", c.key().id());
                }
            }
            assert_eq!(seen.len(), cells.len());
            // Deterministic: the same input, the same partition.
            assert_eq!(partition(&expected_ms(&groups, None), n), plan);
        }
    }

    fn report(title: &str, kind: triage::Kind) -> triage::Report {
        triage::Report { title: title.into(), kind, corrupted: false, frame: None, start_line: 1, end_line: 2, text: String::new() }
    }

    fn done() -> Message {
        Message::Done { ok: true, elapsed_ms: 1 }
    }

    fn passed() -> Message {
        Message::WorkloadResult {
            name: "dio-read".into(),
            outcome: kregress_agent::Outcome::Pass,
            kind: None,
            errno: None,
            detail: String::new(),
            mb_per_s: Some(300.0),
            ops_per_s: None,
            counters: Default::default(),
        }
    }

    /// Outcomes in progress lines as everywhere else (not their Debug form, "Fail Hang").
    #[test]
    fn progress_lines_spell_outcomes_as_the_reports_do() {
        let stored = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/20261126-162904-bio-release-devmap-wakeup");
        let rec = results::load(&stored).unwrap();
        let hang = rec.cells.iter().find(|c| c.outcome == Outcome::Fail).unwrap();
        assert_eq!(
            progress_line(2, 6, hang),
            "[2/6] stock/memmap-ext4-pte-truncate-during-dio/run1: FAIL HANG (INFO: task hung in ext4_break_layouts)"
        );
        let pass = rec.cells.iter().find(|c| c.outcome == Outcome::Pass).unwrap();
        assert!(progress_line(1, 6, pass).ends_with(": PASS"), "{}", progress_line(1, 6, pass));
    }

    #[test]
    fn clean_run_passes() {
        let sample = |pass, gup, x| Message::Sample { workload: "dio-read".into(), pass, gup, mb_per_s: Some(x), ops_per_s: None };
        use kregress_agent::Gup::{Fast, Slow};
        let msgs = vec![
            sample(0, Fast, 500.0),
            sample(0, Slow, 300.0),
            sample(1, Fast, 874.0),
            sample(1, Slow, 428.0),
            sample(2, Fast, 874.4),
            sample(2, Slow, 432.4),
            sample(3, Fast, 874.2),
            sample(3, Slow, 432.4),
            passed(),
            done(),
        ];
        let s = Seen { messages: msgs, booted: true, exit: Some(vm::Exit::Exited), ..Seen::default() };
        assert_eq!(judge(&s).0, Outcome::Pass);
        let (samples, metrics) = throughput(&s, Timing::Wall);
        // The warm-up pass is kept as a sample but not in the metrics: median of passes 1..3 per path.
        assert_eq!(samples.len(), 8);
        assert!(samples[0].warmup && samples[1].warmup && !samples[2].warmup);
        assert_eq!(metrics.get("fast_mb_per_s"), Some(&874.2));
        assert_eq!(metrics.get("slow_mb_per_s"), Some(&432.4));
        assert_eq!(metrics.len(), 2, "no blended figure: {metrics:?}");
        // In icount timing, the fastest pass after the warm-up (a pass that
        // met other kernel work is only ever slower, never faster).
        let (_, metrics) = throughput(&s, Timing::Icount);
        assert_eq!(metrics.get("fast_mb_per_s"), Some(&874.4));
        assert_eq!(metrics.get("slow_mb_per_s"), Some(&432.4));
    }

    #[test]
    fn a_failing_storm_is_rerun_with_its_seed_and_its_rate_recorded() {
        use crate::scenario::{Backend, Fs, Mapping, Mode, Workload};
        let d = tempfile::tempdir().unwrap();
        let w: Workload = serde_yaml::from_str("{ name: storm, seed: 9, reruns: 3 }").unwrap();
        let cell = Cell {
            variant: "stock".into(),
            backend: Backend::Memmap,
            mode: Mode::Fsdax,
            fs: Fs::Ext4,
            mapping: Mapping::Pte,
            workload: w,
            run: 1,
            timing: Timing::Wall,
        };
        let hang = "INFO: task hung in ext4_break_layouts";
        let failed =
            CellResult { kind: Some(FailKind::Hang), title: Some(hang.into()), ..CellResult::new(&cell, Outcome::Fail, PathBuf::new()) };
        let mut rec = RunRecord { results_dir: d.path().into(), ..RunRecord::fixture("20261127-140000-s", vec![failed]) };
        std::fs::create_dir_all(results::cell_dir(d.path(), &cell)).unwrap();
        // Rerun 1 hangs again, rerun 2 passes (a race), rerun 3 hangs and
        // crashes (the hang among its reports, the more severe crash its title).
        let n = std::sync::atomic::AtomicU32::new(0);
        reproduce(&cell, &mut rec, |dir| {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            assert!(dir.ends_with(format!("stock/memmap-ext4-pte-storm/run1/rerun{k}")), "{}", dir.display());
            let r = CellResult::new(&cell, if k == 2 { Outcome::Pass } else { Outcome::Fail }, PathBuf::new());
            Ok(vec![match k {
                1 => CellResult { kind: Some(FailKind::Hang), title: Some(hang.into()), problems: vec![format!("Hang: {hang}")], ..r },
                2 => r,
                _ => CellResult {
                    kind: Some(FailKind::Crash),
                    title: Some("BUG: kernel NULL pointer dereference".into()),
                    problems: vec!["Crash: BUG: kernel NULL pointer dereference".into(), format!("Hang: {hang}")],
                    ..r
                },
            }])
        })
        .unwrap();
        let st = rec.cells[0].storm.as_ref().unwrap();
        assert_eq!(st.seed, 9);
        let rep = st.reproduced.as_ref().unwrap();
        assert_eq!((rep.line().as_str(), rep.reruns[1].as_str()), ("reproduced 2/3", "PASS"));
        assert_eq!(rep.reruns[2], "FAIL CRASH: BUG: kernel NULL pointer dereference");
        assert_eq!(rep.reruns[0], format!("FAIL HANG: {hang}"));
        // Kept in result.json and run.json alike.
        let saved = std::fs::read_to_string(results::cell_dir(d.path(), &cell).join("result.json")).unwrap();
        assert!(saved.contains("\"same\": 2"), "{saved}");
        assert_eq!(results::load(d.path()).unwrap().cells[0].storm, rec.cells[0].storm);
        assert!(crate::report::title_text(&rec.cells[0]).ends_with("ext4_break_layouts (seed 9, reproduced 2/3)"));
        // A passing storm, or another workload, is not rerun.
        rec.cells[0].outcome = Outcome::Pass;
        reproduce(&cell, &mut rec, |_| panic!("rerun of a pass")).unwrap();
    }

    #[test]
    fn a_storm_session_gives_run_k_seed_start_plus_k_minus_1() {
        use crate::scenario::{Backend, Fs, Mapping, Mode, Workload};
        let cell = |name: &str, run| Cell {
            variant: "stock".into(),
            backend: Backend::Memmap,
            mode: Mode::Fsdax,
            fs: Fs::Ext4,
            mapping: Mapping::Pte,
            workload: serde_yaml::from_str::<Workload>(&format!("{{ name: {name} }}")).unwrap(),
            run,
            timing: Timing::Wall,
        };
        let mut cells = vec![cell("storm", 1), cell("storm", 3), cell("dio-read", 2)];
        seed_per_run(&mut cells, 40);
        let seeds: Vec<u64> = cells.iter().map(|c| c.workload.spec().seed).collect();
        assert_eq!(seeds, [40, 42, 0]);
        assert_eq!(CellResult::new(&cells[1], Outcome::Pass, PathBuf::new()).storm.unwrap().seed, 42);
    }

    #[test]
    fn storm_ops_executed_come_from_its_result_counters() {
        let counters: BTreeMap<String, u64> =
            [("op.truncate", 5), ("op.punch", 2), ("errors", 0)].iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let m = Message::WorkloadResult {
            name: "storm".into(),
            outcome: kregress_agent::Outcome::Pass,
            kind: None,
            errno: None,
            detail: String::new(),
            mb_per_s: None,
            ops_per_s: None,
            counters,
        };
        let e = storm_executed(&Seen { messages: vec![m], ..Seen::default() });
        assert_eq!(e.into_iter().collect::<Vec<_>>(), [("punch".to_string(), 2), ("truncate".to_string(), 5)]);
    }

    #[test]
    fn a_failed_save_stops_the_other_workers_and_keeps_what_they_finished() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::sync::Mutex;
        let booted = AtomicUsize::new(0);
        let saved = Mutex::new(Vec::new());
        // Group 0 is slow to boot; group 1's result cannot be saved (a full
        // disk); every boot after that is one too many.
        let r = work_queue(
            2,
            (0..20).collect(),
            |g: u32| {
                booted.fetch_add(1, SeqCst);
                if g == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
                Ok((vec![g], None))
            },
            |g| {
                if g == 1 {
                    return Err(infra("writing run.json: No space left on device"));
                }
                saved.lock().unwrap().push(g);
                Ok(())
            },
        );
        assert!(r.unwrap_err().msg.contains("No space left"));
        // Group 0 was in flight on the other worker: finished and saved;
        // nothing else was booted.
        assert_eq!(booted.load(SeqCst), 2);
        assert_eq!(*saved.lock().unwrap(), vec![0]);
        // A group a boot leaves is taken next, before the rest of the queue.
        let order = Mutex::new(Vec::new());
        work_queue(
            1,
            vec![vec![1, 2], vec![3]],
            |g: Vec<u32>| {
                order.lock().unwrap().push(g[0]);
                Ok((vec![()], (g.len() > 1).then(|| g[1..].to_vec())))
            },
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn icount_boots_settle_with_a_phase_per_run_index() {
        let ms: Vec<u32> = (1..=5).map(settle_ms).collect();
        assert!(ms.iter().all(|m| (3000..4000).contains(m)), "{ms:?}");
        let mut distinct = ms.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ms.len(), "runs share a phase: {ms:?}");
        assert_eq!(settle_ms(2), settle_ms(2), "a rerun reproduces its phase");
    }

    #[test]
    fn a_skipped_workload_is_skip_with_its_reason_unless_the_kernel_complained() {
        let skipped = Message::WorkloadResult {
            name: "reflink-dio".into(),
            outcome: kregress_agent::Outcome::Skip,
            kind: None,
            errno: None,
            detail: "ext4: FICLONE refused with EOPNOTSUPP".into(),
            mb_per_s: None,
            ops_per_s: None,
            counters: Default::default(),
        };
        let mut s = Seen { messages: vec![skipped, done()], booted: true, exit: Some(vm::Exit::Exited), ..Seen::default() };
        let (o, k, t, _) = judge(&s);
        assert_eq!((o, k, t.as_deref()), (Outcome::Skip, None, Some("ext4: FICLONE refused with EOPNOTSUPP")));
        // A kernel report in the same boot still makes it FAIL.
        s.reports.push(report("WARNING in memory_failure_dev_pagemap", triage::Kind::Warn));
        assert_eq!(judge(&s).0, Outcome::Fail);
        // An io error title names the errno, from the one shared table.
        assert_eq!(kregress_agent::errno_name(libc::EOPNOTSUPP), "EOPNOTSUPP");
        assert_eq!(kregress_agent::errno_name(4095), "errno 4095");
    }

    #[test]
    fn first_warning_names_the_cell_and_the_io_error_is_kept() {
        let s = Seen {
            messages: vec![
                Message::WorkloadResult {
                    name: "dio-read".into(),
                    outcome: kregress_agent::Outcome::Fail,
                    kind: Some(kregress_agent::FailKind::IoError),
                    errno: Some(libc::ENOMEM),
                    detail: "pread".into(),
                    mb_per_s: None,
                    ops_per_s: None,
                    counters: Default::default(),
                },
                done(),
            ],
            reports: [
                report("WARNING in free_zone_device_page", triage::Kind::Warn),
                report("WARNING in try_grab_page", triage::Kind::Warn),
                report("WARNING in try_grab_page", triage::Kind::Warn),
            ]
            .into_iter()
            .collect(),
            booted: true,
            exit: Some(vm::Exit::Exited),
            ..Seen::default()
        };
        let (o, k, t, p) = judge(&s);
        assert_eq!((o, k), (Outcome::Fail, Some(FailKind::Warn)));
        assert_eq!(t.unwrap(), "WARNING in free_zone_device_page");
        assert!(p.iter().any(|p| p.contains("IO_ERROR in dio-read: ENOMEM")), "{p:?}");
        // A title seen more than once is listed once, with its count.
        assert_eq!(p[..2], ["Warn: WARNING in free_zone_device_page", "Warn: WARNING in try_grab_page (2 reports)"]);
    }

    #[test]
    fn agent_hang_is_titled_from_the_stuck_stack() {
        // As seen on stock 6.1.192: the truncate waits in S, init in a futex.
        let init = kregress_agent::ThreadStack {
            pid: 1,
            tid: 1,
            comm: "init".into(),
            state: "S".into(),
            wchan: "futex_wait_queue".into(),
            stack: vec!["futex_wait_queue+0x49/0x79".into(), "futex_wait+0xb5/0x155".into(), "cpumask_first_and+0xc/0xc".into()],
        };
        let t = kregress_agent::ThreadStack {
            pid: 1,
            tid: 44,
            comm: "truncate".into(),
            state: "S".into(),
            wchan: "ext4_break_layouts".into(),
            stack: vec![
                "__schedule+0x2a5/0x8a0".into(),
                "schedule+0x5a/0xd0".into(),
                "ext4_break_layouts+0x1a9/0x2c0".into(),
                "ext4_setattr+0x3d2/0x9e0".into(),
                "notify_change+0x3c5/0x5a0".into(),
                "do_truncate+0x7a/0xd0".into(),
            ],
        };
        let s = Seen {
            messages: vec![Message::Hang {
                phase: "workload".into(),
                what: "truncate-during-dio".into(),
                op: "ftruncate(0)".into(),
                waited_s: 10.0,
                threads: vec![init, t],
            }],
            booted: true,
            exit: Some(vm::Exit::RunTimeout),
            ..Seen::default()
        };
        let (o, k, t, _) = judge(&s);
        assert_eq!((o, k), (Outcome::Fail, Some(FailKind::Hang)));
        assert_eq!(t.unwrap(), "INFO: task hung in ext4_break_layouts");
    }

    /// A guest whose agent still spoke at twice the host's deadline is too
    /// slow, not hung: MISS. One that stopped answering is a HANG; one that
    /// reported its own hang keeps that hang's title either way.
    #[test]
    fn overtime_is_a_miss_and_silence_a_hang() {
        let start = Message::WorkloadStart { name: "dio-read".into(), spec: String::new() };
        let alive = Message::Alive { workload: "dio-read".into(), elapsed_ms: 2000 };
        let s = Seen { messages: vec![start.clone(), alive.clone()], booted: true, exit: Some(vm::Exit::Overtime), ..Seen::default() };
        let (o, k, t, _) = judge(&s);
        assert_eq!((o, k), (Outcome::Miss, None));
        assert!(t.unwrap().starts_with("the guest still ran at twice the host's deadline"));
        let s = Seen { messages: vec![start, alive], booted: true, exit: Some(vm::Exit::RunTimeout), ..Seen::default() };
        assert_eq!(judge(&s).2.as_deref(), Some("HANG: the guest stopped answering"));
    }

    #[test]
    fn a_storm_hang_is_titled_from_the_layout_wait_not_its_victims() {
        // As seen in a storm on stock 6.1.192: a punch waits in S in
        // ext4_break_layouts holding the inode lock, two more fallocates wait
        // for it in D, the storm's main thread sleeps.
        let task = |tid: i32, comm: &str, state: &str, wchan: &str, stack: &[&str]| kregress_agent::ThreadStack {
            pid: 1,
            tid,
            comm: comm.into(),
            state: state.into(),
            wchan: wchan.into(),
            stack: stack.iter().map(|f| f.to_string()).collect(),
        };
        let victim = |tid| {
            task(
                tid,
                "storm-0",
                "D",
                "ext4_fallocate",
                &["ext4_fallocate+0x6b/0xc12", "vfs_fallocate+0x173/0x1ce", "ksys_fallocate+0x42/0x61"],
            )
        };
        let threads = vec![
            task(2, "storm", "S", "hrtimer_nanosleep", &["hrtimer_nanosleep+0x64/0xa8", "common_nsleep_timens+0x3a/0x3b"]),
            victim(3),
            task(
                4,
                "storm-1",
                "S",
                "ext4_break_layouts",
                &["ext4_break_layouts+0x46/0xcd", "ext4_punch_hole+0x138/0x395", "ext4_fallocate+0xa3/0xc12"],
            ),
            victim(5),
        ];
        assert_eq!(hang_title(&threads, "storm", "fallocate(PUNCH_HOLE)"), "INFO: task hung in ext4_break_layouts");
        // Without the layout wait, the D task; a sleeping thread only when nothing else is there.
        assert_eq!(hang_title(&threads[..2], "storm", "fallocate(PUNCH_HOLE)"), "INFO: task hung in ext4_fallocate");
        assert_eq!(hang_title(&threads[..1], "storm", "fallocate(PUNCH_HOLE)"), "INFO: task hung in hrtimer_nanosleep");
        // An idle io_uring worker is no kernel wait either (seen when the stuck call ran in R state).
        let idle = task(6, "iou-wrk-41", "S", "io_wqe_worker", &["io_wqe_worker+0x21a/0x372", "ret_from_fork+0x1f/0x30"]);
        let running = task(7, "storm-0", "R", "0", &[]);
        assert_ne!(hang_title(&[threads[0].clone(), idle, running], "storm", "quiescent check"), "INFO: task hung in io_wqe_worker");
    }

    #[test]
    fn no_hello_is_an_error_not_a_failure() {
        let s = Seen { exit: Some(vm::Exit::BootTimeout), boot_deadline_s: 60, ..Seen::default() };
        let (o, _, t, _) = judge(&s);
        assert_eq!(o, Outcome::Error);
        assert_eq!(t.unwrap(), "boot failed: no agent hello within 60 s");
    }

    #[test]
    fn dax_not_active_is_a_miss() {
        let s = Seen {
            messages: vec![Message::DaxCheck { path: "/mnt/f".into(), dax: false }, done()],
            booted: true,
            exit: Some(vm::Exit::Exited),
            ..Seen::default()
        };
        let (o, _, t, _) = judge(&s);
        assert_eq!(o, Outcome::Miss);
        assert!(t.unwrap().contains("DAX not active"));
    }

    #[test]
    fn missing_workload_result_is_a_harness_miss() {
        let s = Seen { messages: vec![done()], booted: true, exit: Some(vm::Exit::Exited), ..Seen::default() };
        assert_eq!(judge(&s).0, Outcome::Miss);
    }
}
