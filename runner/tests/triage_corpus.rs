//! Console triage against real logs.
//!
//! syzkaller's report corpus (runner/tests/data/corpus/syzkaller-linux-report,
//! see its README) holds real console logs with syzkaller's verdict in
//! a header: `TITLE:` (none or empty: no crash), `ALT:` alternative titles,
//! `TYPE:`, `CORRUPTED:`, `#` comments, up to the first empty line. We
//! measure how often triage agrees with it, fail below the targets, and
//! write every disagreement to a file to work through.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kregress::triage::{parse, Kind};

const DETECTION_TARGET: f64 = 0.98;
const TITLE_TARGET: f64 = 0.90;
/// WARNING, BUG and hung-task reports: what pmem/GUP bugs produce.
const CORE_TITLE_TARGET: f64 = 0.97;
const KIND_TARGET: f64 = 0.95;

fn corpora() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus")
}

fn corpus_dir(name: &str) -> PathBuf {
    let dir = corpora().join(name);
    assert!(dir.is_dir(), "triage corpus {} is missing: it is runner/tests/data/corpus/{name} in the repository", dir.display());
    dir
}

#[derive(Default)]
struct Expected {
    title: Option<String>,
    alts: Vec<String>,
    typ: Option<String>,
    corrupted: bool,
}

/// Splits a corpus file into its header and the console text.
fn split(data: &str) -> (Expected, &str) {
    let mut exp = Expected::default();
    let mut rest = data;
    while let Some(nl) = rest.find('\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        if line.is_empty() {
            return (exp, rest);
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            match key {
                "TITLE" => exp.title = Some(value).filter(|v| !v.is_empty()),
                "ALT" => exp.alts.push(value),
                "TYPE" => exp.typ = Some(value),
                "CORRUPTED" => exp.corrupted = value == "Y",
                _ => {}
            }
        }
    }
    (exp, rest)
}

/// syzkaller's crash types, in our kinds. None: no counterpart (UNKNOWN).
fn kind_of(typ: &str) -> Option<Kind> {
    Some(match typ {
        "BUG" | "DoS" | "NULL-POINTER-DEREFERENCE" => Kind::Crash,
        "WARNING" | "REFCOUNT_WARNING" | "MEMORY_SAFETY_WARNING" => Kind::Warn,
        "HANG" => Kind::Hang,
        "LOCKDEP" => Kind::Lockdep,
        "ATOMIC_SLEEP" => Kind::AtomicSleep,
        "LEAK" => Kind::Leak,
        "UBSAN" => Kind::Ubsan,
        "REBOOT" => Kind::Reboot,
        "SYZ_FAILURE" => Kind::Other,
        t if t.starts_with("KCSAN") => Kind::DataRace,
        t if t.starts_with("KASAN") || t.starts_with("KMSAN") || t.starts_with("KFENCE") || t.starts_with("MEMORY_SAFETY") => {
            Kind::MemorySafety
        }
        _ => return None,
    })
}

fn is_core(title: &str) -> bool {
    ["WARNING", "BUG:", "kernel BUG", "INFO: task hung"].iter().any(|p| title.starts_with(p))
}

struct Ratio(usize, usize);

impl Ratio {
    fn add(&mut self, ok: bool) {
        self.0 += ok as usize;
        self.1 += 1;
    }
    fn value(&self) -> f64 {
        self.0 as f64 / self.1.max(1) as f64
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}% ({}/{})", 100.0 * self.value(), self.0, self.1)
    }
}

#[test]
fn syzkaller_corpus_agreement() {
    let dir = corpus_dir("syzkaller-linux-report");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read corpus")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("LICENSE"))
        .collect();
    files.sort();
    assert!(files.len() > 500, "corpus has only {} files", files.len());

    let (mut detection, mut kind, mut title, mut core, mut corrupted) = (Ratio(0, 0), Ratio(0, 0), Ratio(0, 0), Ratio(0, 0), Ratio(0, 0));
    let mut false_reports = Vec::new();
    let mut diffs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = String::from_utf8_lossy(&std::fs::read(path).expect("read corpus file")).into_owned();
        let (exp, log) = split(&data);
        let reports = parse(log);
        // TRIAGE_DUMP=<file name> shows what triage made of one file.
        if std::env::var("TRIAGE_DUMP").is_ok_and(|d| d == name) {
            for r in &reports {
                println!("== {} [{}] corrupted={} lines {}..{}\n{}", r.title, r.kind, r.corrupted, r.start_line, r.end_line, r.text);
            }
        }
        let got = reports.first();
        detection.add(got.is_some() == exp.title.is_some());
        let Some(want) = &exp.title else {
            if let Some(r) = got {
                false_reports.push(format!("{name}: {}", r.title));
                diffs.entry("false report").or_default().push(format!("{name}\n  got:  {}", r.title));
            }
            continue;
        };
        let Some(r) = got else {
            diffs.entry("missed").or_default().push(format!("{name}\n  want: {want}"));
            title.add(false);
            if is_core(want) {
                core.add(false);
            }
            continue;
        };
        let same = &r.title == want || exp.alts.contains(&r.title);
        title.add(same);
        if is_core(want) {
            core.add(same);
        }
        if !same {
            let section = if is_core(want) { "title (WARNING/BUG/hung)" } else { "title" };
            diffs.entry(section).or_default().push(format!("{name}\n  want: {want}\n  got:  {}", r.title));
        }
        if let Some(k) = exp.typ.as_deref().and_then(kind_of) {
            kind.add(k == r.kind);
            if k != r.kind {
                diffs.entry("kind").or_default().push(format!("{name}: {want}\n  want: {k}\n  got:  {}", r.kind));
            }
        }
        corrupted.add(r.corrupted == exp.corrupted);
        if r.corrupted != exp.corrupted {
            diffs
                .entry("corrupted (informational)")
                .or_default()
                .push(format!("{name}: {want}: want {} got {}", exp.corrupted, r.corrupted));
        }
    }

    let mut out = String::new();
    for (section, list) in &diffs {
        writeln!(out, "== {section}: {}\n", list.len()).unwrap();
        for d in list {
            writeln!(out, "{d}").unwrap();
        }
        out.push('\n');
    }
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("triage-disagreements.txt");
    std::fs::write(&report, out).expect("write disagreements");
    println!("triage on {} files of {}", files.len(), dir.display());
    println!("detection agreement: {detection}");
    println!("kind agreement:      {kind}");
    println!("title agreement:     {title}");
    println!("  WARNING/BUG/hung:  {core}");
    println!("corrupted agreement: {corrupted} (informational)");
    println!("disagreements: {}", report.display());

    assert!(false_reports.is_empty(), "reports on logs without a crash: {false_reports:#?}");
    assert!(detection.value() >= DETECTION_TARGET, "detection {detection} below {DETECTION_TARGET}");
    assert!(title.value() >= TITLE_TARGET, "title agreement {title} below {TITLE_TARGET}");
    assert!(core.value() >= CORE_TITLE_TARGET, "WARNING/BUG/hung title agreement {core} below {CORE_TITLE_TARGET}");
    assert!(kind.value() >= KIND_TARGET, "kind agreement {kind} below {KIND_TARGET}");
}

#[test]
fn kregress_console_warnings() {
    let dir = corpus_dir("kregress");
    let log = std::fs::read_to_string(dir.join("debian-6.1.192-gup-fast-devmap-noref.console.log")).expect("read console");
    let reports = parse(&log);
    let titles: Vec<&str> = reports.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, ["WARNING in free_zone_device_page", "WARNING in try_grab_page"]);
    for r in &reports {
        assert_eq!(r.kind, Kind::Warn);
        assert!(!r.corrupted, "{} marked corrupted:\n{}", r.title, r.text);
    }
    assert_eq!(reports[0].frame.as_deref(), Some("free_zone_device_page"));
}
