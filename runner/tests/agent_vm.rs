//! Boots the guest agent in QEMU (TCG) with a real kernel.
//!
//! `KREGRESS_TEST_BZIMAGE=/path/to/bzImage cargo test -p kregress --test agent_vm`
//! Without that variable the VM tests print a message and return.
//! The `manual_boot` test (ignored) boots any configuration given in
//! `KREGRESS_TEST_CONFIG` (the `kregress.*` cmdline part) and prints the console.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kregress::image::{self, ImageOptions};
use kregress_agent::{
    Backend, FailKind, GuestConfig, LineParser, Message, Outcome, WorkloadKind, WorkloadSpec,
};

/// Kills QEMU on every path (panics included).
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Boot {
    /// (wall time since spawn, line)
    lines: Vec<(Duration, String)>,
    messages: Vec<(Duration, Message)>,
    timed_out: bool,
    log: PathBuf,
}

impl Boot {
    fn first<T>(&self, f: impl Fn(&Message) -> Option<T>) -> Option<(Duration, T)> {
        self.messages
            .iter()
            .find_map(|(t, m)| f(m).map(|x| (*t, x)))
    }
    fn console(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn bzimage() -> Option<PathBuf> {
    match std::env::var_os("KREGRESS_TEST_BZIMAGE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("SKIP: KREGRESS_TEST_BZIMAGE is not set (path to a bzImage with the pmem/DAX config fragments)");
            None
        }
    }
}

fn build_image() -> image::ImageArtifact {
    image::build(&ImageOptions::default()).unwrap_or_else(|e| panic!("building the initramfs: {e}"))
}

/// Boot `bz` with the initramfs and `cfg`, until `done`, QEMU exits, or `timeout`.
fn boot(bz: &Path, initrd: &Path, cfg: &GuestConfig, timeout: Duration) -> Boot {
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec![
        "-cpu".into(),
        "max".into(),
        "-smp".into(),
        "2".into(),
        "-accel".into(),
        "tcg".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-monitor".into(),
        "none".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        bz.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
    ];
    let mut append = String::from("console=ttyS0 panic=-1 ");
    match cfg.backend {
        Backend::Memmap => {
            args.extend(["-machine", "pc", "-m", "3G"].map(String::from));
            append.push_str("memmap=512M!1G memmap=512M!2G ");
        }
        Backend::Nvdimm => {
            args.extend(
                ["-machine", "pc,nvdimm=on", "-m", "1G,slots=2,maxmem=4G"].map(String::from),
            );
            for i in 1..=2 {
                let f = tmp.path().join(format!("nvdimm{i}.img"));
                std::fs::File::create(&f).unwrap().set_len(1 << 30).unwrap();
                args.push("-object".into());
                args.push(format!(
                    "memory-backend-file,id=mem{i},share=on,mem-path={},size=1G",
                    f.display()
                ));
                args.push("-device".into());
                args.push(format!("nvdimm,id=nv{i},memdev=mem{i}"));
            }
        }
    }
    append.push_str(&cfg.to_cmdline());
    args.push("-append".into());
    args.push(append);
    eprintln!(
        "qemu-system-x86_64 {}",
        args.iter()
            .map(|a| if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    );

    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning qemu-system-x86_64");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut qemu = Qemu(child);
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            if tx
                .send(
                    String::from_utf8_lossy(&l)
                        .trim_end_matches('\r')
                        .to_string(),
                )
                .is_err()
            {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[qemu stderr] {l}"));
        }
    });
    let mut b = Boot {
        lines: vec![],
        messages: vec![],
        timed_out: false,
        log: PathBuf::new(),
    };
    let mut parser = LineParser::new();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            b.timed_out = true;
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                let t = start.elapsed();
                if let Some(m) = parser.push(&line) {
                    b.messages.push((t, m));
                }
                b.lines.push((t, line));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(_)) = qemu.0.try_wait() {
                    // Drain what is left.
                    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                        if let Some(m) = parser.push(&line) {
                            b.messages.push((start.elapsed(), m));
                        }
                        b.lines.push((start.elapsed(), line));
                    }
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Give a guest that printed `done` a moment to power off, then kill it anyway.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = qemu.0.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(qemu);
    let log = std::env::temp_dir().join(format!(
        "kregress-agent-vm-{}-{}.log",
        std::process::id(),
        start.elapsed().as_nanos()
    ));
    let text: String = b
        .lines
        .iter()
        .map(|(t, l)| format!("{:8.3} {l}\n", t.as_secs_f64()))
        .collect();
    std::fs::write(&log, text).unwrap();
    b.log = log;
    b
}

#[test]
fn agent_is_static() {
    let img = build_image();
    let bytes = std::fs::read(&img.agent).unwrap();
    assert_eq!(
        image::elf_interpreter(&bytes).unwrap(),
        None,
        "{} has an ELF interpreter",
        img.agent.display()
    );
    assert!(img.files.contains_key("/init"));
    assert!(img.files.contains_key("/sbin/mkfs.ext4"));
}

#[test]
fn memmap_ext4_pte_dio_read() {
    let Some(bz) = bzimage() else { return };
    let img = build_image();
    let mut w = WorkloadSpec::new(WorkloadKind::DioRead);
    w.size = 32 << 20;
    w.passes = 1;
    let cfg = GuestConfig {
        workloads: vec![w],
        ..GuestConfig::default()
    };
    let b = boot(&bz, &img.path, &cfg, Duration::from_secs(300));
    let ctx = format!("console log: {}\n{}", b.log.display(), b.console());
    assert!(!b.timed_out, "VM did not finish in 300 s; {ctx}");
    assert!(
        b.first(|m| matches!(m, Message::Hello { .. }).then_some(()))
            .is_some(),
        "no hello; {ctx}"
    );
    let dax = b.first(|m| match m {
        Message::DaxCheck { dax, .. } => Some(*dax),
        _ => None,
    });
    assert_eq!(dax.map(|d| d.1), Some(true), "DAX check; {ctx}");
    let res = b
        .first(|m| match m {
            Message::WorkloadResult {
                name,
                outcome,
                kind,
                mb_per_s,
                ..
            } if name == "dio-read" => Some((*outcome, *kind, *mb_per_s)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no dio-read result; {ctx}"))
        .1;
    assert_eq!(res.0, Outcome::Pass, "{ctx}");
    assert!(res.2.unwrap_or(0.0) > 0.0, "MB/s; {ctx}");
    let samples = b
        .messages
        .iter()
        .filter(|(_, m)| matches!(m, Message::Sample { mb_per_s: Some(x), .. } if *x > 0.0))
        .count();
    assert_eq!(samples, 2, "one GUP-fast and one slow-GUP sample; {ctx}");
    assert!(
        b.first(|m| matches!(m, Message::Done { ok: true, .. }).then_some(()))
            .is_some(),
        "no done ok; {ctx}"
    );
    let _ = FailKind::Hang;
}

/// Boot anything: KREGRESS_TEST_CONFIG="kregress.backend=nvdimm kregress.fs=xfs kregress.workloads=..."
#[test]
#[ignore]
fn manual_boot() {
    let Some(bz) = bzimage() else { return };
    let cfg = GuestConfig::from_cmdline(&std::env::var("KREGRESS_TEST_CONFIG").unwrap_or_default())
        .unwrap();
    let secs = std::env::var("KREGRESS_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let img = build_image();
    eprintln!(
        "image {} ({} bytes, cached {})",
        img.path.display(),
        img.size,
        img.cached
    );
    let b = boot(&bz, &img.path, &cfg, Duration::from_secs(secs));
    for (t, l) in &b.lines {
        println!("{:8.3} {l}", t.as_secs_f64());
    }
    println!("timed out: {}; log {}", b.timed_out, b.log.display());
}
