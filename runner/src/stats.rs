//! The statistics of throughput samples: the median, its 95 % bootstrap
//! intervals (fixed seed, so every figure is reproducible) and the
//! Mann-Whitney test. Pure functions of numbers, below the rule book
//! ([`crate::rules`]) that decides with them.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bootstrap resamples per interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Fixed seed ("kregress" in ASCII) so every interval is reproducible.
pub const BOOTSTRAP_SEED: u64 = 0x6b72_6567_7265_7373;
/// Largest number of rank splits the exact Mann-Whitney test enumerates;
/// above it the normal approximation is used.
pub const MW_EXACT_LIMIT: u64 = 200_000;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mann_whitney_exact_small_samples() {
        // n1 = n2 = 3: U = 1 (only 4 > 3). Of the 20 equally likely splits,
        // U <= 1 in 2 (U = 0, 1) and U >= 8 in 2, so p = 4/20.
        assert!(close(mann_whitney_p(&[1.0, 2.0, 4.0], &[3.0, 5.0, 6.0]).unwrap(), 0.2, 1e-12));
        // Complete separation: p = 2/20 either way round.
        assert!(close(mann_whitney_p(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap(), 0.1, 1e-12));
        // Ties: mid-ranks 1, 3, 3 | 3, 5, 6; rank sum 7 is 3.5 from its mean 10.5;
        // 6 of the 20 splits are at least that far.
        assert!(close(mann_whitney_p(&[1.0, 2.0, 2.0], &[2.0, 3.0, 4.0]).unwrap(), 0.3, 1e-12));
        // 4 vs 3 with a three-way tie: 7 of 35 splits (enumerated independently).
        assert!(close(mann_whitney_p(&[10.0, 20.0, 20.0, 30.0], &[20.0, 40.0, 50.0]).unwrap(), 0.2, 1e-12));
        // 10 vs 10, separated: still exact (184,756 splits), 2 of them extreme.
        let a: Vec<f64> = (0..10).map(f64::from).collect();
        let b: Vec<f64> = (10..20).map(f64::from).collect();
        assert!(close(mann_whitney_p(&a, &b).unwrap(), 2.0 / 184_756.0, 1e-15));
        assert_eq!(mann_whitney_p(&[], &[1.0]), None);
    }

    #[test]
    fn mann_whitney_normal_approximation() {
        // 15 vs 15 separated: U = 0, mean 112.5, sd = sqrt(15*15*31/12);
        // z = 112/24.109 = 4.6455, p = erfc(z/sqrt 2) = 3.3918e-6.
        let a: Vec<f64> = (0..15).map(f64::from).collect();
        let b: Vec<f64> = (15..30).map(f64::from).collect();
        let p = mann_whitney_p(&a, &b).unwrap();
        assert!(close(p, 3.391821390825104e-6, 1e-12), "{p}");
        // With ties (1,2,3 x5 vs 2,3,4 x5): U = 50, tie-corrected variance
        // 533.405, z = (62.5 - 0.5)/23.096 = 2.6845, p = 0.0072639.
        let a: Vec<f64> = [1.0, 2.0, 3.0].iter().flat_map(|&x| [x; 5]).collect();
        let b: Vec<f64> = [2.0, 3.0, 4.0].iter().flat_map(|&x| [x; 5]).collect();
        let p = mann_whitney_p(&a, &b).unwrap();
        assert!(close(p, 0.007263882678310707, 1e-9), "{p}");
        // All tied: no evidence at all.
        assert_eq!(mann_whitney_p(&[5.0; 15], &[5.0; 15]), Some(1.0));
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let a = [100.0, 97.0, 104.0, 99.0, 101.0];
        let b = [90.0, 95.0, 93.0, 99.0, 88.0];
        let d1 = bootstrap_delta_ci(&a, &b).unwrap();
        let d2 = bootstrap_delta_ci(&a, &b).unwrap();
        assert_eq!(d1, d2);
        // Pinned with 8 vs 8 samples, where the percentiles fall between
        // resampled values: the seed, ChaCha8's specified stream and the index
        // mapping must keep these across machines and crate updates.
        let a8 = [100.0, 97.0, 104.0, 99.0, 101.0, 96.5, 103.2, 98.1];
        let b8 = [90.0, 95.0, 93.0, 99.0, 88.0, 91.7, 94.4, 97.3];
        let d8 = bootstrap_delta_ci(&a8, &b8).unwrap();
        assert!(close(d8[0], -10.44776119402985, 1e-9) && close(d8[1], -2.117820256251009, 1e-9), "{d8:?}");
        assert_eq!(bootstrap_median_ci(&a8), Some([97.3, 102.5]));
        assert_eq!(bootstrap_median_ci(&a), bootstrap_median_ci(&a));
        // Contains the point estimate and differs for other data.
        let d = pct_change(median(&a), median(&b)).unwrap();
        assert!(d1[0] < d && d < d1[1], "{d1:?} {d}");
        assert_ne!(bootstrap_delta_ci(&a, &[90.0, 95.0, 93.0, 99.0, 87.0]).unwrap(), d1);
        // For n = 3 the resampled median is the minimum with probability
        // 7/27 > 2.5 %, likewise the maximum: the CI is exactly [min, max].
        assert_eq!(bootstrap_median_ci(&[101.0, 99.0, 100.0]), Some([99.0, 101.0]));
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
