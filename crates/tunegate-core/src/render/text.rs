//! The text renderer: what a person reads at a terminal or in a CI log.
//!
//! Layout: a header (gate, verdict with the fail-on threshold, tool, subjects with short
//! digests, record counts), then the findings grouped by check, most severe check first, with at
//! most [`MAX_PER_CHECK`] findings shown per check (a finding about many records is emitted once
//! per record, so one check can produce thousands of lines; the JSON report has them all), then
//! the counts by severity and the verdict again.
//!
//! The output is plain, deterministic UTF-8: no colour, no timestamps, no terminal width
//! detection. Every string that came from the inspected artifacts goes through [`visible`], so a
//! control, bidi or invisible character in a dataset cannot rewrite the terminal or hide text.
use crate::{Finding, Location, Report, Severity, Verdict};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The most findings listed under one check; the rest are summarised as "… and K more".
pub const MAX_PER_CHECK: usize = 20;

/// Messages longer than this many chars are clipped in text output.
const MAX_MESSAGE_CHARS: usize = 400;

/// Renders `report` as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    let groups = group_by_check(&report.findings);
    if groups.is_empty() {
        out.push_str("\nno findings\n");
    }
    for g in &groups {
        group(&mut out, g);
    }
    summary(&mut out, report, groups.len());
    out
}

fn header(out: &mut String, report: &Report) {
    let failing = report
        .findings
        .iter()
        .filter(|f| f.severity >= report.fail_on)
        .count();
    let _ = writeln!(
        out,
        "{} gate: {} (fail-on {}) — {}, {} at or above {}",
        visible(&report.gate),
        verdict_word(report.verdict),
        report.fail_on,
        plural(report.findings.len(), "finding"),
        failing,
        report.fail_on,
    );
    let _ = writeln!(
        out,
        "  tool     {} {}",
        visible(&report.tool.name),
        visible(&report.tool.version)
    );
    let width = report
        .subjects
        .iter()
        .map(|s| visible(&s.name).chars().count())
        .max()
        .unwrap_or(0);
    for s in &report.subjects {
        let name = visible(&s.name);
        let pad = width.saturating_sub(name.chars().count());
        let _ = writeln!(
            out,
            "  subject  {name}{}  {}",
            " ".repeat(pad),
            short_digest(&s.digest)
        );
    }
    if let Some(records) = report.summary.records {
        match report.summary.flagged_records {
            Some(flagged) => {
                let _ = writeln!(out, "  records  {records} read, {flagged} flagged");
            }
            None => {
                let _ = writeln!(out, "  records  {records} read");
            }
        }
    }
}

/// `sha256:3f2a9c1d4e5b…`, preferring sha256 when a subject has several digests.
fn short_digest(digest: &BTreeMap<String, String>) -> String {
    let chosen = digest
        .get_key_value("sha256")
        .or_else(|| digest.iter().next());
    match chosen {
        Some((alg, hex)) => {
            let hex = visible(hex);
            let short: String = hex.chars().take(12).collect();
            let ellipsis = if hex.chars().count() > 12 { "…" } else { "" };
            format!("{}:{short}{ellipsis}", visible(alg))
        }
        None => "(no digest)".to_string(),
    }
}

/// The findings of one check id, in report order.
pub(super) struct Group<'a> {
    /// Check id (`D004`).
    pub id: &'a str,
    /// Check name, from the first finding.
    pub name: &'a str,
    /// Highest severity among the findings.
    pub max: Severity,
    /// Count per severity.
    pub by_severity: BTreeMap<Severity, usize>,
    /// The findings, in report order.
    pub findings: Vec<&'a Finding>,
}

/// Groups findings by check id; most severe group first, then by id.
pub(super) fn group_by_check(findings: &[Finding]) -> Vec<Group<'_>> {
    let mut groups: BTreeMap<&str, Group<'_>> = BTreeMap::new();
    for f in findings {
        let g = groups.entry(f.id.as_str()).or_insert_with(|| Group {
            id: &f.id,
            name: &f.check,
            max: f.severity,
            by_severity: BTreeMap::new(),
            findings: Vec::new(),
        });
        g.max = g.max.max(f.severity);
        *g.by_severity.entry(f.severity).or_insert(0) += 1;
        g.findings.push(f);
    }
    let mut groups: Vec<Group<'_>> = groups.into_values().collect();
    // Stable sort: ties keep id order from the BTreeMap.
    groups.sort_by_key(|g| std::cmp::Reverse(g.max));
    groups
}

fn group(out: &mut String, g: &Group<'_>) {
    let severities = g
        .by_severity
        .keys()
        .rev()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "\n{} {} — {}, {}",
        visible(g.id),
        visible(g.name),
        plural(g.findings.len(), "finding"),
        severities
    );
    for f in g.findings.iter().take(MAX_PER_CHECK) {
        let loc = location_text(&f.location);
        let _ = writeln!(
            out,
            "  {loc} — {} {}",
            f.severity.as_str().to_ascii_uppercase(),
            clip(&visible(&f.message), MAX_MESSAGE_CHARS)
        );
    }
    if g.findings.len() > MAX_PER_CHECK {
        let _ = writeln!(out, "  … and {} more", g.findings.len() - MAX_PER_CHECK);
    }
}

/// `data/train.jsonl:1204 [record 1203] input (chars 10..12)`; `(no location)` when empty.
pub(super) fn location_text(loc: &Location) -> String {
    let mut parts: Vec<String> = Vec::new();
    match (&loc.file, loc.line) {
        (Some(file), Some(line)) => parts.push(format!("{}:{line}", visible(file))),
        (Some(file), None) => parts.push(visible(file).into_owned()),
        (None, Some(line)) => parts.push(format!("line {line}")),
        (None, None) => {}
    }
    if let Some(member) = &loc.member {
        parts.push(format!("[member {}]", visible(member)));
    }
    if let Some(record) = loc.record {
        parts.push(format!("[record {record}]"));
    }
    if let Some(tensor) = &loc.tensor {
        parts.push(format!("[tensor {}]", visible(tensor)));
    }
    match (&loc.field, loc.span) {
        (Some(field), Some([a, b])) => parts.push(format!("{} (chars {a}..{b})", visible(field))),
        (Some(field), None) => parts.push(visible(field).into_owned()),
        (None, Some([a, b])) => parts.push(format!("(chars {a}..{b})")),
        (None, None) => {}
    }
    if parts.is_empty() {
        "(no location)".to_string()
    } else {
        parts.join(" ")
    }
}

fn summary(out: &mut String, report: &Report, checks: usize) {
    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for f in &report.findings {
        *counts.entry(f.severity).or_insert(0) += 1;
    }
    let by_sev = Severity::ALL
        .iter()
        .rev()
        .map(|s| format!("{} {s}", counts.get(s).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "\nsummary: {by_sev} ({} in {})",
        plural(report.findings.len(), "finding"),
        plural(checks, "check")
    );
    let failing = report
        .findings
        .iter()
        .filter(|f| f.severity >= report.fail_on)
        .count();
    let _ = match report.verdict {
        Verdict::Fail => writeln!(
            out,
            "verdict: FAIL — {} at or above {}",
            plural(failing, "finding"),
            report.fail_on
        ),
        Verdict::Pass => writeln!(
            out,
            "verdict: PASS — no finding at or above {}",
            report.fail_on
        ),
    };
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    }
}

/// `1 finding`, `3 findings`.
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Clips `s` to `max` chars, marking the cut with `…`.
pub(super) fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// Makes every character a reader could not see, or that could change how the rest is shown,
/// visible as an escape: C0/C1 controls (`\n`, `\t`, `\r`, `\u{1b}`), line and paragraph
/// separators, and the default-ignorable code points (zero-width, bidi controls, tags, variation
/// selectors) that `crate::text::unicode` flags. Borrowed when nothing needs escaping.
pub(super) fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}')
        || crate::text::unicode::is_default_ignorable(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_escapes_controls_and_invisibles() {
        assert_eq!(visible("plain"), "plain");
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
        assert_eq!(visible("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(visible("x\u{202e}y\u{200b}z"), "x\\u{202e}y\\u{200b}z");
        assert_eq!(visible("tag\u{e0041}"), "tag\\u{e0041}");
    }

    #[test]
    fn clip_counts_chars_not_bytes() {
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip("éé", 2), "éé");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn location_text_shows_what_is_set() {
        assert_eq!(location_text(&Location::default()), "(no location)");
        let l = Location::file("a.jsonl")
            .record(3, Some(4))
            .field("input")
            .span(1, 2);
        assert_eq!(location_text(&l), "a.jsonl:4 [record 3] input (chars 1..2)");
        let l = Location {
            file: Some("m.pt".into()),
            member: Some("archive/data.pkl".into()),
            tensor: Some("w".into()),
            ..Default::default()
        };
        assert_eq!(
            location_text(&l),
            "m.pt [member archive/data.pkl] [tensor w]"
        );
    }
}
