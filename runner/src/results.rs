//! The results store: `results/<run-id>/` with run.json, one directory per
//! cell (console.log, result.json, qemu.cmdline, agent.jsonl, boot.json) and summary.md.
//! Every file is written atomically, and run.json is rewritten after each
//! cell, so an interrupted run loses no finished cell and can be resumed.

use crate::cache::write_atomic;
use crate::error::{bad_input, Context, Result};
use crate::outcome::{FailKind, Outcome};
use crate::scenario::{Cell, CellKey, Filter, Timing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The names of a cell and of a run become paths (`<variant>/<backend>-...`)
/// and shell words (repro.sh), and a stored run.json may come from another
/// machine: each is checked by `crate::scenario::check_name` as it is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The scenario variant (patch set) the cell booted, e.g. `stock` or `fixed`.
    #[serde(deserialize_with = "checked::variant")]
    pub variant: String,
    /// How the pmem was emulated: `memmap` or `nvdimm`.
    #[serde(deserialize_with = "checked::backend")]
    pub backend: String,
    /// fsdax or devdax (runs stored before the mode axis were all fsdax).
    #[serde(default = "fsdax", deserialize_with = "checked::mode")]
    pub mode: String,
    /// The filesystem, or `devdax` for devdax cells (see `Cell::fs_axis`).
    #[serde(deserialize_with = "checked::fs")]
    pub fs: String,
    /// The page size the workload mapped the DAX file with: `pte` (4 KiB) or `pmd` (2 MiB).
    #[serde(deserialize_with = "checked::mapping")]
    pub mapping: String,
    /// The workload the agent ran, e.g. `dio-read` or `truncate-during-dio`.
    #[serde(deserialize_with = "checked::workload")]
    pub workload: String,
    /// Which repetition of the cell this is, from 1 to the scenario's `runs`.
    pub run: u32,
    /// What `run::judge` made of the boot: PASS, FAIL, ERROR, MISS or SKIP.
    pub outcome: Outcome,
    /// For a FAIL, what kind (CRASH, WARN, HANG, DATA_CORRUPTION, IO_ERROR); none otherwise.
    pub kind: Option<FailKind>,
    /// The one-line title of the most severe problem (a kernel report's, in syzkaller's style); none when the boot showed no problem.
    pub title: Option<String>,
    /// How guest time ran in the boot (icount figures are per virtual second).
    /// Runs stored before timing modes existed were all wall-clock.
    #[serde(default = "wall")]
    pub timing: Timing,
    /// The figures verdicts are made of, one value per boot: for the dio
    /// workloads `fast_mb_per_s` and `slow_mb_per_s` (GUP-fast and slow GUP,
    /// each the median of the boot's passes after the warm-up pass), for the
    /// race `ops_per_s`. See `metric_unit`.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Every measured pass as the agent reported it, warm-up included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<PassSample>,
    /// Every problem seen, most severe first (the title is the first's).
    #[serde(default)]
    pub problems: Vec<String>,
    /// The cell's console.log, `<results_dir>/<cell id>/console.log`.
    pub console: PathBuf,
    /// The boot's wall time shared out over the cells it ran.
    #[serde(deserialize_with = "checked::seconds")]
    pub seconds: f64,
    /// Host seconds from the workload's start to its result (none when it never finished).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "checked::workload_seconds")]
    pub workload_seconds: Option<f64>,
    /// Host seconds from QEMU's start to the agent's hello line (none when the agent never said hello).
    #[serde(default, deserialize_with = "checked::boot_seconds")]
    pub boot_seconds: Option<f64>,
    /// Console lines that looked like agent messages but did not start with
    /// the marker and this boot's nonce: ignored (see `kregress_agent::protocol`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub foreign_lines: u64,
    /// A storm cell: what it ran and what it did (none for other workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormRecord>,
}

/// What a storm cell ran, enough to run it again (`kregress run --only
/// workload=storm --seed SEED`) and to regenerate each thread's op stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormRecord {
    /// The seed every thread's stream derives from (`run --seed` sets it).
    pub seed: u64,
    /// Threads drawing ops at once.
    pub threads: u32,
    /// How long the storm ran, in guest seconds.
    pub seconds: u32,
    /// The op mix the threads drew from.
    pub ops: Vec<kregress_agent::StormOp>,
    /// Ops executed per kind, as the agent counted them (its result's `op.*`
    /// counters; empty when no result came, e.g. the guest died).
    #[serde(default)]
    pub executed: BTreeMap<String, u64>,
    /// How each thread's op stream is made from the seed.
    pub streams: String,
    /// After a FAIL: the same seed run again (none when it passed or was not rerun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduced: Option<Reproduced>,
}

#[cfg(test)]
impl RunRecord {
    /// A run of scenario `s` with these cells and nothing else recorded, for the tests of what reads it.
    pub(crate) fn fixture(run_id: &str, cells: Vec<CellResult>) -> RunRecord {
        RunRecord {
            run_id: run_id.into(),
            scenario: "s".into(),
            scenario_file: PathBuf::new(),
            results_dir: PathBuf::new(),
            started: String::new(),
            host: HostInfo::default(),
            kernels: BTreeMap::new(),
            only: Filter::default(),
            shard: None,
            merged: None,
            cells,
        }
    }
}

#[cfg(test)]
impl StormRecord {
    /// A storm of 3 threads over every op, for the tests of what reads it.
    pub(crate) fn fixture(seed: u64, seconds: u32) -> StormRecord {
        StormRecord { seed, threads: 3, seconds, ops: vec![], executed: BTreeMap::new(), streams: String::new(), reproduced: None }
    }
}

/// A failing storm run again with its seed: how often the failure came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reproduced {
    /// Reruns made.
    pub runs: u32,
    /// Reruns that failed with the same title (the original not counted).
    pub same: u32,
    /// Each rerun's outcome and title, in order (`PASS`, `FAIL HANG: INFO: task hung in ...`).
    pub reruns: Vec<String>,
}

impl Reproduced {
    /// `reproduced 2/3`: the original's failure came back in 2 of 3 reruns.
    pub fn line(&self) -> String {
        format!("reproduced {}/{}", self.same, self.runs)
    }
}

impl StormRecord {
    /// The storm `spec` stands for, nothing executed yet.
    pub fn of(spec: &kregress_agent::WorkloadSpec) -> StormRecord {
        StormRecord {
            seed: spec.seed,
            threads: spec.threads,
            seconds: spec.seconds,
            ops: spec.storm_ops(),
            executed: BTreeMap::new(),
            streams: STORM_STREAMS.into(),
            reproduced: None,
        }
    }
}

/// How a storm thread's op stream is made (the agent's `workloads/storm.rs`).
pub const STORM_STREAMS: &str =
    "thread i draws from the agent's xorshift64 (sys::Rng) seeded with kregress_agent::config::storm_stream_seed(seed, i): \
six draws per op (kind from `ops`, offset, length, mapping, pattern tag, boundary class); draws never depend on outcomes";

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CellResult {
    /// The result of `c` with `outcome` and nothing else known yet.
    pub(crate) fn new(c: &Cell, outcome: Outcome, console: PathBuf) -> CellResult {
        CellResult {
            variant: c.variant.clone(),
            backend: c.backend.as_str().into(),
            mode: c.mode.as_str().into(),
            fs: c.fs_axis().into(),
            mapping: c.mapping.as_str().into(),
            workload: c.workload.name.as_str().into(),
            run: c.run,
            outcome,
            kind: None,
            title: None,
            timing: c.timing,
            metrics: BTreeMap::new(),
            samples: vec![],
            problems: vec![],
            console,
            seconds: 0.0,
            workload_seconds: None,
            boot_seconds: None,
            foreign_lines: 0,
            storm: (c.workload.name == crate::scenario::WorkloadName::Storm).then(|| StormRecord::of(&c.workload.spec())),
        }
    }

    /// The cell's names as one key (`CellKey::id` is its directory under the run).
    pub fn key(&self) -> CellKey<'_> {
        CellKey {
            variant: &self.variant,
            backend: &self.backend,
            mode: &self.mode,
            fs: &self.fs,
            mapping: &self.mapping,
            workload: &self.workload,
            run: self.run,
        }
    }
}

fn fsdax() -> String {
    "fsdax".into()
}
fn wall() -> Timing {
    Timing::Wall
}

/// One pass of a throughput workload inside one boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassSample {
    /// The pass's number within the boot, from 0 (the warm-up pass).
    pub pass: u32,
    /// Which pinning path the pass measured: GUP-fast or slow GUP.
    pub gup: kregress_agent::Gup,
    /// The pass's throughput in MB/s (10^6 bytes per second; per virtual second under icount).
    pub mb_per_s: f64,
    /// The first pass: reported, never used in a metric (it pays for first
    /// touches the later passes do not).
    pub warmup: bool,
}

/// The unit of a metric by its name: `..._mb_per_s` → MB/s, `ops_per_s` → ops/s.
pub(crate) fn metric_unit(metric: &str) -> &'static str {
    if metric.ends_with("mb_per_s") {
        "MB/s"
    } else {
        "ops/s"
    }
}

/// How a verdict row prints its unit: `MB/s (virtual time)` for an icount
/// metric, `ops/s` for a wall one, empty for an outcome row (no metric) or
/// when nothing was measured (no timing).
pub(crate) fn row_unit(timing: Option<Timing>, metric: &str) -> String {
    match timing {
        Some(t) if !metric.is_empty() => t.unit(metric_unit(metric)),
        _ => String::new(),
    }
}

/// The metrics of one boot from its pass samples, per GUP path, from the
/// passes after the warm-up. Passes inside one boot are not independent
/// samples (same kernel instance, same layout), so they are reduced to one
/// value here and the boot is the unit the statistics see:
/// - icount timing: the fastest pass. The guest clock counts instructions,
///   so a pass's own work costs the same every time and anything else the
///   kernel runs during it (a kworker, a journal commit) can only add to it;
///   the fastest pass is the one with the least of that (the minimum-time
///   estimator of Chen and Revels, "Robust benchmarking in noisy
///   environments", 2016). Measured: one pass in six met such work, 1-7 %
///   slower, at a moment that differs between kernel builds (PERFORMANCE.md).
/// - wall timing: the median (host noise is not one-sided enough to trust a
///   single best pass).
pub(crate) fn metrics_from_samples(samples: &[PassSample], timing: Timing) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (gup, name) in [(kregress_agent::Gup::Fast, "fast_mb_per_s"), (kregress_agent::Gup::Slow, "slow_mb_per_s")] {
        let xs: Vec<f64> = samples.iter().filter(|s| s.gup == gup && !s.warmup && s.mb_per_s.is_finite()).map(|s| s.mb_per_s).collect();
        if !xs.is_empty() {
            let v = match timing {
                Timing::Icount => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Timing::Wall => crate::stats::median(&xs),
            };
            // The agent reports 2 decimals; the mean of two middle passes needs 3.
            out.insert(name.to_string(), (v * 1000.0).round() / 1000.0);
        }
    }
    out
}

/// One run of a scenario as run.json holds it: where, when, on what, and every finished cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id and directory name, `YYYYMMDD-HHMMSS-<scenario>` (UTC), `.N` appended when that second had a run.
    #[serde(deserialize_with = "checked::run_id")]
    pub run_id: String,
    /// The scenario's `name`.
    #[serde(deserialize_with = "checked::scenario")]
    pub scenario: String,
    /// The scenario file the run was started from, as given on the command line.
    pub scenario_file: PathBuf,
    /// The run's directory (`results/<run_id>`); set to where run.json was found when read back.
    pub results_dir: PathBuf,
    /// When the run started, RFC 3339 UTC to the second (`2026-11-26T16:08:48Z`).
    pub started: String,
    /// The host the run ran on (null in no run kregress stored, but read as
    /// unknown if it is).
    #[serde(default, deserialize_with = "checked::or_default")]
    pub host: HostInfo,
    /// Variant → the kernel it booted (variants that did not build have none).
    #[serde(default, deserialize_with = "checked::or_default")]
    pub kernels: BTreeMap<String, KernelRecord>,
    /// The `--only` selection the run was made with (empty: the whole
    /// matrix): a cell it leaves out was not run, which is no change.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub only: Filter,
    /// Every finished cell: in finishing order while the run goes, in the scenario's cell order once it ends.
    pub cells: Vec<CellResult>,
    /// A run of one shard (`kregress run --shard I/N`): which part of which group it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// A run `kregress merge` made of shards: which ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeRecord>,
}

/// What a shard's run.json records so that `kregress merge` can check
/// that its shards are the parts of one partition of one selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// This shard, from 1 to `count`.
    pub index: u32,
    /// How many shards the selection is split into.
    pub count: u32,
    /// The run group: the same for every shard of one sharded run (`--group`, or derived).
    #[serde(deserialize_with = "checked::group")]
    pub group: String,
    /// The sha256 of the scenario file's bytes.
    #[serde(deserialize_with = "checked::sha256")]
    pub scenario_sha256: String,
    /// The kregress that ran it (its version).
    pub kregress: String,
    /// `--runs` (none: the scenario's).
    #[serde(default)]
    pub runs: Option<u32>,
    /// What the boots were balanced by: `count`, or the run whose seconds were used (`--timings`).
    pub balance: String,
    /// The shard (1-based) of each boot of the selection, in the order
    /// `run::boot_groups` gives them: one partition, the same in every shard.
    pub plan: Vec<u32>,
}

/// The shards a merged run was made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRecord {
    /// The run group of the shards.
    #[serde(deserialize_with = "checked::group")]
    pub group: String,
    /// How many shards the selection was split into.
    pub count: u32,
    /// Each shard given, by index: its run id and the directory it was read from.
    pub shards: Vec<MergedShard>,
    /// The shards that were not given (`--partial`): their cells are MISS.
    #[serde(default)]
    pub missing: Vec<u32>,
}

/// One shard of a merged run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedShard {
    /// Its index, from 1.
    pub index: u32,
    /// Its run id.
    #[serde(deserialize_with = "checked::run_id")]
    pub run_id: String,
    /// The directory it was merged from.
    pub dir: PathBuf,
    /// The host it ran on.
    #[serde(default, deserialize_with = "checked::or_default")]
    pub host: HostInfo,
}

/// The host a run ran on, as run.json records it. A field a kregress of
/// its time did not record reads as empty. The fields are in alphabetical
/// order, the order run.json has always had them in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostInfo {
    /// How the guests ran (never `auto`: resolved before the first boot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<crate::vm::Accel>,
    /// The host's logical CPUs (0: not recorded).
    pub cpus: usize,
    /// The first line of `gcc --version`.
    pub gcc: String,
    /// The host kernel's release.
    pub kernel: String,
    /// kregress's version.
    pub kregress: String,
    /// The first line of `qemu-system-x86_64 --version`.
    pub qemu: String,
}

/// The kernel a variant booted in a run (see `crate::kernel::KernelArtifact`);
/// fields in run.json's (alphabetical) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelRecord {
    /// The bzImage booted, in the kernel cache.
    pub bzimage: PathBuf,
    /// The git commit the kernel was built from (empty for a Debian source package or a tree).
    pub commit: String,
    /// The sha256 of its final .config.
    pub config_sha256: String,
    /// Its key in the kernel cache.
    pub key: String,
    /// Where its source came from, e.g. `debian:linux-source-6.1:<sha256>`.
    pub source: String,
}

/// A run id as [`new_run_dir`] makes it: `YYYYMMDD-HHMMSS-<scenario>`, and
/// `.N` after it when that second already had a run; the scenario part
/// follows [`crate::scenario::check_name`].
pub(crate) fn check_run_id(id: &str) -> std::result::Result<(), String> {
    let stamp = id.get(..16).unwrap_or("");
    let stamped = stamp.bytes().enumerate().all(|(i, b)| if i == 8 || i == 15 { b == b'-' } else { b.is_ascii_digit() });
    if !stamped || stamp.len() != 16 {
        return Err(format!("{:?} is not a run id (YYYYMMDD-HHMMSS-<scenario>)", id.chars().take(80).collect::<String>()));
    }
    let rest = &id[16..];
    let name = match rest.rsplit_once('.') {
        Some((n, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => rest,
    };
    crate::scenario::check_name("the run id's scenario", name)
}

/// Creates `root/<timestamp>-<scenario>` (unique).
pub(crate) fn new_run_dir(root: &Path, scenario: &str) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(root).context(|| format!("creating {}", root.display()))?;
    new_dir(root, &format!("{}-{scenario}", stamp()))
}

/// Now as `YYYYMMDD-HHMMSS` (UTC).
pub(crate) fn stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .replace('T', "-")
}

/// A new directory `parent/name`, or `name.N` when that exists: (its name, its path).
pub(crate) fn new_dir(parent: &Path, name: &str) -> Result<(String, PathBuf)> {
    for n in 0..=100 {
        let id = if n == 0 { name.to_string() } else { format!("{name}.{n}") };
        let dir = parent.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(crate::error::infra(format!("creating {}: {e}", dir.display()))),
        }
    }
    Err(crate::error::infra(format!("cannot create a new directory {name} under {}", parent.display())))
}

pub(crate) fn cell_dir(run_dir: &Path, c: &Cell) -> PathBuf {
    run_dir.join(c.key().id())
}

/// Writes `rec` to `<results_dir>/run.json`, atomically (a crash leaves the old file or the new).
pub fn save(rec: &RunRecord) -> Result<()> {
    let path = rec.results_dir.join("run.json");
    write_atomic(&path, &serde_json::to_vec_pretty(rec).unwrap())
}

pub(crate) fn save_cell(dir: &Path, r: &CellResult) -> Result<()> {
    write_atomic(&dir.join("result.json"), &serde_json::to_vec_pretty(r).unwrap())
}

/// The largest run.json [`load`] reads (the 226-cell survey's is 0.23 MB).
pub const RUN_JSON_MAX: u64 = 64 << 20;

/// Reads `dir/run.json`. It is input like a scenario (it may be a CI
/// artifact from another machine): a file that is not a regular file, is
/// larger than [`RUN_JSON_MAX`], is not JSON of a run, or holds a name
/// `crate::scenario::check_name` refuses or a duration that is not a
/// number of seconds is bad input naming the file, line, column and field.
pub fn load(dir: &Path) -> Result<RunRecord> {
    read_json(&dir.join("run.json"), RUN_JSON_MAX, "a run record")
}

/// The largest result.json or boot.json [`load_cell`] and [`load_boot`] read.
pub(crate) const CELL_JSON_MAX: u64 = 16 << 20;

/// Reads a cell's `dir/result.json`, checked as [`load`] checks run.json.
pub(crate) fn load_cell(dir: &Path) -> Result<CellResult> {
    read_json(&dir.join("result.json"), CELL_JSON_MAX, "a cell's result")
}

/// Reads a cell's `dir/boot.json` (see [`BootRecord`]), checked as [`load`] checks run.json.
pub(crate) fn load_boot(dir: &Path) -> Result<BootRecord> {
    let path = dir.join("boot.json");
    if std::fs::symlink_metadata(&path).is_err() && dir.join("result.json").is_file() {
        return Err(bad_input(format!(
            "{}: missing: the cell did not boot (its kernel did not build) or was run by a kregress that kept no boot.json; repro.sh re-runs its scenario",
            path.display()
        )));
    }
    read_json(&path, CELL_JSON_MAX, "a boot record")
}

/// Opens a stored file (a run may come from another machine) for reading:
/// a regular file, neither a symbolic link (a link to a secret must not end
/// up in a bundle or a report) nor a FIFO (opening it would wait for a
/// writer), of at most `max` bytes. Anything else is bad input naming it.
pub(crate) fn open_stored(path: &Path, max: u64) -> Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let f = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ELOOP) => bad_input(format!("{shown}: a symbolic link: kregress reads only the run's own files")),
            _ => bad_input(format!("{shown}: {e}")),
        }
    })?;
    let meta = f.metadata().context(|| format!("reading {shown}"))?;
    if !meta.is_file() {
        return Err(bad_input(format!("{shown}: not a regular file")));
    }
    if meta.len() > max {
        return Err(bad_input(format!("{shown}: larger than {} MiB", max >> 20)));
    }
    Ok((f, meta.len()))
}

/// Reads and checks a stored JSON file of at most `max` bytes holding `what`
/// (see [`open_stored`]); a parse error is bad input with its line and column.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path, max: u64, what: &str) -> Result<T> {
    let shown = path.display();
    let (f, _) = open_stored(path, max)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, max + 1), &mut bytes).context(|| format!("reading {shown}"))?;
    if bytes.len() as u64 > max {
        return Err(bad_input(format!("{shown}: larger than {} MiB: not {what}", max >> 20)));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json appends " at line L column C"; the prefix says it.
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m);
        bad_input(format!("{shown}:{}:{}: {msg}", e.line(), e.column()))
    })
}

/// What a boot booted, recorded at run time as `boot.json` in the directory
/// of each of its cells (qemu.cmdline shows the same command to people, but
/// quoted for reading, not for reuse): `kregress replay` boots it again,
/// checked by hash, whatever the scenario or the cache hold by then, and
/// `kregress bundle` packs it (see [`crate::replay`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BootRecord {
    /// QEMU's arguments as given (the program is qemu-system-x86_64):
    /// `-kernel` is `bzimage`'s path, `-initrd` `initramfs`'s.
    pub qemu_args: Vec<String>,
    pub bzimage: FileRecord,
    pub initramfs: FileRecord,
    /// The kernel's final .config (not booted: bundled, for the developer).
    pub config: FileRecord,
    /// The host's deadlines for the boot (see [`crate::vm::Deadlines`]).
    #[serde(deserialize_with = "checked::boot_deadline_s")]
    pub boot_deadline_s: u64,
    #[serde(deserialize_with = "checked::run_deadline_s")]
    pub run_deadline_s: u64,
    /// The workloads the boot ran, in order: one per cell that shares it.
    #[serde(deserialize_with = "checked::workloads")]
    pub workloads: Vec<String>,
}

/// A file a boot used, where it was and its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    pub path: PathBuf,
    #[serde(deserialize_with = "checked::sha256")]
    pub sha256: String,
}

impl FileRecord {
    pub(crate) fn of(path: &Path) -> Result<FileRecord> {
        Ok(FileRecord { path: path.to_path_buf(), sha256: crate::cache::sha256_file(path)? })
    }
}

pub(crate) fn save_boot(dir: &Path, b: &BootRecord) -> Result<()> {
    write_atomic(&dir.join("boot.json"), &serde_json::to_vec_pretty(b).unwrap())
}

/// Deserializers that check what they read (see [`load`]); their errors
/// name the field, serde_json adds the line and column.
mod checked {
    use serde::de::{Deserialize, Deserializer, Error};

    /// `null` read as the default.
    pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    fn name<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        let checked = match field {
            "run_id" => super::check_run_id(&s),
            _ => crate::scenario::check_name(field, &s),
        };
        checked.map_err(|why| D::Error::custom(format!("{field}: {why}")))?;
        Ok(s)
    }

    macro_rules! names {
        ($($field:ident),*) => {$(
            pub fn $field<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
                name(d, stringify!($field))
            }
        )*};
    }
    names!(run_id, scenario, variant, backend, mode, fs, mapping, workload, group);

    /// The longest duration a run.json may record: 10^9 s (31 years).
    const SECONDS_MAX: f64 = 1e9;

    fn check_seconds<E: Error>(field: &str, x: f64) -> Result<f64, E> {
        if (0.0..=SECONDS_MAX).contains(&x) {
            Ok(x)
        } else {
            Err(E::custom(format!("{field}: {x:?} is not a duration in seconds (0 to {SECONDS_MAX:e})")))
        }
    }

    pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        check_seconds("seconds", f64::deserialize(d)?)
    }

    pub fn workload_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<f64>::deserialize(d)?.map(|x| check_seconds("workload_seconds", x)).transpose()
    }

    pub fn boot_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<f64>::deserialize(d)?.map(|x| check_seconds("boot_seconds", x)).transpose()
    }

    /// The longest deadlines a boot.json may give a replay: an hour to boot,
    /// two days to run (a run's are minutes).
    fn deadline<'de, D: Deserializer<'de>>(d: D, field: &str, max: u64) -> Result<u64, D::Error> {
        let x = u64::deserialize(d)?;
        if (1..=max).contains(&x) {
            Ok(x)
        } else {
            Err(D::Error::custom(format!("{field}: {x} is not from 1 to {max} seconds")))
        }
    }

    pub fn boot_deadline_s<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        deadline(d, "boot_deadline_s", 3600)
    }

    pub fn run_deadline_s<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        deadline(d, "run_deadline_s", 2 * 86400)
    }

    /// A boot's workloads: 1 to 64 names.
    pub fn workloads<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        if names.is_empty() || names.len() > 64 {
            return Err(D::Error::custom(format!("workloads: {} of them, not 1 to 64", names.len())));
        }
        for n in &names {
            crate::scenario::check_name("workload", n).map_err(|why| D::Error::custom(format!("workloads: {why}")))?;
        }
        Ok(names)
    }

    pub fn sha256<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(D::Error::custom(format!("sha256: {:?} is not 64 lowercase hex digits", s.chars().take(80).collect::<String>())));
        }
        Ok(s)
    }
}

/// Creates `base/rel` following no symbolic link below `base` and refusing
/// `..`: a stored run may come from another machine, and a link in it must
/// not carry a write (repro.sh, the report) out of the run's directory.
pub(crate) fn create_dir_inside(base: &Path, rel: &Path) -> Result<PathBuf> {
    let mut dir = base.to_path_buf();
    for part in rel.components() {
        let std::path::Component::Normal(part) = part else {
            return Err(bad_input(format!("{}: {} leaves the run's directory", base.display(), rel.display())));
        };
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            // symlink_metadata: a link to a directory is not a directory.
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad_input(format!(
                    "{}: not a directory (a symbolic link?): kregress writes only inside {}",
                    dir.display(),
                    base.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&dir).context(|| format!("creating {}", dir.display()))?
            }
            Err(e) => return Err(crate::error::infra(format!("{}: {e}", dir.display()))),
        }
    }
    Ok(dir)
}

/// `results/<id>` from a run id or a path.
pub(crate) fn find(root: &Path, id_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(id_or_path);
    for cand in [p.to_path_buf(), root.join(p)] {
        if cand.join("run.json").is_file() {
            return Ok(cand);
        }
    }
    Err(bad_input(format!("run {id_or_path}: no run.json there or under {}", root.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of a stored run's run.json, edited as JSON, in a temp dir.
    fn crafted(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/20261126-162904-bio-release-devmap-wakeup/run.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(src).unwrap()).unwrap();
        edit(&mut v);
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("run.json"), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        d
    }

    /// The error of loading it: exit 2, one line, `run.json:LINE:COLUMN: `.
    fn refused(d: &tempfile::TempDir) -> String {
        let e = load(d.path()).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.exit_code(), 2, "{msg}");
        assert!(!msg.contains('\n'), "{msg:?}");
        let at = format!("{}:", d.path().join("run.json").display());
        let rest = msg.strip_prefix(&at).unwrap_or_else(|| panic!("{msg}"));
        let pos: Vec<&str> = rest.splitn(3, ':').collect();
        assert!(pos.len() == 3 && pos[0].parse::<u32>().unwrap() > 1 && pos[1].parse::<u32>().is_ok(), "{msg}");
        msg
    }

    #[test]
    fn stored_runs_load() {
        let d = crafted(|_| {});
        let rec = load(d.path()).unwrap();
        assert_eq!(rec.cells.len(), 18);
        assert_eq!((rec.host.accel, rec.host.cpus), (Some(crate::vm::Accel::Tcg), 2));
        assert_eq!(rec.kernels["fixed"].commit, "2ecf5c3f0f6f3d51e77adb8c8ee9b9eb67f52646");
        // Written back, the host and the kernels are as they were read.
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join("run.json")).unwrap()).unwrap();
        let back = serde_json::to_value(&rec).unwrap();
        assert_eq!((&back["host"], &back["kernels"]), (&v["host"], &v["kernels"]));
        // A host or kernels a kregress of its time did not record: unknown, not refused.
        for edit in [
            |v: &mut serde_json::Value| v["host"] = serde_json::Value::Null,
            |v: &mut serde_json::Value| v["kernels"] = serde_json::Value::Null,
            |v: &mut serde_json::Value| _ = v.as_object_mut().unwrap().remove("host"),
            |v: &mut serde_json::Value| _ = v["host"].as_object_mut().unwrap().remove("accel"),
            |v: &mut serde_json::Value| _ = v["kernels"]["fixed"].as_object_mut().unwrap().remove("commit"),
        ] {
            assert_eq!(load(crafted(edit).path()).unwrap().cells.len(), 18);
        }
    }

    #[test]
    fn names_that_would_leave_the_run_or_reach_a_shell_are_refused() {
        let long = "a".repeat(crate::scenario::limits::MAX_NAME + 1);
        for (field, bad) in [
            ("variant", "../../../x"),
            ("variant", ""),
            ("backend", ""),
            ("variant", "a\n$(touch /tmp/pwned)"),
            ("workload", "dio-read;id"),
            ("fs", "/etc"),
            ("mapping", "."),
            ("mode", ".."),
            ("variant", long.as_str()),
        ] {
            let d = crafted(|v| v["cells"][7][field] = bad.into());
            let e = refused(&d);
            assert!(e.contains(&format!(": {field}: ")), "{field}={bad:?}: {e}");
        }
        for (field, bad) in [("run_id", "x\ntouch /tmp/pwned\n"), ("run_id", "$(id)"), ("scenario", "a b")] {
            let d = crafted(|v| v[field] = bad.into());
            let e = refused(&d);
            assert!(e.contains(&format!(": {field}: ")), "{field}={bad:?}: {e}");
        }
    }

    #[test]
    fn durations_must_be_seconds() {
        for (field, bad) in [("seconds", 1e300), ("seconds", -1.0), ("boot_seconds", 1e300), ("workload_seconds", -0.5)] {
            let d = crafted(|v| v["cells"][3][field] = bad.into());
            let e = refused(&d);
            assert!(e.contains(&format!(": {field}: ")) && e.contains("not a duration in seconds"), "{field}={bad}: {e}");
        }
        // JSON has no NaN or infinity: too big a literal is a parse error.
        let d = crafted(|_| {});
        let p = d.path().join("run.json");
        let text = std::fs::read_to_string(&p).unwrap().replacen("\"seconds\": 8.", "\"seconds\": 1e999", 1);
        std::fs::write(&p, text).unwrap();
        assert!(refused(&d).contains("number out of range"));
    }

    #[test]
    fn a_corrupt_run_json_is_bad_input_with_line_and_column() {
        let d = crafted(|_| {});
        let p = d.path().join("run.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, &text[..text.len() / 2]).unwrap();
        let e = refused(&d);
        assert!(e.contains("EOF while parsing") && !e.contains(" at line "), "{e}");
        std::fs::write(&p, text.replacen("\"outcome\": \"PASS\"", "\"outcome\": \"MAYBE\"", 1)).unwrap();
        let e = refused(&d);
        assert!(e.contains("unknown variant `MAYBE`"), "{e}");
    }

    #[test]
    fn run_json_must_be_a_bounded_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.json");
        // A FIFO: refused at once (opening it would wait for a writer).
        assert_eq!(unsafe { libc::mkfifo(std::ffi::CString::new(p.to_str().unwrap()).unwrap().as_ptr(), 0o600) }, 0);
        let dir = d.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(load(&dir).map_err(|e| (e.exit_code(), e.to_string()))).unwrap());
        let r = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("loading a FIFO run.json hangs");
        let (code, msg) = r.unwrap_err();
        assert!(code == 2 && msg.contains("not a regular file"), "{msg}");
        // Larger than the cap (sparse): refused without being parsed.
        std::fs::remove_file(&p).unwrap();
        std::fs::File::create(&p).unwrap().set_len(RUN_JSON_MAX + 1).unwrap();
        let e = load(d.path()).unwrap_err();
        assert!(e.exit_code() == 2 && e.to_string().contains("larger than 64 MiB"), "{e}");
        // A symbolic link (to a stored run here): not followed.
        std::fs::remove_file(&p).unwrap();
        let stored = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/20261126-162904-bio-release-devmap-wakeup/run.json");
        std::os::unix::fs::symlink(stored, &p).unwrap();
        let e = load(d.path()).unwrap_err();
        assert!(e.exit_code() == 2 && e.to_string().ends_with("run.json: a symbolic link: kregress reads only the run's own files"), "{e}");
    }

    #[test]
    fn directories_are_created_inside_the_run_only() {
        let d = tempfile::tempdir().unwrap();
        let (run, outside) = (d.path().join("run"), d.path().join("outside"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        assert_eq!(create_dir_inside(&run, Path::new("a/b/run1")).unwrap(), run.join("a/b/run1"));
        assert!(run.join("a/b/run1").is_dir());
        std::os::unix::fs::symlink(&outside, run.join("link")).unwrap();
        for rel in ["link/b", "../outside/b", "/tmp/b", "a/../../outside/b"] {
            let e = create_dir_inside(&run, Path::new(rel)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{rel}: {e}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing created outside");
    }
}
