//! Small statistics shared by detectors: log-factorials, binomial tails, robust z-scores.

/// ln(n!) exactly by summation below 256, by Stirling's series above (error < 1e-10).
pub fn ln_factorial(n: u64) -> f64 {
    if n < 256 {
        (2..=n).map(|i| (i as f64).ln()).sum()
    } else {
        let x = n as f64;
        x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
            - 1.0 / (360.0 * x * x * x)
    }
}

/// ln C(n, k).
pub fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// log10 of the upper binomial tail P(X ≥ k) for X ~ Bin(n, p), computed in log space so tiny
/// probabilities (1e-300 and below) keep their magnitude.
pub fn log10_binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let terms: Vec<f64> = (k..=n)
        .map(|j| ln_choose(n, j) + j as f64 * lp + (n - j) as f64 * lq)
        .collect();
    let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = terms.iter().map(|t| (t - m).exp()).sum();
    ((m + s.ln()) / std::f64::consts::LN_10).min(0.0)
}

/// Median of a slice (sorts a copy); NaN for an empty slice.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorials_match_direct_products() {
        assert!((ln_factorial(5) - 120f64.ln()).abs() < 1e-12);
        // Stirling branch agrees with the summation at the switch-over.
        let direct: f64 = (2..=300u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(300) - direct).abs() < 1e-8);
    }

    #[test]
    fn binomial_tail_known_values() {
        // P(X >= 14 | n = 14, p = 0.5) = 0.5^14
        let v = log10_binomial_tail(14, 14, 0.5);
        assert!((v - 14.0 * 0.5f64.log10()).abs() < 1e-9);
        // P(X >= 1 | n = 2, p = 0.5) = 0.75
        assert!((log10_binomial_tail(2, 1, 0.5) - 0.75f64.log10()).abs() < 1e-9);
        assert_eq!(log10_binomial_tail(5, 0, 0.3), 0.0);
        // Tiny probabilities stay finite.
        assert!(log10_binomial_tail(1000, 1000, 1e-3) < -2900.0);
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
