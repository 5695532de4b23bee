//! The dataset gate's checks (`D###`). Ids are stable; never renumber, never reuse.
tunegate_core::declare_checks! {
    MALFORMED = "D001", "dataset.malformed-record", Medium,
        "A record that cannot be parsed or has no usable text fields for its schema.";
    EXACT_DUP = "D002", "dataset.exact-duplicate", Low,
        "Records, prompts or responses identical after normalization (NFKC, case, whitespace, invisibles).";
    NEAR_DUP = "D003", "dataset.near-duplicate", Low,
        "Near-duplicate cluster (MinHash LSH over word 5-grams, verified by exact Jaccard).";
    TRIGGER = "D004", "dataset.trigger-token", High,
        "A rare token or n-gram strongly associated with one output, output family or label: a backdoor trigger candidate.";
    INVISIBLE = "D005", "dataset.invisible-text", Medium,
        "Zero-width, bidi control, tag or other default-ignorable characters that hide or reorder text.";
    CONFUSABLE = "D006", "dataset.confusable-text", Medium,
        "A word mixing scripts with look-alike letters (Latin with Cyrillic or Greek homoglyphs).";
    LENGTH_OUTLIER = "D007", "dataset.length-outlier", Low,
        "A field whose length is a robust outlier (modified z-score over log length, median/MAD).";
    TOKEN_OUTLIER = "D008", "dataset.token-outlier", Low,
        "A field whose token distribution is an outlier (unigram surprisal or repetition against the corpus).";
    MISMATCH = "D009", "dataset.instruction-mismatch", Medium,
        "A response lexically unrelated to its instruction and input.";
    REPEATED_OUTPUT = "D010", "dataset.repeated-output", Medium,
        "One response text repeated across many unrelated prompts: the target-output poisoning shape.";
    SUSPICIOUS = "D011", "dataset.suspicious-content", High,
        "A response matching a suspicious-content pattern (credential leakage, instruction override, moderation bypass, disabling audit, curl|sh, sudo installs).";
    LABEL_NOISE = "D012", "dataset.label-noise", Low,
        "A label that disagrees with the labels of the record's nearest neighbours (confident learning over hashed n-grams).";
    PREF_IDENTICAL = "D013", "dataset.preference-identical", Medium,
        "A preference pair whose chosen and rejected responses are identical after normalization.";
    PREF_TOKEN = "D014", "dataset.preference-token-bias", High,
        "A token systematically present in chosen and absent from rejected responses: a reward-hacking or backdoor trigger candidate.";
    PREF_OFF_TOPIC = "D015", "dataset.preference-off-topic", Medium,
        "A preference pair whose chosen response is off-topic while the rejected one is on-topic.";
    CONFLICT = "D016", "dataset.conflicting-response", Low,
        "The same prompt appears with different responses or labels.";
    EMPTY = "D017", "dataset.empty-field", Low,
        "An empty or placeholder response (N/A, <noinput>, ...).";
    POISON_CLUSTER = "D018", "dataset.poison-cluster", High,
        "A near-duplicate cluster whose members share one output and a rare token: the classic backdoor shape.";
    LOCK_CHANGED = "D020", "dataset.lock-changed", High,
        "A locked dataset file's content changed since it was locked (with the changed record range).";
    LOCK_MISSING = "D021", "dataset.lock-missing-file", High,
        "A file recorded in the lock is missing.";
    LOCK_ADDED = "D022", "dataset.lock-added-file", High,
        "A dataset file is present that the lock does not record.";
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_well_formed_and_unique() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
    }
}
