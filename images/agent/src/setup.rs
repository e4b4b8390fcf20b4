//! Guest setup and teardown: early mounts, console, pmem devices, mkfs, DAX mount.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kregress_agent::{Backend, FailKind, Fs, GuestConfig, Mapping, Message, Mode, Outcome};

use crate::hang;
use crate::sys::{self, ms};

pub const MNT: &str = "/mnt/pmem";
const TOOL_DIRS: &[&str] = &["/sbin", "/usr/sbin", "/bin", "/usr/bin"];
const LIB_PATH: &str = "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/lib:/usr/lib";

/// Emit a `step` message.
pub fn step(name: &str, ok: bool, detail: impl Into<String>, t: Instant) {
    Message::Step { name: name.into(), ok, detail: detail.into(), elapsed_ms: ms(t.elapsed()) }.emit();
}

/// proc, sys, devtmpfs, tmpfs. Already-mounted (EBUSY) is fine.
pub fn early_mounts() -> Result<(), String> {
    let mut errors = Vec::new();
    for (src, target, fstype) in
        [("proc", "/proc", "proc"), ("sysfs", "/sys", "sysfs"), ("devtmpfs", "/dev", "devtmpfs"), ("tmpfs", "/tmp", "tmpfs")]
    {
        let _ = std::fs::create_dir_all(target);
        match sys::mount(src, target, fstype, libc::MS_NOSUID, "") {
            Ok(()) => {}
            Err(e) if e.errno == libc::EBUSY => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Make sure fds 0, 1, 2 are the console (they are not when the initramfs has no /dev/console).
pub fn ensure_console() {
    if unsafe { libc::fcntl(1, libc::F_GETFD) } >= 0 {
        return;
    }
    let fd = unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd >= 0 {
        for target in 0..3 {
            if fd != target {
                unsafe { libc::dup2(fd, target) };
            }
        }
        if fd > 2 {
            unsafe { libc::close(fd) };
        }
    }
}

/// The path of a host tool copied into the initramfs, if it is there.
fn find_tool(name: &str) -> Option<String> {
    TOOL_DIRS.iter().map(|d| format!("{d}/{name}")).find(|p| Path::new(p).exists())
}

/// Why a tool run failed (command, exit status, last lines of its output).
struct ToolError {
    detail: String,
}

/// Run a host tool copied into the initramfs, with a deadline. Returns its stdout.
/// On timeout the child is left running (it is likely in D state) and a hang report is emitted.
fn run_tool(phase: &str, name: &str, args: &[&str], timeout: Duration) -> Result<String, ToolError> {
    let cmdline = format!("{name} {}", args.join(" "));
    let Some(path) = find_tool(name) else {
        return Err(ToolError { detail: format!("{name}: not found in the initramfs ({})", TOOL_DIRS.join(", ")) });
    };
    let tag = format!("{}-{}", std::process::id(), name.replace('/', "_"));
    let (out_path, err_path) = (format!("/tmp/{tag}.out"), format!("/tmp/{tag}.err"));
    let open = |p: &str| std::fs::File::create(p).map(Stdio::from).unwrap_or_else(|_| Stdio::null());
    let t = Instant::now();
    let mut child = match Command::new(&path)
        .args(args)
        .env_clear()
        .env("PATH", "/sbin:/usr/sbin:/bin:/usr/bin")
        .env("LD_LIBRARY_PATH", LIB_PATH)
        .stdin(Stdio::null())
        .stdout(open(&out_path))
        .stderr(open(&err_path))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Err(ToolError { detail: format!("{cmdline}: cannot start: {e}") }),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if t.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                hang::report_hang(phase, &cmdline, name, t.elapsed());
                return Err(ToolError { detail: format!("{cmdline}: still running after {:.0} s", timeout.as_secs_f64()) });
            }
            Err(e) => return Err(ToolError { detail: format!("{cmdline}: wait: {e}") }),
        }
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    if !status.success() {
        let tail: Vec<&str> = err.lines().chain(out.lines()).rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(ToolError { detail: format!("{cmdline}: {status}: {}", tail.join(" | ")) });
    }
    Ok(out)
}

/// The two pmem devices.
#[derive(Debug, Clone)]
pub struct Devices {
    /// The DAX side: the block device that gets the DAX filesystem (fsdax)
    /// or the device-dax character device /dev/daxX.Y (devdax).
    pub fs_dev: String,
    /// devdax: the nd bus device (`daxN.M` under /sys/bus/nd) that dax_pmem
    /// binds; unbinding it tears the dev_pagemap down.
    pub nd_dax: Option<String>,
    /// Raw, non-DAX block device: the O_DIRECT side.
    pub raw_dev: String,
}

fn blockdev_of_namespace(ns: &str) -> Option<String> {
    let dir = format!("/sys/bus/nd/devices/{ns}/block");
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok()).next()
}

fn blockdev_from_ndctl_json(out: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
    v.get("blockdev")?.as_str().map(str::to_string)
}

/// Switches a label-less NVDIMM namespace to fsdax mode through sysfs, as
/// `ndctl create-namespace -m fsdax` does: a pfn device with a fresh uuid,
/// 2 MiB alignment and struct pages on the device, bound to nd_pmem (which
/// writes the info block). 0.3 s under TCG, where ndctl took 5.5 s.
fn fsdax_via_sysfs(ns: &str) -> Result<String, String> {
    let nd = "/sys/bus/nd";
    let write = |path: String, val: &str| std::fs::write(&path, val).map_err(|e| format!("echo {val} > {path}: {e}"));
    if sys::exists(&format!("{nd}/devices/{ns}/driver")) {
        write(format!("{nd}/drivers/nd_pmem/unbind"), ns)?;
    }
    let real = std::fs::canonicalize(format!("{nd}/devices/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
    let region = real.parent().ok_or_else(|| format!("{ns}: no region"))?;
    let seed = std::fs::read_to_string(region.join("pfn_seed")).map_err(|e| format!("{}/pfn_seed: {e}", region.display()))?;
    let pfn = seed.trim();
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(|e| format!("random uuid: {e}"))?;
    write(format!("{nd}/devices/{pfn}/uuid"), uuid.trim())?;
    write(format!("{nd}/devices/{pfn}/namespace"), ns)?;
    write(format!("{nd}/devices/{pfn}/align"), "2097152")?;
    write(format!("{nd}/devices/{pfn}/mode"), "pmem")?;
    write(format!("{nd}/drivers/nd_pmem/bind"), pfn)?;
    blockdev_of_namespace(pfn).ok_or_else(|| format!("{pfn} bound but has no block device"))
}

/// Switches namespace `ns` to devdax mode through sysfs, as `ndctl
/// create-namespace -m devdax -a ALIGN` does: the region's dax seed gets a
/// uuid, the namespace, the alignment and struct pages on the device
/// (`mode=pmem`), and is bound to dax_pmem, which creates /dev/daxX.Y.
/// Returns (nd dax device, character device name).
fn devdax_via_sysfs(ns: &str, align: usize) -> Result<(String, String), String> {
    let nd = "/sys/bus/nd";
    let write = |path: String, val: &str| std::fs::write(&path, val).map_err(|e| format!("echo {val} > {path}: {e}"));
    if sys::exists(&format!("{nd}/devices/{ns}/driver")) {
        let drv = std::fs::read_link(format!("{nd}/devices/{ns}/driver")).map_err(|e| format!("{ns}/driver: {e}"))?;
        let drv = drv.file_name().unwrap_or_default().to_string_lossy().into_owned();
        write(format!("{nd}/drivers/{drv}/unbind"), ns)?;
    }
    let real = std::fs::canonicalize(format!("{nd}/devices/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
    let region = real.parent().ok_or_else(|| format!("{ns}: no region"))?;
    let seed =
        std::fs::read_to_string(region.join("dax_seed")).map_err(|e| format!("{}/dax_seed: {e} (CONFIG_NVDIMM_DAX?)", region.display()))?;
    let dax = seed.trim().to_string();
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(|e| format!("random uuid: {e}"))?;
    write(format!("{nd}/devices/{dax}/uuid"), uuid.trim())?;
    write(format!("{nd}/devices/{dax}/namespace"), ns)?;
    write(format!("{nd}/devices/{dax}/align"), &align.to_string())?;
    write(format!("{nd}/devices/{dax}/mode"), "pmem")?;
    write(format!("{nd}/drivers/dax_pmem/bind"), &dax).map_err(|e| format!("{e} (CONFIG_DEV_DAX_PMEM?)"))?;
    // dax_pmem registers the device-dax instance as a child: .../daxN.M/daxN.M
    let chr = std::fs::read_dir(format!("{nd}/devices/{dax}"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("dax") && sys::exists(&format!("/sys/bus/dax/devices/{n}")))
        .ok_or_else(|| format!("{dax} bound to dax_pmem but no device-dax instance appeared"))?;
    Ok((dax, chr))
}

/// The nd namespace whose block device is `blk` (e.g. pmem0 -> namespace0.0).
fn namespace_of_block(blk: &str) -> Result<String, String> {
    let p = format!("/sys/block/{blk}/device");
    let real = std::fs::canonicalize(&p).map_err(|e| format!("{p}: {e}"))?;
    Ok(real.file_name().unwrap_or_default().to_string_lossy().into_owned())
}

/// Checks that the device-dax instance `dev` is at least `size` bytes.
pub fn check_dax_size(dev: &str, size: u64) -> Result<(), sys::SysError> {
    let name = dev.trim_start_matches("/dev/");
    let p = format!("/sys/bus/dax/devices/{name}/size");
    let have: u64 = std::fs::read_to_string(&p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| sys::SysError { what: format!("reading {p}"), errno: libc::ENODEV })?;
    if have < size {
        return Err(sys::SysError { what: format!("{dev} has {have} bytes, the workload needs {size}"), errno: libc::ENOSPC });
    }
    Ok(())
}

/// Device-dax alignment for a mapping kind: 4 KiB pages or 2 MiB PMDs.
fn devdax_align(m: Mapping) -> usize {
    match m {
        Mapping::Pte => 4096,
        Mapping::Pmd => sys::PMD_SIZE,
    }
}

/// Puts the DAX-side namespace `ns` into devdax mode and waits for its character device.
fn make_devdax(cfg: &GuestConfig, ns: &str, raw_dev: String, appear: Duration) -> Result<Devices, String> {
    let t = Instant::now();
    let align = devdax_align(cfg.mapping);
    let (nd_dax, chr) = devdax_via_sysfs(ns, align)?;
    let dev = format!("/dev/{chr}");
    if !sys::wait_for_path(&dev, appear) {
        return Err(format!("{dev} did not appear"));
    }
    step("devdax", true, format!("{ns} -> devdax (sysfs), {nd_dax} align {align}, {dev}"), t);
    Ok(Devices { fs_dev: dev, nd_dax: Some(nd_dax), raw_dev })
}

/// Find (and for NVDIMMs configure) the pmem devices.
pub fn prepare_pmem(cfg: &GuestConfig) -> Result<Devices, String> {
    let appear = Duration::from_secs(20);
    match cfg.backend {
        Backend::Memmap => {
            for d in ["/dev/pmem0", "/dev/pmem1"] {
                if !sys::wait_for_path(d, appear) {
                    return Err(format!(
                        "{d} did not appear within {} s (memmap=512M!1G memmap=512M!2G on the kernel command line?)",
                        appear.as_secs()
                    ));
                }
            }
            if cfg.mode == Mode::Devdax {
                let ns = namespace_of_block("pmem0")?;
                return make_devdax(cfg, &ns, "/dev/pmem1".into(), appear);
            }
            Ok(Devices { fs_dev: "/dev/pmem0".into(), nd_dax: None, raw_dev: "/dev/pmem1".into() })
        }
        Backend::Nvdimm => {
            for ns in ["namespace0.0", "namespace1.0"] {
                let p = format!("/sys/bus/nd/devices/{ns}");
                if !sys::wait_for_path(&p, appear) {
                    return Err(format!("{p} did not appear within {} s (two QEMU nvdimm devices?)", appear.as_secs()));
                }
            }
            let raw = match blockdev_of_namespace("namespace1.0") {
                Some(b) => b,
                None => {
                    // Claimed by a stale info block: force it back to raw mode.
                    let out = run_tool(
                        "setup",
                        "ndctl",
                        &["create-namespace", "-f", "-e", "namespace1.0", "-m", "raw"],
                        Duration::from_secs(120),
                    )
                    .map_err(|e| e.detail)?;
                    blockdev_from_ndctl_json(&out).ok_or_else(|| format!("ndctl create-namespace -m raw: no blockdev: {}", out.trim()))?
                }
            };
            let raw_dev = format!("/dev/{raw}");
            if !sys::wait_for_path(&raw_dev, appear) {
                return Err(format!("{raw_dev} did not appear"));
            }
            if cfg.mode == Mode::Devdax {
                return make_devdax(cfg, "namespace0.0", raw_dev, appear);
            }
            let t = Instant::now();
            let fs = fsdax_via_sysfs("namespace0.0")?;
            step("fsdax", true, format!("namespace0.0 -> fsdax (sysfs), /dev/{fs}"), t);
            let fs_dev = format!("/dev/{fs}");
            if !sys::wait_for_path(&fs_dev, appear) {
                return Err(format!("{fs_dev} did not appear"));
            }
            Ok(Devices { fs_dev, nd_dax: None, raw_dev })
        }
    }
}

/// Writes a host-made filesystem (its non-zero pieces, named by offset) onto
/// `dev`. mkfs on a fresh pmem device in 6.1 takes 4-5 s under TCG; this
/// takes ~0.1 s. The device is zero where no piece lands: a fresh memmap
/// range or NVDIMM backing file.
pub fn write_premade(dir: &str, dev: &str) -> Result<String, String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(dev).map_err(|e| format!("open {dev}: {e}"))?;
    let mut bytes = 0usize;
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e} (initramfs without host-made filesystems?)"))?;
    for e in rd {
        let p = e.map_err(|e| format!("{dir}: {e}"))?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let Some(hex) = name.strip_suffix(".bin") else { continue };
        let off = u64::from_str_radix(hex, 16).map_err(|e| format!("{}: {e}", p.display()))?;
        let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        f.write_all_at(&data, off).map_err(|e| format!("writing {} at {off:#x} of {dev}: {e}", p.display()))?;
        bytes += data.len();
    }
    if bytes == 0 {
        return Err(format!("{dir}: no filesystem pieces"));
    }
    f.sync_all().map_err(|e| format!("fsync {dev}: {e}"))?;
    Ok(format!("wrote the host-made filesystem {dir} ({} KiB) onto {dev}", bytes >> 10))
}

/// Makes the filesystem on `dev` (see [`kregress_agent::config::mkfs_args`]).
pub fn mkfs(fs: Fs, dev: &str, pmd: bool) -> Result<String, String> {
    let (tool, mut args) = kregress_agent::config::mkfs_args(fs, pmd);
    args.push(dev);
    run_tool("setup", tool, &args, Duration::from_secs(180)).map_err(|e| e.detail)?;
    Ok(format!("{tool} {}", args.join(" ")))
}

pub fn mount_dax(fs: Fs, dev: &str) -> Result<String, String> {
    std::fs::create_dir_all(MNT).map_err(|e| format!("mkdir {MNT}: {e}"))?;
    // noinit_itable: the images are made with lazy_itable_init=1, and ext4's
    // lazyinit thread would zero inode tables while workloads are timed.
    sys::mount(dev, MNT, fs.as_str(), 0, if fs == Fs::Ext4 { "dax,noinit_itable" } else { "dax" }).map_err(|e| e.to_string())?;
    Ok(format!("mount -t {fs} -o dax {dev} {MNT}"))
}

/// Create a file of `size` bytes with written (not unwritten) blocks, then check
/// STATX_ATTR_DAX. Emits `dax_check`. Err: could not create it.
pub fn create_test_file(path: &str, size: u64, pmd: bool) -> Result<bool, sys::SysError> {
    let fd = sys::Fd::open(path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
    if pmd {
        // 2 MiB extent size hint (XFS); other filesystems refuse it, which is fine.
        let _ = sys::set_extsize_hint(&fd, sys::PMD_SIZE as u32);
    }
    // One allocation for the whole file: contiguous extents, PMD faults possible.
    sys::fallocate(&fd, size)?;
    let buf = sys::Map::anon(sys::MIB)?;
    let mut off = 0;
    while off < size {
        sys::pwrite_exact(&fd, buf.ptr, sys::MIB, off)?;
        off += sys::MIB as u64;
    }
    sys::fsync(&fd)?;
    let (attrs, _mask) = sys::statx_attributes(path)?;
    let dax = attrs & sys::STATX_ATTR_DAX != 0;
    Message::DaxCheck { path: path.into(), dax }.emit();
    Ok(dax)
}

/// Unbinds a device from its driver through `/sys/bus/<bus>/devices/<name>/driver/unbind`.
fn unbind_bus(bus: &str, name: &str) -> Result<String, String> {
    let link = format!("/sys/bus/{bus}/devices/{name}/driver");
    let driver = std::fs::read_link(&link).map_err(|e| format!("readlink {link}: {e}"))?;
    let driver = driver.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let unbind = format!("{link}/unbind");
    std::fs::write(&unbind, name).map_err(|e| format!("echo {name} > {unbind}: {e}"))?;
    Ok(format!("{name} unbound from {driver}"))
}

/// Unbinds the DAX side: for devdax the device-dax instance from device_dax
/// (kill_dev_dax: waits for every page reference), then the nd dax device
/// from dax_pmem (devm_memunmap_pages: the dev_pagemap goes away, where the
/// 2017 "percpu ref ... <= 0" fired); for fsdax the block device's driver.
fn unbind_dax_side(d: &Devices) -> Result<String, String> {
    match &d.nd_dax {
        None => unbind(&d.fs_dev),
        Some(nd) => {
            let chr = d.fs_dev.trim_start_matches("/dev/");
            let a = unbind_bus("dax", chr)?;
            let b = unbind_bus("nd", nd)?;
            Ok(format!("{a}; {b}"))
        }
    }
}

fn unbind(dev: &str) -> Result<String, String> {
    let name = dev.trim_start_matches("/dev/");
    let devlink = format!("/sys/block/{name}/device");
    let target = std::fs::read_link(&devlink).map_err(|e| format!("readlink {devlink}: {e}"))?;
    let devname = target.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let unbind = format!("{devlink}/driver/unbind");
    let driver =
        std::fs::read_link(format!("{devlink}/driver")).ok().and_then(|p| p.file_name()?.to_str().map(str::to_string)).unwrap_or_default();
    std::fs::write(&unbind, &devname).map_err(|e| format!("echo {devname} > {unbind}: {e}"))?;
    Ok(format!("{devname} unbound from {driver}"))
}

/// umount, then unbind both pmem devices from their driver (this tears down the
/// dev_pagemap of the DAX device: where page reference leaks show). Emits `teardown`.
/// `wedged`: an earlier hang left threads stuck on the filesystem.
pub fn teardown(cfg: &GuestConfig, devs: Option<&Devices>, mounted: bool, wedged: bool) -> bool {
    let t = Instant::now();
    let limit = Duration::from_secs(cfg.teardown as u64);
    let mut done = Vec::new();
    let finish = |outcome, kind, detail: String| {
        Message::Teardown { outcome, kind, detail, elapsed_ms: ms(t.elapsed()) }.emit();
        outcome == Outcome::Pass || outcome == Outcome::Skip
    };
    if mounted {
        let r = hang::with_deadline("umount", limit, || sys::umount(MNT, 0));
        match r {
            None => {
                hang::report_hang("teardown", "umount", "umount", t.elapsed());
                return finish(Outcome::Fail, Some(FailKind::Hang), format!("umount {MNT} did not return within {} s", cfg.teardown));
            }
            Some(Err(e)) if wedged && e.errno == libc::EBUSY => {
                let lazy = sys::umount(MNT, libc::MNT_DETACH).map(|_| "lazily detached").unwrap_or("lazy detach failed too");
                return finish(Outcome::Skip, None, format!("{e} after an earlier hang ({lazy}); pmem devices left bound"));
            }
            Some(Err(e)) => return finish(Outcome::Fail, Some(FailKind::IoError), e.to_string()),
            Some(Ok(())) => done.push(format!("umount {MNT} {:.2} s", t.elapsed().as_secs_f64())),
        }
    }
    let backend = cfg.backend;
    if let Some(d) = devs {
        for (i, dev) in [d.fs_dev.clone(), d.raw_dev.clone()].into_iter().enumerate() {
            let left = limit.saturating_sub(t.elapsed()).max(Duration::from_secs(1));
            let t1 = Instant::now();
            let dev2 = dev.clone();
            let d2 = d.clone();
            match hang::with_deadline("unbind", left, move || if i == 0 { unbind_dax_side(&d2) } else { unbind(&dev2) }) {
                None => {
                    hang::report_hang("teardown", &format!("unbind {dev}"), "unbind", t1.elapsed());
                    return finish(
                        Outcome::Fail,
                        Some(FailKind::Hang),
                        format!("{}; unbinding {dev} did not return within {:.0} s", done.join("; "), left.as_secs_f64()),
                    );
                }
                Some(Err(e)) => return finish(Outcome::Fail, Some(FailKind::IoError), format!("{}; {e}", done.join("; "))),
                Some(Ok(s)) => done.push(format!("{dev}: {s} in {:.2} s", t1.elapsed().as_secs_f64())),
            }
        }
    }
    finish(Outcome::Pass, None, format!("{backend}: {}", done.join("; ")))
}

/// sync, then power off (PID 1) or exit (anything else, e.g. a test run on a host).
pub fn power_off(code: i32) -> ! {
    unsafe { libc::sync() };
    if std::process::id() == 1 {
        unsafe { libc::reboot(libc::RB_POWER_OFF) };
        // Still here: reboot(2) failed. PID 1 must not exit (that panics the kernel).
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndctl_json() {
        let out = r#"{
  "dev":"namespace0.0",
  "mode":"fsdax",
  "map":"dev",
  "size":"1006.00 MiB (1054.87 MB)",
  "uuid":"0b4b6fb5-1f4c-4ba6-a2a1-f3c1f0c2f7a0",
  "sector_size":512,
  "align":2097152,
  "blockdev":"pmem0"
}
"#;
        assert_eq!(blockdev_from_ndctl_json(out).as_deref(), Some("pmem0"));
        assert_eq!(blockdev_from_ndctl_json("garbage"), None);
    }
}
