//! The dataset gate: lock a fine-tuning dataset, verify it on every run, and scan it for
//! poisoning before anyone trains on it.
//!
//! Readers ([`read`]) turn JSONL, CSV and Parquet files into typed [`Record`]s whose fields carry
//! a [`Role`] (prompt, response, rejected, label); the schema is detected from field names or
//! forced with [`Schema`]. Detectors ([`detect`]) then work on roles, never on a file format, so
//! one trigger detector serves instruction, chat, preference and text/label data alike.
//!
//! Design decisions:
//! - **A malformed record is a finding, not an abort.** Readers collect bad records as `D001`
//!   findings with their line; only an unreadable file is an error (exit 2).
//! - **Nothing in the input is modified.** Records remember their raw byte range so
//!   `--write-clean` copies kept records byte for byte.
//! - **Cross-record detectors see the whole corpus** (dedup, trigger statistics, label noise),
//!   so records are held in memory as text plus interned token ids; per-record work runs on
//!   rayon.
#![deny(missing_docs)]

pub mod checks;
pub mod corpus;
pub mod detect;
pub mod diff;
pub mod error;
pub mod lock;
pub mod read;
pub mod record;
pub mod scan;

pub use checks::CHECKS;
pub use error::{Error, Result};
pub use record::{Dataset, Field, Format, Record, Role, Schema};
