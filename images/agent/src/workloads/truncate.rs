//! truncate-during-dio: O_DIRECT reads into the DAX file's mapping while another
//! thread truncates the file and punches holes in it; a call that blocks too long is a HANG.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kregress_agent::{FailKind, Mapping, WorkloadSpec};

use super::{round2, Failure, Finished, Target};
use crate::hang;
use crate::sys::{self, Fd, Map, MIB};

/// O_DIRECT reads from the raw device into the file's mapping on `threads` threads,
/// while one thread loops ftruncate(0) / ftruncate(size) and punches holes. A call that
/// does not return within `hang` seconds is a HANG.
pub fn run(spec: &WorkloadSpec, t: &Target) -> Result<Finished, Failure> {
    let size = spec.size;
    let file = Arc::new(Fd::open(&t.file, libc::O_RDWR)?);
    let dev = Arc::new(Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?);
    let nthreads = spec.threads as usize;
    let race = Arc::new(Race::new(nthreads));
    for i in 0..nthreads {
        let (file, dev, mapping) = (file.clone(), dev.clone(), t.mapping);
        spawn(&race, format!("dio-{i}"), move |r| read_loop(r, &file, &dev, i, size, mapping))?;
    }
    {
        let file = file.clone();
        spawn(&race, "truncate".into(), move |r| truncate_loop(r, &file, size))?;
    }
    let elapsed = watch(spec, t, &race)?;
    result(t, &race, elapsed)
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
    /// The race of `nthreads` I/O threads and the truncating thread, starting now.
    fn new(nthreads: usize) -> Race {
        Race {
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
        }
    }
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }
    fn error(&self, what: String, errno: i32) {
        if self.errors.fetch_add(1, SeqCst) == 0 {
            self.first_errno.store(errno, SeqCst);
            *self.first_error.lock().unwrap() = Some(what);
        }
    }
    /// One call of the truncating thread, `name` to the watchdog while it lasts.
    fn trunc_call(&self, name: &'static str, f: impl FnOnce() -> sys::SysResult<()>) -> sys::SysResult<()> {
        *self.trunc_op.lock().unwrap() = name;
        self.trunc_since.store(self.now(), SeqCst);
        let r = f();
        self.trunc_since.store(0, SeqCst);
        r
    }
    /// The call blocked over `hang_ms` at `now`, and for how many ms: the
    /// truncating thread's first, then the I/O threads' in their order.
    fn stuck(&self, now: u64, hang_ms: u64) -> Option<(String, u64)> {
        let since = self.trunc_since.load(SeqCst);
        if since != 0 && now.saturating_sub(since) > hang_ms {
            return Some((self.trunc_op.lock().unwrap().to_string(), now - since));
        }
        self.io_since
            .iter()
            .map(|s| s.load(SeqCst))
            .find_map(|since| (since != 0 && now.saturating_sub(since) > hang_ms).then(|| ("pread".to_string(), now - since)))
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

/// Starts a thread of the race, counted in `running` until it ends.
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
        .map_err(|e| Failure {
            kind: FailKind::IoError,
            errno: e.raw_os_error(),
            detail: format!("spawn: {e}"),
            wedged: false,
            counters: Default::default(),
        })
}

/// I/O thread `i`: O_DIRECT reads from the device into its own mapping of the
/// file, 1 MiB at a time from chunk `i` on, round and round until the race stops.
fn read_loop(race: &Race, file: &Fd, dev: &Fd, i: usize, size: u64, mapping: Mapping) {
    // The I/O thread never touches the mapping itself: after a truncate, GUP on
    // the range beyond EOF fails and pread returns EFAULT (counted), no SIGBUS.
    let map = match Map::shared(file, size as usize, mapping) {
        Ok(map) => map,
        Err(e) => {
            race.error(e.to_string(), e.errno);
            return;
        }
    };
    let chunks = size as usize / MIB;
    let mut c = i % chunks;
    while !race.stop.load(SeqCst) {
        read_chunk(race, dev, &map, i, c * MIB);
        c = (c + 1) % chunks;
    }
}

/// One pread of 1 MiB at `off`, watched and counted: full, partial, EFAULT
/// (beyond EOF), or an error.
fn read_chunk(race: &Race, dev: &Fd, map: &Map, i: usize, off: usize) {
    race.io_since[i].store(race.now(), SeqCst);
    let n = unsafe { libc::pread(dev.0, map.ptr.add(off) as *mut libc::c_void, MIB, off as libc::off_t) };
    let errno = sys::errno();
    race.io_since[i].store(0, SeqCst);
    if n == MIB as isize {
        race.ios.fetch_add(1, SeqCst);
    } else if n >= 0 {
        race.partial.fetch_add(1, SeqCst);
    } else if errno == libc::EFAULT {
        race.efault.fetch_add(1, SeqCst);
    } else {
        race.error(format!("pread({MIB} bytes at {off}) into the DAX mapping: {}", sys::errno_name(errno)), errno);
    }
}

/// The truncating thread: ftruncate(0) then ftruncate(size), and every fourth
/// round a 1 MiB hole punched at a random offset, until the race stops. A failed
/// call is recorded; after a failed truncate the thread waits 10 ms.
fn truncate_loop(race: &Race, file: &Fd, size: u64) {
    let mut rng = sys::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut i = 0u64;
    while !race.stop.load(SeqCst) {
        let r = race
            .trunc_call("ftruncate(0)", || sys::ftruncate(file, 0))
            .and_then(|_| race.trunc_call("ftruncate(size)", || sys::ftruncate(file, size)));
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
            let off = (rng.next() % (size / MIB as u64)) * MIB as u64;
            match race.trunc_call("fallocate(PUNCH_HOLE)", || sys::punch_hole(file, off, MIB as u64)) {
                Ok(()) => {
                    race.punches.fetch_add(1, SeqCst);
                }
                Err(e) => race.error(e.to_string(), e.errno),
            }
        }
    }
}

/// Lets the race run for `seconds`, checking every 50 ms that no call is blocked
/// over `hang` seconds, then stops it and waits for its threads. Returns the
/// seconds it ran; a blocked call is a HANG.
fn watch(spec: &WorkloadSpec, t: &Target, race: &Race) -> Result<f64, Failure> {
    let hang_ms = t.hang as u64 * 1000;
    let run_for = Duration::from_secs(spec.seconds as u64);
    let mut stopped_at: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = race.now();
        if let Some((op, waited_ms)) = race.stuck(now, hang_ms) {
            return Err(blocked(spec, t, race, &op, now, waited_ms));
        }
        if stopped_at.is_none() && race.start.elapsed() >= run_for {
            race.stop.store(true, SeqCst);
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some() && race.running.load(SeqCst) == 0 {
            break;
        }
    }
    Ok(stopped_at.map(|s| s - race.start).unwrap_or_else(|| race.start.elapsed()).as_secs_f64())
}

/// `op` blocked for `waited_ms` at `now`: its stacks reported, the race stopped, a HANG.
fn blocked(spec: &WorkloadSpec, t: &Target, race: &Race, op: &str, now: u64, waited_ms: u64) -> Failure {
    // Stacks first, while the other threads are still where the hang left them.
    let waited = Duration::from_millis(waited_ms);
    hang::report_hang("workload", spec.name(), op, waited);
    race.stop.store(true, SeqCst);
    let c = race.counters();
    Failure {
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
        counters: Default::default(),
    }
}

/// PASS with the rate of calls that did work, or IO_ERROR with the first failed call.
fn result(t: &Target, race: &Race, elapsed: f64) -> Result<Finished, Failure> {
    let c = race.counters();
    // Calls that did work; the fast EFAULT failures while the file is short do not count.
    let ops = c["truncates"] + c["punches"] + c["ios"] + c["partial"];
    if c["errors"] > 0 {
        let errno = race.first_errno.load(SeqCst);
        return Err(Failure {
            kind: FailKind::IoError,
            errno: Some(errno),
            detail: format!("{} failed calls, first: {}", c["errors"], race.first_error.lock().unwrap().clone().unwrap_or_default()),
            wedged: false,
            counters: Default::default(),
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
