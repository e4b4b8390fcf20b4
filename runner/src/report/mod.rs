//! Human-readable outputs of a run: the cell table and the verdicts, for the
//! terminal and for results/<run-id>/summary.md (the same text); and the
//! nightly report of one or more runs against their baselines
//! ([`RunReport`], [`write_all`]): report/summary.md, report.html
//! ([`html`]), junit.xml ([`junit`]) and kcidb.json ([`kcidb`]), plus a
//! repro.sh in every failing cell's directory ([`write_repro`]).

pub mod html;
pub mod junit;
pub mod kcidb;

use crate::compare::{self, Verdict};
use crate::rules::NoiseFloors;
use crate::error::{Context, Result};
use crate::nightly::{self, Baseline, CellVerdict, Status};
use crate::results::{CellResult, Outcome, RunRecord};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The cells of a run, one line each, with `unexpected(cell)` marked.
pub fn cells_table(rec: &RunRecord, unexpected: impl Fn(&crate::results::CellResult) -> bool) -> String {
    let mut out = String::from("| cell | timing | outcome | kind | throughput | title |\n|---|---|---|---|---|---|\n");
    for c in &rec.cells {
        let perf = metrics_text(c);
        let kind = c.kind.map(|k| serde_json::to_value(k).unwrap().as_str().unwrap_or("").to_string()).unwrap_or_default();
        let outcome = serde_json::to_value(c.outcome).unwrap().as_str().unwrap_or("").to_string();
        out += &format!(
            "| {} | {} | {}{} | {} | {} | {} |\n",
            c.id(),
            c.timing,
            outcome,
            if unexpected(c) { " (unexpected)" } else { "" },
            kind,
            perf,
            c.title.as_deref().unwrap_or("").replace('|', "\\|").replace('\n', " ")
        );
    }
    out
}

/// `fast 874.2 / slow 432.4 MB/s (virtual time)`: a cell's metrics in its timing mode.
pub fn metrics_text(c: &CellResult) -> String {
    let parts: Vec<String> = c
        .metrics
        .iter()
        .map(|(k, v)| format!("{} {v:.1}", k.trim_end_matches("_mb_per_s").trim_end_matches("_per_s").trim_end_matches("mb")))
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    let unit = c.metrics.keys().next().map(|k| crate::results::metric_unit(k)).unwrap_or("");
    format!("{} {}", parts.join(" / "), c.timing.unit(unit))
}

pub fn summary_md(rec: &RunRecord, verdicts: &[Verdict], floor_note: &str, unexpected: impl Fn(&crate::results::CellResult) -> bool) -> String {
    let n_unexpected = rec.cells.iter().filter(|c| unexpected(c)).count();
    let mut out = format!(
        "# {} — run {}\n\n{} cells, {} not as expected. Noise floor: {floor_note}.\n\n## Cells\n\n",
        rec.scenario,
        rec.run_id,
        rec.cells.len(),
        n_unexpected
    );
    out += &cells_table(rec, unexpected);
    if !verdicts.is_empty() {
        out += "\n## Verdicts\n\n";
        out += &compare::render_table(verdicts);
    }
    visible(&out).into_owned()
}

/// `s` with every character a terminal, a Markdown or an XML reader would
/// take for something else written as a Rust escape (`\u{1b}`, `\r`):
/// control characters but newline and tab, and U+FFFE/U+FFFF (not XML
/// characters). Titles and console lines come from the guest: every text
/// kregress writes for people goes through here (summary.md, the terminal,
/// junit.xml, report.html through [`html::esc`], repro.sh).
pub fn visible(s: &str) -> Cow<'_, str> {
    let hidden = |c: char| (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{fffe}' | '\u{ffff}');
    if !s.contains(hidden) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if hidden(c) { c.escape_default().to_string() } else { c.to_string() }).collect())
}

/// One run with what it is judged against.
pub struct RunReport {
    /// Where the run is stored now (run.json, cell directories).
    pub dir: PathBuf,
    pub rec: RunRecord,
    pub baseline: Option<RunRecord>,
    /// Earlier runs of the scenario in the history window, oldest first.
    pub history: Vec<RunRecord>,
    pub verdicts: Vec<CellVerdict>,
    pub floors: NoiseFloors,
}

impl RunReport {
    /// Judges `rec` (stored in `dir`) against `baseline`, pooling `history`
    /// into the throughput reference (see [`nightly`]).
    pub fn new(dir: PathBuf, rec: RunRecord, baseline: Option<RunRecord>, history: Vec<RunRecord>) -> Result<RunReport> {
        let floors = NoiseFloors::of(&rec);
        // The baseline is pooled once; the history supplies the other nights.
        let earlier: Vec<RunRecord> =
            history.iter().filter(|h| baseline.as_ref().is_none_or(|b| b.run_id != h.run_id)).cloned().collect();
        let verdicts = nightly::classify_runs(baseline.as_ref(), &rec, &earlier, &floors)?;
        Ok(RunReport { dir, rec, baseline, history, verdicts, floors })
    }

    /// Loads the run in `dir` and finds its baseline and history among the
    /// runs beside it (its results folder).
    pub fn load(dir: &Path, which: &Baseline, history: usize) -> Result<RunReport> {
        let rec = crate::results::load(dir)?;
        // A bare run id ("20261126-...") has the empty path as parent.
        let root = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let (base, hist) = nightly::baseline_and_history(root, &rec, which, history)?;
        RunReport::new(dir.to_path_buf(), rec, base, hist)
    }

    /// Tonight's runs of the cell named `name` (`variant/backend-fs-mapping-workload`).
    pub fn runs(&self, name: &str) -> Vec<&CellResult> {
        self.rec.cells.iter().filter(|c| nightly::cell_name(c) == name).collect()
    }

    /// The directory of one run of a cell, where the run is stored now.
    pub fn cell_dir(&self, c: &CellResult) -> PathBuf {
        self.dir.join(c.id())
    }
}

/// How many cells got each status, over all reports.
pub fn count(reports: &[RunReport], s: Status) -> usize {
    reports.iter().flat_map(|r| &r.verdicts).filter(|v| v.status == s).count()
}

pub fn regressed(reports: &[RunReport]) -> bool {
    reports.iter().flat_map(|r| &r.verdicts).any(|v| v.status.regressed())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "2 new failures, 1 fixed, 0 throughput regressions since 2026-11-25".
pub fn headline(reports: &[RunReport]) -> String {
    let mut since: Vec<&str> = reports.iter().filter_map(|r| r.baseline.as_ref()).map(|b| b.started.get(..10).unwrap_or(&b.started)).collect();
    since.sort();
    let when = match since.first() {
        Some(d) => format!("since {d}"),
        None => "(no baseline: first nightly)".into(),
    };
    let changed = count(reports, Status::ChangedFailure);
    format!(
        "{}, {} fixed, {}{} {when}",
        plural(count(reports, Status::NewFailure), "new failure", "new failures"),
        count(reports, Status::Fixed),
        plural(count(reports, Status::ThroughputRegression), "throughput regression", "throughput regressions"),
        if changed > 0 { format!(", {}", plural(changed, "changed failure", "changed failures")) } else { String::new() },
    )
}

/// The command that re-runs exactly this cell, from the repository root.
/// Every word from the run record is quoted for the shell (repro.sh runs it).
pub fn repro_command(rec: &RunRecord, c: &CellResult) -> String {
    // A file named like an option stays a file.
    let file = rec.scenario_file.display().to_string();
    let file = if file.starts_with('-') { format!("./{file}") } else { file };
    let only = format!("variant={},backend={},fs={},mapping={},workload={}", c.variant, c.backend, c.fs, c.mapping, c.workload);
    format!("kregress run {} --only {} --runs 1", shell_quote(&file), shell_quote(&only))
}

/// `s` as one shell word: as is when it holds only characters no shell
/// treats specially, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=,:".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The serialized (KCIDB-style) name of an outcome or kind: `FAIL`, `DATA_CORRUPTION`.
pub fn name(x: impl serde::Serialize) -> String {
    serde_json::to_value(x).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Whether a run of a cell failed (the kernel's fault: FAIL or ERROR).
pub fn failed(c: &CellResult) -> bool {
    matches!(c.outcome, Outcome::Fail | Outcome::Error)
}

/// Writes `repro.sh` into the directory of every failing run of the report.
pub fn write_repro(r: &RunReport) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for c in r.rec.cells.iter().filter(|c| failed(c)) {
        let dir = crate::results::create_dir_inside(&r.dir, Path::new(&c.id()))?;
        let script = format!(
            "#!/bin/sh\n# Re-runs cell {} of run {} ({}: {}).\n# Run it from the root of the kregress checkout.\nset -e\nif command -v kregress >/dev/null 2>&1; then\n  exec {}\nfi\nexec cargo run --release -- {}\n",
            c.id(),
            r.rec.run_id,
            name(c.outcome),
            visible(c.title.as_deref().unwrap_or("no title")).replace('\n', " "),
            repro_command(&r.rec, c),
            repro_command(&r.rec, c).trim_start_matches("kregress "),
        );
        let path = dir.join("repro.sh");
        crate::cache::write_atomic(&path, script.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).context(|| format!("chmod {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The start of the kernel's report in a console log (the first `n` lines
/// of the first report triage finds), else the log's last `n` lines.
pub fn console_excerpt(console: &Path, n: usize) -> String {
    let bytes = match read_console(console) {
        Ok(b) => b,
        Err(e) => return format!("(no console log at {}: {e})", console.display()),
    };
    let text = String::from_utf8_lossy(&bytes);
    if let Some(rep) = crate::triage::parse(&text).into_iter().next() {
        return rep.text.lines().take(n).collect::<Vec<_>>().join("\n");
    }
    // No kernel report (e.g. a hang the agent saw): the console's last
    // lines, without the agent's protocol lines, which junit.xml repeats badly.
    let lines: Vec<String> = text.lines().filter(|l| !l.starts_with(kregress_agent::MARKER)).map(|l| l.chars().take(200).collect()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The most of a console log a report reads: its start, where the first
/// kernel report is.
pub const CONSOLE_READ_MAX: u64 = 16 << 20;

/// The first [`CONSOLE_READ_MAX`] bytes of a stored console log: a regular
/// file, not a symbolic link (a stored run may come from another machine:
/// a link to /dev/zero or to a secret must not end up in a report).
fn read_console(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO does not wait for a writer.
    let f = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.take(CONSOLE_READ_MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `path` relative to the directory `from` (both made absolute), so links
/// keep working when the results folder is uploaded as an artifact.
pub fn relative(path: &Path, from: &Path) -> PathBuf {
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

/// A table cell: one line, no '|', at most 160 characters (harness
/// messages can quote a whole usage text).
fn md_cell(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "/");
    if one.chars().count() > 160 {
        format!("{}…", one.chars().take(160).collect::<String>())
    } else {
        one
    }
}

fn fmt_delta(v: &CellVerdict) -> String {
    match (v.stats.delta_pct, v.stats.ci_low, v.stats.ci_high) {
        (Some(d), Some(lo), Some(hi)) => format!("{d:+.1}% [{lo:+.1}, {hi:+.1}]"),
        (Some(d), _, _) => format!("{d:+.1}% (no interval)"),
        _ => "-".into(),
    }
}

/// report/summary.md: the headline first, then per run its verdicts table
/// and every failure with its title, first console lines and repro command.
pub fn nightly_summary_md(reports: &[RunReport]) -> String {
    let mut out = format!("# kregress nightly: {}\n\n", headline(reports));
    for r in reports {
        out += &format!("## {} — run {}\n\n", r.rec.scenario, r.rec.run_id);
        out += &match &r.baseline {
            Some(b) => format!("Baseline: run {} ({}). ", b.run_id, b.started),
            None => "No baseline. ".into(),
        };
        out += &format!(
            "Throughput reference: the baseline and {} earlier night(s); noise floor {}. icount figures are per virtual second (guest time = instructions executed).\n\n",
            r.history.iter().filter(|h| r.baseline.as_ref().is_none_or(|b| b.run_id != h.run_id)).count(),
            r.floors.note()
        );
        out += "| cell | metric | timing | status | baseline | tonight | throughput change [95% CI] | note |\n|---|---|---|---|---|---|---|---|\n";
        for v in &r.verdicts {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                v.cell,
                if v.metric.is_empty() { "-" } else { &v.metric },
                v.timing.map_or("-", |t| t.as_str()),
                v.status.as_str(),
                md_cell(v.old.as_deref().unwrap_or("-")),
                md_cell(&v.new),
                fmt_delta(v),
                md_cell(&v.note)
            );
        }
        let failing: Vec<&CellResult> = r.rec.cells.iter().filter(|c| failed(c)).collect();
        if !failing.is_empty() {
            out += "\n### Failures\n\n";
        }
        for c in failing {
            let status = r.verdicts.iter().find(|v| v.cell == nightly::cell_name(c)).map_or("", |v| v.status.as_str());
            out += &format!(
                "#### {} — {} ({})\n\n{}{}: **{}**\n\n```\n{}\n```\n\nReproduce (from the repository root): `{}`\n\n",
                c.id(),
                status,
                r.rec.run_id,
                name(c.outcome),
                c.kind.map(|k| format!(" {}", name(k))).unwrap_or_default(),
                c.title.as_deref().unwrap_or("no title"),
                console_excerpt(&r.cell_dir(c).join("console.log"), 12),
                repro_command(&r.rec, c)
            );
        }
        out += "\n";
    }
    visible(&out).into_owned()
}

/// Writes summary.md, report.html, junit.xml and kcidb.json into `out`.
pub fn write_all(reports: &[RunReport], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).context(|| format!("creating {}", out.display()))?;
    let w = |name: &str, bytes: &[u8]| crate::cache::write_atomic(&out.join(name), bytes);
    w("summary.md", nightly_summary_md(reports).as_bytes())?;
    w("report.html", html::render(reports, out).as_bytes())?;
    w("junit.xml", junit::render(reports)?.as_bytes())?;
    w("kcidb.json", &serde_json::to_vec_pretty(&kcidb::render(reports)).unwrap())?;
    let verdicts: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| serde_json::json!({"run_id": r.rec.run_id, "scenario": r.rec.scenario, "baseline": r.baseline.as_ref().map(|b| &b.run_id), "verdicts": r.verdicts}))
        .collect();
    w("nightly.json", &serde_json::to_vec_pretty(&verdicts).unwrap())
}

/// `kregress report`: judges each stored run against its baseline, writes
/// repro.sh into its failing cells and the report into RUN_DIR/report (or
/// one combined report into `out`); prints the headline. Exit 1 on a
/// regression, as `nightly` does.
pub fn report_cmd(runs: &[PathBuf], which: &Baseline, history: usize, out: Option<&Path>) -> Result<i32> {
    let reports: Vec<RunReport> = runs.iter().map(|d| RunReport::load(d, which, history)).collect::<Result<_>>()?;
    publish(&reports, out)?;
    Ok(if regressed(&reports) { 1 } else { 0 })
}

/// Writes every output of `reports` and prints where they went.
pub fn publish(reports: &[RunReport], out: Option<&Path>) -> Result<()> {
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
    println!("{}", headline(reports));
    for r in reports {
        let dir = out.map(Path::to_path_buf).unwrap_or_else(|| r.dir.join("report"));
        println!("  {} ({}): {}", r.rec.scenario, r.rec.run_id, dir.join("report.html").display());
    }
    Ok(())
}
