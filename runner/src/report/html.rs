//! report.html: one self-contained page (inline CSS and SVG, no script, no
//! network) with, per run, the outcome matrix coloured by nightly status —
//! rows variant/backend-fs-mapping, columns workloads, each cell linking its
//! console logs — and per cell a throughput chart over the history window:
//! the median of each night with its 95 % bootstrap band.

use crate::nightly::{CellVerdict, RunReport, Status};
use crate::outcome::Outcome;
use crate::results::{CellResult, RunRecord};
use crate::text::visible;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Text for HTML: markup characters as entities, hidden ones made visible
/// ([`super::visible`]).
pub fn esc(s: &str) -> String {
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
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{border:1px solid #ccc;padding:4px}.chart h4{margin:0;font-size:.8em;font-weight:normal}";

/// report.html of `reports`; `run_dirs[i]` is where `reports[i]`'s run is
/// stored, relative to report.html's folder (its console links).
pub fn render(reports: &[RunReport], run_dirs: &[PathBuf]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kregress nightly</title><style>{CSS}</style></head><body>\n<h1 id=\"headline\">{}</h1>\n<div class=\"legend\">",
        esc(&super::headline(reports))
    );
    for s in [Status::NewFailure, Status::ChangedFailure, Status::ThroughputRegression, Status::StillFailing, Status::Fixed, Status::ThroughputImprovement, Status::NoChange, Status::NewCell, Status::Inconclusive] {
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
    h.push_str("</table>\n<h3>Throughput over the last nights</h3>\n<div class=\"charts\">\n");
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
    let _ = write!(h, "<td style=\"background:{}\" title=\"{}\"><div class=\"st\">{}</div><div>{}</div>", colour(worst.status), esc(&notes.join("; ")), worst.status.as_str(), esc(&worst.new));
    if let Some(t) = &worst.new_title {
        let _ = write!(h, "<div class=\"t\">{}</div>", esc(t));
    }
    if let Some(t) = worst.timing {
        let _ = write!(h, "<div class=\"t\">timing: {}</div>", if t == crate::scenario::Timing::Icount { "icount (virtual time)" } else { "wall" });
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
        let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{fill}\"><title>{}: {:.1} [{:.1}, {:.1}]</title></circle>", x(*i), y(p.median), esc(&p.label), p.median, p.lo, p.hi);
    }
    // Nights without a PASS sample (failed or not run) are marked on the axis.
    for i in 0..nights.len() {
        if !pts.iter().any(|(j, _)| *j == i) {
            let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#d62728\" text-anchor=\"middle\">×</text>", x(i), ht - bottom - 2.0);
        }
    }
    if let (Some((_, f)), Some((_, l))) = (pts.first(), pts.last()) {
        let _ = write!(s, "<text x=\"{left}\" y=\"{}\" font-size=\"9\">{}</text><text x=\"{}\" y=\"{0}\" font-size=\"9\" text-anchor=\"end\">{}</text>", ht - 8.0, esc(&f.label), w - right, esc(&l.label));
    }
    s.push_str("</svg>");
    Some(s)
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
}
