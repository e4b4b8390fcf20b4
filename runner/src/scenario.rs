//! Scenario files: what to build (kernel source, config, variants with their
//! patches). Loading validates everything that can be checked without
//! building, within the bounds of [`limits`], and every error names the
//! file, the line and the field.

use crate::error::{bad_input, Error, Result};
use crate::outcome::{FailKind, Outcome};
use crate::yaml;
use kregress_agent::WorkloadSpec;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// The bounds a scenario is held to when it is loaded, so that `validate`
/// refuses what `run` could not do. README's "Limits" table lists them.
pub mod limits {
    /// Largest scenario file: 1 MiB (the seed scenarios are under 4 KiB).
    pub const MAX_FILE_BYTES: u64 = 1 << 20;
    /// Deepest nesting of mappings and sequences; the seed scenarios use 4.
    /// libyaml's time grows with the square of the depth of `[`/`{`
    /// nesting (200 KB of it took 27 s), so depth is checked first.
    pub const MAX_DEPTH: usize = 32;
    /// Longest name of a scenario, a variant or a Debian source package.
    pub const MAX_NAME: usize = 64;
    /// Most `runs` of each cell (`run.runs`, `run --runs`).
    pub const MAX_RUNS: u32 = 100;
    /// The longest storm `budget` of a nightly, in seconds (a day).
    pub const MAX_STORM_BUDGET: u64 = 24 * 3600;
    /// Most `reruns` of a failing storm (each is a boot).
    pub const MAX_RERUNS: u32 = 20;
    /// Most cells in one run of the matrix (variants × backends × modes ×
    /// filesystems × mappings × workloads, before `exclude`); survey.yaml has 264.
    pub const MAX_CELLS_PER_RUN: u64 = 4096;
    /// A workload's `size`, `passes`, `seconds` and `threads`: the agent's
    /// bounds ([`kregress_agent::WorkloadSpec::check`]), one rule on both sides.
    pub use kregress_agent::config::{MAX_PASSES, MAX_SECONDS, MAX_SEED, MAX_SIZE, MAX_THREADS};
}

/// The rule for every name that becomes part of a path or a command (a
/// scenario, a variant, a Debian source package; run.json's names when they
/// are read back): 1 to [`limits::MAX_NAME`] ASCII letters, digits, `.`,
/// `_`, `+` or `-`, starting with a letter or digit (so never `.`, `..`, a
/// path or an option). `what` says what the name is, for the message.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let max = limits::MAX_NAME;
    let ok = name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
    if ok {
        return Ok(());
    }
    let shown: String = name.chars().take(max + 1).collect();
    let more = if shown.len() < name.len() { "..." } else { "" };
    Err(format!("{what} {shown:?}{more} is not a name: 1 to {max} letters, digits, `.`, `_`, `+` or `-`, starting with a letter or digit"))
}

/// `--runs N` and `run.runs`: from 1 to [`limits::MAX_RUNS`].
pub(crate) fn check_runs(runs: u32) -> Result<(), String> {
    match (1..=limits::MAX_RUNS).contains(&runs) {
        true => Ok(()),
        false => Err(format!("{runs} is not from 1 to {}", limits::MAX_RUNS)),
    }
}

/// A loaded, validated scenario. Relative paths in it are already resolved
/// against the project root (see `project_root`).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's `name`: it names the run (`<stamp>-<name>`) and its results directory.
    pub name: String,
    pub(crate) file: PathBuf,
    /// The kernel every variant builds unless the variant overrides a part of it.
    pub kernel: KernelSection,
    /// The kernels compared, in the file's order; the first is the A/B baseline.
    pub variants: Vec<Variant>,
    /// The matrix of cells to boot and how to boot them.
    pub run: RunSection,
    pub(crate) expect: Vec<Expect>,
}

/// The run axes: every variant × backend × filesystem × mapping × workload,
/// minus `exclude`, `runs` times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// How the pmem is emulated (`memmap`, `nvdimm`); default `memmap`.
    #[serde(default = "default_backends")]
    pub backends: Vec<Backend>,
    /// The DAX filesystems fsdax cells mount (`ext4`, `xfs`); default `ext4`.
    #[serde(default = "default_filesystems")]
    pub filesystems: Vec<Fs>,
    /// The page sizes the workloads map with (`pte` 4 KiB, `pmd` 2 MiB); default `pte`.
    #[serde(default = "default_mappings")]
    pub mappings: Vec<Mapping>,
    /// How the DAX side is exposed: `fsdax` (a DAX filesystem, every
    /// filesystem of `filesystems`) and/or `devdax` (/dev/daxX.Y; the
    /// filesystem axis does not apply, one cell per backend × mapping).
    #[serde(default = "default_modes")]
    pub modes: Vec<Mode>,
    /// The workloads, each a cell of its own, run in this order in a shared boot.
    #[serde(default = "default_workloads")]
    pub workloads: Vec<Workload>,
    /// How many times each cell runs, each in a fresh boot (1 to `limits::MAX_RUNS`).
    #[serde(default = "one")]
    pub runs: u32,
    /// Cells left out of the matrix: each filter removes the cells it matches.
    #[serde(default)]
    pub exclude: Vec<Filter>,
    /// Boot with panic_on_warn=1 (a WARN ends the guest at once).
    #[serde(default)]
    pub panic_on_warn: bool,
    /// How guest time runs for every workload without its own `timing`
    /// (default: `Timing::default_for` the workload).
    #[serde(default)]
    pub timing: Option<Timing>,
}

/// How guest time runs in a boot, and so what a throughput figure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timing {
    /// One vCPU under `-icount shift=0,sleep=off`: guest time counts
    /// instructions (1 ns each), so MB/s is MB per *virtual* second, a
    /// deterministic CPU-cost measure that host load does not move.
    Icount,
    /// Host time: two vCPUs, figures move with the host's load.
    Wall,
}

crate::text::named!(Timing { Icount => "icount", Wall => "wall" });

impl Timing {
    /// The throughput workloads measure in icount; races, pins across
    /// processes and everything else run on two vCPUs (wall).
    pub(crate) fn default_for(w: WorkloadName) -> Timing {
        match w {
            WorkloadName::DioRead | WorkloadName::DioWrite => Timing::Icount,
            _ => Timing::Wall,
        }
    }

    /// How a throughput unit is printed: icount figures say they are virtual.
    pub(crate) fn unit(self, unit: &str) -> String {
        match self {
            Timing::Icount => format!("{unit} (virtual time)"),
            Timing::Wall => unit.to_string(),
        }
    }
}

impl Default for RunSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").unwrap()
    }
}

fn default_backends() -> Vec<Backend> {
    vec![Backend::Memmap]
}
fn default_filesystems() -> Vec<Fs> {
    vec![Fs::Ext4]
}
fn default_modes() -> Vec<Mode> {
    vec![Mode::Fsdax]
}
fn default_mappings() -> Vec<Mapping> {
    vec![Mapping::Pte]
}
fn default_workloads() -> Vec<Workload> {
    vec![Workload {
        name: WorkloadName::DioRead,
        size: None,
        passes: None,
        seconds: None,
        threads: None,
        seed: None,
        ops: None,
        reruns: None,
        budget: None,
        timing: None,
    }]
}
fn one() -> u32 {
    1
}

/// The run axes are the guest's own types (one definition, shared with the agent).
pub(crate) use kregress_agent::{Backend, Fs, Mapping, Mode, StormOp, WorkloadKind as WorkloadName};

/// A workload and its parameters (the agent's defaults where absent).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Which workload the agent runs (`dio-read`, `truncate-during-dio`, ...).
    pub name: WorkloadName,
    /// Bytes, written `64M` (K, M, G or plain bytes), parsed when the
    /// scenario is loaded by the agent's own parser.
    #[serde(default, deserialize_with = "size_bytes")]
    pub size: Option<u64>,
    /// Throughput workloads: how many passes, each GUP-fast then slow GUP (the first is a warm-up).
    pub passes: Option<u32>,
    /// Race workloads: how long the race runs, in guest seconds.
    pub seconds: Option<u32>,
    /// Race workloads: how many I/O threads.
    pub threads: Option<u32>,
    /// Storm: the seed of the op streams (`run --seed` overrides it).
    pub seed: Option<u64>,
    /// Storm: the ops drawn from (default: all of them).
    pub ops: Option<Vec<StormOp>>,
    /// Storm: how many times a FAIL is rerun with the same seed to measure
    /// its reproduction rate (default [`DEFAULT_STORM_RERUNS`], 0 to not rerun).
    pub reruns: Option<u32>,
    /// Storm: in `kregress nightly`, run seeds `seed`, `seed`+1, ... for this
    /// long (`10m`; see [`crate::seeds`]); without it a nightly runs one seed.
    pub budget: Option<String>,
    /// Overrides `run.timing` for this workload.
    pub timing: Option<Timing>,
}

impl Workload {
    /// What the agent runs: its defaults for the workload, with what the
    /// scenario gives. [`parse`] checks it against the agent's bounds.
    pub fn spec(&self) -> WorkloadSpec {
        let mut w = WorkloadSpec::new(self.name);
        if let Some(s) = self.size {
            w.size = s;
        }
        if let Some(p) = self.passes {
            w.passes = p;
        }
        if let Some(s) = self.seconds {
            w.seconds = s;
            w.deadline = w.deadline.max(s.saturating_add(60));
        }
        if let Some(t) = self.threads {
            w.threads = t;
        }
        if let Some(seed) = self.seed {
            w.seed = seed;
        }
        if let Some(ops) = &self.ops {
            w.ops = ops.clone();
        }
        w
    }

    /// Storm: its nightly budget ([`Workload::budget`]), once validated.
    pub fn storm_budget(&self) -> Option<std::time::Duration> {
        self.budget.as_deref().and_then(|b| humantime::parse_duration(b).ok())
    }

    /// Storm: reruns of a FAIL with the same seed ([`Workload::reruns`]).
    pub fn storm_reruns(&self) -> u32 {
        match self.name {
            WorkloadName::Storm => self.reruns.unwrap_or(DEFAULT_STORM_RERUNS),
            _ => 0,
        }
    }
}

/// Reruns of a failing storm cell with its seed, unless the scenario says otherwise.
pub const DEFAULT_STORM_RERUNS: u32 = 3;

/// `size: 64M` (or a number of bytes) as bytes, by the agent's parser.
fn size_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    struct Size;
    impl serde::de::Visitor<'_> for Size {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a size such as 64M, 1G or 4096")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<u64, E> {
            Ok(n)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<u64, E> {
            kregress_agent::config::parse_size(s).map_err(E::custom)
        }
    }
    d.deserialize_any(Size).map(Some)
}

/// Selects cells: every given field must match (`--only`, `exclude`, `expect`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub(crate) variant: Option<String>,
    pub(crate) backend: Option<Backend>,
    pub(crate) mode: Option<Mode>,
    /// Selects fsdax cells of this filesystem (devdax cells have none).
    pub(crate) fs: Option<Fs>,
    pub(crate) mapping: Option<Mapping>,
    pub(crate) workload: Option<WorkloadName>,
}

/// What a scenario expects of the cells a filter selects.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    pub(crate) variant: Option<String>,
    pub(crate) backend: Option<Backend>,
    pub(crate) mode: Option<Mode>,
    pub(crate) fs: Option<Fs>,
    pub(crate) mapping: Option<Mapping>,
    pub(crate) workload: Option<WorkloadName>,
    /// PASS, FAIL, ERROR, MISS or SKIP.
    pub(crate) outcome: Outcome,
    /// For FAIL: CRASH, WARN, HANG, DATA_CORRUPTION, IO_ERROR.
    pub(crate) kind: Option<FailKind>,
    /// For FAIL: the title must contain this.
    pub(crate) title: Option<String>,
}

/// The `kernel:` section: what source to build and which config.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSection {
    /// Where the tree comes from.
    pub source: Source,
    /// The config the fragments are merged onto.
    pub base: Base,
    /// Config fragments merged onto `base` in order (paths resolved against the project root).
    pub fragments: Vec<PathBuf>,
}

/// Where the kernel tree comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A Debian `linux-source-X` package: `/usr/src/<name>.tar.xz`.
    Debian(String),
    /// A local tree, built out-of-tree without writing into it.
    Path(PathBuf),
    /// A local git repository at a revision (a variant may override the rev).
    Git {
        /// The repository's path (kregress clones it, never writes into it).
        repo: PathBuf,
        /// The revision to build: anything `git rev-parse` resolves to a commit.
        rev: String,
    },
}

/// The config the fragments are merged onto.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    /// `make tinyconfig`.
    Tinyconfig,
    /// `make defconfig`.
    Defconfig,
    /// A full .config file (path resolved against the project root).
    File(PathBuf),
}

/// One kernel compared in the scenario: a name, the kernel it builds, and the patches applied on top.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The variant's name (`stock`, `fixed`): a directory in the results and the A/B label.
    pub name: String,
    /// The kernel this variant builds: the scenario's `kernel`, with the
    /// variant's own `source`, `base` and `fragments` where it gives them
    /// (so one scenario can compare 6.1 with 6.12, not only a patch).
    pub kernel: KernelSection,
    /// Patches applied in order with `git apply` onto a clean checkout of the source (paths resolved against the project root).
    pub patches: Vec<PathBuf>,
    /// Only for `git:` sources: build this revision instead of the source's.
    pub rev: Option<String>,
}

// ---- the YAML schema, as written by users -------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    #[allow(dead_code)] // a note for people reading the file: checked to be a string, shown nowhere
    description: String,
    kernel: RawKernel,
    variants: Vec<RawVariant>,
    #[serde(default)]
    run: RunSection,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    source: RawSource,
    base: String,
    #[serde(default)]
    fragments: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    debian: Option<String>,
    path: Option<String>,
    git: Option<String>,
    rev: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    name: String,
    #[serde(default)]
    patches: Vec<String>,
    rev: Option<String>,
    source: Option<RawSource>,
    base: Option<String>,
    fragments: Option<Vec<String>>,
}

/// The nearest ancestor of the scenario file holding `kernel-configs/`: paths
/// in scenarios (fragments, patches) are relative to it, as in the repository.
pub(crate) fn project_root(file: &Path) -> PathBuf {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.join("kernel-configs").is_dir() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    abs.parent().unwrap_or(Path::new(".")).to_path_buf()
}

/// Reads and validates a scenario file: a regular file (a FIFO or a device
/// could block or never end) of at most [`limits::MAX_FILE_BYTES`], in UTF-8.
pub fn load(file: &Path) -> Result<Scenario> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let shown = file.display();
    let cannot = |e: std::io::Error| bad_input(format!("{shown}: cannot read scenario: {e}")).because(e);
    // Non-blocking: opening a FIFO must not wait for a writer (it is refused below).
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(file).map_err(cannot)?;
    let t = f.metadata().map_err(cannot)?.file_type();
    if !t.is_file() {
        let what = match () {
            _ if t.is_dir() => "a directory",
            _ if t.is_fifo() => "a FIFO",
            _ if t.is_char_device() || t.is_block_device() => "a device",
            _ if t.is_socket() => "a socket",
            _ => "not a file",
        };
        return Err(bad_input(format!("{shown}: a scenario is a regular file, this is {what}")));
    }
    let max = limits::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(bad_input(format!("{shown}: a scenario file holds at most {max} bytes (1 MiB); this one is larger")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (good, _) = bytes.split_at(e.valid_up_to());
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        bad_input(format!("{shown}:{line}: invalid UTF-8 at column {column} (a scenario is UTF-8 text)"))
    })?;
    parse(file, text)
}

/// A relative path of a scenario, resolved under the project root. It may
/// not climb out of the root: a path outside the project is written absolute.
fn resolve(root: &Path, p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => {
                return Err(format!("{p} leaves the project directory {}; write a path outside it as an absolute path", root.display()));
            }
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    Ok(root.join(path))
}

/// Parses and validates scenario text; `file` names it in errors and anchors paths.
pub fn parse(file: &Path, text: &str) -> Result<Scenario> {
    let shown = file.display().to_string();
    // A UTF-8 byte order mark is not content (some editors write one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(p) = yaml::lint(text, limits::MAX_DEPTH) {
        let field = if p.field.is_empty() { String::new() } else { format!("{}: ", p.field) };
        return Err(bad_input(format!("{shown}:{}: {field}{}", p.line, p.msg)));
    }
    let raw: RawScenario = serde_yaml::from_str(text).map_err(|e| {
        // serde_yaml appends " at line L column C"; the prefix says it already.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        match e.location() {
            Some(l) => bad_input(format!("{shown}:{}: {msg}", l.line())),
            None => bad_input(format!("{shown}: {msg}")),
        }
    })?;
    // A check made on the typed scenario names its field by path; the line
    // is that field's in the text.
    let at = |field: &str, msg: String| -> Error {
        let line = yaml::line_of(text, field).unwrap_or(1);
        bad_input(format!("{shown}:{line}: {field}: {msg}"))
    };
    let root = project_root(file);
    let path = |field: &str, p: &str| resolve(&root, p).map_err(|m| at(field, m));
    let must_exist = |field: &str, p: &str| -> Result<PathBuf> {
        let full = path(field, p)?;
        match full.is_file() {
            true => Ok(full),
            false => Err(at(field, format!("no such file: {p} (looked for {})", full.display()))),
        }
    };

    check_name("scenario name", &raw.name).map_err(|m| at("name", m))?;

    let parse_source = |s: &RawSource, field: &str| -> Result<Source> {
        let given = [s.debian.is_some(), s.path.is_some(), s.git.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(at(field, "give exactly one of `debian`, `path`, `git`".into()));
        }
        if s.rev.is_some() && s.git.is_none() {
            return Err(at(&format!("{field}.rev"), "only a `git` source has a revision".into()));
        }
        Ok(if let Some(d) = &s.debian {
            check_name("Debian source package", d).map_err(|m| at(&format!("{field}.debian"), m))?;
            Source::Debian(d.clone())
        } else if let Some(p) = &s.path {
            Source::Path(path(&format!("{field}.path"), p)?)
        } else {
            let rev = s.rev.clone().ok_or_else(|| at(field, "`git` needs `rev`".into()))?;
            check_rev(&rev).map_err(|m| at(&format!("{field}.rev"), m))?;
            Source::Git { repo: path(&format!("{field}.git"), s.git.as_deref().unwrap())?, rev }
        })
    };
    let parse_base = |b: &str, field: &str| -> Result<Base> {
        Ok(match b {
            "tinyconfig" => Base::Tinyconfig,
            "defconfig" => Base::Defconfig,
            p => Base::File(must_exist(field, p)?),
        })
    };
    let parse_fragments = |fs: &[String], field: &str| -> Result<Vec<PathBuf>> {
        fs.iter().enumerate().map(|(i, f)| must_exist(&format!("{field}[{i}]"), f)).collect()
    };
    let source = parse_source(&raw.kernel.source, "kernel.source")?;
    let base = parse_base(&raw.kernel.base, "kernel.base")?;
    let fragments = parse_fragments(&raw.kernel.fragments, "kernel.fragments")?;
    let kernel = KernelSection { source, base, fragments };

    if raw.variants.is_empty() {
        return Err(at("variants", "at least one is needed".into()));
    }
    let mut variants: Vec<Variant> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, v) in raw.variants.iter().enumerate() {
        let field = format!("variants[{i}]");
        // A path component of every cell.
        check_name("variant name", &v.name).map_err(|m| at(&format!("{field}.name"), m))?;
        if !names.insert(v.name.as_str()) {
            return Err(at(&format!("{field}.name"), format!("duplicate variant name {:?}", v.name)));
        }
        let mut vk = kernel.clone();
        if let Some(src) = &v.source {
            vk.source = parse_source(src, &format!("{field}.source"))?;
        }
        if let Some(b) = &v.base {
            vk.base = parse_base(b, &format!("{field}.base"))?;
        }
        if let Some(f) = &v.fragments {
            vk.fragments = parse_fragments(f, &format!("{field}.fragments"))?;
        }
        if let Some(rev) = &v.rev {
            if !matches!(vk.source, Source::Git { .. }) {
                return Err(at(&format!("{field}.rev"), "only a `git` source has revisions".into()));
            }
            check_rev(rev).map_err(|m| at(&format!("{field}.rev"), m))?;
        }
        let mut patches = Vec::new();
        for (j, p) in v.patches.iter().enumerate() {
            patches.push(must_exist(&format!("{field}.patches[{j}]"), p)?);
        }
        variants.push(Variant { name: v.name.clone(), kernel: vk, patches, rev: v.rev.clone() });
    }

    let s = Scenario { name: raw.name, file: file.to_path_buf(), kernel, variants, run: raw.run, expect: raw.expect };
    s.check_run().map_err(|(field, msg)| at(&field, msg))?;
    Ok(s)
}

/// A git revision is handed to git: not empty, not an option, one word.
fn check_rev(rev: &str) -> Result<(), String> {
    match rev.is_empty() || rev.starts_with('-') || rev.chars().any(|c| c.is_whitespace() || c.is_control()) {
        true => Err(format!("{rev:?} is not a revision (empty, an option, or with spaces)")),
        false => Ok(()),
    }
}

impl Scenario {
    /// The `run` and `expect` sections within [`limits`], as (field, what is wrong).
    fn check_run(&self) -> Result<(), (String, String)> {
        let r = &self.run;
        /// An expectation's value must be one the matrix has, or it never applies.
        fn listed<T: PartialEq + std::fmt::Display>(
            field: String,
            given: Option<T>,
            axis: &[T],
            list: &str,
        ) -> Result<(), (String, String)> {
            match given {
                Some(v) if !axis.contains(&v) => Err((field, format!("{v} is not in {list}"))),
                _ => Ok(()),
            }
        }
        /// An axis: at least one value, each once (a repeated value repeats cell ids).
        fn axis<T: PartialEq + std::fmt::Display>(field: &str, items: &[T]) -> Result<(), (String, String)> {
            if items.is_empty() {
                return Err((field.into(), "at least one is needed".into()));
            }
            match (1..items.len()).find(|&i| items[..i].contains(&items[i])) {
                Some(i) => Err((format!("{field}[{i}]"), format!("{} is already listed", items[i]))),
                None => Ok(()),
            }
        }
        axis("run.backends", &r.backends)?;
        axis("run.modes", &r.modes)?;
        axis("run.filesystems", &r.filesystems)?;
        axis("run.mappings", &r.mappings)?;
        let workloads: Vec<WorkloadName> = r.workloads.iter().map(|w| w.name).collect();
        axis("run.workloads", &workloads).map_err(|(f, m)| (format!("{f}.name"), m))?;
        check_runs(r.runs).map_err(|m| ("run.runs".to_string(), m))?;
        for (i, w) in r.workloads.iter().enumerate() {
            let field = |key: &str| format!("run.workloads[{i}].{key}");
            let unused = match w.name.has_passes() {
                true => w.seconds.map(|_| ("seconds", "passes")),
                false => w.passes.map(|_| ("passes", "seconds")),
            };
            if let Some((given, used)) = unused {
                return Err((field(given), format!("{} runs for a number of `{used}`, not `{given}`", w.name)));
            }
            if w.name != WorkloadName::Storm {
                let given =
                    [("seed", w.seed.is_some()), ("ops", w.ops.is_some()), ("reruns", w.reruns.is_some()), ("budget", w.budget.is_some())];
                if let Some((key, _)) = given.iter().find(|(_, g)| *g) {
                    return Err((field(key), format!("only storm takes `{key}`, not {}", w.name)));
                }
            }
            if w.ops.as_ref().is_some_and(|o| o.is_empty()) {
                return Err((field("ops"), "at least one is needed (leave `ops` out for all of them)".into()));
            }
            if let Some(n) = w.reruns.filter(|&n| n > limits::MAX_RERUNS) {
                return Err((field("reruns"), format!("{n} is not from 0 to {}", limits::MAX_RERUNS)));
            }
            if let Some(b) = &w.budget {
                match humantime::parse_duration(b) {
                    Ok(d) if (1..=limits::MAX_STORM_BUDGET).contains(&d.as_secs()) => {}
                    Ok(_) => return Err((field("budget"), format!("{b} is not from 1s to {}h", limits::MAX_STORM_BUDGET / 3600))),
                    Err(e) => return Err((field("budget"), format!("{b}: {e} (e.g. 10m)"))),
                }
            }
            w.spec().check().map_err(|(key, msg)| (field(key), msg))?;
        }
        let per_mode = |m: &Mode| match m {
            Mode::Fsdax => r.filesystems.len() as u64,
            Mode::Devdax => 1,
        };
        let cells = [self.variants.len(), r.backends.len(), r.mappings.len(), r.workloads.len()].iter().map(|&n| n as u64).product::<u64>()
            * r.modes.iter().map(per_mode).sum::<u64>();
        if cells > limits::MAX_CELLS_PER_RUN {
            return Err(("run".into(), format!("{cells} cells per run, more than {}", limits::MAX_CELLS_PER_RUN)));
        }
        let names: std::collections::HashSet<&str> = self.variants.iter().map(|v| v.name.as_str()).collect();
        let known = |field: String, v: &Option<String>| match v {
            Some(v) if !names.contains(v.as_str()) => Err((field, format!("no variant is named {v:?}"))),
            _ => Ok(()),
        };
        for (i, x) in r.exclude.iter().enumerate() {
            known(format!("run.exclude[{i}].variant"), &x.variant)?;
        }
        for (i, e) in self.expect.iter().enumerate() {
            let field = |key: &str| format!("expect[{i}].{key}");
            known(field("variant"), &e.variant)?;
            listed(field("backend"), e.backend, &r.backends, "run.backends")?;
            listed(field("mode"), e.mode, &r.modes, "run.modes")?;
            listed(field("fs"), e.fs, &r.filesystems, "run.filesystems")?;
            listed(field("mapping"), e.mapping, &r.mappings, "run.mappings")?;
            listed(field("workload"), e.workload, &workloads, "run.workloads")?;
            if e.fs.is_some() && (e.mode == Some(Mode::Devdax) || !r.modes.contains(&Mode::Fsdax)) {
                return Err((field("fs"), "a filesystem selects fsdax cells, and this entry has none".into()));
            }
            if e.kind.is_some() && e.outcome != Outcome::Fail {
                return Err((field("kind"), "a kind goes with `outcome: FAIL` only".into()));
            }
        }
        Ok(())
    }
}

impl Scenario {
    /// `run --seed N`: every storm workload of the scenario runs from `seed`.
    /// Bad input when `seed` is out of range or `only` selects no storm cell.
    pub fn override_seed(&mut self, seed: u64, only: &Filter) -> Result<()> {
        if seed > limits::MAX_SEED {
            return Err(bad_input(format!("--seed {seed}: not from 0 to {}", limits::MAX_SEED)));
        }
        for w in self.run.workloads.iter_mut().filter(|w| w.name == WorkloadName::Storm) {
            w.seed = Some(seed);
        }
        match self.cells(only, Some(1)).iter().any(|c| c.workload.name == WorkloadName::Storm) {
            true => Ok(()),
            false => Err(bad_input(format!("--seed {seed}: {}: the selection has no storm workload", self.file.display()))),
        }
    }

    /// The variants named in `only` (all when empty); an unknown name is bad input.
    pub(crate) fn select(&self, only: &[String]) -> Result<Vec<&Variant>> {
        if only.is_empty() {
            return Ok(self.variants.iter().collect());
        }
        only.iter()
            .map(|n| {
                self.variants.iter().find(|v| &v.name == n).ok_or_else(|| {
                    let names: Vec<&str> = self.variants.iter().map(|v| v.name.as_str()).collect();
                    bad_input(format!("--variant {n}: {} has no such variant (it has: {})", self.file.display(), names.join(", ")))
                })
            })
            .collect()
    }
}

/// One VM-run of the matrix.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cell {
    /// The variant (kernel) the cell boots.
    pub variant: String,
    /// How the pmem is emulated.
    pub backend: Backend,
    /// `fsdax` (a DAX filesystem) or `devdax` (/dev/daxX.Y).
    pub mode: Mode,
    /// fsdax only; a devdax cell carries the scenario's first filesystem, unused.
    pub fs: Fs,
    /// The page size the workload maps with.
    pub mapping: Mapping,
    /// The workload the agent runs, with its parameters.
    pub workload: Workload,
    /// Which repetition of the cell, from 1 to `runs`.
    pub run: u32,
    /// How guest time runs in this cell's boot (cells of different timing never share one).
    pub timing: Timing,
}

/// Which cell: the one type every name of a cell is spelled from, and
/// that filters select (`Filter::matches`), for a [`Cell`] of the
/// matrix (`Cell::key`) and a stored result
/// ([`crate::results::CellResult::key`]) alike. Keys are equal when they
/// name the same cell of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey<'a> {
    /// The variant's name.
    pub variant: &'a str,
    /// `memmap` or `nvdimm`.
    pub backend: &'a str,
    /// Not in the names: a devdax cell's `fs` says it.
    pub mode: &'a str,
    /// The filesystem, or `devdax` for a devdax cell (see `Cell::fs_axis`).
    pub fs: &'a str,
    /// `pte` or `pmd`.
    pub mapping: &'a str,
    /// The workload's name.
    pub workload: &'a str,
    /// The repetition, from 1.
    pub run: u32,
}

impl CellKey<'_> {
    /// `fixed/memmap-ext4-pte-dio-read/run1`: unique in a run, and the
    /// cell's directory in it (path-safe: every part is a checked name).
    pub fn id(&self) -> String {
        format!("{}/{}/run{}", self.variant, self.axes(), self.run)
    }
    /// `memmap-ext4-pte-dio-read`: what variants are compared on (variant and run left out).
    pub(crate) fn axes(&self) -> String {
        format!("{}-{}-{}-{}", self.backend, self.fs, self.mapping, self.workload)
    }
    /// `fixed/memmap-ext4-pte-dio-read`: the cell across runs and nights (run left out).
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.variant, self.axes())
    }
    /// `fixed/memmap-ext4-pte`: a row of report.html's matrix (workload and run left out).
    pub(crate) fn row(&self) -> String {
        format!("{}/{}-{}-{}", self.variant, self.backend, self.fs, self.mapping)
    }
}

impl Cell {
    pub(crate) fn key(&self) -> CellKey<'_> {
        CellKey {
            variant: &self.variant,
            backend: self.backend.as_str(),
            mode: self.mode.as_str(),
            fs: self.fs_axis(),
            mapping: self.mapping.as_str(),
            workload: self.workload.name.as_str(),
            run: self.run,
        }
    }
    /// The filesystem for fsdax cells, `devdax` for devdax cells (which have none).
    pub(crate) fn fs_axis(&self) -> &'static str {
        match self.mode {
            Mode::Fsdax => self.fs.as_str(),
            Mode::Devdax => "devdax",
        }
    }
}

impl Filter {
    /// Parses `variant=fixed,backend=nvdimm,fs=xfs,mapping=pte,workload=dio-read`.
    pub fn parse(s: &str) -> Result<Filter> {
        let mut f = Filter::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| bad_input(format!("--only {s}: `{part}` is not key=value")))?;
            let (k, v) = (k.trim(), v.trim());
            let bad = |e: kregress_agent::config::ConfigError| bad_input(format!("--only {s}: {k}={v}: {e}"));
            match k {
                "variant" => f.variant = Some(v.to_string()),
                "backend" => f.backend = Some(v.parse().map_err(bad)?),
                "fs" => f.fs = Some(v.parse().map_err(bad)?),
                "mode" => f.mode = Some(v.parse().map_err(bad)?),
                "mapping" => f.mapping = Some(v.parse().map_err(bad)?),
                "workload" => f.workload = Some(v.parse().map_err(bad)?),
                _ => return Err(bad_input(format!("--only {s}: unknown key `{k}` (variant, backend, mode, fs, mapping, workload)"))),
            }
        }
        Ok(f)
    }

    /// Whether it selects every cell.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether the cell `k` names is selected: a filesystem selects fsdax
    /// cells only (a devdax key's `fs` is `devdax`, no filesystem's name).
    pub(crate) fn matches(&self, k: &CellKey) -> bool {
        self.variant.as_ref().is_none_or(|v| v == k.variant)
            && self.backend.is_none_or(|b| b.as_str() == k.backend)
            && self.mode.is_none_or(|m| m.as_str() == k.mode)
            && self.fs.is_none_or(|f| f.as_str() == k.fs)
            && self.mapping.is_none_or(|m| m.as_str() == k.mapping)
            && self.workload.is_none_or(|w| w.as_str() == k.workload)
    }
}

impl Expect {
    pub(crate) fn filter(&self) -> Filter {
        Filter {
            variant: self.variant.clone(),
            backend: self.backend,
            mode: self.mode,
            fs: self.fs,
            mapping: self.mapping,
            workload: self.workload,
        }
    }
}

impl Scenario {
    /// The matrix: variants × backends × filesystems × mappings × workloads ×
    /// runs, minus the scenario's `exclude`, keeping those `only` selects.
    pub fn cells(&self, only: &Filter, runs: Option<u32>) -> Vec<Cell> {
        let mut out = Vec::new();
        for v in &self.variants {
            for &backend in &self.run.backends {
                for &mode in &self.run.modes {
                    // devdax has no filesystem: one pass over the other axes.
                    let filesystems = match mode {
                        Mode::Fsdax => &self.run.filesystems[..],
                        Mode::Devdax => &self.run.filesystems[..self.run.filesystems.len().min(1)],
                    };
                    for &fs in filesystems {
                        for &mapping in &self.run.mappings {
                            for w in &self.run.workloads {
                                for run in 1..=runs.unwrap_or(self.run.runs) {
                                    let timing = w.timing.or(self.run.timing).unwrap_or(Timing::default_for(w.name));
                                    let c = Cell { variant: v.name.clone(), backend, mode, fs, mapping, workload: w.clone(), run, timing };
                                    if only.matches(&c.key()) && !self.run.exclude.iter().any(|x| x.matches(&c.key())) {
                                        out.push(c);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project dir with kernel-configs/ and one fragment and patch.
    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kernel-configs")).unwrap();
        std::fs::create_dir_all(d.path().join("scenarios/patches")).unwrap();
        std::fs::write(d.path().join("kernel-configs/a.config"), "CONFIG_X=y\n").unwrap();
        std::fs::write(d.path().join("scenarios/patches/p.patch"), "").unwrap();
        d
    }

    const GOOD: &str = "name: t
kernel:
  source: { debian: linux-source-6.1 }
  base: tinyconfig
  fragments: [kernel-configs/a.config]
variants:
  - { name: stock, patches: [] }
  - { name: fixed, patches: [scenarios/patches/p.patch] }
";

    fn err(d: &tempfile::TempDir, text: &str) -> String {
        let f = d.path().join("scenarios/t.yaml");
        let e = parse(&f, text).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn good_scenario_loads_with_resolved_paths() {
        let d = project();
        let s = parse(&d.path().join("scenarios/t.yaml"), GOOD).unwrap();
        assert_eq!(s.kernel.source, Source::Debian("linux-source-6.1".into()));
        assert_eq!(s.kernel.base, Base::Tinyconfig);
        assert_eq!(s.variants.len(), 2);
        assert_eq!(s.variants[1].patches[0], d.path().join("scenarios/patches/p.patch"));
        assert_eq!(s.kernel.fragments[0], d.path().join("kernel-configs/a.config"));
    }

    #[test]
    fn unknown_key_names_file_line_and_field() {
        let d = project();
        let e = err(&d, &GOOD.replace("  base: tinyconfig", "  base: tinyconfig\n  bsae: x"));
        assert!(e.contains("t.yaml:5:"), "{e}");
        assert!(e.contains("unknown field `bsae`"), "{e}");
    }

    #[test]
    fn keys_holding_a_newline_are_quoted_on_one_line() {
        let d = project();
        // serde_yaml quotes an unknown key raw; the duplicate-key lint spells the path.
        let unknown = err(&d, &format!("{GOOD}\"x\\ny\": 1\n"));
        assert!(unknown.contains("unknown field `x\\ny`"), "{unknown}");
        let dup = err(&d, &GOOD.replace("  base: tinyconfig", "  base: tinyconfig\n  \"a\\nb\": 1\n  \"a\\nb\": 2"));
        assert!(dup.contains("t.yaml:6: kernel.a\\nb: duplicate key (first at line 5)"), "{dup}");
        for e in [unknown, dup] {
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn wrong_type_is_reported_with_line() {
        let d = project();
        let e = err(&d, &GOOD.replace("fragments: [kernel-configs/a.config]", "fragments: 7"));
        assert!(e.contains("t.yaml:5:"), "{e}");
        assert!(e.contains("fragments"), "{e}");
    }

    #[test]
    fn missing_patch_file_names_line_and_field() {
        let d = project();
        let e = err(&d, &GOOD.replace("patches/p.patch", "patches/nope.patch"));
        assert!(e.contains("t.yaml:8:"), "{e}");
        assert!(e.contains("variants[1].patches[0]"), "{e}");
        assert!(e.contains("nope.patch"), "{e}");
    }

    #[test]
    fn missing_fragment_names_field() {
        let d = project();
        let e = err(&d, &GOOD.replace("a.config", "b.config"));
        assert!(e.contains("t.yaml:5: kernel.fragments[0]"), "{e}");
    }

    #[test]
    fn duplicate_variant_names_are_rejected_at_the_second() {
        let d = project();
        let e = err(&d, &GOOD.replace("name: fixed", "name: stock"));
        assert!(e.contains("t.yaml:8:"), "{e}");
        assert!(e.contains("duplicate variant name \"stock\""), "{e}");
    }

    #[test]
    fn source_must_be_exactly_one_kind() {
        let d = project();
        let e = err(&d, &GOOD.replace("{ debian: linux-source-6.1 }", "{ debian: a, path: /b }"));
        assert!(e.contains("t.yaml:3: kernel.source"), "{e}");
        let e = err(&d, &GOOD.replace("{ debian: linux-source-6.1 }", "{ git: /x }"));
        assert!(e.contains("needs `rev`"), "{e}");
    }

    #[test]
    fn variant_rev_needs_git_source() {
        let d = project();
        let e = err(&d, &GOOD.replace("{ name: stock, patches: [] }", "{ name: stock, rev: v1 }"));
        assert!(e.contains("variants[0].rev"), "{e}");
    }

    #[test]
    fn a_variant_may_bring_its_own_kernel() {
        let d = project();
        std::fs::write(d.path().join("kernel-configs/b.config"), "CONFIG_Y=y\n").unwrap();
        let text = GOOD.replace(
            "  - { name: fixed, patches: [scenarios/patches/p.patch] }",
            "  - { name: deb6.12, source: { debian: linux-source-6.12 }, fragments: [kernel-configs/b.config] }",
        );
        let s = parse(&d.path().join("scenarios/t.yaml"), &text).unwrap();
        assert_eq!(s.variants[0].kernel, s.kernel, "no override: the scenario's kernel");
        let v = &s.variants[1];
        assert_eq!(v.name, "deb6.12");
        assert_eq!(v.kernel.source, Source::Debian("linux-source-6.12".into()));
        assert_eq!(v.kernel.base, Base::Tinyconfig, "base inherited");
        assert_eq!(v.kernel.fragments, [d.path().join("kernel-configs/b.config")]);
        // Errors name the variant's field and line.
        let e = err(&d, &text.replace("{ debian: linux-source-6.12 }", "{ debian: a, path: /b }"));
        assert!(e.contains("t.yaml:8: variants[1].source: give exactly one"), "{e}");
        let e = err(&d, &text.replace("kernel-configs/b.config", "kernel-configs/nope.config"));
        assert!(e.contains("t.yaml:8: variants[1].fragments[0]: no such file"), "{e}");
        let e = err(&d, &text.replace("source: { debian: linux-source-6.12 }", "rev: v6.12"));
        assert!(e.contains("variants[1].rev: only a `git` source"), "{e}");
        let long = "a".repeat(limits::MAX_NAME + 1);
        for bad in ["..", ".hidden", "a/b", "", "a$(id)", &long] {
            let e = err(&d, &text.replace("name: deb6.12", &format!("name: {bad:?}")));
            assert!(e.contains("variants[1].name"), "{bad}: {e}");
        }
    }

    #[test]
    fn scenario_names_follow_the_name_rule() {
        // The name becomes the run directory and is read back from run.json.
        let d = project();
        for bad in ["\"\"", "\"a b\"", "\"../x\"", "\"x$(id)\""] {
            let e = err(&d, &GOOD.replace("name: t", &format!("name: {bad}")));
            assert!(e.contains("t.yaml:1: name: ") && e.contains("is not a name"), "{bad}: {e}");
        }
    }

    #[test]
    fn devdax_cells_have_no_filesystem_axis() {
        let d = project();
        let f = d.path().join("scenarios/t.yaml");
        let text = format!("{GOOD}run:\n  modes: [fsdax, devdax]\n  filesystems: [ext4, xfs]\n  workloads: [{{ name: dio-read }}]\n");
        let s = parse(&f, &text).unwrap();
        let ids: Vec<String> = s.cells(&Filter::parse("variant=stock").unwrap(), None).iter().map(|c| c.key().id()).collect();
        assert_eq!(
            ids,
            ["stock/memmap-ext4-pte-dio-read/run1", "stock/memmap-xfs-pte-dio-read/run1", "stock/memmap-devdax-pte-dio-read/run1"]
        );
        // A cell's result has the cell's key (`run --resume` finds done cells by it), and each spelling.
        for c in s.cells(&Filter::parse("variant=stock").unwrap(), None) {
            let r = crate::results::CellResult::new(&c, crate::outcome::Outcome::Pass, PathBuf::new());
            assert_eq!(r.key(), c.key());
        }
        let devdax = &s.cells(&Filter::parse("variant=stock,mode=devdax").unwrap(), None)[0];
        let k = devdax.key();
        assert_eq!(
            [k.axes(), k.name(), k.row()],
            ["memmap-devdax-pte-dio-read", "stock/memmap-devdax-pte-dio-read", "stock/memmap-devdax-pte"]
        );
        // fs= selects fsdax cells only; mode= selects the mode.
        let n = |f: &str| s.cells(&Filter::parse(f).unwrap(), None).len();
        assert_eq!(n("variant=stock,fs=ext4"), 1);
        assert_eq!(n("variant=stock,mode=devdax"), 1);
        assert_eq!(n("variant=stock,mode=fsdax"), 2);
        let e = Filter::parse("variant=stock, mode=hugetlb").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--only variant=stock, mode=hugetlb: mode=hugetlb: unknown Mode \"hugetlb\" (expected one of: fsdax, devdax)"
        );
        // A devdax cell boots alone: the mode is part of the boot.
        let cells = s.cells(&Filter::parse("variant=stock").unwrap(), None);
        let refs: Vec<&Cell> = cells.iter().collect();
        assert_eq!(crate::run::boot_groups(&refs).len(), 3);
    }

    #[test]
    fn an_expectation_selects_results_as_a_filter_selects_cells() {
        use crate::outcome::FailKind;
        use crate::results::CellResult;
        let d = project();
        let text = format!(
            "{GOOD}run:\n  modes: [fsdax, devdax]\n  filesystems: [ext4, xfs]\nexpect:\n  - {{ variant: stock, fs: xfs, outcome: FAIL, kind: WARN }}\n  - {{ variant: fixed, mode: devdax, outcome: SKIP }}\n"
        );
        let s = parse(&d.path().join("scenarios/t.yaml"), &text).unwrap();
        let warned = |c: &Cell| CellResult { kind: Some(FailKind::Warn), ..CellResult::new(c, Outcome::Fail, PathBuf::new()) };
        let passed = |c: &Cell| CellResult::new(c, Outcome::Pass, PathBuf::new());
        let mut seen = Vec::new();
        for c in s.cells(&Filter::default(), None) {
            let (fail_ok, pass_ok) = (crate::run::as_expected(&s, &warned(&c)), crate::run::as_expected(&s, &passed(&c)));
            seen.push(format!("{} {fail_ok} {pass_ok}", c.key().id()));
        }
        assert_eq!(
            seen,
            [
                "stock/memmap-ext4-pte-dio-read/run1 false true",
                "stock/memmap-xfs-pte-dio-read/run1 true false",
                // fs: xfs selects no devdax cell.
                "stock/memmap-devdax-pte-dio-read/run1 false true",
                "fixed/memmap-ext4-pte-dio-read/run1 false true",
                "fixed/memmap-xfs-pte-dio-read/run1 false true",
                // SKIP expected: a PASS is not.
                "fixed/memmap-devdax-pte-dio-read/run1 false false",
            ]
        );
    }

    #[test]
    fn timing_defaults_per_workload_and_overrides() {
        let d = project();
        let f = d.path().join("scenarios/t.yaml");
        let text = format!("{GOOD}run:\n  workloads:\n    - {{ name: dio-read }}\n    - {{ name: truncate-during-dio }}\n    - {{ name: dio-write, timing: wall }}\n");
        let s = parse(&f, &text).unwrap();
        let t: Vec<(WorkloadName, Timing)> =
            s.cells(&Filter::default(), None).iter().filter(|c| c.variant == "stock").map(|c| (c.workload.name, c.timing)).collect();
        assert_eq!(
            t,
            [
                (WorkloadName::DioRead, Timing::Icount),
                (WorkloadName::TruncateDuringDio, Timing::Wall),
                (WorkloadName::DioWrite, Timing::Wall)
            ]
        );
        // run.timing sets the default; a workload's own timing still wins.
        let s = parse(&f, &text.replace("run:\n", "run:\n  timing: icount\n")).unwrap();
        let t: Vec<Timing> = s.cells(&Filter::default(), None).iter().filter(|c| c.variant == "stock").map(|c| c.timing).collect();
        assert_eq!(t, [Timing::Icount, Timing::Icount, Timing::Wall]);
        let e = err(&d, &text.replace("timing: wall", "timing: fast"));
        assert!(e.contains("t.yaml:13: run.workloads[2].timing: unknown variant `fast`") && e.contains("icount"), "{e}");
    }

    #[test]
    fn storm_workloads_are_checked_by_field() {
        let d = project();
        let f = d.path().join("scenarios/t.yaml");
        let text = format!("{GOOD}run:\n  workloads:\n    - {{ name: dio-read }}\n    - {{ name: storm, seconds: 30, threads: 3, seed: 7, ops: [truncate, dio-read-fast] }}\n");
        let s = parse(&f, &text).unwrap();
        let spec = s.run.workloads[1].spec();
        assert_eq!((spec.seed, spec.seconds, spec.threads), (7, 30, 3));
        assert_eq!(spec.ops, [StormOp::Truncate, StormOp::DioReadFast]);
        assert_eq!(s.run.workloads[1].storm_reruns(), DEFAULT_STORM_RERUNS);
        assert_eq!(s.run.workloads[1].storm_budget(), None);
        let b = parse(&f, &text.replace("seed: 7", "seed: 7, budget: 10m")).unwrap();
        assert_eq!(b.run.workloads[1].storm_budget(), Some(std::time::Duration::from_secs(600)));
        for (from, to, want) in [
            ("dio-read-fast]", "dio-read-fats]", "t.yaml:12: run.workloads[1].ops[1]: unknown variant `dio-read-fats`"),
            ("seed: 7", "seed: 9007199254740992", "t.yaml:12: run.workloads[1].seed: 9007199254740992 is not from 0 to 9007199254740991"),
            ("seed: 7", "seed: -1", "t.yaml:12: run.workloads[1].seed: invalid type: integer `-1`, expected u64"),
            ("ops: [truncate, dio-read-fast]", "ops: []", "t.yaml:12: run.workloads[1].ops: at least one is needed"),
            ("ops: [truncate, dio-read-fast]", "ops: [punch, punch]", "t.yaml:12: run.workloads[1].ops: punch is listed twice"),
            ("seed: 7", "seed: 7, reruns: 21", "t.yaml:12: run.workloads[1].reruns: 21 is not from 0 to 20"),
            ("seed: 7", "seed: 7, passes: 2", "t.yaml:12: run.workloads[1].passes: storm runs for a number of `seconds`"),
            (
                "{ name: dio-read }",
                "{ name: dio-read, seed: 3 }",
                "t.yaml:11: run.workloads[0].seed: only storm takes `seed`, not dio-read",
            ),
            ("{ name: dio-read }", "{ name: dio-read, ops: [punch] }", "t.yaml:11: run.workloads[0].ops: only storm takes `ops`"),
            ("{ name: dio-read }", "{ name: dio-read, budget: 10m }", "t.yaml:11: run.workloads[0].budget: only storm takes `budget`"),
            ("seed: 7", "seed: 7, budget: soon", "t.yaml:12: run.workloads[1].budget: soon: "),
            ("seed: 7", "seed: 7, budget: 0s", "t.yaml:12: run.workloads[1].budget: 0s is not from 1s to 24h"),
            ("seed: 7", "seed: 7, budget: 25h", "t.yaml:12: run.workloads[1].budget: 25h is not from 1s to 24h"),
        ] {
            let e = err(&d, &text.replace(from, to));
            assert!(e.contains(want), "{to}: {e}");
        }
    }

    #[test]
    fn run_seed_overrides_every_storm_and_needs_one() {
        let d = project();
        let f = d.path().join("scenarios/t.yaml");
        let text = format!("{GOOD}run:\n  workloads:\n    - {{ name: dio-read }}\n    - {{ name: storm, seed: 7 }}\n");
        let mut s = parse(&f, &text).unwrap();
        s.override_seed(42, &Filter::default()).unwrap();
        assert_eq!(s.run.workloads[1].spec().seed, 42);
        assert_eq!(s.run.workloads[0].spec().seed, 0);
        let only_dio = Filter::parse("workload=dio-read").unwrap();
        let e = s.override_seed(42, &only_dio).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--seed 42: ") && e.to_string().ends_with("t.yaml: the selection has no storm workload"), "{e}");
        let e = s.override_seed(1 << 53, &Filter::default()).unwrap_err();
        assert!(e.to_string().contains("not from 0 to 9007199254740991"), "{e}");
    }

    #[test]
    fn the_repository_scenarios_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut n = 0;
        for e in walkdir::WalkDir::new(&dir) {
            let f = e.unwrap().into_path();
            if f.extension().is_some_and(|x| x == "yaml") {
                let s = load(&f).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.variants.is_empty(), "{}", f.display());
                n += 1;
            }
        }
        assert!(n >= 17, "{n} scenarios");
    }
}
