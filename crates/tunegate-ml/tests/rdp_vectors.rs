//! The accountant against Google's dp-accounting (`tests/vectors/rdp_vectors.json`, made by
//! `tests/vectors/make_rdp_vectors.py`): every ε and every calibrated noise multiplier must agree
//! to 1e-3 relative; a failure names the case.
use serde_json::Value;
use tunegate_ml::dp::{epsilon, noise_for_epsilon};

const TOL: f64 = 1e-3;

fn vectors() -> Value {
    let text = include_str!("vectors/rdp_vectors.json");
    serde_json::from_str(text).expect("rdp_vectors.json parses")
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs().max(1e-300)
    }
}

#[test]
fn vectors_record_the_pinned_package() {
    let v = vectors();
    assert_eq!(v["package"], "dp-accounting");
    assert_eq!(v["version"], "0.6.0");
    assert!(v["epsilon_cases"].as_array().unwrap().len() >= 400);
    assert!(v["noise_cases"].as_array().unwrap().len() >= 5);
}

#[test]
fn epsilon_agrees_with_dp_accounting() {
    let v = vectors();
    let mut failures = Vec::new();
    let mut worst = (0.0f64, String::new());
    for c in v["epsilon_cases"].as_array().unwrap() {
        let noise = c["noise_multiplier"].as_f64().unwrap();
        let q = c["sample_rate"].as_f64().unwrap();
        let steps = c["steps"].as_u64().unwrap();
        let delta = c["delta"].as_f64().unwrap();
        let want = c["epsilon"].as_f64().unwrap();
        let name = format!("noise={noise} q={q} steps={steps} delta={delta}");
        let got = epsilon(noise, q, steps, delta).unwrap();
        let err = rel(got.epsilon, want);
        if err > worst.0 {
            worst = (err, name.clone());
        }
        if err.is_nan() || err > TOL {
            failures.push(format!(
                "{name}: epsilon {} vs dp-accounting {want} (rel {err:.2e}; order {} vs {})",
                got.epsilon, got.order, c["order"]
            ));
        }
    }
    eprintln!("max relative epsilon error {:.3e} at {}", worst.0, worst.1);
    assert!(
        failures.is_empty(),
        "{} case(s) off:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn noise_search_agrees_with_dp_accounting() {
    let v = vectors();
    let mut failures = Vec::new();
    for c in v["noise_cases"].as_array().unwrap() {
        let target = c["target_epsilon"].as_f64().unwrap();
        let q = c["sample_rate"].as_f64().unwrap();
        let steps = c["steps"].as_u64().unwrap();
        let delta = c["delta"].as_f64().unwrap();
        let want = c["noise_multiplier"].as_f64().unwrap();
        let name = format!("target={target} q={q} steps={steps} delta={delta}");
        let got = noise_for_epsilon(target, q, steps, delta).unwrap();
        let err = rel(got.noise_multiplier, want);
        eprintln!(
            "{name}: noise {} vs {want} (rel {err:.2e})",
            got.noise_multiplier
        );
        if err.is_nan() || err > TOL || got.achieved.epsilon > target {
            failures.push(format!(
                "{name}: noise {} vs dp-accounting {want} (rel {err:.2e}), achieved epsilon {}",
                got.noise_multiplier, got.achieved.epsilon
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
