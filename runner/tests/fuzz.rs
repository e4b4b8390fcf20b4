//! The fuzz targets of `fuzz/` in seconds: every input of their kept corpus
//! (`fuzz/corpus/<target>/`), then inputs made from it by seeded random
//! mutation, each checked by the same property as the libFuzzer target
//! (`fuzz/checks.rs`) and timed. The long campaigns are `cargo fuzz run`,
//! see docs/FUZZING.md.

#[path = "../../fuzz/checks.rs"]
mod checks;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest CPU time one input may take (the campaigns' `-timeout=1`).
const SLOW: Duration = Duration::from_secs(1);

/// CPU time of the calling thread: a check's own work, not the time its
/// thread waited for a CPU on a loaded machine (a 33-byte input once took
/// 1.09 s of wall time while other builds ran).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Mutated inputs are cut to this length.
const MAX_LEN: usize = 64 * 1024;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The kept corpus of `target`, by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "{}: the corpus is missing", dir.display());
    out
}

/// The tokens of `fuzz/<target>.dict` (libFuzzer's format: one `"..."` a
/// line, `\\`, `\"` and `\xNN` escapes).
fn dict(target: &str) -> Vec<Vec<u8>> {
    let path = fuzz_dir().join(format!("{target}.dict"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('"')) {
        let inner = line
            .trim_end()
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{}: bad entry {line}", path.display()));
        let (mut tok, mut bytes) = (Vec::new(), inner.bytes());
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                tok.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'x') => {
                    let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                    tok.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
                }
                Some(c) => tok.push(c),
                None => panic!("{}: bad entry {line}", path.display()),
            }
        }
        out.push(tok);
    }
    assert!(!out.is_empty(), "{}: no tokens", path.display());
    out
}

/// A few of libFuzzer's mutations: change, insert, erase, repeat, splice
/// another input, insert a dictionary token.
fn mutate(rng: &mut ChaCha8Rng, corpus: &[(String, Vec<u8>)], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut below = |n: usize| ((rng.next_u64() as u128 * n.max(1) as u128) >> 64) as usize;
    let mut data = corpus[below(corpus.len())].1.clone();
    for _ in 0..1 + below(4) {
        let at = below(data.len() + 1);
        match below(6) {
            0 if at < data.len() => data[at] = below(256) as u8,
            1 => {
                let b = below(256) as u8;
                data.splice(at..at, std::iter::repeat_n(b, 1 + below(8)));
            }
            2 => {
                let end = (at + 1 + below(64)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + below(256)).min(data.len());
                let part = data[at.min(end)..end].to_vec();
                for _ in 0..1 + below(16) {
                    data.splice(at..at, part.iter().copied());
                }
            }
            4 => {
                let other = &corpus[below(corpus.len())].1;
                let from = below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let tok = &dict[below(dict.len())];
                data.splice(at..at, tok.iter().copied());
            }
        }
    }
    data.truncate(MAX_LEN);
    data
}

/// Runs `check` on one input; a panic or a slow input fails the test with
/// the input saved where it can be added to the corpus.
fn run_one(target: &str, name: &str, data: &[u8], check: &dyn Fn(&[u8])) {
    let t = thread_cpu();
    let r = catch_unwind(AssertUnwindSafe(|| check(data)));
    let took = thread_cpu() - t;
    if r.is_err() || took > SLOW {
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{target}-{name}"));
        std::fs::write(&saved, data).unwrap();
        let what = if r.is_err() { "panicked (message above)".to_string() } else { format!("took {took:?} of CPU") };
        panic!("{target}: input {name} {what}; saved as {}", saved.display());
    }
}

/// The kept corpus, then `mutants` inputs mutated from it.
fn replay(target: &str, mutants: usize, check: &dyn Fn(&[u8])) {
    let corpus = corpus(target);
    let dict = dict(target);
    // Warm up: compiled regexes and the like are not the input's time (an
    // empty input returns before triage builds its tables: a real one).
    check(b"");
    if let Some((_, first)) = corpus.first() {
        let _ = catch_unwind(AssertUnwindSafe(|| check(first)));
    }
    for (name, data) in &corpus {
        run_one(target, name, data, check);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for i in 0..mutants {
        let data = mutate(&mut rng, &corpus, &dict);
        run_one(target, &format!("mutant-{i}"), &data, check);
    }
}

#[test]
fn scenario() {
    let fx = checks::Fixture::new();
    replay("scenario", 1000, &|d| checks::scenario(&fx, d));
}

#[test]
fn protocol() {
    replay("protocol", 1500, &checks::protocol);
}

#[test]
fn triage() {
    replay("triage", 300, &checks::triage);
}

#[test]
fn run_json() {
    let fx = checks::Fixture::new();
    replay("run_json", 800, &|d| checks::run_json(&fx, d));
}

/// The fuzzer's find: serde_yaml quotes an unknown key raw, so a key holding
/// a newline made a two-line error (the corpus replay above runs it too).
#[test]
fn scenario_errors_are_one_line() {
    let fx = checks::Fixture::new();
    let data = std::fs::read(fuzz_dir().join("corpus/scenario/crash-unknown-key-with-newline")).unwrap();
    checks::scenario(&fx, &data);
}
