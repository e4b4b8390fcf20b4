//! fork-cow-dio: fork() while O_DIRECT reads land in a MAP_PRIVATE mapping of the DAX file.
//!
//! The parent maps the file MAP_PRIVATE, writes a pre-fork pattern into the even
//! 256 KiB chunks (their pages become anonymous COW copies of the file's ZONE_DEVICE
//! pages) and leaves the odd chunks untouched (they still show the file's own pages,
//! read-only; the slow-GUP run does not even fault them in, the fast one read-faults
//! them and the written chunks have writable PTEs until the first fork). `threads`
//! threads then pread(O_DIRECT) /dev/pmem1 (a device pattern) into the mapping, one
//! chunk per call, while the parent fork()s up to [`MAX_FORKS`] times, spread over the pass.
//!
//! Kernel paths: blkdev_direct_IO -> bio_iov_iter_get_pages -> get_user_pages_fast
//! (FOLL_WRITE; GUP-fast, or the slow path's COW fault do_wp_page/wp_page_copy, from
//! the DAX pfn for untouched chunks), fork's copy_page_range/copy_present_pte
//! (write-protecting the parent's anonymous PTEs, page_try_dup_anon_rmap with
//! page_needs_cow_for_dma for pinned pages), and the child's faults on the file.
//! Note: in 6.1 block O_DIRECT takes FOLL_GET references, not FOLL_PIN pins, so the
//! pages are not "maybe DMA pinned" at fork; what keeps the child's view intact is
//! that fork write-protects the parent's PTEs, so a read that starts after the fork
//! COWs the page for the parent before the device data lands in it.
//!
//! Oracle, exact per fork: just before fork() the parent snapshots which chunks'
//! reads had completed (done-before-fork) and just after it which had started at all;
//! it sends both to the child. The child checks, right away and again once all the
//! parent's reads have finished: every done-before-fork chunk holds the device data,
//! every chunk whose read had not started by the time fork() returned holds what it
//! held before the fork (the pre-fork pattern, or the file's data for untouched
//! chunks); chunks in flight at fork may be either and are not checked. The child
//! reports the first mismatch through a pipe and exits 1. The parent checks that its
//! whole mapping holds the device data (including reads in flight at fork) and, after
//! the pass, that the file still holds its own data (MAP_PRIVATE writes never reach it).
//!
//! devdax: device-dax refuses MAP_PRIVATE (drivers/dax/device.c check_vma: EINVAL);
//! the workload checks that refusal (success or another errno is FAIL) and SKIPs,
//! as there are no COW copies of device-dax pages to race with fork.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use kregress_agent::{FailKind, Gup, Message, WorkloadSpec};

use super::{ctx, gup_str, round2, Failure, Finished, Target, DEV_SEED};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

/// Bytes per O_DIRECT read (one chunk of the mapping).
const CHUNK: usize = 256 << 10;
const WORDS_PER_CHUNK: u64 = (CHUNK / 8) as u64;
/// Children per run (each holds a COW view of the mapping until the run's end).
const MAX_FORKS: usize = 8;
/// What the file holds (and the untouched chunks show).
const FILE_SEED: u64 = 0x636f_775f_6669_6c65; // "cow_file"

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    if !t.is_file() {
        return devdax_refusal(spec, t);
    }
    let size = spec.size as usize;
    if !size.is_multiple_of(CHUNK) || size < 2 * CHUNK {
        return Err(Failure::io(libc::EINVAL, format!("size {size} is not a multiple of {CHUNK} (at least two chunks)")));
    }
    let file = Fd::open(&t.file, libc::O_RDWR)?;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let mut buf = Map::anon(MIB)?;
    for c in 0..size / MIB {
        let first = (c * MIB / 8) as u64;
        sys::fill_pattern(buf.words_mut(), FILE_SEED, first);
        sys::pwrite_exact(&file, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "writing the file pattern"))?;
        sys::fill_pattern(buf.words_mut(), DEV_SEED, first);
        sys::pwrite_exact(&dev, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "writing the device pattern"))?;
    }
    sys::fsync(&file)?;

    let mut tally = Tally::default();
    let mut rates: Vec<(Gup, f64, f64)> = Vec::new();
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let label = format!("pass {pass} ({} GUP)", gup_str(gup));
            let pre_seed = 0x7072_655f_666f_726b ^ ((pass as u64) << 1 | (gup == Gup::Slow) as u64); // "pre_fork"
            let (mbps, forks_per_s) = one_run(spec, t, &file, &dev, gup, pre_seed, &mut tally).map_err(|mut f| {
                f.detail = format!("{label}: {}", f.detail);
                f
            })?;
            check_file(&file, &mut buf, size).map_err(|mut f| {
                f.detail = format!("{label}: {}", f.detail);
                f
            })?;
            Message::Sample { workload: spec.name().into(), pass, gup, mb_per_s: Some(round2(mbps)), ops_per_s: Some(round2(forks_per_s)) }
                .emit();
            rates.push((gup, mbps, forks_per_s));
        }
    }
    let avg = |g: Option<Gup>, forks: bool| {
        let v: Vec<f64> = rates.iter().filter(|(x, _, _)| g.is_none_or(|g| *x == g)).map(|(_, m, f)| if forks { *f } else { *m }).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    if tally.in_flight_forks == 0 {
        return Err(Failure {
            kind: FailKind::IoError,
            errno: None,
            detail: format!("no fork happened while a read was in flight ({} forks): the race was not exercised", tally.forks),
            wedged: false,
            counters: Default::default(),
        });
    }
    Ok(Finished {
        mb_per_s: Some(round2(avg(None, false))),
        ops_per_s: Some(round2(avg(None, true))),
        detail: format!(
            "{} passes of {} MiB, {} forks ({} with reads in flight); children found {} done-before-fork chunks with the device data, \
             {} not-started chunks with their pre-fork data ({} written/anon, {} untouched/file), {} in-flight chunks unchecked; \
             parent mappings held the device data, the file kept its own; GUP-fast {:.1} MB/s {:.1} forks/s, slow GUP {:.1} MB/s {:.1} forks/s, {}{}",
            spec.passes,
            size / MIB,
            tally.forks,
            tally.in_flight_forks,
            tally.done_before,
            tally.not_started_written + tally.not_started_untouched,
            tally.not_started_written,
            tally.not_started_untouched,
            tally.in_flight,
            avg(Some(Gup::Fast), false),
            avg(Some(Gup::Fast), true),
            avg(Some(Gup::Slow), false),
            avg(Some(Gup::Slow), true),
            t.mapping,
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters: tally.counters(),
        skipped: None,
    })
}

/// device-dax must refuse a private mapping with EINVAL.
fn devdax_refusal(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let fd = t.open()?;
    match Map::private(&fd, spec.size as usize, t.mapping) {
        Err(e) if e.errno == libc::EINVAL => Ok(Finished::skip(
            "devdax: device-dax refuses MAP_PRIVATE (mmap gave EINVAL as check_vma requires), so there is no COW of its pages to race with fork",
        )),
        Err(e) => Err(Failure::io(e.errno, format!("{e}; device-dax must refuse MAP_PRIVATE with EINVAL"))),
        Ok(_) => Err(Failure {
            kind: FailKind::IoError,
            errno: None,
            detail: "mmap(MAP_PRIVATE) of device-dax succeeded; check_vma must refuse it with EINVAL".into(),
            wedged: false,
            counters: Default::default(),
        }),
    }
}

/// What the children checked, over all runs.
#[derive(Default)]
struct Tally {
    forks: u64,
    in_flight_forks: u64,
    done_before: u64,
    not_started_written: u64,
    not_started_untouched: u64,
    in_flight: u64,
}

impl Tally {
    fn add(&mut self, done: &[u8], started: &[u8]) {
        self.forks += 1;
        let mut in_flight = 0;
        for c in 0..done.len() {
            if done[c] != 0 {
                self.done_before += 1;
            } else if started[c] == 0 {
                if written(c) {
                    self.not_started_written += 1;
                } else {
                    self.not_started_untouched += 1;
                }
            } else {
                in_flight += 1;
            }
        }
        self.in_flight += in_flight;
        self.in_flight_forks += (in_flight > 0) as u64;
    }
    fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("forks", self.forks),
            ("forks_in_flight", self.in_flight_forks),
            ("chunks_done_before_fork", self.done_before),
            ("chunks_not_started_written", self.not_started_written),
            ("chunks_not_started_untouched", self.not_started_untouched),
            ("chunks_in_flight", self.in_flight),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Even chunks get the pre-fork pattern (anonymous COW copies); odd ones stay the file's.
fn written(c: usize) -> bool {
    c.is_multiple_of(2)
}

/// Children still alive; killed and reaped on drop (error paths).
struct Children(Vec<Child>);

struct Child {
    pid: libc::pid_t,
    /// Parent -> child: the snapshots, then one byte "the parent's reads are done".
    cmd: Fd,
    /// Child -> parent: one line, then EOF at exit.
    res: Fd,
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &self.0 {
            unsafe {
                libc::kill(c.pid, libc::SIGKILL);
                libc::waitpid(c.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// One run: map, prefill, race reads against forks, verify. Returns (MB/s, forks/s).
fn one_run(
    spec: &WorkloadSpec,
    t: &Target,
    file: &Fd,
    dev: &Fd,
    gup: Gup,
    pre_seed: u64,
    tally: &mut Tally,
) -> Result<(f64, f64), Failure> {
    let size = spec.size as usize;
    let chunks = size / CHUNK;
    let mut map = Map::private(file, size, t.mapping)?;
    for c in (0..chunks).filter(|&c| written(c)) {
        let w = c * CHUNK / 8;
        sys::fill_pattern(&mut map.words_mut()[w..w + CHUNK / 8], pre_seed, c as u64 * WORDS_PER_CHUNK);
    }
    if gup == Gup::Fast {
        // Read-fault the untouched chunks too: their PTEs map the file's pages read-only.
        for c in (0..chunks).filter(|&c| !written(c)) {
            for p in (c * CHUNK..(c + 1) * CHUNK).step_by(4096) {
                unsafe { std::ptr::read_volatile(map.ptr.add(p)) };
            }
        }
    }

    let started: Vec<AtomicBool> = (0..chunks).map(|_| AtomicBool::new(false)).collect();
    let done: Vec<AtomicBool> = (0..chunks).map(|_| AtomicBool::new(false)).collect();
    let ndone = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let nthreads = (spec.threads as usize).clamp(1, chunks);
    let mut children = Children(Vec::new());
    let base = map.ptr as usize;
    let t0 = Instant::now();
    let (io_errors, fork_error) = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..nthreads)
            .map(|_| {
                let (started, done, ndone, next, failed) = (&started, &done, &ndone, &next, &failed);
                sc.spawn(move || -> Result<(), SysError> {
                    loop {
                        let c = next.fetch_add(1, SeqCst);
                        if c >= chunks {
                            return Ok(());
                        }
                        let off = c * CHUNK;
                        started[c].store(true, SeqCst);
                        let r = {
                            let _op = hang::op_begin("pread(O_DIRECT) into MAP_PRIVATE");
                            sys::pread_exact(dev, (base + off) as *mut u8, CHUNK, off as u64)
                        };
                        if let Err(e) = r {
                            failed.store(true, SeqCst);
                            return Err(e);
                        }
                        done[c].store(true, SeqCst);
                        ndone.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        // Fork k waits until k/MAX_FORKS of the chunks are done: forks spread over the pass.
        let mut fork_error = None;
        for k in 0..MAX_FORKS {
            while ndone.load(SeqCst) < k * chunks / MAX_FORKS && !failed.load(SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
            if ndone.load(SeqCst) >= chunks || failed.load(SeqCst) {
                break;
            }
            match fork_child(&map, &done, &started, pre_seed) {
                Ok((child, snap)) => {
                    tally.add(&snap[..chunks], &snap[chunks..]);
                    children.0.push(child);
                }
                Err(e) => {
                    fork_error = Some(e);
                    break;
                }
            }
        }
        let errs: Vec<SysError> = handles.into_iter().filter_map(|h| h.join().ok().and_then(|r| r.err())).collect();
        (errs, fork_error)
    });
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    if let Some(e) = io_errors.into_iter().next().or(fork_error) {
        return Err(e.into());
    }
    let forks = children.0.len();
    if let Some(m) = sys::check_pattern(map.words(), DEV_SEED, 0) {
        return Err(Failure::corrupt(format!(
            "after {forks} forks the parent's mapping lacks the device data: {} of {} words differ, first at byte {} (chunk {}, {}): got {:#018x}, want {:#018x}{}",
            m.bad_words,
            size / 8,
            m.first_word * 8,
            m.first_word / WORDS_PER_CHUNK,
            if written(m.first_word as usize * 8 / CHUNK) { "written before fork" } else { "untouched before fork" },
            m.got,
            m.want,
            if m.got == sys::pattern_word(pre_seed, m.first_word) {
                " (the pre-fork data: the read landed in a page the parent no longer maps)"
            } else {
                ""
            }
        )));
    }
    reap(&mut children)?;
    drop(map);
    Ok((size as f64 / 1e6 / secs, forks as f64 / secs))
}

/// Snapshot, fork, send the snapshots. In the child this never returns.
fn fork_child(map: &Map, done: &[AtomicBool], started: &[AtomicBool], pre_seed: u64) -> Result<(Child, Vec<u8>), SysError> {
    let chunks = done.len();
    let (cmd_r, cmd_w) = pipe()?;
    let (res_r, res_w) = pipe()?;
    // [done-before-fork | started-by-fork-return], one byte per chunk.
    let mut snap = vec![0u8; 2 * chunks];
    for (s, d) in snap.iter_mut().zip(done) {
        *s = d.load(SeqCst) as u8;
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys::last("fork"));
    }
    if pid == 0 {
        // The child: no allocation, no locks (other threads' state was copied mid-flight).
        child_main(map, &cmd_r, &res_w, &mut snap, pre_seed);
    }
    drop((cmd_r, res_w));
    for (s, st) in snap[chunks..].iter_mut().zip(started) {
        *s = st.load(SeqCst) as u8;
    }
    write_all(&cmd_w, &snap).map_err(|e| ctx(e, "sending the snapshots to the child"))?;
    Ok((Child { pid, cmd: cmd_w, res: res_r }, snap))
}

/// The child's whole life: receive the snapshots, check, wait for the parent's
/// reads to finish, check again, report, _exit.
fn child_main(map: &Map, cmd: &Fd, res: &Fd, snap: &mut [u8], pre_seed: u64) -> ! {
    let mut msg = [0u8; 400];
    let mut code = 0;
    let chunks = snap.len() / 2;
    let len = if read_exact(cmd, snap).is_err() {
        code = 2;
        copy_msg(&mut msg, "child: no snapshots from the parent")
    } else {
        let (done, started) = snap.split_at(chunks);
        match check_view(map, done, started, pre_seed, "right after fork", &mut msg) {
            Some(n) => {
                code = 1;
                n
            }
            None => {
                let mut b = [0u8; 1];
                if read_exact(cmd, &mut b).is_err() {
                    code = 2;
                    copy_msg(&mut msg, "child: the parent did not signal the end of its reads")
                } else {
                    match check_view(map, done, started, pre_seed, "after the parent's reads finished", &mut msg) {
                        Some(n) => {
                            code = 1;
                            n
                        }
                        None => copy_msg(&mut msg, "ok"),
                    }
                }
            }
        }
    };
    let _ = write_all(res, &msg[..len]);
    unsafe { libc::_exit(code) }
}

fn copy_msg(msg: &mut [u8], s: &str) -> usize {
    let n = s.len().min(msg.len());
    msg[..n].copy_from_slice(&s.as_bytes()[..n]);
    n
}

/// The child's view against the snapshots; the first mismatch, formatted into `msg`.
fn check_view(map: &Map, done: &[u8], started: &[u8], pre_seed: u64, when: &str, msg: &mut [u8]) -> Option<usize> {
    let words = map.words();
    for c in 0..done.len() {
        let (seed, what) = if done[c] != 0 {
            (DEV_SEED, "done before fork, want the device data")
        } else if started[c] != 0 {
            continue; // in flight at fork: either content is legal
        } else if written(c) {
            (pre_seed, "not started by fork, written before it, want the pre-fork data")
        } else {
            (FILE_SEED, "not started by fork, untouched before it, want the file's data")
        };
        let first = c as u64 * WORDS_PER_CHUNK;
        for i in first..first + WORDS_PER_CHUNK {
            let got = words[i as usize];
            let want = sys::pattern_word(seed, i);
            if got != want {
                let is = if got == sys::pattern_word(DEV_SEED, i) {
                    "the device data"
                } else if got == sys::pattern_word(pre_seed, i) {
                    "the pre-fork data"
                } else if got == sys::pattern_word(FILE_SEED, i) {
                    "the file's data"
                } else {
                    "neither pattern"
                };
                let total = msg.len();
                let mut w: &mut [u8] = msg;
                let _ = write!(
                    w,
                    "child {} ({when}): chunk {c} ({what}), byte {}: got {got:#018x} ({is}), want {want:#018x}",
                    unsafe { libc::getpid() },
                    i * 8
                );
                return Some(total - w.len());
            }
        }
    }
    None
}

/// Tell every child the reads are done, collect its line, reap it.
fn reap(children: &mut Children) -> Result<(), Failure> {
    for c in &children.0 {
        // EPIPE: the child is gone already (a failed first check exits at once); its line says why.
        match write_all(&c.cmd, &[1]) {
            Err(e) if e.errno != libc::EPIPE => return Err(ctx(e, "signalling a child").into()),
            _ => {}
        }
    }
    let mut first_bad: Option<String> = None;
    let mut bad = 0;
    while let Some(c) = children.0.pop() {
        let mut line = Vec::new();
        {
            let _op = hang::op_begin("waiting for a fork child's check");
            let mut b = [0u8; 512];
            loop {
                let n = unsafe { libc::read(c.res.0, b.as_mut_ptr() as *mut libc::c_void, b.len()) };
                if n <= 0 {
                    break;
                }
                line.extend_from_slice(&b[..n as usize]);
            }
        }
        let mut status = 0;
        let r = unsafe { libc::waitpid(c.pid, &mut status, 0) };
        let line = String::from_utf8_lossy(&line).into_owned();
        let ok = r == c.pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 && line == "ok";
        if !ok {
            bad += 1;
            first_bad = Some(if r != c.pid {
                format!("waitpid({}): {}", c.pid, sys::errno_name(sys::errno()))
            } else if libc::WIFSIGNALED(status) {
                format!("child {} killed by signal {} ({line})", c.pid, libc::WTERMSIG(status))
            } else {
                format!("child exit status {}: {line}", libc::WEXITSTATUS(status))
            });
        }
    }
    match first_bad {
        None => Ok(()),
        Some(d) => Err(Failure::corrupt(format!("{bad} fork children saw wrong data, e.g. {d}"))),
    }
}

/// The file itself (read through the descriptor) still holds its own data.
fn check_file(file: &Fd, buf: &mut Map, size: usize) -> Result<(), Failure> {
    for c in 0..size / MIB {
        sys::pread_exact(file, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "reading the file back"))?;
        if let Some(m) = sys::check_pattern(buf.words(), FILE_SEED, (c * MIB / 8) as u64) {
            return Err(Failure::corrupt(format!(
                "the file changed under its MAP_PRIVATE mapping: {} words differ in MiB {c}, first at byte {}: got {:#018x}, want {:#018x}",
                m.bad_words,
                m.first_word * 8,
                m.got,
                m.want
            )));
        }
    }
    Ok(())
}

fn pipe() -> Result<(Fd, Fd), SysError> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys::last("pipe2"));
    }
    Ok((Fd(fds[0]), Fd(fds[1])))
}

fn write_all(fd: &Fd, mut b: &[u8]) -> Result<(), SysError> {
    while !b.is_empty() {
        let n = unsafe { libc::write(fd.0, b.as_ptr() as *const libc::c_void, b.len()) };
        if n < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            return Err(sys::last("write(pipe)"));
        }
        b = &b[n as usize..];
    }
    Ok(())
}

fn read_exact(fd: &Fd, mut b: &mut [u8]) -> Result<(), SysError> {
    while !b.is_empty() {
        let n = unsafe { libc::read(fd.0, b.as_mut_ptr() as *mut libc::c_void, b.len()) };
        if n < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return Err(sys::last("read(pipe)"));
        }
        b = &mut b[n as usize..];
    }
    Ok(())
}
