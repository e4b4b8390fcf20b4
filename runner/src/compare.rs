//! Compares kernel variants cell by cell: the rows the rule book
//! ([`crate::rules`]) decides, with the statistics of [`crate::stats`].
//!
//! A *cell* here is (backend, fs, mapping, workload): the runs (boots) of
//! one variant in one cell are the samples. For each cell the first variant
//! of the record (the scenario lists the stock or regressed kernel first) is
//! the baseline and every other variant is compared against it
//! ([`compare_variants`]); the same variant can also be compared across two
//! records ([`compare_runs`]). A cell whose outcomes differ gets one row; a
//! cell that passed on both sides gets one row per metric (GUP-fast and
//! slow GUP separately), each with its own throughput verdict. Cells
//! measured in different timing modes are refused.

use crate::error::Result;
use crate::outcome::{FailKind, Outcome};
use crate::results::{CellResult, RunRecord};
use crate::rules::{self, NoiseFloors, Stats, Status};
use crate::scenario::Timing;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `{backend}-{fs}-{mapping}-{workload}`.
    pub cell: String,
    /// The metric this row judges (`fast_mb_per_s`, ...); empty for an
    /// outcome verdict or when nothing was measured.
    pub metric: String,
    pub timing: Option<Timing>,
    pub from_variant: String,
    pub to_variant: String,
    pub verdict: Status,
    /// Outcome counts, e.g. `HANG 3/3 (INFO: task hung in ...)`.
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub stats: Stats,
    pub noise_floor_pct: f64,
    /// "MB/s" or "ops/s" (said to be virtual time in icount); empty when no throughput was compared.
    pub unit: String,
    /// Why the verdict is what it is, in a few words.
    pub note: String,
}

impl fmt::Display for Verdict {
    /// The verdict label: `THROUGHPUT_REGRESSION(-12.3%)`, `FIXED`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.verdict, self.stats.delta_pct) {
            (Status::ThroughputRegression | Status::ThroughputImprovement, Some(d)) => {
                write!(f, "{}({:+.1}%)", self.verdict.as_str(), d)
            }
            _ => f.write_str(self.verdict.as_str()),
        }
    }
}

/// One side of a [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The baseline (the first variant, or the older run).
    From,
    /// The side compared with it.
    To,
}

impl Verdict {
    /// One side's median with its interval and unit, as every report
    /// prints it: `874 [870, 880] MB/s (virtual time)`, `-` when not measured.
    pub fn median_text(&self, side: Side) -> String {
        let (m, ci) = match side {
            Side::From => (self.stats.from_median, self.stats.from_median_ci),
            Side::To => (self.stats.to_median, self.stats.to_median_ci),
        };
        match (m, ci) {
            (Some(m), Some([lo, hi])) => format!("{} [{}, {}] {}", num(m), num(lo), num(hi), self.unit),
            (Some(m), None) => format!("{} {}", num(m), self.unit),
            _ => "-".into(),
        }
    }
}

/// Variants in order of first appearance.
fn variants(rec: &RunRecord) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    for c in &rec.cells {
        if !v.contains(&c.variant.as_str()) {
            v.push(&c.variant);
        }
    }
    v
}

/// Cell keys in order of first appearance.
fn cells(rec: &RunRecord) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in &rec.cells {
        let k = c.key().axes();
        if !v.contains(&k) {
            v.push(k);
        }
    }
    v
}

fn runs<'a>(rec: &'a RunRecord, variant: &str, cell: &str) -> Vec<&'a CellResult> {
    rec.cells.iter().filter(|c| c.variant == variant && c.key().axes() == cell).collect()
}

/// Every non-baseline variant against the first variant, cell by cell.
pub fn compare_variants(rec: &RunRecord, floors: &NoiseFloors) -> Result<Vec<Verdict>> {
    let vs = variants(rec);
    let Some((base, others)) = vs.split_first() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for cell in cells(rec) {
        let from = runs(rec, base, &cell);
        for to in others {
            out.extend(compare_groups(&cell, base, &from, to, &runs(rec, to, &cell), floors)?);
        }
    }
    Ok(out)
}

/// The same variant and cell in `old` against `new`; variants are named
/// `variant@run_id`. Cells present in only one record are NEW_CELL or
/// INCONCLUSIVE.
pub fn compare_runs(old: &RunRecord, new: &RunRecord, floors: &NoiseFloors) -> Result<Vec<Verdict>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for rec in [old, new] {
        for c in &rec.cells {
            let p = (c.variant.clone(), c.key().axes());
            if !pairs.contains(&p) {
                pairs.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for (v, cell) in &pairs {
        out.extend(compare_groups(
            cell,
            &format!("{v}@{}", old.run_id),
            &runs(old, v, cell),
            &format!("{v}@{}", new.run_id),
            &runs(new, v, cell),
            floors,
        )?);
    }
    Ok(out)
}

/// The verdict rows of two groups of runs of the same cell: one for a
/// change of outcome, else one per metric. An error when the groups were
/// measured in different timing modes.
pub fn compare_groups(
    cell: &str,
    from_variant: &str,
    from: &[&CellResult],
    to_variant: &str,
    to: &[&CellResult],
    floors: &NoiseFloors,
) -> Result<Vec<Verdict>> {
    let timing = rules::same_timing(&format!("compare: cell {cell}"), &[(from_variant, from), (to_variant, to)])?;
    let row = |metric: &str, verdict: Status, note: String, stats: Stats| Verdict {
        cell: cell.to_string(),
        metric: metric.to_string(),
        timing,
        from_variant: from_variant.to_string(),
        to_variant: to_variant.to_string(),
        verdict,
        from: outcome_counts(from),
        to: outcome_counts(to),
        stats,
        noise_floor_pct: timing.map_or(0.0, |t| floors.get(t, metric)),
        unit: crate::results::row_unit(timing, metric),
        note,
    };
    if let Some((status, note)) = rules::outcome_rule(&rules::state(from), &rules::state(to)) {
        return Ok(vec![row("", status, note, Stats::default())]);
    }
    let metrics = rules::metric_names(&[from, to]);
    if metrics.is_empty() {
        return Ok(vec![row("", Status::NoChange, "all pass, no throughput measured".into(), Stats::default())]);
    }
    Ok(metrics
        .iter()
        .map(|m| {
            let floor = timing.map_or(0.0, |t| floors.get(t, m));
            let (status, note, stats) = rules::throughput_rule(&rules::samples(from, m), &rules::samples(to, m), floor);
            row(m, status, note, stats)
        })
        .collect())
}

/// `PASS 3/5, WARN 2/5 (WARNING in foo)`: counts per outcome (FAIL shown as
/// its kind), most frequent first, each failure with its most frequent title.
pub fn outcome_counts(rs: &[&CellResult]) -> String {
    if rs.is_empty() {
        return "no runs".into();
    }
    let mut groups: Vec<Group> = Vec::new();
    for r in rs {
        let (label, order) = label(r);
        let i = match groups.iter().position(|g| g.label == label) {
            Some(i) => i,
            None => {
                groups.push(Group { label, order, count: 0, titles: Vec::new() });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        g.count += 1;
        if let Some(t) = r.title.as_deref().filter(|_| r.outcome != Outcome::Pass) {
            match g.titles.iter_mut().find(|(x, _)| *x == t) {
                Some(e) => e.1 += 1,
                None => g.titles.push((t, 1)),
            }
        }
    }
    groups.sort_by_key(|g| (std::cmp::Reverse(g.count), g.order));
    let n = rs.len();
    let parts: Vec<String> = groups
        .iter_mut()
        .map(|g| {
            let mut s = format!("{} {}/{n}", g.label, g.count);
            // Stable sort: the first-seen title wins a tie.
            g.titles.sort_by_key(|t| std::cmp::Reverse(t.1));
            if let Some((t, _)) = g.titles.first() {
                s += &format!(" ({t}");
                if g.titles.len() > 1 {
                    s += &format!("; +{} other", g.titles.len() - 1);
                }
                s += ")";
            }
            s
        })
        .collect();
    parts.join(", ")
}

/// Runs of one outcome label within a group of runs.
struct Group<'a> {
    label: &'static str,
    /// Tie-break when counts are equal: PASS, then failures by severity.
    order: usize,
    count: usize,
    /// Distinct titles with how often each was seen.
    titles: Vec<(&'a str, usize)>,
}

/// A run's label (its kind for a FAIL with one, else its outcome) and its order.
fn label(r: &CellResult) -> (&'static str, usize) {
    match (r.outcome, r.kind) {
        (Outcome::Fail, Some(k)) => {
            let order = match k {
                FailKind::Crash => 1,
                FailKind::Hang => 2,
                FailKind::DataCorruption => 3,
                FailKind::IoError => 4,
                FailKind::Warn => 5,
            };
            (k.as_str(), order)
        }
        (o, _) => {
            let order = match o {
                Outcome::Pass => 0,
                Outcome::Fail => 6,
                Outcome::Error => 7,
                Outcome::Miss => 8,
                Outcome::Skip => 9,
            };
            (o.as_str(), order)
        }
    }
}

/// A Markdown table of the verdicts, readable as plain text too, followed
/// by the noise floor(s) used.
pub fn render_table(verdicts: &[Verdict]) -> String {
    let mut rows =
        vec![["cell", "metric", "from → to", "outcomes", "from median [95% CI]", "to median [95% CI]", "Δ% [95% CI]", "p", "verdict"]
            .map(String::from)];
    for v in verdicts {
        let st = &v.stats;
        rows.push([
            v.cell.clone(),
            if v.metric.is_empty() { "-".into() } else { v.metric.clone() },
            format!("{} → {}", v.from_variant, v.to_variant),
            format!("{} → {}", v.from, v.to),
            v.median_text(Side::From),
            v.median_text(Side::To),
            st.delta_text(),
            st.p_value.map_or("-".into(), |p| format!("{p:.3}")),
            v.to_string(),
        ]);
    }
    // A '|' or a newline in a title would split a Markdown cell; titles
    // come from the guest.
    for r in rows.iter_mut() {
        for c in r.iter_mut() {
            *c = crate::text::visible(c).replace('|', "\\|").replace('\n', " ");
        }
    }
    let widths: Vec<usize> = (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap()).collect();
    let line = |r: &[String; 9]| {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&rows[0]);
    out += &format!("|{}|\n", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
    for r in &rows[1..] {
        out += &line(r);
    }
    let mut floors: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.metric.is_empty())
        .filter_map(|v| v.timing.map(|t| format!("{} {:.2}% in {t} timing", v.metric, v.noise_floor_pct)))
        .collect();
    floors.sort();
    floors.dedup();
    if !floors.is_empty() {
        out += &format!("\nnoise floor: {}\n", floors.join(", "));
    }
    if verdicts.iter().any(|v| v.timing == Some(Timing::Icount) && !v.metric.is_empty()) {
        out += "icount figures are per virtual second (guest time = instructions executed, 1 ns each): a CPU-cost measure, not host throughput.\n";
    }
    out
}

/// Throughput with 3 significant digits, never in exponent form.
fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests;
