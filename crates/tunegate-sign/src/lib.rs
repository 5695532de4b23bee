//! Signing for tunegate: model folders, single files and gate reports, in the OpenSSF
//! model-signing format (the `model_signing` package, v1.x) so that either tool verifies the
//! other's signatures.
//!
//! The format is three nested standards: a Sigstore bundle ([`bundle`]) holding a DSSE envelope
//! ([`dsse`]) over an in-toto Statement v1 ([`statement`]) whose predicate is the model's
//! manifest ([`manifest`]): one sha256 per file (or per fixed-size shard), the serialization
//! parameters, and the root digest as subject. Two decisions shape the crate:
//! - **Byte compatibility where it is observable, strictness where it is safe.** Resources are
//!   ordered like Python's `PurePosixPath` (by path component), single-file models are named
//!   `.`, shard algorithms are `sha256-sharded-N`; on verify everything is recomputed from the
//!   listed order and compared exactly, and every failure names its reason ([`verify`]).
//! - **Keys sit behind a trait** ([`keys::Signer`]) so KMS or PKCS#11 can replace PEM files, and
//!   the DSSE/statement layers are predicate-agnostic so SLSA provenance reuses them.
#![deny(missing_docs)]

pub mod bundle;
pub mod chain;
pub mod checks;
pub mod dsse;
pub mod error;
pub mod hashing;
pub mod keys;
pub mod manifest;
pub mod provenance;
pub mod report;
pub mod sign;
pub mod statement;
pub mod verify;

pub use checks::CHECKS;

pub use error::{Error, Result};
