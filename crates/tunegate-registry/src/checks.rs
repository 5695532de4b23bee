//! The registry's checks (`R###`): one per reason a promotion is refused or the audit log does
//! not verify. Ids are stable; never renumber, never reuse.
tunegate_core::declare_checks! {
    EVIDENCE_MISSING = "R001", "registry.evidence-missing", High,
        "The stage's policy requires evidence of this kind and the version has none.";
    EVIDENCE_UNSIGNED = "R002", "registry.evidence-unsigned", High,
        "The evidence's signature does not verify with any key registered in the policy (unsigned, unknown key, or altered).";
    SIGNER_NOT_ALLOWED = "R003", "registry.signer-not-allowed", High,
        "The evidence verifies, but with a key the policy does not allow to sign this kind of evidence.";
    EVIDENCE_STALE = "R004", "registry.evidence-stale", High,
        "The evidence is older than the stage's maximum evidence age.";
    EVIDENCE_FAILING = "R005", "registry.evidence-failing", High,
        "The evidence reports a failing verdict or a finding above the stage's maximum allowed severity.";
    SUBJECT_MISMATCH = "R006", "registry.subject-mismatch", Critical,
        "The evidence is about another artifact: its subject digests match neither the version's files nor its recorded inputs.";
    APPROVAL_MISSING = "R007", "registry.approval-missing", High,
        "Production needs an approval from a security-approver who did not register the version.";
    SELF_APPROVAL = "R008", "registry.self-approval", High,
        "An approval by the principal who registered the version does not count (separation of duties).";
    EVIDENCE_MALFORMED = "R009", "registry.evidence-malformed", High,
        "The evidence file is not a Sigstore bundle over an in-toto statement tunegate understands.";
    FAILING_IN_REVIEW = "R010", "registry.failing-in-review", Low,
        "Failing evidence was accepted into a review stage (staging); it still blocks production.";
    AUDIT_HASH = "R011", "registry.audit-hash-mismatch", Critical,
        "An audit entry's content does not match its hash: the entry was edited.";
    AUDIT_CHAIN = "R012", "registry.audit-chain-broken", Critical,
        "An audit entry does not link to the previous entry's hash, or sequence numbers skip: an entry was deleted, inserted or reordered.";
    EVIDENCE_UNTIMED = "R013", "registry.evidence-untimed", Info,
        "The evidence carries no signed timestamp; its age is measured from when the registry received it.";
    MLFLOW_DRIFT = "R014", "registry.mlflow-drift", High,
        "An MLflow alias points elsewhere than tunegate promoted (moved behind tunegate's back, or a version tunegate never registered).";
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_valid() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
    }
}
