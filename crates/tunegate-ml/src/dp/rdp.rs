//! Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (DP-SGD).
//!
//! The numbers agree with Google's `dp-accounting` package (`RdpAccountant` with its default
//! orders and the add-or-remove-one neighbouring relation) to 1e-3 relative; the committed test
//! vectors in `tests/vectors/` hold the reference values and the script that made them. The
//! method, per order α:
//!
//! - **q = 0**: RDP 0 (nothing is ever sampled). **σ = 0**: RDP ∞ (no noise, no privacy).
//!   **q = 1**: the plain Gaussian mechanism, α / (2σ²).
//! - **Integer α**: the closed form of Mironov, Talwar and Zhang (arXiv:1908.10530, §3.2),
//!   log A_α = log Σ_{i=0..α} C(α, i) q^i (1-q)^(α-i) exp((i² - i) / (2σ²)), summed in log
//!   space; RDP = log A_α / (α - 1).
//! - **Fractional α**: the two-sided series of the same paper (§3.3), split at
//!   z₀ = σ² ln(1/q - 1) + 1/2, with |C(α, i)| from log-gamma and the Gaussian tails from a
//!   log-erfc that stays accurate far into the tail. The series stops once both halves are
//!   decreasing and 30 nats below the running total; an order that has not converged after
//!   1000 terms is dropped (its RDP is taken as ∞), exactly as the reference does.
//!   Where ln A_α is so small (σ in the millions) that rounding could make it ≤ 0, integer
//!   orders sum only the non-negative excess over 1 and fractional orders take the next integer
//!   order's value (an upper bound): the reference can report ε = 0 there, tunegate does not.
//! - **Composition**: RDP adds up, so `steps` identical steps multiply it by `steps`.
//! - **Conversion to (ε, δ)**: the improved bound of Balle et al. 2020 / Canonne, Kamath and
//!   Steinke 2020, ε = min over α of RDP + ln(1 - 1/α) - ln(δ α) / (α - 1), with the KL bound
//!   δ ≤ sqrt(1 - exp(-RDP)) giving ε = 0 when it already holds. Orders at or below 1.01 are
//!   skipped (the bound is unstable there).
use serde::Serialize;
use std::f64::consts::{LN_2, PI};

/// The Rényi orders the reference accountant uses by default: 1.1, 1.2, …, 10.9, then the
/// integers 11 to 63, then 128, 256, 512 and 1024.
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    v.extend((11..64).map(f64::from));
    v.extend([128.0, 256.0, 512.0, 1024.0]);
    v
}

/// Terms of the fractional-order series tried before an order is given up (the reference's
/// limit; its value shapes which orders survive, so it is kept identical).
const MAX_FRACTIONAL_TERMS: usize = 1000;

/// Relative tolerance of [`noise_for_epsilon`]: the returned noise multiplier is at most this
/// fraction above the smallest one that meets the target (within the accountant's monotonicity).
pub const NOISE_RELATIVE_TOLERANCE: f64 = 1e-6;

/// The largest noise multiplier [`noise_for_epsilon`] tries before it reports the target as
/// unreachable.
const MAX_NOISE: f64 = 1e9;

/// Bad arguments to the accountant.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DpError {
    /// An argument is out of its domain (negative, NaN, infinite, q > 1, δ ≥ 1, …).
    #[error("invalid {name} {value}: {reason}")]
    InvalidArgument {
        /// The argument's name as the CLI spells it.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What the value must be.
        reason: &'static str,
    },
    /// No noise multiplier up to the search's ceiling meets the target ε.
    #[error("no noise multiplier up to {max_noise} reaches epsilon {target} (epsilon there is {achieved})")]
    Unreachable {
        /// The target ε.
        target: f64,
        /// The largest noise multiplier tried.
        max_noise: f64,
        /// The ε at that noise multiplier.
        achieved: f64,
    },
}

fn invalid(name: &'static str, value: impl ToString, reason: &'static str) -> DpError {
    DpError::InvalidArgument {
        name,
        value: value.to_string(),
        reason,
    }
}

fn check_noise(noise: f64) -> Result<(), DpError> {
    if !noise.is_finite() || noise < 0.0 {
        return Err(invalid(
            "noise multiplier",
            noise,
            "must be a finite number >= 0",
        ));
    }
    Ok(())
}

fn check_rate(q: f64) -> Result<(), DpError> {
    if !(0.0..=1.0).contains(&q) {
        return Err(invalid("sample rate", q, "must be in [0, 1]"));
    }
    Ok(())
}

fn check_steps(steps: u64) -> Result<(), DpError> {
    if steps == 0 {
        return Err(invalid("steps", steps, "must be at least 1"));
    }
    Ok(())
}

fn check_delta(delta: f64) -> Result<(), DpError> {
    if !(delta > 0.0 && delta < 1.0) {
        return Err(invalid("delta", delta, "must be in (0, 1)"));
    }
    Ok(())
}

/// `log(exp(x) + exp(y))` without overflow.
fn log_add(x: f64, y: f64) -> f64 {
    let (lo, hi) = if x < y { (x, y) } else { (y, x) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `ln |Γ(x)|` (log-gamma; negative non-integer arguments give the log of the magnitude).
fn ln_gamma_abs(x: f64) -> f64 {
    libm::lgamma_r(x).0
}

/// `ln |C(n, k)|` for real n and k, via log-gamma.
fn ln_binom_abs(n: f64, k: f64) -> f64 {
    ln_gamma_abs(n + 1.0) - ln_gamma_abs(k + 1.0) - ln_gamma_abs(n - k + 1.0)
}

/// `ln erfc(x)`, accurate where erfc underflows: past x ≈ 26 the asymptotic expansion
/// erfc(x) ≈ exp(-x²) / (x √π) · (1 - 1/(2x²) + 3/(4x⁴) - 15/(8x⁶) + 105/(16x⁸)) is used.
fn ln_erfc(x: f64) -> f64 {
    if x < 26.0 {
        return libm::erfc(x).ln();
    }
    let t = 1.0 / (2.0 * x * x);
    // 1 - t + 3t² - 15t³ + 105t⁴: the series in 1/(2x²); t ≤ 7.4e-4 here, so it is exact to f64.
    let series = 1.0 - t * (1.0 - t * (3.0 - t * (15.0 - 105.0 * t)));
    -x * x - x.ln() - 0.5 * PI.ln() + series.ln()
}

/// `ln A_α` for integer α and 0 < q < 1.
///
/// The binomial weights sum to 1, so A_α = 1 + Σ_{i≥2} w_i (exp(c_i) - 1) with
/// c_i = (i² - i) / (2σ²) ≥ 0: summing the non-negative excess in log space and adding 1 with
/// `ln_1p` keeps ln A_α ≥ 0 and accurate even when it is far below f64 rounding of 1 (huge σ),
/// where summing the raw terms can round to a negative RDP.
fn ln_a_integer(q: f64, sigma: f64, alpha: u64) -> f64 {
    let a = alpha as f64;
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let two_var = 2.0 * sigma * sigma;
    let mut excess = f64::NEG_INFINITY;
    for i in 2..=alpha {
        let i = i as f64;
        let c = (i * i - i) / two_var;
        if c <= 0.0 {
            continue; // exp(c) - 1 underflowed to 0
        }
        // ln(exp(c) - 1) = c + ln(1 - exp(-c)), accurate for small and large c.
        let ln_expm1 = c + (-(-c).exp_m1()).ln();
        let coef = ln_binom_abs(a, i) + i * ln_q + (a - i) * ln_1mq;
        excess = log_add(excess, coef + ln_expm1);
    }
    log_add(0.0, excess)
}

/// Below this, a fractional order's ln A_α is within reach of rounding error and is replaced
/// by the (larger, hence safe) value at the next integer order: Rényi divergence does not
/// decrease with the order.
const FRACTIONAL_FLOOR: f64 = 1e-12;

/// `ln A_α` for fractional α and 0 < q < 1; ∞ when the series does not converge.
fn ln_a_fractional(q: f64, sigma: f64, alpha: f64) -> f64 {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let two_var = 2.0 * sigma * sigma;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let scale = std::f64::consts::SQRT_2 * sigma;
    let ln_half = -LN_2;
    let (mut lower, mut upper) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut prev0, mut prev1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for i in 0..MAX_FRACTIONAL_TERMS {
        let fi = i as f64;
        let j = alpha - fi;
        let coef = ln_binom_abs(alpha, fi);
        // Left part: the integral up to z0; right part: from z0 on, mirrored.
        let t0 = coef + fi * ln_q + j * ln_1mq;
        let t1 = coef + j * ln_q + fi * ln_1mq;
        let e0 = ln_half + ln_erfc((fi - z0) / scale);
        let e1 = ln_half + ln_erfc((z0 - j) / scale);
        let s0 = t0 + (fi * fi - fi) / two_var + e0;
        let s1 = t1 + (j * j - j) / two_var + e1;
        lower = log_add(lower, s0);
        upper = log_add(upper, s1);
        let total = log_add(lower, upper);
        if s0 < prev0 && s1 < prev1 && s0.max(s1) < total - 30.0 {
            return total;
        }
        prev0 = s0;
        prev1 = s1;
    }
    f64::INFINITY
}

/// RDP of one step of the Poisson-subsampled Gaussian mechanism at each order (∞ allowed).
///
/// `q` is the sampling probability, `noise` the noise multiplier σ (noise standard deviation
/// over the clipping norm). Orders must be > 1.
pub fn rdp_poisson_gaussian(q: f64, noise: f64, orders: &[f64]) -> Result<Vec<f64>, DpError> {
    check_rate(q)?;
    check_noise(noise)?;
    if let Some(&a) = orders.iter().find(|a| a.is_nan() || **a <= 1.0) {
        return Err(invalid("order", a, "Renyi orders must be > 1"));
    }
    Ok(orders
        .iter()
        .map(|&alpha| {
            if q == 0.0 {
                0.0
            } else if alpha.is_infinite() || noise == 0.0 {
                f64::INFINITY
            } else if q == 1.0 {
                alpha / (2.0 * noise * noise)
            } else if alpha.fract() == 0.0 && alpha <= u64::MAX as f64 {
                ln_a_integer(q, noise, alpha as u64) / (alpha - 1.0)
            } else {
                let ln_a = ln_a_fractional(q, noise, alpha);
                let ln_a = if ln_a < FRACTIONAL_FLOOR {
                    ln_a_integer(q, noise, alpha.ceil() as u64)
                } else {
                    ln_a
                };
                ln_a / (alpha - 1.0)
            }
        })
        .collect())
}

/// The smallest ε over `orders` for the composed RDP `rdp` at `delta`, and the order giving it.
///
/// Uses the improved RDP → (ε, δ) conversion (see the module doc). δ must be in (0, 1).
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> Result<(f64, f64), DpError> {
    check_delta(delta)?;
    if orders.len() != rdp.len() || orders.is_empty() {
        return Err(invalid(
            "orders",
            orders.len(),
            "need one RDP value per order, at least one",
        ));
    }
    let mut best = (f64::INFINITY, orders[0]);
    let mut first = true;
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if r < 0.0 {
            // Only reachable through rounding in extreme inputs; the reference reports 0.
            0.0
        } else if delta * delta + (-r).exp_m1() > 0.0 {
            // δ ≤ sqrt(1 - exp(-KL)) already holds at ε = 0.
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        if first || eps < best.0 {
            best = (eps, a);
            first = false;
        }
    }
    Ok((best.0.max(0.0), best.1))
}

/// The result of accounting one DP-SGD run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accounting {
    /// ε at [`Accounting::delta`]; `f64::INFINITY` when there is no guarantee (σ = 0).
    pub epsilon: f64,
    /// The target δ.
    pub delta: f64,
    /// The Rényi order at which the bound is tightest.
    pub order: f64,
}

/// ε of `steps` DP-SGD steps with noise multiplier `noise` and Poisson sampling rate `q`, at
/// `delta`, over the default orders.
///
/// Errors on a negative or non-finite noise multiplier, q outside [0, 1], zero steps, or δ
/// outside (0, 1). A noise multiplier of 0 (with q > 0) gives ε = ∞.
pub fn epsilon(noise: f64, q: f64, steps: u64, delta: f64) -> Result<Accounting, DpError> {
    check_noise(noise)?;
    check_rate(q)?;
    check_steps(steps)?;
    check_delta(delta)?;
    let orders = default_orders();
    let per_step = rdp_poisson_gaussian(q, noise, &orders)?;
    let n = steps as f64;
    let total: Vec<f64> = per_step.iter().map(|r| r * n).collect();
    let (epsilon, order) = epsilon_from_rdp(&orders, &total, delta)?;
    Ok(Accounting {
        epsilon,
        delta,
        order,
    })
}

/// The result of [`noise_for_epsilon`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoiseSearch {
    /// The noise multiplier found: it meets the target, and one
    /// [`NOISE_RELATIVE_TOLERANCE`] below it does not (or it is 0).
    pub noise_multiplier: f64,
    /// The accounting at that noise multiplier (its ε is the one actually achieved, ≤ target).
    pub achieved: Accounting,
    /// How many ε evaluations the search made.
    pub evaluations: u32,
}

/// The smallest noise multiplier whose ε at `delta` after `steps` steps at rate `q` is at most
/// `target_epsilon`, by bracketing (doubling from 1) and bisection.
///
/// ε falls as the noise multiplier grows, so bisection applies; the search stops when the
/// bracket is narrower than [`NOISE_RELATIVE_TOLERANCE`] times its upper end and returns the
/// upper end, which always meets the target. With q = 0 no noise is needed and 0 is returned.
pub fn noise_for_epsilon(
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
) -> Result<NoiseSearch, DpError> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(invalid(
            "epsilon",
            target_epsilon,
            "the target must be a finite number > 0",
        ));
    }
    check_rate(q)?;
    check_steps(steps)?;
    check_delta(delta)?;
    let mut evaluations = 0u32;
    let mut eval = |noise: f64| {
        evaluations += 1;
        epsilon(noise, q, steps, delta)
    };
    if q == 0.0 {
        let achieved = eval(0.0)?;
        return Ok(NoiseSearch {
            noise_multiplier: 0.0,
            achieved,
            evaluations: 1,
        });
    }
    // ε(0) = ∞ > target, so 0 is a valid lower end.
    let mut lo = 0.0;
    let mut hi = 1.0;
    let mut at_hi = eval(hi)?;
    while at_hi.epsilon > target_epsilon {
        if hi >= MAX_NOISE {
            return Err(DpError::Unreachable {
                target: target_epsilon,
                max_noise: hi,
                achieved: at_hi.epsilon,
            });
        }
        lo = hi;
        hi *= 2.0;
        at_hi = eval(hi)?;
    }
    while hi - lo > NOISE_RELATIVE_TOLERANCE * hi {
        let mid = 0.5 * (lo + hi);
        let at_mid = eval(mid)?;
        if at_mid.epsilon <= target_epsilon {
            hi = mid;
            at_hi = at_mid;
        } else {
            lo = mid;
        }
    }
    Ok(NoiseSearch {
        noise_multiplier: hi,
        achieved: at_hi,
        evaluations,
    })
}

/// Sampling rate and step count of a run described the way users think of it:
/// q = batch_size / dataset_size and steps = ceil(epochs · dataset_size / batch_size).
pub fn schedule_from_epochs(
    epochs: f64,
    dataset_size: u64,
    batch_size: u64,
) -> Result<(f64, u64), DpError> {
    if !(epochs.is_finite() && epochs > 0.0) {
        return Err(invalid("epochs", epochs, "must be a finite number > 0"));
    }
    if dataset_size == 0 {
        return Err(invalid("dataset size", dataset_size, "must be at least 1"));
    }
    if batch_size == 0 || batch_size > dataset_size {
        return Err(invalid(
            "batch size",
            batch_size,
            "must be between 1 and the dataset size",
        ));
    }
    let q = batch_size as f64 / dataset_size as f64;
    let steps = if epochs.fract() == 0.0 && epochs < 1e15 {
        // Whole epochs: exact integer arithmetic, no rounding up of 10.000000000000002.
        let records = u128::from(epochs as u64) * u128::from(dataset_size);
        records.div_ceil(u128::from(batch_size))
    } else {
        (epochs * dataset_size as f64 / batch_size as f64).ceil() as u128
    };
    let steps =
        u64::try_from(steps).map_err(|_| invalid("epochs", epochs, "give more than 2^64 steps"))?;
    check_steps(steps)?;
    Ok((q, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_match_the_reference_list() {
        let o = default_orders();
        assert_eq!(o.len(), 99 + 53 + 4);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[9], 2.0);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 11.0);
        assert_eq!(o[151], 63.0);
        assert_eq!(&o[152..], &[128.0, 256.0, 512.0, 1024.0]);
    }

    #[test]
    fn log_gamma_and_erfc_are_accurate() {
        // ln Γ(0.5) = ln √π; ln |Γ(-0.5)| = ln(2√π).
        assert!((ln_gamma_abs(0.5) - 0.5 * PI.ln()).abs() < 1e-14);
        assert!((ln_gamma_abs(-0.5) - (2.0 * PI.sqrt()).ln()).abs() < 1e-14);
        assert!((ln_binom_abs(1024.0, 512.0) - 706.090_941_497_353_9).abs() < 1e-9);
        // The asymptotic branch joins the direct one smoothly.
        let direct = libm::erfc(25.9).ln();
        let t: f64 = 1.0 / (2.0 * 25.9 * 25.9);
        let asym = -25.9f64 * 25.9 - 25.9f64.ln() - 0.5 * PI.ln()
            + (1.0 - t * (1.0 - t * (3.0 - t * (15.0 - 105.0 * t)))).ln();
        assert!((direct - asym).abs() < 1e-9, "{direct} vs {asym}");
        assert!(ln_erfc(40.0).is_finite() && ln_erfc(40.0) < -1600.0);
        assert!((ln_erfc(-40.0) - LN_2).abs() < 1e-15);
    }

    #[test]
    fn edge_cases() {
        let no_sampling = epsilon(1.0, 0.0, 1000, 1e-5).unwrap();
        assert_eq!(no_sampling.epsilon, 0.0);
        let no_noise = epsilon(0.0, 0.01, 10, 1e-5).unwrap();
        assert!(no_noise.epsilon.is_infinite());
        // q = 1 is the plain Gaussian: RDP α/(2σ²) per step.
        let rdp = rdp_poisson_gaussian(1.0, 2.0, &[3.0]).unwrap();
        assert_eq!(rdp, vec![3.0 / 8.0]);
        let tiny = epsilon(1.0, 0.01, 1000, 1e-300).unwrap();
        assert!(
            tiny.epsilon.is_finite()
                && tiny.epsilon > epsilon(1.0, 0.01, 1000, 1e-5).unwrap().epsilon
        );
        let huge = epsilon(1.0, 0.01, u64::MAX, 1e-5).unwrap();
        assert!(huge.epsilon.is_finite() && huge.epsilon > 1e6);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(epsilon(-1.0, 0.01, 10, 1e-5).is_err());
        assert!(epsilon(f64::NAN, 0.01, 10, 1e-5).is_err());
        assert!(epsilon(f64::INFINITY, 0.01, 10, 1e-5).is_err());
        assert!(epsilon(1.0, 1.5, 10, 1e-5).is_err());
        assert!(epsilon(1.0, f64::NAN, 10, 1e-5).is_err());
        assert!(epsilon(1.0, -0.1, 10, 1e-5).is_err());
        assert!(epsilon(1.0, 0.1, 0, 1e-5).is_err());
        assert!(epsilon(1.0, 0.1, 10, 1.0).is_err());
        assert!(epsilon(1.0, 0.1, 10, 0.0).is_err());
        assert!(epsilon(1.0, 0.1, 10, f64::NAN).is_err());
        let e = epsilon(1.0, 1.5, 10, 1e-5).unwrap_err().to_string();
        assert_eq!(e, "invalid sample rate 1.5: must be in [0, 1]");
        assert!(noise_for_epsilon(0.0, 0.1, 10, 1e-5).is_err());
        assert!(noise_for_epsilon(f64::INFINITY, 0.1, 10, 1e-5).is_err());
    }

    #[test]
    fn noise_search_meets_the_target_tightly() {
        let r = noise_for_epsilon(2.0, 0.01, 1000, 1e-5).unwrap();
        assert!(r.achieved.epsilon <= 2.0);
        let below = r.noise_multiplier * (1.0 - 2.0 * NOISE_RELATIVE_TOLERANCE);
        assert!(epsilon(below, 0.01, 1000, 1e-5).unwrap().epsilon > 2.0);
        assert_eq!(
            noise_for_epsilon(1.0, 0.0, 10, 1e-5)
                .unwrap()
                .noise_multiplier,
            0.0
        );
    }

    #[test]
    fn unreachable_target_is_an_error_not_a_huge_noise() {
        // At δ = 1e-300 the default orders cannot bring ε below about 0.667, however large σ is;
        // a rounding-negative RDP once made the search "succeed" with ε = 0 at σ ≈ 7e7.
        let e = noise_for_epsilon(0.1, 0.5, 10, 1e-300).unwrap_err();
        assert!(matches!(e, DpError::Unreachable { .. }), "{e}");
        for noise in [1e4, 1e6, 7.3e7, 1e9] {
            let a = epsilon(noise, 0.5, 10, 1e-300).unwrap();
            assert!(a.epsilon > 0.66, "noise {noise}: {a:?}");
        }
    }

    #[test]
    fn epochs_schedule() {
        assert_eq!(schedule_from_epochs(1.0, 1000, 100).unwrap(), (0.1, 10));
        assert_eq!(schedule_from_epochs(3.0, 60000, 256).unwrap().1, 704);
        assert_eq!(schedule_from_epochs(0.5, 1000, 100).unwrap().1, 5);
        assert!(schedule_from_epochs(1.0, 100, 1000).is_err());
        assert!(schedule_from_epochs(1.0, 0, 1).is_err());
        assert!(schedule_from_epochs(-1.0, 10, 1).is_err());
    }
}
