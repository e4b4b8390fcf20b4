//! report.html: self-contained pages (inline CSS and SVG, no script, no
//! network). The nightly report ([`render`]) has, per run, the outcome
//! matrix coloured by nightly status — rows variant/backend-fs-mapping,
//! columns workloads, each cell linking its console logs — the run's A/B
//! verdicts ([`ab_section`]) and per cell a throughput chart over the
//! history window: the median of each night with its 95 % bootstrap band.
//! Every run's own page ([`run_page`], `results/<run-id>/report.html`) has
//! its A/B verdicts and its cells. The A/B verdicts are the ones summary.md
//! tables ([`crate::compare::render_table`]): one source, two renderers.

use crate::compare::{Side, Verdict};
use crate::nightly::{CellVerdict, RunReport, Status};
use crate::outcome::Outcome;
use crate::results::{CellResult, RunRecord};
use crate::text::visible;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Text for HTML: markup characters as entities, hidden ones made visible
/// ([`super::visible`]).
pub(crate) fn esc(s: &str) -> String {
    visible(s).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn colour(s: Status) -> &'static str {
    match s {
        Status::NewFailure | Status::ChangedFailure => "#f8b4b4",
        Status::ThroughputRegression => "#fcd9a8",
        Status::StillFailing => "#e8c4e8",
        Status::Fixed | Status::ThroughputImprovement => "#b7e4c7",
        Status::NoChange => "#eef5ee",
        Status::NewCell => "#cfe2ff",
        Status::Inconclusive => "#e0e0e0",
    }
}

const CSS: &str = "body{font:14px/1.4 sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{margin-top:1.6em}\
table.matrix{border-collapse:collapse}table.matrix th,table.matrix td{border:1px solid #999;padding:4px 6px;vertical-align:top;text-align:left}\
td .st{font-weight:bold;font-size:.85em}td .t{font-size:.8em;max-width:22em}.legend span{display:inline-block;padding:2px 6px;margin:2px;border:1px solid #999;font-size:.8em}\
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{border:1px solid #ccc;padding:4px}.chart h4{margin:0;font-size:.8em;font-weight:normal}\
table.ab,table.cells{border-collapse:collapse;font-size:.9em}table.ab th,table.ab td,table.cells th,table.cells td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:middle}\
table.ab td.v{font-weight:bold}table.ab td.g{padding:0}table.ab td.o{max-width:28em;font-size:.85em}table.ab td.d,table.ab td.m{white-space:nowrap}";

/// report.html of `reports`; `run_dirs[i]` is where `reports[i]`'s run is
/// stored, relative to report.html's folder (its console links).
pub(crate) fn render(reports: &[RunReport], run_dirs: &[PathBuf]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kregress nightly</title><style>{CSS}</style></head><body>\n<h1 id=\"headline\">{}</h1>\n<div class=\"legend\">",
        esc(&super::headline(reports))
    );
    for s in [
        Status::NewFailure,
        Status::ChangedFailure,
        Status::ThroughputRegression,
        Status::StillFailing,
        Status::Fixed,
        Status::ThroughputImprovement,
        Status::NoChange,
        Status::NewCell,
        Status::Inconclusive,
    ] {
        let _ = write!(h, "<span style=\"background:{}\">{}</span>", colour(s), s.as_str());
    }
    h += "</div>\n";
    for (r, dir) in reports.iter().zip(run_dirs) {
        section(&mut h, r, dir);
    }
    h += "</body></html>\n";
    h
}

fn section(h: &mut String, r: &RunReport, dir: &Path) {
    let _ = write!(
        h,
        "<h2>{} — run {}</h2>\n<p>Baseline: {}. Noise floor {}. Figures measured in icount timing are per <em>virtual</em> second (guest time = instructions executed, 1 ns each).</p>\n",
        esc(&r.rec.scenario),
        esc(&r.rec.run_id),
        r.baseline.as_ref().map_or("none".to_string(), |b| format!("run {} ({})", esc(&b.run_id), esc(&b.started))),
        esc(&r.floors.note())
    );
    let (mut rows, mut cols): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let all: Vec<&CellResult> = r.rec.cells.iter().chain(r.baseline.iter().flat_map(|b| &b.cells)).collect();
    for c in &all {
        if !rows.contains(&c.key().row()) {
            rows.push(c.key().row());
        }
        if !cols.contains(&c.workload) {
            cols.push(c.workload.clone());
        }
    }
    let _ = write!(h, "<table class=\"matrix\"><tr><th>cell</th>");
    for w in &cols {
        let _ = write!(h, "<th>{}</th>", esc(w));
    }
    h.push_str("</tr>\n");
    for row in &rows {
        let _ = write!(h, "<tr><th>{}</th>", esc(row));
        for w in &cols {
            let name = format!("{row}-{w}");
            let vs: Vec<&CellVerdict> = r.verdicts.iter().filter(|v| v.cell == name).collect();
            if vs.is_empty() {
                h.push_str("<td></td>");
            } else {
                matrix_cell(h, r, &vs, dir);
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if let Some(v) = r.ab.first() {
        let _ = writeln!(h, "<h3>A/B within the run: each variant against {}</h3>", esc(&v.from_variant));
        h.push_str(&ab_section(&r.ab));
    }
    h.push_str("<h3>Throughput over the last nights</h3>\n<div class=\"charts\">\n");
    let mut nights: Vec<&RunRecord> = r.history.iter().collect();
    nights.push(&r.rec);
    // A chart per cell and metric measured tonight, whatever its verdict.
    let mut series: Vec<Series> = Vec::new();
    for c in &r.rec.cells {
        for m in c.metrics.keys() {
            let name = c.key().name();
            if !series.iter().any(|s| s.cell == name && s.metric == *m) {
                let regressed = r.verdicts.iter().any(|v| v.cell == name && v.metric == *m && v.status == Status::ThroughputRegression);
                series.push(Series { cell: name, metric: m.clone(), timing: c.timing, regressed });
            }
        }
    }
    for sr in &series {
        if let Some(svg) = chart(sr, &nights) {
            let unit = crate::results::row_unit(Some(sr.timing), &sr.metric);
            let _ = writeln!(h, "<div class=\"chart\"><h4>{} {} ({})</h4>{svg}</div>", esc(&sr.cell), esc(&sr.metric), esc(&unit));
        }
    }
    h.push_str("</div>\n");
}

/// How bad a status is, for the colour of a matrix cell with several rows.
fn rank(s: Status) -> u8 {
    match s {
        Status::NewFailure | Status::ChangedFailure => 0,
        Status::ThroughputRegression => 1,
        Status::StillFailing => 2,
        Status::Inconclusive => 3,
        Status::Fixed | Status::ThroughputImprovement => 4,
        Status::NewCell => 5,
        Status::NoChange => 6,
    }
}

/// One matrix cell: coloured by its worst row, every metric row listed.
fn matrix_cell(h: &mut String, r: &RunReport, vs: &[&CellVerdict], dir: &Path) {
    let worst = vs.iter().min_by_key(|v| rank(v.status)).unwrap();
    let notes: Vec<&str> = vs.iter().map(|v| v.note.as_str()).collect();
    let _ = write!(
        h,
        "<td style=\"background:{}\" title=\"{}\"><div class=\"st\">{}</div><div>{}</div>",
        colour(worst.status),
        esc(&notes.join("; ")),
        worst.status.as_str(),
        esc(&worst.new)
    );
    if let Some(t) = &worst.new_title {
        let _ = write!(h, "<div class=\"t\">{}</div>", esc(t));
    }
    if let Some(t) = worst.timing {
        let _ = write!(
            h,
            "<div class=\"t\">timing: {}</div>",
            if t == crate::scenario::Timing::Icount { "icount (virtual time)" } else { "wall" }
        );
    }
    for v in vs.iter().filter(|v| !v.metric.is_empty()) {
        let _ = write!(h, "<div class=\"t\">{} {}", esc(&v.metric), v.status.as_str());
        if let (Some(d), Some(lo), Some(hi)) = (v.stats.delta_pct, v.stats.ci_low, v.stats.ci_high) {
            let _ = write!(h, " {d:+.1}% [{lo:+.1}, {hi:+.1}]");
        }
        h.push_str("</div>");
    }
    let links: Vec<String> = r
        .runs(&worst.cell)
        .iter()
        .map(|c| {
            let href = dir.join(c.key().id()).join("console.log");
            format!("<a href=\"{}\">console run{}</a>", esc(&href.display().to_string()), c.run)
        })
        .collect();
    let _ = write!(h, "<div class=\"t\">{}</div></td>", links.join(" "));
}

/// One night's point: median and 95 % band of its PASS samples.
struct Point {
    label: String,
    median: f64,
    lo: f64,
    hi: f64,
}

/// One metric of one cell over the nights.
struct Series {
    cell: String,
    metric: String,
    timing: crate::scenario::Timing,
    /// Tonight's verdict on it is a THROUGHPUT_REGRESSION.
    regressed: bool,
}

/// An SVG line chart of one metric of the cell per night (nights measured
/// in the same timing mode only) with its band; `None` when no night measured it.
fn chart(v: &Series, nights: &[&RunRecord]) -> Option<String> {
    let unit = crate::results::row_unit(Some(v.timing), &v.metric);
    let mut pts: Vec<(usize, Point)> = Vec::new();
    for (i, n) in nights.iter().enumerate() {
        let xs: Vec<f64> = n
            .cells
            .iter()
            .filter(|c| c.key().name() == v.cell && c.outcome == Outcome::Pass)
            .filter(|c| c.timing == v.timing)
            .filter_map(|c| c.metrics.get(&v.metric).copied())
            .collect();
        if xs.is_empty() {
            continue;
        }
        let m = crate::stats::median(&xs);
        let [lo, hi] = crate::stats::bootstrap_median_ci(&xs).unwrap_or([m, m]);
        pts.push((i, Point { label: n.started.get(5..16).unwrap_or(&n.started).replace('T', " "), median: m, lo, hi }));
    }
    if pts.is_empty() {
        return None;
    }
    let (w, ht, left, right, top, bottom) = (320.0, 150.0, 46.0, 10.0, 10.0, 30.0);
    let ymax = pts.iter().map(|(_, p)| p.hi).fold(f64::MIN, f64::max) * 1.1;
    let ymin = 0.0;
    let n = nights.len().max(2) as f64;
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1.0);
    let y = |val: f64| top + (ht - top - bottom) * (1.0 - (val - ymin) / (ymax - ymin).max(1e-9));
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\"><title>{} {} ({})</title>", esc(&v.cell), esc(&v.metric), esc(&unit));
    // Axes with the top value and the unit.
    let _ = write!(s, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#888\"/>", ht - bottom, w - right);
    // The values right-aligned on the axis, the unit along it.
    let _ = write!(
        s,
        "<text x=\"{0}\" y=\"{1}\" font-size=\"9\" text-anchor=\"end\">{2:.0}</text><text x=\"{0}\" y=\"{3}\" font-size=\"9\" text-anchor=\"end\">0</text><text class=\"unit\" transform=\"translate(9 {4}) rotate(-90)\" font-size=\"8\" text-anchor=\"middle\">{5}</text>",
        left - 3.0,
        top + 8.0,
        ymax,
        ht - bottom,
        (top + ht - bottom) / 2.0,
        esc(&unit)
    );
    // The band: upper edge left to right, lower edge back.
    if pts.len() > 1 {
        let mut poly: Vec<String> = pts.iter().map(|(i, p)| format!("{:.1},{:.1}", x(*i), y(p.hi))).collect();
        poly.extend(pts.iter().rev().map(|(i, p)| format!("{:.1},{:.1}", x(*i), y(p.lo))));
        let _ = write!(s, "<polygon class=\"band\" points=\"{}\" fill=\"#9ecae1\" fill-opacity=\"0.45\" stroke=\"none\"/>", poly.join(" "));
        let line: Vec<String> = pts.iter().map(|(i, p)| format!("{:.1},{:.1}", x(*i), y(p.median))).collect();
        let _ = write!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"#2171b5\" stroke-width=\"1.5\"/>", line.join(" "));
    }
    for (i, p) in &pts {
        // Error bar too, so a single night still shows its interval.
        let _ = write!(s, "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"#2171b5\"/>", x(*i), y(p.lo), y(p.hi));
        let last = *i + 1 == nights.len();
        let fill = if last && v.regressed { "#d62728" } else { "#2171b5" };
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{fill}\"><title>{}: {:.1} [{:.1}, {:.1}]</title></circle>",
            x(*i),
            y(p.median),
            esc(&p.label),
            p.median,
            p.lo,
            p.hi
        );
    }
    // Nights without a PASS sample (failed or not run) are marked on the axis.
    for i in 0..nights.len() {
        if !pts.iter().any(|(j, _)| *j == i) {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#d62728\" text-anchor=\"middle\">×</text>",
                x(i),
                ht - bottom - 2.0
            );
        }
    }
    if let (Some((_, f)), Some((_, l))) = (pts.first(), pts.last()) {
        let _ = write!(
            s,
            "<text x=\"{left}\" y=\"{}\" font-size=\"9\">{}</text><text x=\"{}\" y=\"{0}\" font-size=\"9\" text-anchor=\"end\">{}</text>",
            ht - 8.0,
            esc(&f.label),
            w - right,
            esc(&l.label)
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// The page of one finished run (results/<run-id>/report.html, beside
/// summary.md): its A/B verdicts drawn, then its cells with their console
/// logs. The same data as summary.md ([`super::summary_md`]).
pub fn run_page(rec: &RunRecord, verdicts: &[Verdict], floor_note: &str, unexpected: impl Fn(&CellResult) -> bool) -> String {
    let title = format!("{} — run {}", rec.scenario, rec.run_id);
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title><style>{CSS}</style></head><body>\n<h1 id=\"headline\">{0}</h1>\n<p>{1} cells, {2} not as expected. Noise floor: {3}.</p>\n",
        esc(&title),
        rec.cells.len(),
        rec.cells.iter().filter(|c| unexpected(c)).count(),
        esc(floor_note)
    );
    if let Some(v) = verdicts.first() {
        let _ = writeln!(h, "<h2>A/B: each variant against {}</h2>", esc(&v.from_variant));
        h.push_str(&ab_section(verdicts));
    }
    h.push_str("<h2>Cells</h2>\n<table class=\"cells\"><tr><th>cell</th><th>timing</th><th>outcome</th><th>kind</th><th>throughput</th><th>title</th></tr>\n");
    for c in &rec.cells {
        let id = c.key().id();
        let _ = writeln!(
            h,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&format!("{id}/console.log")),
            esc(&id),
            c.timing,
            c.outcome,
            if unexpected(c) { " <strong>(unexpected)</strong>" } else { "" },
            c.kind.map_or("", |k| k.as_str()),
            esc(&super::metrics_text(c)),
            esc(c.title.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

/// Width and height of one row's interval chart, in pixels.
const AB_W: f64 = 280.0;
const AB_H: f64 = 18.0;
/// The widest change the A/B charts show, in percent; an interval beyond
/// it is cut there and marked with an arrowhead.
const AB_MAX_PCT: f64 = 50.0;

/// The A/B verdicts of a run as a table with a chart column: per row (a
/// cell, or a metric of it when both sides pass) the variants, their
/// outcomes, the verdict (coloured as in the matrix), the change of the
/// median with its 95 % interval and medians, and an interval bar around
/// zero on one scale for the whole table, with the noise floor shaded:
/// a change counts when its bar clears zero and the dot is outside the
/// shade.
pub fn ab_section(verdicts: &[Verdict]) -> String {
    let scale = ab_scale(verdicts);
    let mut h = String::from(
        "<p>The same verdicts as summary.md. Bar: the 95 % bootstrap interval of the change of the median boot, dot: the change; grey: the noise floor. \
         A change counts only when its interval excludes 0 and it is larger than the floor.</p>\n",
    );
    let _ = writeln!(
        h,
        "<table class=\"ab\"><tr><th>cell</th><th>metric</th><th>variants</th><th>outcomes</th><th>verdict</th><th>change [95% CI]</th><th>medians</th><th class=\"g\">{}</th></tr>",
        ab_axis(scale)
    );
    for v in verdicts {
        let medians = match (v.median_text(Side::From), v.median_text(Side::To)) {
            (a, b) if a == "-" && b == "-" => a,
            (a, b) => format!("{a} → {b}"),
        };
        let _ = writeln!(
            h,
            "<tr class=\"ab-row\" title=\"{}\"><td>{}</td><td>{}</td><td>{} → {}</td><td class=\"o\">{} → {}</td><td class=\"v\" style=\"background:{}\">{}</td><td class=\"d\">{}</td><td class=\"m\">{}</td><td class=\"g\">{}</td></tr>",
            esc(&v.note),
            esc(&v.cell),
            esc(if v.metric.is_empty() { "-" } else { &v.metric }),
            esc(&v.from_variant),
            esc(&v.to_variant),
            esc(&v.from),
            esc(&v.to),
            colour(v.verdict),
            esc(&v.to_string()),
            esc(&v.stats.delta_text()),
            esc(&medians),
            ab_bar(v, scale)
        );
    }
    h.push_str("</table>\n");
    h
}

/// The half-width of the A/B charts' scale, in percent: the largest
/// change, interval end or noise floor of the table, rounded up to 1, 2 or
/// 5 times a power of ten, at least 5 %, at most [`AB_MAX_PCT`].
fn ab_scale(verdicts: &[Verdict]) -> f64 {
    let widest = verdicts
        .iter()
        .filter(|v| !v.metric.is_empty())
        .flat_map(|v| [v.stats.delta_pct, v.stats.ci_low, v.stats.ci_high, Some(v.noise_floor_pct)])
        .flatten()
        .filter(|x| x.is_finite())
        .fold(5.0_f64, |m, x| m.max(x.abs()));
    let p = 10f64.powf(widest.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0].iter().map(|k| k * p).find(|n| *n >= widest).unwrap_or(10.0 * p);
    nice.min(AB_MAX_PCT)
}

/// x of `pct` in an A/B chart of half-width `scale`, cut at its edges.
fn ab_x(pct: f64, scale: f64) -> f64 {
    let pad = 6.0;
    pad + (AB_W - 2.0 * pad) * (pct.clamp(-scale, scale) + scale) / (2.0 * scale)
}

/// The scale of the A/B charts, for the column's head.
fn ab_axis(scale: f64) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ab-axis\" width=\"{AB_W}\" height=\"{AB_H}\" viewBox=\"0 0 {AB_W} {AB_H}\">"
    );
    for (k, anchor) in [(-1.0, "start"), (-0.5, "middle"), (0.0, "middle"), (0.5, "middle"), (1.0, "end")] {
        let pct = k * scale;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"13\" font-size=\"10\" text-anchor=\"{anchor}\">{}</text>",
            ab_x(pct, scale),
            if pct == 0.0 { "0".to_string() } else { format!("{pct:+}%") }
        );
    }
    s.push_str("</svg>");
    s
}

/// One A/B row's chart: for a metric, zero with the noise floor shaded
/// around it, the interval as a bar and the change as a dot in the
/// verdict's colour; an outcome row says it is one.
fn ab_bar(v: &Verdict, scale: f64) -> String {
    let mid = AB_H / 2.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ab-bar\" width=\"{AB_W}\" height=\"{AB_H}\" viewBox=\"0 0 {AB_W} {AB_H}\" role=\"img\"><title>{} {}: {} ({})</title>",
        esc(&v.cell),
        esc(&v.metric),
        esc(&v.stats.delta_text()),
        esc(&v.to_string())
    );
    if !v.metric.is_empty() {
        let (a, b) = (ab_x(-v.noise_floor_pct, scale), ab_x(v.noise_floor_pct, scale));
        let _ = write!(s, "<rect class=\"floor\" x=\"{a:.1}\" y=\"0\" width=\"{:.1}\" height=\"{AB_H}\" fill=\"#ddd\"><title>noise floor ±{:.2}%</title></rect>", b - a, v.noise_floor_pct);
        let _ = write!(s, "<line class=\"zero\" x1=\"{0:.1}\" y1=\"0\" x2=\"{0:.1}\" y2=\"{AB_H}\" stroke=\"#666\"/>", ab_x(0.0, scale));
    }
    let ink = match v.verdict {
        Status::ThroughputRegression | Status::NewFailure | Status::ChangedFailure => "#d62728",
        Status::ThroughputImprovement | Status::Fixed => "#2ca02c",
        Status::NoChange => "#2171b5",
        _ => "#777",
    };
    let st = &v.stats;
    let mut cuts = String::new();
    if let (Some(lo), Some(hi)) = (st.ci_low, st.ci_high) {
        let (x1, x2) = (ab_x(lo, scale), ab_x(hi, scale));
        let _ =
            write!(s, "<line class=\"ci\" x1=\"{x1:.1}\" y1=\"{mid}\" x2=\"{x2:.1}\" y2=\"{mid}\" stroke=\"{ink}\" stroke-width=\"3\"/>");
        for (end, x) in [(lo, x1), (hi, x2)] {
            if end.abs() > scale {
                // Cut at the edge: an arrowhead pointing on, drawn over the dot.
                let dir = end.signum();
                let _ = write!(
                    cuts,
                    "<polygon class=\"cut\" points=\"{:.1},{mid} {:.1},{:.1} {:.1},{:.1}\" fill=\"{ink}\" stroke=\"#fff\"/>",
                    x + dir * 6.0,
                    x - dir * 2.0,
                    mid - 6.0,
                    x - dir * 2.0,
                    mid + 6.0
                );
            } else {
                let _ = write!(s, "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{ink}\"/>", mid - 4.0, mid + 4.0);
            }
        }
    }
    match st.delta_pct {
        Some(d) => {
            let _ =
                write!(s, "<circle class=\"delta\" cx=\"{:.1}\" cy=\"{mid}\" r=\"3.5\" fill=\"{ink}\" stroke=\"#fff\"/>", ab_x(d, scale));
        }
        None => {
            let what = if v.metric.is_empty() { "outcome verdict, no throughput compared" } else { "no change measured" };
            let _ = write!(s, "<text x=\"6\" y=\"13\" font-size=\"10\" fill=\"#555\">{what}</text>");
        }
    }
    s += &cuts;
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Timing;

    /// The race's chart: its axis says ops/s in the words every other
    /// report gives the metric ([`crate::results::row_unit`]), timing mode included.
    #[test]
    fn a_chart_is_labelled_in_its_metric_s_unit() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/20261126-162904-bio-release-devmap-wakeup");
        let mut rec = crate::results::load(&dir).unwrap();
        for (timing, unit) in [(Timing::Wall, "ops/s"), (Timing::Icount, "ops/s (virtual time)")] {
            rec.cells.iter_mut().for_each(|c| c.timing = timing);
            let race = rec.cells.iter().find(|c| c.metrics.contains_key("ops_per_s")).unwrap();
            assert_eq!(race.workload, "truncate-during-dio");
            let svg = chart(&Series { cell: race.key().name(), metric: "ops_per_s".into(), timing, regressed: false }, &[&rec]).unwrap();
            // The words of the chart, read back with an XML reader.
            let (mut texts, mut rd, mut inside) = (Vec::new(), quick_xml::Reader::from_str(&svg), false);
            loop {
                match rd.read_event().unwrap() {
                    quick_xml::events::Event::Start(e) => inside = e.name().as_ref() == b"text",
                    quick_xml::events::Event::Text(t) if inside => texts.push(t.decode().unwrap().into_owned()),
                    quick_xml::events::Event::End(_) => inside = false,
                    quick_xml::events::Event::Eof => break,
                    _ => {}
                }
            }
            assert!(texts.iter().any(|t| t == unit) && !texts.iter().any(|t| t.contains("MB/s")), "{texts:?}");
            assert!(svg.contains(&format!(" ops_per_s ({unit})</title>")), "{svg}");
            assert_eq!(crate::results::row_unit(Some(timing), "ops_per_s"), unit);
        }
    }

    fn verdict(status: Status, d: f64, lo: f64, hi: f64, floor: f64) -> Verdict {
        Verdict {
            cell: "memmap-ext4-pte-dio-read".into(),
            metric: "fast_mb_per_s".into(),
            timing: Some(Timing::Icount),
            from_variant: "stock".into(),
            to_variant: "fixed".into(),
            verdict: status,
            from: "PASS 3/3".into(),
            to: "PASS 3/3".into(),
            stats: crate::rules::Stats { delta_pct: Some(d), ci_low: Some(lo), ci_high: Some(hi), ..Default::default() },
            noise_floor_pct: floor,
            unit: "MB/s (virtual time)".into(),
            note: String::new(),
        }
    }

    /// One scale per table, from its widest figure, rounded up to 1, 2 or
    /// 5 times a power of ten, from 5 % to 50 %; beyond it an interval is
    /// cut at the edge with an arrowhead.
    #[test]
    fn the_ab_scale_fits_the_table_and_cuts_what_is_wider() {
        let reg = verdict(Status::ThroughputRegression, -12.0, -15.0, -9.0, 1.0);
        assert_eq!(ab_scale(std::slice::from_ref(&reg)), 20.0);
        assert_eq!(ab_scale(&[verdict(Status::NoChange, 0.5, -0.2, 1.1, 1.0)]), 5.0);
        let wide = verdict(Status::ThroughputImprovement, 229.3, 56.2, 413.2, 14.3);
        assert_eq!(ab_scale(&[reg.clone(), wide.clone()]), 50.0);
        let bar = ab_bar(&wide, 50.0);
        assert!(bar.contains(&format!("<line class=\"ci\" x1=\"{:.1}\" y1=\"9\" x2=\"{:.1}\"", ab_x(50.0, 50.0), AB_W - 6.0)), "{bar}");
        assert_eq!(bar.matches("class=\"cut\"").count(), 2, "both ends beyond +50 %: {bar}");
        let right = format!("<polygon class=\"cut\" points=\"{:.1},9 ", AB_W);
        assert_eq!(bar.matches(&right).count(), 2, "both point right: {bar}");
        assert!(bar.contains(&format!("<circle class=\"delta\" cx=\"{:.1}\"", AB_W - 6.0)), "{bar}");
        // Within the scale: no cut, the regression in red.
        let bar = ab_bar(&reg, 20.0);
        assert!(!bar.contains("class=\"cut\"") && bar.contains("stroke=\"#d62728\""), "{bar}");
        assert_eq!(ab_x(0.0, 20.0), AB_W / 2.0);
    }
}
