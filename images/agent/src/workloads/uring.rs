//! io_uring workloads (crate `io-uring`), both against /dev/pmem1 opened O_DIRECT.
//!
//! `uring-fixed`: IORING_REGISTER_BUFFERS of the DAX mapping. io_uring/rsrc.c
//! io_pin_pages() pins it with pin_user_pages(FOLL_WRITE|FOLL_LONGTERM), i.e.
//! __gup_longterm_locked() -> check_vma_flags() (which refuses fsdax VMAs) and
//! check_and_migrate_movable_pages(); io_uring then refuses file-backed buffers that
//! are neither shmem nor hugetlbfs. Oracle: an anonymous buffer (the control) must
//! register, move data with READ_FIXED/WRITE_FIXED and verify, or the kernel lacks
//! io_uring (ENOSYS: SKIP). An fsdax mapping must be refused with EOPNOTSUPP: success is
//! a longterm pin of fsdax pages (FAIL), another errno is FAIL. A devdax mapping may be
//! refused with EOPNOTSUPP (6.1) or registered; once registered, WRITE_FIXED from it and
//! READ_FIXED into it (bio_vecs of ZONE_DEVICE pages, no GUP per I/O) must move verified
//! data, and unregistering unpins the pages (unpin_user_pages of devmap pages).
//!
//! `uring-dio`: IORING_OP_WRITE from the DAX mapping (GUP for read) and IORING_OP_READ
//! into it (GUP for write), not fixed, QUEUE_DEPTH I/Os of IO_SIZE in flight per ring,
//! one ring per thread, through __blkdev_direct_IO_async. Each I/O takes its page
//! references in the submission path (bio_iov_iter_get_pages -> get_user_pages_fast,
//! FOLL_GET on 6.1; from io-wq when it would block) and blkdev_bio_end_io_async
//! releases them in bio completion (bio_release_pages, dirtying them after a read),
//! many ZONE_DEVICE pages per completion batch. Oracle: every CQE transfers its
//! whole length, the device holds what was written and the mapping what was read.
//!
//! Both run every pass on a pre-faulted mapping (GUP-fast finds the page table entries)
//! and on a fresh untouched one (slow GUP faults them in), and emit a Sample per pass
//! where data moves.

use std::time::Instant;

use io_uring::{opcode, squeue, types, IoUring};
use kregress_agent::{FailKind, Gup, WorkloadSpec};

use super::{avg, ctx, gup_str, round2, sample, Failure, Finished, Target, POISON};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

/// I/Os in flight per ring.
pub(super) const QUEUE_DEPTH: u32 = 32;
/// Bytes per I/O.
const IO_SIZE: usize = 128 << 10;

pub fn fixed(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let control = match control(&dev, size)? {
        Ok(secs) => secs,
        Err(skip) => return Ok(Finished::skip(skip)),
    };
    let file = t.open()?;
    let nthreads = (spec.threads as usize).clamp(1, size / MIB);
    let mut c = Tally::default();
    let mut rates: Vec<(Gup, f64)> = Vec::new();
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let run = format!("pass {pass} ({} GUP)", gup_str(gup));
            let seed = run_seed(pass, gup);
            let map = mapping_with(t, &file, gup, POISON ^ seed, size).map_err(|e| ctx(e, &run))?;
            let regs = register_parallel(&dev, &map, nthreads, seed, !t.is_file())
                .map_err(|f| Failure { detail: format!("{run}: {}", f.detail), ..f })?;
            let (mut secs, mut all_registered) = (0.0, true);
            for r in regs {
                match r {
                    Reg::Registered { .. } if t.is_file() => {
                        return Err(Failure {
                            kind: FailKind::IoError,
                            errno: None,
                            detail: format!("{run}: registration of an fsdax mapping succeeded: a longterm pin of fsdax pages"),
                            wedged: false,
                            counters: Default::default(),
                        });
                    }
                    Reg::Registered { secs: s } => {
                        c.registered += 1;
                        secs = f64::max(secs, s);
                    }
                    Reg::Refused(libc::EOPNOTSUPP) => {
                        c.refused += 1;
                        all_registered = false;
                    }
                    Reg::Refused(e) => {
                        return Err(Failure::io(
                            e,
                            format!(
                                "{run}: IORING_REGISTER_BUFFERS of the {} mapping: {} (want {})",
                                t.mode,
                                sys::errno_name(e),
                                if t.is_file() { "EOPNOTSUPP" } else { "EOPNOTSUPP or success" }
                            ),
                        ));
                    }
                }
            }
            if all_registered {
                // Every thread moved its share through its registered DAX buffer, both ways.
                let mbps = 2.0 * size as f64 / 1e6 / secs.max(1e-9);
                sample(spec, pass, gup, mbps);
                rates.push((gup, mbps));
            }
        }
    }
    Ok(fixed_result(t, size, control, &c, &rates))
}

/// How the DAX registrations of `uring-fixed` went.
#[derive(Default)]
struct Tally {
    registered: u64,
    refused: u64,
}

fn fixed_result(t: &Target, size: usize, control: f64, c: &Tally, rates: &[(Gup, f64)]) -> Finished {
    let control_note = format!(
        "; anonymous control registered, {} MiB each way verified at {:.1} MB/s",
        size / MIB,
        2.0 * size as f64 / 1e6 / control.max(1e-9)
    );
    let detail = match (t.is_file(), c.registered, c.refused) {
        (true, _, n) => format!("registration refused with EOPNOTSUPP (expected), {n} of {n} registrations"),
        (false, 0, n) => format!(
            "devdax registration refused with EOPNOTSUPP ({n} of {n} registrations; io_uring refuses file-backed buffers)"
        ),
        (false, r, n) => format!(
            "devdax registration succeeded ({r} registrations, {n} refused with EOPNOTSUPP); READ_FIXED/WRITE_FIXED of {} MiB each way verified; GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s",
            size / MIB,
            avg(rates, Some(Gup::Fast)),
            avg(rates, Some(Gup::Slow))
        ),
    };
    Finished {
        mb_per_s: (!rates.is_empty()).then(|| round2(avg(rates, None))),
        ops_per_s: None,
        detail: format!("{detail}{control_note}{}", if t.virtual_time { " (virtual time)" } else { "" }),
        counters: [("registered", c.registered), ("refused_eopnotsupp", c.refused)].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        skipped: None,
    }
}

/// The control: an anonymous buffer of `size` bytes must register and move verified
/// data both ways. Ok(Ok(seconds)), Ok(Err(reason)) when io_uring is missing (SKIP).
fn control(dev: &Fd, size: usize) -> Result<Result<f64, String>, Failure> {
    let mut ring = match IoUring::new(QUEUE_DEPTH) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            return Ok(Err("io_uring not available (io_uring_setup: ENOSYS)".into()));
        }
        Err(e) => return Err(io_failure(&e, "io_uring_setup")),
    };
    let mut buf = Map::anon(size)?;
    buf.words_mut().fill(POISON);
    let iov = libc::iovec { iov_base: buf.ptr as *mut libc::c_void, iov_len: size };
    // SAFETY: `buf` outlives the registration (unregistered below, the ring dropped before it).
    if let Err(e) = unsafe { ring.submitter().register_buffers(&[iov]) } {
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(Err("io_uring not available (IORING_REGISTER_BUFFERS: ENOSYS)".into()));
        }
        return Err(io_failure(&e, "IORING_REGISTER_BUFFERS of an anonymous buffer (the control)"));
    }
    let secs = fixed_transfer(&mut ring, dev, buf.ptr as usize, size, 0, 0x636f_6e74_726f_6c00)
        .map_err(|f| Failure { detail: format!("anonymous control: {}", f.detail), ..f })?;
    ring.submitter().unregister_buffers().map_err(|e| io_failure(&e, "IORING_UNREGISTER_BUFFERS of the control"))?;
    Ok(Ok(secs))
}

/// What one ring made of its registration.
enum Reg {
    Refused(i32),
    Registered { secs: f64 },
}

/// `nthreads` threads, each with its own ring, register their share of `map` (whole MiB)
/// as fixed buffer 0; where the kernel accepts and `transfer` is set, they move data
/// through it (see [`fixed_transfer`]); then they unregister.
fn register_parallel(dev: &Fd, map: &Map, nthreads: usize, seed: u64, transfer: bool) -> Result<Vec<Reg>, Failure> {
    let chunks = map.len / MIB;
    let base = map.ptr as usize;
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..nthreads)
            .map(|i| {
                let (lo, hi) = (i * chunks / nthreads * MIB, (i + 1) * chunks / nthreads * MIB);
                sc.spawn(move || register_one(dev, base + lo, hi - lo, lo as u64, seed, transfer))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("uring-fixed thread panicked")).collect()
    })
}

fn register_one(dev: &Fd, addr: usize, len: usize, dev_off: u64, seed: u64, transfer: bool) -> Result<Reg, Failure> {
    let mut ring = IoUring::new(QUEUE_DEPTH).map_err(|e| io_failure(&e, "io_uring_setup"))?;
    let iov = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    let registered = {
        let _op = hang::op_begin("IORING_REGISTER_BUFFERS");
        // SAFETY: the mapping outlives the ring, which is dropped at the end of this function.
        unsafe { ring.submitter().register_buffers(&[iov]) }
    };
    if let Err(e) = registered {
        return Ok(Reg::Refused(e.raw_os_error().unwrap_or(libc::EIO)));
    }
    let secs = if transfer {
        fixed_transfer(&mut ring, dev, addr, len, dev_off, seed)
            .map_err(|f| Failure { detail: format!("registered DAX buffer: {}", f.detail), ..f })?
    } else {
        0.0
    };
    let _op = hang::op_begin("IORING_UNREGISTER_BUFFERS");
    ring.submitter().unregister_buffers().map_err(|e| io_failure(&e, "IORING_UNREGISTER_BUFFERS"))?;
    Ok(Reg::Registered { secs })
}

/// Through registered buffer 0 (`len` bytes at `addr`): fill it with pattern `seed`
/// (through the user mapping), WRITE_FIXED it to the device at `dev_off` and check the
/// device; poison it, READ_FIXED it back and check it. Returns the seconds of the two
/// transfers.
fn fixed_transfer(ring: &mut IoUring, dev: &Fd, addr: usize, len: usize, dev_off: u64, seed: u64) -> Result<f64, Failure> {
    let first = dev_off / 8;
    // SAFETY: `addr..addr+len` is a live read-write mapping owned by the caller.
    let words = unsafe { std::slice::from_raw_parts_mut(addr as *mut u64, len / 8) };
    sys::fill_pattern(words, seed, first);
    let writes = chunk_ios(true, addr, len, dev_off);
    let t0 = Instant::now();
    run_batch(ring, dev, &writes, Some(0)).map_err(|e| ctx(e, "WRITE_FIXED"))?;
    let mut secs = t0.elapsed().as_secs_f64();
    check_device(dev, seed, dev_off, len, "WRITE_FIXED from the registered buffer")?;
    words.fill(POISON);
    let reads = chunk_ios(false, addr, len, dev_off);
    let t0 = Instant::now();
    run_batch(ring, dev, &reads, Some(0)).map_err(|e| ctx(e, "READ_FIXED"))?;
    secs += t0.elapsed().as_secs_f64();
    check_words(words, seed, first, "READ_FIXED into the registered buffer")?;
    Ok(secs)
}

pub fn dio(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    if let Err(e) = IoUring::new(QUEUE_DEPTH) {
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(Finished::skip("io_uring not available (io_uring_setup: ENOSYS)"));
        }
        return Err(io_failure(&e, "io_uring_setup"));
    }
    let file = t.open()?;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let nthreads = (spec.threads as usize).clamp(1, size / IO_SIZE);
    let mut rates: Vec<(Gup, f64)> = Vec::new();
    let (mut wsecs, mut rsecs, mut ios) = (0.0, 0.0, 0u64);
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let run = format!("pass {pass} ({} GUP)", gup_str(gup));
            let seed = run_seed(pass, gup);
            // Writes from the mapping (GUP for read): the device must end up with the pattern.
            let map = mapping_with(t, &file, gup, seed, size).map_err(|e| ctx(e, &run))?;
            let writes = chunk_ios(true, map.ptr as usize, size, 0);
            let w =
                parallel_batches(&dev, &writes, nthreads).map_err(|e| ctx(e, &format!("{run}, IORING_OP_WRITE from the DAX mapping")))?;
            drop(map);
            check_device(&dev, seed, 0, size, &format!("{run}, IORING_OP_WRITE from the DAX mapping"))?;
            // Reads into a poisoned mapping (GUP for write): it must end up with the pattern.
            let map = mapping_with(t, &file, gup, POISON ^ seed, size).map_err(|e| ctx(e, &run))?;
            let reads = chunk_ios(false, map.ptr as usize, size, 0);
            let r = parallel_batches(&dev, &reads, nthreads).map_err(|e| ctx(e, &format!("{run}, IORING_OP_READ into the DAX mapping")))?;
            check_words(map.words(), seed, 0, &format!("{run}, IORING_OP_READ into the DAX mapping"))?;
            drop(map);
            let mbps = 2.0 * size as f64 / 1e6 / (w + r).max(1e-9);
            sample(spec, pass, gup, mbps);
            rates.push((gup, mbps));
            (wsecs, rsecs, ios) = (wsecs + w, rsecs + r, ios + (writes.len() + reads.len()) as u64);
        }
    }
    let moved = spec.passes as f64 * 2.0 * size as f64 / 1e6;
    Ok(Finished {
        mb_per_s: Some(round2(avg(&rates, None))),
        ops_per_s: None,
        detail: format!(
            "{} passes of {} MiB each way verified, {nthreads} ring(s) x {QUEUE_DEPTH} in flight x {} KiB; GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s (writes from the mapping {:.1}, reads into it {:.1}){}",
            spec.passes,
            size / MIB,
            IO_SIZE >> 10,
            avg(&rates, Some(Gup::Fast)),
            avg(&rates, Some(Gup::Slow)),
            moved / wsecs.max(1e-9),
            moved / rsecs.max(1e-9),
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters: [("ios".to_string(), ios)].into_iter().collect(),
        skipped: None,
    })
}

/// One I/O between user memory and the device.
#[derive(Clone, Copy)]
pub(super) struct Io {
    /// From memory to the device (else from the device into memory).
    pub write: bool,
    pub addr: usize,
    pub len: usize,
    pub dev_off: u64,
}

/// `len` bytes at `addr` <-> the device at `dev_off`, in IO_SIZE pieces.
fn chunk_ios(write: bool, addr: usize, len: usize, dev_off: u64) -> Vec<Io> {
    (0..len).step_by(IO_SIZE).map(|o| Io { write, addr: addr + o, len: IO_SIZE.min(len - o), dev_off: dev_off + o as u64 }).collect()
}

/// `ios` dealt round-robin to `nthreads` threads, each with its own ring. Returns the
/// seconds until the last one finished.
fn parallel_batches(dev: &Fd, ios: &[Io], nthreads: usize) -> Result<f64, SysError> {
    let t0 = Instant::now();
    let errors: Vec<SysError> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..nthreads)
            .map(|i| {
                let mine: Vec<Io> = ios.iter().skip(i).step_by(nthreads).copied().collect();
                sc.spawn(move || -> Result<(), SysError> {
                    let mut ring = IoUring::new(QUEUE_DEPTH).map_err(|e| sys_error(&e, "io_uring_setup"))?;
                    run_batch(&mut ring, dev, &mine, None)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().expect("uring-dio thread panicked").err()).collect()
    });
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(t0.elapsed().as_secs_f64()),
    }
}

/// Runs `ios` on `ring` with up to QUEUE_DEPTH in flight (`fixed`: through registered
/// buffer index). Every CQE must transfer the whole length. After the first error no
/// more is submitted, but what is in flight is reaped before returning.
pub(super) fn run_batch(ring: &mut IoUring, dev: &Fd, ios: &[Io], fixed: Option<u16>) -> Result<(), SysError> {
    let (mut next, mut inflight) = (0usize, 0usize);
    let mut first_err: Option<SysError> = None;
    loop {
        {
            let mut sq = ring.submission();
            while first_err.is_none() && next < ios.len() && inflight < QUEUE_DEPTH as usize {
                let e = sqe(dev, &ios[next], fixed).user_data(next as u64);
                // SAFETY: the buffers stay mapped until their CQEs are reaped below.
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
                next += 1;
                inflight += 1;
            }
        }
        if inflight == 0 {
            break;
        }
        let submitted = {
            let _op = hang::op_begin("io_uring_enter");
            ring.submit_and_wait(1)
        };
        match submitted {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            // The ring cannot be driven on: dropping it cancels what is left.
            Err(e) => return Err(first_err.unwrap_or_else(|| sys_error(&e, "io_uring_enter"))),
        }
        for cqe in ring.completion() {
            inflight -= 1;
            let io = &ios[cqe.user_data() as usize];
            let res = cqe.result();
            if res == io.len as i32 || first_err.is_some() {
                continue;
            }
            let what = format!("{} of {} bytes at device offset {}", if io.write { "write" } else { "read" }, io.len, io.dev_off);
            first_err = Some(if res < 0 {
                SysError { what, errno: -res }
            } else {
                SysError { what: format!("{what} completed {res} bytes"), errno: libc::EIO }
            });
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn sqe(dev: &Fd, io: &Io, fixed: Option<u16>) -> squeue::Entry {
    let fd = types::Fd(dev.0);
    let (p, n) = (io.addr as *mut u8, io.len as u32);
    match (io.write, fixed) {
        (false, None) => opcode::Read::new(fd, p, n).offset(io.dev_off).build(),
        (true, None) => opcode::Write::new(fd, p, n).offset(io.dev_off).build(),
        (false, Some(b)) => opcode::ReadFixed::new(fd, p, n, b).offset(io.dev_off).build(),
        (true, Some(b)) => opcode::WriteFixed::new(fd, p, n, b).offset(io.dev_off).build(),
    }
}

/// A mapping of the first `size` bytes of the DAX file/device holding pattern `seed`.
/// Fast: filled through the mapping itself, so every page table entry is present and
/// GUP-fast finds it. Slow: filled through the file (fsdax) or a temporary mapping
/// that is gone before (devdax, which has no write(2)), and mapped afresh, untouched.
fn mapping_with(t: &Target, file: &Fd, gup: Gup, seed: u64, size: usize) -> Result<Map, SysError> {
    if gup == Gup::Fast || !t.is_file() {
        let mut m = t.map_shared(file, size)?;
        sys::fill_pattern(m.words_mut(), seed, 0);
        if gup == Gup::Fast {
            return Ok(m);
        }
    } else {
        let mut buf = Map::anon(MIB)?;
        for c in 0..size / MIB {
            sys::fill_pattern(buf.words_mut(), seed, (c * MIB / 8) as u64);
            sys::pwrite_exact(file, buf.ptr, MIB, (c * MIB) as u64)?;
        }
    }
    t.map_shared(file, size)
}

/// The device's `len` bytes at `off` must hold pattern `seed` (word index from byte 0).
fn check_device(dev: &Fd, seed: u64, off: u64, len: usize, what: &str) -> Result<(), Failure> {
    let buf = Map::anon(MIB)?;
    for o in (0..len).step_by(MIB) {
        let n = MIB.min(len - o);
        let at = off + o as u64;
        sys::pread_exact(dev, buf.ptr, n, at).map_err(|e| ctx(e, &format!("{what}, reading back")))?;
        check_words(&buf.words()[..n / 8], seed, at / 8, &format!("{what}, device bytes {at}..{}", at + n as u64))?;
    }
    Ok(())
}

fn check_words(words: &[u64], seed: u64, first: u64, what: &str) -> Result<(), Failure> {
    match sys::check_pattern(words, seed, first) {
        None => Ok(()),
        Some(m) => Err(Failure::corrupt(format!(
            "{what}: {} of {} words differ, first at byte {}: got {:#018x}, want {:#018x}",
            m.bad_words,
            words.len(),
            m.first_word * 8,
            m.got,
            m.want
        ))),
    }
}

fn run_seed(pass: u32, gup: Gup) -> u64 {
    (((pass as u64) << 1 | (gup == Gup::Slow) as u64) + 1).wrapping_mul(0x1000_0001)
}

fn sys_error(e: &std::io::Error, what: &str) -> SysError {
    SysError { what: what.into(), errno: e.raw_os_error().unwrap_or(libc::EIO) }
}

fn io_failure(e: &std::io::Error, what: &str) -> Failure {
    sys_error(e, what).into()
}
