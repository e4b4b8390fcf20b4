//! kregress-agent: PID 1 of the test guest.
//!
//! Mounts proc/sys/dev/tmp, reads the boot's nonce from /proc/cmdline (every
//! message carries it), prints `hello`, reads its configuration from
//! /proc/cmdline, prepares the pmem devices, makes the filesystem and mounts it
//! `-o dax`, runs the workloads (each under a deadline), tears the pmem devices
//! down, prints `done` and powers the machine off. Every report is a
//! `KREGRESS> NONCE {json}` line on the console (see the library's `protocol`).

mod hang;
mod setup;
mod sys;
mod workloads;

use std::time::{Duration, Instant};

use kregress_agent::{FailKind, GuestConfig, Message, Mode, Outcome, PROTOCOL_VERSION, VERSION};

fn result(
    name: &str,
    outcome: Outcome,
    kind: Option<FailKind>,
    errno: Option<i32>,
    detail: String,
) -> Message {
    Message::WorkloadResult {
        name: name.into(),
        outcome,
        kind,
        errno,
        detail,
        mb_per_s: None,
        ops_per_s: None,
        counters: Default::default(),
    }
}

fn main() {
    let t0 = Instant::now();
    let pid1 = std::process::id() == 1;
    let mount_err = if pid1 {
        setup::early_mounts().err()
    } else {
        None
    };
    if pid1 {
        setup::ensure_console();
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if let Some(n) = kregress_agent::config::nonce_of(&cmdline) {
        kregress_agent::protocol::set_nonce(n);
    }
    std::panic::set_hook(Box::new(|info| {
        Message::Error {
            phase: "panic".into(),
            detail: info.to_string(),
        }
        .emit();
    }));
    Message::Hello {
        version: VERSION.into(),
        protocol: PROTOCOL_VERSION,
        kernel: sys::uname_release(),
        uptime_s: sys::uptime_s(),
    }
    .emit();
    if let Some(e) = mount_err {
        Message::Error {
            phase: "mount".into(),
            detail: e,
        }
        .emit();
    }
    let ok = std::panic::catch_unwind(|| run(&cmdline, t0)).unwrap_or(false);
    Message::Done {
        ok,
        elapsed_ms: sys::ms(t0.elapsed()),
    }
    .emit();
    setup::power_off(if ok { 0 } else { 1 });
}

/// Everything between hello and done. Returns false when the harness itself failed
/// (bad configuration, setup error, teardown problem); workload failures are results, not errors.
fn run(cmdline: &str, t0: Instant) -> bool {
    let cfg = match GuestConfig::from_cmdline(cmdline) {
        Ok(c) => c,
        Err(e) => {
            Message::Error {
                phase: "config".into(),
                detail: format!("{e} (in /proc/cmdline: {})", cmdline.trim()),
            }
            .emit();
            return false;
        }
    };
    setup::step("config", true, cfg.to_cmdline(), t0);

    let miss_all = |why: &str| {
        for w in &cfg.workloads {
            result(w.name(), Outcome::Miss, None, None, why.to_string()).emit();
        }
    };

    // pmem, mkfs, mount
    let t = Instant::now();
    let devs = match setup::prepare_pmem(&cfg) {
        Ok(d) => d,
        Err(e) => {
            setup::step("pmem", false, e.clone(), t);
            Message::Error {
                phase: "pmem".into(),
                detail: e.clone(),
            }
            .emit();
            miss_all(&format!("setup failed: {e}"));
            return false;
        }
    };
    let devdax = cfg.mode == Mode::Devdax;
    setup::step(
        "pmem",
        true,
        format!(
            "{} {}: DAX side {}, O_DIRECT on {}",
            cfg.backend, cfg.mode, devs.fs_dev, devs.raw_dev
        ),
        t,
    );
    if !devdax {
        let t = Instant::now();
        let made = if cfg.premade {
            setup::write_premade(&kregress_agent::config::premade_dir(cfg.fs, cfg.wants_pmd()), &devs.fs_dev)
        } else {
            setup::mkfs(cfg.fs, &devs.fs_dev, cfg.wants_pmd())
        };
        let mounted = made.and_then(|m| {
            setup::step("mkfs", true, m, t);
            let t = Instant::now();
            let r = setup::mount_dax(cfg.fs, &devs.fs_dev);
            if let Ok(m) = &r {
                setup::step("mount", true, m.clone(), t);
            }
            r
        });
        if let Err(e) = mounted {
            setup::step("mkfs+mount", false, e.clone(), t);
            Message::Error {
                phase: "mkfs".into(),
                detail: e.clone(),
            }
            .emit();
            miss_all(&format!("setup failed: {e}"));
            setup::teardown(&cfg, Some(&devs), false, false);
            return false;
        }
    }

    // workloads
    let mut ok = true;
    let mut wedged = false;
    if cfg.workloads.is_empty() && !devdax {
        // Still report whether DAX is on.
        if let Err(e) =
            setup::create_test_file(&format!("{}/probe.dat", setup::MNT), 2 << 20, false)
        {
            Message::Error {
                phase: "dax-check".into(),
                detail: e.to_string(),
            }
            .emit();
            ok = false;
        }
    }
    if cfg.settle_ms > 0 && !cfg.workloads.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(cfg.settle_ms.into()));
    }
    for spec in cfg.workloads.clone() {
        let name = spec.name();
        if wedged {
            result(
                name,
                Outcome::Skip,
                None,
                None,
                "skipped: an earlier hang left threads stuck on the filesystem".into(),
            )
            .emit();
            continue;
        }
        Message::WorkloadStart {
            name: name.into(),
            spec: spec.to_string(),
        }
        .emit();
        let file = if devdax {
            devs.fs_dev.clone()
        } else {
            format!("{}/{name}.dat", setup::MNT)
        };
        let created = if devdax {
            setup::check_dax_size(&devs.fs_dev, spec.size).map(|()| true)
        } else {
            setup::create_test_file(
            &file,
            spec.size,
            cfg.mapping_for(&spec) == kregress_agent::Mapping::Pmd,
            )
        };
        match created {
            Ok(true) => {}
            Ok(false) => {
                result(
                    name,
                    Outcome::Miss,
                    None,
                    None,
                    format!("DAX not active on {file} (STATX_ATTR_DAX unset)"),
                )
                .emit();
                continue;
            }
            Err(e) => {
                result(
                    name,
                    Outcome::Miss,
                    None,
                    Some(e.errno),
                    format!("creating the test file: {e}"),
                )
                .emit();
                continue;
            }
        }
        let target = workloads::Target {
            file,
            mode: cfg.mode,
            raw_dev: devs.raw_dev.clone(),
            mapping: cfg.mapping_for(&spec),
            hang: cfg.hang,
            virtual_time: cfg.virtual_time,
        };
        let t = Instant::now();
        let deadline = Duration::from_secs(spec.deadline as u64);
        let spec2 = spec.clone();
        let hang_limit = Duration::from_secs(cfg.hang as u64);
        let r = hang::run_watched(name, deadline, hang_limit, move || {
            workloads::run(&spec2, &target)
        });
        let msg = match r {
            hang::Watched::OpHang { op, waited } => {
                wedged = true;
                result(
                    name,
                    Outcome::Fail,
                    Some(FailKind::Hang),
                    None,
                    format!(
                        "{op} did not return within {} s (waited {:.1} s)",
                        cfg.hang,
                        waited.as_secs_f64()
                    ),
                )
            }
            hang::Watched::Deadline => {
                wedged = true;
                result(
                    name,
                    Outcome::Fail,
                    Some(FailKind::Hang),
                    None,
                    format!(
                        "did not finish within its deadline of {} s ({:.1} s)",
                        spec.deadline,
                        t.elapsed().as_secs_f64()
                    ),
                )
            }
            hang::Watched::Done(Ok(f)) if f.skipped.is_some() => {
                result(name, Outcome::Skip, None, None, f.skipped.unwrap_or_default())
            }
            hang::Watched::Done(Ok(f)) => Message::WorkloadResult {
                name: name.into(),
                outcome: Outcome::Pass,
                kind: None,
                errno: None,
                detail: f.detail,
                mb_per_s: f.mb_per_s,
                ops_per_s: f.ops_per_s,
                counters: f.counters,
            },
            hang::Watched::Done(Err(f)) => {
                wedged |= f.wedged;
                result(name, Outcome::Fail, Some(f.kind), f.errno, f.detail)
            }
        };
        msg.emit();
    }

    ok &= setup::teardown(&cfg, Some(&devs), !devdax, wedged);
    ok
}
