//! Human-readable outputs of a run: the cell table and the verdicts, for the
//! terminal and for results/<run-id>/summary.md (the same text).

use crate::compare::{self, Verdict};
use crate::results::RunRecord;

/// The noise floor for `rec`: the A/A spread of the baseline variant's runs
/// (odd vs even runs) when there are enough, never below the default.
pub fn noise_floor(rec: &RunRecord) -> (f64, String) {
    let base = rec.cells.first().map(|c| c.variant.clone()).unwrap_or_default();
    match compare::noise_floor_from_aa(rec, &base) {
        Some(aa) => (
            aa.max(compare::DEFAULT_NOISE_FLOOR_PCT),
            format!("{:.1}% (A/A spread of {base}'s odd vs even runs: {aa:.1}%; never below {:.1}%)", aa.max(compare::DEFAULT_NOISE_FLOOR_PCT), compare::DEFAULT_NOISE_FLOOR_PCT),
        ),
        None => (compare::DEFAULT_NOISE_FLOOR_PCT, format!("default {:.1}% (too few runs for an A/A estimate)", compare::DEFAULT_NOISE_FLOOR_PCT)),
    }
}

/// The cells of a run, one line each, with `unexpected(cell)` marked.
pub fn cells_table(rec: &RunRecord, unexpected: impl Fn(&crate::results::CellResult) -> bool) -> String {
    let mut out = String::from("| cell | outcome | kind | throughput | title |\n|---|---|---|---|---|\n");
    for c in &rec.cells {
        let perf = match (c.mb_per_s, c.ops_per_s) {
            (Some(m), _) => format!("{m:.0} MB/s"),
            (None, Some(o)) => format!("{o:.0} ops/s"),
            _ => String::new(),
        };
        let kind = c.kind.map(|k| serde_json::to_value(k).unwrap().as_str().unwrap_or("").to_string()).unwrap_or_default();
        let outcome = serde_json::to_value(c.outcome).unwrap().as_str().unwrap_or("").to_string();
        out += &format!(
            "| {} | {}{} | {} | {} | {} |\n",
            c.id(),
            outcome,
            if unexpected(c) { " (unexpected)" } else { "" },
            kind,
            perf,
            c.title.as_deref().unwrap_or("").replace('|', "\\|")
        );
    }
    out
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
    out
}
