//! The SARIF 2.1.0 renderer, for code-scanning UIs (GitHub code scanning, VS Code's SARIF
//! viewer, DefectDojo, ...).
//!
//! Mapping, one run per report:
//! - `tool.driver.rules`: one `reportingDescriptor` per check id present in the findings, sorted
//!   by id; `defaultConfiguration.level` and `properties.security-severity` come from the check's
//!   default severity (critical/high → `error`, medium → `warning`, low/info → `note`; 9.5, 8.0,
//!   5.5, 3.0, 0.0).
//! - `results`: one per finding, in report order, with `ruleIndex`, the finding's own level, a
//!   physical location (`uriBaseId` `%SRCROOT%` for relative paths, `region.startLine` when the
//!   line is known), logical locations for record, field, archive member and tensor, and the
//!   record/field/span/evidence in `properties` (a span counts chars within a field, which is not
//!   a SARIF column). A finding without a file has no physical location.
//! - `partialFingerprints["tunegateFindingHash/v1"]`: a SHA-256 over the check id, file, record,
//!   field, span, member, tensor and message, so code scanning recognises the same finding across
//!   runs even when line numbers shift.
//! - `artifacts`: the report's subjects with their digests as SARIF `hashes` (`sha-256`, ...).
//!
//! The output is validated against the OASIS JSON schema in the crate's tests.
use crate::{CheckInfo, Finding, Location, Report, Severity};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The `$schema` written into every log.
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The `partialFingerprints` key tunegate writes; the suffix versions the hash recipe.
pub const FINGERPRINT_KEY: &str = "tunegateFindingHash/v1";

/// The `uriBaseId` given to relative paths: the directory the gate ran in.
const SRCROOT: &str = "%SRCROOT%";

/// Renders `report` as a SARIF 2.1.0 log. `checks` supplies rule names, docs and default
/// severities; a check missing from it still gets a rule, built from its findings.
pub fn render(report: &Report, checks: &[CheckInfo]) -> String {
    let mut s = serde_json::to_string_pretty(&log(report, checks)).unwrap_or_default();
    s.push('\n');
    s
}

/// The SARIF level for a severity.
pub fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The numeric `security-severity` (0.0–10.0, as a string) GitHub uses to rank alerts.
pub fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// Rule metadata for one check id.
struct Rule<'a> {
    id: &'a str,
    name: &'a str,
    doc: &'a str,
    severity: Severity,
}

fn rules<'a>(report: &'a Report, checks: &'a [CheckInfo]) -> Vec<Rule<'a>> {
    let known: BTreeMap<&str, &CheckInfo> = checks.iter().map(|c| (c.id, c)).collect();
    let mut by_id: BTreeMap<&str, Rule<'a>> = BTreeMap::new();
    for f in &report.findings {
        let known = known.get(f.id.as_str()).copied();
        by_id
            .entry(f.id.as_str())
            .and_modify(|r| {
                if known.is_none() {
                    r.severity = r.severity.max(f.severity);
                }
            })
            .or_insert_with(|| match known {
                Some(c) => Rule {
                    id: c.id,
                    name: c.name,
                    doc: c.doc,
                    severity: c.severity,
                },
                None => Rule {
                    id: &f.id,
                    name: &f.check,
                    doc: &f.check,
                    severity: f.severity,
                },
            });
    }
    by_id.into_values().collect()
}

fn log(report: &Report, checks: &[CheckInfo]) -> Value {
    let rules = rules(report, checks);
    let rule_index: BTreeMap<&str, usize> =
        rules.iter().enumerate().map(|(i, r)| (r.id, i)).collect();

    let mut driver = Map::new();
    driver.insert("name".into(), json!(report.tool.name));
    driver.insert("version".into(), json!(report.tool.version));
    let repo = env!("CARGO_PKG_REPOSITORY");
    if !repo.is_empty() {
        driver.insert("informationUri".into(), json!(repo));
    }
    driver.insert(
        "rules".into(),
        Value::Array(rules.iter().map(rule_json).collect()),
    );

    let artifacts: Vec<Value> = report.subjects.iter().map(artifact_json).collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| result_json(f, rule_index.get(f.id.as_str()).copied(), report))
        .collect();

    let mut run = Map::new();
    run.insert("tool".into(), json!({ "driver": Value::Object(driver) }));
    run.insert(
        "automationDetails".into(),
        json!({ "id": format!("tunegate/{}/", report.gate) }),
    );
    if !artifacts.is_empty() {
        run.insert("artifacts".into(), Value::Array(artifacts));
    }
    run.insert("results".into(), Value::Array(results));
    let mut props = Map::new();
    props.insert("gate".into(), json!(report.gate));
    props.insert("verdict".into(), json!(report.verdict));
    props.insert("failOn".into(), json!(report.fail_on));
    if let Some(r) = report.summary.records {
        props.insert("records".into(), json!(r));
    }
    if let Some(r) = report.summary.flagged_records {
        props.insert("flaggedRecords".into(), json!(r));
    }
    run.insert("properties".into(), Value::Object(props));

    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [Value::Object(run)],
    })
}

fn rule_json(r: &Rule<'_>) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "shortDescription": { "text": r.doc },
        "defaultConfiguration": { "level": level(r.severity) },
        "properties": {
            "security-severity": security_severity(r.severity),
            "tags": ["security"],
            "severity": r.severity,
        },
    })
}

fn artifact_json(s: &crate::Subject) -> Value {
    let hashes: Map<String, Value> = s
        .digest
        .iter()
        .map(|(alg, hex)| (hash_name(alg), json!(hex)))
        .collect();
    let mut a = Map::new();
    a.insert("location".into(), artifact_location(&s.name, None));
    a.insert("roles".into(), json!(["analysisTarget"]));
    if !hashes.is_empty() {
        a.insert("hashes".into(), Value::Object(hashes));
    }
    Value::Object(a)
}

/// SARIF wants IANA hash names: `sha256` → `sha-256`.
fn hash_name(alg: &str) -> String {
    let lower = alg.to_ascii_lowercase();
    match lower.strip_prefix("sha") {
        Some(bits) if !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()) => {
            format!("sha-{bits}")
        }
        _ => lower,
    }
}

fn result_json(f: &Finding, rule_index: Option<usize>, report: &Report) -> Value {
    let loc = &f.location;
    let mut r = Map::new();
    r.insert("ruleId".into(), json!(f.id));
    if let Some(i) = rule_index {
        r.insert("ruleIndex".into(), json!(i));
    }
    r.insert("level".into(), json!(level(f.severity)));
    r.insert("message".into(), json!({ "text": f.message }));

    let mut location = Map::new();
    if let Some(file) = &loc.file {
        let artifact_index = report.subjects.iter().position(|s| &s.name == file);
        let mut physical = Map::new();
        physical.insert(
            "artifactLocation".into(),
            artifact_location(file, artifact_index),
        );
        if let Some(line) = loc.line.filter(|&l| l >= 1) {
            physical.insert("region".into(), json!({ "startLine": line }));
        }
        location.insert("physicalLocation".into(), Value::Object(physical));
    }
    let logical = logical_locations(loc);
    if !logical.is_empty() {
        location.insert("logicalLocations".into(), Value::Array(logical));
    }
    if !location.is_empty() {
        r.insert("locations".into(), json!([Value::Object(location)]));
    }

    r.insert(
        "partialFingerprints".into(),
        json!({ FINGERPRINT_KEY: fingerprint(f) }),
    );

    let mut props = Map::new();
    props.insert("check".into(), json!(f.check));
    props.insert("severity".into(), json!(f.severity));
    props.insert(
        "security-severity".into(),
        json!(security_severity(f.severity)),
    );
    if let Some(v) = loc.record {
        props.insert("record".into(), json!(v));
    }
    if let Some(v) = &loc.field {
        props.insert("field".into(), json!(v));
    }
    if let Some(v) = loc.span {
        props.insert("span".into(), json!(v));
    }
    if let Some(v) = &loc.member {
        props.insert("member".into(), json!(v));
    }
    if let Some(v) = &loc.tensor {
        props.insert("tensor".into(), json!(v));
    }
    if !(f.evidence.is_null() || f.evidence.as_object().is_some_and(|o| o.is_empty())) {
        props.insert("evidence".into(), f.evidence.clone());
    }
    r.insert("properties".into(), Value::Object(props));
    Value::Object(r)
}

/// Record (and field within it), archive member (and tensor within it) as logical locations.
/// The nesting shows in `fullyQualifiedName`; `parentIndex` would point into
/// `run.logicalLocations`, which tunegate does not write.
fn logical_locations(loc: &Location) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(record) = loc.record {
        let fq = format!("records[{record}]");
        out.push(json!({ "name": format!("record {record}"), "fullyQualifiedName": fq, "kind": "element" }));
        if let Some(field) = &loc.field {
            out.push(json!({
                "name": field,
                "fullyQualifiedName": format!("{fq}.{field}"),
                "kind": "property",
            }));
        }
    }
    if let Some(member) = &loc.member {
        out.push(json!({ "name": member, "fullyQualifiedName": member, "kind": "resource" }));
    }
    if let Some(tensor) = &loc.tensor {
        let fq = match &loc.member {
            Some(m) => format!("{m}::{tensor}"),
            None => tensor.clone(),
        };
        out.push(json!({ "name": tensor, "fullyQualifiedName": fq, "kind": "variable" }));
    }
    out
}

/// Stable across runs: the same finding on the same data hashes alike whatever its line number
/// or position in the report. Fields are length-prefixed so no two inputs share an encoding.
pub fn fingerprint(f: &Finding) -> String {
    let loc = &f.location;
    let span = loc.span.map(|[a, b]| format!("{a}..{b}"));
    let record = loc.record.map(|r| r.to_string());
    let parts: [Option<&str>; 8] = [
        Some(f.id.as_str()),
        loc.file.as_deref(),
        record.as_deref(),
        loc.field.as_deref(),
        span.as_deref(),
        loc.member.as_deref(),
        loc.tensor.as_deref(),
        Some(f.message.as_str()),
    ];
    let mut h = Sha256::new();
    for p in parts {
        match p {
            Some(s) => {
                h.update((s.len() as u64 + 1).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(0u64.to_le_bytes()),
        }
    }
    hex::encode(h.finalize())
}

/// An `artifactLocation` for a path as the user gave it: relative paths get `%SRCROOT%`,
/// absolute ones become `file://` URIs; backslashes become slashes and everything outside the
/// URI's unreserved set is percent-encoded.
fn artifact_location(path: &str, index: Option<usize>) -> Value {
    let mut p = path.replace('\\', "/");
    let windows_drive = {
        let b = p.as_bytes();
        b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'/'
    };
    let mut loc = Map::new();
    if p.starts_with('/') || windows_drive {
        if windows_drive {
            p.insert(0, '/');
        }
        let encoded = percent_encode(&p, true);
        loc.insert("uri".into(), json!(format!("file://{encoded}")));
    } else {
        while let Some(rest) = p.strip_prefix("./") {
            p = rest.to_string();
        }
        loc.insert("uri".into(), json!(percent_encode(&p, false)));
        loc.insert("uriBaseId".into(), json!(SRCROOT));
    }
    if let Some(i) = index {
        loc.insert("index".into(), json!(i));
    }
    Value::Object(loc)
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `/` (and `:` in the path
/// of an absolute `file` URI, where it cannot read as a scheme). A `:` in a relative path is
/// always encoded, so `a:b` can never read as a scheme.
fn percent_encode(s: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
            || (keep_colon && b == b':');
        if keep {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            artifact_location("./data/a b.jsonl", None),
            json!({"uri": "data/a%20b.jsonl", "uriBaseId": "%SRCROOT%"})
        );
        assert_eq!(
            artifact_location("/tmp/x.pt", Some(2)),
            json!({"uri": "file:///tmp/x.pt", "index": 2})
        );
        assert_eq!(
            artifact_location("C:\\data\\ü.csv", None),
            json!({"uri": "file:///C:/data/%C3%BC.csv"})
        );
        assert_eq!(
            artifact_location("a:b", None)["uri"],
            json!("a%3Ab"),
            "a relative path must not look like a scheme"
        );
    }

    #[test]
    fn hash_names() {
        assert_eq!(hash_name("sha256"), "sha-256");
        assert_eq!(hash_name("SHA512"), "sha-512");
        assert_eq!(hash_name("blake3"), "blake3");
        assert_eq!(hash_name("sha"), "sha");
    }

    #[test]
    fn fingerprint_ignores_line_but_not_record() {
        let c = CheckInfo {
            id: "D001",
            name: "dataset.x",
            severity: Severity::Low,
            doc: "x",
        };
        let a = Finding::new(&c, "m", Location::file("f").record(1, Some(2)));
        let b = Finding::new(&c, "m", Location::file("f").record(1, Some(9)));
        let d = Finding::new(&c, "m", Location::file("f").record(2, Some(2)));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&d));
        assert_eq!(fingerprint(&a).len(), 64);
    }
}
