//! The check-id registry.
use crate::Severity;
use serde::Serialize;

/// Describes one check. Ids (`D004`) and names (`dataset.trigger-token`) are stable: once
/// published, an id keeps its meaning forever; retired ids are not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckInfo {
    /// Stable id: a gate letter and three digits (`D###` dataset, `M###` model, ...).
    pub id: &'static str,
    /// Stable dotted name: `<gate>.<kebab-case>`.
    pub name: &'static str,
    /// The severity findings of this check get unless the evidence raises or lowers it.
    pub severity: Severity,
    /// One line of documentation.
    pub doc: &'static str,
}

/// Declares a stage crate's checks: one `pub const` [`CheckInfo`] per check plus
/// `pub const CHECKS: &[CheckInfo]` listing them in order. The doc string is both the constant's
/// rustdoc and the line `tunegate checks` prints.
///
/// ```
/// tunegate_core::declare_checks! {
///     EXAMPLE = "X001", "example.thing", Medium, "An example check.";
/// }
/// assert_eq!(CHECKS[0].id, "X001");
/// ```
#[macro_export]
macro_rules! declare_checks {
    ($($konst:ident = $id:literal, $name:literal, $sev:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub const $konst: $crate::CheckInfo = $crate::CheckInfo {
                id: $id,
                name: $name,
                severity: $crate::Severity::$sev,
                doc: $doc,
            };
        )*
        /// Every check of this gate, in id order.
        pub const CHECKS: &[$crate::CheckInfo] = &[$($konst),*];
    };
}

/// Checks every id in `checks` for shape and uniqueness; used by each stage crate's tests and by
/// the binary when it assembles the full list.
pub fn validate(checks: &[CheckInfo]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for c in checks {
        let b = c.id.as_bytes();
        if b.len() != 4 || !b[0].is_ascii_uppercase() || !b[1..].iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "check id '{}' is not a letter and three digits",
                c.id
            ));
        }
        let Some((gate, rest)) = c.name.split_once('.') else {
            return Err(format!("check name '{}' has no gate prefix", c.name));
        };
        if gate.is_empty()
            || rest.is_empty()
            || !rest
                .bytes()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == b'-')
        {
            return Err(format!(
                "check name '{}' is not <gate>.<kebab-case>",
                c.name
            ));
        }
        if !seen.insert(c.id) || !seen.insert(c.name) {
            return Err(format!("check {} / {} is listed twice", c.id, c.name));
        }
        if c.doc.trim().is_empty() {
            return Err(format!("check {} has no doc", c.id));
        }
    }
    Ok(())
}
