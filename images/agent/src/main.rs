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

use kregress_agent::config::premade_dir;
use kregress_agent::{FailKind, GuestConfig, Mapping, Message, Mode, Outcome, WorkloadSpec, PROTOCOL_VERSION, VERSION};

/// A workload's result without figures or counters.
fn result(name: &str, outcome: Outcome, kind: Option<FailKind>, errno: Option<i32>, detail: String) -> Message {
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
    let mount_err = if pid1 { setup::early_mounts().err() } else { None };
    if pid1 {
        setup::ensure_console();
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if let Some(n) = kregress_agent::config::nonce_of(&cmdline) {
        kregress_agent::protocol::set_nonce(n);
    }
    std::panic::set_hook(Box::new(|info| {
        Message::Error { phase: "panic".into(), detail: info.to_string() }.emit();
    }));
    Message::Hello { version: VERSION.into(), protocol: PROTOCOL_VERSION, kernel: sys::uname_release(), uptime_s: sys::uptime_s() }.emit();
    if let Some(e) = mount_err {
        Message::Error { phase: "mount".into(), detail: e }.emit();
    }
    let ok = std::panic::catch_unwind(|| run(&cmdline, t0)).unwrap_or(false);
    Message::Done { ok, elapsed_ms: sys::ms(t0.elapsed()) }.emit();
    setup::power_off(if ok { 0 } else { 1 });
}

/// Everything between hello and done. Returns false when the harness itself failed
/// (bad configuration, setup error, teardown problem); workload failures are results, not errors.
fn run(cmdline: &str, t0: Instant) -> bool {
    let Some(cfg) = read_config(cmdline) else {
        return false;
    };
    setup::step("config", true, cfg.to_cmdline(), t0);
    let Some(devs) = prepare_storage(&cfg) else {
        return false;
    };
    let devdax = cfg.mode == Mode::Devdax;
    let mut ok = true;
    if cfg.workloads.is_empty() && !devdax {
        ok = probe_dax();
    }
    settle(&cfg);
    let wedged = run_workloads(&cfg, &devs);
    ok &= setup::teardown(&cfg, Some(&devs), !devdax, wedged);
    ok
}

/// The configuration on the kernel command line; a bad one is reported (phase `config`).
fn read_config(cmdline: &str) -> Option<GuestConfig> {
    match GuestConfig::from_cmdline(cmdline) {
        Ok(c) => Some(c),
        Err(e) => {
            Message::Error { phase: "config".into(), detail: format!("{e} (in /proc/cmdline: {})", cmdline.trim()) }.emit();
            None
        }
    }
}

/// The pmem devices and, for fsdax, the filesystem on the DAX side, mounted `-o dax`.
/// On failure: the error, every workload MISS, what was set up torn down, and None.
fn prepare_storage(cfg: &GuestConfig) -> Option<setup::Devices> {
    let t = Instant::now();
    let devs = match setup::prepare_pmem(cfg) {
        Ok(d) => d,
        Err(e) => {
            setup::step("pmem", false, e.clone(), t);
            setup_failed(cfg, "pmem", e);
            return None;
        }
    };
    setup::step("pmem", true, format!("{} {}: DAX side {}, O_DIRECT on {}", cfg.backend, cfg.mode, devs.fs_dev, devs.raw_dev), t);
    if cfg.mode != Mode::Devdax {
        if let Err(e) = make_filesystem(cfg, &devs) {
            setup_failed(cfg, "mkfs", e);
            setup::teardown(cfg, Some(&devs), false, false);
            return None;
        }
    }
    Some(devs)
}

/// fsdax: the filesystem made on the DAX side (or the host-made one written
/// there), then mounted `-o dax`; a step for each, or one failed step.
fn make_filesystem(cfg: &GuestConfig, devs: &setup::Devices) -> Result<(), String> {
    let t = Instant::now();
    let made = if cfg.premade {
        setup::write_premade(&premade_dir(cfg.fs, cfg.wants_pmd()), &devs.fs_dev)
    } else {
        setup::mkfs(cfg.fs, &devs.fs_dev, cfg.wants_pmd())
    };
    let mounted = made.and_then(|m| {
        setup::step("mkfs", true, m, t);
        let t = Instant::now();
        setup::mount_dax(cfg.fs, &devs.fs_dev).map(|m| setup::step("mount", true, m, t))
    });
    mounted.inspect_err(|e| setup::step("mkfs+mount", false, e.clone(), t))
}

/// Setup failed in `phase`: the error, and every workload MISS.
fn setup_failed(cfg: &GuestConfig, phase: &str, e: String) {
    let why = format!("setup failed: {e}");
    Message::Error { phase: phase.into(), detail: e }.emit();
    for w in &cfg.workloads {
        result(w.name(), Outcome::Miss, None, None, why.clone()).emit();
    }
}

/// No workloads: a test file still shows whether DAX is on (its `dax_check`).
/// False when it cannot be made.
fn probe_dax() -> bool {
    match setup::create_test_file(&format!("{}/probe.dat", setup::MNT), 2 << 20, false) {
        Ok(_) => true,
        Err(e) => {
            Message::Error { phase: "dax-check".into(), detail: e.to_string() }.emit();
            false
        }
    }
}

/// The wait before the first workload ([`GuestConfig::settle_ms`]).
fn settle(cfg: &GuestConfig) {
    if cfg.settle_ms > 0 && !cfg.workloads.is_empty() {
        std::thread::sleep(Duration::from_millis(cfg.settle_ms.into()));
    }
}

/// The workloads in order; once one has wedged the filesystem, the rest are SKIP.
/// Returns whether the filesystem is wedged.
fn run_workloads(cfg: &GuestConfig, devs: &setup::Devices) -> bool {
    let mut wedged = false;
    for spec in &cfg.workloads {
        if wedged {
            result(spec.name(), Outcome::Skip, None, None, "skipped: an earlier hang left threads stuck on the filesystem".into()).emit();
        } else {
            wedged = run_workload(cfg, devs, spec);
        }
    }
    wedged
}

/// One workload: its start, its test file, its run under the watchdog, its
/// result. Returns whether it wedged the filesystem.
fn run_workload(cfg: &GuestConfig, devs: &setup::Devices, spec: &WorkloadSpec) -> bool {
    Message::WorkloadStart { name: spec.name().into(), spec: spec.to_string() }.emit();
    let file = match test_file(cfg, devs, spec) {
        Ok(f) => f,
        Err(miss) => {
            miss.emit();
            return false;
        }
    };
    let target = workloads::Target {
        file,
        mode: cfg.mode,
        raw_dev: devs.raw_dev.clone(),
        mapping: cfg.mapping_for(spec),
        hang: cfg.hang,
        virtual_time: cfg.virtual_time,
    };
    let t = Instant::now();
    let deadline = Duration::from_secs(spec.deadline as u64);
    let hang_limit = Duration::from_secs(cfg.hang as u64);
    let spec2 = spec.clone();
    hang::take_progress();
    let watched = hang::run_watched(spec.name(), deadline, hang_limit, move || workloads::run(&spec2, &target));
    let (mut msg, wedged) = workload_result(cfg, spec, watched, t);
    // A hang's result carries what the workload counted until then.
    let progress = hang::take_progress();
    if let Message::WorkloadResult { counters, .. } = &mut msg {
        if counters.is_empty() {
            *counters = progress;
        }
    }
    msg.emit();
    wedged
}

/// What the workload runs on. devdax: the device, checked to be large enough;
/// fsdax: a new file of the workload's size under the mount, with DAX on.
/// Otherwise the workload's MISS.
fn test_file(cfg: &GuestConfig, devs: &setup::Devices, spec: &WorkloadSpec) -> Result<String, Message> {
    let name = spec.name();
    let devdax = cfg.mode == Mode::Devdax;
    let file = if devdax { devs.fs_dev.clone() } else { format!("{}/{name}.dat", setup::MNT) };
    let created = if devdax {
        setup::check_dax_size(&devs.fs_dev, spec.size).map(|()| true)
    } else {
        setup::create_test_file(&file, spec.size, cfg.mapping_for(spec) == Mapping::Pmd)
    };
    match created {
        Ok(true) => Ok(file),
        Ok(false) => Err(result(name, Outcome::Miss, None, None, format!("DAX not active on {file} (STATX_ATTR_DAX unset)"))),
        Err(e) => Err(result(name, Outcome::Miss, None, Some(e.errno), format!("creating the test file: {e}"))),
    }
}

/// The result of a watched workload started at `t`, and whether it left the
/// filesystem wedged (a hang always does; a failure when it says so).
fn workload_result(
    cfg: &GuestConfig,
    spec: &WorkloadSpec,
    watched: hang::Watched<Result<workloads::Finished, workloads::Failure>>,
    t: Instant,
) -> (Message, bool) {
    let name = spec.name();
    match watched {
        hang::Watched::OpHang { op, waited } => (
            result(
                name,
                Outcome::Fail,
                Some(FailKind::Hang),
                None,
                format!("{op} did not return within {} s (waited {:.1} s)", cfg.hang, waited.as_secs_f64()),
            ),
            true,
        ),
        hang::Watched::Deadline => (
            result(
                name,
                Outcome::Fail,
                Some(FailKind::Hang),
                None,
                format!("did not finish within its deadline of {} s ({:.1} s)", spec.deadline, t.elapsed().as_secs_f64()),
            ),
            true,
        ),
        hang::Watched::Done(Ok(f)) if f.skipped.is_some() => {
            (result(name, Outcome::Skip, None, None, f.skipped.unwrap_or_default()), false)
        }
        hang::Watched::Done(Ok(f)) => (
            Message::WorkloadResult {
                name: name.into(),
                outcome: Outcome::Pass,
                kind: None,
                errno: None,
                detail: f.detail,
                mb_per_s: f.mb_per_s,
                ops_per_s: f.ops_per_s,
                counters: f.counters,
            },
            false,
        ),
        hang::Watched::Done(Err(f)) => {
            let wedged = f.wedged;
            let mut msg = result(name, Outcome::Fail, Some(f.kind), f.errno, f.detail);
            if let Message::WorkloadResult { counters, .. } = &mut msg {
                *counters = f.counters;
            }
            (msg, wedged)
        }
    }
}
