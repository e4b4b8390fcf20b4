//! dio-read and dio-write: O_DIRECT between the raw pmem device and a MAP_SHARED
//! mapping of the DAX file, timed pass by pass over both GUP paths (GUP-fast on
//! a pre-faulted mapping, slow GUP on an untouched one), every pass verified.

use std::time::Instant;

use kregress_agent::{FailKind, Gup, Mapping, WorkloadSpec};

use super::{avg, ctx, gup_str, round2, sample, Failure, Finished, Target, DEV_SEED, POISON};
use crate::hang;
use crate::sys::{self, Fd, Map, Mismatch, SysError, MIB};

/// Pattern words in one 1 MiB chunk.
const WORDS_PER_CHUNK: u64 = (MIB / 8) as u64;

/// dio-read (`write` false): O_DIRECT read from the device into the mapping.
/// dio-write (`write` true): O_DIRECT write from the mapping to the device.
/// Every pass runs twice: pre-faulted mapping (GUP-fast), then a fresh, untouched one (slow GUP).
pub fn run(spec: &WorkloadSpec, t: &Target, write: bool) -> Result<Finished, Failure> {
    let mut dio = Dio::open(spec, t, write)?;
    if !write {
        dio.write_device_pattern()?;
    }
    let mut rates: Vec<(Gup, f64)> = Vec::new();
    let mut prefault_faults = None;
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let run = Run::new(pass, gup, write);
            let (map, faults) = dio.map(&run)?;
            prefault_faults = prefault_faults.or(faults);
            let secs = dio.transfer(&run, &map)?;
            dio.verify(&run, &map)?;
            let mbps = dio.size as f64 / 1e6 / secs;
            sample(spec, pass, gup, mbps);
            rates.push((gup, mbps));
            // Unmap before the next run.
            drop(map);
        }
    }
    Ok(dio.result(spec, &rates, prefault_faults))
}

/// One workload's files and buffer.
struct Dio<'a> {
    t: &'a Target,
    /// Bytes transferred per run.
    size: usize,
    /// I/O threads of a transfer (at most one per chunk).
    threads: usize,
    /// Direction: from the mapping to the device (dio-write) or back (dio-read).
    write: bool,
    // Dropped in this order: the buffer, the device, the file.
    /// 1 MiB of anonymous memory for what goes through file descriptors.
    buf: Map,
    /// The raw device, opened O_DIRECT.
    dev: Fd,
    /// The DAX file (or device).
    file: Fd,
}

/// One run: a pass over one GUP path.
struct Run {
    pass: u32,
    gup: Gup,
    /// How messages name the run: "pass 1 (slow GUP)".
    label: String,
    /// What the file holds before the transfer: the data to write, or poison to be overwritten.
    fill_seed: u64,
}

impl Run {
    fn new(pass: u32, gup: Gup, write: bool) -> Run {
        let seed = ((pass as u64) << 1 | (gup == Gup::Slow) as u64) + 1;
        Run {
            pass,
            gup,
            label: format!("pass {pass} ({} GUP)", gup_str(gup)),
            fill_seed: if write { seed.wrapping_mul(0x1000_0001) } else { POISON ^ seed },
        }
    }
}

impl Dio<'_> {
    /// Opens the DAX file and the raw device, and maps the buffer.
    fn open<'a>(spec: &WorkloadSpec, t: &'a Target, write: bool) -> Result<Dio<'a>, SysError> {
        let size = spec.size as usize;
        let file = Fd::open(&t.file, libc::O_RDWR)?;
        let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
        let buf = Map::anon(MIB)?;
        let threads = (spec.threads as usize).min(size / MIB).max(1);
        Ok(Dio { t, size, threads, write, buf, dev, file })
    }

    /// dio-read: the device holds the data the reads must bring in.
    fn write_device_pattern(&mut self) -> Result<(), SysError> {
        for c in 0..self.size / MIB {
            sys::fill_pattern(self.buf.words_mut(), DEV_SEED, c as u64 * WORDS_PER_CHUNK);
            sys::pwrite_exact(&self.dev, self.buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, "writing the device pattern"))?;
        }
        Ok(())
    }

    /// The mapping the run's transfer goes through, over the file filled with the
    /// run's pattern: pre-faulted for GUP-fast, untouched for slow GUP. With it,
    /// for pass 0 GUP-fast, the minor faults the pre-faulting took.
    fn map(&mut self, run: &Run) -> Result<(Map, Option<u64>), SysError> {
        match run.gup {
            Gup::Fast => self.prefaulted(run),
            Gup::Slow => Ok((self.untouched(run)?, None)),
        }
    }

    /// Writing every word faults every page in: GUP-fast will find the PTEs/PMDs.
    fn prefaulted(&self, run: &Run) -> Result<(Map, Option<u64>), SysError> {
        let mut m = self.map_shared(run)?;
        let f0 = sys::minor_faults();
        sys::fill_pattern(m.words_mut(), run.fill_seed, 0);
        let faults = (run.pass == 0).then(|| sys::minor_faults() - f0);
        Ok((m, faults))
    }

    /// A new mapping without page table entries, so GUP-fast fails and the slow
    /// path faults them in. The pattern goes in through the file descriptor, not
    /// the mapping; a device-dax instance cannot be written with write(2), so
    /// there through a mapping that is gone before the transfer.
    fn untouched(&mut self, run: &Run) -> Result<Map, SysError> {
        if self.t.is_file() {
            for c in 0..self.size / MIB {
                sys::fill_pattern(self.buf.words_mut(), run.fill_seed, c as u64 * WORDS_PER_CHUNK);
                sys::pwrite_exact(&self.file, self.buf.ptr, MIB, (c * MIB) as u64).map_err(|e| ctx(e, &run.label))?;
            }
        } else {
            let mut m = self.map_shared(run)?;
            sys::fill_pattern(m.words_mut(), run.fill_seed, 0);
            drop(m);
        }
        self.map_shared(run)
    }

    fn map_shared(&self, run: &Run) -> Result<Map, SysError> {
        Map::shared(&self.file, self.size, self.t.mapping).map_err(|e| ctx(e, &run.label))
    }

    /// The timed part: the I/O threads share the chunks round-robin, every call
    /// watched. Returns the seconds it took.
    fn transfer(&self, run: &Run, map: &Map) -> Result<f64, SysError> {
        let t0 = Instant::now();
        let what = if self.write { "O_DIRECT write from the DAX mapping" } else { "O_DIRECT read into the DAX mapping" };
        let (n, chunks, write) = (self.threads, self.size / MIB, self.write);
        let base = map.ptr as usize;
        let dev = &self.dev;
        let errors: Vec<SysError> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..n).map(|i| sc.spawn(move || transfer_chunks(dev, base, i, n, chunks, write))).collect();
            handles.into_iter().filter_map(|h| h.join().ok().and_then(|r| r.err())).collect()
        });
        if let Some(e) = errors.into_iter().next() {
            return Err(ctx(e, &format!("{}, {what}", run.label)));
        }
        Ok(t0.elapsed().as_secs_f64().max(1e-9))
    }

    /// dio-write: the device must hold the run's pattern; dio-read: the mapping
    /// must hold the device's. A difference is DATA_CORRUPTION.
    fn verify(&self, run: &Run, map: &Map) -> Result<(), Failure> {
        let mismatch = if self.write { self.read_back(run)? } else { sys::check_pattern(map.words(), DEV_SEED, 0) };
        let Some(m) = mismatch else {
            return Ok(());
        };
        Err(Failure {
            kind: FailKind::DataCorruption,
            errno: None,
            detail: format!(
                "{}: {} of {} words differ after the transfer, first at byte {}: got {:#018x}, want {:#018x}",
                run.label,
                m.bad_words,
                self.size / 8,
                m.first_word * 8,
                m.got,
                m.want
            ),
            wedged: false,
            counters: Default::default(),
        })
    }

    /// Reads the device back chunk by chunk and checks it for the run's pattern:
    /// the first difference, with the differing words of all chunks.
    fn read_back(&self, run: &Run) -> Result<Option<Mismatch>, SysError> {
        let mut m = None;
        for c in 0..self.size / MIB {
            sys::pread_exact(&self.dev, self.buf.ptr, MIB, (c * MIB) as u64)
                .map_err(|e| ctx(e, &format!("{}, reading back", run.label)))?;
            if let Some(x) = sys::check_pattern(self.buf.words(), run.fill_seed, c as u64 * WORDS_PER_CHUNK) {
                let prev: Option<Mismatch> = m.take();
                m = Some(match prev {
                    None => x,
                    Some(mut p) => {
                        p.bad_words += x.bad_words;
                        p
                    }
                });
            }
        }
        Ok(m)
    }

    /// PASS with the mean rates of both GUP paths and what the prefault showed of the mapping.
    fn result(&self, spec: &WorkloadSpec, rates: &[(Gup, f64)], prefault_faults: Option<u64>) -> Finished {
        let avg = |g: Option<Gup>| avg(rates, g);
        Finished {
            mb_per_s: Some(round2(avg(None))),
            ops_per_s: None,
            detail: format!(
                "{} passes of {} MiB verified; GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s{}{}",
                spec.passes,
                self.size / MIB,
                avg(Some(Gup::Fast)),
                avg(Some(Gup::Slow)),
                if self.t.virtual_time { " (virtual time)" } else { "" },
                prefault_faults.map_or(String::new(), |f| self.mapping_note(f)),
            ),
            counters: [("prefault_faults".to_string(), prefault_faults.unwrap_or(0))].into_iter().collect(),
            skipped: None,
        }
    }

    /// What pass 0's prefault showed: the mapping asked for, the faults it took,
    /// and whether the kernel mapped PMDs (at most two faults per 2 MiB).
    fn mapping_note(&self, faults: u64) -> String {
        let pmd = faults <= (self.size / sys::PMD_SIZE) as u64 * 2;
        format!(
            ", {} mapping ({faults} faults to prefault {} pages){}",
            self.t.mapping,
            self.size / 4096,
            if self.t.mapping == Mapping::Pmd && !pmd {
                ": PMD requested but the kernel mapped PTEs"
            } else if pmd {
                ": PMD-mapped"
            } else {
                ""
            }
        )
    }
}

/// I/O thread `i` of `n`: chunks i, i+n, ... each one O_DIRECT call between the
/// device and the mapping at `base` (same offset on both sides).
fn transfer_chunks(dev: &Fd, base: usize, i: usize, n: usize, chunks: usize, write: bool) -> Result<(), SysError> {
    for c in (i..chunks).step_by(n) {
        let off = c * MIB;
        let p = (base + off) as *mut u8;
        let _op = hang::op_begin(if write { "pwrite(O_DIRECT)" } else { "pread(O_DIRECT)" });
        if write {
            sys::pwrite_exact(dev, p, MIB, off as u64)?;
        } else {
            sys::pread_exact(dev, p, MIB, off as u64)?;
        }
    }
    Ok(())
}
