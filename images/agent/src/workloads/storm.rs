//! storm: seeded random interleavings of the DAX/GUP operations ([`StormOp`]).
//!
//! `threads` threads each draw ops from their own PRNG ([`sys::Rng`] seeded
//! with [`storm_stream_seed`]`(seed, thread)`; every op takes the same
//! [`DRAWS`] draws whatever its outcome, so (seed, threads, ops) regenerate
//! every thread's stream) over one DAX file (devdax: the device), its shared
//! mappings (fsdax: one pte and one pmd mapping of the whole file; devdax:
//! the cell's mapping), fresh mappings for slow GUP, and /dev/pmem1, laid
//! out as a source `[0, size)` holding [`DEV_SEED`]'s pattern (never
//! written), a sink `[size, 2 size)` that O_DIRECT writes from the mapping
//! land in (at `size` + their file offset), and a splice area after it.
//! Ranges are drawn to start at, end at or straddle page and PMD (2 MiB)
//! boundaries; punch and truncate leave extent boundaries at the drawn pages.
//!
//! Oracles:
//! - errno: each op's answer is checked against what the kernel may answer
//!   ([`Storm::racy`]): EFAULT, a short count, a SIGBUS in a fork child or
//!   EFAULT from a populate are legal only when `truncate` is in the mix
//!   (pages beyond a racing EOF); uring-fixed on fsdax must be refused with
//!   EOPNOTSUPP; anything else (ENOMEM from GUP, EIO, ...) is IO_ERROR.
//! - deadlines: every blocking call is registered with [`hang::op_begin`],
//!   so the agent's watchdog reports one that blocks over `hang` seconds as
//!   a HANG with every thread's kernel stack (the op counts so far go with it).
//! - data: a shadow knows, per page of the file and of the device's sink,
//!   the pattern it must hold. An op that writes a range marks it unknown
//!   when it starts; when it ends, fully, and no other writer touched any of
//!   its pages meanwhile (no writer in flight when it began, none begun
//!   since), the range becomes known with what it wrote (truncate and punch
//!   write zeros; an O_DIRECT read writes the source's pattern; an O_DIRECT
//!   write copies the file pages' state into the sink when they stayed
//!   known throughout). vm-read checks what it read at once. Every
//!   [`CHECK_EVERY`] ops per thread all threads meet at a barrier and thread
//!   0 restores the file's size, then reads the whole file with read(2) and
//!   through each shared mapping (process_vm_readv: a fault is an errno, not
//!   a signal in PID 1): they must agree on every page, known or not, and
//!   every known page (and known sink page, read O_DIRECT) must hold its pattern.
//!
//! What the oracle cannot see: a page raced by two writers stays unknown
//! until a later clean write, so corruption inside a race is only caught
//! when read(2) and the mapping disagree; the splice area is not checked
//! (its writes go through the block device's page cache); ops in flight are
//! checked only by errno and deadline; a kernel that corrupts a page and
//! its copy the same way through both paths looks consistent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use io_uring::IoUring;
use kregress_agent::config::storm_stream_seed;
use kregress_agent::{Mapping, StormOp, WorkloadSpec};

use super::{round2, Failure, Finished, Target, DEV_SEED};
use crate::hang;
use crate::sys::{self, Fd, Map, Rng, SysError, PMD_SIZE};

const PAGE: usize = 4096;
const PMD_PAGES: usize = PMD_SIZE / PAGE;
/// Longest time between two quiescent checks (a thread that reaches it waits for the others at the barrier).
const CHECK_PERIOD: Duration = Duration::from_secs(2);
/// Most ops per thread between two quiescent checks.
const CHECK_EVERY: u64 = 100;
/// Draws per op, whatever it does: kind, first page, page count, mapping, tag, boundary class.
const DRAWS: usize = 6;
/// The pattern the file holds when the storm starts.
const INIT_SEED: u64 = 0x5354_4f52_4d21_0001;
/// Most pages one op moves (4 MiB: two PMDs).
const MAX_PAGES: usize = 1024;
/// Bytes of the splice area on the device.
const SPLICE_AREA: usize = 1 << 20;

/// What a page must hold: unknown, or the pattern of a seed indexed by the
/// page's word in the file (seed 0: zeros).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Page {
    Unknown,
    Known(u64),
}

impl Page {
    fn word(self, w: u64) -> Option<u64> {
        match self {
            Page::Unknown => None,
            Page::Known(0) => Some(0),
            Page::Known(seed) => Some(sys::pattern_word(seed, w)),
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    page: Page,
    /// Writers of this page in flight.
    inflight: u32,
    /// Writers begun on this page so far.
    epoch: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Region {
    File,
    Sink,
}

/// The expected contents of the file's and the sink's pages (see the module doc).
struct Shadow {
    file: Vec<Slot>,
    sink: Vec<Slot>,
}

/// A write in flight on `n` pages from `first` of a region.
struct Ticket {
    region: Region,
    first: usize,
    epochs: Vec<u64>,
    clean: bool,
}

/// What a range held when a reader began, and whether it can change unseen.
struct Look {
    first: usize,
    pages: Vec<Page>,
    epochs: Vec<u64>,
    clean: bool,
}

impl Shadow {
    fn slots(&mut self, r: Region) -> &mut Vec<Slot> {
        match r {
            Region::File => &mut self.file,
            Region::Sink => &mut self.sink,
        }
    }
    fn begin_write(&mut self, region: Region, first: usize, n: usize) -> Ticket {
        let mut clean = true;
        let mut epochs = Vec::with_capacity(n);
        for s in &mut self.slots(region)[first..first + n] {
            clean &= s.inflight == 0;
            s.page = Page::Unknown;
            s.inflight += 1;
            s.epoch += 1;
            epochs.push(s.epoch);
        }
        Ticket { region, first, epochs, clean }
    }
    /// Ends a write: the pages become `content` (page by page) when it is
    /// given and no other writer met this one, else they stay unknown.
    fn end_write(&mut self, t: Ticket, content: Option<&[Page]>) {
        let slots = &mut self.slots(t.region)[t.first..t.first + t.epochs.len()];
        let alone = t.clean && slots.iter().zip(&t.epochs).all(|(s, e)| s.epoch == *e);
        for (k, s) in slots.iter_mut().enumerate() {
            s.inflight -= 1;
            if let (true, Some(c)) = (alone, content) {
                s.page = c[k];
            }
        }
    }
    fn look(&self, first: usize, n: usize) -> Look {
        let s = &self.file[first..first + n];
        Look {
            first,
            pages: s.iter().map(|s| s.page).collect(),
            epochs: s.iter().map(|s| s.epoch).collect(),
            clean: s.iter().all(|s| s.inflight == 0),
        }
    }
    /// No writer touched the looked-at pages since the look began.
    fn unchanged(&self, l: &Look) -> bool {
        l.clean && self.file[l.first..l.first + l.epochs.len()].iter().zip(&l.epochs).all(|(s, e)| s.epoch == *e)
    }
}

/// One op as drawn, before it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    op: StormOp,
    first: usize,
    n: usize,
    map: usize,
    tag: u64,
}

/// The next op of a stream over `pages` pages: exactly [`DRAWS`] draws.
fn draw(r: &mut Rng, ops: &[StormOp], pages: usize) -> Draw {
    let v: [u64; DRAWS] = std::array::from_fn(|_| r.next());
    let op = ops[v[0] as usize % ops.len()];
    let (a, b, map, tag, class) = (v[1], v[2], v[3], v[4], v[5] % 4);
    let n = match b % 4 {
        0 => 1,
        1 => 2 + (b >> 8) as usize % 15,
        2 => PMD_PAGES,
        _ => 1 + (b >> 8) as usize % MAX_PAGES,
    }
    .min(pages);
    let pmds = pages.div_ceil(PMD_PAGES);
    let first = match class {
        // Straddling a PMD boundary by a page or two.
        0 => ((1 + a as usize % pmds) * PMD_PAGES).saturating_sub(1 + (a >> 32) as usize % 2),
        // On a PMD boundary.
        1 => (a as usize % pmds) * PMD_PAGES,
        // Ending at the end of the file.
        2 => pages - n,
        _ => a as usize % pages,
    }
    .min(pages - n);
    Draw { op, first, n, map: map as usize, tag: tag | 1 }
}

/// The storm's shared state.
struct Storm {
    file: Fd,
    /// /dev/pmem1, O_DIRECT.
    dev: Fd,
    /// /dev/pmem1 through its page cache, for splice.
    dev_buffered: Fd,
    size: usize,
    is_file: bool,
    mapping: Mapping,
    /// The shared mappings: fsdax pte and pmd, devdax the cell's.
    maps: Vec<(Map, Mapping)>,
    ops: Vec<StormOp>,
    /// EFAULT, short counts and SIGBUS are legal (truncate is in the mix).
    racy: bool,
    shadow: Mutex<Shadow>,
    start: Instant,
    run_for: Duration,
    stop: AtomicBool,
    failure: Mutex<Option<Failure>>,
    counters: Mutex<BTreeMap<String, u64>>,
    executed: Vec<AtomicU64>,
    running: AtomicUsize,
    /// Set by thread 0 between the two barriers of a quiescent check, read
    /// by all after the second: every thread leaves after the same check
    /// (`stop` can be set by a failing op at any time, and a thread that
    /// left early would keep another at the barrier forever).
    leave: AtomicBool,
}

/// The errno a transfer of `len` bytes answers when pinning its user pages
/// failed (the mapping was truncated or moved under it), by the name its
/// `legal.*` counter takes; None for any other errno. EFAULT everywhere; and
/// EIO from an io_uring read over more than BIO_MAX_VECS (256) pages: 6.1's
/// __blkdev_direct_IO (block/fops.c) ends a bio whose bio_iov_iter_get_pages()
/// failed with BLK_STS_IOERR, which an async (io_uring) caller receives as
/// EIO (a sync one keeps the EFAULT). Seen on the fixed kernel: seed 1,
/// uring-read of 2 MiB, EIO.
fn gup_failure(op: StormOp, errno: i32, len: usize) -> Option<&'static str> {
    const BIO_MAX_BYTES: usize = 256 * PAGE;
    match errno {
        libc::EFAULT => Some("efault"),
        libc::EIO if op == StormOp::UringRead && len > BIO_MAX_BYTES => Some("uring_eio"),
        _ => None,
    }
}

/// An op's answer that the kernel may not give: (errno, what).
type Illegal = (i32, String);

impl Storm {
    fn count(&self, key: &str) {
        *self.counters.lock().unwrap().entry(key.to_string()).or_insert(0) += 1;
    }
    fn fail(&self, f: Failure) {
        self.failure.lock().unwrap().get_or_insert(f);
        self.stop.store(true, SeqCst);
    }
    fn failed(&self) -> bool {
        self.failure.lock().unwrap().is_some()
    }
    fn all_counters(&self) -> BTreeMap<String, u64> {
        let mut c = self.counters.lock().unwrap().clone();
        for (op, n) in self.ops.iter().zip(&self.executed) {
            c.insert(format!("op.{op}"), n.load(SeqCst));
        }
        c
    }
    /// A fault, short count or EFAULT that only a racing truncate explains:
    /// legal (counted) when truncate is in the mix, else illegal.
    fn racy(&self, op: StormOp, what: &str) -> Result<(), Illegal> {
        match self.racy {
            true => {
                self.count(&format!("legal.{what}"));
                Ok(())
            }
            false => Err((libc::EFAULT, format!("{op}: {what} with no truncate in the mix"))),
        }
    }
    /// A transfer's answer: Ok(true) when whole, Ok(false) when legally cut short.
    fn moved(&self, op: StormOp, r: Result<usize, SysError>, len: usize) -> Result<bool, Illegal> {
        match r {
            Ok(n) if n == len => Ok(true),
            Ok(_) => self.racy(op, "short").map(|_| false),
            Err(e) => match gup_failure(op, e.errno, len) {
                Some(what) => self.racy(op, what).map(|_| false),
                None => Err((e.errno, format!("{op}: {e}"))),
            },
        }
    }
    fn addr(&self, d: &Draw) -> (usize, Mapping) {
        let (m, k) = &self.maps[d.map % self.maps.len()];
        (m.ptr as usize + d.first * PAGE, *k)
    }
    fn write(&self, region: Region, first: usize, n: usize) -> Ticket {
        self.shadow.lock().unwrap().begin_write(region, first, n)
    }
    fn end(&self, t: Ticket, content: Option<&[Page]>) {
        self.shadow.lock().unwrap().end_write(t, content)
    }
}

/// A thread's own things: its stream, a buffer, its ring.
struct Worker {
    rng: Rng,
    buf: Map,
    ring: Option<IoUring>,
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let pages = size / PAGE;
    let ops: Vec<StormOp> = spec.storm_ops();
    let file = t.open()?;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let dev_len = unsafe { libc::lseek(dev.0, 0, libc::SEEK_END) };
    if dev_len < (2 * size + SPLICE_AREA) as i64 {
        return Err(Failure::io(libc::ENOSPC, format!("{} holds {dev_len} bytes, the storm needs {}", t.raw_dev, 2 * size + SPLICE_AREA)));
    }
    let kinds: Vec<Mapping> = if t.is_file() { vec![Mapping::Pte, Mapping::Pmd] } else { vec![t.mapping] };
    let maps = kinds.iter().map(|&k| Ok((Map::shared(&file, size, k)?, k))).collect::<Result<Vec<_>, SysError>>()?;
    prepare(&file, &dev, t, &maps[0].0, size)?;
    let slot = |page| Slot { page, inflight: 0, epoch: 0 };
    let storm = Storm {
        file,
        dev,
        dev_buffered: Fd::open(&t.raw_dev, libc::O_RDWR)?,
        size,
        is_file: t.is_file(),
        mapping: t.mapping,
        maps,
        racy: t.is_file() && ops.contains(&StormOp::Truncate),
        executed: ops.iter().map(|_| AtomicU64::new(0)).collect(),
        ops,
        shadow: Mutex::new(Shadow { file: vec![slot(Page::Known(INIT_SEED)); pages], sink: vec![slot(Page::Unknown); pages] }),
        start: Instant::now(),
        run_for: Duration::from_secs(spec.seconds as u64),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        counters: Mutex::new(BTreeMap::new()),
        running: AtomicUsize::new(spec.threads as usize),
        leave: AtomicBool::new(false),
    };
    let nthreads = spec.threads as usize;
    let barrier = Barrier::new(nthreads);
    let check_buf = (Map::anon(size)?, Map::anon(size)?);
    std::thread::scope(|sc| {
        for i in 0..nthreads {
            let (storm, barrier, check_buf) = (&storm, &barrier, &check_buf);
            let seed = storm_stream_seed(spec.seed, i as u32);
            let spawned = std::thread::Builder::new().name(format!("storm-{i}")).spawn_scoped(sc, move || {
                thread_main(storm, barrier, i, seed, check_buf);
                storm.running.fetch_sub(1, SeqCst);
            });
            if let Err(e) = spawned {
                // The others would wait at the barrier for it: nothing runs.
                storm.fail(Failure::io(e.raw_os_error().unwrap_or(libc::EAGAIN), format!("spawning storm thread {i}: {e}")));
                return;
            }
        }
        // Publish the counts while the threads run (a hang's result carries them).
        while storm.running.load(SeqCst) > 0 {
            hang::set_progress(storm.all_counters());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let elapsed = storm.start.elapsed().as_secs_f64();
    let counters = storm.all_counters();
    hang::set_progress(counters.clone());
    if let Some(f) = storm.failure.lock().unwrap().take() {
        return Err(Failure { detail: format!("seed {}: {}", spec.seed, f.detail), counters, ..f });
    }
    let executed: u64 = storm.executed.iter().map(|n| n.load(SeqCst)).sum();
    let per_op: Vec<String> = storm.ops.iter().zip(&storm.executed).map(|(o, n)| format!("{o} {}", n.load(SeqCst))).collect();
    Ok(Finished {
        mb_per_s: None,
        ops_per_s: Some(round2(executed as f64 / elapsed)),
        detail: format!(
            "seed {}, {} threads, {:.1} s{}: {executed} ops ({}); {} quiescent checks, {} known pages verified; no call blocked over {} s",
            spec.seed,
            nthreads,
            elapsed,
            if t.virtual_time { " (virtual time)" } else { "" },
            per_op.join(", "),
            counters.get("checks").unwrap_or(&0),
            counters.get("pages_verified").unwrap_or(&0),
            t.hang
        ),
        counters,
        skipped: None,
    })
}

/// The source region of the device holds [`DEV_SEED`]'s pattern; the file
/// (or device) [`INIT_SEED`]'s (devdax: written through the mapping, which
/// nothing else touches yet).
fn prepare(file: &Fd, dev: &Fd, t: &Target, map: &Map, size: usize) -> Result<(), Failure> {
    let mut buf = Map::anon(size)?;
    sys::fill_pattern(buf.words_mut(), DEV_SEED, 0);
    sys::pwrite_exact(dev, buf.ptr, size, 0)?;
    sys::fill_pattern(buf.words_mut(), INIT_SEED, 0);
    if t.is_file() {
        sys::pwrite_exact(file, buf.ptr, size, 0)?;
    } else {
        unsafe { std::ptr::copy_nonoverlapping(buf.ptr, map.ptr, size) };
    }
    Ok(())
}

fn thread_main(s: &Storm, barrier: &Barrier, i: usize, seed: u64, check_buf: &(Map, Map)) {
    let buf = match Map::anon(MAX_PAGES * PAGE) {
        Ok(b) => b,
        Err(e) => {
            s.fail(e.into());
            // Still meet the others at the barrier, so that they stop.
            barrier.wait();
            if i == 0 {
                s.leave.store(true, SeqCst);
            }
            barrier.wait();
            return;
        }
    };
    let mut w = Worker { rng: Rng::new(seed), buf, ring: None };
    let pages = s.size / PAGE;
    loop {
        let since = Instant::now();
        for _ in 0..CHECK_EVERY {
            if s.stop.load(SeqCst) || since.elapsed() >= CHECK_PERIOD {
                break;
            }
            let d = draw(&mut w.rng, &s.ops, pages);
            if let Some(k) = s.ops.iter().position(|o| *o == d.op) {
                s.executed[k].fetch_add(1, SeqCst);
            }
            let t0 = Instant::now();
            let r = run_op(s, &mut w, &d);
            // Microseconds spent in each kind: its calls per second, per thread.
            *s.counters.lock().unwrap().entry(format!("us.{}", d.op)).or_insert(0) += t0.elapsed().as_micros() as u64;
            if let Err((errno, what)) = r {
                s.fail(Failure::io(errno, format!("thread {i}: {what} ({} pages at page {})", d.n, d.first)));
            }
        }
        barrier.wait();
        if i == 0 {
            if !s.failed() {
                if let Err(f) = check(s, check_buf) {
                    s.fail(f);
                }
            }
            if s.start.elapsed() >= s.run_for {
                s.stop.store(true, SeqCst);
            }
            // The others wait at the next barrier: nothing else sets stop now.
            s.leave.store(s.stop.load(SeqCst), SeqCst);
        }
        barrier.wait();
        if s.leave.load(SeqCst) {
            return;
        }
    }
}

/// Runs one drawn op; Err is an answer the kernel may not give.
fn run_op(s: &Storm, w: &mut Worker, d: &Draw) -> Result<(), Illegal> {
    use StormOp::*;
    if d.op.needs_file() && !s.is_file {
        s.count("skipped.devdax");
        return Ok(());
    }
    let (off, len) = (d.first * PAGE, d.n * PAGE);
    match d.op {
        DioReadFast | DioReadSlow | UringRead => {
            let fresh = match d.op {
                DioReadSlow => Some(Map::shared(&s.file, s.size, s.mapping).map_err(|e| (e.errno, format!("{}: {e}", d.op)))?),
                _ => None,
            };
            let addr = match &fresh {
                Some(m) => m.ptr as usize + off,
                None => s.addr(d).0,
            };
            if d.op == DioReadFast {
                populate(s, d.op, addr, len, libc::MADV_POPULATE_WRITE)?;
            }
            if d.op == UringRead && ring(s, w).is_none() {
                return Ok(());
            }
            let t = s.write(Region::File, d.first, d.n);
            let got = match d.op {
                UringRead => uring_read(s, w, addr, len, off),
                _ => {
                    let _op = hang::op_begin(d.op.as_str());
                    pread(&s.dev, addr, len, off)
                }
            };
            let whole = s.moved(d.op, got, len);
            s.end(t, matches!(whole, Ok(true)).then_some(&vec![Page::Known(DEV_SEED); d.n][..]));
            whole.map(|_| ())
        }
        DioWriteFast | DioWriteSlow => {
            let fresh = match d.op {
                DioWriteSlow => Some(Map::shared(&s.file, s.size, s.mapping).map_err(|e| (e.errno, format!("{}: {e}", d.op)))?),
                _ => None,
            };
            let addr = match &fresh {
                Some(m) => m.ptr as usize + off,
                None => s.addr(d).0,
            };
            if d.op == DioWriteFast {
                populate(s, d.op, addr, len, libc::MADV_POPULATE_READ)?;
            }
            let (look, t) = {
                let mut sh = s.shadow.lock().unwrap();
                (sh.look(d.first, d.n), sh.begin_write(Region::Sink, d.first, d.n))
            };
            let got = {
                let _op = hang::op_begin(d.op.as_str());
                let n = unsafe { libc::pwrite(s.dev.0, addr as *const libc::c_void, len, (s.size + off) as libc::off_t) };
                if n < 0 {
                    Err(sys::last(format!("pwrite(O_DIRECT, {len} bytes from the mapping)")))
                } else {
                    Ok(n as usize)
                }
            };
            let whole = s.moved(d.op, got, len);
            let mut sh = s.shadow.lock().unwrap();
            let content = (matches!(whole, Ok(true)) && sh.unchanged(&look)).then_some(look.pages);
            sh.end_write(t, content.as_deref());
            whole.map(|_| ())
        }
        Truncate => {
            let t = s.write(Region::File, d.first, s.size / PAGE - d.first);
            let r = {
                let _op = hang::op_begin("ftruncate");
                sys::ftruncate(&s.file, off as u64).and_then(|_| sys::ftruncate(&s.file, s.size as u64))
            };
            let zeros = vec![Page::Known(0); s.size / PAGE - d.first];
            s.end(t, r.is_ok().then_some(&zeros[..]));
            r.map_err(|e| (e.errno, format!("truncate: {e}")))
        }
        Punch => {
            let t = s.write(Region::File, d.first, d.n);
            let r = {
                let _op = hang::op_begin("fallocate(PUNCH_HOLE)");
                sys::punch_hole(&s.file, off as u64, len as u64)
            };
            s.end(t, r.is_ok().then_some(&vec![Page::Known(0); d.n][..]));
            r.map_err(|e| (e.errno, format!("punch: {e}")))
        }
        Extend => {
            // Every other one reaches past EOF (the next quiescent check restores the size).
            let off = if d.tag & 2 != 0 { s.size - PAGE + (d.first % PMD_PAGES) * PAGE } else { off };
            let _op = hang::op_begin("fallocate(0)");
            if unsafe { libc::fallocate(s.file.0, 0, off as libc::off_t, len as libc::off_t) } != 0 {
                let e = sys::last(format!("fallocate(0, {off}, {len})"));
                return Err((e.errno, format!("extend: {e}")));
            }
            Ok(())
        }
        FileWrite => {
            fill(w, d);
            let t = s.write(Region::File, d.first, d.n);
            let got = {
                let _op = hang::op_begin("pwrite(file)");
                let n = unsafe { libc::pwrite(s.file.0, w.buf.ptr as *const libc::c_void, len, off as libc::off_t) };
                if n < 0 {
                    Err(sys::last(format!("pwrite({len} bytes at {off})")))
                } else {
                    Ok(n as usize)
                }
            };
            let whole = match got {
                Ok(n) if n == len => Ok(true),
                Ok(n) => Err((libc::EIO, format!("file-write: pwrite({len} bytes at {off}) wrote {n}"))),
                Err(e) => Err((e.errno, format!("file-write: {e}"))),
            };
            s.end(t, matches!(whole, Ok(true)).then_some(&vec![Page::Known(d.tag); d.n][..]));
            whole.map(|_| ())
        }
        Munmap => {
            let (addr, kind) = s.addr(d);
            let (addr, off, len) = map_aligned(s, addr, off, len);
            let _op = hang::op_begin("mmap(MAP_FIXED) over the mapping");
            let p = unsafe {
                libc::mmap(
                    addr as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    s.file.0,
                    off as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                let e = sys::last(format!("mmap(MAP_FIXED, {len} bytes at {addr:#x})"));
                return Err((e.errno, format!("munmap: {e}")));
            }
            let advice = if kind == Mapping::Pmd { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE };
            super::unmap::madvise(addr, len, advice, "THP advice").map_err(|e| (e.errno, format!("munmap: {e}")))
        }
        Mremap => {
            let (addr, kind) = s.addr(d);
            let (addr, _, len) = map_aligned(s, addr, off, len);
            let b = super::unmap::reserve(len, kind).map_err(|e| (e.errno, format!("mremap: {e}")))?;
            let _op = hang::op_begin("mremap");
            // DONTUNMAP leaves the range mapped (empty) while its entries are away: never a hole.
            let away = unsafe {
                libc::mremap(
                    addr as *mut libc::c_void,
                    len,
                    len,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
                    b as *mut libc::c_void,
                )
            };
            if away == libc::MAP_FAILED {
                let e = sys::last(format!("mremap(DONTUNMAP, {len} bytes at {addr:#x} -> {b:#x})"));
                unsafe { libc::munmap(b as *mut libc::c_void, len) };
                return Err((e.errno, format!("mremap: {e}")));
            }
            let back = unsafe {
                libc::mremap(b as *mut libc::c_void, len, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, addr as *mut libc::c_void)
            };
            if back == libc::MAP_FAILED {
                let e = sys::last(format!("mremap({len} bytes at {b:#x} -> {addr:#x})"));
                unsafe { libc::munmap(b as *mut libc::c_void, len) };
                return Err((e.errno, format!("mremap: {e}")));
            }
            Ok(())
        }
        Dontneed => {
            let (addr, _) = s.addr(d);
            let (addr, _, len) = map_aligned(s, addr, off, len);
            let _op = hang::op_begin("madvise(MADV_DONTNEED)");
            super::unmap::madvise(addr, len, libc::MADV_DONTNEED, "MADV_DONTNEED").map_err(|e| (e.errno, format!("dontneed: {e}")))
        }
        Fork => fork_touch(s, d),
        VmWrite => {
            fill(w, d);
            let (addr, _) = s.addr(d);
            let t = s.write(Region::File, d.first, d.n);
            let got = super::remote::process_vm_rw(unsafe { libc::getpid() }, w.buf.ptr, addr, len, true);
            let whole = s.moved(d.op, got, len);
            s.end(t, matches!(whole, Ok(true)).then_some(&vec![Page::Known(d.tag); d.n][..]));
            whole.map(|_| ())
        }
        VmRead => {
            let (addr, _) = s.addr(d);
            let look = s.shadow.lock().unwrap().look(d.first, d.n);
            let got = super::remote::process_vm_rw(unsafe { libc::getpid() }, w.buf.ptr, addr, len, false);
            if s.moved(d.op, got, len)? && s.shadow.lock().unwrap().unchanged(&look) {
                let words = unsafe { std::slice::from_raw_parts(w.buf.ptr as *const u64, len / 8) };
                if let Some(bad) = mismatch(words, &look.pages, d.first) {
                    s.fail(Failure::corrupt(format!("vm-read of pages {}..{} through the mapping: {bad}", d.first, d.first + d.n)));
                }
                s.count("vm_read_verified");
            }
            Ok(())
        }
        UringFixed => uring_fixed(s, w, d),
        Splice => {
            let (addr, _) = s.addr(d);
            let len = len.min(64 << 10);
            let (r, wr) = super::splice::pipe(len).map_err(|e| (e.errno, format!("splice: {e}")))?;
            let got = super::splice::vmsplice(&wr, addr as *mut u8, len);
            let n = match got {
                Ok(n) => n,
                Err(e) if e.errno == libc::EFAULT => return s.racy(d.op, "efault"),
                Err(e) => return Err((e.errno, format!("splice: {e}"))),
            };
            // To the splice area, through the device's page cache (not checked).
            let to = 2 * s.size + (off % (SPLICE_AREA - (64 << 10))) / PAGE * PAGE;
            super::splice::splice(&r, &s.dev_buffered, to, n).map(|_| ()).map_err(|e| (e.errno, format!("splice: {e}")))
        }
        Msync => {
            let (addr, _) = s.addr(d);
            let _op = hang::op_begin("msync");
            if unsafe { libc::msync(addr as *mut libc::c_void, len, libc::MS_SYNC) } != 0 {
                let e = sys::last(format!("msync({len} bytes)"));
                // device-dax has no fsync: msync(MS_SYNC) of it is EINVAL.
                if !s.is_file && e.errno == libc::EINVAL {
                    s.count("legal.msync_einval");
                    return Ok(());
                }
                return Err((e.errno, format!("msync: {e}")));
            }
            Ok(())
        }
        Fsync => {
            let _op = hang::op_begin("fsync");
            sys::fsync(&s.file).map_err(|e| (e.errno, format!("fsync: {e}")))
        }
    }
}

/// devdax maps in units of its alignment (2 MiB for pmd): the range widened to it.
fn map_aligned(s: &Storm, addr: usize, off: usize, len: usize) -> (usize, usize, usize) {
    if s.is_file || s.mapping == Mapping::Pte {
        return (addr, off, len);
    }
    let base = addr - off;
    let start = off / PMD_SIZE * PMD_SIZE;
    let end = (off + len).div_ceil(PMD_SIZE) * PMD_SIZE;
    (base + start, start, end.min(s.size) - start)
}

/// `buf` holds the op's pattern for its pages.
fn fill(w: &mut Worker, d: &Draw) {
    let words = unsafe { std::slice::from_raw_parts_mut(w.buf.ptr as *mut u64, d.n * PAGE / 8) };
    sys::fill_pattern(words, d.tag, (d.first * PAGE / 8) as u64);
}

fn pread(dev: &Fd, addr: usize, len: usize, off: usize) -> Result<usize, SysError> {
    let n = unsafe { libc::pread(dev.0, addr as *mut libc::c_void, len, off as libc::off_t) };
    if n < 0 {
        return Err(sys::last(format!("pread(O_DIRECT, {len} bytes into the mapping)")));
    }
    Ok(n as usize)
}

/// Pre-faults a range for GUP-fast without touching it from the CPU
/// (MADV_POPULATE_*: a fault beyond EOF is EFAULT, not a SIGBUS in PID 1).
fn populate(s: &Storm, op: StormOp, addr: usize, len: usize, advice: libc::c_int) -> Result<(), Illegal> {
    let _op = hang::op_begin("madvise(MADV_POPULATE)");
    if unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) } == 0 {
        return Ok(());
    }
    match sys::errno() {
        libc::EFAULT => s.racy(op, "populate_efault"),
        e => Err((e, format!("{op}: madvise(MADV_POPULATE_*, {len} bytes): {}", sys::errno_name(e)))),
    }
}

/// fork(); the child stores the op's pattern through the shared mapping and
/// exits 0 (a SIGBUS beyond a racing EOF kills it: legal with truncate).
fn fork_touch(s: &Storm, d: &Draw) -> Result<(), Illegal> {
    let (addr, _) = s.addr(d);
    let (first_word, words) = ((d.first * PAGE / 8) as u64, d.n * PAGE / 8);
    let t = s.write(Region::File, d.first, d.n);
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The child: stores and arithmetic only, then _exit.
        let p = addr as *mut u64;
        for k in 0..words {
            unsafe { std::ptr::write_volatile(p.add(k), sys::pattern_word(d.tag, first_word + k as u64)) };
        }
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        let e = sys::errno();
        s.end(t, None);
        return Err((e, format!("fork: {}", sys::errno_name(e))));
    }
    let mut status = 0;
    let r = {
        let _op = hang::op_begin("waitpid(fork child touching the mapping)");
        unsafe { libc::waitpid(pid, &mut status, 0) }
    };
    let clean = r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    s.end(t, clean.then_some(&vec![Page::Known(d.tag); d.n][..]));
    match () {
        _ if clean => Ok(()),
        _ if r == pid && libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS => s.racy(d.op, "child_sigbus"),
        _ if r != pid => Err((sys::errno(), "fork: waitpid failed".into())),
        _ => Err((libc::EIO, format!("fork: the child touching the mapping ended with status {status:#x}"))),
    }
}

/// The thread's ring, made on first use; None when the kernel has no io_uring (counted).
fn ring(s: &Storm, w: &mut Worker) -> Option<()> {
    if w.ring.is_none() {
        match IoUring::new(super::uring::QUEUE_DEPTH) {
            Ok(r) => w.ring = Some(r),
            Err(_) => {
                s.count("unsupported.io_uring");
                return None;
            }
        }
    }
    Some(())
}

/// One io_uring READ of the source into the mapping (not fixed), on the thread's ring.
fn uring_read(s: &Storm, w: &mut Worker, addr: usize, len: usize, off: usize) -> Result<usize, SysError> {
    let io = [super::uring::Io { write: false, addr, len, dev_off: off as u64 }];
    let ring = w.ring.as_mut().expect("the caller made the ring");
    match super::uring::run_batch(ring, &s.dev, &io, None) {
        Ok(()) => Ok(len),
        // run_batch says a short completion with EIO and "completed".
        Err(e) if e.errno == libc::EIO && e.what.contains("completed") => Ok(0),
        Err(e) => Err(e),
    }
}

/// IORING_REGISTER_BUFFERS of the range (FOLL_LONGTERM): fsdax must refuse
/// with EOPNOTSUPP; devdax may refuse or register, then READ_FIXED the source into it.
fn uring_fixed(s: &Storm, w: &mut Worker, d: &Draw) -> Result<(), Illegal> {
    if ring(s, w).is_none() {
        return Ok(());
    }
    let (addr, _) = s.addr(d);
    let len = d.n * PAGE;
    let iov = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    let ring = w.ring.as_mut().unwrap();
    let registered = {
        let _op = hang::op_begin("IORING_REGISTER_BUFFERS");
        unsafe { ring.submitter().register_buffers(&[iov]) }
    };
    match registered {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            s.count("legal.fixed_refused");
            return Ok(());
        }
        Err(e) if e.raw_os_error() == Some(libc::EFAULT) => return s.racy(d.op, "efault"),
        Err(e) => return Err((e.raw_os_error().unwrap_or(libc::EIO), format!("uring-fixed: IORING_REGISTER_BUFFERS: {e}"))),
        Ok(()) if s.is_file => {
            let _ = ring.submitter().unregister_buffers();
            return Err((0, "uring-fixed: IORING_REGISTER_BUFFERS took a longterm pin of fsdax pages".into()));
        }
        Ok(()) => {}
    }
    let t = s.write(Region::File, d.first, d.n);
    let io = [super::uring::Io { write: false, addr, len, dev_off: (d.first * PAGE) as u64 }];
    let r = super::uring::run_batch(ring, &s.dev, &io, Some(0));
    s.end(t, r.is_ok().then_some(&vec![Page::Known(DEV_SEED); d.n][..]));
    let _op = hang::op_begin("IORING_UNREGISTER_BUFFERS");
    let u = ring.submitter().unregister_buffers();
    r.map_err(|e| (e.errno, format!("uring-fixed: READ_FIXED: {e}")))?;
    u.map_err(|e| (e.raw_os_error().unwrap_or(libc::EIO), format!("uring-fixed: IORING_UNREGISTER_BUFFERS: {e}")))
}

/// The first word of `words` (pages from `first`) that differs from `pages`' patterns.
fn mismatch(words: &[u64], pages: &[Page], first: usize) -> Option<String> {
    let per = PAGE / 8;
    for (k, p) in pages.iter().enumerate() {
        for j in 0..per {
            let w = ((first + k) * per + j) as u64;
            if let Some(want) = p.word(w) {
                let got = words[k * per + j];
                if got != want {
                    return Some(format!("page {} word {j}: {got:#018x}, want {want:#018x} ({p:?})", first + k));
                }
            }
        }
    }
    None
}

/// The quiescent check (no op in flight): the file's size restored; read(2)
/// and every shared mapping agree on every page; known pages and known sink
/// pages hold their patterns.
fn check(s: &Storm, (a, b): &(Map, Map)) -> Result<(), Failure> {
    let size = s.size;
    let sh = s.shadow.lock().unwrap();
    let file: Vec<Page> = sh.file.iter().map(|x| x.page).collect();
    let sink: Vec<Page> = sh.sink.iter().map(|x| x.page).collect();
    drop(sh);
    let me = unsafe { libc::getpid() };
    let read_map = |m: &Map, into: &Map, k: Mapping| -> Result<(), Failure> {
        match super::remote::process_vm_rw(me, into.ptr, m.ptr as usize, size, false) {
            Ok(n) if n == size => Ok(()),
            Ok(n) => Err(Failure::io(libc::EIO, format!("quiescent check: process_vm_readv of the {k} mapping read {n} of {size} bytes"))),
            Err(e) => Err(Failure::io(e.errno, format!("quiescent check: reading the {k} mapping: {e}"))),
        }
    };
    let words = |m: &Map| unsafe { std::slice::from_raw_parts(m.ptr as *const u64, size / 8) };
    // Each call watched on its own (the comparisons are not calls).
    if s.is_file {
        {
            let _op = hang::op_begin("quiescent check: ftruncate(size)");
            sys::ftruncate(&s.file, size as u64).map_err(|e| Failure::io(e.errno, format!("quiescent check: {e}")))?;
        }
        let _op = hang::op_begin("quiescent check: read(2) of the file");
        sys::pread_exact(&s.file, a.ptr, size, 0)
            .map_err(|e| Failure::io(e.errno, format!("quiescent check: read(2) of the file: {e}")))?;
        drop(_op);
        for (m, k) in &s.maps {
            read_map(m, b, *k)?;
            if let Some(i) = words(a).iter().zip(words(b)).position(|(x, y)| x != y) {
                let p = i * 8 / PAGE;
                return Err(Failure::corrupt(format!(
                    "quiescent check: read(2) and the {k} mapping disagree at page {p} word {}: {:#018x} vs {:#018x} (shadow: {:?})",
                    i % (PAGE / 8),
                    words(a)[i],
                    words(b)[i],
                    file[p]
                )));
            }
        }
    } else {
        read_map(&s.maps[0].0, a, s.maps[0].1)?;
    }
    if let Some(bad) = mismatch(words(a), &file, 0) {
        return Err(Failure::corrupt(format!("quiescent check: the file {bad}")));
    }
    let op = hang::op_begin("quiescent check: O_DIRECT read of the sink");
    sys::pread_exact(&s.dev, b.ptr, size, size as u64)
        .map_err(|e| Failure::io(e.errno, format!("quiescent check: reading the sink: {e}")))?;
    drop(op);
    if let Some(bad) = mismatch(words(b), &sink, 0) {
        return Err(Failure::corrupt(format!("quiescent check: the device's sink (O_DIRECT writes from the mapping) {bad}")));
    }
    let known = file.iter().chain(&sink).filter(|p| **p != Page::Unknown).count() as u64;
    s.count("checks");
    *s.counters.lock().unwrap().entry("pages_verified".into()).or_insert(0) += known;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kregress_agent::{FailKind, Mode, WorkloadKind};

    #[test]
    fn streams_are_fixed_by_seed_and_hit_pmd_boundaries() {
        let ops = StormOp::ALL;
        let a: Vec<Draw> = {
            let mut r = Rng::new(storm_stream_seed(7, 1));
            (0..500).map(|_| draw(&mut r, ops, 4096)).collect()
        };
        let b: Vec<Draw> = {
            let mut r = Rng::new(storm_stream_seed(7, 1));
            (0..500).map(|_| draw(&mut r, ops, 4096)).collect()
        };
        let c: Vec<Draw> = {
            let mut r = Rng::new(storm_stream_seed(7, 2));
            (0..500).map(|_| draw(&mut r, ops, 4096)).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|d| d.n >= 1 && d.first + d.n <= 4096));
        let straddle = a.iter().filter(|d| d.first / PMD_PAGES != (d.first + d.n - 1) / PMD_PAGES).count();
        let aligned = a.iter().filter(|d| d.first % PMD_PAGES == 0).count();
        assert!(straddle > 50 && aligned > 50, "{straddle} straddle, {aligned} aligned");
        // Every op takes DRAWS draws, whatever it is.
        let (mut r, mut q) = (Rng::new(11), Rng::new(11));
        for _ in 0..100 {
            draw(&mut r, ops, 4096);
            for _ in 0..DRAWS {
                q.next();
            }
            assert_eq!(r.next(), q.next());
        }
        // Every op of the mix is drawn.
        assert!(ops.iter().all(|o| a.iter().any(|d| d.op == *o)));
    }

    #[test]
    fn the_shadow_forgets_raced_pages() {
        let slot = Slot { page: Page::Known(5), inflight: 0, epoch: 0 };
        let mut sh = Shadow { file: vec![slot; 8], sink: vec![slot; 8] };
        // Alone: known afterwards.
        let t = sh.begin_write(Region::File, 0, 2);
        sh.end_write(t, Some(&[Page::Known(9); 2]));
        assert_eq!(sh.file[0].page, Page::Known(9));
        // Two overlapping writers: both pages they share stay unknown.
        let t1 = sh.begin_write(Region::File, 2, 2);
        let t2 = sh.begin_write(Region::File, 3, 2);
        sh.end_write(t1, Some(&[Page::Known(1); 2]));
        sh.end_write(t2, Some(&[Page::Known(2); 2]));
        assert_eq!([sh.file[2].page, sh.file[3].page, sh.file[4].page], [Page::Unknown; 3]);
        // A reader sees a writer begin during it.
        let l = sh.look(0, 2);
        assert!(sh.unchanged(&l));
        let t = sh.begin_write(Region::File, 1, 1);
        assert!(!sh.unchanged(&l));
        sh.end_write(t, None);
        assert_eq!(sh.file[1].page, Page::Unknown);
    }

    /// Temp files for the DAX file and the raw device (2 sizes + the splice area), removed on drop.
    struct Files(Target);
    impl Files {
        fn new(name: &str, size: usize) -> Files {
            let base = format!("{}/kregress-storm-{name}-{}", std::env::temp_dir().display(), std::process::id());
            let (file, raw_dev) = (format!("{base}.dat"), format!("{base}.dev"));
            std::fs::write(&file, vec![0u8; size]).unwrap();
            std::fs::write(&raw_dev, vec![0u8; 2 * size + SPLICE_AREA]).unwrap();
            Files(Target { file, mode: Mode::Fsdax, raw_dev, mapping: Mapping::Pte, hang: 10, virtual_time: false })
        }
    }
    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0.file);
            let _ = std::fs::remove_file(&self.0.raw_dev);
        }
    }

    fn spec(seed: u64, ops: &[StormOp]) -> WorkloadSpec {
        WorkloadSpec { size: 4 << 20, seconds: 1, threads: 3, seed, ops: ops.to_vec(), ..WorkloadSpec::new(WorkloadKind::Storm) }
    }

    #[test]
    fn a_storm_on_plain_files_runs_clean_and_counts_every_op() {
        let f = Files::new("clean", 4 << 20);
        let r = run(&spec(3, &[]), &f.0).unwrap_or_else(|e| panic!("{:?}: {}", e.kind, e.detail));
        let c = &r.counters;
        assert!(c["checks"] >= 1 && c["pages_verified"] > 0, "{c:?}");
        assert!(StormOp::ALL.iter().all(|o| c[&format!("op.{o}")] > 0), "{c:?}");
        assert!(r.detail.starts_with("seed 3, 3 threads"), "{}", r.detail);
        eprintln!("{}", r.detail);
    }

    /// Another writer the shadow does not know of (a stand-in for a kernel
    /// that puts data where it does not belong): `f` runs 300 ms into the storm.
    fn behind_its_back(name: &str, ops: &[StormOp], f: impl FnOnce(&Target) + Send) -> Failure {
        let files = Files::new(name, 4 << 20);
        let mut sp = spec(5, ops);
        sp.seconds = 3;
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                f(&files.0)
            });
            match run(&sp, &files.0) {
                Ok(r) => panic!("the storm passed: {}", r.detail),
                Err(e) => e,
            }
        })
    }

    #[test]
    fn the_shadow_catches_a_byte_changed_behind_its_back() {
        // No op writes: every page stays known, the flipped byte is seen at the next check.
        let e = behind_its_back("corrupt", &[StormOp::Fsync, StormOp::Msync], |t| {
            let f = Fd::open(&t.file, libc::O_RDWR).unwrap();
            unsafe { libc::pwrite(f.0, [0xa5u8].as_ptr() as *const libc::c_void, 1, 1_234_567) };
        });
        assert_eq!(e.kind, FailKind::DataCorruption, "{}", e.detail);
        // Seen by the shadow, or by read(2) and a mapping read on either side of the write.
        assert!(e.detail.starts_with("seed 5: quiescent check: ") && e.detail.contains("page 301 word 208"), "{}", e.detail);
        assert!(e.counters["op.fsync"] + e.counters["op.msync"] > 0, "{:?}", e.counters);
    }

    #[test]
    fn eio_is_a_gup_failure_only_where_the_block_layer_turns_one_into_it() {
        use StormOp::*;
        assert_eq!(gup_failure(DioReadSlow, libc::EFAULT, PAGE), Some("efault"));
        assert_eq!(gup_failure(UringRead, libc::EIO, 2 << 20), Some("uring_eio"));
        // One bio (at most 256 pages) or a sync read: the EFAULT is kept, an EIO is the device's.
        assert_eq!(gup_failure(UringRead, libc::EIO, 1 << 20), None);
        assert_eq!(gup_failure(DioReadFast, libc::EIO, 2 << 20), None);
        assert_eq!(gup_failure(UringRead, libc::ENOMEM, 2 << 20), None);
    }

    #[test]
    fn an_efault_is_illegal_without_a_truncate_in_the_mix() {
        // The file shrinks under O_DIRECT into the mapping, but the mix has no truncate.
        // Again and again: a quiescent check restores the size.
        let e = behind_its_back("efault", &[StormOp::DioReadSlow, StormOp::VmRead], |t| {
            let f = Fd::open(&t.file, libc::O_RDWR).unwrap();
            for _ in 0..100 {
                sys::ftruncate(&f, 4096).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        assert_eq!((e.kind, e.errno), (FailKind::IoError, Some(libc::EFAULT)), "{}", e.detail);
        assert!(e.detail.contains("with no truncate in the mix"), "{}", e.detail);
    }
}
