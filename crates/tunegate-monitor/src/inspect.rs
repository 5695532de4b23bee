//! Per-text checks: secrets, dangerous content, deny patterns, injection markers, invisible
//! Unicode, trigger tokens and degenerate repetition. The pattern and Unicode engines are
//! `tunegate_core::text`'s, shared with the dataset gate.
use crate::checks;
use crate::config::MonitorConfig;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};
use serde_json::{json, Value};
use std::path::Path;
use tunegate_core::text::{patterns, patterns::PatternSet, unicode};
use tunegate_core::{CheckInfo, Severity};

/// Which side of the exchange a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client's prompt.
    Prompt,
    /// The model's response.
    Response,
}

impl Direction {
    /// `prompt` or `response`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Prompt => "prompt",
            Direction::Response => "response",
        }
    }
}

/// One finding of a per-text check, before it becomes an event.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The check.
    pub check: &'static CheckInfo,
    /// Severity (the check's default or the matched pattern's).
    pub severity: Severity,
    /// One sentence.
    pub message: String,
    /// Evidence; never holds a raw secret.
    pub evidence: Value,
    /// Prompt or response.
    pub direction: Direction,
}

struct Deny {
    id: String,
    regex: Regex,
    severity: Severity,
    prompt: bool,
    response: bool,
}

/// The compiled per-text checks.
pub struct Inspector {
    patterns: PatternSet,
    deny: Vec<Deny>,
    triggers: Option<(AhoCorasick, Vec<String>)>,
    role_tokens: AhoCorasick,
}

const ROLE_TOKENS: &[&str] = &[
    "<|im_start|>",
    "<|im_end|>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|endoftext|>",
    "<|system|>",
];

/// Largest total size of user deny regexes' compiled programs (bytes each).
const DENY_SIZE_LIMIT: usize = 8 << 20;

impl Inspector {
    /// Compiles the configured checks; errors name the pattern or report file.
    pub fn new(cfg: &MonitorConfig) -> Result<Self, crate::Error> {
        let mut deny = Vec::new();
        for d in &cfg.deny {
            let regex = RegexBuilder::new(&d.regex)
                .size_limit(DENY_SIZE_LIMIT)
                .build()
                .map_err(|e| crate::Error::Input(format!("deny pattern '{}': {e}", d.id)))?;
            let (prompt, response) = match d.direction.as_str() {
                "prompt" => (true, false),
                "response" => (false, true),
                "both" => (true, true),
                o => {
                    return Err(crate::Error::Input(format!(
                        "deny pattern '{}': direction '{o}' is not prompt, response or both",
                        d.id
                    )))
                }
            };
            deny.push(Deny {
                id: d.id.clone(),
                regex,
                severity: d.severity,
                prompt,
                response,
            });
        }
        let mut trig: Vec<String> = cfg.triggers.iter().map(|t| t.trim().to_string()).collect();
        for r in &cfg.trigger_reports {
            trig.extend(load_report_triggers(r)?);
        }
        trig.retain(|t| !t.is_empty());
        trig.sort();
        trig.dedup();
        let triggers = if trig.is_empty() {
            None
        } else {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&trig)
                .map_err(|e| crate::Error::Input(format!("trigger list: {e}")))?;
            Some((ac, trig))
        };
        Ok(Inspector {
            patterns: PatternSet::builtin(),
            deny,
            triggers,
            role_tokens: AhoCorasick::new(ROLE_TOKENS).expect("static role tokens compile"),
        })
    }

    /// The trigger tokens in use.
    pub fn triggers(&self) -> &[String] {
        self.triggers
            .as_ref()
            .map(|t| t.1.as_slice())
            .unwrap_or(&[])
    }

    /// Runs every per-text check for `dir` over `text`.
    pub fn inspect(&self, text: &str, dir: Direction) -> Vec<Hit> {
        let mut out = Vec::new();
        if text.is_empty() {
            return out;
        }
        for h in self.patterns.scan(text) {
            let check = match (dir, h.category.as_str()) {
                (Direction::Response, patterns::category::CREDENTIAL_LEAK) => &checks::SECRET,
                (Direction::Prompt, patterns::category::INSTRUCTION_OVERRIDE) => {
                    &checks::INJECTION_MARKER
                }
                // A user's own secret or a question about shell pipelines in a prompt is theirs.
                (Direction::Prompt, _) => continue,
                (Direction::Response, patterns::category::INSTRUCTION_OVERRIDE) => continue,
                (Direction::Response, _) => &checks::DANGEROUS_OUTPUT,
            };
            let severity = if check.id == checks::INJECTION_MARKER.id {
                check.severity
            } else {
                h.severity
            };
            out.push(Hit {
                check,
                severity,
                message: format!(
                    "{} matched pattern {} ({}){}",
                    dir.as_str(),
                    h.pattern,
                    h.description,
                    if h.folded {
                        " after folding evasions"
                    } else {
                        ""
                    }
                ),
                evidence: json!({"pattern": h.pattern, "category": h.category, "span": h.span,
                    "excerpt": h.matched, "folded": h.folded}),
                direction: dir,
            });
        }
        for d in &self.deny {
            if (dir == Direction::Prompt && !d.prompt)
                || (dir == Direction::Response && !d.response)
            {
                continue;
            }
            if let Some(m) = d.regex.find(text) {
                let span = char_span(text, m.start(), m.end());
                out.push(Hit {
                    check: &checks::DENY_PATTERN,
                    severity: d.severity,
                    message: format!("{} matched deny pattern '{}'", dir.as_str(), d.id),
                    evidence: json!({"pattern": d.id, "span": span, "excerpt": excerpt(m.as_str())}),
                    direction: dir,
                });
            }
        }
        if dir == Direction::Prompt {
            if let Some(m) = self.role_tokens.find(text) {
                out.push(Hit {
                    check: &checks::INJECTION_MARKER,
                    severity: checks::INJECTION_MARKER.severity,
                    message: format!(
                        "prompt holds chat role token '{}'",
                        ROLE_TOKENS[m.pattern().as_usize()]
                    ),
                    evidence: json!({"token": ROLE_TOKENS[m.pattern().as_usize()],
                        "span": char_span(text, m.start(), m.end())}),
                    direction: dir,
                });
            }
            if let Some((ac, list)) = &self.triggers {
                let mut seen: Vec<usize> = Vec::new();
                for m in ac.find_iter(text) {
                    let i = m.pattern().as_usize();
                    if !token_bounded(text, m.start(), m.end()) || seen.contains(&i) {
                        continue;
                    }
                    seen.push(i);
                    out.push(Hit {
                        check: &checks::TRIGGER,
                        severity: checks::TRIGGER.severity,
                        message: format!("prompt contains known trigger token '{}'", list[i]),
                        evidence: json!({"trigger": list[i], "span": char_span(text, m.start(), m.end())}),
                        direction: dir,
                    });
                    if seen.len() >= 8 {
                        break;
                    }
                }
            }
        }
        if !text.is_ascii() {
            let hits = unicode::scan_invisible(text);
            if let Some(worst) = hits.iter().map(|h| h.severity).max() {
                let total: usize = hits.iter().map(|h| h.count()).sum();
                let first = &hits[0];
                out.push(Hit {
                    check: &checks::INVISIBLE,
                    severity: worst.max(checks::INVISIBLE.severity),
                    message: format!(
                        "{} holds {total} invisible or bidi character(s) in {} run(s), first {} at {:?}",
                        dir.as_str(),
                        hits.len(),
                        first.class.noun(),
                        first.span
                    ),
                    evidence: json!({"runs": hits.iter().take(8).collect::<Vec<_>>(), "total": total}),
                    direction: dir,
                });
            }
        }
        if dir == Direction::Response {
            if let Some((share, phrase)) = degenerate(text) {
                out.push(Hit {
                    check: &checks::DEGENERATE,
                    severity: checks::DEGENERATE.severity,
                    message: format!(
                        "{:.0}% of the response's word 4-grams repeat (most common: '{phrase}')",
                        share * 100.0
                    ),
                    evidence: json!({"repeated_share": (share * 1000.0).round() / 1000.0, "phrase": phrase}),
                    direction: dir,
                });
            }
        }
        out
    }
}

/// Whether the match is not inside a longer word (a trigger `cf` must not fire on `cfg`).
fn token_bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let first = text[start..end].chars().next();
    let last = text[start..end].chars().next_back();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    !((word(before) && word(first)) || (word(after) && word(last)))
}

/// Byte range to char range.
fn char_span(text: &str, start: usize, end: usize) -> [usize; 2] {
    let s = text[..start].chars().count();
    [s, s + text[start..end].chars().count()]
}

fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(patterns::MAX_MATCHED_CHARS).collect();
    if e.len() < s.len() {
        e.push('…');
    }
    e
}

/// Share of repeated word 4-grams, when a response of at least 32 words is mostly repeats.
pub fn degenerate(text: &str) -> Option<(f64, String)> {
    let words: Vec<&str> = text.split_whitespace().take(4096).collect();
    if words.len() < 32 {
        return None;
    }
    let mut counts: std::collections::HashMap<&[&str], usize> = std::collections::HashMap::new();
    for w in words.windows(4) {
        *counts.entry(w).or_default() += 1;
    }
    let total = words.len() - 3;
    let repeated: usize = counts.values().filter(|&&c| c > 1).map(|c| c - 1).sum();
    let share = repeated as f64 / total as f64;
    if share < 0.6 {
        return None;
    }
    let (top, _) = counts
        .iter()
        .max_by_key(|(k, c)| (**c, std::cmp::Reverse(**k)))?;
    Some((share, excerpt(&top.join(" "))))
}

/// Reads trigger tokens from a `tunegate.report/v1` file: every D004 finding's candidates.
pub fn load_report_triggers(path: &Path) -> Result<Vec<String>, crate::Error> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| crate::Error::Input(format!("{name}: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| crate::Error::Input(format!("{name}: not JSON: {e}")))?;
    if v.get("schema").and_then(Value::as_str) != Some(tunegate_core::report::SCHEMA) {
        return Err(crate::Error::Input(format!(
            "{name}: not a {} report (no matching \"schema\")",
            tunegate_core::report::SCHEMA
        )));
    }
    let findings = v
        .get("findings")
        .and_then(Value::as_array)
        .ok_or_else(|| crate::Error::Input(format!("{name}: report has no findings array")))?;
    let mut out = Vec::new();
    for f in findings {
        if f.get("id").and_then(Value::as_str) != Some("D004") {
            continue;
        }
        let cands = f
            .pointer("/evidence/candidates")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                crate::Error::Input(format!("{name}: a D004 finding has no evidence.candidates"))
            })?;
        for c in cands {
            if let Some(t) = c.get("candidate").and_then(Value::as_str) {
                out.push(t.to_string());
            }
        }
    }
    Ok(out)
}
