//! The signing gate's checks (`S###`): one per reason a signature can fail verification. Ids are
//! stable; never renumber, never reuse.
tunegate_core::declare_checks! {
    BUNDLE_MALFORMED = "S001", "sign.bundle-malformed", High,
        "The signature file is not a usable Sigstore bundle: truncated or invalid JSON, unknown media type, bad base64, or no verification material.";
    KEY_MISMATCH = "S002", "sign.key-mismatch", High,
        "The bundle names another signer than the trusted key (public-key hint, embedded key, or leaf certificate key differ).";
    PAYLOAD_TYPE = "S003", "sign.payload-type", High,
        "The DSSE payload type is not application/vnd.in-toto+json (a tampered or foreign envelope).";
    SIGNATURE_INVALID = "S004", "sign.signature-invalid", Critical,
        "The DSSE signature does not verify with the trusted key: wrong key, or the signed statement was changed.";
    STATEMENT_INVALID = "S005", "sign.statement-invalid", High,
        "The signed in-toto statement or model manifest is invalid, unsupported, or its subject digest does not match its resources.";
    FILE_CHANGED = "S006", "sign.file-changed", Critical,
        "A signed file's content differs from its signed digest.";
    FILE_ADDED = "S007", "sign.file-added", High,
        "A file is present that the signature does not cover.";
    FILE_MISSING = "S008", "sign.file-missing", High,
        "A signed file is missing.";
    FILE_RENAMED = "S009", "sign.file-renamed", High,
        "A signed file is present under another name.";
    SYMLINK = "S010", "sign.symlink", High,
        "A symlink (or special file) is present where the signature allows only regular files.";
    PATH_ESCAPE = "S011", "sign.path-escape", Critical,
        "A signed resource path leaves the model folder (absolute, `..`, or empty components).";
    REPORT_MISMATCH = "S012", "sign.report-mismatch", High,
        "A signed gate report does not match the report file it is checked against.";
    CHAIN_NOT_VERIFIED = "S013", "sign.chain-not-verified", Info,
        "A certificate or keyless bundle was checked against its leaf key only: the X.509 chain, Fulcio identity and transparency log were not verified offline.";
    CHAIN_INVALID = "S014", "sign.chain-invalid", High,
        "A certificate-method bundle's X.509 chain does not verify to the given trust anchors (signature, names, CA flag, validity at signing time, key usage).";
    PROV_SIGNATURE = "S040", "sign.provenance-signature", Critical,
        "The run's provenance bundle does not verify with the trusted key (malformed bundle, another signer, or a changed statement).";
    PROV_INVALID = "S041", "sign.provenance-invalid", High,
        "The signed statement is not a tunegate SLSA v1 provenance (wrong predicate or build type, missing fields).";
    PROV_SUBJECT_MISMATCH = "S042", "sign.provenance-subject-mismatch", Critical,
        "The artifact folder does not match the provenance subjects: a file changed, was added or was removed since the run.";
    PROV_LOCK_MISMATCH = "S043", "sign.provenance-lock-mismatch", Critical,
        "The given dataset lock's file digests differ from the data the run recorded as resolved dependencies (or the run recorded no data).";
    PROV_BASE_MISMATCH = "S044", "sign.provenance-base-mismatch", Critical,
        "The given base model (folder or approved-list entry) differs from the base model files the run recorded.";
    PROV_RUN_FAILED = "S045", "sign.provenance-run-failed", High,
        "The training command exited non-zero or was killed by a signal: the artifact is the output of a failed run.";
    PROV_DIRTY_TREE = "S046", "sign.provenance-dirty-tree", Medium,
        "The training code's git working tree had uncommitted changes (or its state was unknown): the recorded commit does not pin the code that ran.";
    PROV_DRIFT_ALLOWED = "S047", "sign.provenance-drift-allowed", High,
        "The run was started with --allow-drift while the dataset differed from its lock: the data trained on is not the approved data.";
    PROV_UNCHECKED = "S048", "sign.provenance-unchecked", Info,
        "A recorded material was not checked because no reference was given (pass --lock and --base or --approved to answer \"approved data, approved base?\").";
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_valid() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
    }
}
