//! Renderers: one report, four views. Text for people at a terminal, JSON for machines (the
//! `tunegate.report/v1` schema), SARIF 2.1.0 for code-scanning UIs, and one self-contained HTML
//! file with charts.
use crate::Report;
use std::str::FromStr;

pub mod html;
pub mod sarif;
pub mod text;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// `tunegate.report/v1` JSON.
    Json,
    /// SARIF 2.1.0.
    Sarif,
    /// Self-contained HTML.
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "html" => Ok(Format::Html),
            _ => Err(format!(
                "unknown format '{s}' (expected text, json, sarif or html)"
            )),
        }
    }
}

/// Renders `report` in `format`. `checks` supplies rule metadata for SARIF and HTML.
pub fn render(report: &Report, format: Format, checks: &[crate::CheckInfo]) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Json => json(report),
        Format::Sarif => sarif::render(report, checks),
        Format::Html => html::render(report, checks),
    }
}

/// Pretty JSON with a trailing newline.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("reports always serialize");
    s.push('\n');
    s
}
