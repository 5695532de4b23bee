//! The training-infrastructure gate: policy checks for the Kubernetes objects and AWS IAM
//! policies that run a fine-tuning job, a generator for the threat model's isolated-job pattern,
//! and hygiene checks for the job's Python dependencies.
//!
//! - [`infra`] loads a tree of YAML/JSON files ([`yaml`] keeps a line for every node), builds the
//!   object graph (pods, service accounts, RBAC, NetworkPolicies, IAM policies) and reasons
//!   across it: pod → service account → bindings → effective rules; pod → selecting
//!   NetworkPolicies → effective egress; service account's IRSA role annotation → the IAM policy
//!   in the same tree ([`iam`]).
//! - [`generate`] writes a manifest set and IAM policy that pass [`infra`] with nothing above info.
//! - [`deps`] reads requirements files, pip freeze output, `uv.lock` and `poetry.lock`, and checks
//!   pins, hashes, direct URLs, index overrides, a shipped list of known-compromised releases and
//!   offline OSV advisories ([`osv`], with PEP 440 ordering in [`pep440`]).
//!
//! Design decisions:
//! - **One parser for YAML and JSON** (JSON is read as YAML) so every finding can carry the line
//!   of the node it is about; anchors and aliases are expanded under a node budget.
//! - **Findings say what was not evaluated.** Objects and CRDs this gate does not understand
//!   (CNI egress policies, unknown kinds) produce an info finding, never a silent pass.
//! - Nothing here reaches the network or executes the input.
#![deny(missing_docs)]

pub mod checks;
pub mod deps;
pub mod error;
pub mod generate;
pub mod iam;
pub mod infra;
pub mod osv;
pub mod pep440;
pub mod yaml;

pub use checks::CHECKS;
pub use error::{Error, Result};
