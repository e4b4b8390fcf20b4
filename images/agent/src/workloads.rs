//! The workloads: O_DIRECT between the raw pmem block device and a MAP_SHARED
//! mapping of a file on the DAX filesystem, so that the block layer pins
//! ZONE_DEVICE pages through get_user_pages().

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kregress_agent::{FailKind, Gup, Mapping, Message, Mode, WorkloadKind, WorkloadSpec};

use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

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
        Failure { kind: FailKind::IoError, errno: Some(errno), detail: detail.into(), wedged: false }
    }
    /// The data read back differs from what was written.
    pub fn corrupt(detail: impl Into<String>) -> Failure {
        Failure { kind: FailKind::DataCorruption, errno: None, detail: detail.into(), wedged: false }
    }
}

/// A workload that failed.
pub struct Failure {
    pub kind: FailKind,
    pub errno: Option<i32>,
    pub detail: String,
    /// Threads are stuck in the kernel: later work on this filesystem is pointless.
    pub wedged: bool,
}

impl From<SysError> for Failure {
    fn from(e: SysError) -> Self {
        Failure {
            kind: FailKind::IoError,
            errno: Some(e.errno),
            detail: e.to_string(),
            wedged: false,
        }
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
        WorkloadKind::DioRead => dio(spec, t, false),
        WorkloadKind::DioWrite => dio(spec, t, true),
        WorkloadKind::TruncateDuringDio if !t.is_file() => {
            Ok(Finished::skip("devdax: a device cannot be truncated or punched"))
        }
        WorkloadKind::TruncateDuringDio => truncate_during_dio(spec, t),
        WorkloadKind::UringFixed => uring::fixed(spec, t),
        WorkloadKind::UringDio => uring::dio(spec, t),
        WorkloadKind::RemoteGup => remote::run(spec, t),
        WorkloadKind::ForkCowDio => cow::run(spec, t),
        WorkloadKind::UnmapDuringDio => unmap::run(spec, t),
        WorkloadKind::Hwpoison => poison::run(spec, t),
        WorkloadKind::ReflinkDio if !t.is_file() => Ok(Finished::skip("devdax: reflink needs a filesystem")),
        WorkloadKind::ReflinkDio => reflink::run(spec, t),
        WorkloadKind::Vmsplice => splice::run(spec, t),
    }
}

mod cow;
mod poison;
mod reflink;
mod remote;
mod splice;
mod unmap;
mod uring;

const DEV_SEED: u64 = 0x6b72_6567_7265_7373; // "kregress"
const POISON: u64 = 0xdead_beef_0bad_f00d;

/// dio-read (`write` false): O_DIRECT read from the device into the mapping.
/// dio-write (`write` true): O_DIRECT write from the mapping to the device.
/// Every pass runs twice: pre-faulted mapping (GUP-fast), then a fresh, untouched one (slow GUP).
fn dio(spec: &WorkloadSpec, t: &Target, write: bool) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let file = Fd::open(&t.file, libc::O_RDWR)?;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let mut buf = Map::anon(MIB)?;
    let chunks = size / MIB;
    let words_per_chunk = (MIB / 8) as u64;

    if !write {
        // The device holds the data the reads must bring in.
        for c in 0..chunks {
            sys::fill_pattern(buf.words_mut(), DEV_SEED, c as u64 * words_per_chunk);
            sys::pwrite_exact(&dev, buf.ptr, MIB, (c * MIB) as u64)
                .map_err(|e| ctx(e, "writing the device pattern"))?;
        }
    }

    let mut rates: Vec<(Gup, f64)> = Vec::new();
    let mut pmd_note = String::new();
    let mut prefault_faults = 0;
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let run = format!("pass {pass} ({} GUP)", gup_str(gup));
            let seed = ((pass as u64) << 1 | (gup == Gup::Slow) as u64) + 1;
            // What the file holds before the transfer: the data to write, or poison to be overwritten.
            let fill_seed = if write {
                seed.wrapping_mul(0x1000_0001)
            } else {
                POISON ^ seed
            };
            let map = match gup {
                Gup::Fast => {
                    let mut m = Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?;
                    // Writing every word faults every page in: GUP-fast will find the PTEs/PMDs.
                    let f0 = sys::minor_faults();
                    sys::fill_pattern(m.words_mut(), fill_seed, 0);
                    if pass == 0 {
                        let faults = sys::minor_faults() - f0;
                        let pmd = faults <= (size / sys::PMD_SIZE) as u64 * 2;
                        prefault_faults = faults;
                        pmd_note = format!(
                            ", {} mapping ({faults} faults to prefault {} pages){}",
                            t.mapping,
                            size / 4096,
                            if t.mapping == Mapping::Pmd && !pmd {
                                ": PMD requested but the kernel mapped PTEs"
                            } else if pmd {
                                ": PMD-mapped"
                            } else {
                                ""
                            }
                        );
                    }
                    m
                }
                Gup::Slow if !t.is_file() => {
                    // A device-dax instance cannot be written with write(2): fill it
                    // through a mapping that is gone before the transfer, so the
                    // new mapping has no page table entries either.
                    let mut m = Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?;
                    sys::fill_pattern(m.words_mut(), fill_seed, 0);
                    drop(m);
                    Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?
                }
                Gup::Slow => {
                    // Through the file descriptor, not the mapping: the new mapping has no page
                    // table entries, so GUP-fast fails and the slow path faults them in.
                    for c in 0..chunks {
                        sys::fill_pattern(buf.words_mut(), fill_seed, c as u64 * words_per_chunk);
                        sys::pwrite_exact(&file, buf.ptr, MIB, (c * MIB) as u64)
                            .map_err(|e| ctx(e, &run))?;
                    }
                    Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?
                }
            };

            let t0 = Instant::now();
            // `threads` threads share the chunks round-robin; every call is watched.
            let what = if write {
                "O_DIRECT write from the DAX mapping"
            } else {
                "O_DIRECT read into the DAX mapping"
            };
            let nthreads = (spec.threads as usize).min(chunks).max(1);
            let base = map.ptr as usize;
            let dev_ref = &dev;
            let errors: Vec<SysError> = std::thread::scope(|sc| {
                let handles: Vec<_> = (0..nthreads)
                    .map(|i| {
                        sc.spawn(move || -> Result<(), SysError> {
                            for c in (i..chunks).step_by(nthreads) {
                                let off = c * MIB;
                                let p = (base + off) as *mut u8;
                                let _op = hang::op_begin(if write {
                                    "pwrite(O_DIRECT)"
                                } else {
                                    "pread(O_DIRECT)"
                                });
                                if write {
                                    sys::pwrite_exact(dev_ref, p, MIB, off as u64)?;
                                } else {
                                    sys::pread_exact(dev_ref, p, MIB, off as u64)?;
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().and_then(|r| r.err()))
                    .collect()
            });
            if let Some(e) = errors.into_iter().next() {
                return Err(ctx(e, &format!("{run}, {what}")).into());
            }
            let secs = t0.elapsed().as_secs_f64().max(1e-9);

            // Verify.
            let mismatch = if write {
                let mut m = None;
                for c in 0..chunks {
                    sys::pread_exact(&dev, buf.ptr, MIB, (c * MIB) as u64)
                        .map_err(|e| ctx(e, &format!("{run}, reading back")))?;
                    if let Some(x) =
                        sys::check_pattern(buf.words(), fill_seed, c as u64 * words_per_chunk)
                    {
                        let prev: Option<sys::Mismatch> = m.take();
                        m = Some(match prev {
                            None => x,
                            Some(mut p) => {
                                p.bad_words += x.bad_words;
                                p
                            }
                        });
                    }
                }
                m
            } else {
                sys::check_pattern(map.words(), DEV_SEED, 0)
            };
            if let Some(m) = mismatch {
                return Err(Failure {
                    kind: FailKind::DataCorruption,
                    errno: None,
                    detail: format!(
                        "{run}: {} of {} words differ after the transfer, first at byte {}: got {:#018x}, want {:#018x}",
                        m.bad_words,
                        size / 8,
                        m.first_word * 8,
                        m.got,
                        m.want
                    ),
                    wedged: false,
                });
            }
            let mbps = size as f64 / 1e6 / secs;
            sample(spec, pass, gup, mbps);
            rates.push((gup, mbps));
            // Unmap before the next run.
            drop(map);
        }
    }
    let avg = |g: Option<Gup>| avg(&rates, g);
    Ok(Finished {
        mb_per_s: Some(round2(avg(None))),
        ops_per_s: None,
        detail: format!(
            "{} passes of {} MiB verified; GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s{}{pmd_note}",
            spec.passes,
            size / MIB,
            avg(Some(Gup::Fast)),
            avg(Some(Gup::Slow)),
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters: [("prefault_faults".to_string(), prefault_faults)]
            .into_iter()
            .collect(),
        skipped: None,
    })
}

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
    SysError {
        what: format!("{what}: {}", e.what),
        errno: e.errno,
    }
}

/// Shared state of the truncate race.
struct Race {
    start: Instant,
    stop: AtomicBool,
    /// ms since start + 1 when the truncating thread entered its current call, 0 when idle.
    trunc_since: AtomicU64,
    trunc_op: Mutex<&'static str>,
    /// Per I/O thread: ms since start + 1 when its current pread began, 0 when idle.
    io_since: Vec<AtomicU64>,
    running: AtomicUsize,
    truncates: AtomicU64,
    punches: AtomicU64,
    ios: AtomicU64,
    partial: AtomicU64,
    efault: AtomicU64,
    errors: AtomicU64,
    first_errno: AtomicI32,
    first_error: Mutex<Option<String>>,
}

impl Race {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }
    fn error(&self, what: String, errno: i32) {
        if self.errors.fetch_add(1, SeqCst) == 0 {
            self.first_errno.store(errno, SeqCst);
            *self.first_error.lock().unwrap() = Some(what);
        }
    }
    fn counters(&self) -> BTreeMap<String, u64> {
        let mut c = BTreeMap::new();
        for (k, v) in [
            ("truncates", &self.truncates),
            ("punches", &self.punches),
            ("ios", &self.ios),
            ("partial", &self.partial),
            ("efault", &self.efault),
            ("errors", &self.errors),
        ] {
            c.insert(k.to_string(), v.load(SeqCst));
        }
        c
    }
}

/// O_DIRECT reads from the raw device into the file's mapping on `threads` threads,
/// while one thread loops ftruncate(0) / ftruncate(size) and punches holes. A call that
/// does not return within `hang` seconds is a HANG.
fn truncate_during_dio(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size;
    let file = Arc::new(Fd::open(&t.file, libc::O_RDWR)?);
    let dev = Arc::new(Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?);
    let nthreads = spec.threads as usize;
    let race = Arc::new(Race {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        trunc_since: AtomicU64::new(0),
        trunc_op: Mutex::new(""),
        io_since: (0..nthreads).map(|_| AtomicU64::new(0)).collect(),
        running: AtomicUsize::new(0),
        truncates: AtomicU64::new(0),
        punches: AtomicU64::new(0),
        ios: AtomicU64::new(0),
        partial: AtomicU64::new(0),
        efault: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_errno: AtomicI32::new(0),
        first_error: Mutex::new(None),
    });

    for i in 0..nthreads {
        let (race, file, dev, mapping) = (race.clone(), file.clone(), dev.clone(), t.mapping);
        race.running.fetch_add(1, SeqCst);
        std::thread::Builder::new()
            .name(format!("dio-{i}"))
            .spawn(move || {
                // The I/O thread never touches the mapping itself: after a truncate, GUP on
                // the range beyond EOF fails and pread returns EFAULT (counted), no SIGBUS.
                match Map::shared(&file, size as usize, mapping) {
                    Err(e) => race.error(e.to_string(), e.errno),
                    Ok(map) => {
                        let chunks = size as usize / MIB;
                        let mut c = i % chunks;
                        while !race.stop.load(SeqCst) {
                            let off = c * MIB;
                            race.io_since[i].store(race.now(), SeqCst);
                            let n = unsafe {
                                libc::pread(
                                    dev.0,
                                    map.ptr.add(off) as *mut libc::c_void,
                                    MIB,
                                    off as libc::off_t,
                                )
                            };
                            let errno = sys::errno();
                            race.io_since[i].store(0, SeqCst);
                            if n == MIB as isize {
                                race.ios.fetch_add(1, SeqCst);
                            } else if n >= 0 {
                                race.partial.fetch_add(1, SeqCst);
                            } else if errno == libc::EFAULT {
                                race.efault.fetch_add(1, SeqCst);
                            } else {
                                race.error(
                                    format!(
                                        "pread({MIB} bytes at {off}) into the DAX mapping: {}",
                                        sys::errno_name(errno)
                                    ),
                                    errno,
                                );
                            }
                            c = (c + 1) % chunks;
                        }
                    }
                }
                race.running.fetch_sub(1, SeqCst);
            })
            .map_err(|e| Failure {
                kind: FailKind::IoError,
                errno: e.raw_os_error(),
                detail: format!("spawn: {e}"),
                wedged: false,
            })?;
    }
    {
        let (race, file) = (race.clone(), file.clone());
        race.running.fetch_add(1, SeqCst);
        std::thread::Builder::new()
            .name("truncate".into())
            .spawn(move || {
                let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
                let mut i = 0u64;
                let op = |name: &'static str, f: &dyn Fn() -> sys::SysResult<()>| {
                    *race.trunc_op.lock().unwrap() = name;
                    race.trunc_since.store(race.now(), SeqCst);
                    let r = f();
                    race.trunc_since.store(0, SeqCst);
                    r
                };
                while !race.stop.load(SeqCst) {
                    let r = op("ftruncate(0)", &|| sys::ftruncate(&file, 0))
                        .and_then(|_| op("ftruncate(size)", &|| sys::ftruncate(&file, size)));
                    match r {
                        Ok(()) => {
                            race.truncates.fetch_add(1, SeqCst);
                        }
                        Err(e) => {
                            race.error(e.to_string(), e.errno);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    i += 1;
                    if i.is_multiple_of(4) {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let off = (rng % (size / MIB as u64)) * MIB as u64;
                        match op("fallocate(PUNCH_HOLE)", &|| {
                            sys::punch_hole(&file, off, MIB as u64)
                        }) {
                            Ok(()) => {
                                race.punches.fetch_add(1, SeqCst);
                            }
                            Err(e) => race.error(e.to_string(), e.errno),
                        }
                    }
                }
                race.running.fetch_sub(1, SeqCst);
            })
            .map_err(|e| Failure {
                kind: FailKind::IoError,
                errno: e.raw_os_error(),
                detail: format!("spawn: {e}"),
                wedged: false,
            })?;
    }

    let hang_ms = t.hang as u64 * 1000;
    let run_for = Duration::from_secs(spec.seconds as u64);
    let mut stopped_at: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = race.now();
        let mut stuck: Option<(String, u64)> = None;
        let since = race.trunc_since.load(SeqCst);
        if since != 0 && now.saturating_sub(since) > hang_ms {
            stuck = Some((race.trunc_op.lock().unwrap().to_string(), now - since));
        }
        for s in &race.io_since {
            let since = s.load(SeqCst);
            if stuck.is_none() && since != 0 && now.saturating_sub(since) > hang_ms {
                stuck = Some(("pread".to_string(), now - since));
            }
        }
        if let Some((op, waited_ms)) = stuck {
            // Stacks first, while the other threads are still where the hang left them.
            let waited = Duration::from_millis(waited_ms);
            hang::report_hang("workload", spec.name(), &op, waited);
            race.stop.store(true, SeqCst);
            let c = race.counters();
            return Err(Failure {
                kind: FailKind::Hang,
                errno: None,
                detail: format!(
                    "{op} did not return within {} s ({:.1} s into the run; {} truncates, {} punches, {} I/Os, {} EFAULT before it)",
                    t.hang,
                    (now - waited_ms) as f64 / 1000.0,
                    c["truncates"],
                    c["punches"],
                    c["ios"],
                    c["efault"]
                ),
                wedged: true,
            });
        }
        if stopped_at.is_none() && race.start.elapsed() >= run_for {
            race.stop.store(true, SeqCst);
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some() && race.running.load(SeqCst) == 0 {
            break;
        }
    }
    let elapsed = stopped_at
        .map(|s| s - race.start)
        .unwrap_or_else(|| race.start.elapsed())
        .as_secs_f64();
    let c = race.counters();
    // Calls that did work; the fast EFAULT failures while the file is short do not count.
    let ops = c["truncates"] + c["punches"] + c["ios"] + c["partial"];
    if c["errors"] > 0 {
        let errno = race.first_errno.load(SeqCst);
        return Err(Failure {
            kind: FailKind::IoError,
            errno: Some(errno),
            detail: format!(
                "{} failed calls, first: {}",
                c["errors"],
                race.first_error.lock().unwrap().clone().unwrap_or_default()
            ),
            wedged: false,
        });
    }
    Ok(Finished {
        mb_per_s: None,
        ops_per_s: Some(round2(ops as f64 / elapsed)),
        detail: format!(
            "{:.1} s: {} truncates, {} punches, {} I/Os ({} partial, {} EFAULT beyond EOF), no call blocked over {} s",
            elapsed, c["truncates"], c["punches"], c["ios"], c["partial"], c["efault"], t.hang
        ),
        counters: c,
        skipped: None,
    })
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
