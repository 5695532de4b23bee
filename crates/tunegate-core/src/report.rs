//! The report schema `tunegate.report/v1`.
use crate::{CheckInfo, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema tag written into every report.
pub const SCHEMA: &str = "tunegate.report/v1";

/// Where a finding points. Every field is optional; renderers show what is set.
///
/// Invariants: `record` is the 0-based index of the record in its file in read order; `line` is
/// 1-based; `span` is a half-open range of Unicode scalar values (chars) within `field`'s text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The file, as the user named it (relative paths stay relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 0-based record index in read order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// 1-based line number for line-oriented formats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The column or JSON path (`messages[2].content`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Half-open char range within the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
    /// A tensor name (model gates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
    /// A file inside an archive (model gates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

impl Location {
    /// A location in `file`.
    pub fn file(file: impl Into<String>) -> Self {
        Location {
            file: Some(file.into()),
            ..Default::default()
        }
    }
    /// Sets the record index and (when known) 1-based line.
    pub fn record(mut self, record: u64, line: Option<u64>) -> Self {
        self.record = Some(record);
        self.line = line;
        self
    }
    /// Sets the field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    /// Sets the span.
    pub fn span(mut self, start: usize, end: usize) -> Self {
        self.span = Some([start, end]);
        self
    }
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable check id (`D004`).
    pub id: String,
    /// Stable check name (`dataset.trigger-token`).
    pub check: String,
    /// Severity of this finding (the check's default unless evidence moved it).
    pub severity: Severity,
    /// One sentence a person can act on.
    pub message: String,
    /// Where.
    pub location: Location,
    /// Machine-readable evidence (scores, matched text, cluster ids, ...).
    #[serde(default, skip_serializing_if = "is_empty_evidence")]
    pub evidence: serde_json::Value,
}

fn is_empty_evidence(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

impl Finding {
    /// A finding of `check` at its default severity.
    pub fn new(check: &CheckInfo, message: impl Into<String>, location: Location) -> Self {
        Finding {
            id: check.id.to_string(),
            check: check.name.to_string(),
            severity: check.severity,
            message: message.into(),
            location,
            evidence: serde_json::Value::Null,
        }
    }
    /// Overrides the severity.
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }
    /// Attaches evidence.
    pub fn evidence(mut self, e: serde_json::Value) -> Self {
        self.evidence = e;
        self
    }
}

/// An artifact the report is about, with its digests (`{"sha256": "…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Path or name as the user gave it.
    pub name: String,
    /// Algorithm → lowercase hex digest.
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject with one sha256 digest.
    pub fn sha256(name: impl Into<String>, hex: impl Into<String>) -> Self {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_string(), hex.into())]),
        }
    }
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No finding at or above the threshold.
    Pass,
    /// At least one finding at or above the threshold.
    Fail,
}

/// Counts a reader of the report wants first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records read (dataset gates); files for file gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Severity name → count.
    #[serde(default)]
    pub findings_by_severity: BTreeMap<Severity, u64>,
    /// Check name → count.
    #[serde(default)]
    pub findings_by_check: BTreeMap<String, u64>,
    /// Distinct records with a finding at or above `fail_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged_records: Option<u64>,
}

/// How a chart is drawn.
///
/// Serialized as `"bar"`, `"histogram"`, `{"heatmap": {"columns": [...]}}` or
/// `{"scatter": {"x": "…", "y": "…"}}`; reports written before the heatmap and scatter kinds
/// existed read unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// Horizontal bars, one per label.
    Bar,
    /// Vertical bars over ordered bins; labels are bin edges or ranges.
    Histogram,
    /// A grid: `labels` name the rows, `columns` the columns, and `values` holds
    /// `labels.len() * columns.len()` cells in row-major order. Cells are drawn on a log scale;
    /// a negative value marks an empty cell (nothing there), zero means "no change".
    Heatmap {
        /// Column labels.
        columns: Vec<String>,
    },
    /// Points in a plane: `labels` holds one series name per point (points of one series share
    /// a colour and a legend entry) and `values` holds `2 * labels.len()` numbers, the `(x, y)`
    /// of each point in order. Non-finite points are skipped.
    Scatter {
        /// Caption of the x axis.
        x: String,
        /// Caption of the y axis.
        y: String,
    },
}

/// Data for one chart in the HTML report. Gates add charts; renderers draw them generically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Stable id (`findings-per-check`).
    pub id: String,
    /// Title shown above the chart.
    pub title: String,
    /// Bar, histogram, heatmap or scatter.
    pub kind: ChartKind,
    /// One label per value (per row for a heatmap).
    pub labels: Vec<String>,
    /// Values, same length as `labels` (rows × columns, row-major, for a heatmap).
    pub values: Vec<f64>,
    /// What the values measure (axis caption).
    #[serde(default)]
    pub unit: String,
}

/// A gate's report. Build with [`Report::new`], push findings, then [`Report::finish`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The producing tool.
    pub tool: Tool,
    /// Which gate (`dataset`, `model`, ...).
    pub gate: String,
    /// The artifacts examined, with digests.
    pub subjects: Vec<Subject>,
    /// The threshold the verdict was computed with.
    pub fail_on: Severity,
    /// Pass or fail.
    pub verdict: Verdict,
    /// Counts.
    pub summary: Summary,
    /// Findings, ordered by file, record, then check id.
    pub findings: Vec<Finding>,
    /// Charts for the HTML renderer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<Chart>,
}

/// Tool name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `tunegate`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl Report {
    /// An empty passing report for `gate`.
    pub fn new(gate: impl Into<String>, fail_on: Severity) -> Self {
        Report {
            schema: SCHEMA.to_string(),
            tool: Tool {
                name: "tunegate".into(),
                version: crate::VERSION.into(),
            },
            gate: gate.into(),
            subjects: Vec::new(),
            fail_on,
            verdict: Verdict::Pass,
            summary: Summary::default(),
            findings: Vec::new(),
            charts: Vec::new(),
        }
    }

    /// Sorts findings into their stable order, fills the summary and computes the verdict.
    /// Call after all findings are in; idempotent.
    pub fn finish(&mut self) {
        self.findings.sort_by(|a, b| {
            (
                &a.location.file,
                a.location.record,
                &a.id,
                &a.location.field,
                a.location.span,
            )
                .cmp(&(
                    &b.location.file,
                    b.location.record,
                    &b.id,
                    &b.location.field,
                    b.location.span,
                ))
        });
        let mut by_sev = BTreeMap::new();
        let mut by_check = BTreeMap::new();
        let mut flagged = std::collections::BTreeSet::new();
        for f in &self.findings {
            *by_sev.entry(f.severity).or_insert(0) += 1;
            *by_check.entry(f.check.clone()).or_insert(0) += 1;
            if f.severity >= self.fail_on {
                if let Some(r) = f.location.record {
                    flagged.insert((f.location.file.clone(), r));
                }
            }
        }
        self.summary.findings_by_severity = by_sev;
        self.summary.findings_by_check = by_check;
        if self.summary.records.is_some() {
            self.summary.flagged_records = Some(flagged.len() as u64);
        }
        self.verdict = if self.findings.iter().any(|f| f.severity >= self.fail_on) {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
    }

    /// Re-evaluates the verdict against another threshold (for `report render --fail-on`).
    pub fn with_fail_on(mut self, fail_on: Severity) -> Self {
        self.fail_on = fail_on;
        self.finish();
        self
    }

    /// The highest severity present, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const C: CheckInfo = CheckInfo {
        id: "D999",
        name: "dataset.test",
        severity: Severity::Medium,
        doc: "test",
    };

    #[test]
    fn verdict_follows_threshold() {
        let mut r = Report::new("dataset", Severity::High);
        r.summary.records = Some(3);
        r.findings.push(Finding::new(
            &C,
            "m",
            Location::file("a").record(2, Some(3)),
        ));
        r.finish();
        assert_eq!(r.verdict, Verdict::Pass);
        assert_eq!(r.summary.flagged_records, Some(0));
        let r = r.with_fail_on(Severity::Medium);
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.summary.flagged_records, Some(1));
        assert_eq!(r.summary.findings_by_severity[&Severity::Medium], 1);
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let mut r = Report::new("dataset", Severity::High);
        r.subjects.push(Subject::sha256("a.jsonl", "00"));
        r.findings.push(
            Finding::new(
                &C,
                "m",
                Location::file("a.jsonl").record(0, Some(1)).span(1, 3),
            )
            .evidence(serde_json::json!({"k": 1})),
        );
        r.finish();
        let s = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
        assert!(s.contains("\"schema\":\"tunegate.report/v1\""));
    }

    #[test]
    fn chart_kinds_serialize_compatibly() {
        assert_eq!(serde_json::to_string(&ChartKind::Bar).unwrap(), "\"bar\"");
        let back: ChartKind = serde_json::from_str("\"histogram\"").unwrap();
        assert_eq!(back, ChartKind::Histogram);
        let h = ChartKind::Heatmap {
            columns: vec!["q".into()],
        };
        let s = serde_json::to_string(&h).unwrap();
        assert_eq!(s, r#"{"heatmap":{"columns":["q"]}}"#);
        assert_eq!(serde_json::from_str::<ChartKind>(&s).unwrap(), h);
    }
}
