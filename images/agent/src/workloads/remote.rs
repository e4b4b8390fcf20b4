//! remote-gup: the parent reads and writes a child's MAP_SHARED DAX mapping
//! through the kernel's remote-access paths.
//!
//! `threads` children are forked per run; each maps the whole DAX file or
//! device and owns the 1 MiB chunks `i, i + threads, ...`; one parent thread per
//! child moves them. Per chunk the parent reads the child's view into a
//! poisoned local buffer and checks pattern A, then writes pattern B.
//!
//! * `process_vm_readv`/`process_vm_writev`: process_vm_rw_single_vec ->
//!   pin_user_pages_remote (FOLL_PIN, FOLL_WRITE for writes) on the child's
//!   ZONE_DEVICE pages, copy_page_{to,from}_iter, unpin_user_pages.
//! * `/proc/<child>/mem` pread/pwrite: mem_rw -> access_remote_vm ->
//!   __access_remote_vm -> get_user_pages_remote (FOLL_GET|FOLL_FORCE, plus
//!   FOLL_WRITE for writes), copy_{from,to}_user_page, put_page.
//!
//! Remote GUP never takes the lockless GUP-fast path; `Fast` here is a child
//! that wrote every page of its chunks before the access (present, writable
//! entries: follow_page finds them), `Slow` a child that never touched its
//! mapping (the file got pattern A without a mapping, the remote GUP faults
//! every entry in through handle_mm_fault).
//!
//! Oracle: every chunk read must hold pattern A; after the writes the parent's
//! own fresh mapping must hold pattern B everywhere, and each child checks its
//! own chunks against B and exits 0 (match) or 1 (mismatch, reported through a
//! pipe). An errno or short transfer is IO_ERROR with the errno name, a
//! mismatch DATA_CORRUPTION, a child killed by a signal IO_ERROR naming it.
//! ENOSYS from process_vm_readv (CONFIG_CROSS_MEMORY_ATTACH off) is a SKIP.
//! Samples (MB/s of reads + writes) are those of the process_vm_* runs; the
//! /proc/<pid>/mem figures are in the detail. Every child is killed and reaped
//! on every path (its guard's Drop).

use std::time::Instant;

use kregress_agent::{FailKind, Gup, Mapping, WorkloadSpec};

use super::{ctx, gup_str, round2, sample, Failure, Finished, Target, POISON};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

/// The two remote-access paths.
#[derive(Clone, Copy, PartialEq)]
enum Method {
    ProcessVm,
    ProcMem,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::ProcessVm => "process_vm_readv/writev",
            Method::ProcMem => "/proc/<pid>/mem pread/pwrite",
        }
    }
}

/// What one run (method, pass, GUP path) must do.
struct Run {
    method: Method,
    gup: Gup,
    size: usize,
    /// Pattern the child's mapping holds before the parent's access.
    seed_a: u64,
    /// Pattern the parent writes into it.
    seed_b: u64,
    nchildren: usize,
    label: String,
}

/// A run's (or one copy thread's) outcome: a transfer rate in MB/s (seconds
/// spent in the remote reads and writes, for a thread), or SKIP (feature missing).
enum RunResult {
    Rate(f64),
    Unsupported(String),
}

pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let file = t.open()?;
    let nchildren = (spec.threads as usize).clamp(1, size / MIB);
    let mut rates: Vec<(Method, Gup, f64)> = Vec::new();
    let mut prefault_faults = 0;
    for pass in 0..spec.passes {
        for method in [Method::ProcessVm, Method::ProcMem] {
            for gup in [Gup::Fast, Gup::Slow] {
                let k = (pass as u64) << 2 | ((method == Method::ProcMem) as u64) << 1 | (gup == Gup::Slow) as u64;
                let r = Run {
                    method,
                    gup,
                    size,
                    seed_a: 0x5eed_a000 + k,
                    seed_b: 0x5eed_b000 + k,
                    nchildren,
                    label: format!("pass {pass}, {}, {} (child mapping {})", method.name(), gup_str(gup), prefault_word(gup)),
                };
                let (res, faults) = one_run(&r, t, &file)?;
                if pass == 0 && gup == Gup::Fast && method == Method::ProcessVm {
                    prefault_faults = faults;
                }
                match res {
                    RunResult::Unsupported(why) => return Ok(Finished::skip(why)),
                    RunResult::Rate(mbps) => {
                        if method == Method::ProcessVm {
                            sample(spec, pass, gup, mbps);
                        }
                        rates.push((method, gup, mbps));
                    }
                }
            }
        }
    }
    let avg = |m: Method, g: Option<Gup>| {
        let v: Vec<f64> = rates.iter().filter(|(x, y, _)| *x == m && g.is_none_or(|g| *y == g)).map(|r| r.2).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Ok(Finished {
        mb_per_s: Some(round2(avg(Method::ProcessVm, None))),
        ops_per_s: None,
        detail: format!(
            "{} passes of {} MiB over {nchildren} child(ren), read (pattern A) + write (pattern B) verified by the parent's mapping and each child: \
             process_vm_readv/writev prefaulted {:.1} MB/s, untouched {:.1} MB/s; /proc/pid/mem prefaulted {:.1} MB/s, untouched {:.1} MB/s{}; {}",
            spec.passes,
            size / MIB,
            avg(Method::ProcessVm, Some(Gup::Fast)),
            avg(Method::ProcessVm, Some(Gup::Slow)),
            avg(Method::ProcMem, Some(Gup::Fast)),
            avg(Method::ProcMem, Some(Gup::Slow)),
            if t.virtual_time { " (virtual time)" } else { "" },
            mapping_note(t, prefault_faults, size)
        ),
        counters: [("prefault_faults".to_string(), prefault_faults)].into_iter().collect(),
        skipped: None,
    })
}

fn prefault_word(g: Gup) -> &'static str {
    match g {
        Gup::Fast => "prefaulted",
        Gup::Slow => "untouched",
    }
}

/// Chunks (1 MiB indices) owned by child `i` of `n`.
fn chunks_of(i: usize, n: usize, size: usize) -> impl Iterator<Item = usize> {
    (i..size / MIB).step_by(n)
}

/// What the prefault's fault count says about the mapping: a PTE mapping
/// faults once per page, a PMD mapping once per 2 MiB per process that
/// touches it (children sharing a PMD's range each fault it).
pub(super) fn mapping_note(t: &Target, faults: u64, size: usize) -> String {
    let pmd = faults * 8 < (size / 4096) as u64;
    let verdict = match (t.mapping, pmd) {
        (Mapping::Pmd, false) => ": PMD requested but the kernel mapped PTEs",
        (_, true) => ": PMD-mapped",
        _ => "",
    };
    format!("{} mapping ({faults} faults to prefault {} pages){verdict}", t.mapping, size / 4096)
}

/// One run: fork the children, move every chunk both ways, verify, reap.
/// Also returns the minor faults the children took to prefault.
fn one_run(r: &Run, t: &Target, file: &Fd) -> Result<(RunResult, u64), Failure> {
    if r.gup == Gup::Slow {
        fill_without_mapping(t, file, r.size, r.seed_a).map_err(|e| ctx(e, &r.label))?;
    }
    let mut children = Vec::with_capacity(r.nchildren);
    for i in 0..r.nchildren {
        let prefault = (r.gup == Gup::Fast).then_some(r.seed_a);
        children.push(Child::spawn(file, t, r.size, i, r.nchildren, prefault).map_err(|e| ctx(e, &r.label))?);
    }
    let results: Vec<Result<RunResult, Failure>> = std::thread::scope(|sc| {
        let handles: Vec<_> = children.iter().enumerate().map(|(i, c)| sc.spawn(move || move_chunks(r, c, i))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Failure {
                        kind: FailKind::IoError,
                        errno: None,
                        detail: format!("{}: a copy thread panicked", r.label),
                        wedged: false,
                        counters: Default::default(),
                    })
                })
            })
            .collect()
    });
    // The copy threads run side by side: the slowest one's time in the calls.
    let mut secs: f64 = 1e-9;
    for res in results {
        match res? {
            RunResult::Unsupported(why) => return Ok((RunResult::Unsupported(why), 0)),
            RunResult::Rate(s) => secs = secs.max(s),
        }
    }
    check_parent_view(r, t, file)?;
    for c in &mut children {
        c.verdict(r)?;
    }
    let faults = children.iter().map(|c| c.faults).sum();
    Ok((RunResult::Rate(2.0 * r.size as f64 / 1e6 / secs), faults))
}

/// Parent thread `i`: read every chunk of child `c` (check A), then write B into it.
/// Returns the seconds spent in the remote reads and writes.
fn move_chunks(r: &Run, c: &Child, i: usize) -> Result<RunResult, Failure> {
    let mut buf = Map::anon(MIB)?;
    let mem = match r.method {
        Method::ProcMem => Some(Fd::open(&format!("/proc/{}/mem", c.pid), libc::O_RDWR).map_err(|e| ctx(e, &r.label))?),
        Method::ProcessVm => None,
    };
    let words = (MIB / 8) as u64;
    let mut secs = 0.0;
    for chunk in chunks_of(i, r.nchildren, r.size) {
        let remote = c.addr + chunk * MIB;
        let at = format!("{}, child {} chunk at byte {}", r.label, c.pid, chunk * MIB);
        buf.words_mut().fill(POISON);
        let t0 = Instant::now();
        let rd = match &mem {
            None => process_vm(c.pid, buf.ptr, remote, false),
            Some(m) => {
                let _op = hang::op_begin("pread(/proc/pid/mem)");
                sys::pread_exact(m, buf.ptr, MIB, remote as u64)
            }
        };
        match rd {
            Err(e) if e.errno == libc::ENOSYS && mem.is_none() => {
                return Ok(RunResult::Unsupported("process_vm_readv: ENOSYS (CONFIG_CROSS_MEMORY_ATTACH is off)".into()))
            }
            Err(e) => return Err(ctx(e, &format!("{at}, reading the child's mapping")).into()),
            Ok(()) => secs += t0.elapsed().as_secs_f64(),
        }
        if let Some(m) = sys::check_pattern(buf.words(), r.seed_a, chunk as u64 * words) {
            return Err(mismatch(&format!("{at}: the remote read"), &m, MIB / 8));
        }
        sys::fill_pattern(buf.words_mut(), r.seed_b, chunk as u64 * words);
        let t0 = Instant::now();
        let wr = match &mem {
            None => process_vm(c.pid, buf.ptr, remote, true),
            Some(m) => {
                let _op = hang::op_begin("pwrite(/proc/pid/mem)");
                sys::pwrite_exact(m, buf.ptr, MIB, remote as u64)
            }
        };
        wr.map_err(|e| ctx(e, &format!("{at}, writing the child's mapping")))?;
        secs += t0.elapsed().as_secs_f64();
    }
    Ok(RunResult::Rate(secs))
}

/// One process_vm_readv (`write` false) or process_vm_writev of 1 MiB
/// between `local` and the child's address `remote`; a short count is EIO.
fn process_vm(pid: libc::pid_t, local: *mut u8, remote: usize, write: bool) -> Result<(), SysError> {
    match process_vm_rw(pid, local, remote, MIB, write)? {
        MIB => Ok(()),
        n => Err(SysError { what: format!("{}({MIB} bytes at {remote:#x}) returned {n}", vm_call(write)), errno: libc::EIO }),
    }
}

fn vm_call(write: bool) -> &'static str {
    if write {
        "process_vm_writev"
    } else {
        "process_vm_readv"
    }
}

/// One process_vm_readv (`write` false) or process_vm_writev of `len` bytes
/// between `local` and `remote` in `pid`'s address space, watched as a
/// blocking call; returns the bytes moved.
pub(super) fn process_vm_rw(pid: libc::pid_t, local: *mut u8, remote: usize, len: usize, write: bool) -> Result<usize, SysError> {
    let liov = libc::iovec { iov_base: local as *mut libc::c_void, iov_len: len };
    let riov = libc::iovec { iov_base: remote as *mut libc::c_void, iov_len: len };
    let name = vm_call(write);
    let _op = hang::op_begin(name);
    let n = unsafe {
        if write {
            libc::process_vm_writev(pid, &liov, 1, &riov, 1, 0)
        } else {
            libc::process_vm_readv(pid, &liov, 1, &riov, 1, 0)
        }
    };
    if n < 0 {
        return Err(sys::last(format!("{name}({len} bytes at {remote:#x})")));
    }
    Ok(n as usize)
}

/// The parent's own fresh mapping must hold pattern B everywhere.
fn check_parent_view(r: &Run, t: &Target, file: &Fd) -> Result<(), Failure> {
    let map = t.map_shared(file, r.size).map_err(|e| ctx(e, &r.label))?;
    match sys::check_pattern(map.words(), r.seed_b, 0) {
        None => Ok(()),
        Some(m) => Err(mismatch(&format!("{}: the parent's mapping after the remote writes", r.label), &m, r.size / 8)),
    }
}

fn mismatch(what: &str, m: &sys::Mismatch, total_words: usize) -> Failure {
    Failure::corrupt(format!(
        "{what}: {} of {total_words} words differ, first at byte {}: got {:#018x}, want {:#018x}",
        m.bad_words,
        m.first_word * 8,
        m.got,
        m.want
    ))
}

/// Gives the DAX file or device `seed`'s pattern without leaving a mapping
/// behind: pwrite on a file, a mapping that is unmapped again on a device
/// (device-dax has no write(2)). A mapping made afterwards has no entries.
pub(super) fn fill_without_mapping(t: &Target, file: &Fd, size: usize, seed: u64) -> Result<(), SysError> {
    if !t.is_file() {
        let mut m = t.map_shared(file, size)?;
        sys::fill_pattern(m.words_mut(), seed, 0);
        return Ok(());
    }
    let mut buf = Map::anon(MIB)?;
    for c in 0..size / MIB {
        sys::fill_pattern(buf.words_mut(), seed, (c * MIB / 8) as u64);
        sys::pwrite_exact(file, buf.ptr, MIB, (c * MIB) as u64)?;
    }
    Ok(())
}

/// A forked child holding the DAX mapping; killed and reaped on drop unless reaped already.
struct Child {
    pid: libc::pid_t,
    /// Where the child mapped the file.
    addr: usize,
    /// Minor faults the child took to prefault its chunks (0 when it did not).
    faults: u64,
    /// Parent -> child: the seed to check (8 bytes).
    cmd: Fd,
    /// Child -> parent: the mapping's address, later a mismatch report.
    status: Fd,
    reaped: bool,
}

/// Child exit codes.
const CHILD_OK: i32 = 0;
const CHILD_MISMATCH: i32 = 1;
const CHILD_MAP_FAILED: i32 = 2;
const CHILD_PIPE: i32 = 3;

impl Child {
    /// Fork child `i` of `n`: it maps the file, writes pattern `prefault` into its
    /// chunks when given (every page present and writable), sends the address and waits.
    fn spawn(file: &Fd, t: &Target, size: usize, i: usize, n: usize, prefault: Option<u64>) -> Result<Child, SysError> {
        let (cmd_r, cmd_w) = pipe()?;
        let (st_r, st_w) = pipe()?;
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(sys::last("fork"));
        }
        if pid == 0 {
            drop(cmd_w);
            drop(st_r);
            let code = child_main(file, t, size, i, n, prefault, &cmd_r, &st_w);
            unsafe { libc::_exit(code) };
        }
        drop(cmd_r);
        drop(st_w);
        let mut c = Child { pid, addr: 0, faults: 0, cmd: cmd_w, status: st_r, reaped: false };
        let mut a = [0u8; 16];
        let got = {
            let _op = hang::op_begin("read(child's mapping address)");
            read_full(&c.status, &mut a)
        };
        if got != 16 {
            let how = c.reap();
            return Err(SysError { what: format!("child {pid} did not map the DAX side ({how})"), errno: libc::EIO });
        }
        c.addr = u64::from_ne_bytes(a[..8].try_into().unwrap()) as usize;
        c.faults = u64::from_ne_bytes(a[8..].try_into().unwrap());
        Ok(c)
    }

    /// Ask the child to check pattern `r.seed_b` in its own view and judge its exit.
    fn verdict(&mut self, r: &Run) -> Result<(), Failure> {
        let msg = r.seed_b.to_ne_bytes();
        let sent = unsafe { libc::write(self.cmd.0, msg.as_ptr() as *const libc::c_void, 8) };
        if sent != 8 {
            return Err(sys::last(format!("{}: telling child {} to verify", r.label, self.pid)).into());
        }
        let mut rep = [0u8; 24];
        let got = {
            let _op = hang::op_begin("read(child's verdict)");
            read_full(&self.status, &mut rep)
        };
        let status = self.wait();
        let what = format!("{}: child {}", r.label, self.pid);
        match status {
            Err(e) => Err(ctx(e, &what).into()),
            Ok(s) if libc::WIFSIGNALED(s) => Err(Failure {
                kind: FailKind::IoError,
                errno: None,
                detail: format!("{what} was killed by {}", signal_name(libc::WTERMSIG(s))),
                wedged: false,
                counters: Default::default(),
            }),
            Ok(s) if libc::WEXITSTATUS(s) == CHILD_OK => Ok(()),
            Ok(s) if libc::WEXITSTATUS(s) == CHILD_MISMATCH && got == 24 => {
                let w = |k: usize| u64::from_ne_bytes(rep[k * 8..k * 8 + 8].try_into().unwrap());
                Err(Failure::corrupt(format!(
                    "{what} sees its own mapping differ after the remote writes: {} words of its chunks, first at byte {}: got {:#018x}",
                    w(0),
                    w(1) * 8,
                    w(2)
                )))
            }
            Ok(s) => Err(Failure {
                kind: FailKind::IoError,
                errno: None,
                detail: format!("{what} exited with status {} (1 mismatch, 2 mmap failed, 3 pipe)", libc::WEXITSTATUS(s)),
                wedged: false,
                counters: Default::default(),
            }),
        }
    }

    /// waitpid for the child; marks it reaped.
    fn wait(&mut self) -> Result<i32, SysError> {
        let mut st = 0;
        let _op = hang::op_begin("waitpid(child)");
        loop {
            let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
            if r == self.pid {
                self.reaped = true;
                return Ok(st);
            }
            if sys::errno() != libc::EINTR {
                self.reaped = true;
                return Err(sys::last(format!("waitpid({})", self.pid)));
            }
        }
    }

    /// Kill and reap; says how the child ended.
    fn reap(&mut self) -> String {
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        match self.wait() {
            Ok(s) if libc::WIFEXITED(s) => format!("exit status {}", libc::WEXITSTATUS(s)),
            Ok(s) => format!("killed by {}", signal_name(libc::WTERMSIG(s))),
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.reap();
        }
    }
}

/// The child's life (no allocation on the success path: it runs after fork
/// of a multi-threaded process). Returns its exit code.
#[allow(clippy::too_many_arguments)]
fn child_main(file: &Fd, t: &Target, size: usize, i: usize, n: usize, prefault: Option<u64>, cmd: &Fd, st: &Fd) -> i32 {
    let Ok(mut map) = t.map_shared(file, size) else {
        return CHILD_MAP_FAILED;
    };
    let words = MIB / 8;
    let f0 = sys::minor_faults();
    if let Some(seed) = prefault {
        for c in chunks_of(i, n, size) {
            let w = &mut map.words_mut()[c * words..(c + 1) * words];
            sys::fill_pattern(w, seed, (c * words) as u64);
        }
    }
    let mut hello = [0u8; 16];
    hello[..8].copy_from_slice(&(map.ptr as u64).to_ne_bytes());
    hello[8..].copy_from_slice(&(sys::minor_faults() - f0).to_ne_bytes());
    if unsafe { libc::write(st.0, hello.as_ptr() as *const libc::c_void, 16) } != 16 {
        return CHILD_PIPE;
    }
    let mut s = [0u8; 8];
    if read_full(cmd, &mut s) != 8 {
        return CHILD_PIPE;
    }
    let seed = u64::from_ne_bytes(s);
    let (mut bad, mut first, mut got) = (0u64, 0u64, 0u64);
    for c in chunks_of(i, n, size) {
        if let Some(m) = sys::check_pattern(&map.words()[c * words..(c + 1) * words], seed, (c * words) as u64) {
            if bad == 0 {
                (first, got) = (m.first_word, m.got);
            }
            bad += m.bad_words;
        }
    }
    if bad == 0 {
        return CHILD_OK;
    }
    let mut rep = [0u8; 24];
    for (k, v) in [bad, first, got].into_iter().enumerate() {
        rep[k * 8..k * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    unsafe { libc::write(st.0, rep.as_ptr() as *const libc::c_void, 24) };
    CHILD_MISMATCH
}

fn pipe() -> Result<(Fd, Fd), SysError> {
    let mut p = [0; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys::last("pipe2"));
    }
    Ok((Fd(p[0]), Fd(p[1])))
}

/// Read until `buf` is full, EOF or an error; returns the bytes read.
fn read_full(fd: &Fd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        let n = unsafe { libc::read(fd.0, buf[got..].as_mut_ptr() as *mut libc::c_void, buf.len() - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || sys::errno() != libc::EINTR {
            break;
        }
    }
    got
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGILL => "SIGILL".into(),
        _ => format!("signal {sig}"),
    }
}
