//! One QEMU guest: the command line for each pmem backend, the serial
//! console (read in bulk from a pipe, see [`crate::console`]) and the
//! deadlines. Every path kills and reaps QEMU; the console goes to the
//! cell's console.log (capped: its head and its tail).

use crate::cache;
use crate::console::{self, Got, Lines};
use crate::error::{infra, Context, Result};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the guest gets persistent memory: legacy `memmap=512M!1G
/// memmap=512M!2G` (/dev/pmem0 and /dev/pmem1, struct pages at once) or two
/// ACPI NFIT NVDIMMs backed by host files (the agent switches namespace0.0 to fsdax).
pub(crate) use kregress_agent::Backend;

/// How QEMU runs the guest CPU; run.json records the one used (never `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when /dev/kvm opens and a probe boot works on this host, else TCG.
    Auto,
    /// Hardware virtualisation (`-accel kvm`).
    Kvm,
    /// QEMU's emulation (`-accel tcg`): slower, and the only choice without /dev/kvm.
    Tcg,
}

#[derive(Debug, Clone)]
pub(crate) struct VmSpec {
    pub(crate) bzimage: PathBuf,
    pub(crate) initrd: PathBuf,
    pub(crate) backend: Backend,
    pub(crate) smp: u32,
    /// `-icount shift=0,sleep=off` (TCG only): guest time counts instructions.
    pub(crate) icount: bool,
    /// Extra kernel command line (the agent's configuration).
    pub(crate) append: String,
    pub(crate) panic_on_warn: bool,
    /// Where NVDIMM backing files live for this guest.
    pub(crate) workdir: PathBuf,
}

/// How long the host waits for a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// No `Control::Booted` within this → the kernel did not boot.
    pub(crate) boot: Duration,
    /// From `Booted` to `Finished` (QEMU then gets a short grace to power off).
    /// Past it, a guest whose agent spoke within `quiet` still runs (a slow
    /// guest is no hang), up to twice `run`: the agent judges hangs in guest
    /// time, this deadline only catches a guest that stopped answering.
    pub(crate) run: Duration,
    /// How long the agent may be silent past `run` before the guest counts as stopped.
    pub(crate) quiet: Duration,
}

impl Deadlines {
    /// `boot` and `run` as given; the agent's silence may last as long as a
    /// boot may (both are "how slow this host is": the agent says
    /// `alive` every 2 guest seconds, which a busy icount guest stretches to
    /// ~50 host seconds).
    pub(crate) fn new(boot: Duration, run: Duration) -> Deadlines {
        Deadlines { boot, run, quiet: boot }
    }
}

/// How the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Exit {
    /// QEMU exited by itself (power-off, or reboot after a panic with -no-reboot).
    Exited,
    /// No hello before the boot deadline.
    BootTimeout,
    /// Hello, but no done before the run deadline, and the agent silent for
    /// the quiet limit: the guest stopped answering.
    RunTimeout,
    /// No done at twice the run deadline although the agent still spoke:
    /// the guest runs too slowly for its deadlines on this host.
    Overtime,
    /// The caller asked to stop (e.g. triage saw a fatal report).
    Stopped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VmRun {
    pub(crate) exit: Exit,
    pub(crate) seconds: f64,
    /// Seconds from QEMU start to the hello line.
    pub(crate) hello_seconds: Option<f64>,
    pub(crate) console: PathBuf,
    pub(crate) cmdline: String,
}

/// What the caller made of a console line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Continue,
    /// An agent line: the guest still answers (see [`Deadlines::quiet`]).
    Alive,
    /// The guest's userspace is up: the boot deadline is met.
    Booted,
    /// The guest finished its work: it gets a short grace to power off.
    Finished,
    /// Stop the guest now.
    Stop,
}

pub(crate) const NVDIMM_SIZE: &str = "1G";
/// The NVDIMMs a guest gets on the nvdimm backend.
const NVDIMMS: usize = 2;

/// The backing file of NVDIMM `i` in `workdir`.
fn nvdimm_file(workdir: &Path, i: usize) -> PathBuf {
    workdir.join(format!("nvdimm{i}.img"))
}

/// `-object` of NVDIMM `i` backed by a file in `workdir` (a comma in the
/// path is written `,,`, as QEMU's option syntax wants).
fn nvdimm_object(workdir: &Path, i: usize) -> String {
    let path = nvdimm_file(workdir, i).display().to_string().replace(',', ",,");
    format!("memory-backend-file,id=mem{i},share=on,mem-path={path},size={NVDIMM_SIZE}")
}

/// The kernel command line (without the agent's part).
pub(crate) fn kernel_cmdline(spec: &VmSpec) -> String {
    // oops=panic: a guest that oopsed is not going to finish its work (6.12's
    // BUG in follow_page_pte left a CPU spinning on a PTE lock and the
    // boot waiting for the host's backstop deadline); panic=-1 then ends it
    // at once and the oops is the console's last report.
    let mut c = String::from("console=ttyS0 panic=-1 oops=panic ignore_loglevel sysctl.kernel.hung_task_timeout_secs=10");
    if spec.backend == Backend::Memmap {
        c += " memmap=512M!1G memmap=512M!2G";
    }
    if spec.panic_on_warn {
        c += " panic_on_warn=1";
    }
    if spec.icount {
        // Same instructions every boot: no user address randomization. Where
        // the agent's mapping lands decides how many page-table pages slow
        // GUP faults in, which moved slow-GUP figures by 1.9 % between boots.
        c += " norandmaps";
    }
    if !spec.append.is_empty() {
        c += " ";
        c += &spec.append;
    }
    c
}

/// QEMU's arguments for `spec` under `accel` (Kvm or Tcg).
pub(crate) fn qemu_args(spec: &VmSpec, accel: Accel) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &str| a.push(s.to_string());
    match spec.backend {
        Backend::Memmap => {
            push("-machine");
            push("pc");
            push("-m");
            push("3G");
        }
        Backend::Nvdimm => {
            push("-machine");
            push("pc,nvdimm=on");
            push("-m");
            push("1G,slots=2,maxmem=4G");
            for i in 0..NVDIMMS {
                push("-object");
                push(&nvdimm_object(&spec.workdir, i));
                push("-device");
                push(&format!("nvdimm,id=nv{i},memdev=mem{i}"));
            }
        }
    }
    match accel {
        // icount exists only under TCG: an icount boot is a TCG boot whatever the host offers.
        Accel::Kvm if !spec.icount => {
            push("-accel");
            push("kvm");
            push("-cpu");
            push("host");
        }
        _ => {
            push("-accel");
            push("tcg");
            push("-cpu");
            if spec.icount {
                // Same instructions every boot: no host randomness (RDRAND/
                // RDSEED) and a clock that starts at the same virtual time,
                // so the kernel's RNG, hash seeds and timestamps repeat.
                push("max,-rdrand,-rdseed");
                push("-rtc");
                push("base=2026-01-01T00:00:00,clock=vm");
                // 1 ns of guest time per instruction; an idle guest jumps to
                // its next timer instead of sleeping in host time.
                push("-icount");
                push("shift=0,sleep=off");
            } else {
                push("max");
            }
        }
    }
    for s in ["-smp", &spec.smp.to_string(), "-display", "none", "-nodefaults", "-serial", "stdio", "-monitor", "none", "-no-reboot"] {
        push(s);
    }
    push("-kernel");
    push(&spec.bzimage.display().to_string());
    push("-initrd");
    push(&spec.initrd.display().to_string());
    push("-append");
    push(&kernel_cmdline(spec));
    a
}

/// QEMU's seccomp sandbox: no obsolete system calls, no privilege changes,
/// no spawning, no scheduler or resource changes. The guest runs kernels
/// under test that may be broken in any way; a QEMU escape then meets a
/// process that cannot exec or setuid.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// `-sandbox SANDBOX` where this QEMU has seccomp, else nothing (said once
/// on stderr). Probed once per process: QEMU starts with the sandbox, stopped
/// (-S), and must quit when its monitor says so, within 10 s.
pub(crate) fn sandbox_args() -> &'static [String] {
    static ARGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ARGS.get_or_init(|| {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-sandbox", SANDBOX, "-machine", "none", "-nodefaults", "-display", "none", "-no-user-config", "-S", "-monitor", "stdio"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // The deadline's watchdog kills a QEMU that does not quit; the child
        // is reaped only through the Guard (a try_wait here reaped it behind
        // the Guard's back, and the probe always said "no sandbox").
        let ok = crate::proc::Guard::spawn(&mut c, Some(Duration::from_secs(10))).is_ok_and(|mut g| {
            let _ = g.child.stdin.take().map(|mut i| i.write_all(b"quit\n"));
            g.wait().is_ok_and(|st| st.success())
        });
        if ok {
            vec!["-sandbox".into(), SANDBOX.into()]
        } else {
            eprintln!("kregress: this QEMU has no seccomp sandbox (-sandbox on failed): guests run without it");
            vec![]
        }
    })
}

/// Whether KVM works here, probed once per host (kernel, QEMU) with a bounded
/// boot of `bzimage`: on some hosts /dev/kvm opens but guests hang at once.
pub(crate) fn resolve_accel(want: Accel, bzimage: &Path) -> Result<Accel> {
    if want != Accel::Auto {
        return Ok(want);
    }
    if std::fs::File::options().read(true).write(true).open("/dev/kvm").is_err() {
        return Ok(Accel::Tcg);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qemu = crate::proc::output(
        {
            let mut c = Command::new("qemu-system-x86_64");
            c.arg("--version");
            c
        },
        crate::proc::deadline::QUICK,
    )
    .unwrap_or_default();
    let key = cache::Key::new("kvm-probe").part("host", host.as_bytes()).part("qemu", qemu.as_bytes()).hex();
    let memo = cache::dir("probe")?.join(format!("kvm-{}", &key[..16]));
    if let Ok(s) = std::fs::read_to_string(&memo) {
        return Ok(if s.trim() == "kvm" { Accel::Kvm } else { Accel::Tcg });
    }
    // A kernel that prints anything within 20 s under KVM is good enough.
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-machine",
        "pc",
        "-m",
        "512M",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
    ])
    .arg(bzimage)
    .args(["-append", "console=ttyS0 panic=-1"]);
    let ok = first_line_within(c, "Linux version", Duration::from_secs(20));
    let answer = if ok { Accel::Kvm } else { Accel::Tcg };
    cache::write_atomic(&memo, if ok { b"kvm" } else { b"tcg" })?;
    Ok(answer)
}

fn first_line_within(cmd: Command, needle: &str, limit: Duration) -> bool {
    let Ok((mut qemu, mut out)) = spawn(cmd) else { return false };
    let start = Instant::now();
    let mut lines = Lines::default();
    let mut seen = false;
    while !seen && start.elapsed() < limit {
        match out.next(Duration::from_millis(200)) {
            Ok(Got::Data(bytes)) => {
                lines.push(bytes, |l| {
                    seen = l.contains(needle);
                    !seen
                });
            }
            Ok(Got::Quiet) => {}
            Ok(Got::Eof) | Err(_) => break,
        }
    }
    qemu.kill();
    seen
}

/// Starts QEMU in its own process group (killed with kregress, see
/// [`crate::proc::Guard`]) with stdout and stderr on one pipe, the console.
fn spawn(mut cmd: Command) -> Result<(crate::proc::Guard, console::Reader<std::io::PipeReader>)> {
    let (r, w) = std::io::pipe().context(|| "creating the console pipe".into())?;
    let w2 = w.try_clone().context(|| "duplicating the console pipe".into())?;
    cmd.stdin(Stdio::null()).stdout(w).stderr(w2);
    let g = crate::proc::Guard::spawn(&mut cmd, None)?;
    drop(cmd); // our copies of the write end: EOF when QEMU exits
    Ok((g, console::Reader::new(r)))
}

/// QEMU's whole argument list for `spec` under `accel`: [`qemu_args`] and
/// this host's [`sandbox_args`].
pub(crate) fn args(spec: &VmSpec, accel: Accel) -> Vec<String> {
    let mut a = qemu_args(spec, accel);
    a.extend(sandbox_args().iter().cloned());
    a
}

/// Boots QEMU with exactly `args` ([`args`] of a spec, or a recorded boot's
/// made to boot here, [`rebase_args`]), streaming every console line to
/// `console` and to `on_line`. With `nvdimm_dir`, the NVDIMM backing files
/// the arguments name there are made first.
pub(crate) fn boot(
    args: &[String],
    nvdimm_dir: Option<&Path>,
    deadlines: Deadlines,
    console: &Path,
    on_line: impl FnMut(&str) -> Control,
) -> Result<VmRun> {
    if let Some(dir) = nvdimm_dir {
        make_nvdimm_files(dir)?;
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(args);
    watch(cmd, deadlines, console, on_line)
}

/// The NVDIMM backing files of a guest in `dir` (made, reserved).
pub(crate) fn make_nvdimm_files(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    for i in 0..NVDIMMS {
        let p = nvdimm_file(dir, i);
        let f = std::fs::File::create(&p).context(|| format!("creating {}", p.display()))?;
        // Reserved, not sparse: QEMU maps the file as guest memory, and a
        // page it cannot allocate on a full disk is a SIGBUS that would
        // look like the kernel under test dying.
        let e = unsafe { libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 1 << 30) };
        if e != 0 {
            return Err(infra(format!(
                "reserving 1 GiB for the NVDIMM backing file {}: {}",
                p.display(),
                std::io::Error::from_raw_os_error(e)
            )));
        }
    }
    Ok(())
}

/// The options kregress gives QEMU ([`qemu_args`], [`sandbox_args`]) and
/// the values it gives them. A recorded boot may come from another machine
/// (a bundle): QEMU replays it with these options only, so that a boot.json
/// cannot make it open a host file, a socket or a monitor. The unit tests
/// check that every list [`qemu_args`] makes passes.
static OPTIONS: std::sync::LazyLock<Vec<(&str, regex::Regex)>> = std::sync::LazyLock::new(|| {
    [
        ("-machine", r"pc|pc,nvdimm=on"),
        ("-m", r"[0-9]{1,4}[MG](,slots=[0-9],maxmem=[0-9]{1,4}[MG])?"),
        ("-object", r"memory-backend-file,id=mem([0-9]),share=on,mem-path=.*/nvdimm([0-9])\.img,size=1G"),
        ("-device", r"nvdimm,id=nv([0-9]),memdev=mem([0-9])"),
        ("-accel", r"kvm|tcg"),
        ("-cpu", r"(host|max)(,[-+][a-z0-9_]+)*"),
        ("-rtc", r"base=[0-9T:-]+,clock=vm"),
        ("-icount", r"shift=[0-9]{1,2},sleep=(on|off)"),
        ("-smp", r"[1-9][0-9]?"),
        ("-display", "none"),
        ("-serial", "stdio"),
        ("-monitor", "none"),
        ("-kernel", ".*"),
        ("-initrd", ".*"),
        ("-append", "(?s).*"),
        ("-sandbox", ".*"),
    ]
    .into_iter()
    .map(|(o, v)| (o, regex::Regex::new(&format!("^(?:{v})$")).expect("a valid pattern")))
    .collect()
});

/// The options kregress gives QEMU that take no value.
pub(crate) const FLAGS: &[&str] = &["-nodefaults", "-no-reboot"];

/// A recorded QEMU argument list, checked and made to boot here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rebased {
    pub(crate) args: Vec<String>,
    /// The guest has NVDIMMs: their backing files go in the new workdir.
    pub(crate) nvdimm: bool,
}

/// `recorded` (a boot's QEMU arguments, see [`args`]) with `-kernel` and
/// `-initrd` at `bzimage` and `initrd`, the NVDIMM backing files in
/// `workdir`, the boot's nonce (`kregress.nonce=` on `-append`) replaced
/// by `nonce` when one is given, and without the recorded `-sandbox`
/// (a property of the host that recorded it: [`boot`]'s caller adds this
/// host's). Everything else stays as recorded. An option or a value
/// kregress does not give QEMU (see [`OPTIONS`]), or a list without one
/// `-kernel`, `-initrd` and `-append`, is refused with its index.
pub(crate) fn rebase_args(
    recorded: &[String],
    bzimage: &Path,
    initrd: &Path,
    workdir: &Path,
    nonce: Option<&str>,
) -> std::result::Result<Rebased, String> {
    let shown = |s: &str| s.chars().take(80).collect::<String>();
    let (mut args, mut nvdimm, mut seen) = (Vec::new(), false, std::collections::BTreeMap::<&str, u32>::new());
    let mut i = 0;
    while i < recorded.len() {
        let opt = recorded[i].as_str();
        if FLAGS.contains(&opt) {
            args.push(opt.to_string());
            i += 1;
            continue;
        }
        let Some((_, pattern)) = OPTIONS.iter().find(|(o, _)| *o == opt) else {
            return Err(format!("qemu_args[{i}]: `{}` is not an option kregress gives QEMU", shown(opt)));
        };
        let Some(value) = recorded.get(i + 1) else {
            return Err(format!("qemu_args[{i}]: `{opt}` has no value"));
        };
        let bad = || format!("qemu_args[{}]: `{opt} {}` is not an argument kregress gives QEMU", i + 1, shown(value));
        let Some(caps) = pattern.captures(value) else { return Err(bad()) };
        let index = |n: usize| caps.get(n).and_then(|m| m.as_str().parse::<usize>().ok()).unwrap_or(usize::MAX);
        *seen.entry(opt).or_default() += 1;
        let value = match opt {
            // This host's sandbox is added by the caller.
            "-sandbox" => {
                i += 2;
                continue;
            }
            "-kernel" => bzimage.display().to_string(),
            "-initrd" => initrd.display().to_string(),
            "-append" => match nonce {
                Some(n) => with_nonce(value, n).ok_or_else(|| format!("qemu_args[{}]: -append has no kregress.nonce=", i + 1))?,
                None => value.clone(),
            },
            "-object" | "-device" if index(1) != index(2) || index(1) >= NVDIMMS => return Err(bad()),
            "-object" => {
                nvdimm = true;
                nvdimm_object(workdir, index(1))
            }
            _ => value.clone(),
        };
        args.push(opt.to_string());
        args.push(value);
        i += 2;
    }
    for opt in ["-kernel", "-initrd", "-append"] {
        let n = seen.get(opt).copied().unwrap_or(0);
        if n != 1 {
            return Err(format!("qemu_args: {opt} {n} times, not once"));
        }
    }
    Ok(Rebased { args, nvdimm })
}

/// A kernel command line with the value of every `kregress.nonce=` word
/// replaced by `nonce` (the agent reads the last, see
/// `kregress_agent::config::nonce_of`); None when it has none.
fn with_nonce(cmdline: &str, nonce: &str) -> Option<String> {
    kregress_agent::config::nonce_of(cmdline)?;
    let words: Vec<String> = cmdline
        .split(' ')
        .map(|w| if w.starts_with("kregress.nonce=") { format!("kregress.nonce={nonce}") } else { w.to_string() })
        .collect();
    Some(words.join(" "))
}

/// Runs `cmd` (QEMU) with its output as the console, under `deadlines`.
fn watch(cmd: Command, deadlines: Deadlines, console: &Path, mut on_line: impl FnMut(&str) -> Control) -> Result<VmRun> {
    let cmdline = crate::proc::show(&cmd);
    let mut log = console::Log::create(console).context(|| format!("creating {}", console.display()))?;
    let (mut qemu, mut out) = spawn(cmd)?;
    let start = Instant::now();
    let mut lines = Lines::default();
    let hello_at: Cell<Option<Instant>> = Cell::new(None);
    let done_at: Cell<Option<Instant>> = Cell::new(None);
    let alive_at: Cell<Instant> = Cell::new(start);
    // What the caller made of a line; false stops the guest.
    let mut each = |line: &str| {
        let first = |at: &Cell<Option<Instant>>| at.set(at.get().or(Some(Instant::now())));
        let ctl = on_line(line);
        if ctl != Control::Continue {
            alive_at.set(Instant::now());
        }
        match ctl {
            Control::Continue | Control::Alive => {}
            Control::Booted => first(&hello_at),
            Control::Finished => first(&done_at),
            Control::Stop => return false,
        }
        true
    };
    let exit = loop {
        let got = out.next(Duration::from_millis(200));
        let kept = match &got {
            Ok(Got::Data(bytes)) => log.write(bytes),
            Ok(Got::Quiet) => log.flush(),
            _ => Ok(()),
        };
        if let Err(e) = kept {
            // A console we cannot keep is no evidence: stop, say where.
            qemu.kill();
            return Err(infra(format!("writing {}: {e}", console.display())));
        }
        match got {
            Ok(Got::Data(bytes)) => {
                if !lines.push(bytes, &mut each) {
                    break Exit::Stopped;
                }
            }
            Ok(Got::Quiet) => {}
            Ok(Got::Eof) => {
                lines.finish(&mut each);
                break Exit::Exited;
            }
            Err(e) => {
                qemu.kill();
                return Err(infra(format!("reading the console of `{cmdline}`: {e}")));
            }
        }
        match (hello_at.get(), done_at.get()) {
            (None, _) if start.elapsed() > deadlines.boot => break Exit::BootTimeout,
            // Silence decides first: Overtime only for an agent that spoke within `quiet`.
            (Some(h), None) if h.elapsed() > deadlines.run && alive_at.get().elapsed() > deadlines.quiet => break Exit::RunTimeout,
            (Some(h), None) if h.elapsed() > deadlines.run * 2 => break Exit::Overtime,
            // Done: a guest stuck in D state may never power off.
            (_, Some(d)) if d.elapsed() > Duration::from_secs(15) => break Exit::Exited,
            _ => {}
        }
    };
    qemu.kill();
    log.finish().context(|| format!("writing {}", console.display()))?;
    Ok(VmRun {
        exit,
        seconds: start.elapsed().as_secs_f64(),
        hello_seconds: hello_at.get().map(|h| (h - start).as_secs_f64()),
        console: console.to_path_buf(),
        cmdline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(b: Backend) -> VmSpec {
        VmSpec {
            bzimage: "/k/bzImage".into(),
            initrd: "/k/initrd".into(),
            backend: b,
            smp: 2,
            icount: false,
            append: "kregress.fs=ext4".into(),
            panic_on_warn: false,
            workdir: "/w".into(),
        }
    }

    fn deadlines(secs: u64) -> Deadlines {
        Deadlines::new(Duration::from_secs(secs), Duration::from_secs(secs))
    }

    #[test]
    fn memmap_backend_reserves_two_pmem_ranges() {
        let a = qemu_args(&spec(Backend::Memmap), Accel::Tcg).join(" ");
        assert!(a.contains("-machine pc -m 3G"), "{a}");
        assert!(a.contains("memmap=512M!1G memmap=512M!2G"), "{a}");
        assert!(a.contains("-accel tcg -cpu max"), "{a}");
        assert!(a.contains("-no-reboot"), "{a}");
        assert!(a.contains("console=ttyS0 panic=-1 oops=panic"), "{a}");
        assert!(a.ends_with("kregress.fs=ext4"), "{a}");
    }

    #[test]
    fn nvdimm_backend_has_two_file_backed_dimms_and_no_memmap() {
        let a = qemu_args(&spec(Backend::Nvdimm), Accel::Kvm).join(" ");
        assert!(a.contains("-machine pc,nvdimm=on -m 1G,slots=2,maxmem=4G"), "{a}");
        assert!(a.contains("memory-backend-file,id=mem1,share=on,mem-path=/w/nvdimm1.img,size=1G"), "{a}");
        assert!(a.contains("-device nvdimm,id=nv0,memdev=mem0"), "{a}");
        assert!(!a.contains("memmap="), "{a}");
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
    }

    /// Every list [`qemu_args`] makes, with a sandbox and a nonce as a run has.
    fn every_recorded_list() -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for backend in [Backend::Memmap, Backend::Nvdimm] {
            for (icount, accel) in [(false, Accel::Kvm), (false, Accel::Tcg), (true, Accel::Tcg)] {
                for panic_on_warn in [false, true] {
                    let mut s = spec(backend);
                    (s.icount, s.panic_on_warn, s.smp) = (icount, panic_on_warn, if icount { 1 } else { 2 });
                    s.append += " kregress.nonce=5f0c8a2e9b1d7c43";
                    let mut a = qemu_args(&s, accel);
                    a.extend(["-sandbox".to_string(), SANDBOX.to_string()]);
                    all.push(a);
                }
            }
        }
        all
    }

    #[test]
    fn a_recorded_boot_is_rebased_onto_new_files_and_nothing_else_changes() {
        let new =
            |a: &[String]| rebase_args(a, Path::new("/b/bzImage"), Path::new("/b/initrd"), Path::new("/new,dir"), Some("0123456789abcdef"));
        for recorded in every_recorded_list() {
            let r = new(&recorded).unwrap_or_else(|e| panic!("{e}: {recorded:?}"));
            let nvdimm = recorded.iter().any(|a| a.contains("nvdimm=on"));
            assert_eq!(r.nvdimm, nvdimm);
            // What the same spec gives with the new paths, less the sandbox.
            let mut s = spec(if nvdimm { Backend::Nvdimm } else { Backend::Memmap });
            s.bzimage = "/b/bzImage".into();
            s.initrd = "/b/initrd".into();
            s.workdir = "/new,dir".into();
            let expected: Vec<String> = recorded[..recorded.len() - 2]
                .iter()
                .map(|a| {
                    a.replace("/k/bzImage", "/b/bzImage")
                        .replace("/k/initrd", "/b/initrd")
                        .replace("mem-path=/w/", "mem-path=/new,,dir/")
                        .replace("5f0c8a2e9b1d7c43", "0123456789abcdef")
                })
                .collect();
            assert_eq!(r.args, expected);
            // Without a nonce (the command a bundle's README gives), the recorded one stays.
            let kept = rebase_args(&recorded, Path::new("bzImage"), Path::new("initrd"), Path::new("."), None).unwrap();
            assert!(kept.args.last().unwrap().ends_with("kregress.nonce=5f0c8a2e9b1d7c43"));
        }
    }

    #[test]
    fn a_recorded_boot_with_an_argument_kregress_does_not_give_is_refused() {
        let recorded = every_recorded_list().pop().unwrap();
        let at = |i: usize, v: &str| {
            let mut a = recorded.clone();
            a[i] = v.to_string();
            a
        };
        let serial = recorded.iter().position(|a| a == "-serial").unwrap();
        let object = recorded.iter().position(|a| a.starts_with("memory-backend-file")).unwrap();
        let append = recorded.iter().position(|a| a == "-append").unwrap();
        let cases: Vec<(Vec<String>, String)> = vec![
            (at(serial + 1, "tcp::4444,server"), format!("qemu_args[{}]: `-serial tcp::4444,server` is not an argument kregress gives QEMU", serial + 1)),
            (at(serial, "-chardev"), format!("qemu_args[{serial}]: `-chardev` is not an option kregress gives QEMU")),
            (at(object, "memory-backend-file,id=mem0,share=on,mem-path=/etc/shadow,size=1G"), format!("qemu_args[{object}]: `-object memory-backend-file,id=mem0,share=on,mem-path=/etc/shadow,size=1G` is not an argument kregress gives QEMU")),
            (at(object, &recorded[object].replace("id=mem0", "id=mem1")), format!("qemu_args[{object}]: `-object {}` is not an argument kregress gives QEMU", recorded[object].replace("id=mem0", "id=mem1"))),
            (at(append + 1, "console=ttyS0"), format!("qemu_args[{}]: -append has no kregress.nonce=", append + 1)),
            (recorded[..recorded.len() - 1].to_vec(), format!("qemu_args[{}]: `-sandbox` has no value", recorded.len() - 2)),
            ([recorded.clone(), vec!["-kernel".into(), "/x".into()]].concat(), "qemu_args: -kernel 2 times, not once".into()),
        ];
        for (args, why) in cases {
            assert_eq!(rebase_args(&args, Path::new("/b"), Path::new("/i"), Path::new("/w"), Some("0123456789abcdef")), Err(why));
        }
    }

    #[test]
    fn icount_is_one_vcpu_counting_instructions_under_tcg() {
        let mut s = spec(Backend::Memmap);
        assert!(!qemu_args(&s, Accel::Tcg).join(" ").contains("-icount"));
        s.icount = true;
        s.smp = 1;
        let a = qemu_args(&s, Accel::Tcg).join(" ");
        assert!(a.contains("-icount shift=0,sleep=off") && a.contains("-smp 1 ") && a.contains(" norandmaps"), "{a}");
        assert!(a.contains("-cpu max,-rdrand,-rdseed -rtc base=2026-01-01T00:00:00,clock=vm"), "{a}");
    }

    #[test]
    fn a_console_flood_is_read_in_bulk_within_the_deadline() {
        use kregress_agent::{LineParser, Message, Parsed};
        // 32 MB of WARNING reports between the agent's hello and done, as fast
        // as `cat` writes them, stand in for QEMU (the real guest: tests/hostile_console.rs).
        let dir = tempfile::tempdir().unwrap();
        let warn = "[   85.356317] WARNING: CPU: 0 PID: 132 at fs/dax.c:1625 dax_fault_iter+0x1a7/0x235\r\n\
                    [   85.356317] RIP: 0010:dax_fault_iter+0x1a7/0x235\r\n\
                    [   85.356317] Call Trace:\r\n[   85.356317]  dax_iomap_pte_fault+0x158/0x1b9\r\n\
                    [   85.356317] ---[ end trace 0000000000000000 ]---\r\n";
        let nonce = "5f0c8a2e9b1d7c43";
        let hello = Message::Hello { version: "0".into(), protocol: 1, kernel: "6.1".into(), uptime_s: 1.0 };
        let done = Message::Done { ok: true, elapsed_ms: 1 };
        let n = (32 << 20) / warn.len() + 1;
        let mut text = format!("{}\r\n", hello.to_line(nonce));
        text += &warn.repeat(n);
        text += &format!("{}\r\n", done.to_line(nonce));
        let input = dir.path().join("flood");
        std::fs::write(&input, &text).unwrap();
        let mut cat = Command::new("cat");
        cat.arg(&input);
        let (mut parser, mut warnings, mut messages) = (LineParser::new(nonce), 0, Vec::new());
        let log = dir.path().join("console.log");
        let r = watch(cat, deadlines(20), &log, |line| {
            warnings += line.contains("WARNING: CPU") as usize;
            match parser.push(line) {
                Parsed::Message(m @ Message::Hello { .. }) => {
                    messages.push(m);
                    Control::Booted
                }
                Parsed::Message(m) => {
                    messages.push(m);
                    Control::Finished
                }
                _ => Control::Continue,
            }
        })
        .unwrap();
        // rexpect's read_line took minutes here: the deadline passed and the guest "hung".
        assert_eq!(r.exit, Exit::Exited, "{r:?}");
        assert_eq!((warnings, messages), (n, vec![hello, done]));
        // console.log holds its head and its tail, and says what it dropped.
        let kept = std::fs::read(&log).unwrap();
        assert!(kept.len() as u64 <= console::LOG_HEAD + (console::LOG_TAIL + console::MAX_LINE) as u64 + 300, "{}", kept.len());
        let text = String::from_utf8_lossy(&kept);
        assert!(text.starts_with("KREGRESS> ") && text.ends_with("\"elapsed_ms\":1}\r\n"));
        assert!(text.contains(" of console dropped here: console.log keeps the first 8388608 and the last 8388608 bytes]\n"));
    }

    /// A guest past its run deadline: one whose agent still speaks runs on
    /// (to twice the deadline: Overtime, which is no hang); one whose agent
    /// went silent is stopped once the quiet limit passes (RunTimeout).
    #[test]
    fn past_the_run_deadline_a_speaking_agent_is_slow_and_a_silent_one_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let d = Deadlines { boot: Duration::from_secs(10), run: Duration::from_secs(2), quiet: Duration::from_millis(1500) };
        let guest = |script: &str| {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        };
        let on_line = |line: &str| match line.trim_end() {
            "hello" => Control::Booted,
            "alive" => Control::Alive,
            _ => Control::Continue,
        };
        // Speaking every 0.5 s for 10 s (kernel lines between count for nothing).
        let t = Instant::now();
        let r = watch(
            guest("echo hello; for i in $(seq 20); do echo alive; echo '[ 1.0] kernel'; sleep 0.5; done"),
            d,
            &dir.path().join("a"),
            on_line,
        )
        .unwrap();
        assert_eq!(r.exit, Exit::Overtime, "{r:?}");
        assert!((3.8..8.0).contains(&t.elapsed().as_secs_f64()), "at twice the run deadline, not before: {:?}", t.elapsed());
        // Silent after hello but for kernel lines: stopped at run + what is left of quiet.
        let t = Instant::now();
        let r = watch(guest("echo hello; for i in $(seq 20); do echo '[ 1.0] kernel'; sleep 0.5; done"), d, &dir.path().join("b"), on_line)
            .unwrap();
        assert_eq!(r.exit, Exit::RunTimeout, "{r:?}");
        assert!((1.9..3.8).contains(&t.elapsed().as_secs_f64()), "{:?}", t.elapsed());
        // Spoke until 1 s, then silent: stopped once silent for the quiet limit past the deadline.
        let r = watch(guest("echo hello; echo alive; sleep 1; echo alive; sleep 30"), d, &dir.path().join("c"), on_line).unwrap();
        assert_eq!(r.exit, Exit::RunTimeout, "{r:?}");
        // Spoke until 3.5 s, then silent: at twice the deadline (4 s) it has
        // been silent less than the quiet limit, so slow and stopped cannot be
        // told apart: Overtime (a MISS), never a HANG.
        let r = watch(guest("echo hello; for i in $(seq 8); do echo alive; sleep 0.5; done; sleep 30"), d, &dir.path().join("d"), on_line)
            .unwrap();
        assert_eq!(r.exit, Exit::Overtime, "{r:?}");
    }

    #[test]
    fn a_console_that_cannot_be_kept_stops_the_guest_at_once() {
        // A guest that prints 1 MB and then runs on; console.log is /dev/full.
        let mut guest = Command::new("sh");
        guest.args(["-c", "yes 'a console line' | head -c 1000000; exec sleep 60"]);
        let t = Instant::now();
        let e = watch(guest, deadlines(30), Path::new("/dev/full"), |_| Control::Continue).unwrap_err();
        assert_eq!(e.class, crate::error::Class::Infra);
        assert!(e.msg.starts_with("writing /dev/full: No space left on device"), "{}", e.msg);
        // Not at the boot deadline, nor when the guest ends: at the first write that failed.
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn panic_on_warn_is_optional() {
        let mut s = spec(Backend::Memmap);
        assert!(!kernel_cmdline(&s).contains("panic_on_warn"));
        s.panic_on_warn = true;
        assert!(kernel_cmdline(&s).contains("panic_on_warn=1"));
    }
}
