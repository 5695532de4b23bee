//! Policy evaluation: one version, one target stage, every rule, one report. Pure: it reads
//! the version, its evidence and approvals and the clock it is given, and decides nothing else.
use crate::checks;
use crate::evidence::{check, Checked};
use crate::policy::Policy;
use crate::store::{Approval, Evidence, Version};
use serde::Serialize;
use std::collections::BTreeSet;
use tunegate_core::{CheckInfo, Finding, Location, Report, Severity, Subject, Verdict};

/// One evidence item's status, for `show` and the web pages.
#[derive(Debug, Clone, Serialize)]
pub struct ItemStatus {
    /// Evidence kind.
    pub kind: String,
    /// File name it was attached from.
    pub name: String,
    /// sha256 of the bundle.
    pub sha256: String,
    /// Key name that verified it, if any.
    pub signer: Option<String>,
    /// `ok`, or what is wrong: `unsigned`, `signer-not-allowed`, `wrong-subject`, `stale`,
    /// `failing`, `malformed`.
    pub status: String,
    /// One line of detail.
    pub detail: String,
    /// Report verdict, when the evidence is a report.
    pub verdict: Option<String>,
}

/// The outcome of evaluating a promotion.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// R### findings; the promotion is allowed iff the verdict passes (nothing at or above high).
    pub report: Report,
    /// Per-evidence status in chain order.
    pub items: Vec<ItemStatus>,
}

impl Evaluation {
    /// Whether the promotion may proceed.
    pub fn allowed(&self) -> bool {
        self.report.verdict == Verdict::Pass
    }
}

/// Evaluates `version` for `stage` at time `now` (seconds).
pub fn evaluate(
    policy: &Policy,
    stage: &str,
    version: &Version,
    evidence: &[Evidence],
    approvals: &[Approval],
    now: i64,
) -> crate::Result<Evaluation> {
    let rules = policy.stage(stage)?.clone();
    let production = stage == "production";
    let mut report = Report::new("registry", Severity::High);
    report.subjects.push(Subject::sha256(
        format!("{}@{}", version.model, version.version),
        version.root.clone(),
    ));
    let files: BTreeSet<String> = version.files.iter().map(|(_, d)| d.clone()).collect();
    let mut checked: Vec<(Evidence, Checked)> = evidence
        .iter()
        .map(|e| (e.clone(), check(&e.body, policy, e.hint.as_deref())))
        .collect();
    // Inputs: recorded at add time, plus what verified provenance about this version resolved.
    let mut inputs: BTreeSet<String> = version.inputs.iter().map(|(_, d)| d.clone()).collect();
    for (_, c) in &checked {
        if c.kind == "provenance" && c.signer.is_ok() && c.matches(&version.root, &files, &inputs) {
            inputs.extend(c.inputs.iter().cloned());
        }
    }
    // A model-gate report about the inputs rather than the outputs is a base-model scan.
    for (_, c) in checked.iter_mut() {
        if c.kind == "model"
            && !c.matches(&version.root, &files, &inputs)
            && !c.subjects.is_empty()
            && c.subjects.iter().all(|(_, d)| inputs.contains(d))
        {
            c.kind = "base".into();
        }
    }
    let allowed_signer = |kind: &str, key: &str| match policy.signers.get(kind) {
        Some(names) => names.iter().any(|n| n == key),
        None => true,
    };
    let mut items = Vec::new();
    let mut good_kinds: BTreeSet<String> = BTreeSet::new();
    // (kind, check, message, location) of problems, severity decided once requirements are known.
    let mut problems: Vec<(String, CheckInfo, String, String)> = Vec::new();
    for (e, c) in &checked {
        let loc = e.name.clone();
        let (status, detail, check_info): (&str, String, Option<CheckInfo>) =
            if let Some(m) = &c.malformed {
                ("malformed", m.clone(), Some(checks::EVIDENCE_MALFORMED))
            } else if let Err(why) = &c.signer {
                ("unsigned", why.clone(), Some(checks::EVIDENCE_UNSIGNED))
            } else if !allowed_signer(&c.kind, c.signer.as_deref().unwrap_or("")) {
                (
                    "signer-not-allowed",
                    format!(
                        "signed with key '{}', but signers.{} allows only {}",
                        c.signer.as_deref().unwrap_or(""),
                        c.kind,
                        policy
                            .signers
                            .get(&c.kind)
                            .map(|v| v.join(", "))
                            .unwrap_or_default()
                    ),
                    Some(checks::SIGNER_NOT_ALLOWED),
                )
            } else if !c.matches(&version.root, &files, &inputs) {
                let subs: Vec<String> = c
                    .subjects
                    .iter()
                    .map(|(n, d)| format!("{n} sha256:{}", short(d, 12)))
                    .collect();
                (
                    "wrong-subject",
                    format!(
                        "about {} — not {}@{} (root sha256:{}){}",
                        if subs.is_empty() {
                            "nothing".to_string()
                        } else {
                            subs.join(", ")
                        },
                        version.model,
                        version.version,
                        short(&version.root, 12),
                        if c.kind == "dataset" || c.kind == "base" {
                            " nor its recorded or provenance inputs"
                        } else {
                            ""
                        }
                    ),
                    Some(checks::SUBJECT_MISMATCH),
                )
            } else {
                let t = c.signed_at.unwrap_or(e.attached_at);
                let age = now - t;
                let failing: Vec<String> = c
                    .findings
                    .iter()
                    .filter(|(_, s, _)| *s > rules.max_severity)
                    .map(|(id, s, m)| format!("{id} {s}: {m}"))
                    .collect();
                if rules.max_age.is_some_and(|m| age > m) {
                    (
                        "stale",
                        format!(
                            "{} old ({} {}), the {stage} limit is {}",
                            days(age),
                            if c.signed_at.is_some() {
                                "signed"
                            } else {
                                "received"
                            },
                            crate::time::format(t),
                            days(rules.max_age.unwrap_or(0))
                        ),
                        Some(checks::EVIDENCE_STALE),
                    )
                } else if c.verdict.as_deref() == Some("fail") || !failing.is_empty() {
                    (
                        "failing",
                        format!(
                            "verdict {}; {} finding(s) above {}{}",
                            c.verdict.as_deref().unwrap_or("?"),
                            failing.len(),
                            rules.max_severity,
                            failing
                                .first()
                                .map(|f| format!(", e.g. {f}"))
                                .unwrap_or_default()
                        ),
                        Some(checks::EVIDENCE_FAILING),
                    )
                } else {
                    if rules.max_age.is_some() && c.signed_at.is_none() {
                        report.findings.push(Finding::new(
                            &checks::EVIDENCE_UNTIMED,
                            format!(
                                "{} ({}) carries no signed time; its age counts from {}",
                                e.name,
                                c.kind,
                                crate::time::format(e.attached_at)
                            ),
                            Location::file(loc.clone()),
                        ));
                    }
                    (
                        "ok",
                        format!("verified with key '{}'", c.signer.as_deref().unwrap_or("")),
                        None,
                    )
                }
            };
        if status == "ok" {
            good_kinds.insert(c.kind.clone());
        }
        if let Some(ci) = check_info {
            problems.push((
                c.kind.clone(),
                ci,
                format!("{} ({}): {detail}", e.name, c.kind),
                loc,
            ));
        }
        items.push(ItemStatus {
            kind: c.kind.clone(),
            name: e.name.clone(),
            sha256: e.sha256.clone(),
            signer: c.signer.clone().ok(),
            status: status.into(),
            detail,
            verdict: c.verdict.clone(),
        });
    }
    for (kind, ci, msg, loc) in problems {
        let required = rules.require.contains(&kind);
        let sev = if ci.id == checks::EVIDENCE_FAILING.id {
            // Failing evidence about this very version blocks production whatever the policy
            // requires; a review stage may accept it.
            if rules.allow_failing {
                report.findings.push(
                    Finding::new(&checks::FAILING_IN_REVIEW, msg, Location::file(loc))
                        .severity(checks::FAILING_IN_REVIEW.severity),
                );
                continue;
            }
            ci.severity
        } else if required && !good_kinds.contains(&kind) {
            ci.severity
        } else {
            // Not needed for this stage, or another item of the kind is good: a note.
            Severity::Low
        };
        report
            .findings
            .push(Finding::new(&ci, msg, Location::file(loc)).severity(sev));
    }
    for k in &rules.require {
        if !checked.iter().any(|(_, c)| &c.kind == k) {
            report.findings.push(Finding::new(
                &checks::EVIDENCE_MISSING,
                format!(
                    "{stage} requires {k} evidence; {}@{} has none (attach it with `tunegate registry evidence {} {} FILE`)",
                    version.model, version.version, version.model, version.version
                ),
                Location::file(k.clone()),
            ));
        }
    }
    if production {
        let valid = approvals
            .iter()
            .any(|a| a.role == "security-approver" && a.approver != version.registered_by);
        for a in approvals
            .iter()
            .filter(|a| a.approver == version.registered_by)
        {
            report.findings.push(Finding::new(
                &checks::SELF_APPROVAL,
                format!(
                    "{} registered {}@{} and cannot approve it for production",
                    a.approver, version.model, version.version
                ),
                Location::file("approvals"),
            ));
        }
        if !valid {
            report.findings.push(Finding::new(
                &checks::APPROVAL_MISSING,
                format!(
                    "production needs an approval by a security-approver other than {} (who registered it): `tunegate registry approve {} {} --as NAME`",
                    version.registered_by, version.model, version.version
                ),
                Location::file("approvals"),
            ));
        }
    }
    items.sort_by_key(|i| {
        crate::policy::KINDS
            .iter()
            .position(|k| *k == i.kind)
            .unwrap_or(usize::MAX)
    });
    report.finish();
    Ok(Evaluation { report, items })
}

fn days(secs: i64) -> String {
    format!("{:.1} days", secs as f64 / 86400.0)
}

/// The first `n` characters (digests from hostile input need not be ASCII).
pub fn short(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
