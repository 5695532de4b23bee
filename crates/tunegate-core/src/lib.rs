//! The contract every tunegate gate shares.
//!
//! A gate reads artifacts, runs checks and returns a [`Report`]: a list of [`Finding`]s plus a
//! [`Verdict`] computed from the findings' [`Severity`] and the caller's `--fail-on` threshold.
//! Reports are plain data (serde) so they can be re-rendered later, signed as evidence, and
//! compared across runs; the renderers in [`render`] turn one report into text, JSON, SARIF or a
//! self-contained HTML page.
//!
//! Two design decisions shape this crate:
//! - **Check ids are stable data, not code.** Every check is described by a [`CheckInfo`] (id,
//!   name, default severity, one line of doc) that stage crates export as a `const` slice; the
//!   binary concatenates them for `tunegate checks`. Users grep for ids, so ids never change
//!   meaning.
//! - **Text checks live here**, in [`text`], because both the dataset gate and the production
//!   monitor run them (invisible and confusable Unicode, payload patterns, trigger matching), and
//!   the monitor must not depend on the dataset readers.
#![deny(missing_docs)]

pub mod checks;
pub mod config;
pub mod digest;
pub mod error;
pub mod lock;
pub mod progress;
pub mod render;
pub mod report;
pub mod severity;
pub mod text;

pub use checks::CheckInfo;
pub use error::{Error, Result};
pub use report::{Chart, ChartKind, Finding, Location, Report, Subject, Summary, Verdict};
pub use severity::Severity;

/// The tool's version, as written into every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
