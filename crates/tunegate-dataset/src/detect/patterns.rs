//! Suspicious content (`D011`): the scan options' pattern set over the fields of every record.
//!
//! What a field's role means for a match:
//! - **Response** (output, assistant turns, completion, chosen): this is what the model learns
//!   to say, so every pattern counts at its full severity.
//! - **Prompt and system**: instruction-override patterns count one level lower. A prompt that
//!   says "ignore previous instructions" is a prompt-injection training example; worth a look,
//!   but less than a response that complies. Credential patterns also count one level lower: a
//!   live secret anywhere in training data is a leak even when the model is not trained to say
//!   it. Other categories (a prompt asking about `curl | sh`) are not reported.
//! - **Rejected**: only credential patterns, one level lower (the pair teaches the model *not*
//!   to say the rest).
use super::{Ctx, Output};
use crate::checks::SUSPICIOUS;
use crate::{Dataset, Field, Record, Role};
use rayon::prelude::*;
use serde_json::json;
use tunegate_core::text::patterns::{category, PatternHit, PatternSet};
use tunegate_core::{Finding, Severity};

/// Runs the detector.
pub fn detect(ctx: &Ctx) -> Output {
    let set = &ctx.opts.patterns;
    if set.is_empty() {
        return Output::default();
    }
    let per_record: Vec<Vec<Finding>> = ctx
        .ds
        .records
        .par_iter()
        .map(|r| record_findings(ctx.ds, set, r))
        .collect();
    Output {
        findings: per_record.into_iter().flatten().collect(),
        charts: Vec::new(),
    }
}

/// One level lower (`info` stays `info`).
pub fn lower(s: Severity) -> Severity {
    match s {
        Severity::Critical => Severity::High,
        Severity::High => Severity::Medium,
        Severity::Medium => Severity::Low,
        Severity::Low | Severity::Info => Severity::Info,
    }
}

/// The severity a hit gets in a field with `role`, or `None` when it is not reported there.
pub fn severity_for(role: Role, hit: &PatternHit) -> Option<Severity> {
    let credential = hit.category == category::CREDENTIAL_LEAK;
    let override_ = hit.category == category::INSTRUCTION_OVERRIDE;
    match role {
        Role::Response => Some(hit.severity),
        Role::Prompt | Role::System if credential || override_ => Some(lower(hit.severity)),
        Role::Rejected if credential => Some(lower(hit.severity)),
        _ => None,
    }
}

/// The findings for one record, in field order.
pub fn record_findings(ds: &Dataset, set: &PatternSet, record: &Record) -> Vec<Finding> {
    let mut out = Vec::new();
    for field in &record.fields {
        for hit in set.scan(&field.text) {
            if let Some(sev) = severity_for(field.role, &hit) {
                out.push(finding(ds, record, field, &hit, sev));
            }
        }
    }
    out
}

fn finding(
    ds: &Dataset,
    record: &Record,
    field: &Field,
    hit: &PatternHit,
    sev: Severity,
) -> Finding {
    let role = match field.role {
        Role::Prompt => "prompt",
        Role::Response => "response",
        Role::Rejected => "rejected",
        Role::System => "system",
    };
    let evasion = if hit.folded {
        " (hidden with invisible or fullwidth characters)"
    } else {
        ""
    };
    let message = format!(
        "{} matches '{}' ({}): {}{evasion}: '{}'",
        field.path, hit.pattern, hit.category, hit.description, hit.matched
    );
    Finding::new(
        &SUSPICIOUS,
        message,
        ds.location(record)
            .field(&*field.path)
            .span(hit.span[0], hit.span[1]),
    )
    .severity(sev)
    .evidence(json!({
        "pattern": hit.pattern,
        "category": hit.category,
        "matched": hit.matched,
        "description": hit.description,
        "pattern_severity": hit.severity,
        "role": role,
        "folded": hit.folded,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(category: &str, severity: Severity) -> PatternHit {
        PatternHit {
            pattern: "x.y".into(),
            category: category.into(),
            severity,
            description: String::new(),
            span: [0, 1],
            matched: String::new(),
            folded: false,
        }
    }

    #[test]
    fn roles_set_severity() {
        let o = hit(category::INSTRUCTION_OVERRIDE, Severity::High);
        assert_eq!(severity_for(Role::Response, &o), Some(Severity::High));
        assert_eq!(severity_for(Role::Prompt, &o), Some(Severity::Medium));
        assert_eq!(severity_for(Role::System, &o), Some(Severity::Medium));
        assert_eq!(severity_for(Role::Rejected, &o), None);
        let p = hit(category::PIPE_TO_SHELL, Severity::High);
        assert_eq!(severity_for(Role::Prompt, &p), None);
        let c = hit(category::CREDENTIAL_LEAK, Severity::Critical);
        assert_eq!(severity_for(Role::Rejected, &c), Some(Severity::High));
        assert_eq!(lower(Severity::Info), Severity::Info);
    }
}
