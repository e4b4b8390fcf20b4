//! What the fuzz targets check, one function per target. The libFuzzer
//! targets (`fuzz/fuzz_targets/*.rs`, run by `cargo fuzz`) and their short
//! replay in `cargo test` (`runner/tests/fuzz.rs`) both include this file, so
//! each property is written once.
//!
//! Every function takes arbitrary bytes and panics only when a property
//! fails: a panic in the code under test, or an answer that breaks its
//! contract. Time is bounded by the caller (libFuzzer's `-timeout`, the
//! replay's own clock).

// Each libFuzzer target uses its own function only.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The directory a scenario and a run.json are written to, so that the
/// public loaders read them as a user's files. Its `kernel-configs` and
/// `scenarios/patches` are the repository's (symlinks), so the real
/// scenarios of the seed corpus validate all the way through.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("kregress-fuzz-").tempdir().expect("temp dir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::create_dir_all(dir.path().join("scenarios")).expect("scenarios dir");
        std::fs::create_dir_all(dir.path().join("run")).expect("run dir");
        for sub in ["kernel-configs", "scenarios/patches"] {
            std::os::unix::fs::symlink(repo.join(sub).canonicalize().expect(sub), dir.path().join(sub)).expect(sub);
        }
        Fixture { dir }
    }

    /// One fixture for the life of the process (the libFuzzer targets),
    /// removed when it exits: libFuzzer ends with exit(), which runs no Rust
    /// destructor.
    pub fn for_process() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        extern "C" fn remove() {
            if let Some(fx) = FIXTURE.get() {
                let _ = std::fs::remove_dir_all(fx.dir.path());
            }
        }
        FIXTURE.get_or_init(|| {
            // SAFETY: registers a plain function, once.
            unsafe { libc::atexit(remove) };
            Fixture::new()
        })
    }

    fn scenario_file(&self) -> PathBuf {
        self.dir.path().join("scenarios/fuzz.yaml")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
}

/// Cells expanded per validated scenario at most: validation bounds a run
/// to [`kregress::scenario::limits::MAX_CELLS_PER_RUN`] cells and
/// [`kregress::scenario::limits::MAX_RUNS`] runs (asserted below), but
/// expanding 400 000 cells would make the target about `cells()`, not parsing.
const MAX_CELLS: u64 = 10_000;

/// Scenario parsing and validation through [`kregress::scenario::load`]:
/// never a panic; every error is bad input (exit 2) naming the file, on one
/// line; a scenario that validates is within the limits and expands into
/// its cells.
pub fn scenario(fx: &Fixture, data: &[u8]) {
    let file = fx.scenario_file();
    std::fs::write(&file, data).expect("writing the scenario");
    match kregress::scenario::load(&file) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "not bad input: {e}");
            assert!(e.msg.contains("fuzz.yaml"), "error does not name the file: {e}");
            assert!(!e.msg.contains('\n'), "error is not one line: {e:?}");
        }
        Ok(s) => {
            let r = &s.run;
            let n = [
                s.variants.len(),
                r.backends.len(),
                r.modes.len(),
                r.filesystems.len(),
                r.mappings.len(),
                r.workloads.len(),
                r.runs as usize,
            ]
            .iter()
            .fold(1u64, |n, &k| n.saturating_mul(k as u64));
            let limits = (kregress::scenario::limits::MAX_CELLS_PER_RUN, kregress::scenario::limits::MAX_RUNS);
            assert!((1..=limits.1).contains(&r.runs) && n / r.runs as u64 <= limits.0, "{n} cells in {} runs validated", r.runs);
            if n <= MAX_CELLS {
                let cells = s.cells(&kregress::scenario::Filter::default(), None);
                assert!(cells.len() as u64 <= n, "{} cells from at most {n}", cells.len());
            }
        }
    }
}

/// The boot's nonce the protocol target reads the console under (the
/// corpus and `fuzz/protocol.dict` hold it; `fuzz/seed.sh` writes it).
pub const NONCE: &str = "5f0c8a2e9b1d7c43";

/// The guest→host protocol as the runner reads the console (run.rs): each
/// line goes through [`kregress_agent::LineParser`] and
/// [`kregress_agent::parse_line`] alone, bound to [`NONCE`]. Any line parses or
/// is rejected, never a panic; a message that parses prints a line that
/// parses back to the same kind of message; a line is this boot's only if
/// it starts with the marker and [`NONCE`] (never under another nonce); only
/// a line holding the marker is foreign, and the parser counts each one.
pub fn protocol(data: &[u8]) {
    use kregress_agent::{parse_line, LineParser, Parsed, MARKER};
    let text = String::from_utf8_lossy(data);
    let mut parser = LineParser::new(NONCE);
    let mut foreign = 0;
    for line in text.split('\n') {
        let alone = parse_line(line, NONCE);
        if alone.is_some() {
            assert!(
                line.starts_with(&format!("{MARKER}{NONCE} ")),
                "a line without the marker and the nonce at its start parsed: {line:?}"
            );
            assert!(parse_line(line, "0123456789abcdef").is_none(), "a line parsed under another boot's nonce: {line:?}");
        }
        let pushed = match parser.push(line) {
            Parsed::Message(m) => Some(m),
            Parsed::Foreign => {
                assert!(line.contains("KREGRESS>"), "foreign without the marker: {line:?}");
                foreign += 1;
                None
            }
            Parsed::Other => None,
        };
        for m in [alone, pushed].into_iter().flatten() {
            let back = parse_line(&m.to_line(NONCE), NONCE);
            let back = back.unwrap_or_else(|| panic!("{m:?} prints a line that does not parse: {}", m.to_line(NONCE)));
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&m), "{m:?} came back as {back:?}");
        }
    }
    assert_eq!(parser.foreign(), foreign, "foreign lines miscounted");
}

/// Console triage as `kregress triage` and the report read a console.log
/// (lossy UTF-8, whole log): never a panic; every report has a title and
/// lines inside the log, in order.
pub fn triage(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.strip_suffix('\n').unwrap_or(&text).split('\n').count();
    for r in kregress::triage::parse(&text) {
        assert!(!r.title.trim().is_empty(), "report without a title: {r:?}");
        assert!(
            1 <= r.start_line && r.start_line <= r.end_line && r.end_line <= lines,
            "lines {}..{} of {lines}: {r:?}",
            r.start_line,
            r.end_line
        );
    }
}

/// run.json loading through [`kregress::results::load`]: a bad file is bad
/// input (exit 2) naming it, never a panic; a record that loads saves to a file that
/// loads again (what `--resume` does with it).
pub fn run_json(fx: &Fixture, data: &[u8]) {
    let dir = fx.run_dir();
    std::fs::write(dir.join("run.json"), data).expect("writing run.json");
    match kregress::results::load(&dir) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "not bad input: {e}");
            assert!(e.msg.contains("run.json"), "error does not name the file: {e}");
        }
        Ok(rec) => {
            let saved = serde_json::to_vec_pretty(&rec).expect("a loaded record serializes");
            std::fs::write(dir.join("run.json"), saved).expect("writing run.json");
            if let Err(e) = kregress::results::load(&dir) {
                panic!("a loaded record saved does not load again: {e}");
            }
        }
    }
}
