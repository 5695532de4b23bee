//! Monotonicity of the accountant: ε falls as the noise multiplier grows and rises with the
//! number of steps and the sampling rate.
use proptest::prelude::*;
use tunegate_ml::dp::epsilon;

/// Slack for rounding between two nearly equal ε.
fn at_most(a: f64, b: f64) -> bool {
    a <= b * (1.0 + 1e-9) + 1e-12
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn epsilon_decreases_with_noise(
        noise in 0.6f64..8.0, extra in 0.01f64..4.0, q in 1e-4f64..0.3,
        steps in 1u64..20_000, delta in prop::sample::select(vec![1e-5, 1e-7]),
    ) {
        let lo = epsilon(noise, q, steps, delta).unwrap().epsilon;
        let hi = epsilon(noise + extra, q, steps, delta).unwrap().epsilon;
        prop_assert!(at_most(hi, lo), "noise {noise} -> {lo}, noise {} -> {hi}", noise + extra);
    }

    #[test]
    fn epsilon_increases_with_steps(
        noise in 0.6f64..8.0, q in 1e-4f64..0.3, steps in 1u64..20_000, more in 1u64..20_000,
    ) {
        let a = epsilon(noise, q, steps, 1e-5).unwrap().epsilon;
        let b = epsilon(noise, q, steps + more, 1e-5).unwrap().epsilon;
        prop_assert!(at_most(a, b), "steps {steps} -> {a}, steps {} -> {b}", steps + more);
    }

    #[test]
    fn epsilon_increases_with_sample_rate(
        noise in 0.6f64..8.0, q in 1e-4f64..0.3, factor in 1.01f64..3.0, steps in 1u64..20_000,
    ) {
        let q2 = (q * factor).min(1.0);
        let a = epsilon(noise, q, steps, 1e-5).unwrap().epsilon;
        let b = epsilon(noise, q2, steps, 1e-5).unwrap().epsilon;
        prop_assert!(at_most(a, b), "q {q} -> {a}, q {q2} -> {b}");
    }
}
