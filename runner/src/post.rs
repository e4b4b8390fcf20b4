//! After the work: the one path a command takes when its runs are done
//! (`finish`: `run` and `nightly` for each run of a scenario — its
//! summary.md, report.html and verdicts.json — `bisect` for its
//! bisection), and the writing of the nightly report (`publish`).
//! The renderers of [`crate::report`] make the text; this module decides
//! where it goes.

use crate::bisect::{self, BisectReport};
use crate::cache::write_atomic;
use crate::compare::{self, Verdict};
use crate::error::{Context, Findings, Result};
use crate::nightly::RunReport;
use crate::outcome::Outcome;
use crate::report::{self, html, junit, kcidb};
use crate::results::{CellResult, RunRecord};
use crate::rules::NoiseFloors;
use crate::scenario::Scenario;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What [`finish`] prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// The summary, for people.
    Text,
    /// The work itself, serialized (`--json`).
    Json,
    /// Nothing (`nightly` prints its report's headline instead).
    Nothing,
}

/// A piece of work done and stored in its results directory: a run of a
/// scenario ([`RunDone`]) or a bisection (`bisect::BisectReport`).
pub trait Done: Serialize {
    /// `results/<id>/`.
    fn dir(&self) -> &Path;
    /// The files [`finish`] writes into [`Done::dir`], by name: the summary
    /// for people and the record for programs.
    fn files(&self) -> Vec<(&'static str, Vec<u8>)>;
    /// What the terminal shows of it without `--json`.
    fn text(&self) -> String;
    /// What it found, for the exit code ([`crate::error::exit_code`]).
    fn findings(&self) -> Findings;
}

/// The post-run path: writes `done`'s files into its directory, shows it
/// and says what it found.
pub fn finish(done: &impl Done, show: Show) -> Result<Findings> {
    for (name, bytes) in done.files() {
        write_atomic(&done.dir().join(name), &bytes)?;
    }
    match show {
        Show::Text => println!("{}", done.text()),
        Show::Json => println!("{}", serde_json::to_string_pretty(done).unwrap()),
        Show::Nothing => {}
    }
    Ok(done.findings())
}

/// A finished run of a scenario, judged: each variant against the first,
/// cell by cell (verdicts.json, drawn in report.html), and each cell
/// against the scenario's expectations (summary.md's "(unexpected)", the
/// findings). `--json` prints the run record with the verdicts and noise
/// floors beside it.
#[derive(Serialize)]
pub struct RunDone<'a> {
    /// The run, as run.json holds it.
    #[serde(flatten)]
    pub rec: &'a RunRecord,
    /// Each variant against the first, cell by cell and metric by metric: verdicts.json's rows.
    pub verdicts: Vec<Verdict>,
    pub(crate) noise_floors: NoiseFloors,
    /// summary.md, which the terminal shows too.
    #[serde(skip)]
    pub(crate) summary: String,
    /// report.html: the same verdicts and cells, drawn.
    #[serde(skip)]
    pub(crate) html: String,
    /// A cell not as expected (but MISS) is a kernel failure, a MISS the
    /// harness's.
    #[serde(skip)]
    pub(crate) findings: Findings,
}

impl<'a> RunDone<'a> {
    /// Judges `rec`, a run of `s`.
    pub fn judge(s: &Scenario, rec: &'a RunRecord) -> Result<RunDone<'a>> {
        let unexpected = |c: &CellResult| !crate::run::as_expected(s, c);
        let noise_floors = NoiseFloors::of(rec);
        let verdicts = compare::compare_variants(rec, &noise_floors)?;
        let summary = report::summary_md(rec, &verdicts, &noise_floors.note(), unexpected);
        let html = html::run_page(rec, &verdicts, &noise_floors.note(), unexpected);
        let findings = Findings {
            kernel_failed: rec.cells.iter().any(|c| c.outcome != Outcome::Miss && unexpected(c)),
            harness_failed: rec.cells.iter().any(|c| c.outcome == Outcome::Miss),
        };
        Ok(RunDone { rec, verdicts, noise_floors, summary, html, findings })
    }
}

impl Done for RunDone<'_> {
    fn dir(&self) -> &Path {
        &self.rec.results_dir
    }
    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("summary.md", self.summary.clone().into_bytes()),
            ("report.html", self.html.clone().into_bytes()),
            ("verdicts.json", serde_json::to_vec_pretty(&self.verdicts).unwrap()),
        ]
    }
    fn text(&self) -> String {
        self.summary.clone()
    }
    fn findings(&self) -> Findings {
        self.findings
    }
}

/// A bisection has no run record: its runs are one cell on many commits
/// (as a run.json they would join the scenario's nightly history). Its
/// summary is bisect.md, its record bisect.json, and bisect.log replays it.
impl Done for BisectReport {
    fn dir(&self) -> &Path {
        &self.results_dir
    }
    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("bisect.log", self.log.clone().into_bytes()),
            ("bisect.json", serde_json::to_vec_pretty(self).unwrap()),
            ("bisect.md", bisect::markdown(self).into_bytes()),
        ]
    }
    fn text(&self) -> String {
        format!("{}\nresults: {}", bisect::markdown(self), self.results_dir.display())
    }
    /// A bisection that ran to its end found what it was asked for.
    fn findings(&self) -> Findings {
        Findings::default()
    }
}

/// Writes repro.sh (`report::repro_sh`) into the directory of every
/// failing run of `r`; the paths written.
pub fn write_repro(r: &RunReport) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for c in r.rec.cells.iter().filter(|c| c.outcome.is_failure()) {
        let dir = crate::results::create_dir_inside(&r.dir, Path::new(&c.key().id()))?;
        let path = dir.join("repro.sh");
        write_atomic(&path, report::repro_sh(&r.rec, c).as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).context(|| format!("chmod {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the nightly report of `reports` into `out`: summary.md,
/// report.html, junit.xml, kcidb.json and nightly.json.
pub fn write_all(reports: &[RunReport], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).context(|| format!("creating {}", out.display()))?;
    // Where each run is, seen from `out` (report.html links its console logs).
    let run_dirs: Vec<PathBuf> =
        reports.iter().map(|r| relative(&r.dir.join("run.json"), out).parent().map(Path::to_path_buf).unwrap_or_default()).collect();
    let w = |name: &str, bytes: &[u8]| write_atomic(&out.join(name), bytes);
    w("summary.md", report::nightly_summary_md(reports).as_bytes())?;
    w("report.html", html::render(reports, &run_dirs).as_bytes())?;
    w("junit.xml", junit::render(reports)?.as_bytes())?;
    w("kcidb.json", &serde_json::to_vec_pretty(&kcidb::render(reports)).unwrap())?;
    w("nightly.json", report::nightly_json(reports).as_bytes())
}

/// Writes every output of `reports` (repro.sh in each failing run, the
/// report into `out`, else into each RUN_DIR/report) and prints the
/// headline and where the reports went.
pub(crate) fn publish(reports: &[RunReport], out: Option<&Path>) -> Result<()> {
    for r in reports {
        write_repro(r)?;
    }
    match out {
        Some(out) => write_all(reports, out)?,
        None => {
            for r in reports {
                write_all(std::slice::from_ref(r), &crate::results::create_dir_inside(&r.dir, Path::new("report"))?)?;
            }
        }
    }
    println!("{}", report::headline(reports));
    for r in reports {
        let dir = out.map(Path::to_path_buf).unwrap_or_else(|| r.dir.join("report"));
        println!("  {} ({}): {}", r.rec.scenario, r.rec.run_id, dir.join("report.html").display());
    }
    Ok(())
}

/// `path` relative to the directory `from` (both made absolute), so links
/// keep working when the results folder is uploaded as an artifact.
pub(crate) fn relative(path: &Path, from: &Path) -> PathBuf {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().unwrap_or_default().join(p));
    let (p, f) = (abs(path.parent().unwrap_or(path)).join(path.file_name().unwrap_or_default()), abs(from));
    let pc: Vec<_> = p.components().collect();
    let fc: Vec<_> = f.components().collect();
    let common = pc.iter().zip(&fc).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..fc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailKind;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The stored run of the default scenario (stock hangs 3/3 as expected,
    /// fixed passes), as if it had just finished in `dir`.
    fn stored_run(dir: &Path) -> (Scenario, RunRecord) {
        let s = crate::scenario::load(&root().join("scenarios/bio-release-devmap-wakeup.yaml")).unwrap();
        let mut rec = crate::results::load(&root().join("runner/tests/data/runs/20261126-162904-bio-release-devmap-wakeup")).unwrap();
        rec.results_dir = dir.to_path_buf();
        (s, rec)
    }

    #[test]
    fn a_finished_run_leaves_its_summary_and_verdicts() {
        let d = tempfile::tempdir().unwrap();
        let (s, rec) = stored_run(d.path());
        let done = RunDone::judge(&s, &rec).unwrap();
        assert_eq!(finish(&done, Show::Nothing).unwrap(), Findings::default(), "every cell as expected");
        let md = std::fs::read_to_string(d.path().join("summary.md")).unwrap();
        assert!(
            md.starts_with("# bio-release-devmap-wakeup — run 20261126-162904-bio-release-devmap-wakeup\n\n18 cells, 0 not as expected."),
            "{md}"
        );
        assert!(md.contains("| stock/memmap-ext4-pte-truncate-during-dio/run3 | wall | FAIL | HANG |"), "{md}");
        // The verdicts: stock (the first variant) against fixed, by the rule book.
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join("verdicts.json")).unwrap()).unwrap();
        let fixed = v.as_array().unwrap().iter().find(|v| v["cell"] == "memmap-ext4-pte-truncate-during-dio").unwrap();
        assert_eq!(
            (fixed["from_variant"].as_str(), fixed["to_variant"].as_str(), fixed["verdict"].as_str()),
            (Some("stock"), Some("fixed"), Some("FIXED"))
        );
        assert_eq!(v, serde_json::to_value(&done.verdicts).unwrap());
        // report.html: the same verdicts drawn (tests/report.rs reads it back).
        let html = std::fs::read_to_string(d.path().join("report.html")).unwrap();
        assert!(
            html.contains("<h2>A/B: each variant against stock</h2>")
                && html.contains("<td class=\"v\" style=\"background:#b7e4c7\">FIXED</td>"),
            "{html}"
        );
        // --json: the run record with the verdicts and noise floors beside it.
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["run_id"], "20261126-162904-bio-release-devmap-wakeup");
        assert_eq!(json["cells"].as_array().unwrap().len(), 18);
        assert_eq!(json["verdicts"], v);
        assert!(json["noise_floors"].is_object(), "{json:#}");
        // The same content as when cli.rs pieced it together from serde_json::Values.
        let mut pieced = serde_json::to_value(&rec).unwrap();
        pieced["verdicts"] = serde_json::to_value(&done.verdicts).unwrap();
        pieced["noise_floors"] = serde_json::to_value(&done.noise_floors).unwrap();
        assert_eq!(json, pieced);
    }

    #[test]
    fn a_run_finds_a_kernel_failure_in_an_unexpected_cell_and_a_harness_failure_in_a_miss() {
        let d = tempfile::tempdir().unwrap();
        let (s, rec) = stored_run(d.path());
        let findings = |edit: &dyn Fn(&mut RunRecord)| {
            let mut r = rec.clone();
            edit(&mut r);
            RunDone::judge(&s, &r).unwrap().findings
        };
        let cell = |r: &mut RunRecord, variant: &str, workload: &str| -> usize {
            r.cells.iter().position(|c| c.variant == variant && c.workload == workload && c.run == 1).unwrap()
        };
        let fail = |r: &mut RunRecord| {
            let i = cell(r, "fixed", "truncate-during-dio");
            r.cells[i].outcome = Outcome::Fail;
            r.cells[i].kind = Some(FailKind::Hang);
        };
        let miss = |r: &mut RunRecord| {
            let i = cell(r, "fixed", "dio-read");
            r.cells[i].outcome = Outcome::Miss;
        };
        assert_eq!(findings(&|_| {}), Findings::default());
        assert_eq!(findings(&fail), Findings { kernel_failed: true, harness_failed: false });
        // A MISS is not as expected either, but it is the harness's failure.
        assert_eq!(findings(&miss), Findings { kernel_failed: false, harness_failed: true });
        let both = |r: &mut RunRecord| {
            fail(r);
            miss(r);
        };
        assert_eq!(findings(&both), Findings { kernel_failed: true, harness_failed: true });
        // Stock's expected hang passing is not as expected: a kernel failure.
        let pass = |r: &mut RunRecord| {
            let i = cell(r, "stock", "truncate-during-dio");
            r.cells[i].outcome = Outcome::Pass;
        };
        assert_eq!(findings(&pass), Findings { kernel_failed: true, harness_failed: false });
    }

    #[test]
    fn a_finished_bisection_leaves_its_log_record_and_summary() {
        let d = tempfile::tempdir().unwrap();
        let mut r = crate::bisect::tests::sample_report();
        r.results_dir = d.path().to_path_buf();
        assert_eq!(finish(&r, Show::Nothing).unwrap(), Findings::default());
        let read = |f: &str| std::fs::read(d.path().join(f)).unwrap();
        assert_eq!(read("bisect.log"), r.log.as_bytes());
        assert_eq!(read("bisect.json"), serde_json::to_vec_pretty(&r).unwrap());
        assert_eq!(read("bisect.md"), bisect::markdown(&r).as_bytes());
        // `--json` prints the report as bisect.json holds it: the same
        // content as when cli.rs rebuilt `culprit` by hand.
        let mut rebuilt = serde_json::to_value(&r).unwrap();
        let c = r.culprit.as_ref().unwrap();
        rebuilt["culprit"] = serde_json::json!({"commit": c.commit, "subject": c.subject, "author": c.author});
        assert_eq!(serde_json::to_value(&r).unwrap(), rebuilt);
    }
}
