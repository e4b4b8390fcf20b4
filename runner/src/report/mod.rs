//! The renderers: pure functions from plain data to text. A run's cell
//! table and verdicts, for the terminal and for `results/<run-id>/summary.md`
//! (the same text, [`summary_md`]); and the nightly report of runs judged
//! against their baselines ([`crate::nightly::RunReport`]): report/summary.md
//! (`nightly_summary_md`), report.html (`html`), junit.xml ([`junit`]),
//! kcidb.json (`kcidb`), nightly.json (`nightly_json`) and each failing
//! run's repro.sh (`repro_sh`). None of them judges or reads or writes a
//! file: [`crate::post`] writes what they render.

pub(crate) mod html;
pub mod junit;
pub(crate) mod kcidb;

use crate::compare::{self, Verdict};
use crate::nightly::{CellVerdict, RunReport, Status};
use crate::results::{CellResult, RunRecord};
use crate::text::visible;

/// The cells of a run, one line each, with `unexpected(cell)` marked.
pub(crate) fn cells_table(rec: &RunRecord, unexpected: impl Fn(&crate::results::CellResult) -> bool) -> String {
    let mut out = String::from("| cell | timing | outcome | kind | throughput | title |\n|---|---|---|---|---|---|\n");
    for c in &rec.cells {
        let perf = metrics_text(c);
        let kind = c.kind.map_or("", |k| k.as_str());
        out += &format!(
            "| {} | {} | {}{} | {} | {} | {} |\n",
            c.key().id(),
            c.timing,
            c.outcome,
            if unexpected(c) { " (unexpected)" } else { "" },
            kind,
            perf,
            title_text(c).replace('|', "\\|").replace('\n', " ")
        );
    }
    out
}

/// A cell's title, with a storm's seed and reproduction rate after it
/// (`INFO: task hung in ext4_break_layouts (seed 7, reproduced 2/3)`).
pub(crate) fn title_text(c: &CellResult) -> String {
    let title = c.title.clone().unwrap_or_default();
    match &c.storm {
        Some(st) => {
            let rate = st.reproduced.as_ref().map(|r| format!(", {}", r.line())).unwrap_or_default();
            format!("{title} (seed {}{rate})", st.seed).trim_start().to_string()
        }
        None => title,
    }
}

/// `fast 874.2 / slow 432.4 MB/s (virtual time)`: a cell's metrics in its
/// timing mode, each under its own unit ([`crate::results::metric_unit`]):
/// `fast 12.0 / slow 11.8 MB/s, ops 3.1 ops/s (virtual time)`.
pub(crate) fn metrics_text(c: &CellResult) -> String {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (k, v) in &c.metrics {
        let unit = crate::results::metric_unit(k);
        let figure = format!("{} {v:.1}", k.trim_end_matches("_mb_per_s").trim_end_matches("_per_s").trim_end_matches("mb"));
        match groups.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, figures)) => figures.push(figure),
            None => groups.push((unit, vec![figure])),
        }
    }
    // The timing mode is said once, after the last unit.
    let n = groups.len();
    let parts: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, (unit, figures))| format!("{} {}", figures.join(" / "), if i + 1 == n { c.timing.unit(unit) } else { unit.to_string() }))
        .collect();
    parts.join(", ")
}

/// summary.md of a run: every cell's outcome, the A/B `verdicts` (each variant against the first), and the cells `unexpected` says did not go as the scenario expected, with `floor_note` naming the noise floor used.
pub fn summary_md(
    rec: &RunRecord,
    verdicts: &[Verdict],
    floor_note: &str,
    unexpected: impl Fn(&crate::results::CellResult) -> bool,
) -> String {
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

/// How many cells got each status, over all reports.
pub(crate) fn count(reports: &[RunReport], s: Status) -> usize {
    reports.iter().flat_map(|r| &r.verdicts).filter(|v| v.status == s).count()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "2 new failures, 1 fixed, 0 throughput regressions since 2026-11-25".
pub(crate) fn headline(reports: &[RunReport]) -> String {
    let mut since: Vec<&str> =
        reports.iter().filter_map(|r| r.baseline.as_ref()).map(|b| b.started.get(..10).unwrap_or(&b.started)).collect();
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
pub(crate) fn repro_command(rec: &RunRecord, c: &CellResult) -> String {
    // A file named like an option stays a file.
    let file = rec.scenario_file.display().to_string();
    let file = if file.starts_with('-') { format!("./{file}") } else { file };
    let only = format!("variant={},backend={},fs={},mapping={},workload={}", c.variant, c.backend, c.fs, c.mapping, c.workload);
    let seed = c.storm.as_ref().map(|st| format!(" --seed {}", st.seed)).unwrap_or_default();
    format!("kregress run {} --only {} --runs 1{seed}", shell_quote(&file), shell_quote(&only))
}

/// `s` as one shell word: as is when it holds only characters no shell
/// treats specially, else in single quotes.
pub(crate) fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=,:".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// repro.sh of a failing run `c` of `rec`: [`repro_command`] with kregress
/// from PATH, else through cargo.
pub(crate) fn repro_sh(rec: &RunRecord, c: &CellResult) -> String {
    format!(
        "#!/bin/sh\n# Re-runs cell {} of run {} ({}: {}).\n# Run it from the root of the kregress checkout.\nset -e\nif command -v kregress >/dev/null 2>&1; then\n  exec {}\nfi\nexec cargo run --release -- {}\n",
        c.key().id(),
        rec.run_id,
        c.outcome,
        visible(c.title.as_deref().unwrap_or("no title")).replace('\n', " "),
        repro_command(rec, c),
        repro_command(rec, c).trim_start_matches("kregress "),
    )
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
pub(crate) fn nightly_summary_md(reports: &[RunReport]) -> String {
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
        let failing: Vec<&CellResult> = r.rec.cells.iter().filter(|c| c.outcome.is_failure()).collect();
        if !failing.is_empty() {
            out += "\n### Failures\n\n";
        }
        for c in failing {
            let status = r.verdicts.iter().find(|v| v.cell == c.key().name()).map_or("", |v| v.status.as_str());
            out += &format!(
                "#### {} — {} ({})\n\n{}{}: **{}**\n\n```\n{}\n```\n\nReproduce (from the repository root): `{}`\n\n",
                c.key().id(),
                status,
                r.rec.run_id,
                c.outcome,
                c.kind.map(|k| format!(" {k}")).unwrap_or_default(),
                c.title.as_deref().unwrap_or("no title"),
                r.excerpt(c, 12),
                repro_command(&r.rec, c)
            );
        }
        out += "\n";
    }
    visible(&out).into_owned()
}

/// nightly.json: the verdicts of each run as data.
pub(crate) fn nightly_json(reports: &[RunReport]) -> String {
    let verdicts: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| serde_json::json!({"run_id": r.rec.run_id, "scenario": r.rec.scenario, "baseline": r.baseline.as_ref().map(|b| &b.run_id), "verdicts": r.verdicts}))
        .collect();
    serde_json::to_string_pretty(&verdicts).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Timing;

    /// A passing cell of the stored default-scenario run.
    pub(crate) fn stored_cell() -> CellResult {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/20261126-162904-bio-release-devmap-wakeup");
        crate::results::load(&dir).unwrap().cells.into_iter().find(|c| c.outcome == crate::outcome::Outcome::Pass).unwrap()
    }

    /// Each figure of a cell carries its own metric's unit: fork-cow-dio
    /// and reflink-dio report MB/s per GUP path and ops/s in one cell.
    #[test]
    fn metrics_text_gives_each_metric_its_unit() {
        let mut c = stored_cell();
        c.timing = Timing::Icount;
        c.metrics = [("fast_mb_per_s", 874.25), ("slow_mb_per_s", 432.4)].map(|(k, v)| (k.to_string(), v)).into_iter().collect();
        assert_eq!(metrics_text(&c), "fast 874.2 / slow 432.4 MB/s (virtual time)");
        c.metrics.insert("ops_per_s".into(), 3.1);
        assert_eq!(metrics_text(&c), "fast 874.2 / slow 432.4 MB/s, ops 3.1 ops/s (virtual time)");
        c.timing = Timing::Wall;
        c.metrics = [("ops_per_s".to_string(), 379.93)].into_iter().collect();
        assert_eq!(metrics_text(&c), "ops 379.9 ops/s");
        c.metrics.clear();
        assert_eq!(metrics_text(&c), "");
    }
}
