//! vmsplice: the DAX mapping's pages go into a pipe with vmsplice(2), then
//! from the pipe to the raw /dev/pmem1 with splice(2).
//!
//! vmsplice_to_pipe -> iter_to_pipe -> iov_iter_get_pages2 takes a reference
//! on every ZONE_DEVICE page of the mapping (GUP, get_user_pages_fast: the
//! lockless walk when the mapping is prefaulted, the slow path that faults
//! the entries in when it is untouched); the pipe buffers hold those pages
//! until splice consumes them: iter_file_splice_write builds a bvec over
//! them and writes it to the block device (O_DIRECT: blkdev_direct_write,
//! the bio points at the DAX pages; buffered: copied into the page cache),
//! then the pipe releases them (put_page of ZONE_DEVICE pages).
//!
//! The device is opened O_DIRECT when a probe splice to it is accepted,
//! otherwise buffered (the detail says which). `threads` threads, each with
//! its own pipe (F_SETPIPE_SZ 1 MiB when allowed), share the 1 MiB chunks.
//!
//! Oracle: after every run the device is read back with O_DIRECT into an
//! anonymous buffer and must hold the pattern the mapping held; a failed or
//! short call is IO_ERROR with its errno name, a mismatch DATA_CORRUPTION.
//! Each pass runs with a prefaulted mapping (GUP-fast) and a fresh untouched
//! one (slow GUP), with a Sample (MB/s of vmsplice + splice) each.

use std::time::Instant;

use kregress_agent::{Gup, WorkloadSpec};

use super::remote::{fill_without_mapping, mapping_note};
use super::{avg, ctx, gup_str, round2, sample, Failure, Finished, Target};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

/// The raw device and how it was opened.
struct Dev {
    fd: Fd,
    direct: bool,
    /// Why it is buffered, when it is.
    note: String,
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let file = t.open()?;
    let dev = open_dev(t)?;
    let reader = Fd::open(&t.raw_dev, libc::O_RDONLY | libc::O_DIRECT)?;
    let nthreads = (spec.threads as usize).clamp(1, size / MIB);
    let mut pipe_size = 0;
    let mut prefault_faults = 0;
    let mut rates: Vec<(Gup, f64)> = Vec::new();
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let label = format!("pass {pass} ({} GUP)", gup_str(gup));
            let seed = 0x7e5f_1000 + ((pass as u64) << 1 | (gup == Gup::Slow) as u64);
            let f0 = sys::minor_faults();
            let map = prepare_mapping(t, &file, size, seed, gup).map_err(|e| ctx(e, &label))?;
            if pass == 0 && gup == Gup::Fast {
                prefault_faults = sys::minor_faults() - f0;
            }
            let t0 = Instant::now();
            pipe_size = splice_all(&map, &dev, nthreads).map_err(|e| ctx(e, &label))?;
            let secs = t0.elapsed().as_secs_f64().max(1e-9);
            drop(map);
            verify_dev(&reader, size, seed, &label)?;
            let mbps = size as f64 / 1e6 / secs;
            sample(spec, pass, gup, mbps);
            rates.push((gup, mbps));
        }
    }
    let avg = |g: Option<Gup>| avg(&rates, g);
    Ok(Finished {
        mb_per_s: Some(round2(avg(None))),
        ops_per_s: None,
        detail: format!(
            "{} passes of {} MiB vmspliced from the DAX mapping and spliced to {} ({}{}), {nthreads} thread(s), pipe {} KiB, device content verified: \
             GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s{}; {}",
            spec.passes,
            size / MIB,
            t.raw_dev,
            if dev.direct { "O_DIRECT" } else { "buffered" },
            dev.note,
            pipe_size / 1024,
            avg(Some(Gup::Fast)),
            avg(Some(Gup::Slow)),
            if t.virtual_time { " (virtual time)" } else { "" },
            mapping_note(t, prefault_faults, size)
        ),
        counters: [("pipe_bytes".to_string(), pipe_size as u64), ("o_direct".to_string(), dev.direct as u64), ("prefault_faults".to_string(), prefault_faults)].into_iter().collect(),
        skipped: None,
    })
}

/// Opens the raw device O_DIRECT when the kernel takes a splice to it that
/// way (probe: one anonymous page vmspliced and spliced to offset 0), buffered otherwise.
fn open_dev(t: &Target) -> Result<Dev, SysError> {
    let fd = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let page = Map::anon(4096)?;
    unsafe { std::ptr::write_bytes(page.ptr, 0x5a, 4096) };
    let (r, w) = pipe(4096)?;
    vmsplice(&w, page.ptr, 4096).map_err(|e| ctx(e, "probe"))?;
    match splice(&r, &fd, 0, 4096) {
        Ok(4096) => Ok(Dev { fd, direct: true, note: String::new() }),
        Ok(n) => Ok(buffered(t, format!(": an O_DIRECT splice of 4096 bytes wrote {n}"))?),
        Err(e) => Ok(buffered(t, format!(": an O_DIRECT splice was refused with {}", sys::errno_name(e.errno)))?),
    }
}

fn buffered(t: &Target, note: String) -> Result<Dev, SysError> {
    Ok(Dev { fd: Fd::open(&t.raw_dev, libc::O_RDWR)?, direct: false, note })
}

/// A MAP_SHARED mapping holding `seed`'s pattern: written through the mapping
/// (every entry present, GUP-fast) or through the file / a mapping gone since
/// (a fresh mapping without entries, slow GUP).
fn prepare_mapping(t: &Target, file: &Fd, size: usize, seed: u64, gup: Gup) -> Result<Map, SysError> {
    if gup == Gup::Slow {
        fill_without_mapping(t, file, size, seed)?;
        return t.map_shared(file, size);
    }
    let mut m = t.map_shared(file, size)?;
    sys::fill_pattern(m.words_mut(), seed, 0);
    Ok(m)
}

/// Every chunk of `map` to the same offset of the device, `n` threads with a
/// pipe each. Returns the pipe size the threads got.
fn splice_all(map: &Map, dev: &Dev, n: usize) -> Result<usize, SysError> {
    let chunks = map.len / MIB;
    let base = map.ptr as usize;
    let results: Vec<Result<usize, SysError>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                sc.spawn(move || -> Result<usize, SysError> {
                    let (r, w) = pipe(MIB)?;
                    let psize = unsafe { libc::fcntl(w.0, libc::F_GETPIPE_SZ) } as usize;
                    for c in (i..chunks).step_by(n) {
                        splice_chunk(&r, &w, dev, base + c * MIB, c * MIB)?;
                    }
                    Ok(psize)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(SysError { what: "splice thread panicked".into(), errno: libc::EIO })))
            .collect()
    });
    let mut psize = 0;
    for r in results {
        psize = r?;
    }
    if !dev.direct {
        sys::fsync(&dev.fd)?;
    }
    Ok(psize)
}

/// 1 MiB at `addr` into the pipe and out to the device at `off`, as many
/// rounds as the pipe needs.
fn splice_chunk(r: &Fd, w: &Fd, dev: &Dev, addr: usize, off: usize) -> Result<(), SysError> {
    let mut done = 0;
    while done < MIB {
        let n = vmsplice(w, (addr + done) as *mut u8, MIB - done)?;
        let mut out = 0;
        while out < n {
            let m = splice(r, &dev.fd, off + done + out, n - out)?;
            if m == 0 {
                return Err(SysError {
                    what: format!("splice(pipe -> device at {}) returned 0 with {} bytes in the pipe", off + done + out, n - out),
                    errno: libc::EIO,
                });
            }
            out += m;
        }
        done += n;
    }
    Ok(())
}

pub(super) fn vmsplice(w: &Fd, p: *mut u8, len: usize) -> Result<usize, SysError> {
    let iov = libc::iovec { iov_base: p as *mut libc::c_void, iov_len: len };
    let _op = hang::op_begin("vmsplice");
    let n = unsafe { libc::vmsplice(w.0, &iov, 1, 0) };
    match n {
        n if n < 0 => Err(sys::last(format!("vmsplice({len} bytes at {p:?})"))),
        0 => Err(SysError { what: format!("vmsplice({len} bytes at {p:?}) returned 0"), errno: libc::EIO }),
        n => Ok(n as usize),
    }
}

pub(super) fn splice(r: &Fd, dev: &Fd, off: usize, len: usize) -> Result<usize, SysError> {
    let mut o = off as libc::loff_t;
    let _op = hang::op_begin("splice(pipe -> device)");
    let n = unsafe { libc::splice(r.0, std::ptr::null_mut(), dev.0, &mut o, len, 0) };
    if n < 0 {
        return Err(sys::last(format!("splice(pipe -> device, {len} bytes at {off})")));
    }
    Ok(n as usize)
}

/// A pipe of `size` bytes if F_SETPIPE_SZ allows it (the default size otherwise).
pub(super) fn pipe(size: usize) -> Result<(Fd, Fd), SysError> {
    let mut p = [0; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys::last("pipe2"));
    }
    let (r, w) = (Fd(p[0]), Fd(p[1]));
    unsafe { libc::fcntl(w.0, libc::F_SETPIPE_SZ, size as libc::c_int) };
    Ok((r, w))
}

/// The device's first `size` bytes, read with O_DIRECT, must hold `seed`'s pattern.
fn verify_dev(rd: &Fd, size: usize, seed: u64, label: &str) -> Result<(), Failure> {
    let buf = Map::anon(MIB)?;
    let words = (MIB / 8) as u64;
    for c in 0..size / MIB {
        sys::pread_exact(rd, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, &format!("{label}, reading the device back")))?;
        if let Some(m) = sys::check_pattern(buf.words(), seed, c as u64 * words) {
            return Err(Failure::corrupt(format!(
                "{label}: the device after vmsplice+splice differs from the mapping in chunk at byte {}: {} of {} words, first at byte {}: got {:#018x}, want {:#018x}",
                c * MIB,
                m.bad_words,
                MIB / 8,
                m.first_word * 8,
                m.got,
                m.want
            )));
        }
    }
    Ok(())
}
