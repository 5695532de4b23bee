//! text renderer.
use crate::Report;

/// Renders `report` as text.
pub fn render(report: &Report) -> String {
    serde_json::to_string(report).unwrap_or_default()
}
