//! The production monitor's checks (`O###`). Ids are stable; never renumber, never reuse.
tunegate_core::declare_checks! {
    SECRET = "O001", "monitor.secret-in-output", Critical,
        "A response holds a secret or credential (cloud key, private key, token, password, connection string); the excerpt is redacted.";
    DENY_PATTERN = "O003", "monitor.deny-pattern", High,
        "A configured deny pattern (regex) matched a prompt or a response.";
    INJECTION_MARKER = "O004", "monitor.prompt-injection-marker", Medium,
        "A prompt holds an instruction-override phrase or a chat role/special token (<|im_start|>, [INST], <<SYS>>, <|eot_id|>).";
    INVISIBLE = "O005", "monitor.invisible-text", Medium,
        "A prompt or response holds invisible or bidirectional Unicode (tags, zero-width, bidi controls), found by the dataset gate's Unicode code.";
    TRIGGER = "O006", "monitor.trigger-token", High,
        "A prompt contains a known trigger token (from a dataset report's D004 findings, a dataset lock's recorded triggers or the configured list).";
    REPETITION_RATE = "O007", "monitor.repetition-rate", High,
        "Over the model's sliding window, more than the configured share (5%) of responses are identical or near-identical to a response given to a different prompt.";
    LENGTH_ANOMALY = "O008", "monitor.length-anomaly", Medium,
        "The median response length over the recent window is far (robust z-score) from the model's warmed-up baseline.";
    RESPONSE_CLUSTER = "O009", "monitor.identical-response-cluster", High,
        "One (near-)identical response was returned for many distinct prompts within the window: the signature of an activated backdoor.";
    DEGENERATE = "O010", "monitor.degenerate-output", Medium,
        "A single response is dominated by a repeated phrase (most of its word 4-grams are repeats).";
    REFUSAL_COLLAPSE = "O011", "monitor.refusal-collapse", Medium,
        "The model's refusal rate over the recent window fell far below its warmed-up baseline.";
    DANGEROUS_OUTPUT = "O013", "monitor.dangerous-output", Medium,
        "A response holds dangerous content: download-and-run pipelines, exfiltration, disabling security or audit, environment dumps, moderation bypass.";
    UNINSPECTED = "O014", "monitor.uninspected", Medium,
        "A response could not be inspected (body or line over the bound, unparsable JSON or SSE, unknown shape, timeout) and was forwarded (fail-open) or blocked (fail-closed).";
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_well_formed_and_unique() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
    }
}
