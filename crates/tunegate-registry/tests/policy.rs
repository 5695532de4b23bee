//! Every promotion rule: each kind of bad evidence blocks production with its own R### finding,
//! and a complete chain promotes.
mod common;
use common::*;
use std::path::PathBuf;
use tunegate_core::Severity;
use tunegate_registry::eval::{evaluate, Evaluation};
use tunegate_registry::time::parse;
use tunegate_registry::Policy;

const FINISHED: &str = "2026-01-09T00:00:00Z";

fn now() -> i64 {
    parse("2026-01-10T00:00:00Z").unwrap()
}

fn eval_with(fx: &Fx, stage: &str, files: &[PathBuf]) -> Evaluation {
    let v = version_of(&fx.model, "tina");
    evaluate(
        &fx.policy(),
        stage,
        &v,
        &evidence(files, now() - 3600),
        &approval(),
        now(),
    )
    .unwrap()
}

/// Blocking findings (at or above high) as (id, message).
fn blocking(e: &Evaluation) -> Vec<(String, String)> {
    e.report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .map(|f| (f.id.clone(), f.message.clone()))
        .collect()
}

fn assert_blocked_by(e: &Evaluation, id: &str, about: &str) {
    assert!(!e.allowed(), "must be refused: {:?}", blocking(e));
    assert!(
        blocking(e)
            .iter()
            .any(|(i, m)| i == id && m.contains(about)),
        "expected {id} about {about}, got {:?}",
        blocking(e)
    );
}

#[test]
fn complete_chain_promotes_to_production() {
    let fx = fixture();
    let e = eval_with(&fx, "production", &fx.complete_chain(FINISHED));
    assert!(e.allowed(), "{:?}", blocking(&e));
    assert_eq!(e.items.len(), 5);
    assert!(e.items.iter().all(|i| i.status == "ok"), "{:?}", e.items);
    let kinds: Vec<&str> = e.items.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["dataset", "base", "provenance", "signature", "model"]
    );
}

#[test]
fn each_missing_kind_blocks_production_with_r001() {
    let fx = fixture();
    let chain = fx.complete_chain(FINISHED);
    for (i, kind) in ["dataset", "base", "provenance", "signature", "model"]
        .iter()
        .enumerate()
    {
        let mut files = chain.clone();
        files.remove(i);
        let e = eval_with(&fx, "production", &files);
        assert_blocked_by(&e, "R001", &format!("requires {kind} evidence"));
    }
}

#[test]
fn unsigned_evidence_blocks_with_r002() {
    let fx = fixture();
    let mut files = fx.complete_chain(FINISHED);
    // Signed with a key the policy does not know.
    files[4] = fx.report("rogue.sig.json", "model", &fx.model, None, &fx.rogue);
    assert_blocked_by(
        &eval_with(&fx, "production", &files),
        "R002",
        "rogue.sig.json",
    );
    // Signed with the right key, then altered: the payload no longer matches the signature.
    let good = std::fs::read_to_string(&files[3]).unwrap();
    let mut b: serde_json::Value = serde_json::from_str(&good).unwrap();
    let sig = b["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    let first = if sig.starts_with('A') { "B" } else { "A" };
    let flipped = format!("{first}{}", &sig[1..]);
    b["dsseEnvelope"]["signatures"][0]["sig"] = flipped.into();
    let tampered = fx.path("tampered.sig");
    std::fs::write(&tampered, b.to_string()).unwrap();
    let mut files = fx.complete_chain(FINISHED);
    files[3] = tampered;
    assert_blocked_by(
        &eval_with(&fx, "production", &files),
        "R002",
        "tampered.sig",
    );
}

#[test]
fn evidence_signed_by_a_key_not_allowed_for_its_kind_blocks_with_r003() {
    let fx = fixture();
    let mut files = fx.complete_chain(FINISHED);
    // The release key is registered, but only for model signatures, not for scan reports.
    files[4] = fx.report(
        "scan-by-release.sig.json",
        "model",
        &fx.model,
        None,
        &fx.release,
    );
    let e = eval_with(&fx, "production", &files);
    assert_blocked_by(&e, "R003", "signers.model allows only scanner");
}

#[test]
fn stale_evidence_blocks_with_r004() {
    let fx = fixture();
    // Provenance carries its own signed time: 30 days before "now" with a 7-day limit.
    let mut files = fx.complete_chain("2025-12-11T00:00:00Z");
    let e = eval_with(&fx, "production", &files);
    assert_blocked_by(&e, "R004", "prov.sig.json");
    // Reports carry no signed time: their age counts from when the registry received them.
    files = fx.complete_chain(FINISHED);
    let v = version_of(&fx.model, "tina");
    let mut ev = evidence(&files, now() - 3600);
    ev[4].attached_at = now() - 8 * 86400;
    let e = evaluate(&fx.policy(), "production", &v, &ev, &approval(), now()).unwrap();
    assert_blocked_by(&e, "R004", "scan.sig.json");
    assert!(e.report.findings.iter().any(|f| f.id == "R013"));
}

#[test]
fn failing_evidence_blocks_production_but_may_enter_staging() {
    let fx = fixture();
    let mut files = fx.complete_chain(FINISHED);
    files[4] = fx.report(
        "failing.sig.json",
        "model",
        &fx.model,
        Some(Severity::High),
        &fx.scanner,
    );
    assert_blocked_by(
        &eval_with(&fx, "production", &files),
        "R005",
        "failing.sig.json",
    );
    let staging = eval_with(&fx, "staging", &files);
    assert!(staging.allowed(), "{:?}", blocking(&staging));
    assert!(staging.report.findings.iter().any(|f| f.id == "R010"));
    // A medium finding is within the production limit.
    files[4] = fx.report(
        "medium.sig.json",
        "model",
        &fx.model,
        Some(Severity::Medium),
        &fx.scanner,
    );
    assert!(eval_with(&fx, "production", &files).allowed());
}

#[test]
fn failing_evidence_of_a_kind_not_required_still_blocks_production() {
    let fx = fixture();
    let mut files = fx.complete_chain(FINISHED);
    files.push(fx.report(
        "backdoor.sig.json",
        "backdoor",
        &fx.model,
        Some(Severity::Critical),
        &fx.scanner,
    ));
    assert_blocked_by(
        &eval_with(&fx, "production", &files),
        "R005",
        "backdoor.sig.json",
    );
}

#[test]
fn evidence_about_another_artifact_blocks_with_r006() {
    let fx = fixture();
    let chain = fx.complete_chain(FINISHED);
    let other_data = fx.path("other.jsonl");
    std::fs::write(&other_data, b"{\"input\":\"poison\"}\n").unwrap();
    let cases = [
        (
            4,
            fx.report(
                "scan-other.sig.json",
                "model",
                &fx.other_model,
                None,
                &fx.scanner,
            ),
        ),
        (
            3,
            fx.signature("sig-other.sig", &fx.other_model, &fx.release),
        ),
        (
            2,
            fx.provenance("prov-other.sig.json", &fx.other_model, FINISHED, &fx.ci),
        ),
        (
            0,
            fx.report(
                "data-other.sig.json",
                "dataset",
                &other_data,
                None,
                &fx.scanner,
            ),
        ),
    ];
    for (i, bad) in cases {
        let mut files = chain.clone();
        let name = bad.file_name().unwrap().to_string_lossy().to_string();
        files[i] = bad;
        assert_blocked_by(&eval_with(&fx, "production", &files), "R006", &name);
    }
}

#[test]
fn production_needs_an_independent_security_approval() {
    let fx = fixture();
    let files = fx.complete_chain(FINISHED);
    let v = version_of(&fx.model, "tina");
    let ev = evidence(&files, now() - 3600);
    let e = evaluate(&fx.policy(), "production", &v, &ev, &[], now()).unwrap();
    assert_blocked_by(&e, "R007", "security-approver");
    let own = vec![tunegate_registry::store::Approval {
        approver: "tina".into(),
        role: "security-approver".into(),
        at: 0,
    }];
    let e = evaluate(&fx.policy(), "production", &v, &ev, &own, now()).unwrap();
    assert_blocked_by(&e, "R008", "tina registered");
    assert_blocked_by(&e, "R007", "security-approver");
    // Staging needs no approval.
    assert!(evaluate(&fx.policy(), "staging", &v, &ev, &[], now())
        .unwrap()
        .allowed());
}

#[test]
fn bad_policies_are_refused() {
    let fx = fixture();
    let root = fx.dir.path();
    for (text, want) in [
        (
            "[registry.stages.production]\nallow_failing = true",
            "never enters production",
        ),
        (
            "[registry.stages.production]\nrequire = [\"vibes\"]",
            "unknown evidence kind",
        ),
        (
            "[registry.signers]\nmodel = [\"nobody\"]",
            "does not define",
        ),
        ("[registry.stages.qa]\nrequire = []", "unknown stage"),
        ("[registry.keys]\nx = \"missing.pub\"", "missing.pub"),
        ("[registry]\nstroe = \"x\"", "unknown field"),
    ] {
        let e = Policy::from_toml(text, root).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}
