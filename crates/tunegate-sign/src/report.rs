//! Signed gate reports: a `tunegate.report/v1` JSON report becomes an in-toto statement whose
//! subjects are the scanned artifacts' digests and whose predicate holds the report itself and
//! its file digest, so a registry can demand evidence rather than claims.
use crate::checks;
use crate::error::{Error, Result};
use crate::statement::{ResourceDescriptor, Statement};
use crate::verify::VerifyFailure;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Predicate type of a signed tunegate report.
pub const REPORT_PREDICATE_TYPE: &str = "https://tunegate.dev/attestation/report/v1";

/// Builds the statement for a report file's bytes. The subjects are the report's subjects that
/// carry digests; a report without any is its own subject.
pub fn report_statement(report_name: &str, bytes: &[u8]) -> Result<Statement> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Format(format!("{report_name}: not a JSON report: {e}")))?;
    let schema = v.get("schema").and_then(Value::as_str).unwrap_or("");
    if schema != tunegate_core::report::SCHEMA {
        return Err(Error::Format(format!(
            "{report_name}: schema '{schema}' is not {} (write the report with --format json)",
            tunegate_core::report::SCHEMA
        )));
    }
    let file_digest = hex::encode(Sha256::digest(bytes));
    let mut subject: Vec<ResourceDescriptor> = Vec::new();
    for s in v
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        let digest: std::collections::BTreeMap<String, String> = s
            .get("digest")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if !digest.is_empty() {
            subject.push(ResourceDescriptor {
                name: name.to_string(),
                digest,
                ..Default::default()
            });
        }
    }
    if subject.is_empty() {
        subject.push(ResourceDescriptor::sha256(report_name, file_digest.clone()));
    }
    Ok(Statement::new(
        subject,
        REPORT_PREDICATE_TYPE,
        json!({"report_sha256": file_digest, "gate": v.get("gate").cloned().unwrap_or(Value::Null),
               "verdict": v.get("verdict").cloned().unwrap_or(Value::Null), "report": v}),
    ))
}

/// Checks that a verified report statement is about exactly these report bytes.
pub fn check_report(st: &Statement, bytes: &[u8]) -> std::result::Result<(), VerifyFailure> {
    let want = st
        .predicate
        .get("report_sha256")
        .and_then(Value::as_str)
        .unwrap_or("");
    let got = hex::encode(Sha256::digest(bytes));
    if want != got {
        return Err(VerifyFailure {
            check: checks::REPORT_MISMATCH,
            reason: format!(
                "the report file (sha256 {got}) is not the signed report (sha256 {want})"
            ),
            details: Vec::new(),
        });
    }
    Ok(())
}
