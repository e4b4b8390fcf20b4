//! The workloads: O_DIRECT between the raw pmem block device and a MAP_SHARED
//! mapping of a file on the DAX filesystem, so that the block layer pins
//! ZONE_DEVICE pages through get_user_pages().

use std::collections::BTreeMap;

use kregress_agent::{FailKind, Gup, Mapping, Message, Mode, WorkloadKind, WorkloadSpec};

use crate::sys::{Fd, Map, SysError};

/// A workload that ran to the end.
#[derive(Default)]
pub struct Finished {
    pub mb_per_s: Option<f64>,
    pub ops_per_s: Option<f64>,
    pub detail: String,
    pub counters: BTreeMap<String, u64>,
    /// The kernel, its config or the mode lacks what the workload needs: the
    /// result is SKIP with this reason (not PASS, not MISS).
    pub skipped: Option<String>,
}

impl Finished {
    /// A SKIP with its reason.
    pub fn skip(reason: impl Into<String>) -> Finished {
        Finished { skipped: Some(reason.into()), ..Default::default() }
    }
}

impl Failure {
    /// A refusal or failure of one call: IO_ERROR with the errno in the detail.
    pub fn io(errno: i32, detail: impl Into<String>) -> Failure {
        Failure { kind: FailKind::IoError, errno: Some(errno), detail: detail.into(), wedged: false, counters: Default::default() }
    }
    /// The data read back differs from what was written.
    pub fn corrupt(detail: impl Into<String>) -> Failure {
        Failure { kind: FailKind::DataCorruption, errno: None, detail: detail.into(), wedged: false, counters: Default::default() }
    }
}

/// A workload that failed.
pub struct Failure {
    pub kind: FailKind,
    pub errno: Option<i32>,
    pub detail: String,
    /// Threads are stuck in the kernel: later work on this filesystem is pointless.
    pub wedged: bool,
    /// What was counted before it failed (a storm's ops per kind), for the result.
    pub counters: BTreeMap<String, u64>,
}

impl From<SysError> for Failure {
    fn from(e: SysError) -> Self {
        Failure { kind: FailKind::IoError, errno: Some(e.errno), detail: e.to_string(), wedged: false, counters: Default::default() }
    }
}

/// What a workload needs to know.
pub struct Target {
    /// fsdax: a file on the DAX filesystem, already `spec.size` bytes long
    /// with written blocks. devdax: the character device /dev/daxX.Y (at
    /// least `spec.size` bytes; it cannot be read or written with
    /// read(2)/write(2), truncated or punched — only mapped).
    pub file: String,
    pub mode: Mode,
    /// Raw (non-DAX) block device for O_DIRECT.
    pub raw_dev: String,
    pub mapping: Mapping,
    /// Seconds one blocking operation may take.
    pub hang: u32,
    /// The clock counts instructions (icount): rates are per virtual second.
    pub virtual_time: bool,
}

impl Target {
    /// Opens the DAX file or device read-write.
    pub fn open(&self) -> Result<Fd, SysError> {
        Fd::open(&self.file, libc::O_RDWR)
    }
    /// A fresh MAP_SHARED mapping of the first `len` bytes, untouched (no page table entries).
    pub fn map_shared(&self, fd: &Fd, len: usize) -> Result<Map, SysError> {
        Map::shared(fd, len, self.mapping)
    }
    /// Whether the DAX side is a file (fsdax) rather than a device (devdax).
    pub fn is_file(&self) -> bool {
        self.mode == Mode::Fsdax
    }
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    match spec.kind {
        WorkloadKind::DioRead => dio::run(spec, t, false),
        WorkloadKind::DioWrite => dio::run(spec, t, true),
        WorkloadKind::TruncateDuringDio if !t.is_file() => Ok(Finished::skip("devdax: a device cannot be truncated or punched")),
        WorkloadKind::TruncateDuringDio => truncate::run(spec, t),
        WorkloadKind::UringFixed => uring::fixed(spec, t),
        WorkloadKind::UringDio => uring::dio(spec, t),
        WorkloadKind::RemoteGup => remote::run(spec, t),
        WorkloadKind::ForkCowDio => cow::run(spec, t),
        WorkloadKind::UnmapDuringDio => unmap::run(spec, t),
        WorkloadKind::Hwpoison => poison::run(spec, t),
        WorkloadKind::ReflinkDio if !t.is_file() => Ok(Finished::skip("devdax: reflink needs a filesystem")),
        WorkloadKind::ReflinkDio => reflink::run(spec, t),
        WorkloadKind::Vmsplice => splice::run(spec, t),
        WorkloadKind::Storm => storm::run(spec, t),
    }
}

mod cow;
mod dio;
mod poison;
mod reflink;
mod remote;
mod splice;
mod storm;
mod truncate;
mod unmap;
mod uring;

const DEV_SEED: u64 = 0x6b72_6567_7265_7373; // "kregress"
const POISON: u64 = 0xdead_beef_0bad_f00d;

/// Emits one pass's MB/s for a GUP path (the runner's throughput samples).
fn sample(spec: &WorkloadSpec, pass: u32, gup: Gup, mbps: f64) {
    Message::Sample { workload: spec.name().into(), pass, gup, mb_per_s: Some(round2(mbps)), ops_per_s: None }.emit();
}

/// Mean MB/s of the passes of one GUP path (`None`: all of them).
fn avg(rates: &[(Gup, f64)], g: Option<Gup>) -> f64 {
    let v: Vec<f64> = rates.iter().filter(|(x, _)| g.is_none_or(|g| *x == g)).map(|(_, r)| *r).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn gup_str(g: Gup) -> &'static str {
    match g {
        Gup::Fast => "fast",
        Gup::Slow => "slow",
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn ctx(e: SysError, what: &str) -> SysError {
    SysError { what: format!("{what}: {}", e.what), errno: e.errno }
}

/// dio-read, dio-write and truncate-during-dio run on the host against plain
/// files (the file system of the temp dir must take O_DIRECT: ext4, xfs, or
/// tmpfs since Linux 6.6): no DAX, but the same calls, the same patterns and
/// the same checks as in the guest.
#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 4 << 20;

    /// Temp files standing in for the DAX file and the raw pmem device, removed on drop.
    struct Files(Target);

    impl Files {
        fn new(name: &str) -> Files {
            let base = format!("{}/kregress-agent-{name}-{}", std::env::temp_dir().display(), std::process::id());
            let (file, raw_dev) = (format!("{base}.dat"), format!("{base}.dev"));
            for p in [&file, &raw_dev] {
                std::fs::write(p, vec![0u8; SIZE as usize]).unwrap();
            }
            Files(Target { file, mode: Mode::Fsdax, raw_dev, mapping: Mapping::Pte, hang: 10, virtual_time: false })
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0.file);
            let _ = std::fs::remove_file(&self.0.raw_dev);
        }
    }

    fn spec(kind: WorkloadKind) -> WorkloadSpec {
        WorkloadSpec { size: SIZE, passes: 2, seconds: 1, threads: 2, ..WorkloadSpec::new(kind) }
    }

    #[test]
    fn dio_moves_and_verifies_every_pass() {
        for kind in [WorkloadKind::DioRead, WorkloadKind::DioWrite] {
            let files = Files::new(kind.as_str());
            let f = run(&spec(kind), &files.0).unwrap_or_else(|e| panic!("{kind}: {}", e.detail));
            assert!(f.skipped.is_none(), "{kind}");
            assert!(f.mb_per_s.is_some_and(|r| r > 0.0), "{kind}: {:?}", f.mb_per_s);
            assert!(
                f.detail.starts_with("2 passes of 4 MiB verified; GUP-fast ") && f.detail.contains(" MB/s, pte mapping ("),
                "{kind}: {}",
                f.detail
            );
            assert!(f.counters["prefault_faults"] > 0, "{kind}: {:?}", f.counters);
        }
    }

    #[test]
    fn truncate_during_dio_counts_its_calls() {
        let files = Files::new("truncate");
        let f = run(&spec(WorkloadKind::TruncateDuringDio), &files.0).unwrap_or_else(|e| panic!("{}", e.detail));
        let c = &f.counters;
        assert!(c["truncates"] > 0 && c["ios"] + c["partial"] + c["efault"] > 0 && c["errors"] == 0, "{c:?}");
        assert!(f.ops_per_s.is_some_and(|r| r > 0.0), "{:?}", f.ops_per_s);
        assert!(f.detail.ends_with("no call blocked over 10 s"), "{}", f.detail);
    }
}
