//! Console triage throughput: `cargo bench -p kregress --bench triage`.
//!
//! Builds a 128 MiB console by concatenating the consoles of syzkaller's
//! report corpus (headers stripped) and the kregress console, then triages
//! it on one core, whole (`parse`) and line by line (`Scanner`). Target:
//! 100 MB/s. `TRIAGE_BENCH_MIB` changes the size.

use std::path::Path;
use std::time::Instant;

use kregress::triage::{parse, Scanner};

fn console_texts() -> Vec<String> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus");
    let mut texts = Vec::new();
    for dir in ["syzkaller-linux-report", "kregress"] {
        let dir = shared.join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("LICENSE"))
            .collect();
        files.sort();
        for f in files {
            let data = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            // Corpus files open with a header up to the first empty line.
            let body = match data.find("\n\n") {
                Some(pos) if !data.starts_with('\n') => data[pos + 2..].to_string(),
                _ => data.trim_start_matches('\n').to_string(),
            };
            texts.push(body);
        }
    }
    texts
}

fn main() {
    let mib: usize = std::env::var("TRIAGE_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    let texts = console_texts();
    let mut console = String::with_capacity(mib << 20);
    'fill: loop {
        for t in &texts {
            console.push_str(t);
            if !console.ends_with('\n') {
                console.push('\n');
            }
            if console.len() >= mib << 20 {
                break 'fill;
            }
        }
    }
    let mb = console.len() as f64 / 1e6;
    println!("console: {:.1} MB ({} lines)", mb, console.lines().count());

    // Warm up the lazily compiled tables.
    parse(&console[..1 << 20]);

    // Wall time suffers when the machine is shared; CPU time of this thread
    // is what one core does.
    for round in 0..3 {
        let (t, cpu) = (Instant::now(), thread_cpu());
        let reports = parse(&console);
        let (s, c) = (t.elapsed().as_secs_f64(), thread_cpu() - cpu);
        println!("parse   round {round}: wall {s:.2}s {:.0} MB/s, cpu {c:.2}s {:.0} MB/s, {} reports", mb / s, mb / c, reports.len());
    }
    let (t, cpu) = (Instant::now(), thread_cpu());
    let mut scanner = Scanner::new();
    let mut n = 0;
    for line in console.split('\n') {
        n += scanner.push_line(line).len();
    }
    n += scanner.finish().len();
    let (s, c) = (t.elapsed().as_secs_f64(), thread_cpu() - cpu);
    println!("scanner line by line: wall {s:.2}s {:.0} MB/s, cpu {c:.2}s {:.0} MB/s, {n} reports", mb / s, mb / c);
}

/// CPU seconds used by this thread.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
