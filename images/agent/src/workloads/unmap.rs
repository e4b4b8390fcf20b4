//! unmap-during-dio: O_DIRECT into and out of a MAP_SHARED DAX mapping while another
//! thread unmaps, zaps and moves that mapping under the in-flight I/O.
//!
//! The mapping covers `size` bytes of the DAX file/device at a fixed address A. The
//! first 3/4 (the I/O region) start with an "original" pattern, the last 1/4 (the
//! reserve) with a fixed pattern the I/O never targets; /dev/pmem1 holds a device
//! pattern. `threads` I/O threads each own every n-th 256 KiB chunk of the I/O region
//! and loop pread(O_DIRECT) device -> A+off, pwrite(O_DIRECT) A+off -> device (same
//! offset on both sides; the I/O threads never load or store the mapping, they only
//! pass it to syscalls). One thread cycles through:
//! * munmap(A) + mmap(A, MAP_FIXED_NOREPLACE) of the same file range,
//! * madvise(MADV_DONTNEED) of a random page range,
//! * mremap(A -> B) and back (A held by a PROT_NONE placeholder in between),
//!
//! with a random pause of up to 1 ms after each, so that transfers get their pages
//! and are in flight when the next operation pulls the mapping from under them.
//!
//! MAP_FIXED_NOREPLACE rather than MAP_FIXED: were another mapping of this process
//! placed in the hole, it would be refused (and reported), not silently replaced.
//!
//! Kernel paths: get_user_pages_fast and the slow path's fault-in of DAX PTEs/PMDs
//! racing with unmap_region/zap_page_range (munmap, MADV_DONTNEED), move_page_tables
//! (move_huge_pmd on devmap PMDs) and dax fault/insert_pfn; the bio keeps its page
//! references (put in bio_release_pages) after the PTEs are gone.
//!
//! Oracle: every call must return a full transfer, a short one, or EFAULT (nothing
//! mapped at A when GUP ran); any other errno, a remap/zap/move call failing, or a
//! call blocking over `hang` seconds fails. Afterwards the reserve must hold its
//! pattern exactly, and every 4 KiB page of the I/O region, on the DAX side and on the
//! device, must be entirely the original or entirely the device pattern for its offset
//! (a chunk has one owner, so no two transfers touch a page at once; transfers move
//! whole pages): anything else is data landing at the wrong place or garbage.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kregress_agent::{FailKind, Mapping, WorkloadSpec};

use super::{ctx, round2, Failure, Finished, Target, DEV_SEED};
use crate::hang;
use crate::sys::{self, Fd, Map, MIB, PMD_SIZE};

const CHUNK: usize = 256 << 10;
const PAGE: usize = 4096;
/// The I/O region's content before the race.
const ORIG_SEED: u64 = 0x756e_6d61_705f_6f72; // "unmap_or"
/// The reserve's content, never targeted.
const RESV_SEED: u64 = 0x7265_7365_7276_6521; // "reserve!"

/// Shared state of the race.
struct Race {
    start: Instant,
    stop: AtomicBool,
    /// The file mapping's fixed address.
    a: usize,
    len: usize,
    /// ms since start + 1 when the remapping thread entered its current call, 0 when idle.
    remap_since: AtomicU64,
    remap_op: Mutex<&'static str>,
    /// Per I/O thread: ms since start + 1 when its current call began, 0 when idle.
    io_since: Vec<AtomicU64>,
    io_op: Vec<Mutex<&'static str>>,
    running: AtomicUsize,
    remaps: AtomicU64,
    dontneeds: AtomicU64,
    mremaps: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    partial: AtomicU64,
    efault: AtomicU64,
    errors: AtomicU64,
    first_errno: AtomicI32,
    first_error: Mutex<Option<String>>,
    /// Where the remapping thread left things: (file mapping's address or 0, placeholder at A).
    left: Mutex<(usize, bool)>,
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
        self.stop.store(true, SeqCst);
    }
    fn counters(&self) -> BTreeMap<String, u64> {
        [
            ("remaps", &self.remaps),
            ("dontneeds", &self.dontneeds),
            ("mremaps", &self.mremaps),
            ("reads", &self.reads),
            ("writes", &self.writes),
            ("partial", &self.partial),
            ("efault", &self.efault),
            ("errors", &self.errors),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.load(SeqCst)))
        .collect()
    }
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let align = if t.mapping == Mapping::Pmd { PMD_SIZE } else { CHUNK };
    let io_len = (size * 3 / 4) / align * align;
    if io_len < CHUNK || io_len >= size {
        return Err(Failure::io(libc::EINVAL, format!("size {size} too small for an I/O region and a reserve")));
    }
    let dax = Arc::new(t.open()?);
    let dev = Arc::new(Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?);
    prepare(&dax, &dev, t, size, io_len)?;

    let map = std::mem::ManuallyDrop::new(t.map_shared(&dax, size)?);
    let nthreads = (spec.threads as usize).clamp(1, io_len / CHUNK);
    let race = Arc::new(Race {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        a: map.ptr as usize,
        len: size,
        remap_since: AtomicU64::new(0),
        remap_op: Mutex::new(""),
        io_since: (0..nthreads).map(|_| AtomicU64::new(0)).collect(),
        io_op: (0..nthreads).map(|_| Mutex::new("")).collect(),
        running: AtomicUsize::new(0),
        remaps: AtomicU64::new(0),
        dontneeds: AtomicU64::new(0),
        mremaps: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        partial: AtomicU64::new(0),
        efault: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_errno: AtomicI32::new(0),
        first_error: Mutex::new(None),
        left: Mutex::new((map.ptr as usize, false)),
    });
    for i in 0..nthreads {
        let (race, dev) = (race.clone(), dev.clone());
        spawn(&race, format!("dio-{i}"), move |r| io_thread(r, &dev, i, nthreads, io_len))?;
    }
    {
        let (dax, mapping) = (dax.clone(), t.mapping);
        spawn(&race, "remap".into(), move |r| remap_thread(r, &dax, mapping))?;
    }

    let elapsed = watch(spec, t, &race)?;
    let (at, placeholder) = *race.left.lock().unwrap();
    unsafe {
        if at != 0 {
            libc::munmap(at as *mut libc::c_void, size);
        }
        if placeholder {
            libc::munmap(race.a as *mut libc::c_void, size);
        }
    }
    let c = race.counters();
    if c["errors"] > 0 {
        return Err(Failure {
            kind: FailKind::IoError,
            errno: Some(race.first_errno.load(SeqCst)),
            detail: format!("{} failed calls, first: {}", c["errors"], race.first_error.lock().unwrap().clone().unwrap_or_default()),
            wedged: false,
            counters: Default::default(),
        });
    }
    let pages = verify(&dax, &dev, t, size, io_len)?;
    let ops = c["reads"] + c["writes"] + c["partial"] + c["remaps"] + c["dontneeds"] + c["mremaps"];
    let mut counters = c.clone();
    counters.extend(pages.iter().map(|(k, v)| (k.to_string(), *v)));
    Ok(Finished {
        mb_per_s: None,
        ops_per_s: Some(round2(ops as f64 / elapsed)),
        detail: format!(
            "{:.1} s, {} threads: {} munmap+mmap, {} MADV_DONTNEED, {} mremap round trips under {} full reads, {} full writes, \
             {} short, {} EFAULT; no call blocked over {} s; reserve intact; DAX pages {} original/{} device data, \
             device pages {} original/{} device data, none mixed{}",
            elapsed,
            nthreads,
            c["remaps"],
            c["dontneeds"],
            c["mremaps"],
            c["reads"],
            c["writes"],
            c["partial"],
            c["efault"],
            t.hang,
            pages["dax_pages_orig"],
            pages["dax_pages_dev"],
            pages["dev_pages_orig"],
            pages["dev_pages_dev"],
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters,
        skipped: None,
    })
}

fn spawn(race: &Arc<Race>, name: String, f: impl FnOnce(&Race) + Send + 'static) -> Result<(), Failure> {
    let r = race.clone();
    race.running.fetch_add(1, SeqCst);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            f(&r);
            r.running.fetch_sub(1, SeqCst);
        })
        .map(|_| ())
        .map_err(|e| {
            race.running.fetch_sub(1, SeqCst);
            race.stop.store(true, SeqCst);
            Failure {
                kind: FailKind::IoError,
                errno: e.raw_os_error(),
                detail: format!("spawn: {e}"),
                wedged: false,
                counters: Default::default(),
            }
        })
}

/// The DAX side: original pattern in the I/O region, the reserve pattern after it
/// (written through a mapping: device-dax has no write(2)); the device: its pattern.
fn prepare(dax: &Fd, dev: &Fd, t: &Target, size: usize, io_len: usize) -> Result<(), Failure> {
    let mut m = t.map_shared(dax, size).map_err(|e| ctx(e, "mapping to prepare"))?;
    let w = m.words_mut();
    sys::fill_pattern(&mut w[..io_len / 8], ORIG_SEED, 0);
    sys::fill_pattern(&mut w[io_len / 8..], RESV_SEED, (io_len / 8) as u64);
    drop(m);
    let mut buf = Map::anon(MIB)?;
    for off in (0..io_len).step_by(MIB) {
        let n = MIB.min(io_len - off);
        sys::fill_pattern(&mut buf.words_mut()[..n / 8], DEV_SEED, (off / 8) as u64);
        sys::pwrite_exact(dev, buf.ptr, n, off as u64).map_err(|e| ctx(e, "writing the device pattern"))?;
    }
    Ok(())
}

/// Thread `i`: chunks i, i+n, ... of the I/O region, pread then pwrite each.
fn io_thread(race: &Race, dev: &Fd, i: usize, n: usize, io_len: usize) {
    let chunks = io_len / CHUNK;
    let mut c = i;
    while !race.stop.load(SeqCst) {
        let off = c * CHUNK;
        // Never dereferenced here: only the kernel touches A (GUP fails with EFAULT when unmapped).
        let p = (race.a + off) as *mut libc::c_void;
        for write in [false, true] {
            let name = if write { "pwrite(O_DIRECT) from the mapping" } else { "pread(O_DIRECT) into the mapping" };
            *race.io_op[i].lock().unwrap() = name;
            race.io_since[i].store(race.now(), SeqCst);
            let r = unsafe {
                if write {
                    libc::pwrite(dev.0, p, CHUNK, off as libc::off_t)
                } else {
                    libc::pread(dev.0, p, CHUNK, off as libc::off_t)
                }
            };
            let errno = sys::errno();
            race.io_since[i].store(0, SeqCst);
            if r == CHUNK as isize {
                if write { &race.writes } else { &race.reads }.fetch_add(1, SeqCst);
            } else if r >= 0 {
                race.partial.fetch_add(1, SeqCst);
            } else if errno == libc::EFAULT {
                race.efault.fetch_add(1, SeqCst);
            } else {
                race.error(format!("{name} ({CHUNK} bytes at {off}): {}", sys::errno_name(errno)), errno);
            }
        }
        c += n;
        if c >= chunks {
            c = i;
        }
    }
}

/// Cycles munmap+mmap, MADV_DONTNEED, mremap away and back until told to stop or a call fails.
fn remap_thread(race: &Race, dax: &Fd, mapping: Mapping) {
    let mut rng = sys::Rng::new(0x9e37_79b9_7f4a_7c15);
    // (file mapping's address or 0, PROT_NONE placeholder at A)
    let mut left = (race.a, false);
    let mut i = 0u64;
    while !race.stop.load(SeqCst) && remap_once(race, dax, mapping, i, &mut rng, &mut left) {
        i += 1;
        // Up to 1 ms with the mapping in place, so that reads and writes get their pages
        // and are in flight when the next operation pulls the mapping from under them.
        std::thread::sleep(Duration::from_micros(rng.next() % 1000));
    }
    *race.left.lock().unwrap() = left;
}

/// One operation of the cycle (`i` mod 3); false when a call failed (recorded).
fn remap_once(race: &Race, dax: &Fd, mapping: Mapping, i: u64, rng: &mut sys::Rng, left: &mut (usize, bool)) -> bool {
    let (a, len) = (race.a, race.len);
    let op = |name: &'static str, f: &mut dyn FnMut() -> Result<(), sys::SysError>| -> bool {
        *race.remap_op.lock().unwrap() = name;
        race.remap_since.store(race.now(), SeqCst);
        let r = f();
        race.remap_since.store(0, SeqCst);
        match r {
            Ok(()) => true,
            Err(e) => {
                race.error(e.to_string(), e.errno);
                false
            }
        }
    };
    match i % 3 {
        0 => {
            if !op("munmap", &mut || munmap(a, len)) {
                return false;
            }
            *left = (0, false);
            if !op("mmap(MAP_FIXED_NOREPLACE)", &mut || map_file_at(dax, a, len, mapping)) {
                return false;
            }
            *left = (a, false);
            race.remaps.fetch_add(1, SeqCst);
        }
        1 => {
            let r = rng.next();
            let pages = len / PAGE;
            let first = (r % pages as u64) as usize;
            let count = 1 + ((r >> 32) as usize % (pages - first).min(1024));
            if !op("madvise(MADV_DONTNEED)", &mut || madvise(a + first * PAGE, count * PAGE, libc::MADV_DONTNEED, "MADV_DONTNEED")) {
                return false;
            }
            race.dontneeds.fetch_add(1, SeqCst);
        }
        _ => {
            let mut b = 0;
            if !op("mmap(reserve B)", &mut || reserve(len, mapping).map(|r| b = r)) {
                return false;
            }
            if !op("mremap(A -> B)", &mut || mremap(a, b, len)) {
                unsafe { libc::munmap(b as *mut libc::c_void, len) };
                return false;
            }
            *left = (b, false);
            if !op("mmap(placeholder at A)", &mut || placeholder(a, len)) {
                return false;
            }
            *left = (b, true);
            if !op("mremap(B -> A)", &mut || mremap(b, a, len)) {
                return false;
            }
            *left = (a, false);
            race.mremaps.fetch_add(1, SeqCst);
        }
    }
    true
}

fn munmap(a: usize, len: usize) -> Result<(), sys::SysError> {
    if unsafe { libc::munmap(a as *mut libc::c_void, len) } != 0 {
        return Err(sys::last("munmap(A)"));
    }
    Ok(())
}

/// The file's first `len` bytes at exactly `a`, with the mapping's THP advice.
fn map_file_at(dax: &Fd, a: usize, len: usize, mapping: Mapping) -> Result<(), sys::SysError> {
    let p = unsafe {
        libc::mmap(a as *mut libc::c_void, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE, dax.0, 0)
    };
    if p == libc::MAP_FAILED {
        return Err(sys::last("mmap(MAP_SHARED|MAP_FIXED_NOREPLACE at A) (EEXIST: another mapping took the hole)"));
    }
    if p as usize != a {
        unsafe { libc::munmap(p, len) };
        return Err(sys::SysError { what: format!("mmap(MAP_FIXED_NOREPLACE at {a:#x}) returned {p:?}"), errno: libc::EEXIST });
    }
    match mapping {
        Mapping::Pte => madvise(a, len, libc::MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"),
        Mapping::Pmd => madvise(a, len, libc::MADV_HUGEPAGE, "MADV_HUGEPAGE"),
    }
}

pub(super) fn madvise(a: usize, len: usize, advice: libc::c_int, name: &str) -> Result<(), sys::SysError> {
    if unsafe { libc::madvise(a as *mut libc::c_void, len, advice) } != 0 {
        return Err(sys::last(format!("madvise({name}, {len} bytes at {a:#x})")));
    }
    Ok(())
}

/// A PROT_NONE range of `len` bytes for the move target (2 MiB aligned for pmd),
/// with the alignment slack given back.
pub(super) fn reserve(len: usize, mapping: Mapping) -> Result<usize, sys::SysError> {
    let slack = if mapping == Mapping::Pmd { PMD_SIZE } else { 0 };
    let resv = len + slack;
    let r = unsafe {
        libc::mmap(std::ptr::null_mut(), resv, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0)
    };
    if r == libc::MAP_FAILED {
        return Err(sys::last("mmap(reserve B)"));
    }
    let base = r as usize;
    let b = if slack == 0 { base } else { (base + PMD_SIZE - 1) & !(PMD_SIZE - 1) };
    unsafe {
        if b > base {
            libc::munmap(base as *mut libc::c_void, b - base);
        }
        if base + resv > b + len {
            libc::munmap((b + len) as *mut libc::c_void, base + resv - b - len);
        }
    }
    Ok(b)
}

/// Claims the hole at A while the mapping is elsewhere (refused if something took it).
fn placeholder(a: usize, len: usize) -> Result<(), sys::SysError> {
    let p = unsafe {
        libc::mmap(
            a as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as usize != a {
        return Err(sys::last("mmap(placeholder at A, MAP_FIXED_NOREPLACE) (EEXIST: another mapping took the hole)"));
    }
    Ok(())
}

fn mremap(from: usize, to: usize, len: usize) -> Result<(), sys::SysError> {
    let p =
        unsafe { libc::mremap(from as *mut libc::c_void, len, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, to as *mut libc::c_void) };
    if p == libc::MAP_FAILED {
        return Err(sys::last(format!("mremap({from:#x} -> {to:#x})")));
    }
    Ok(())
}

/// Runs the race for `seconds`, watching every call; returns the elapsed seconds.
fn watch(spec: &WorkloadSpec, t: &Target, race: &Race) -> Result<f64, Failure> {
    let hang_ms = t.hang as u64 * 1000;
    let run_for = Duration::from_secs(spec.seconds as u64);
    let mut stopped_at: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = race.now();
        let mut stuck: Option<(String, u64)> = None;
        let since = race.remap_since.load(SeqCst);
        if since != 0 && now.saturating_sub(since) > hang_ms {
            stuck = Some((race.remap_op.lock().unwrap().to_string(), now - since));
        }
        for (s, op) in race.io_since.iter().zip(&race.io_op) {
            let since = s.load(SeqCst);
            if stuck.is_none() && since != 0 && now.saturating_sub(since) > hang_ms {
                stuck = Some((op.lock().unwrap().to_string(), now - since));
            }
        }
        if let Some((op, waited_ms)) = stuck {
            let waited = Duration::from_millis(waited_ms);
            hang::report_hang("workload", spec.name(), &op, waited);
            race.stop.store(true, SeqCst);
            let c = race.counters();
            return Err(Failure {
                kind: FailKind::Hang,
                errno: None,
                detail: format!(
                    "{op} did not return within {} s ({:.1} s into the run; {} munmap+mmap, {} DONTNEED, {} mremap, {} reads, {} writes, {} EFAULT before it)",
                    t.hang,
                    (now - waited_ms) as f64 / 1000.0,
                    c["remaps"],
                    c["dontneeds"],
                    c["mremaps"],
                    c["reads"],
                    c["writes"],
                    c["efault"]
                ),
                wedged: true,
                counters: Default::default(),
            });
        }
        if stopped_at.is_none() && (race.start.elapsed() >= run_for || race.stop.load(SeqCst)) {
            race.stop.store(true, SeqCst);
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some() && race.running.load(SeqCst) == 0 {
            break;
        }
    }
    Ok(stopped_at.map(|s| s - race.start).unwrap_or_else(|| race.start.elapsed()).as_secs_f64().max(1e-9))
}

/// The reserve exactly; every I/O-region page, DAX side and device, wholly one pattern.
fn verify(dax: &Fd, dev: &Fd, t: &Target, size: usize, io_len: usize) -> Result<BTreeMap<&'static str, u64>, Failure> {
    let mut counts = BTreeMap::new();
    let m = t.map_shared(dax, size).map_err(|e| ctx(e, "mapping to verify"))?;
    let w = m.words();
    if let Some(x) = sys::check_pattern(&w[io_len / 8..], RESV_SEED, (io_len / 8) as u64) {
        return Err(Failure::corrupt(format!(
            "the reserve (bytes {io_len}..{size}, never an I/O target) changed: {} words differ, first at byte {}: got {:#018x}, want {:#018x}",
            x.bad_words,
            x.first_word * 8,
            x.got,
            x.want
        )));
    }
    let (o, d) = classify(&w[..io_len / 8], 0, "DAX side")?;
    counts.insert("dax_pages_orig", o);
    counts.insert("dax_pages_dev", d);
    drop(m);
    let buf = Map::anon(MIB)?;
    let (mut o, mut d) = (0, 0);
    for off in (0..io_len).step_by(MIB) {
        let n = MIB.min(io_len - off);
        sys::pread_exact(dev, buf.ptr, n, off as u64).map_err(|e| ctx(e, "reading the device back"))?;
        let (a, b) = classify(&buf.words()[..n / 8], (off / 8) as u64, "device")?;
        o += a;
        d += b;
    }
    counts.insert("dev_pages_orig", o);
    counts.insert("dev_pages_dev", d);
    Ok(counts)
}

/// Counts pages that are wholly the original / wholly the device pattern; anything else fails.
fn classify(words: &[u64], first: u64, side: &str) -> Result<(u64, u64), Failure> {
    let (mut orig, mut devp) = (0, 0);
    for (p, page) in words.chunks(PAGE / 8).enumerate() {
        let at = first + (p * PAGE / 8) as u64;
        if sys::check_pattern(page, ORIG_SEED, at).is_none() {
            orig += 1;
        } else if let Some(x) = sys::check_pattern(page, DEV_SEED, at) {
            let is_orig = |i: u64| page[(i - at) as usize] == sys::pattern_word(ORIG_SEED, i);
            return Err(Failure::corrupt(format!(
                "{side}: the page at byte {} is neither wholly the original nor wholly the device data: \
                 {} words differ from the device data, first at byte {}: got {:#018x}{}",
                at * 8,
                x.bad_words,
                x.first_word * 8,
                x.got,
                if is_orig(x.first_word) { " (the original: a torn page)" } else { " (neither pattern)" }
            )));
        } else {
            devp += 1;
        }
    }
    Ok((orig, devp))
}
