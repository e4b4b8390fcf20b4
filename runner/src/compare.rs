//! Compares kernel variants cell by cell: the statistics, and the rows the
//! rule book ([`crate::rules`]) decides.
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
use crate::results::{CellResult, FailKind, Outcome, RunRecord};
use crate::rules::{self, NoiseFloors, Stats, Status};
use crate::scenario::Timing;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt;

/// Bootstrap resamples per interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Fixed seed ("kregress" in ASCII) so every interval is reproducible.
pub const BOOTSTRAP_SEED: u64 = 0x6b72_6567_7265_7373;
/// Largest number of rank splits the exact Mann-Whitney test enumerates;
/// above it the normal approximation is used.
pub const MW_EXACT_LIMIT: u64 = 200_000;

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

/// The comparison key of a result: variant and run left out.
pub fn cell_key(r: &CellResult) -> String {
    format!("{}-{}-{}-{}", r.backend, r.fs, r.mapping, r.workload)
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
        let k = cell_key(c);
        if !v.contains(&k) {
            v.push(k);
        }
    }
    v
}

fn runs<'a>(rec: &'a RunRecord, variant: &str, cell: &str) -> Vec<&'a CellResult> {
    rec.cells.iter().filter(|c| c.variant == variant && cell_key(c) == cell).collect()
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
            let p = (c.variant.clone(), cell_key(c));
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

fn label(r: &CellResult) -> (&'static str, usize) {
    match (r.outcome, r.kind) {
        (Outcome::Pass, _) => ("PASS", 0),
        (Outcome::Fail, Some(FailKind::Crash)) => ("CRASH", 1),
        (Outcome::Fail, Some(FailKind::Hang)) => ("HANG", 2),
        (Outcome::Fail, Some(FailKind::DataCorruption)) => ("DATA_CORRUPTION", 3),
        (Outcome::Fail, Some(FailKind::IoError)) => ("IO_ERROR", 4),
        (Outcome::Fail, Some(FailKind::Warn)) => ("WARN", 5),
        (Outcome::Fail, None) => ("FAIL", 6),
        (Outcome::Error, _) => ("ERROR", 7),
        (Outcome::Miss, _) => ("MISS", 8),
        (Outcome::Skip, _) => ("SKIP", 9),
    }
}

/// Median of a non-empty slice (mean of the middle two for even lengths).
pub fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn pct_change(from: f64, to: f64) -> Option<f64> {
    (from != 0.0).then(|| (to - from) / from * 100.0)
}

/// Draws a resample of `xs` with replacement. Multiply-shift instead of a
/// crate's range sampler keeps the indices fixed across crate versions
/// (ChaCha8's stream itself is specified).
fn resample(rng: &mut ChaCha8Rng, xs: &[f64], buf: &mut Vec<f64>) {
    buf.clear();
    for _ in 0..xs.len() {
        let i = ((rng.next_u64() as u128 * xs.len() as u128) >> 64) as usize;
        buf.push(xs[i]);
    }
}

/// 2.5th and 97.5th percentile (linear interpolation) of the samples.
fn percentile_ci(mut stats: Vec<f64>) -> Option<[f64; 2]> {
    if stats.is_empty() {
        return None;
    }
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let h = p * (stats.len() - 1) as f64;
        let (i, frac) = (h.floor() as usize, h - h.floor());
        let j = (i + 1).min(stats.len() - 1);
        stats[i] + frac * (stats[j] - stats[i])
    };
    Some([q(0.025), q(0.975)])
}

/// 95 % percentile-bootstrap CI of the median, with the fixed seed.
pub fn bootstrap_median_ci(xs: &[f64]) -> Option<[f64; 2]> {
    if xs.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(BOOTSTRAP_SEED);
    let mut buf = Vec::with_capacity(xs.len());
    let stats = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            resample(&mut rng, xs, &mut buf);
            median(&buf)
        })
        .collect();
    percentile_ci(stats)
}

/// 95 % percentile-bootstrap CI of the change of the median from `a` to `b`
/// in percent; both sides are resampled independently with the fixed seed.
pub fn bootstrap_delta_ci(a: &[f64], b: &[f64]) -> Option<[f64; 2]> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(BOOTSTRAP_SEED);
    let (mut ba, mut bb) = (Vec::new(), Vec::new());
    let mut stats = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    for _ in 0..BOOTSTRAP_RESAMPLES {
        resample(&mut rng, a, &mut ba);
        resample(&mut rng, b, &mut bb);
        if let Some(d) = pct_change(median(&ba), median(&bb)) {
            stats.push(d);
        }
    }
    percentile_ci(stats)
}

/// Two-sided Mann-Whitney U test p-value of `a` against `b`.
///
/// Exact when the number of ways to split the pooled ranks into groups of
/// the two sizes is at most [`MW_EXACT_LIMIT`] (3 vs 3: 20 splits; 10 vs 10:
/// 184,756): every split is enumerated with mid-ranks for ties, so the test
/// is exact conditional on the ties, and p = share of splits whose rank sum
/// lies at least as far from its mean as the observed one. Above the limit:
/// normal approximation with tie-corrected variance and continuity
/// correction. `None` when a side is empty.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let n = n1 + n2;
    let ranks2 = doubled_ranks(a, b);
    // Work with doubled rank sums so ties (half ranks) stay integers.
    let observed: u64 = ranks2[..n1].iter().sum();
    let mean2 = (n1 * (n + 1)) as u64; // E[2 R1] = n1 (n + 1)
    let dev = |s: u64| s.abs_diff(mean2);
    if binomial(n as u64, n1 as u64) <= MW_EXACT_LIMIT {
        let (mut extreme, mut total) = (0u64, 0u64);
        enumerate_sums(&ranks2, n1, 0, 0, &mut |s| {
            total += 1;
            if dev(s) >= dev(observed) {
                extreme += 1;
            }
        });
        return Some(extreme as f64 / total as f64);
    }
    // Normal approximation.
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let mut sorted = ranks2.clone();
    sorted.sort_unstable();
    let ties: f64 = sorted.chunk_by(|x, y| x == y).map(|g| (g.len() as f64).powi(3) - g.len() as f64).sum();
    let var = n1f * n2f / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return Some(1.0); // every value tied
    }
    let u_dev = dev(observed) as f64 / 2.0; // |U - n1 n2 / 2| = |R1 - E R1|
    let z = (u_dev - 0.5).max(0.0) / var.sqrt();
    Some(statrs::function::erf::erfc(z / std::f64::consts::SQRT_2).min(1.0))
}

/// Twice the mid-rank of every value of `a` then `b` in the pooled sample.
fn doubled_ranks(a: &[f64], b: &[f64]) -> Vec<u64> {
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut idx: Vec<usize> = (0..pooled.len()).collect();
    idx.sort_by(|&i, &j| pooled[i].total_cmp(&pooled[j]));
    let mut r = vec![0u64; pooled.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && pooled[idx[j + 1]] == pooled[idx[i]] {
            j += 1;
        }
        // Positions i..=j share the mid-rank (i+1 + j+1)/2; doubled: i+j+2.
        for &k in &idx[i..=j] {
            r[k] = (i + j + 2) as u64;
        }
        i = j + 1;
    }
    r
}

/// Calls `f` with the sum of every `k`-subset of `xs[from..]` plus `acc`.
fn enumerate_sums(xs: &[u64], k: usize, from: usize, acc: u64, f: &mut impl FnMut(u64)) {
    if k == 0 {
        f(acc);
        return;
    }
    for i in from..=xs.len() - k {
        enumerate_sums(xs, k - 1, i + 1, acc + xs[i], f);
    }
}

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut c: u64 = 1;
    for i in 0..k {
        c = c.saturating_mul(n - i) / (i + 1);
        if c > MW_EXACT_LIMIT * 1000 {
            return u64::MAX; // large enough to mean "too many"
        }
    }
    c
}

/// A Markdown table of the verdicts, readable as plain text too, followed
/// by the noise floor(s) used.
pub fn render_table(verdicts: &[Verdict]) -> String {
    let mut rows = vec![[
        "cell",
        "metric",
        "from → to",
        "outcomes",
        "from median [95% CI]",
        "to median [95% CI]",
        "Δ% [95% CI]",
        "p",
        "verdict",
    ]
    .map(String::from)];
    for v in verdicts {
        let st = &v.stats;
        let med = |m: Option<f64>, ci: Option<[f64; 2]>| match (m, ci) {
            (Some(m), Some([lo, hi])) => format!("{} [{}, {}] {}", num(m), num(lo), num(hi), v.unit),
            (Some(m), None) => format!("{} {}", num(m), v.unit),
            _ => "-".into(),
        };
        let delta = match (st.delta_pct, st.ci_low, st.ci_high) {
            (Some(d), Some(lo), Some(hi)) => format!("{d:+.1}% [{lo:+.1}, {hi:+.1}]"),
            (Some(d), _, _) => format!("{d:+.1}%"),
            _ => "-".into(),
        };
        rows.push([
            v.cell.clone(),
            if v.metric.is_empty() { "-".into() } else { v.metric.clone() },
            format!("{} → {}", v.from_variant, v.to_variant),
            format!("{} → {}", v.from, v.to),
            med(st.from_median, st.from_median_ci),
            med(st.to_median, st.to_median_ci),
            delta,
            st.p_value.map_or("-".into(), |p| format!("{p:.3}")),
            v.to_string(),
        ]);
    }
    // A '|' or a newline in a title would split a Markdown cell; titles
    // come from the guest.
    for r in rows.iter_mut() {
        for c in r.iter_mut() {
            *c = crate::report::visible(c).replace('|', "\\|").replace('\n', " ");
        }
    }
    let widths: Vec<usize> = (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap()).collect();
    let line = |r: &[String; 9]| {
        let cells: Vec<String> =
            r.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
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
        out += "icount figures are MB per virtual second (guest time = instructions executed, 1 ns each): a CPU-cost measure, not host throughput.\n";
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
