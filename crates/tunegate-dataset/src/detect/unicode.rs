//! Invisible (`D005`) and confusable (`D006`) text in every field of every record.
//!
//! The rules live in [`tunegate_core::text::unicode`] so the production monitor applies the
//! same ones to model outputs; this module turns their hits into findings with field paths and
//! char spans. Every role is scanned: hidden text in a prompt trains the model on a trigger just
//! as hidden text in a response trains it on a payload.
//!
//! A field with a pathological number of runs (a zero-width space between every letter) is
//! reported as its first [`MAX_PER_FIELD`] runs plus one summary finding covering the rest, so
//! one record cannot flood the report.
use super::{Ctx, Output};
use crate::checks::{CONFUSABLE, INVISIBLE};
use crate::{Dataset, Field, Record, Role};
use rayon::prelude::*;
use serde_json::json;
use tunegate_core::text::unicode::{
    reveal_excerpt, scan_confusable, scan_invisible, ConfusableHit, ConfusableKind, InvisibleClass,
    Placement, UnicodeHit,
};
use tunegate_core::{Finding, Severity};

/// Findings per field and check reported one by one; the rest are summarized in one finding.
pub const MAX_PER_FIELD: usize = 8;

/// Chars of context on each side of a hit in the evidence excerpt.
const EXCERPT_RADIUS: usize = 24;

/// Runs the detector.
pub fn detect(ctx: &Ctx) -> Output {
    let per_record: Vec<Vec<Finding>> = ctx
        .ds
        .records
        .par_iter()
        .map(|r| record_findings(ctx.ds, r))
        .collect();
    Output {
        findings: per_record.into_iter().flatten().collect(),
        charts: Vec::new(),
    }
}

/// The findings for one record, in field order.
pub fn record_findings(ds: &Dataset, record: &Record) -> Vec<Finding> {
    let mut out = Vec::new();
    for field in &record.fields {
        let invisible = scan_invisible(&field.text);
        push_capped(
            &mut out,
            &invisible,
            |h| invisible_finding(ds, record, field, h),
            |rest| invisible_summary(ds, record, field, rest),
        );
        let confusable = scan_confusable(&field.text);
        push_capped(
            &mut out,
            &confusable,
            |h| confusable_finding(ds, record, field, h),
            |rest| confusable_summary(ds, record, field, rest),
        );
    }
    out
}

fn push_capped<H>(
    out: &mut Vec<Finding>,
    hits: &[H],
    one: impl Fn(&H) -> Finding,
    rest: impl Fn(&[H]) -> Finding,
) {
    if hits.len() <= MAX_PER_FIELD + 1 {
        out.extend(hits.iter().map(one));
    } else {
        out.extend(hits[..MAX_PER_FIELD].iter().map(one));
        out.push(rest(&hits[MAX_PER_FIELD..]));
    }
}

/// The field's name for messages: its role when that is clearer than a JSON path.
fn where_(field: &Field) -> String {
    let role = match field.role {
        Role::Prompt => "prompt",
        Role::Response => "response",
        Role::Rejected => "rejected response",
        Role::System => "system prompt",
    };
    if field.path == role {
        field.path.to_string()
    } else {
        format!("{} ({role})", field.path)
    }
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Prompt => "prompt",
        Role::Response => "response",
        Role::Rejected => "rejected",
        Role::System => "system",
    }
}

/// `2 × U+200B ZERO WIDTH SPACE` or `3 zero-width characters (U+200B, U+2060)`.
fn what(hit: &UnicodeHit) -> String {
    let n = hit.count();
    if hit.code_points.len() == 1 {
        if n == 1 {
            hit.code_points[0].clone()
        } else {
            format!("{n} × {}", hit.code_points[0])
        }
    } else {
        let short: Vec<&str> = hit
            .code_points
            .iter()
            .map(|c| c.split(' ').next().unwrap_or(c))
            .collect();
        format!("{n} {} ({})", hit.class.noun(), short.join(", "))
    }
}

fn invisible_finding(ds: &Dataset, record: &Record, field: &Field, hit: &UnicodeHit) -> Finding {
    let place = where_(field);
    let message = match (hit.class, &hit.decoded, &hit.word) {
        (InvisibleClass::Tag, Some(decoded), _) => format!(
            "{} invisible tag characters spell '{}' in {place}",
            hit.count(),
            clip(decoded, 80)
        ),
        (InvisibleClass::VariationSelector, Some(decoded), _) => format!(
            "{} variation selectors encode the hidden bytes '{}' in {place}",
            hit.count(),
            clip(decoded, 80)
        ),
        (_, _, Some(word)) => format!(
            "{} inside the word '{}' in {place}",
            what(hit),
            clip(word, 60)
        ),
        _ => format!("{} in {place}", what(hit)),
    };
    let mut evidence = json!({
        "class": hit.class.as_str(),
        "code_points": hit.code_points,
        "count": hit.count(),
        "placement": match hit.placement { Placement::InsideWord => "inside-word", Placement::Elsewhere => "elsewhere" },
        "role": role_str(field.role),
        "excerpt": reveal_excerpt(&field.text, hit.span, EXCERPT_RADIUS),
    });
    if let Some(d) = &hit.decoded {
        evidence["decoded"] = json!(d);
    }
    if let Some(w) = &hit.word {
        evidence["word"] = json!(w);
    }
    Finding::new(
        &INVISIBLE,
        message,
        ds.location(record)
            .field(&*field.path)
            .span(hit.span[0], hit.span[1]),
    )
    .severity(hit.severity)
    .evidence(evidence)
}

fn invisible_summary(ds: &Dataset, record: &Record, field: &Field, rest: &[UnicodeHit]) -> Finding {
    let chars: usize = rest.iter().map(UnicodeHit::count).sum();
    let mut classes: Vec<&str> = rest.iter().map(|h| h.class.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    let severity = rest
        .iter()
        .map(|h| h.severity)
        .max()
        .unwrap_or(Severity::Low);
    let span = [rest[0].span[0], rest[rest.len() - 1].span[1]];
    Finding::new(
        &INVISIBLE,
        format!(
            "{} more runs of invisible characters ({chars} chars) in {}",
            rest.len(),
            where_(field)
        ),
        ds.location(record)
            .field(&*field.path)
            .span(span[0], span[1]),
    )
    .severity(severity)
    .evidence(json!({
        "classes": classes,
        "runs": rest.len(),
        "count": chars,
        "role": role_str(field.role),
        "excerpt": reveal_excerpt(&field.text, [span[0], span[0] + 1], EXCERPT_RADIUS),
    }))
}

fn confusable_finding(
    ds: &Dataset,
    record: &Record,
    field: &Field,
    hit: &ConfusableHit,
) -> Finding {
    let place = where_(field);
    let word = clip(&hit.word, 60);
    let reads = clip(&hit.skeleton, 60);
    let message = match hit.kind {
        ConfusableKind::MixedScript => format!(
            "the word '{word}' mixes {} letters and reads as '{reads}' in {place}",
            hit.scripts.join(" and ")
        ),
        ConfusableKind::WholeScript => format!(
            "the {} word '{word}' is made of Latin look-alikes and reads as '{reads}' in {place}",
            hit.scripts.join("/")
        ),
        ConfusableKind::Fullwidth => {
            format!("fullwidth letters '{word}' (folds to '{reads}') in {place}")
        }
        ConfusableKind::Styled => {
            format!("styled math letters '{word}' (folds to '{reads}') in {place}")
        }
    };
    Finding::new(
        &CONFUSABLE,
        message,
        ds.location(record)
            .field(&*field.path)
            .span(hit.span[0], hit.span[1]),
    )
    .severity(hit.severity)
    .evidence(json!({
        "kind": hit.kind.as_str(),
        "word": hit.word,
        "skeleton": hit.skeleton,
        "scripts": hit.scripts,
        "lookalikes": hit.lookalikes,
        "role": role_str(field.role),
        "excerpt": reveal_excerpt(&field.text, hit.span, EXCERPT_RADIUS),
    }))
}

fn confusable_summary(
    ds: &Dataset,
    record: &Record,
    field: &Field,
    rest: &[ConfusableHit],
) -> Finding {
    let severity = rest
        .iter()
        .map(|h| h.severity)
        .max()
        .unwrap_or(Severity::Low);
    let span = [rest[0].span[0], rest[rest.len() - 1].span[1]];
    let words: Vec<&str> = rest.iter().take(20).map(|h| h.word.as_str()).collect();
    Finding::new(
        &CONFUSABLE,
        format!("{} more look-alike words in {}", rest.len(), where_(field)),
        ds.location(record)
            .field(&*field.path)
            .span(span[0], span[1]),
    )
    .severity(severity)
    .evidence(json!({
        "words": words,
        "count": rest.len(),
        "role": role_str(field.role),
    }))
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FileInfo;
    use crate::{Format, Schema};

    fn dataset(text: &str) -> Dataset {
        Dataset {
            files: vec![FileInfo {
                path: "t.jsonl".into(),
                format: Format::Jsonl,
                schema: Schema::PromptCompletion,
                sha256: String::new(),
                size: 0,
                records: 1,
            }],
            records: vec![Record {
                file: 0,
                index: 0,
                line: Some(1),
                raw: None,
                fields: vec![Field {
                    path: "completion".into(),
                    role: Role::Response,
                    text: text.into(),
                }],
                label: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_flooded_field_is_capped_with_a_summary() {
        // 20 zero-width spaces, each splitting a word: 20 runs.
        let text: String =
            "ab".repeat(21)
                .chars()
                .enumerate()
                .fold(String::new(), |mut s, (i, c)| {
                    if i > 0 && i % 2 == 0 {
                        s.push('\u{200B}');
                    }
                    s.push(c);
                    s
                });
        let ds = dataset(&text);
        let f = record_findings(&ds, &ds.records[0]);
        assert_eq!(f.len(), MAX_PER_FIELD + 1, "{f:#?}");
        let last = &f[MAX_PER_FIELD];
        assert_eq!(last.severity, Severity::Medium);
        assert!(last.message.starts_with("12 more runs"), "{}", last.message);
        assert_eq!(last.evidence["runs"], 12);
    }

    #[test]
    fn messages_name_the_field_and_show_hidden_text() {
        let tags: String = "rm -rf /"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let ds = dataset(&format!("ok{tags}"));
        let f = record_findings(&ds, &ds.records[0]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].message,
            "8 invisible tag characters spell 'rm -rf /' in completion (response)"
        );
        assert_eq!(f[0].location.span, Some([2, 10]));
        assert_eq!(f[0].location.field.as_deref(), Some("completion"));
        assert_eq!(f[0].evidence["decoded"], "rm -rf /");
    }
}
