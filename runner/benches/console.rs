//! Console reading throughput, before and after the bulk reader:
//! `cargo bench -p kregress --bench console`.
//!
//! A console of N MB made of one real WARNING report (2.5 KB, from a 6.1
//! guest) repeated, as a WARN storm prints it, is fed by `cat` to the reader
//! as QEMU feeds the console; every line goes through what a boot does with
//! it (console.log, triage, the protocol parser). Each case runs in a child
//! process of its own, which reports its peak RSS.
//!
//! - `before`: rexpect's `read_line` on a pty, as kregress read the console
//!   until issue 12 (1, 4 and 16 MB: it is quadratic).
//! - `after`: [`kregress::console`] on a pipe (1, 4, 16 and 64 MB).
//! - `read`: the same without triage and protocol parser: the reader and
//!   console.log alone.
//!
//! Wall time suffers when the machine is shared: the CPU time of the
//! reading process (all its threads; `cat` is not counted) is printed too.
//! `CONSOLE_BENCH_SIZES=before:1,after:64` picks the cases.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kregress::console::{Got, Lines, Log, Reader};
use kregress::triage::{Reports, Scanner};
use kregress_agent::{LineParser, Parsed};

const WARN: &str = "\
[   85.353974] ------------[ cut here ]------------\r
[   85.356317] WARNING: CPU: 0 PID: 132 at fs/dax.c:380 dax_insert_entry+0x1a7/0x235\r
[   85.356317] CPU: 0 PID: 132 Comm: reflink-dio Not tainted 6.1.192+ #1 \r
[   85.356317] RIP: 0010:dax_insert_entry+0x1a7/0x235\r
[   85.356317] Code: 24 48 83 fe 01 74 15 48 85 f6 74 08 48 c7 41 20 01 00 00 00 48 c7 41 18 01 00 00 00 48 8b 71 20 48 ff c6 eb 14 48 85 f6 74 02 <0f> 0b 4c 89 69 18 49 63 f0 41 ff c0 48 01 d6 48 89 71 20 48 ff c7\r
[   85.356317] RSP: 0000:ffa000000026fbd0 EFLAGS: 00000082\r
[   85.356317] RAX: 0000000000106519 RBX: ffa000000026fc90 RCX: ffd4000003961d40\r
[   85.356317] RDX: 0000000000000300 RSI: ff110000038a7c08 RDI: 0000000000106518\r
[   85.356317] RBP: 0000000000000011 R08: 0000000000000000 R09: ffd4000000000000\r
[   85.356317] R10: ffa000000026fb78 R11: 0000000000000000 R12: 0000000000000000\r
[   85.356317] R13: ff110000006f7288 R14: ffa000000026fd01 R15: ffa000000026fe38\r
[   85.356317] FS:  00007f66f41726c0(0000) GS:ff1100003f400000(0000) knlGS:0000000000000000\r
[   85.356317] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033\r
[   85.356317] CR2: 00007f66f0b00000 CR3: 000000000065c000 CR4: 00000000007516f0\r
[   85.356317] PKRU: 55555554\r
[   85.356317] Call Trace:\r
[   85.356317]  <TASK>\r
[   85.356317]  dax_fault_iter+0x3d3/0x4b7\r
[   85.356317]  dax_iomap_pte_fault+0x158/0x1b9\r
[   85.356317]  __xfs_filemap_fault+0x10f/0x1ca\r
[   85.356317]  __do_fault+0x21/0xf9\r
[   85.356317]  __handle_mm_fault+0x712/0x980\r
[   85.356317]  handle_mm_fault+0xa9/0x12c\r
[   85.356317]  exc_page_fault+0x27a/0x44d\r
[   85.356317]  asm_exc_page_fault+0x22/0x30\r
[   85.356317] RIP: 0033:0x7f66f423c14c\r
[   85.356317] RSP: 002b:00007f66f41716d0 EFLAGS: 00000246\r
[   85.356317]  </TASK>\r
[   85.356317] ---[ end trace 0000000000000000 ]---\r
";

const NONCE: &str = "5f0c8a2e9b1d7c43";

/// What a boot does with each console line (see run::run_boot).
struct Boot {
    scanner: Scanner,
    reports: Reports,
    parser: LineParser,
    lines: u64,
    messages: u64,
    /// Count the lines only (the `read` case).
    read_only: bool,
}

impl Boot {
    fn new() -> Self {
        Boot {
            scanner: Scanner::new(),
            reports: Reports::default(),
            parser: LineParser::new(NONCE),
            lines: 0,
            messages: 0,
            read_only: false,
        }
    }
    fn line(&mut self, l: &str) {
        self.lines += 1;
        if self.read_only {
            return;
        }
        for r in self.scanner.push_line(l) {
            self.reports.push(r);
        }
        if let Parsed::Message(_) = self.parser.push(l) {
            self.messages += 1;
        }
    }
}

fn console_file(mb: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("kregress-console-bench-{mb}MB.log"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for _ in 0..mb * 1_000_000 / WARN.len() {
        f.write_all(WARN.as_bytes()).unwrap();
    }
    // The agent's last word, which must come through.
    writeln!(f, "KREGRESS> {NONCE} {{\"type\":\"done\",\"ok\":true,\"elapsed_ms\":1}}\r").unwrap();
    path
}

fn before(file: &Path, log: &Path) -> Boot {
    let mut cmd = Command::new("cat");
    cmd.arg(file);
    let mut s = rexpect::session::spawn_command(cmd, Some(500)).expect("spawn cat on a pty");
    let mut out = std::fs::File::create(log).unwrap();
    let mut boot = Boot::new();
    loop {
        match s.read_line() {
            Ok(line) => {
                let _ = writeln!(out, "{line}");
                boot.line(&line);
            }
            Err(rexpect::error::Error::Timeout { .. }) => {}
            Err(rexpect::error::Error::EOF { got, .. }) => {
                if !got.is_empty() {
                    boot.line(&got);
                }
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    boot
}

fn after(file: &Path, log: &Path, read_only: bool) -> Boot {
    let (r, w) = std::io::pipe().unwrap();
    let mut cmd = Command::new("cat");
    cmd.arg(file).stdout(w);
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut reader = Reader::new(r);
    let mut log = Log::create(log).unwrap();
    let mut lines = Lines::default();
    let mut boot = Boot::new();
    boot.read_only = read_only;
    loop {
        match reader.next(Duration::from_millis(200)).unwrap() {
            Got::Data(b) => {
                log.write(b).unwrap();
                lines.push(b, |l| {
                    boot.line(l);
                    true
                });
            }
            Got::Quiet => log.flush().unwrap(),
            Got::Eof => break,
        }
    }
    lines.finish(|l| {
        boot.line(l);
        true
    });
    log.finish().unwrap();
    child.wait().unwrap();
    boot
}

/// (peak RSS in MB, user + system CPU seconds) of this process.
fn usage() -> (f64, f64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (u.ru_maxrss as f64 / 1024.0, secs(u.ru_utime) + secs(u.ru_stime))
}

fn case(which: &str, mb: usize) {
    let file = console_file(mb);
    let bytes = std::fs::metadata(&file).unwrap().len() as f64;
    let log = std::env::temp_dir().join(format!("kregress-console-bench-{which}.out"));
    let (t, cpu0) = (Instant::now(), usage().1);
    let boot = match which {
        "before" => before(&file, &log),
        "after" => after(&file, &log, false),
        "read" => after(&file, &log, true),
        _ => panic!("unknown case {which}"),
    };
    let (s, (rss, cpu)) = (t.elapsed().as_secs_f64(), usage());
    let cpu = cpu - cpu0;
    if which != "read" {
        assert_eq!(boot.messages, 1, "the agent's done came through");
    }
    println!(
        "{which:<6} {mb:>3} MB: wall {s:7.2} s {:6.1} MB/s, cpu {cpu:7.2} s {:6.1} MB/s, peak RSS {rss:5.0} MB, {} lines, {} reports ({} kept), console.log {:.1} MB",
        bytes / 1e6 / s,
        bytes / 1e6 / cpu,
        boot.lines,
        boot.reports.total(),
        boot.reports.kept.len(),
        std::fs::metadata(&log).unwrap().len() as f64 / 1e6
    );
    let _ = std::fs::remove_file(&log);
}

fn main() {
    if let Ok(c) = std::env::var("CONSOLE_BENCH_CASE") {
        let (which, mb) = c.split_once(':').unwrap();
        case(which, mb.parse().unwrap());
        return;
    }
    let sizes = std::env::var("CONSOLE_BENCH_SIZES")
        .unwrap_or_else(|_| "before:1,before:4,before:16,after:1,after:4,after:16,after:64,read:64".into());
    for c in sizes.split(',') {
        let st = Command::new(std::env::current_exe().unwrap()).env("CONSOLE_BENCH_CASE", c).status().unwrap();
        assert!(st.success(), "case {c} failed");
    }
}
