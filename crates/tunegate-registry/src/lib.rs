//! The tunegate model registry: model versions identified by their files' digests, signed
//! evidence attached to them, and a promotion policy that is a function of that evidence.
//!
//! Two decisions shape the crate:
//! - **Evidence is re-verified, never remembered.** The store keeps the bundles exactly as
//!   given; every evaluation verifies them again with the policy's current keys and compares
//!   their subjects with the version's digests ([`eval`]), so a promotion report always says
//!   which evidence is missing, unsigned, wrongly signed, stale, failing or about another
//!   artifact, as of now.
//! - **Storage sits behind a trait** ([`store::Store`]): the embedded SQLite file
//!   ([`sqlite`]) or PostgreSQL for a shared server ([`pg`]). Every change and its hash-chained audit entry
//!   ([`audit`]) are written in one transaction.
#![deny(missing_docs)]

pub mod audit;
pub mod checks;
pub mod error;
pub mod eval;
pub mod evidence;
pub mod mlflow;
pub mod pg;
pub mod policy;
pub mod registry;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod time;

pub use checks::CHECKS;
pub use error::{Error, Result};
pub use policy::Policy;
pub use registry::{Actor, EvidenceFile, Registry};
