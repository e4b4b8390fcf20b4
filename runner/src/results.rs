//! The results store: `results/<run-id>/` with run.json, one directory per
//! cell (console.log, result.json, qemu.cmdline, agent.jsonl) and summary.md.
//! Every file is written atomically, and run.json is rewritten after each
//! cell, so an interrupted run loses no finished cell and can be resumed.

use crate::cache::write_atomic;
use crate::error::{bad_input, Context, Result};
use crate::scenario::{Cell, Timing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// KCIDB-style status of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Pass,
    Fail,
    /// The kernel under test did not build or boot.
    Error,
    /// The harness failed (QEMU missing, agent protocol broken, DAX not active).
    Miss,
    Skip,
}

/// What kind of failure a FAIL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailKind {
    Crash,
    Warn,
    Hang,
    DataCorruption,
    IoError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub variant: String,
    pub backend: String,
    /// fsdax or devdax (runs stored before the mode axis were all fsdax).
    #[serde(default = "fsdax")]
    pub mode: String,
    /// The filesystem, or `devdax` for devdax cells (see [`Cell::fs_axis`]).
    pub fs: String,
    pub mapping: String,
    pub workload: String,
    pub run: u32,
    pub outcome: Outcome,
    pub kind: Option<FailKind>,
    pub title: Option<String>,
    /// How guest time ran in the boot (icount figures are per virtual second).
    /// Runs stored before timing modes existed were all wall-clock.
    #[serde(default = "wall")]
    pub timing: Timing,
    /// The figures verdicts are made of, one value per boot: for the dio
    /// workloads `fast_mb_per_s` and `slow_mb_per_s` (GUP-fast and slow GUP,
    /// each the median of the boot's passes after the warm-up pass), for the
    /// race `ops_per_s`. See [`metric_unit`].
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Every measured pass as the agent reported it, warm-up included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<PassSample>,
    /// Every problem seen, most severe first (the title is the first's).
    #[serde(default)]
    pub problems: Vec<String>,
    pub console: PathBuf,
    /// The boot's wall time shared out over the cells it ran.
    pub seconds: f64,
    /// Host seconds from the workload's start to its result (none when it never finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_seconds: Option<f64>,
    #[serde(default)]
    pub boot_seconds: Option<f64>,
    /// Console lines that looked like agent messages but did not start with
    /// the marker and this boot's nonce: ignored (see `kregress_agent::protocol`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub foreign_lines: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CellResult {
    /// The result of `c` with `outcome` and nothing else known yet.
    pub fn new(c: &Cell, outcome: Outcome, console: PathBuf) -> CellResult {
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
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{}-{}-{}-{}/run{}", self.variant, self.backend, self.fs, self.mapping, self.workload, self.run)
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
    pub pass: u32,
    pub gup: kregress_agent::Gup,
    pub mb_per_s: f64,
    /// The first pass: reported, never used in a metric (it pays for first
    /// touches the later passes do not).
    pub warmup: bool,
}

/// The unit of a metric by its name: `..._mb_per_s` → MB/s, `ops_per_s` → ops/s.
pub fn metric_unit(metric: &str) -> &'static str {
    if metric.ends_with("mb_per_s") {
        "MB/s"
    } else {
        "ops/s"
    }
}

/// How a verdict row prints its unit: `MB/s (virtual time)` for an icount
/// metric, `ops/s` for a wall one, empty for an outcome row (no metric) or
/// when nothing was measured (no timing).
pub fn row_unit(timing: Option<Timing>, metric: &str) -> String {
    match timing {
        Some(t) if !metric.is_empty() => t.unit(metric_unit(metric)),
        _ => String::new(),
    }
}

/// The metrics of one boot from its pass samples: per GUP path, the median
/// of the passes after the warm-up. Passes inside one boot are not
/// independent samples (same kernel instance, same layout), so they are
/// reduced to one value here and the boot is the unit the statistics see.
pub fn metrics_from_samples(samples: &[PassSample]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (gup, name) in [(kregress_agent::Gup::Fast, "fast_mb_per_s"), (kregress_agent::Gup::Slow, "slow_mb_per_s")] {
        let xs: Vec<f64> = samples.iter().filter(|s| s.gup == gup && !s.warmup && s.mb_per_s.is_finite()).map(|s| s.mb_per_s).collect();
        if !xs.is_empty() {
            // The agent reports 2 decimals; the mean of two middle passes needs 3.
            out.insert(name.to_string(), (crate::compare::median(&xs) * 1000.0).round() / 1000.0);
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub scenario: String,
    pub scenario_file: PathBuf,
    pub results_dir: PathBuf,
    pub started: String,
    pub host: serde_json::Value,
    /// Variant → kernel key, config sha256, bzImage.
    pub kernels: serde_json::Value,
    pub cells: Vec<CellResult>,
}

/// Creates `root/<timestamp>-<scenario>` (unique).
pub fn new_run_dir(root: &Path, scenario: &str) -> Result<(String, PathBuf)> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .replace('T', "-");
    for n in 0.. {
        let id = if n == 0 { format!("{stamp}-{scenario}") } else { format!("{stamp}-{scenario}.{n}") };
        let dir = root.join(&id);
        if std::fs::create_dir_all(root).is_ok() && std::fs::create_dir(&dir).is_ok() {
            return Ok((id, dir));
        }
        if n > 100 {
            break;
        }
    }
    Err(crate::error::infra(format!("cannot create a run directory under {}", root.display())))
}

pub fn cell_dir(run_dir: &Path, c: &Cell) -> PathBuf {
    run_dir.join(c.id())
}

pub fn save(rec: &RunRecord) -> Result<()> {
    let path = rec.results_dir.join("run.json");
    write_atomic(&path, &serde_json::to_vec_pretty(rec).unwrap())
}

pub fn save_cell(dir: &Path, r: &CellResult) -> Result<()> {
    write_atomic(&dir.join("result.json"), &serde_json::to_vec_pretty(r).unwrap())
}

pub fn load(dir: &Path) -> Result<RunRecord> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).context(|| format!("parsing {}", path.display()))
}

/// `results/<id>` from a run id or a path.
pub fn find(root: &Path, id_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(id_or_path);
    for cand in [p.to_path_buf(), root.join(p)] {
        if cand.join("run.json").is_file() {
            return Ok(cand);
        }
    }
    Err(bad_input(format!("run {id_or_path}: no run.json there or under {}", root.display())))
}
