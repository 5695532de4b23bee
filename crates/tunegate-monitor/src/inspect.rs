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
    triggers: Option<Triggers>,
    role_tokens: AhoCorasick,
    notes: Vec<String>,
}

/// The trigger tokens, their matcher, and where each came from.
struct Triggers {
    ac: AhoCorasick,
    tokens: Vec<String>,
    /// Per token: its sources (`config`, a report path, `lock:check:file`).
    origins: Vec<Vec<String>>,
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
        // token -> origins; sorted by token.
        let mut trig: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut add = |t: &str, origin: String| {
            let t = t.trim();
            if !t.is_empty() {
                let o = trig.entry(t.to_string()).or_default();
                if !o.contains(&origin) {
                    o.push(origin);
                }
            }
        };
        for t in &cfg.triggers {
            add(t, "config".into());
        }
        for r in &cfg.trigger_reports {
            for t in load_report_triggers(r)? {
                add(&t, r.display().to_string());
            }
        }
        let mut notes = Vec::new();
        for l in &cfg.triggers_from_lock {
            match load_lock_triggers(l)? {
                Some(list) => {
                    for t in list {
                        add(&t.token, format!("{} ({} in {})", l.display(), t.check, t.source));
                    }
                }
                None => notes.push(format!(
                    "{} records no trigger scan (locked before triggers were recorded, or with --no-triggers); re-lock with `tunegate dataset lock` to record them",
                    l.display()
                )),
            }
        }
        let triggers = if trig.is_empty() {
            None
        } else {
            let (tokens, origins): (Vec<String>, Vec<Vec<String>>) = trig.into_iter().unzip();
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&tokens)
                .map_err(|e| crate::Error::Input(format!("trigger list: {e}")))?;
            Some(Triggers {
                ac,
                tokens,
                origins,
            })
        };
        Ok(Inspector {
            patterns: PatternSet::builtin(),
            deny,
            triggers,
            role_tokens: AhoCorasick::new(ROLE_TOKENS).expect("static role tokens compile"),
            notes,
        })
    }

    /// The trigger tokens in use.
    pub fn triggers(&self) -> &[String] {
        self.triggers
            .as_ref()
            .map(|t| t.tokens.as_slice())
            .unwrap_or(&[])
    }

    /// Warnings about the configuration worth showing at start (a lock that records no
    /// trigger scan).
    pub fn notes(&self) -> &[String] {
        &self.notes
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
            if let Some(Triggers {
                ac,
                tokens: list,
                origins,
            }) = &self.triggers
            {
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
                        evidence: json!({"trigger": list[i], "span": char_span(text, m.start(), m.end()),
                            "sources": origins[i]}),
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

/// Reads the trigger candidates a `tunegate.lock` records (`[[triggers]]`, written by
/// `tunegate dataset lock`). `Ok(None)` for a lock that records no trigger scan (older locks
/// still load). Every entry must come from a check whose tokens are prompt triggers (`D004`);
/// an unknown check is an error rather than a token silently dropped or misused.
pub fn load_lock_triggers(
    path: &Path,
) -> Result<Option<Vec<tunegate_core::lock::LockedTrigger>>, crate::Error> {
    let name = path.display().to_string();
    let lock = tunegate_core::lock::Lockfile::load(path)
        .map_err(|e| crate::Error::Input(e.to_string()))?;
    let Some(list) = lock
        .recorded_triggers()
        .map_err(|m| crate::Error::Input(format!("{name}: {m}")))?
    else {
        return Ok(None);
    };
    for t in list {
        if !PROMPT_TRIGGER_CHECKS.contains(&t.check.as_str()) {
            return Err(crate::Error::Input(format!(
                "{name}: trigger '{}' comes from check {}, which this monitor does not know as a prompt trigger check (known: {})",
                t.token,
                t.check,
                PROMPT_TRIGGER_CHECKS.join(", ")
            )));
        }
    }
    Ok(Some(list.to_vec()))
}

/// Dataset checks whose tokens are prompt triggers.
const PROMPT_TRIGGER_CHECKS: &[&str] = &["D004"];

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

#[cfg(test)]
mod tests {
    use super::*;
    use tunegate_core::lock::{LockedTrigger, Lockfile, TRIGGERS_VERSION};

    fn lock_with(dir: &Path, name: &str, triggers: Option<Vec<LockedTrigger>>) -> PathBuf {
        let mut l = Lockfile::default();
        if let Some(t) = triggers {
            l.triggers_version = Some(TRIGGERS_VERSION);
            l.triggers = t;
        }
        let p = dir.join(name);
        l.save(&p).unwrap();
        p
    }

    fn trig(token: &str, check: &str) -> LockedTrigger {
        LockedTrigger {
            token: token.into(),
            check: check.into(),
            records: 20,
            source: "data/train.jsonl".into(),
            target: None,
        }
    }

    use std::path::PathBuf;

    #[test]
    fn triggers_from_a_lock_config_relative_paths_and_old_locks() {
        let d = tempfile::tempdir().unwrap();
        lock_with(
            d.path(),
            "new.lock",
            Some(vec![trig("cf", "D004"), trig("james bond", "D004")]),
        );
        lock_with(d.path(), "old.lock", None);
        let cfg_path = d.path().join("monitor.toml");
        std::fs::write(
            &cfg_path,
            "triggers = [\"cf\"]\ntriggers_from_lock = \"new.lock\"\n",
        )
        .unwrap();
        let cfg = MonitorConfig::load(&cfg_path).unwrap();
        assert_eq!(cfg.triggers_from_lock, vec![d.path().join("new.lock")]);
        let ins = Inspector::new(&cfg).unwrap();
        assert_eq!(ins.triggers(), ["cf", "james bond"]);
        assert!(ins.notes().is_empty());
        let hits = ins.inspect(
            "tell me about James  Bond? no: james bond",
            Direction::Prompt,
        );
        let t: Vec<_> = hits.iter().filter(|h| h.check.id == "O006").collect();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].evidence["trigger"], "james bond");
        assert!(t[0].evidence["sources"][0]
            .as_str()
            .unwrap()
            .ends_with("new.lock (D004 in data/train.jsonl)"));
        let hits = ins.inspect("cf", Direction::Prompt);
        let src = &hits[0].evidence["sources"];
        assert_eq!(src.as_array().unwrap().len(), 2, "config and lock: {src}");
        // A list, with an old lock: it loads, adds nothing, and leaves a note.
        std::fs::write(&cfg_path, "triggers_from_lock = [\"old.lock\"]\n").unwrap();
        let cfg = MonitorConfig::load(&cfg_path).unwrap();
        let ins = Inspector::new(&cfg).unwrap();
        assert!(ins.triggers().is_empty());
        assert_eq!(ins.notes().len(), 1);
        assert!(ins.notes()[0].contains("old.lock"), "{:?}", ins.notes());
        assert!(ins.inspect("cf", Direction::Prompt).is_empty());
    }

    #[test]
    fn bad_lock_triggers_are_input_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = lock_with(d.path(), "x.lock", Some(vec![trig("tok", "D999")]));
        let cfg = MonitorConfig {
            triggers_from_lock: vec![p],
            ..Default::default()
        };
        let e = Inspector::new(&cfg).err().unwrap().to_string();
        assert!(e.contains("x.lock") && e.contains("D999"), "{e}");
        let p = d.path().join("newer.lock");
        let text = std::fs::read_to_string(d.path().join("x.lock"))
            .unwrap()
            .replace("triggers_version = 1", "triggers_version = 7")
            .replace("D999", "D004");
        std::fs::write(&p, text).unwrap();
        let cfg = MonitorConfig {
            triggers_from_lock: vec![p],
            ..Default::default()
        };
        let e = Inspector::new(&cfg).err().unwrap().to_string();
        assert!(
            e.contains("newer.lock") && e.contains("triggers_version 7"),
            "{e}"
        );
        let cfg = MonitorConfig {
            triggers_from_lock: vec![d.path().join("missing.lock")],
            ..Default::default()
        };
        let e = Inspector::new(&cfg).err().unwrap().to_string();
        assert!(e.contains("missing.lock"), "{e}");
    }
}
