//! hwpoison: memory failure on a ZONE_DEVICE page.
//!
//! The DAX file (fsdax) or device (devdax) is filled with a pattern. For each of
//! `passes` pages (one in the first 2 MiB, the others spread over the rest) the
//! agent forks two children that inherit one MAP_SHARED mapping of it:
//!
//! * the observer sets PR_MCE_KILL_EARLY, touches the page and blocks on a pipe;
//! * the poisoner touches every page and calls madvise(MADV_HWPOISON) on the page.
//!
//! madvise_inject_error() -> memory_failure() -> memory_failure_dev_pagemap():
//! the pmem driver's pagemap op asks the filesystem holder (XFS with rmapbt:
//! mf_dax_kill_procs; otherwise -EOPNOTSUPP) and falls back to
//! mf_generic_kill_procs(), which sets PageHWPoison, collects every process that
//! maps the page (the current one always, others only with early kill),
//! unmap_mapping_range()s the page (the whole 2 MiB for a PMD mapping) and sends
//! SIGBUS: BUS_MCEERR_AR to the current task (forced), BUS_MCEERR_AO to the others.
//! 6.1's DAX fault path does not look at PageHWPoison, so a later access would
//! refault the page: the SIGBUS must come from madvise itself.
//!
//! Oracle, per page: the poisoner dies of SIGBUS BUS_MCEERR_AR at the poisoned
//! address (madvise returning 0 and the access going through is FAIL, an errno
//! from madvise is FAIL, except EINVAL/ENOSYS/EPERM which mean no
//! CONFIG_MEMORY_FAILURE / no CAP_SYS_ADMIN: SKIP); the observer dies of SIGBUS
//! BUS_MCEERR_AO at its own address of the page, and /proc/self/pagemap read in
//! its handler says the page is no longer mapped. Afterwards the agent (never
//! mapping the page while it is poisoned) checks the pattern on every other page
//! (pread on fsdax, a fresh mapping on devdax). The host checks the console for
//! BUG/WARN and the teardown. The poison cannot be cleared: madvise injection sets
//! no pmem badblocks (counted, as a check), so there is nothing a write to the
//! block device would clear; PageHWPoison goes with the struct pages when the
//! namespace is disabled at teardown. Hence hwpoison runs last in a boot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};

use kregress_agent::WorkloadSpec;

use super::{ctx, Failure, Finished, Target};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB, PMD_SIZE};

const MADV_HWPOISON: libc::c_int = 100;
const BUS_MCEERR_AR: i64 = 4;
const BUS_MCEERR_AO: i64 = 5;
const PAGE: usize = 4096;
const SEED: u64 = 0x6877_706f_6973_6f6e; // "hwpoison"

/// Child exit statuses (anything else is unexpected).
const EXIT_MADVISE_ERR: i32 = 11;
const EXIT_NO_FAULT: i32 = 12;
const EXIT_NO_SIGNAL: i32 = 13;

/// What a child saw, in a MAP_SHARED anonymous page both children and the agent see.
#[repr(C)]
struct Slot {
    /// The address of the page in the child's mapping.
    addr: AtomicI64,
    madvise_errno: AtomicI64,
    si_code: AtomicI64,
    si_addr: AtomicI64,
    si_addr_lsb: AtomicI64,
    /// 1: /proc/self/pagemap said present when the signal came, 0: not present, -1: unknown.
    present: AtomicI64,
}

#[repr(C)]
struct Report {
    poisoner: Slot,
    observer: Slot,
}

/// The report page: a fresh MAP_SHARED|MAP_ANONYMOUS page per pass.
struct Shared(*mut Report);

impl Shared {
    fn new() -> Result<Shared, SysError> {
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
        };
        if p == libc::MAP_FAILED {
            return Err(sys::last("mmap(MAP_SHARED|MAP_ANONYMOUS)"));
        }
        Ok(Shared(p as *mut Report))
    }
    fn get(&self) -> &Report {
        unsafe { &*self.0 }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.0 as *mut libc::c_void, PAGE) };
    }
}

/// The slot the SIGBUS handler of this (child) process writes to.
static mut SLOT: *const Slot = std::ptr::null();

/// SIGBUS handler of both children: record the siginfo and whether the page is
/// still mapped, then die of SIGBUS (SA_RESETHAND|SA_NODEFER: raise() kills).
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    unsafe {
        let slot = &*SLOT;
        let addr = (*info).si_addr() as usize;
        // struct siginfo on x86_64: the fault address at byte 16, si_addr_lsb (short) at 24.
        let lsb = *((info as *const u8).add(24) as *const i16);
        slot.si_code.store((*info).si_code as i64, SeqCst);
        slot.si_addr.store(addr as i64, SeqCst);
        slot.si_addr_lsb.store(lsb as i64, SeqCst);
        slot.present.store(page_present(slot.addr.load(SeqCst) as usize), SeqCst);
        libc::raise(libc::SIGBUS);
    }
}

/// Bit 63 of the page's /proc/self/pagemap entry (async-signal-safe: raw syscalls only).
fn page_present(addr: usize) -> i64 {
    let path = b"/proc/self/pagemap\0";
    unsafe {
        let fd = libc::open(path.as_ptr() as *const libc::c_char, libc::O_RDONLY);
        if fd < 0 {
            return -1;
        }
        let mut e: u64 = 0;
        let n = libc::pread(fd, &mut e as *mut u64 as *mut libc::c_void, 8, ((addr / PAGE) * 8) as libc::off_t);
        libc::close(fd);
        if n != 8 {
            return -1;
        }
        (e >> 63) as i64
    }
}

fn install_handler(slot: &Slot) {
    unsafe {
        SLOT = slot;
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_NODEFER;
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

/// Blocks until the other end writes a byte (true) or is closed (false).
fn wait_pipe(fd: libc::c_int) -> bool {
    let mut b = 0u8;
    loop {
        let n = unsafe { libc::read(fd, &mut b as *mut u8 as *mut libc::c_void, 1) };
        if n < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        return n == 1;
    }
}

fn poke_pipe(fd: libc::c_int) {
    let b = 1u8;
    unsafe { libc::write(fd, &b as *const u8 as *const libc::c_void, 1) };
}

struct Pipe {
    r: libc::c_int,
    w: libc::c_int,
}

impl Pipe {
    fn new() -> Result<Pipe, SysError> {
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(sys::last("pipe2"));
        }
        Ok(Pipe { r: fds[0], w: fds[1] })
    }
    fn close_w(&mut self) {
        if self.w >= 0 {
            unsafe { libc::close(self.w) };
            self.w = -1;
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close_w();
        unsafe { libc::close(self.r) };
    }
}

/// Observer child: early kill, touch the page, say ready, wait for the end.
/// Only raw syscalls after fork (the agent is multi-threaded).
fn observer(slot: &Slot, page: *mut u8, ready: &Pipe, done: &Pipe) -> ! {
    unsafe {
        install_handler(slot);
        slot.addr.store(page as i64, SeqCst);
        libc::prctl(libc::PR_MCE_KILL, libc::PR_MCE_KILL_SET, libc::PR_MCE_KILL_EARLY, 0, 0);
        std::ptr::read_volatile(page as *const u64);
        libc::close(ready.r);
        libc::close(done.w);
        poke_pipe(ready.w);
        wait_pipe(done.r);
        libc::_exit(EXIT_NO_SIGNAL);
    }
}

/// Poisoner child: fault in every page but those poisoned before (`done`), wait
/// for the go, poison the page, touch it.
fn poisoner(slot: &Slot, base: *mut u8, len: usize, page: *mut u8, done: &[usize], go: &Pipe) -> ! {
    unsafe {
        install_handler(slot);
        slot.addr.store(page as i64, SeqCst);
        for off in (0..len).step_by(PAGE).filter(|o| !done.contains(o)) {
            std::ptr::read_volatile(base.add(off) as *const u64);
        }
        libc::close(go.w);
        if !wait_pipe(go.r) {
            libc::_exit(0);
        }
        if libc::madvise(page as *mut libc::c_void, PAGE, MADV_HWPOISON) != 0 {
            slot.madvise_errno.store(sys::errno() as i64, SeqCst);
            libc::_exit(EXIT_MADVISE_ERR);
        }
        std::ptr::read_volatile(page as *const u64);
        libc::_exit(EXIT_NO_FAULT);
    }
}

fn fork() -> Result<libc::pid_t, SysError> {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys::last("fork"));
    }
    Ok(pid)
}

/// waitpid: Ok(signal) when killed by a signal, Err(status) when it exited.
fn reap(pid: libc::pid_t) -> Result<i32, i32> {
    let _op = hang::op_begin("waitpid(hwpoison child)");
    let mut st = 0;
    while unsafe { libc::waitpid(pid, &mut st, 0) } < 0 {
        if sys::errno() != libc::EINTR {
            return Err(-1);
        }
    }
    if libc::WIFSIGNALED(st) {
        Ok(libc::WTERMSIG(st))
    } else {
        Err(libc::WEXITSTATUS(st))
    }
}

/// Offset of the page poisoned in pass `k`: the first one inside the first
/// 2 MiB, the others in their own 2 MiB-aligned stretch of the mapping.
fn page_offset(k: u32, passes: u32, size: usize) -> usize {
    let stride = (size / passes as usize) & !(PMD_SIZE - 1);
    k as usize * stride + (3 + k as usize) * PAGE
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    if size / PMD_SIZE < spec.passes as usize {
        return Err(Failure::io(
            libc::EINVAL,
            format!("hwpoison: {} passes need {} MiB (one page per 2 MiB)", spec.passes, spec.passes * 2),
        ));
    }
    let file = t.open()?;
    fill(t, &file, size)?;
    let bb_before = badblocks();

    let mut offsets = Vec::new();
    let mut notes = Vec::new();
    let mut counters = BTreeMap::new();
    let t0 = std::time::Instant::now();
    for k in 0..spec.passes {
        let off = page_offset(k, spec.passes, size);
        match poison_one(t, &file, size, off, &offsets)? {
            Outcome::Poisoned(note) => notes.push(note),
            Outcome::Unsupported(e) => {
                return Ok(Finished::skip(format!(
                    "madvise(MADV_HWPOISON) = {}: no CONFIG_MEMORY_FAILURE or no CAP_SYS_ADMIN",
                    sys::errno_name(e)
                )))
            }
        }
        offsets.push(off);
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let (pages_checked, poisoned_readable) = verify(t, &file, size, &offsets)?;
    let bb_after = badblocks();
    counters.insert("pages_poisoned".into(), offsets.len() as u64);
    counters.insert("sigbus_ar".into(), offsets.len() as u64);
    counters.insert("sigbus_ao".into(), offsets.len() as u64);
    counters.insert("pages_verified".into(), pages_checked as u64);
    counters.insert("badblocks_before".into(), bb_before);
    counters.insert("badblocks_after".into(), bb_after);
    let how = if t.is_file() { "pread" } else { "a fresh mapping" };
    let readable = match poisoned_readable {
        Some(true) => ", the poisoned pages still read back intact through pread (no badblocks, no MCE under emulation)",
        Some(false) => ", the poisoned pages read back changed through pread",
        None => "",
    };
    Ok(Finished {
        mb_per_s: None,
        ops_per_s: Some(super::round2(offsets.len() as f64 / secs)),
        detail: format!(
            "{} {} pages poisoned at {}: {}; the other {pages_checked} pages intact ({how}){readable}; \
             pmem badblocks {bb_before} before, {bb_after} after (madvise injection records none, \
             nothing to clear: the poison stays until the namespace is disabled){}",
            offsets.len(),
            t.mapping,
            offsets.iter().map(|o| format!("{:#x}", o)).collect::<Vec<_>>().join(", "),
            notes.join("; "),
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters,
        skipped: None,
    })
}

/// Writes the pattern over the whole file or device.
fn fill(t: &Target, file: &Fd, size: usize) -> Result<(), Failure> {
    if t.is_file() {
        let mut buf = Map::anon(MIB)?;
        for c in 0..size / MIB {
            sys::fill_pattern(buf.words_mut(), SEED, (c * MIB / 8) as u64);
            sys::pwrite_exact(file, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "writing the pattern"))?;
        }
        sys::fsync(file)?;
    } else {
        let mut m = t.map_shared(file, size).map_err(|e| ctx(e, "mapping the device to fill it"))?;
        sys::fill_pattern(m.words_mut(), SEED, 0);
    }
    Ok(())
}

enum Outcome {
    Poisoned(String),
    /// madvise's errno when the kernel lacks memory failure or the capability.
    Unsupported(i32),
}

/// One poisoning at `off` with an observer; judges both children.
fn poison_one(t: &Target, file: &Fd, size: usize, off: usize, earlier: &[usize]) -> Result<Outcome, Failure> {
    let report = Shared::new()?;
    let r = report.get();
    let map = t.map_shared(file, size).map_err(|e| ctx(e, "mapping for the children"))?;
    let page = unsafe { map.ptr.add(off) };
    let mut ready = Pipe::new()?;
    let mut done = Pipe::new()?;
    let mut go = Pipe::new()?;

    let obs = fork()?;
    if obs == 0 {
        observer(&r.observer, page, &ready, &done);
    }
    let poi = match fork() {
        Ok(0) => poisoner(&r.poisoner, map.ptr, size, page, earlier, &go),
        Ok(p) => p,
        Err(e) => {
            done.close_w();
            let _ = reap(obs);
            return Err(e.into());
        }
    };
    // The agent (PID 1) must not map the page when it is poisoned.
    drop(map);
    ready.close_w();
    let observer_ready = wait_pipe(ready.r);
    if observer_ready {
        poke_pipe(go.w);
    }
    go.close_w();
    let p_fate = reap(poi);
    done.close_w();
    let o_fate = reap(obs);
    if !observer_ready {
        return Err(Failure::io(libc::EIO, format!("page {off:#x}: the observer child died before it was ready ({o_fate:?})")));
    }

    let at = format!("page {off:#x}");
    let p = &r.poisoner;
    match p_fate {
        Ok(libc::SIGBUS) => {}
        Ok(sig) => return Err(Failure::io(libc::EIO, format!("{at}: the poisoning child died of signal {sig}, not SIGBUS"))),
        Err(EXIT_MADVISE_ERR) => {
            let e = p.madvise_errno.load(SeqCst) as i32;
            if matches!(e, libc::EINVAL | libc::ENOSYS | libc::EPERM) {
                return Ok(Outcome::Unsupported(e));
            }
            return Err(Failure::io(e, format!("{at}: madvise(MADV_HWPOISON) failed: {}", sys::errno_name(e))));
        }
        Err(EXIT_NO_FAULT) => {
            return Err(Failure::io(
                libc::EIO,
                format!("{at}: madvise(MADV_HWPOISON) returned 0 without SIGBUS and the access to the poisoned page did not fault"),
            ))
        }
        Err(st) => return Err(Failure::io(libc::EIO, format!("{at}: the poisoning child exited with status {st}"))),
    }
    check_siginfo(&at, "poisoner", p, BUS_MCEERR_AR)?;
    let o = &r.observer;
    match o_fate {
        Ok(libc::SIGBUS) => {}
        Err(EXIT_NO_SIGNAL) => {
            return Err(Failure::io(libc::EIO, format!("{at}: the early-kill observer mapping the page got no SIGBUS (BUS_MCEERR_AO)")))
        }
        other => return Err(Failure::io(libc::EIO, format!("{at}: the observer child ended with {other:?}"))),
    }
    check_siginfo(&at, "observer", o, BUS_MCEERR_AO)?;
    if o.present.load(SeqCst) != 0 {
        return Err(Failure::io(
            libc::EIO,
            format!("{at}: the page was still mapped in the observer when its SIGBUS came (pagemap present = {})", o.present.load(SeqCst)),
        ));
    }
    Ok(Outcome::Poisoned(format!(
        "{at}: BUS_MCEERR_AR (lsb {}) to the poisoner, BUS_MCEERR_AO (lsb {}) to the observer, unmapped from it",
        p.si_addr_lsb.load(SeqCst),
        o.si_addr_lsb.load(SeqCst)
    )))
}

/// The child's SIGBUS carries `code` and the child's address of the page
/// (rounded down to the unmapped size for a PMD mapping).
fn check_siginfo(at: &str, who: &str, s: &Slot, code: i64) -> Result<(), Failure> {
    let name = |c: i64| match c {
        BUS_MCEERR_AR => "BUS_MCEERR_AR".to_string(),
        BUS_MCEERR_AO => "BUS_MCEERR_AO".to_string(),
        c => format!("si_code {c}"),
    };
    let (got, addr, want_addr, lsb) =
        (s.si_code.load(SeqCst), s.si_addr.load(SeqCst) as usize, s.addr.load(SeqCst) as usize, s.si_addr_lsb.load(SeqCst));
    if got != code {
        return Err(Failure::io(libc::EIO, format!("{at}: the {who}'s SIGBUS is {}, want {}", name(got), name(code))));
    }
    let ok_lsb = lsb == 12 || lsb == 21;
    let mask = if ok_lsb { !((1usize << lsb) - 1) } else { !0 };
    if !ok_lsb || addr & mask != want_addr & mask {
        return Err(Failure::io(libc::EIO, format!("{at}: the {who}'s SIGBUS names {addr:#x} (lsb {lsb}), the page is at {want_addr:#x}")));
    }
    Ok(())
}

/// Checks the pattern on every page but the poisoned ones; returns how many
/// pages were checked and, on fsdax, whether the poisoned pages read back intact.
fn verify(t: &Target, file: &Fd, size: usize, poisoned: &[usize]) -> Result<(usize, Option<bool>), Failure> {
    let words_per_page = PAGE / 8;
    let mut checked = 0;
    let mut poisoned_ok = true;
    let mut check = |off: usize, words: &[u64]| -> Result<(), Failure> {
        for (i, w) in words.chunks(words_per_page).enumerate() {
            let p = off + i * PAGE;
            let m = sys::check_pattern(w, SEED, (p / 8) as u64);
            if poisoned.contains(&p) {
                poisoned_ok &= m.is_none();
                continue;
            }
            if let Some(m) = m {
                return Err(Failure::corrupt(format!(
                    "page {p:#x} (not poisoned) changed: {} words differ, first at byte {:#x}: got {:#018x}, want {:#018x}",
                    m.bad_words,
                    m.first_word * 8,
                    m.got,
                    m.want
                )));
            }
            checked += 1;
        }
        Ok(())
    };
    if t.is_file() {
        let buf = Map::anon(MIB)?;
        for c in 0..size / MIB {
            sys::pread_exact(file, buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "reading back"))?;
            check(c * MIB, buf.words())?;
        }
        Ok((checked, Some(poisoned_ok)))
    } else {
        // Never touch a poisoned page: check the stretches between them.
        let map = t.map_shared(file, size).map_err(|e| ctx(e, "mapping for the check"))?;
        let mut start = 0;
        let mut ends: Vec<usize> = poisoned.to_vec();
        ends.sort();
        ends.push(size);
        for end in ends {
            let words = unsafe { std::slice::from_raw_parts(map.ptr.add(start) as *const u64, (end - start) / 8) };
            check(start, words)?;
            start = end + PAGE;
        }
        Ok((checked, None))
    }
}

/// Bad blocks the pmem driver knows of, over all /sys/block/pmem*/badblocks.
fn badblocks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/sys/block") else { return 0 };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pmem"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("badblocks")).ok())
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .sum()
}
