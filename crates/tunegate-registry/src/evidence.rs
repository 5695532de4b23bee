//! Evidence: a Sigstore bundle (DSSE over an in-toto statement) attached to a version. The
//! registry stores the bundle bytes as given and verifies them again at every evaluation with
//! the policy's current keys, so rotating a key out takes effect at once. Nothing in an
//! unverified payload is trusted: it is read only to say what the evidence claims to be.
use crate::policy::Policy;
use serde_json::Value;
use std::collections::BTreeSet;
use tunegate_core::Severity;
use tunegate_sign::bundle::Bundle;
use tunegate_sign::manifest::{Manifest, PREDICATE_TYPE, PREDICATE_TYPE_COMPAT};
use tunegate_sign::report::REPORT_PREDICATE_TYPE;
use tunegate_sign::statement::Statement;
use tunegate_sign::verify::{verify_bundle, Trust};

/// Predicate type prefix of SLSA provenance (v1 and later).
pub const SLSA_PREFIX: &str = "https://slsa.dev/provenance/";

/// What a bundle is, whether it verified, and what it says.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Evidence kind ([`crate::policy::KINDS`]) or `other`.
    pub kind: String,
    /// `Ok(key name)` when a policy key verified the signature; `Err(reason)` otherwise.
    pub signer: Result<String, String>,
    /// Subject digests (sha256 hex) the statement is about.
    pub subjects: Vec<(String, String)>,
    /// For provenance: sha256 digests of the resolved dependencies (the run's inputs).
    pub inputs: Vec<String>,
    /// Report verdict (`pass`/`fail`) when the evidence is a signed report.
    pub verdict: Option<String>,
    /// Report findings: (id, severity, message).
    pub findings: Vec<(String, Severity, String)>,
    /// Signed time (seconds) when the statement carries one.
    pub signed_at: Option<i64>,
    /// Root digest and per-file digests of a model signature's manifest.
    pub manifest: Option<(String, Vec<String>)>,
    /// Malformed: the bundle could not be understood at all.
    pub malformed: Option<String>,
}

fn sha_subjects(st: &Statement) -> Vec<(String, String)> {
    st.subject
        .iter()
        .filter_map(|s| {
            s.digest
                .get("sha256")
                .map(|d| (s.name.clone(), d.to_ascii_lowercase()))
        })
        .collect()
}

fn report_kind(gate: &str, hint: Option<&str>) -> String {
    let g = gate.to_ascii_lowercase();
    if g == "dataset" {
        "dataset".into()
    } else if g == "model" || g == "lint" {
        match hint {
            Some("base") => "base".into(),
            _ => "model".into(),
        }
    } else if g.contains("backdoor") || g.contains("behav") {
        "backdoor".into()
    } else if g.contains("safety") {
        "safety".into()
    } else {
        format!("other:{g}")
    }
}

/// Classifies and verifies bundle bytes against the policy's keys. `hint` is the kind the user
/// named when attaching (`base=FILE`), used where the statement alone is ambiguous.
pub fn check(bytes: &[u8], policy: &Policy, hint: Option<&str>) -> Checked {
    let mut c = Checked {
        kind: hint.unwrap_or("other").to_string(),
        signer: Err("not verified".into()),
        subjects: Vec::new(),
        inputs: Vec::new(),
        verdict: None,
        findings: Vec::new(),
        signed_at: None,
        manifest: None,
        malformed: None,
    };
    let bundle = match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => {
            c.malformed = Some(e);
            return c;
        }
    };
    // Verify first; only a verified statement's content is used for decisions.
    let mut reason = if policy.keys.is_empty() {
        "the policy registers no keys ([registry.keys])".to_string()
    } else {
        String::new()
    };
    let mut verified: Option<Statement> = None;
    for (name, key) in &policy.keys {
        match verify_bundle(&bundle, &Trust::Key(key.clone())) {
            Ok(vs) => {
                c.signer = Ok(name.clone());
                verified = Some(vs.statement);
                break;
            }
            Err(f) => {
                if reason.is_empty() || f.check.id != "S002" {
                    reason = format!("{}: {}", f.check.id, f.reason);
                }
            }
        }
    }
    let st = match verified {
        Some(s) => s,
        None => {
            c.signer = Err(if reason.starts_with("S002") {
                "signed by a key the policy does not register".to_string()
            } else {
                reason
            });
            // Unverified: parse the claim only to name the kind.
            match bundle
                .dsse_envelope
                .payload_unverified()
                .and_then(|p| Statement::from_payload(&p).ok())
            {
                Some(s) => s,
                None => {
                    c.malformed = Some("the payload is not an in-toto statement".into());
                    return c;
                }
            }
        }
    };
    c.subjects = sha_subjects(&st);
    let pt = st.predicate_type.as_str();
    if pt == PREDICATE_TYPE || pt == PREDICATE_TYPE_COMPAT {
        c.kind = "signature".into();
        match Manifest::from_statement(&st) {
            Ok(m) => {
                let files = m
                    .resources
                    .iter()
                    .filter(|r| r.algorithm == "sha256")
                    .map(|r| hex::encode(&r.digest))
                    .collect();
                c.manifest = Some((m.root_hex(), files));
            }
            Err(e) => c.malformed = Some(format!("model signature manifest: {e:?}")),
        }
    } else if pt.starts_with(SLSA_PREFIX) {
        c.kind = "provenance".into();
        let p = &st.predicate;
        for dep in p
            .pointer("/buildDefinition/resolvedDependencies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(d) = dep.pointer("/digest/sha256").and_then(Value::as_str) {
                c.inputs.push(d.to_ascii_lowercase());
            }
        }
        c.signed_at = [
            "/runDetails/metadata/finishedOn",
            "/runDetails/metadata/startedOn",
        ]
        .iter()
        .find_map(|ptr| p.pointer(ptr).and_then(Value::as_str))
        .and_then(crate::time::parse);
    } else if pt == REPORT_PREDICATE_TYPE {
        let p = &st.predicate;
        let gate = p.get("gate").and_then(Value::as_str).unwrap_or("");
        c.kind = report_kind(gate, hint);
        c.verdict = p.get("verdict").and_then(Value::as_str).map(str::to_string);
        for f in p
            .pointer("/report/findings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sev = f
                .get("severity")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(Severity::Critical);
            c.findings.push((
                f.get("id").and_then(Value::as_str).unwrap_or("?").into(),
                sev,
                f.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
    } else {
        c.malformed = Some(format!("unknown predicate type '{pt}'"));
    }
    if c.signed_at.is_none() {
        c.signed_at = ["/timestamp", "/created", "/report/created"]
            .iter()
            .find_map(|ptr| st.predicate.pointer(ptr).and_then(Value::as_str))
            .and_then(crate::time::parse);
    }
    c
}

impl Checked {
    /// Whether this evidence is about the version: `files` are the version's file digests,
    /// `root` its model-signing root digest, `inputs` the digests of its recorded and
    /// provenance-resolved inputs (for dataset and base-model evidence).
    pub fn matches(&self, root: &str, files: &BTreeSet<String>, inputs: &BTreeSet<String>) -> bool {
        let subs: Vec<&str> = self.subjects.iter().map(|(_, d)| d.as_str()).collect();
        match self.kind.as_str() {
            "signature" => match &self.manifest {
                Some((r, fs)) => {
                    r == root
                        || (!fs.is_empty() && fs.iter().cloned().collect::<BTreeSet<_>>() == *files)
                }
                None => false,
            },
            "provenance" => {
                subs.contains(&root)
                    || (!files.is_empty() && files.iter().all(|f| subs.contains(&f.as_str())))
            }
            "dataset" | "base" => !subs.is_empty() && subs.iter().all(|d| inputs.contains(*d)),
            _ => !subs.is_empty() && subs.iter().all(|d| files.contains(*d) || *d == root),
        }
    }
}
