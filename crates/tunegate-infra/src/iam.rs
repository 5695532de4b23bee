//! AWS IAM policy checks (I014–I018), scoped to a training job's checkpoint prefix.
//!
//! Grammar: `Statement` as an object or an array; `Action`/`NotAction`, `Resource`/`NotResource`
//! as a string or a list; `Principal` as `*` or `{AWS: ...}`; `Condition {op: {key: v|[v]}}`.
//! Action names compare case-insensitively, ARNs case-sensitively; `*` and `?` are wildcards.
use crate::checks::*;
use crate::yaml::Node;
use tunegate_core::{Finding, Location, Severity};

/// The job's checkpoint prefix, `bucket/path/${job-id}/`: every S3 object a job may write must
/// lie under it, with the job segment literal or a policy variable (never a wildcard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPrefix {
    before: String,
    after: Option<String>,
    template: String,
}

impl JobPrefix {
    /// Parses `bucket/jobs/${job-id}/` (a leading `s3://` or `arn:aws:s3:::` is accepted).
    pub fn parse(s: &str) -> Result<JobPrefix, String> {
        let t = s
            .trim()
            .trim_start_matches("s3://")
            .trim_start_matches("arn:aws:s3:::");
        if t.is_empty() || !t.contains('/') {
            return Err(format!(
                "job prefix '{s}' must name a bucket and a path, e.g. 'ml-checkpoints/jobs/${{job-id}}/'"
            ));
        }
        if t.contains('*') || t.contains('?') {
            return Err(format!("job prefix '{s}' must not contain wildcards"));
        }
        let (before, after) = match t.split_once("${job-id}") {
            Some((b, a)) => (b.to_string(), Some(a.to_string())),
            None => (t.to_string(), None),
        };
        Ok(JobPrefix {
            before,
            after,
            template: t.to_string(),
        })
    }

    /// The template as given (without scheme).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        self.template.split('/').next().unwrap_or("")
    }

    /// True when `key` (`bucket/path...`, no ARN scheme) lies inside one job's prefix.
    pub fn contains(&self, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(&self.before) else {
            return false;
        };
        let Some(after) = &self.after else {
            return true;
        };
        // The job segment: a policy variable `${...}` or literal text up to the next `/`.
        let seg_len = if rest.starts_with("${") {
            match rest.find('}') {
                Some(i) => i + 1,
                None => return false,
            }
        } else {
            rest.find('/').unwrap_or(rest.len())
        };
        let seg = &rest[..seg_len];
        if seg.is_empty() || (!seg.starts_with("${") && (seg.contains('*') || seg.contains('?'))) {
            return false;
        }
        rest[seg_len..].starts_with(after.as_str())
    }
}

/// Glob match with `*` and `?` (iterative, linear in practice).
pub fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if case_insensitive {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

const LIST_ACTIONS: &[&str] = &[
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
];

const DANGEROUS: &[&str] = &[
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketAcl",
    "s3:DeleteBucket",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutLifecycleConfiguration",
    "s3:PutReplicationConfiguration",
    "iam:PassRole",
    "iam:CreatePolicyVersion",
    "iam:AttachRolePolicy",
    "iam:PutRolePolicy",
];

fn is_broad_wildcard(action: &str) -> bool {
    action == "*"
        || action
            .split_once(':')
            .is_some_and(|(_, name)| name == "*" || name.starts_with('*'))
}

fn is_read_action(action: &str) -> bool {
    let a = action.to_ascii_lowercase();
    let Some(name) = a.strip_prefix("s3:") else {
        return false;
    };
    (name.starts_with("get") || name.starts_with("list") || name.starts_with("head"))
        && !name.contains("acl")
}

fn has_condition_key(stmt: &Node, key: &str) -> bool {
    stmt.get("Condition").is_some_and(|c| {
        c.map()
            .iter()
            .any(|(_, kv)| kv.map().iter().any(|(k, _)| k.eq_ignore_ascii_case(key)))
    })
}

fn condition_values<'a>(stmt: &'a Node, key: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    if let Some(c) = stmt.get("Condition") {
        for (_, kv) in c.map() {
            for (k, v) in kv.map() {
                if k.eq_ignore_ascii_case(key) {
                    out.extend(v.str_list());
                }
            }
        }
    }
    out
}

/// Checks one policy document (identity or resource policy) and returns its findings.
pub fn check_policy(file: &str, doc: &Node, prefix: Option<&JobPrefix>) -> Vec<Finding> {
    let mut out = Vec::new();
    let stmts: Vec<&Node> = match doc.get("Statement") {
        Some(s) if !s.seq().is_empty() => s.seq().iter().collect(),
        Some(s) if !s.map().is_empty() => vec![s],
        _ => Vec::new(),
    };
    for (i, st) in stmts.iter().enumerate() {
        let loc = |field: &str, line: u64| {
            let mut l = Location::file(file).field(format!("Statement[{i}].{field}"));
            l.line = Some(line);
            l
        };
        let sid = st.get("Sid").and_then(Node::as_str).unwrap_or("");
        let what = if sid.is_empty() {
            format!("statement {i}")
        } else {
            format!("statement {i} ('{sid}')")
        };
        if st.get("Effect").and_then(Node::as_str) != Some("Allow") {
            continue;
        }
        if let Some(n) = st.get("NotAction") {
            out.push(Finding::new(&IAM_WILDCARD, format!("{what} allows NotAction: everything except the listed actions, nearly always broader than intended"), loc("NotAction", n.line)));
        }
        if let Some(n) = st.get("NotResource") {
            out.push(Finding::new(
                &IAM_WILDCARD,
                format!("{what} allows NotResource: every resource except the listed ones"),
                loc("NotResource", n.line),
            ));
        }
        let actions_node = st.get("Action");
        let actions: Vec<&str> = actions_node.map(Node::str_list).unwrap_or_default();
        let aline = actions_node.map_or(st.line, |n| n.line);
        let res_node = st.get("Resource");
        let resources: Vec<&str> = res_node.map(Node::str_list).unwrap_or_default();
        let rline = res_node.map_or(st.line, |n| n.line);
        for a in &actions {
            if is_broad_wildcard(a) {
                out.push(
                    Finding::new(
                        &IAM_WILDCARD,
                        format!("{what} allows action '{a}': every action of the service"),
                        loc("Action", aline),
                    )
                    .evidence(serde_json::json!({"action": a})),
                );
            }
        }
        if resources.contains(&"*") {
            out.push(Finding::new(
                &IAM_WILDCARD,
                format!("{what} allows Resource '*': not scoped to the job's objects"),
                loc("Resource", rline),
            ));
        }
        // Public principal on a resource policy.
        if let Some(p) = st.get("Principal") {
            let public = p.as_str() == Some("*")
                || p.get("AWS").is_some_and(|a| a.str_list().contains(&"*"));
            if public && st.get("Condition").is_none() {
                out.push(Finding::new(&IAM_PUBLIC_PRINCIPAL, format!("{what} allows Principal '*' with no condition (aws:SourceVpce, aws:PrincipalOrgID, ...): anyone can use it"), loc("Principal", p.line)));
            }
        }
        // Dangerous actions.
        for d in DANGEROUS {
            if let Some(a) = actions
                .iter()
                .find(|a| !is_broad_wildcard(a) && glob(a, d, true))
            {
                out.push(
                    Finding::new(
                        &IAM_DANGEROUS_ACTION,
                        format!("{what} allows '{a}' (grants {d}): a training job never needs it"),
                        loc("Action", aline),
                    )
                    .evidence(serde_json::json!({"action": a, "grants": d})),
                );
            }
        }
        if resources.contains(&"*") {
            if actions
                .iter()
                .any(|a| !is_broad_wildcard(a) && glob(a, "sts:AssumeRole", true))
            {
                out.push(Finding::new(
                    &IAM_DANGEROUS_ACTION,
                    format!("{what} allows sts:AssumeRole on '*': the job can become any role that trusts it"),
                    loc("Action", aline),
                ));
            }
            if actions
                .iter()
                .any(|a| !is_broad_wildcard(a) && glob(a, "kms:Decrypt", true))
                && !has_condition_key(st, "kms:ViaService")
            {
                out.push(Finding::new(
                    &IAM_DANGEROUS_ACTION,
                    format!("{what} allows kms:Decrypt on '*' without a kms:ViaService condition"),
                    loc("Action", aline),
                ));
            }
        }
        // ListBucket.
        if let Some(a) = actions
            .iter()
            .find(|a| LIST_ACTIONS.iter().any(|l| glob(a, l, true)))
        {
            let prefixes = condition_values(st, "s3:prefix");
            let scoped = !prefixes.is_empty()
                && prefix.is_some_and(|p| {
                    prefixes
                        .iter()
                        .all(|v| p.contains(&format!("{}/{}", p.bucket(), v)))
                });
            let f = Finding::new(
                &IAM_LIST_BUCKET,
                if scoped {
                    format!("{what} allows '{a}' limited by an s3:prefix condition to the job prefix; the threat model's pattern grants no listing")
                } else {
                    format!("{what} allows '{a}': the job can enumerate every object in the bucket, other jobs' checkpoints included")
                },
                loc("Action", aline),
            );
            out.push(if scoped {
                f.severity(Severity::Medium)
            } else {
                f
            });
        }
        // S3 object scope.
        let read_only = !actions.is_empty() && actions.iter().all(|a| is_read_action(a));
        for r in &resources {
            let Some(key) = r.strip_prefix("arn:aws:s3:::") else {
                continue;
            };
            if key == "*" {
                out.push(Finding::new(
                    &IAM_OUT_OF_PREFIX,
                    format!("{what} grants '{r}': every bucket"),
                    loc("Resource", rline),
                ));
                continue;
            }
            let Some((bucket, obj)) = key.split_once('/') else {
                continue; // bucket ARN: only bucket-level actions apply (ListBucket above).
            };
            if obj == "*" || obj.is_empty() {
                let f = Finding::new(
                    &IAM_OUT_OF_PREFIX,
                    format!("{what} grants '{r}': every object in bucket '{bucket}', not one job's prefix"),
                    loc("Resource", rline),
                );
                out.push(
                    if read_only && prefix.is_some_and(|p| p.bucket() != bucket) {
                        f.severity(Severity::Info)
                    } else {
                        f
                    },
                );
                continue;
            }
            if let Some(stem) = obj.strip_suffix('*') {
                if !stem.ends_with('/') && !stem.ends_with('}') && !stem.contains('*') {
                    out.push(
                        Finding::new(
                            &IAM_OUT_OF_PREFIX,
                            format!("{what} grants '{r}': without a '/' before '*' it also matches '{stem}0/...' and every longer job id"),
                            loc("Resource", rline),
                        )
                        .severity(Severity::Medium),
                    );
                    continue;
                }
            }
            if let Some(p) = prefix {
                if !p.contains(key) {
                    let f = Finding::new(
                        &IAM_OUT_OF_PREFIX,
                        if read_only {
                            format!("{what} grants read-only '{r}' outside the job prefix '{}' (fine for base models)", p.template())
                        } else {
                            format!(
                                "{what} grants writes on '{r}' outside the job prefix '{}'",
                                p.template()
                            )
                        },
                        loc("Resource", rline),
                    );
                    out.push(if read_only {
                        f.severity(Severity::Info)
                    } else {
                        f
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob("s3:Get*", "s3:GetObject", true));
        assert!(glob("S3:LIST*", "s3:ListBucket", true));
        assert!(!glob("s3:Put*", "s3:GetObject", true));
        assert!(glob("a?c", "abc", false));
        assert!(!glob("a?c", "ABC", false));
    }

    #[test]
    fn prefix_boundaries() {
        let p = JobPrefix::parse("ml-checkpoints/jobs/${job-id}/").unwrap();
        assert!(p.contains("ml-checkpoints/jobs/123/*"));
        assert!(p.contains("ml-checkpoints/jobs/${aws:PrincipalTag/job-id}/*"));
        assert!(!p.contains("ml-checkpoints/jobs/*"));
        assert!(!p.contains("ml-checkpoints/jobs/123*"));
        assert!(!p.contains("ml-checkpoints/other/123/*"));
        assert!(!p.contains("other-bucket/jobs/123/*"));
        assert_eq!(p.bucket(), "ml-checkpoints");
        assert!(JobPrefix::parse("bucket").is_err());
    }
}
