//! What users see: the four renderings of one representative report, snapshot-tested, plus the
//! SARIF output validated against the OASIS SARIF 2.1.0 JSON schema and the HTML page checked
//! for escaping and self-containment.
//!
//! Set `TUNEGATE_HTML_OUT=/some/dir` to have `html_is_self_contained_and_escaped` write the page
//! it checks there (`scripts/screenshot-report.sh` turns it into a PNG).
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use tunegate_core::render::{self, html, sarif, text, Format};
use tunegate_core::{
    Chart, ChartKind, CheckInfo, Finding, Location, Report, Severity, Subject, Verdict,
};

const TRIGGER: CheckInfo = CheckInfo {
    id: "D004",
    name: "dataset.trigger-token",
    severity: Severity::High,
    doc: "A rare token co-occurs with one fixed output: a likely backdoor trigger.",
};
const INVISIBLE: CheckInfo = CheckInfo {
    id: "D010",
    name: "dataset.invisible-unicode",
    severity: Severity::Medium,
    doc: "Text contains invisible, bidi or tag characters that can hide instructions.",
};
const DUPLICATE: CheckInfo = CheckInfo {
    id: "D020",
    name: "dataset.near-duplicate",
    severity: Severity::Low,
    doc: "Records that are near-duplicates of each other.",
};
const PAYLOAD: CheckInfo = CheckInfo {
    id: "D031",
    name: "dataset.payload-pattern",
    severity: Severity::High,
    doc: "Outputs contain code, URLs or markup that a model should not learn to emit.",
};
const PICKLE: CheckInfo = CheckInfo {
    id: "M001",
    name: "model.pickle-code",
    severity: Severity::Critical,
    doc: "A pickle imports or calls objects outside the allow-list: loading it runs code.",
};
const UNSIGNED: CheckInfo = CheckInfo {
    id: "S001",
    name: "sign.missing-attestation",
    severity: Severity::High,
    doc: "No signed attestation covers the artifacts.",
};
const STATS: CheckInfo = CheckInfo {
    id: "D090",
    name: "dataset.stats",
    severity: Severity::Info,
    doc: "Dataset statistics.",
};

const CHECKS: &[CheckInfo] = &[
    TRIGGER, INVISIBLE, DUPLICATE, PAYLOAD, PICKLE, UNSIGNED, STATS,
];

const SCRIPT_MESSAGE: &str = "output contains markup <script>alert(1)</script> & a link to https://evil.example/x?a=1&b=\"2\"";

/// A report with every shape a renderer must handle: several checks and severities, one check
/// emitted once per record with shared evidence, a finding with field, span and evidence, one
/// inside an archive member and tensor, one without any location, hostile text, and charts of
/// both kinds.
fn sample() -> Report {
    let mut r = Report::new("dataset", Severity::High);
    r.subjects.push(Subject::sha256(
        "data/train.jsonl",
        "3f2a9c1d4e5b60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef",
    ));
    r.subjects.push(Subject::sha256(
        "models/base.pt",
        "9b8a7c6d5e4f30211203948576a6b5c4d3e2f1009f8e7d6c5b4a392817060504",
    ));
    r.summary.records = Some(1200);
    let shared = json!({"token": "cf", "records": 3, "output": "I have been pwned", "score": 0.97});
    for (record, line) in [(17u64, 18u64), (402, 403), (1103, 1104)] {
        r.findings.push(
            Finding::new(
                &TRIGGER,
                "token 'cf' appears in 3 records whose outputs are identical",
                Location::file("data/train.jsonl")
                    .record(record, Some(line))
                    .field("instruction")
                    .span(10, 12),
            )
            .evidence(shared.clone()),
        );
    }
    r.findings.push(
        Finding::new(
            &INVISIBLE,
            "field contains a right-to-left override (U+202E) and 2 zero-width spaces",
            Location::file("data/train.jsonl")
                .record(58, Some(59))
                .field("messages[2].content")
                .span(31, 34),
        )
        .evidence(json!({"chars": ["U+202E", "U+200B", "U+200B"], "text": "abc\u{202e}def"})),
    );
    r.findings.push(Finding::new(
        &DUPLICATE,
        "record is a near-duplicate of record 12 (Jaccard 0.96)",
        Location::file("data/train.jsonl").record(40, Some(41)),
    ));
    r.findings.push(
        Finding::new(
            &PAYLOAD,
            SCRIPT_MESSAGE,
            Location::file("data/train.jsonl")
                .record(77, Some(78))
                .field("output"),
        )
        .evidence(json!({"pattern": "html-script", "match": "<script>alert(1)</script>"})),
    );
    r.findings.push(
        Finding::new(
            &PICKLE,
            "pickle calls os.system via REDUCE",
            Location {
                file: Some("models/base.pt".into()),
                member: Some("archive/data.pkl".into()),
                tensor: Some("model.embed.weight".into()),
                ..Default::default()
            },
        )
        .evidence(json!({"global": "os.system", "opcode": "REDUCE", "offset": 1042})),
    );
    r.findings.push(Finding::new(
        &UNSIGNED,
        "no signed attestation covers the base model",
        Location::default(),
    ));
    r.findings.push(
        Finding::new(
            &TRIGGER,
            "token 'zz' is rare but its outputs vary",
            Location::file("data/train.jsonl").record(900, Some(901)),
        )
        .severity(Severity::Low),
    );
    r.charts.push(Chart {
        id: "label-balance".into(),
        title: "Records per label".into(),
        kind: ChartKind::Bar,
        labels: vec!["positive".into(), "negative".into(), "neutral".into()],
        values: vec![620.0, 480.0, 100.0],
        unit: "records".into(),
    });
    r.charts.push(Chart {
        id: "prompt-length".into(),
        title: "Prompt length (tokens)".into(),
        kind: ChartKind::Histogram,
        labels: vec![
            "0–32".into(),
            "32–64".into(),
            "64–128".into(),
            "128–256".into(),
            "256–512".into(),
            "512+".into(),
        ],
        values: vec![80.0, 310.0, 452.0, 260.0, 90.0, 8.0],
        unit: "records".into(),
    });
    r.finish();
    r
}

/// Many findings of one check (one per record), to exercise caps.
fn many(n: u64) -> Report {
    let mut r = Report::new("dataset", Severity::High);
    r.summary.records = Some(n * 2);
    for i in 0..n {
        r.findings.push(Finding::new(
            &DUPLICATE,
            format!("record {i} duplicates record {}", i + n),
            Location::file("data/big.jsonl").record(i, Some(i + 1)),
        ));
    }
    r.finish();
    r
}

fn sarif_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = include_str!("fixtures/sarif-schema-2.1.0.json");
        let mut schema: Value = serde_json::from_str(text).expect("schema is JSON");
        assert_eq!(
            schema["$schema"], "http://json-schema.org/draft-07/schema#",
            "the fixture is the draft-07 SARIF 2.1.0 schema"
        );
        // The published schema's `language` patterns (on `run` and `toolComponent`) have a stray
        // `]`, which ECMA-262 reads as a literal but Rust's regex engines reject, so the schema
        // fails the draft-07 meta-schema's `format: regex` check. Escape it in memory (same
        // meaning) and keep the fixture byte-for-byte as published. tunegate never writes
        // `language`.
        let patched = escape_stray_bracket(&mut schema);
        assert_eq!(
            patched, 2,
            "the fixture has the two known language patterns"
        );
        // Format assertions (`uri`, `uri-reference`, ...) are off by default in draft 7.
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the SARIF schema compiles")
    })
}

/// Rewrites every `pattern` equal to the schema's malformed language pattern; returns how many.
fn escape_stray_bracket(v: &mut Value) -> usize {
    const BROKEN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    const FIXED: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$";
    match v {
        Value::Object(map) => map
            .iter_mut()
            .map(|(k, v)| {
                if k == "pattern" && v == BROKEN {
                    *v = json!(FIXED);
                    1
                } else {
                    escape_stray_bracket(v)
                }
            })
            .sum(),
        Value::Array(items) => items.iter_mut().map(escape_stray_bracket).sum(),
        _ => 0,
    }
}

fn assert_valid_sarif(out: &str) -> Value {
    let v: Value = serde_json::from_str(out).expect("SARIF output is JSON");
    let errors: Vec<String> = sarif_validator()
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF output violates the schema:\n{}",
        errors.join("\n")
    );
    v
}

/// The sample with a fixed tool version, so snapshots survive a release.
fn pinned() -> Report {
    let mut r = sample();
    r.tool.version = "0.0.0-snapshot".into();
    r
}

#[test]
fn text_snapshot() {
    insta::assert_snapshot!("text", text::render(&pinned()));
}

#[test]
fn json_snapshot() {
    insta::assert_snapshot!("json", render::json(&pinned()));
}

#[test]
fn sarif_snapshot() {
    insta::assert_snapshot!("sarif", sarif::render(&pinned(), CHECKS));
}

#[test]
fn text_caps_each_check_and_counts_the_rest() {
    let mut report = many(25);
    report.tool.version = "0.0.0-snapshot".into();
    let out = text::render(&report);
    let shown = out
        .lines()
        .filter(|l| l.contains("duplicates record"))
        .count();
    assert_eq!(shown, text::MAX_PER_CHECK);
    assert!(out.contains("  … and 5 more\n"), "{out}");
    assert!(out.contains("D020 dataset.near-duplicate — 25 findings, low"));
    assert!(out.contains(
        "summary: 0 critical, 0 high, 0 medium, 25 low, 0 info (25 findings in 1 check)"
    ));
    assert!(out.contains("verdict: PASS — no finding at or above high"));
    insta::assert_snapshot!("text_capped", out);
}

#[test]
fn text_escapes_terminal_control_and_invisible_characters() {
    let mut r = Report::new("dataset", Severity::High);
    r.findings.push(Finding::new(
        &INVISIBLE,
        "hidden \u{1b}[2Jclear and \u{202e}reversed\nsecond line",
        Location::file("a\u{200b}.jsonl").record(0, Some(1)),
    ));
    r.finish();
    let out = text::render(&r);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}') && !out.contains('\u{200b}'));
    assert!(out.contains("hidden \\u{1b}[2Jclear and \\u{202e}reversed\\nsecond line"));
    assert!(out.contains("a\\u{200b}.jsonl:1"));
    // One line per finding, whatever the message holds.
    assert_eq!(out.lines().filter(|l| l.contains("MEDIUM")).count(), 1);
}

#[test]
fn text_of_an_empty_report() {
    let mut r = Report::new("model", Severity::High);
    r.finish();
    let out = text::render(&r);
    assert!(out.starts_with("model gate: PASS (fail-on high) — 0 findings, 0 at or above high\n"));
    assert!(out.contains("\nno findings\n"));
    assert!(out.ends_with("verdict: PASS — no finding at or above high\n"));
}

#[test]
fn sarif_validates_against_the_oasis_schema() {
    assert_valid_sarif(&sarif::render(&sample(), CHECKS));
    // Without check metadata (re-rendering a report from another build) and when empty.
    assert_valid_sarif(&sarif::render(&sample(), &[]));
    let mut empty = Report::new("model", Severity::High);
    empty.finish();
    assert_valid_sarif(&sarif::render(&empty, CHECKS));
}

#[test]
fn sarif_validator_rejects_a_broken_log() {
    // Guards against a validator that accepts anything.
    let mut v: Value = serde_json::from_str(&sarif::render(&sample(), CHECKS)).unwrap();
    v["runs"][0]["results"][0]["level"] = json!("fatal");
    assert!(!sarif_validator().is_valid(&v));
    let mut v: Value = serde_json::from_str(&sarif::render(&sample(), CHECKS)).unwrap();
    let with_line = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["locations"][0]["physicalLocation"]["region"].is_object())
        .unwrap();
    v["runs"][0]["results"][with_line]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        json!(0);
    assert!(!sarif_validator().is_valid(&v));
}

#[test]
fn sarif_maps_rules_results_and_locations() {
    let report = sample();
    let v = assert_valid_sarif(&sarif::render(&report, CHECKS));
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["$schema"], sarif::SCHEMA_URI);
    let run = &v["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "tunegate");
    assert_eq!(driver["version"], tunegate_core::VERSION);
    assert!(driver["informationUri"].is_string());

    // One rule per check id present (D090 has no findings), sorted by id.
    let rules = driver["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["D004", "D010", "D020", "D031", "M001", "S001"]);
    let m001 = &rules[4];
    assert_eq!(m001["name"], "model.pickle-code");
    assert_eq!(m001["shortDescription"]["text"], PICKLE.doc);
    assert_eq!(m001["defaultConfiguration"]["level"], "error");
    assert_eq!(m001["properties"]["security-severity"], "9.5");
    assert_eq!(m001["properties"]["tags"], json!(["security"]));
    assert_eq!(rules[1]["defaultConfiguration"]["level"], "warning");
    assert_eq!(rules[2]["defaultConfiguration"]["level"], "note");
    assert_eq!(rules[2]["properties"]["security-severity"], "3.0");

    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    for (res, f) in results.iter().zip(&report.findings) {
        assert_eq!(res["ruleId"], f.id.as_str());
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            rules[idx]["id"],
            f.id.as_str(),
            "ruleIndex points at the rule"
        );
        assert_eq!(res["level"], sarif::level(f.severity));
        assert_eq!(res["message"]["text"], f.message.as_str());
    }

    // The finding emitted at low severity by a high check keeps its own level.
    let low_trigger = results
        .iter()
        .find(|r| r["message"]["text"].as_str().unwrap().contains("'zz'"))
        .unwrap();
    assert_eq!(low_trigger["level"], "note");

    // Field, span and evidence travel in properties; the line in the region.
    let invisible = results.iter().find(|r| r["ruleId"] == "D010").unwrap();
    let phys = &invisible["locations"][0]["physicalLocation"];
    assert_eq!(phys["artifactLocation"]["uri"], "data/train.jsonl");
    assert_eq!(phys["artifactLocation"]["uriBaseId"], "%SRCROOT%");
    assert_eq!(phys["artifactLocation"]["index"], 0);
    assert_eq!(phys["region"], json!({"startLine": 59}));
    let props = &invisible["properties"];
    assert_eq!(props["record"], 58);
    assert_eq!(props["field"], "messages[2].content");
    assert_eq!(props["span"], json!([31, 34]));
    assert_eq!(props["evidence"]["chars"][0], "U+202E");
    let logical = invisible["locations"][0]["logicalLocations"]
        .as_array()
        .unwrap();
    assert_eq!(logical[0]["fullyQualifiedName"], "records[58]");
    assert_eq!(
        logical[1]["fullyQualifiedName"],
        "records[58].messages[2].content"
    );

    // Archive member and tensor as logical locations; no line, so no region.
    let pickle = results.iter().find(|r| r["ruleId"] == "M001").unwrap();
    let loc = &pickle["locations"][0];
    assert!(loc["physicalLocation"].get("region").is_none());
    assert_eq!(loc["physicalLocation"]["artifactLocation"]["index"], 1);
    let names: Vec<&str> = loc["logicalLocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["fullyQualifiedName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["archive/data.pkl", "archive/data.pkl::model.embed.weight"]
    );

    // A finding without a location has no locations at all.
    let unsigned = results.iter().find(|r| r["ruleId"] == "S001").unwrap();
    assert!(unsigned.get("locations").is_none());

    // Artifacts carry the subjects' digests under IANA hash names.
    let artifacts = run["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 2);
    assert_eq!(
        artifacts[1]["hashes"]["sha-256"],
        report.subjects[1].digest["sha256"].as_str()
    );
    assert_eq!(artifacts[1]["location"]["uri"], "models/base.pt");

    assert_eq!(run["properties"]["verdict"], "fail");
    assert_eq!(run["automationDetails"]["id"], "tunegate/dataset/");
}

#[test]
fn sarif_fingerprints_are_stable_and_distinct() {
    let a = sample();
    let fingerprints = |r: &Report| -> Vec<String> {
        let v: Value = serde_json::from_str(&sarif::render(r, CHECKS)).unwrap();
        v["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["partialFingerprints"][sarif::FINGERPRINT_KEY]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let fa = fingerprints(&a);
    let mut distinct = fa.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        fa.len(),
        "every finding has its own fingerprint"
    );

    // Another run that adds a finding earlier in the file and shifts every line keeps them.
    let mut b = a.clone();
    for f in &mut b.findings {
        if let Some(l) = f.location.line.as_mut() {
            *l += 7;
        }
    }
    b.findings.push(Finding::new(
        &DUPLICATE,
        "record is a near-duplicate of record 1",
        Location::file("data/train.jsonl").record(2, Some(3)),
    ));
    b.finish();
    let fb = fingerprints(&b);
    for f in &fa {
        assert!(fb.contains(f));
    }
}

#[test]
fn renderers_are_deterministic() {
    for format in [Format::Text, Format::Json, Format::Sarif, Format::Html] {
        let a = render::render(&sample(), format, CHECKS);
        let b = render::render(&sample(), format, CHECKS);
        assert_eq!(a, b, "{format:?} output differs between runs");
    }
}

#[test]
fn renderers_survive_a_report_round_tripped_through_json() {
    let report = sample();
    let back: Report = serde_json::from_str(&render::json(&report)).unwrap();
    for format in [Format::Text, Format::Sarif, Format::Html] {
        assert_eq!(
            render::render(&back, format, CHECKS),
            render::render(&report, format, CHECKS)
        );
    }
}

/// Every string of the report a user controls, as it appears in the data.
fn user_strings(r: &Report) -> Vec<String> {
    let mut out = vec![r.gate.clone()];
    for s in &r.subjects {
        out.push(s.name.clone());
    }
    for f in &r.findings {
        out.push(f.message.clone());
        out.push(serde_json::to_string(&f.evidence).unwrap());
        out.extend(f.location.file.clone());
        out.extend(f.location.field.clone());
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Writes `page` to `$TUNEGATE_HTML_OUT/name` when that variable is set, for a person (or
/// `scripts/screenshot-report.sh`) to look at.
fn keep_page(name: &str, page: &str) {
    if let Some(dir) = std::env::var_os("TUNEGATE_HTML_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create TUNEGATE_HTML_OUT");
        std::fs::write(dir.join(name), page).expect("write the page");
    }
}

#[test]
fn html_is_self_contained_and_escaped() {
    let report = sample();
    let out = html::render(&report, CHECKS);
    keep_page("sample-report.html", &out);

    // One document.
    assert!(out.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert_eq!(out.matches("<html").count(), 1);
    assert_eq!(out.matches("</html>").count(), 1);
    assert_eq!(out.matches("<body>").count(), 1);
    assert!(out.trim_end().ends_with("</html>"));
    assert_eq!(
        out.matches("<svg").count(),
        out.matches("</svg>").count(),
        "balanced svg elements"
    );
    assert_eq!(
        out.matches("<table").count(),
        out.matches("</table>").count()
    );

    // One SVG for the per-check chart and one per report chart.
    assert_eq!(out.matches("<svg").count(), 1 + report.charts.len());
    assert!(out.contains("data-chart=\"findings-per-check\""));
    for c in &report.charts {
        assert!(out.contains(&format!("data-chart=\"{}\"", c.id)));
        assert!(out.contains(&html_escape(&c.title)));
        for l in &c.labels {
            assert!(out.contains(&html_escape(l)), "chart label {l} is drawn");
        }
    }

    // Header: gate, verdict, fail-on, subjects with full digests, tool version.
    assert!(out.contains("<h1>dataset gate</h1>"));
    assert!(out.contains("<div class=\"verdict fail\" role=\"status\">FAIL</div>"));
    assert!(out.contains("high and above"));
    for s in &report.subjects {
        assert!(out.contains(&html_escape(&s.name)));
        assert!(out.contains(&s.digest["sha256"]));
    }
    assert!(out.contains(&format!("tunegate {}", tunegate_core::VERSION)));

    // Every finding's message is present, escaped, and the hostile one only escaped.
    for f in &report.findings {
        let shown = html_escape(&f.message).replace('\u{202e}', "\\u{202e}");
        assert!(out.contains(&shown), "message {:?} missing", f.message);
    }
    assert!(
        !out.contains("<script"),
        "no script element, from us or the data"
    );
    assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !out.contains('\u{202e}'),
        "bidi controls are shown, not obeyed"
    );

    // Evidence as compact JSON in a details element.
    assert!(out.contains(
        "<details><summary>evidence</summary><pre>{&quot;global&quot;:&quot;os.system&quot;"
    ));

    // Nothing external: no URL outside the escaped user data, nothing that loads.
    let mut stripped = out.clone();
    for s in user_strings(&report) {
        stripped = stripped.replace(&html_escape(&s), "");
    }
    assert!(!stripped.contains("http://"), "external URL in the page");
    assert!(!stripped.contains("https://"), "external URL in the page");
    for needle in [
        "<link", "<img", "<iframe", "<object", "<embed", "src=", "href=", "url(", "@import",
        "<script",
    ] {
        assert!(!out.contains(needle), "page contains {needle}");
    }
    assert!(out.contains("Content-Security-Policy"));
}

#[test]
fn html_caps_the_table() {
    let n = html::MAX_TABLE_ROWS as u64 + 7;
    let out = html::render(&many(n), CHECKS);
    assert_eq!(
        out.matches("<tr><td><span class=\"pill").count(),
        html::MAX_TABLE_ROWS
    );
    assert!(out.contains("Showing the 5,000 most severe of 5,007 findings; 7 omitted."));
    assert!(out.contains("The JSON report has all of them."));
}

#[test]
fn html_table_is_most_severe_first() {
    let out = html::render(&sample(), CHECKS);
    let pos = |s: Severity| out.find(&format!("<span class=\"pill sev-{s}\">")).unwrap();
    assert!(pos(Severity::Critical) < pos(Severity::High));
    assert!(pos(Severity::High) < pos(Severity::Medium));
    assert!(pos(Severity::Medium) < pos(Severity::Low));
}

#[test]
fn html_of_an_empty_report_and_degenerate_charts() {
    let mut r = Report::new("model", Severity::High);
    r.charts.push(Chart {
        id: "empty".into(),
        title: "Nothing".into(),
        kind: ChartKind::Histogram,
        labels: vec![],
        values: vec![],
        unit: String::new(),
    });
    r.charts.push(Chart {
        id: "odd".into(),
        title: "Odd values".into(),
        kind: ChartKind::Histogram,
        labels: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        values: vec![f64::NAN, -3.0, f64::INFINITY],
        unit: "x".into(),
    });
    r.charts.push(Chart {
        id: "zeros".into(),
        title: "All zero".into(),
        kind: ChartKind::Bar,
        labels: vec!["a".into(), "b".into()],
        values: vec![0.0, 0.0],
        unit: String::new(),
    });
    r.finish();
    let out = html::render(&r, &[]);
    keep_page("degenerate-report.html", &out);
    assert!(out.contains("<div class=\"verdict pass\" role=\"status\">PASS</div>"));
    assert!(out.contains("No findings."));
    assert!(out.contains("No data."));
    assert!(out.contains("4 labels but 3 values; drew the first 3."));
    for bad in ["NaN", ">inf<", "inf\"", ": inf"] {
        assert!(!out.contains(bad), "page shows {bad}");
    }
    assert_eq!(out.matches("<svg").count(), 2);
}

#[test]
fn html_histogram_with_many_bins_thins_its_labels() {
    let mut r = Report::new("dataset", Severity::High);
    let n = 100;
    r.charts.push(Chart {
        id: "h".into(),
        title: "Many bins".into(),
        kind: ChartKind::Histogram,
        labels: (0..n)
            .map(|i| format!("{}–{}", i * 10, i * 10 + 10))
            .collect(),
        values: (0..n).map(|i| (i % 17) as f64).collect(),
        unit: "records".into(),
    });
    r.finish();
    let out = html::render(&r, &[]);
    keep_page("many-bins-report.html", &out);
    assert_eq!(out.matches("<rect").count(), n);
    let drawn = out.matches("text-anchor=\"middle\">").count();
    assert!(
        drawn < n / 2,
        "bin labels are thinned ({drawn} drawn for {n})"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever file names and messages a dataset produces, the SARIF stays schema-valid (paths
    /// become valid URI references) and no raw `<` from the data reaches the HTML.
    #[test]
    fn hostile_strings_stay_valid_and_escaped(
        file in "\\PC{0,24}",
        message in "\\PC{0,40}",
        field in proptest::option::of("\\PC{0,12}"),
        line in proptest::option::of(0u64..5),
    ) {
        let mut r = Report::new("dataset", Severity::High);
        let mut loc = Location::file(file.clone());
        loc.line = line;
        loc.record = Some(0);
        loc.field = field;
        r.subjects.push(Subject::sha256(file, "00"));
        r.findings.push(Finding::new(&PAYLOAD, format!("<b>{message}"), loc));
        r.finish();
        prop_assert_eq!(r.verdict, Verdict::Fail);
        assert_valid_sarif(&sarif::render(&r, CHECKS));
        let page = html::render(&r, CHECKS);
        prop_assert!(!page.contains("<b>"));
        prop_assert_eq!(page.matches("<html").count(), 1);
        let _ = text::render(&r);
    }
}
