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
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_valid() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
    }
}
