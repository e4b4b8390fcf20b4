//! Guest configuration, carried on the kernel command line.
//!
//! ```text
//! kregress.backend=memmap kregress.fs=ext4 kregress.mapping=pte kregress.hang=10 kregress.teardown=30
//! kregress.workloads=dio-read:size=64M:passes=2,truncate-during-dio:seconds=30:threads=2
//! ```
//!
//! * `kregress.backend` — `memmap` (legacy `memmap=N!S` pmem, /dev/pmem0 + /dev/pmem1) or
//!   `nvdimm` (QEMU NVDIMMs; namespace0.0 is switched to fsdax, namespace1.0 stays raw).
//! * `kregress.mode` — `fsdax` (default) or `devdax`: namespace0.0 becomes /dev/dax0.0
//!   (2 MiB aligned for `pmd`, 4 KiB for `pte`) and the workloads map it instead of a file.
//! * `kregress.fs` — `ext4` or `xfs`, made on pmem0 and mounted `-o dax` (fsdax only).
//! * `kregress.mapping` — `pte` (MADV_NOHUGEPAGE) or `pmd` (2 MiB aligned + MADV_HUGEPAGE);
//!   a workload may override it with `mapping=`.
//! * `kregress.hang` — seconds one blocking operation (ftruncate, ...) may take before it is a HANG.
//! * `kregress.teardown` — seconds the teardown (umount, namespace disable) may take.
//! * `kregress.workloads` — comma-separated workloads, each `name[:key=value]*` with keys
//!   `size` (bytes, suffix K/M/G), `passes`, `seconds`, `threads`, `deadline` (seconds for the
//!   whole workload), `mapping`.
//! * `kregress.nonce` — the boot's nonce, drawn by the runner, which every protocol line
//!   carries (see [`crate::protocol`]); read with [`nonce_of`] before anything else.
//!
//! Parameters with a dot are not passed to init by the kernel (they look like module
//! parameters), so the agent reads /proc/cmdline. Everything else on the line is ignored;
//! an unknown `kregress.*` key or a bad value is an error.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
/// Where the guest's pmem comes from.
pub enum Backend {
    /// Legacy `memmap=N!S` pmem: /dev/pmem0 (DAX side) and /dev/pmem1 (raw).
    Memmap,
    /// QEMU NVDIMMs: namespace0.0 is the DAX side, namespace1.0 stays raw.
    Nvdimm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
/// The filesystem made on the DAX side (fsdax) and mounted `-o dax`.
pub enum Fs {
    /// ext4.
    Ext4,
    /// XFS, with reflink (see [`mkfs_args`]).
    Xfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
/// The page size the workloads ask for when they map the DAX side.
pub enum Mapping {
    /// 4 KiB pages (MADV_NOHUGEPAGE).
    Pte,
    /// 2 MiB pages where the kernel can (a 2 MiB-aligned address and MADV_HUGEPAGE).
    Pmd,
}

/// How namespace0.0 (the DAX side) is exposed: a DAX filesystem on
/// /dev/pmemN (`fsdax`) or the character device /dev/daxX.Y (`devdax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A DAX filesystem on /dev/pmemN: the workloads map a file on it.
    #[default]
    Fsdax,
    /// The character device /dev/daxX.Y: the workloads map the device.
    Devdax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
/// The workload families, by the names `kregress.workloads=` and scenarios use.
pub enum WorkloadKind {
    /// O_DIRECT read from /dev/pmem1 into the DAX mapping (GUP for write).
    DioRead,
    /// O_DIRECT write from the DAX mapping to /dev/pmem1 (GUP for read).
    DioWrite,
    /// O_DIRECT reads into the mapping while another thread truncates / punches the file.
    TruncateDuringDio,
    /// io_uring IORING_REGISTER_BUFFERS of the DAX mapping (FOLL_PIN|FOLL_LONGTERM),
    /// then READ_FIXED/WRITE_FIXED against /dev/pmem1 where the kernel allows it.
    UringFixed,
    /// io_uring O_DIRECT READ/WRITE (not fixed) with many I/Os in flight: pages
    /// are released in completion context, many at once.
    UringDio,
    /// Remote GUP: process_vm_readv/writev into a child's DAX mapping
    /// (pin_user_pages_remote) and /proc/PID/mem (access_remote_vm).
    RemoteGup,
    /// fork() while O_DIRECT reads into a MAP_PRIVATE DAX mapping (COW of pinned pages).
    ForkCowDio,
    /// munmap / MADV_DONTNEED / mremap of the mapping while O_DIRECT into it is in flight.
    UnmapDuringDio,
    /// MADV_HWPOISON of one page of the DAX mapping (memory_failure_dev_pagemap).
    Hwpoison,
    /// XFS reflink (FICLONE/FICLONERANGE) of the DAX file and writes into shared
    /// extents while O_DIRECT pins their pages.
    ReflinkDio,
    /// vmsplice of the DAX mapping into a pipe, then splice to /dev/pmem1.
    Vmsplice,
    /// Seeded random interleavings of [`StormOp`]s on several threads over one
    /// DAX file, its mappings and /dev/pmem1, with a shadow of the contents.
    Storm,
}

/// The operations a `storm` draws from, by the names `ops=` and scenarios use.
/// The one list: the agent runs them, the runner validates scenarios with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StormOp {
    /// O_DIRECT read from /dev/pmem1 into the pre-faulted shared mapping (GUP-fast).
    DioReadFast,
    /// O_DIRECT read from /dev/pmem1 into a fresh mapping (slow GUP).
    DioReadSlow,
    /// O_DIRECT write from the pre-faulted shared mapping to /dev/pmem1 (GUP-fast).
    DioWriteFast,
    /// O_DIRECT write from a fresh mapping to /dev/pmem1 (slow GUP).
    DioWriteSlow,
    /// ftruncate to a drawn length below the size, then back to the size.
    Truncate,
    /// fallocate(PUNCH_HOLE) of a drawn range.
    Punch,
    /// fallocate(0) of a drawn range, past EOF at times (new extents, a longer file).
    Extend,
    /// pwrite(2) of a pattern into the file (the DAX read/write path).
    FileWrite,
    /// munmap of a drawn range of the shared mapping, mapped again in place.
    Munmap,
    /// mremap of a drawn range of the shared mapping away and back.
    Mremap,
    /// MADV_DONTNEED of a drawn range of the shared mapping.
    Dontneed,
    /// fork(); the child stores a pattern through the shared mapping and exits.
    Fork,
    /// process_vm_writev into the shared mapping (remote GUP, the agent's own mm).
    VmWrite,
    /// process_vm_readv out of the shared mapping.
    VmRead,
    /// io_uring O_DIRECT READ from /dev/pmem1 into the mapping (not fixed).
    UringRead,
    /// io_uring IORING_REGISTER_BUFFERS of the mapping (FOLL_LONGTERM), READ_FIXED where allowed.
    UringFixed,
    /// vmsplice of the mapping into a pipe, spliced to /dev/pmem1.
    Splice,
    /// msync(MS_SYNC) of a drawn range of the mapping.
    Msync,
    /// fsync of the file.
    Fsync,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The name on the kernel command line and in scenarios.
            pub fn as_str(&self) -> &'static str { match self { $(Self::$v => $s),* } }
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$(Self::$v),*];
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $t {
            type Err = ConfigError;
            fn from_str(s: &str) -> Result<Self, ConfigError> {
                match s { $($s => Ok(Self::$v),)* _ => Err(ConfigError(format!(
                    "unknown {} {:?} (expected one of: {})", stringify!($t), s, [$($s),*].join(", ")))) }
            }
        }
    };
}
str_enum!(Backend { Memmap => "memmap", Nvdimm => "nvdimm" });
str_enum!(Fs { Ext4 => "ext4", Xfs => "xfs" });
str_enum!(Mapping { Pte => "pte", Pmd => "pmd" });
str_enum!(Mode { Fsdax => "fsdax", Devdax => "devdax" });
str_enum!(WorkloadKind {
    DioRead => "dio-read",
    DioWrite => "dio-write",
    TruncateDuringDio => "truncate-during-dio",
    UringFixed => "uring-fixed",
    UringDio => "uring-dio",
    RemoteGup => "remote-gup",
    ForkCowDio => "fork-cow-dio",
    UnmapDuringDio => "unmap-during-dio",
    Hwpoison => "hwpoison",
    ReflinkDio => "reflink-dio",
    Vmsplice => "vmsplice",
    Storm => "storm",
});
str_enum!(StormOp {
    DioReadFast => "dio-read-fast",
    DioReadSlow => "dio-read-slow",
    DioWriteFast => "dio-write-fast",
    DioWriteSlow => "dio-write-slow",
    Truncate => "truncate",
    Punch => "punch",
    Extend => "extend",
    FileWrite => "file-write",
    Munmap => "munmap",
    Mremap => "mremap",
    Dontneed => "dontneed",
    Fork => "fork",
    VmWrite => "vm-write",
    VmRead => "vm-read",
    UringRead => "uring-read",
    UringFixed => "uring-fixed",
    Splice => "splice",
    Msync => "msync",
    Fsync => "fsync",
});

impl StormOp {
    /// Needs a file (fsdax): truncate, punch, extend, pwrite and fsync have no devdax meaning.
    pub fn needs_file(self) -> bool {
        use StormOp::*;
        matches!(self, Truncate | Punch | Extend | FileWrite | Fsync)
    }
}

impl WorkloadKind {
    /// Timed by passes (a throughput figure per pass) rather than by seconds.
    pub fn has_passes(self) -> bool {
        use WorkloadKind::*;
        matches!(self, DioRead | DioWrite | UringFixed | UringDio | RemoteGup | ForkCowDio | Vmsplice | Hwpoison | ReflinkDio)
    }
}

/// A bad `kregress.*` parameter or workload: what is wrong, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

/// Largest `size`: half a memmap pmem device (512 MiB), so that the
/// filesystem on it holds the test file with room for its metadata.
pub const MAX_SIZE: u64 = 256 << 20;
/// Most `passes`: 20 passes of [`MAX_SIZE`] (each GUP-fast then slow GUP)
/// stay well inside the 120 s deadline of a throughput workload.
pub const MAX_PASSES: u32 = 20;
/// Longest `seconds` of a race workload: one hour (the host adds a minute
/// of deadline on top).
pub const MAX_SECONDS: u32 = 3600;
/// Most `threads`: the guest has one or two vCPUs and 512 MiB of memory.
pub const MAX_THREADS: u32 = 16;
/// Largest storm `seed`: 2^53 - 1, so that every JSON reader keeps it exact.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// One workload with every parameter resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// The workload family.
    pub kind: WorkloadKind,
    /// Bytes of the test file / transfer (multiple of 2 MiB for pmd, of 1 MiB otherwise).
    pub size: u64,
    /// Throughput workloads: passes (each runs GUP-fast then slow GUP).
    pub passes: u32,
    /// Race workloads: duration in seconds.
    pub seconds: u32,
    /// Race workloads: number of I/O threads.
    pub threads: u32,
    /// Seconds the whole workload may take before it is a HANG.
    pub deadline: u32,
    /// Overrides the global mapping.
    pub mapping: Option<Mapping>,
    /// Storm: the seed of every thread's op stream (see [`storm_stream_seed`]).
    pub seed: u64,
    /// Storm: the ops drawn from, as given; empty means all of them.
    pub ops: Vec<StormOp>,
}

/// The seed of storm thread `thread`'s PRNG: a function of the storm's seed
/// and the thread's index only, so every thread's op stream is regenerated
/// from (seed, threads, ops) alone (the draws never depend on outcomes).
pub fn storm_stream_seed(seed: u64, thread: u32) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (thread as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

impl WorkloadSpec {
    /// Defaults for a kind.
    pub fn new(kind: WorkloadKind) -> Self {
        match kind {
            // Pass 0 is warm-up; the runner takes the median of the other two
            // per GUP path (two, so that a disturbed pass shows in the samples).
            WorkloadKind::DioRead | WorkloadKind::DioWrite => {
                WorkloadSpec { kind, size: 64 << 20, passes: 3, seconds: 0, threads: 1, deadline: 120, mapping: None, seed: 0, ops: vec![] }
            }
            WorkloadKind::TruncateDuringDio => {
                WorkloadSpec { kind, size: 16 << 20, passes: 0, seconds: 30, threads: 1, deadline: 90, mapping: None, seed: 0, ops: vec![] }
            }
            WorkloadKind::UnmapDuringDio => {
                WorkloadSpec { kind, size: 16 << 20, passes: 0, seconds: 20, threads: 2, deadline: 90, mapping: None, seed: 0, ops: vec![] }
            }
            // Two reader threads, so that forks find reads in flight on more than one chunk.
            WorkloadKind::ForkCowDio => {
                WorkloadSpec { kind, size: 16 << 20, passes: 2, seconds: 0, threads: 2, deadline: 120, mapping: None, seed: 0, ops: vec![] }
            }
            // Three threads for 60 s from seed 1, every op.
            WorkloadKind::Storm => WorkloadSpec {
                kind,
                size: 16 << 20,
                passes: 0,
                seconds: 60,
                threads: 3,
                deadline: 120,
                mapping: None,
                seed: 1,
                ops: vec![],
            },
            // The other families: a few verified passes over 16 MiB.
            _ => {
                WorkloadSpec { kind, size: 16 << 20, passes: 2, seconds: 0, threads: 1, deadline: 120, mapping: None, seed: 0, ops: vec![] }
            }
        }
    }

    /// Storm: the ops it draws from (`ops`, or every [`StormOp`] when none are named).
    pub fn storm_ops(&self) -> Vec<StormOp> {
        match self.ops.is_empty() {
            true => StormOp::ALL.to_vec(),
            false => self.ops.clone(),
        }
    }

    /// The workload's name: its family's.
    pub fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    fn parse(s: &str) -> Result<Self, ConfigError> {
        let mut parts = s.split(':');
        let kind: WorkloadKind = parts.next().unwrap_or("").parse()?;
        let mut w = WorkloadSpec::new(kind);
        for kv in parts {
            let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError(format!("workload {s:?}: expected key=value, got {kv:?}")))?;
            let num = |v: &str| -> Result<u32, ConfigError> {
                v.parse().map_err(|_| ConfigError(format!("workload {s:?}: {k}={v:?} is not a number")))
            };
            match k {
                "size" => w.size = parse_size(v).map_err(|e| ConfigError(format!("workload {s:?}: {e}")))?,
                "passes" => w.passes = num(v)?,
                "seconds" => w.seconds = num(v)?,
                "threads" => w.threads = num(v)?,
                "deadline" => w.deadline = num(v)?,
                "mapping" => w.mapping = Some(v.parse()?),
                "seed" if kind == WorkloadKind::Storm => {
                    w.seed = v.parse().map_err(|_| ConfigError(format!("workload {s:?}: seed={v:?} is not a number")))?
                }
                "ops" if kind == WorkloadKind::Storm => {
                    w.ops = v
                        .split('+')
                        .map(|o| o.parse().map_err(|e: ConfigError| ConfigError(format!("workload {s:?}: ops: {e}"))))
                        .collect::<Result<_, _>>()?;
                }
                "seed" | "ops" => return Err(ConfigError(format!("workload {s:?}: {k}: only storm takes {k}"))),
                _ => return Err(ConfigError(format!("workload {s:?}: unknown key {k:?}"))),
            }
        }
        w.validate()?;
        Ok(w)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|(key, msg)| ConfigError(format!("workload {}: {key}: {msg}", self.name())))
    }

    /// The first parameter out of its bounds, as (parameter, what is wrong).
    /// The one rule for a workload's parameters: the runner applies it when
    /// it validates a scenario, the agent when it reads its command line.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.size == 0 || !self.size.is_multiple_of(1 << 20) || self.size > MAX_SIZE {
            let max = format_size(MAX_SIZE);
            return Err(("size", format!("{} is not a multiple of 1M from 1M to {max}", format_size(self.size))));
        }
        let within = |key: &'static str, v: u32, max: u32| match (1..=max).contains(&v) {
            true => Ok(()),
            false => Err((key, format!("{v} is not from 1 to {max}"))),
        };
        within("threads", self.threads, MAX_THREADS)?;
        within("deadline", self.deadline, u32::MAX)?;
        if self.seed > MAX_SEED {
            return Err(("seed", format!("{} is not from 0 to {MAX_SEED}", self.seed)));
        }
        if let Some(i) = (1..self.ops.len()).find(|&i| self.ops[..i].contains(&self.ops[i])) {
            return Err(("ops", format!("{} is listed twice", self.ops[i])));
        }
        match self.kind.has_passes() {
            true => within("passes", self.passes, MAX_PASSES),
            false => within("seconds", self.seconds, MAX_SECONDS),
        }
    }
}

impl fmt::Display for WorkloadSpec {
    /// Every parameter spelled out, so the line says exactly what ran.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:size={}", self.kind, format_size(self.size))?;
        if self.kind.has_passes() {
            write!(f, ":passes={}", self.passes)?;
        } else {
            write!(f, ":seconds={}", self.seconds)?;
        }
        write!(f, ":threads={}:deadline={}", self.threads, self.deadline)?;
        if let Some(m) = self.mapping {
            write!(f, ":mapping={m}")?;
        }
        if self.kind == WorkloadKind::Storm {
            write!(f, ":seed={}", self.seed)?;
            if !self.ops.is_empty() {
                let ops: Vec<&str> = self.ops.iter().map(|o| o.as_str()).collect();
                write!(f, ":ops={}", ops.join("+"))?;
            }
        }
        Ok(())
    }
}

/// Everything the agent needs to know, from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestConfig {
    /// Where the pmem comes from.
    pub backend: Backend,
    /// fsdax: `fs` on /dev/pmemN; devdax: /dev/daxX.Y, no filesystem.
    pub mode: Mode,
    /// The filesystem (fsdax).
    pub fs: Fs,
    /// The mapping of every workload that does not name its own.
    pub mapping: Mapping,
    /// Seconds a single blocking operation may take before it is reported as a HANG.
    pub hang: u32,
    /// Seconds the teardown may take.
    pub teardown: u32,
    /// Write the filesystem the runner made on the host with [`mkfs_args`]
    /// (shipped in the initramfs under [`premade_dir`]) onto pmem0 instead
    /// of running mkfs in the guest.
    pub premade: bool,
    /// The guest runs under QEMU's icount: its clock counts instructions, so
    /// every rate the agent prints is per virtual second and says so.
    pub virtual_time: bool,
    /// Milliseconds the agent waits after setup, before the first workload.
    /// Under icount the first seconds after boot slow the slow-GUP pass by
    /// about 1 % in some boots and not others (kernel background work whose
    /// timing differs between kernel builds); a wait lets it pass, and costs
    /// little host time because an idle icount guest skips ahead (sleep=off).
    pub settle_ms: u32,
    /// The workloads, in the order they run.
    pub workloads: Vec<WorkloadSpec>,
    /// The boot's nonce (empty: none), see [`crate::protocol`].
    pub nonce: String,
}

/// Where the initramfs holds the host-made filesystem for `fs`/`pmd`: files
/// named by their offset on the device in hex (`00849000.bin`).
pub fn premade_dir(fs: Fs, pmd: bool) -> String {
    format!("/fsimg/{}-{}", fs, if pmd { "pmd" } else { "pte" })
}

/// mkfs command and arguments (without the device) for `fs`; `pmd` asks for
/// 2 MiB-aligned allocations (ext4: stride/stripe_width of 512 blocks; XFS:
/// 2 MiB stripe unit). One recipe for the guest and for host-made images.
/// XFS is made with reflink=1: 6.1 mounts it with -o dax (COW on DAX since
/// 5.19), and reflink-dio needs it.
pub fn mkfs_args(fs: Fs, pmd: bool) -> (&'static str, Vec<&'static str>) {
    match fs {
        Fs::Ext4 if pmd => (
            "mkfs.ext4",
            vec!["-q", "-F", "-b", "4096", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,stride=512,stripe_width=512"],
        ),
        Fs::Ext4 => ("mkfs.ext4", vec!["-q", "-F", "-b", "4096", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"]),
        // Two AGs and a 4 KiB log stripe: with a 2 MiB stripe unit the
        // default layout wants a 64 MiB log that 512 MiB lacks.
        Fs::Xfs if pmd => {
            ("mkfs.xfs", vec!["-q", "-f", "-m", "reflink=1", "-b", "size=4096", "-d", "su=2m,sw=1,agcount=2", "-l", "su=4096"])
        }
        Fs::Xfs => ("mkfs.xfs", vec!["-q", "-f", "-m", "reflink=1", "-b", "size=4096"]),
    }
}

impl Default for GuestConfig {
    fn default() -> Self {
        GuestConfig {
            backend: Backend::Memmap,
            mode: Mode::Fsdax,
            fs: Fs::Ext4,
            mapping: Mapping::Pte,
            hang: 10,
            teardown: 30,
            premade: false,
            virtual_time: false,
            settle_ms: 0,
            workloads: vec![],
            nonce: String::new(),
        }
    }
}

impl GuestConfig {
    /// The `kregress.*` part of a kernel command line (no leading/trailing space).
    pub fn to_cmdline(&self) -> String {
        let mut s = format!(
            "kregress.backend={} kregress.fs={} kregress.mapping={} kregress.hang={} kregress.teardown={}",
            self.backend, self.fs, self.mapping, self.hang, self.teardown
        );
        if self.mode != Mode::Fsdax {
            s.push_str(&format!(" kregress.mode={}", self.mode));
        }
        if self.premade {
            s.push_str(" kregress.premade=1");
        }
        if self.virtual_time {
            s.push_str(" kregress.vtime=1");
        }
        if self.settle_ms > 0 {
            s.push_str(&format!(" kregress.settle={}", self.settle_ms));
        }
        if !self.workloads.is_empty() {
            let w: Vec<String> = self.workloads.iter().map(|w| w.to_string()).collect();
            s.push_str(" kregress.workloads=");
            s.push_str(&w.join(","));
        }
        if !self.nonce.is_empty() {
            s.push_str(" kregress.nonce=");
            s.push_str(&self.nonce);
        }
        s
    }

    /// Parse a whole kernel command line (e.g. the contents of /proc/cmdline).
    pub fn from_cmdline(cmdline: &str) -> Result<Self, ConfigError> {
        let mut c = GuestConfig::default();
        for tok in cmdline.split_whitespace() {
            let Some(rest) = tok.strip_prefix("kregress.") else {
                continue;
            };
            let (k, v) = rest.split_once('=').ok_or_else(|| ConfigError(format!("{tok:?}: expected kregress.key=value")))?;
            let secs = |v: &str| -> Result<u32, ConfigError> {
                match v.parse::<u32>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError(format!("{tok:?}: expected a positive number of seconds"))),
                }
            };
            match k {
                "backend" => c.backend = v.parse()?,
                "fs" => c.fs = v.parse()?,
                "mode" => c.mode = v.parse()?,
                "mapping" => c.mapping = v.parse()?,
                "hang" => c.hang = secs(v)?,
                "teardown" => c.teardown = secs(v)?,
                "premade" => c.premade = v == "1",
                "vtime" => c.virtual_time = v == "1",
                "settle" => {
                    c.settle_ms = v
                        .parse()
                        .ok()
                        .filter(|&ms| ms <= 600_000)
                        .ok_or_else(|| ConfigError(format!("{tok:?}: expected milliseconds (at most 600000)")))?
                }
                "nonce" if crate::protocol::is_nonce(v) => c.nonce = v.to_string(),
                "nonce" => return Err(ConfigError(format!("{tok:?}: expected 1 to {} letters and digits", crate::protocol::MAX_NONCE))),
                "workloads" => c.workloads = v.split(',').filter(|s| !s.is_empty()).map(WorkloadSpec::parse).collect::<Result<_, _>>()?,
                _ => return Err(ConfigError(format!("unknown parameter kregress.{k}"))),
            }
        }
        Ok(c)
    }

    /// Whether any workload maps with PMDs (the filesystem is then made for them).
    pub fn wants_pmd(&self) -> bool {
        self.workloads.iter().any(|w| self.mapping_for(w) == Mapping::Pmd)
    }

    /// Mapping a workload uses.
    pub fn mapping_for(&self, w: &WorkloadSpec) -> Mapping {
        w.mapping.unwrap_or(self.mapping)
    }
}

/// The boot's nonce on a kernel command line: the last `kregress.nonce=`, when it
/// is a valid nonce. The agent reads it before the rest of its configuration,
/// so that even a configuration error reaches the runner.
pub fn nonce_of(cmdline: &str) -> Option<&str> {
    cmdline.split_whitespace().filter_map(|t| t.strip_prefix("kregress.nonce=")).next_back().filter(|n| crate::protocol::is_nonce(n))
}

/// `64M` → 67108864. Suffixes K, M, G (powers of 1024), or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| ConfigError(format!("bad size {s:?} (e.g. 64M, 1G, 4096)")))
}

/// Largest exact suffix: 67108864 → "64M".
fn format_size(n: u64) -> String {
    for (shift, suf) in [(30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{suf}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_combination() {
        for &backend in Backend::ALL {
            for &fs in Fs::ALL {
                for &mapping in Mapping::ALL {
                    let mut w = WorkloadSpec::new(WorkloadKind::DioWrite);
                    w.mapping = Some(Mapping::Pmd);
                    w.size = 6 << 20;
                    let c = GuestConfig {
                        backend,
                        mode: if mapping == Mapping::Pmd { Mode::Devdax } else { Mode::Fsdax },
                        fs,
                        mapping,
                        hang: 7,
                        teardown: 40,
                        premade: backend == Backend::Memmap,
                        virtual_time: fs == Fs::Xfs,
                        settle_ms: if fs == Fs::Xfs { 2345 } else { 0 },
                        workloads: vec![WorkloadSpec::new(WorkloadKind::DioRead), w, WorkloadSpec::new(WorkloadKind::TruncateDuringDio)],
                        nonce: if fs == Fs::Xfs { "5f0c8a2e9b1d7c43".into() } else { String::new() },
                    };
                    let line = format!("BOOT_IMAGE=/bzImage console=ttyS0 memmap=512M!1G {} panic=-1", c.to_cmdline());
                    assert_eq!(GuestConfig::from_cmdline(&line).unwrap(), c, "{line}");
                }
            }
        }
        let c = GuestConfig::default();
        assert_eq!(GuestConfig::from_cmdline(&c.to_cmdline()).unwrap(), c);
        assert_eq!(GuestConfig::from_cmdline("console=ttyS0\n").unwrap(), c);
    }

    #[test]
    fn parses_the_short_form() {
        let c = GuestConfig::from_cmdline(
            "kregress.backend=nvdimm kregress.fs=xfs kregress.mapping=pmd \
             kregress.workloads=dio-read:size=64M:passes=2,truncate-during-dio:seconds=30:threads=2\n",
        )
        .unwrap();
        assert_eq!(c.backend, Backend::Nvdimm);
        assert_eq!(c.fs, Fs::Xfs);
        assert_eq!(c.mapping, Mapping::Pmd);
        assert_eq!(c.workloads.len(), 2);
        assert_eq!(c.workloads[0].size, 64 << 20);
        assert_eq!(c.workloads[0].passes, 2);
        assert_eq!(c.workloads[1].kind, WorkloadKind::TruncateDuringDio);
        assert_eq!(c.workloads[1].threads, 2);
        assert_eq!(c.workloads[1].seconds, 30);
        assert_eq!(c.workloads[1].to_string(), "truncate-during-dio:size=16M:seconds=30:threads=2:deadline=90");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "kregress.backend=pmem",
            "kregress.fs=btrfs",
            "kregress.colour=blue",
            "kregress.hang=0",
            "kregress.hang",
            "kregress.workloads=fio",
            "kregress.workloads=dio-read:size=3K",
            "kregress.workloads=dio-read:passes=0",
            "kregress.workloads=dio-read:speed=9",
            "kregress.workloads=dio-read:passes",
            "kregress.workloads=truncate-during-dio:threads=x",
            // The bounds of WorkloadSpec::check.
            "kregress.workloads=dio-read:size=512M",
            "kregress.workloads=dio-read:passes=21",
            "kregress.workloads=truncate-during-dio:seconds=4294967295",
            "kregress.workloads=truncate-during-dio:threads=17",
            "kregress.settle=-1",
            "kregress.settle=600001",
            "kregress.settle=1s",
            "kregress.nonce=",
            "kregress.nonce=5f0c-8a2e",
        ] {
            assert!(GuestConfig::from_cmdline(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn storm_takes_a_seed_and_an_op_mix() {
        let c = GuestConfig::from_cmdline("kregress.workloads=storm:seconds=20:threads=4:seed=77:ops=truncate+dio-read-fast").unwrap();
        let w = &c.workloads[0];
        assert_eq!((w.kind, w.seconds, w.threads, w.seed), (WorkloadKind::Storm, 20, 4, 77));
        assert_eq!(w.ops, vec![StormOp::Truncate, StormOp::DioReadFast]);
        assert_eq!(w.to_string(), "storm:size=16M:seconds=20:threads=4:deadline=120:seed=77:ops=truncate+dio-read-fast");
        assert_eq!(GuestConfig::from_cmdline(&c.to_cmdline()).unwrap(), c);
        // No ops: all of them, and the line says nothing.
        let d = GuestConfig::from_cmdline("kregress.workloads=storm").unwrap();
        assert_eq!((d.workloads[0].seed, d.workloads[0].storm_ops().len()), (1, StormOp::ALL.len()));
        assert_eq!(d.workloads[0].to_string(), "storm:size=16M:seconds=60:threads=3:deadline=120:seed=1");
        // Each error names its key.
        for (bad, key) in [
            ("storm:ops=truncate+fio", "ops: unknown StormOp \"fio\""),
            ("storm:ops=", "ops: unknown StormOp \"\""),
            ("storm:ops=punch+punch", "ops: punch is listed twice"),
            ("storm:seed=x", "seed=\"x\" is not a number"),
            ("storm:seed=9007199254740992", "seed: 9007199254740992 is not from 0 to 9007199254740991"),
            ("dio-read:seed=1", "seed: only storm takes seed"),
            ("truncate-during-dio:ops=punch", "ops: only storm takes ops"),
        ] {
            let e = GuestConfig::from_cmdline(&format!("kregress.workloads={bad}")).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn storm_streams_depend_on_seed_and_thread_only() {
        assert_eq!(storm_stream_seed(5, 2), storm_stream_seed(5, 2));
        let all: std::collections::BTreeSet<u64> = (0..4).flat_map(|s| (0..16).map(move |t| storm_stream_seed(s, t))).collect();
        assert_eq!(all.len(), 64);
    }

    #[test]
    fn the_nonce_is_read_before_the_rest() {
        // Even from a line whose configuration is bad.
        let line = "console=ttyS0 kregress.fs=btrfs kregress.nonce=5f0c8a2e9b1d7c43 panic=-1\n";
        assert_eq!(nonce_of(line), Some("5f0c8a2e9b1d7c43"));
        assert!(GuestConfig::from_cmdline(line).is_err());
        assert_eq!(nonce_of("kregress.nonce=a kregress.nonce=b"), Some("b"));
        assert_eq!(nonce_of("kregress.nonce=a-b"), None);
        assert_eq!(nonce_of("console=ttyS0"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(format_size(64 << 20), "64M");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(1000), "1000");
    }
}
