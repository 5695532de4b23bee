//! in-toto Statement v1: `{_type, subject[], predicateType, predicate}`, generic over the
//! predicate (a JSON value), so the OMS model-signing predicate, tunegate's signed gate reports
//! and SLSA provenance share one type and one DSSE signing path.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `_type` of every in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// A ResourceDescriptor as used in `subject` (and in SLSA `resolvedDependencies`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceDescriptor {
    /// Name of the artifact (a path, a model name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Where it can be fetched, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// DigestSet: algorithm → lowercase hex.
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ResourceDescriptor {
    /// A descriptor with one sha256 digest.
    pub fn sha256(name: impl Into<String>, hex: impl Into<String>) -> Self {
        ResourceDescriptor {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_string(), hex.into())]),
            ..Default::default()
        }
    }
}

/// An in-toto Statement v1. Field order on output is `_type, subject, predicateType,
/// predicate`, as protobuf's JSON printer writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`] for statements tunegate writes.
    #[serde(rename = "_type")]
    pub type_: String,
    /// What the statement is about.
    pub subject: Vec<ResourceDescriptor>,
    /// URI naming the predicate's schema.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    #[serde(default)]
    pub predicate: serde_json::Value,
}

impl Statement {
    /// A statement over `subject` with the given predicate.
    pub fn new(
        subject: Vec<ResourceDescriptor>,
        predicate_type: impl Into<String>,
        predicate: serde_json::Value,
    ) -> Self {
        Statement {
            type_: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// The payload bytes: 2-space indented JSON like Python protobuf's `MessageToJson`.
    pub fn to_payload(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses signed payload bytes; `_type` must be Statement v1.
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        let s: Statement = serde_json::from_slice(bytes).map_err(|e| {
            Error::Format(format!(
                "the signed payload is not an in-toto statement: {e}"
            ))
        })?;
        if s.type_ != STATEMENT_TYPE {
            return Err(Error::Format(format!(
                "the signed statement has _type '{}', expected '{STATEMENT_TYPE}'",
                s.type_
            )));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_field_order() {
        let s = Statement::new(
            vec![ResourceDescriptor::sha256("m", "00ff")],
            "https://example/p",
            serde_json::json!({"b": 1, "a": 2}),
        );
        let p = s.to_payload();
        let text = String::from_utf8(p.clone()).unwrap();
        let i = |k: &str| text.find(k).unwrap();
        assert!(
            i("_type") < i("subject")
                && i("subject") < i("predicateType")
                && i("predicateType") < i("\"predicate\"")
        );
        assert!(text.starts_with("{\n  \"_type\": \"https://in-toto.io/Statement/v1\",\n"));
        assert_eq!(Statement::from_payload(&p).unwrap(), s);
    }

    #[test]
    fn wrong_type_is_refused() {
        let bad = br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[],"predicateType":"x","predicate":{}}"#;
        assert!(Statement::from_payload(bad).is_err());
        assert!(Statement::from_payload(b"{\"_type\":").is_err());
    }
}
