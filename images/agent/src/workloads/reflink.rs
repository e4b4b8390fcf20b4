//! reflink-dio: XFS reflink on DAX, with copy-on-write of shared extents whose
//! pages O_DIRECT is pinning.
//!
//! Each run (every pass runs twice, GUP-fast then slow GUP) writes a fresh
//! pattern into the DAX test file (the source), clones it whole into
//! `<file>.clone` (FICLONE) and its middle half into `<file>.rclone` at the same
//! offset (FICLONERANGE), so every block of the source is shared. Then, all at
//! once, over the 1 MiB chunks c of the file:
//!
//! * `threads` threads O_DIRECT-pread /dev/pmem1 into a MAP_SHARED mapping of
//!   the source for chunks c%4 in {0,1}: GUP with FOLL_WRITE on pages of shared
//!   extents, so the write fault inside GUP unshares them (dax_iomap_fault with
//!   a COW srcmap, xfs_reflink_end_cow) while the block layer pins them;
//! * one thread writes chunks c%4 in {1,2} of the clone through its own
//!   MAP_SHARED mapping (the clone's COW of the same shared blocks, racing the
//!   source's) and pwrite()s chunks c%4 == 2 of the source (dax_iomap_rw COW).
//!
//! GUP-fast: the source mapping is prefaulted by reads (read-only PTEs of
//! shared blocks: GUP-fast finds them but must fall back for FOLL_WRITE); slow
//! GUP: a fresh mapping. Oracle (pread of the three files after unmapping):
//! the source holds the device data in chunks {0,1}, the pwrite data in {2} and
//! the pattern in {3}; the clone holds its written data in {1,2} and the
//! pattern elsewhere; the range clone is a hole up to the cloned range and the
//! pattern in it. Then the two mappings, still mapped, must show the same as
//! the files: a chunk that still shows its pre-write data is a PTE left on a
//! block COW moved away (6.1's dax_iomap_iter() invalidates the mapping only
//! for IOMAP_F_NEW; upstream d1d4e0bdf8a9 "fsdax: invalidate pages when CoW",
//! v6.2, also does it for COW). Any unexpected errno is FAIL. ext4 (no
//! remap_file_range) and XFS made without reflink refuse FICLONE: SKIP with that errno.

use std::sync::Barrier;
use std::time::Instant;

use kregress_agent::{Gup, Message, WorkloadSpec};

use super::{ctx, gup_str, round2, Failure, Finished, Target};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

/// _IOW(0x94, 9, int) and _IOW(0x94, 13, struct file_clone_range).
const FICLONE: libc::c_ulong = 0x4004_9409;
const FICLONERANGE: libc::c_ulong = 0x4020_940d;
const DEV_SEED: u64 = 0x7265_666c_696e_6b31;

#[repr(C)]
struct FileCloneRange {
    src_fd: i64,
    src_offset: u64,
    src_length: u64,
    dest_offset: u64,
}

/// What chunk `c` of each file must hold after a run.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    /// The run's original pattern.
    Orig,
    /// The device data O_DIRECT read in.
    Dev,
    /// What pwrite put into the source.
    Pwritten,
    /// What was written through the clone's mapping.
    CloneWritten,
}

fn want_source(c: usize) -> Want {
    match c % 4 {
        0 | 1 => Want::Dev,
        2 => Want::Pwritten,
        _ => Want::Orig,
    }
}

fn want_clone(c: usize) -> Want {
    match c % 4 {
        1 | 2 => Want::CloneWritten,
        _ => Want::Orig,
    }
}

/// Seeds of one run.
#[derive(Clone, Copy)]
struct Seeds {
    orig: u64,
    pwritten: u64,
    clone: u64,
}

impl Seeds {
    fn new(run: u64) -> Seeds {
        Seeds { orig: 0x0c10_0000 + run, pwritten: 0x0b11_0000 + run, clone: 0x0c1e_0000 + run }
    }
    fn of(&self, w: Want) -> Option<u64> {
        Some(match w {
            Want::Orig => self.orig,
            Want::Dev => DEV_SEED,
            Want::Pwritten => self.pwritten,
            Want::CloneWritten => self.clone,
        })
    }
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let chunks = size / MIB;
    if chunks < 4 {
        return Err(Failure::io(libc::EINVAL, "reflink-dio: size must be at least 4M"));
    }
    let src = t.open()?;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let clone_path = format!("{}.clone", t.file);
    let rclone_path = format!("{}.rclone", t.file);
    let mut buf = Map::anon(MIB)?;
    for c in 0..chunks {
        sys::fill_pattern(buf.words_mut(), DEV_SEED, (c * MIB / 8) as u64);
        sys::pwrite_exact(&dev, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "writing the device pattern"))?;
    }

    let mut rates: Vec<(Gup, f64, f64)> = Vec::new();
    let mut bad_maps: Vec<String> = Vec::new();
    let mut n = 0u64;
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let run = format!("pass {pass} ({} GUP)", gup_str(gup));
            let seeds = Seeds::new(n);
            n += 1;
            let _ = std::fs::remove_file(&clone_path);
            let _ = std::fs::remove_file(&rclone_path);
            write_file(&src, &mut buf, size, seeds.orig).map_err(|e| ctx(e, &run))?;
            let clone = Fd::open(&clone_path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
            if let Err(e) = ficlone(&clone, &src) {
                if matches!(e.errno, libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL) && pass == 0 && gup == Gup::Fast {
                    drop(clone);
                    let _ = std::fs::remove_file(&clone_path);
                    return Ok(Finished::skip(format!(
                        "FICLONE of the DAX file = {}: the filesystem does not reflink",
                        sys::errno_name(e.errno)
                    )));
                }
                return Err(ctx(e, &run).into());
            }
            let rclone = Fd::open(&rclone_path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
            let (r0, rlen) = (size / 4, size / 2);
            ficlone_range(&rclone, &src, r0, rlen).map_err(|e| ctx(e, &run))?;

            let (secs, ops, smap, cmap) = race(spec, t, &src, &clone, &dev, size, seeds, gup).map_err(|mut f| {
                f.detail = format!("{run}: {}", f.detail);
                f
            })?;

            check(&src, &mut buf, size, |c| seeds.of(want_source(c))).map_err(|m| with_run(m, &run, "source"))?;
            check(&clone, &mut buf, size, |c| seeds.of(want_clone(c))).map_err(|m| with_run(m, &run, "clone"))?;
            let rsize = file_size(&rclone)?;
            if rsize != (r0 + rlen) as u64 {
                return Err(Failure::corrupt(format!("{run}: the range clone is {rsize} bytes, want {}", r0 + rlen)));
            }
            check(&rclone, &mut buf, r0 + rlen, |c| if c * MIB < r0 { None } else { Some(seeds.orig) })
                .map_err(|m| with_run(m, &run, "range clone"))?;
            // The mappings must show what the files hold: no PTE left on a block COW moved away.
            // Recorded, not returned at once: the other runs tell which GUP path shows it.
            let stale = |c: usize| Some(seeds.orig).filter(|_| want_source(c) != Want::Orig);
            if let Err(m) = check_words(smap.words(), |c| seeds.of(want_source(c)), stale) {
                bad_maps.push(with_run(m, &run, "source's mapping").detail);
            }
            let stale = |c: usize| Some(seeds.orig).filter(|_| want_clone(c) != Want::Orig);
            if let Err(m) = check_words(cmap.words(), |c| seeds.of(want_clone(c)), stale) {
                bad_maps.push(with_run(m, &run, "clone's mapping").detail);
            }
            drop((smap, cmap));

            let dio_bytes = chunks.div_ceil(2) as f64 * MIB as f64;
            let mbps = dio_bytes / 1e6 / secs;
            let opss = ops as f64 / secs;
            Message::Sample { workload: spec.name().into(), pass, gup, mb_per_s: Some(round2(mbps)), ops_per_s: Some(round2(opss)) }.emit();
            rates.push((gup, mbps, opss));
        }
    }
    let _ = std::fs::remove_file(&clone_path);
    let _ = std::fs::remove_file(&rclone_path);
    if !bad_maps.is_empty() {
        return Err(Failure::corrupt(format!(
            "the files are right (pread) but {} of {} runs' mappings are not: {}",
            bad_maps.len(),
            rates.len(),
            bad_maps.join("; ")
        )));
    }
    let avg = |g: Option<Gup>, f: fn(&(Gup, f64, f64)) -> f64| {
        let v: Vec<f64> = rates.iter().filter(|r| g.is_none_or(|g| r.0 == g)).map(f).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Ok(Finished {
        mb_per_s: Some(round2(avg(None, |r| r.1))),
        ops_per_s: Some(round2(avg(None, |r| r.2))),
        detail: format!(
            "{} passes of {} MiB, {} mapping: FICLONE + FICLONERANGE, O_DIRECT reads into the source's shared \
             extents ({} thread(s)) while the clone's mapping and pwrite on the source COW them; source, clone \
             and range clone verified; GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s of O_DIRECT, {:.0} ops/s{}",
            spec.passes,
            size / MIB,
            t.mapping,
            spec.threads,
            avg(Some(Gup::Fast), |r| r.1),
            avg(Some(Gup::Slow), |r| r.1),
            avg(None, |r| r.2),
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters: [("runs".to_string(), rates.len() as u64)].into_iter().collect(),
        skipped: None,
    })
}

fn ficlone(dst: &Fd, src: &Fd) -> Result<(), SysError> {
    let _op = hang::op_begin("ioctl(FICLONE)");
    if unsafe { libc::ioctl(dst.0, FICLONE, src.0 as libc::c_long) } != 0 {
        return Err(sys::last("ioctl(FICLONE)"));
    }
    Ok(())
}

fn ficlone_range(dst: &Fd, src: &Fd, off: usize, len: usize) -> Result<(), SysError> {
    let r = FileCloneRange { src_fd: src.0 as i64, src_offset: off as u64, src_length: len as u64, dest_offset: off as u64 };
    let _op = hang::op_begin("ioctl(FICLONERANGE)");
    if unsafe { libc::ioctl(dst.0, FICLONERANGE, &r) } != 0 {
        return Err(sys::last(format!("ioctl(FICLONERANGE, {off}+{len})")));
    }
    Ok(())
}

fn file_size(fd: &Fd) -> Result<u64, SysError> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.0, &mut st) } != 0 {
        return Err(sys::last("fstat"));
    }
    Ok(st.st_size as u64)
}

fn write_file(f: &Fd, buf: &mut Map, size: usize, seed: u64) -> Result<(), SysError> {
    for c in 0..size / MIB {
        sys::fill_pattern(buf.words_mut(), seed, (c * MIB / 8) as u64);
        sys::pwrite_exact(f, buf.ptr, MIB, (c * MIB) as u64)?;
    }
    sys::fsync(f)
}

/// The race of one run; returns its seconds, the number of operations and
/// the source's and the clone's mappings (still mapped, for the check).
#[allow(clippy::too_many_arguments)]
fn race(
    spec: &WorkloadSpec,
    t: &Target,
    src: &Fd,
    clone: &Fd,
    dev: &Fd,
    size: usize,
    seeds: Seeds,
    gup: Gup,
) -> Result<(f64, u64, Map, Map), Failure> {
    let chunks = size / MIB;
    let smap = t.map_shared(src, size)?;
    if gup == Gup::Fast {
        for off in (0..size).step_by(4096) {
            unsafe { std::ptr::read_volatile(smap.ptr.add(off) as *const u64) };
        }
    }
    let mut cmap = t.map_shared(clone, size)?;
    let mut pbuf = Map::anon(MIB)?;
    let dio_chunks: Vec<usize> = (0..chunks).filter(|c| want_source(*c) == Want::Dev).collect();
    let nthreads = (spec.threads as usize).clamp(1, dio_chunks.len());
    let barrier = Barrier::new(nthreads + 1);
    let base = smap.ptr as usize;
    let t0 = Instant::now();
    let result: Result<u64, SysError> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..nthreads)
            .map(|i| {
                let (dio_chunks, barrier) = (&dio_chunks, &barrier);
                sc.spawn(move || -> Result<u64, SysError> {
                    barrier.wait();
                    let mut ops = 0;
                    for &c in dio_chunks.iter().skip(i).step_by(nthreads) {
                        let off = c * MIB;
                        let _op = hang::op_begin("pread(O_DIRECT) into shared extents");
                        sys::pread_exact(dev, (base + off) as *mut u8, MIB, off as u64)
                            .map_err(|e| ctx(e, "O_DIRECT read into the source mapping"))?;
                        ops += 1;
                    }
                    Ok(ops)
                })
            })
            .collect();
        barrier.wait();
        let mut ops = 0u64;
        let mut first_err = None;
        for c in 0..chunks {
            let off = c * MIB;
            if want_clone(c) == Want::CloneWritten {
                let words = &mut cmap.words_mut()[off / 8..(off + MIB) / 8];
                sys::fill_pattern(words, seeds.clone, (off / 8) as u64);
                ops += 1;
            }
            if want_source(c) == Want::Pwritten {
                sys::fill_pattern(pbuf.words_mut(), seeds.pwritten, (off / 8) as u64);
                let _op = hang::op_begin("pwrite into shared extents");
                if let Err(e) = sys::pwrite_exact(src, pbuf.ptr, MIB, off as u64) {
                    first_err.get_or_insert(ctx(e, "pwrite on the source"));
                }
                ops += 1;
            }
        }
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => ops += n,
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(SysError { what: "an O_DIRECT thread panicked".into(), errno: libc::EIO });
                }
            }
        }
        first_err.map_or(Ok(ops), Err)
    });
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    Ok((secs, result?, smap, cmap))
}

/// A verification failure: chunk, mismatch.
struct Bad(String);

fn with_run(b: Bad, run: &str, file: &str) -> Failure {
    Failure::corrupt(format!("{run}: the {file} {}", b.0))
}

/// Reads `len` bytes of `f` and checks chunk c against `seed(c)` (None: zeros).
fn check(f: &Fd, buf: &mut Map, len: usize, seed: impl Fn(usize) -> Option<u64>) -> Result<(), Bad> {
    for c in 0..len / MIB {
        let off = c * MIB;
        sys::pread_exact(f, buf.ptr, MIB, off as u64).map_err(|e| Bad(format!("cannot be read back: {e}")))?;
        check_chunk(buf.words(), c, seed(c))?;
    }
    Ok(())
}

/// Checks every 1 MiB chunk c of `words` (a whole mapping) against `seed(c)`;
/// a chunk that holds `stale(c)` instead is named as such.
fn check_words(words: &[u64], seed: impl Fn(usize) -> Option<u64>, stale: impl Fn(usize) -> Option<u64>) -> Result<(), Bad> {
    for (c, w) in words.chunks(MIB / 8).enumerate() {
        check_chunk(w, c, seed(c)).map_err(|b| match stale(c) {
            Some(s) if sys::check_pattern(w, s, (c * MIB / 8) as u64).is_none() => {
                Bad(format!("{}; the mapping still shows the pre-write data of the chunk (a stale PTE)", b.0))
            }
            _ => b,
        })?;
    }
    Ok(())
}

fn check_chunk(words: &[u64], c: usize, seed: Option<u64>) -> Result<(), Bad> {
    let off = c * MIB;
    let m = match seed {
        Some(s) => sys::check_pattern(words, s, (off / 8) as u64).map(|m| (m.bad_words, m.first_word * 8, m.got)),
        None => {
            words.iter().position(|&w| w != 0).map(|i| (words.iter().filter(|&&w| w != 0).count() as u64, (off + i * 8) as u64, words[i]))
        }
    };
    match m {
        None => Ok(()),
        Some((bad, at, got)) => Err(Bad(format!(
            "differs in chunk {c} (want {}): {bad} words, first at byte {at:#x}: got {got:#018x}",
            match seed {
                Some(DEV_SEED) => "the device data".to_string(),
                Some(s) => format!("pattern {s:#x}"),
                None => "a hole".to_string(),
            }
        ))),
    }
}
