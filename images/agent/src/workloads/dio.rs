//! dio-read and dio-write: O_DIRECT between the raw pmem device and a MAP_SHARED
//! mapping of the DAX file, timed pass by pass over both GUP paths (GUP-fast on
//! a pre-faulted mapping, slow GUP on an untouched one), every pass verified.

use std::time::Instant;

use kregress_agent::{FailKind, Gup, Mapping, WorkloadSpec};

use super::{avg, ctx, gup_str, round2, sample, Failure, Finished, Target, DEV_SEED, POISON};
use crate::hang;
use crate::sys::{self, Fd, Map, SysError, MIB};

/// dio-read (`write` false): O_DIRECT read from the device into the mapping.
/// dio-write (`write` true): O_DIRECT write from the mapping to the device.
/// Every pass runs twice: pre-faulted mapping (GUP-fast), then a fresh, untouched one (slow GUP).
pub fn run(spec: &WorkloadSpec, t: &Target, write: bool) -> Result<Finished, Failure> {
    let size = spec.size as usize;
    let file = Fd::open(&t.file, libc::O_RDWR)?;
    let dev = Fd::open(&t.raw_dev, libc::O_RDWR | libc::O_DIRECT)?;
    let mut buf = Map::anon(MIB)?;
    let chunks = size / MIB;
    let words_per_chunk = (MIB / 8) as u64;

    if !write {
        // The device holds the data the reads must bring in.
        for c in 0..chunks {
            sys::fill_pattern(buf.words_mut(), DEV_SEED, c as u64 * words_per_chunk);
            sys::pwrite_exact(&dev, buf.ptr, MIB, (c * MIB) as u64)
                .map_err(|e| ctx(e, "writing the device pattern"))?;
        }
    }

    let mut rates: Vec<(Gup, f64)> = Vec::new();
    let mut pmd_note = String::new();
    let mut prefault_faults = 0;
    for pass in 0..spec.passes {
        for gup in [Gup::Fast, Gup::Slow] {
            let run = format!("pass {pass} ({} GUP)", gup_str(gup));
            let seed = ((pass as u64) << 1 | (gup == Gup::Slow) as u64) + 1;
            // What the file holds before the transfer: the data to write, or poison to be overwritten.
            let fill_seed = if write {
                seed.wrapping_mul(0x1000_0001)
            } else {
                POISON ^ seed
            };
            let map = match gup {
                Gup::Fast => {
                    let mut m = Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?;
                    // Writing every word faults every page in: GUP-fast will find the PTEs/PMDs.
                    let f0 = sys::minor_faults();
                    sys::fill_pattern(m.words_mut(), fill_seed, 0);
                    if pass == 0 {
                        let faults = sys::minor_faults() - f0;
                        let pmd = faults <= (size / sys::PMD_SIZE) as u64 * 2;
                        prefault_faults = faults;
                        pmd_note = format!(
                            ", {} mapping ({faults} faults to prefault {} pages){}",
                            t.mapping,
                            size / 4096,
                            if t.mapping == Mapping::Pmd && !pmd {
                                ": PMD requested but the kernel mapped PTEs"
                            } else if pmd {
                                ": PMD-mapped"
                            } else {
                                ""
                            }
                        );
                    }
                    m
                }
                Gup::Slow if !t.is_file() => {
                    // A device-dax instance cannot be written with write(2): fill it
                    // through a mapping that is gone before the transfer, so the
                    // new mapping has no page table entries either.
                    let mut m = Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?;
                    sys::fill_pattern(m.words_mut(), fill_seed, 0);
                    drop(m);
                    Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?
                }
                Gup::Slow => {
                    // Through the file descriptor, not the mapping: the new mapping has no page
                    // table entries, so GUP-fast fails and the slow path faults them in.
                    for c in 0..chunks {
                        sys::fill_pattern(buf.words_mut(), fill_seed, c as u64 * words_per_chunk);
                        sys::pwrite_exact(&file, buf.ptr, MIB, (c * MIB) as u64)
                            .map_err(|e| ctx(e, &run))?;
                    }
                    Map::shared(&file, size, t.mapping).map_err(|e| ctx(e, &run))?
                }
            };

            let t0 = Instant::now();
            // `threads` threads share the chunks round-robin; every call is watched.
            let what = if write {
                "O_DIRECT write from the DAX mapping"
            } else {
                "O_DIRECT read into the DAX mapping"
            };
            let nthreads = (spec.threads as usize).min(chunks).max(1);
            let base = map.ptr as usize;
            let dev_ref = &dev;
            let errors: Vec<SysError> = std::thread::scope(|sc| {
                let handles: Vec<_> = (0..nthreads)
                    .map(|i| {
                        sc.spawn(move || -> Result<(), SysError> {
                            for c in (i..chunks).step_by(nthreads) {
                                let off = c * MIB;
                                let p = (base + off) as *mut u8;
                                let _op = hang::op_begin(if write {
                                    "pwrite(O_DIRECT)"
                                } else {
                                    "pread(O_DIRECT)"
                                });
                                if write {
                                    sys::pwrite_exact(dev_ref, p, MIB, off as u64)?;
                                } else {
                                    sys::pread_exact(dev_ref, p, MIB, off as u64)?;
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().and_then(|r| r.err()))
                    .collect()
            });
            if let Some(e) = errors.into_iter().next() {
                return Err(ctx(e, &format!("{run}, {what}")).into());
            }
            let secs = t0.elapsed().as_secs_f64().max(1e-9);

            // Verify.
            let mismatch = if write {
                let mut m = None;
                for c in 0..chunks {
                    sys::pread_exact(&dev, buf.ptr, MIB, (c * MIB) as u64)
                        .map_err(|e| ctx(e, &format!("{run}, reading back")))?;
                    if let Some(x) =
                        sys::check_pattern(buf.words(), fill_seed, c as u64 * words_per_chunk)
                    {
                        let prev: Option<sys::Mismatch> = m.take();
                        m = Some(match prev {
                            None => x,
                            Some(mut p) => {
                                p.bad_words += x.bad_words;
                                p
                            }
                        });
                    }
                }
                m
            } else {
                sys::check_pattern(map.words(), DEV_SEED, 0)
            };
            if let Some(m) = mismatch {
                return Err(Failure {
                    kind: FailKind::DataCorruption,
                    errno: None,
                    detail: format!(
                        "{run}: {} of {} words differ after the transfer, first at byte {}: got {:#018x}, want {:#018x}",
                        m.bad_words,
                        size / 8,
                        m.first_word * 8,
                        m.got,
                        m.want
                    ),
                    wedged: false,
                });
            }
            let mbps = size as f64 / 1e6 / secs;
            sample(spec, pass, gup, mbps);
            rates.push((gup, mbps));
            // Unmap before the next run.
            drop(map);
        }
    }
    let avg = |g: Option<Gup>| avg(&rates, g);
    Ok(Finished {
        mb_per_s: Some(round2(avg(None))),
        ops_per_s: None,
        detail: format!(
            "{} passes of {} MiB verified; GUP-fast {:.1} MB/s, slow GUP {:.1} MB/s{}{pmd_note}",
            spec.passes,
            size / MIB,
            avg(Some(Gup::Fast)),
            avg(Some(Gup::Slow)),
            if t.virtual_time { " (virtual time)" } else { "" }
        ),
        counters: [("prefault_faults".to_string(), prefault_faults)]
            .into_iter()
            .collect(),
        skipped: None,
    })
}

