//! The base-model gate: scan model files before anything loads them.
//!
//! Nothing here executes, imports or unpickles the input. Pickles are decoded opcode by opcode
//! ([`pickle`]) by a symbolic stack/memo machine that follows CPython's C unpickler (not
//! `pickletools`), and every imported global is graded by an allow-list ([`policy`]): only the
//! globals real checkpoints need pass; anything else is at least medium, and known code-execution
//! gadgets are critical. Containers ([`container`]) are read the way PyTorch reads them (zip flag
//! bits and CRCs ignored, member content sniffed instead of trusting names). [`formats`] holds
//! byte-level checks for the other code paths: chat templates, Keras Lambda layers, TensorFlow
//! ops, safetensors headers and `auto_map` remote code. [`scan`] turns files and folders into a
//! `model` gate report; findings use the `M###` ids of [`checks`]. [`hash`] hashes model files
//! and folders in parallel (memory-mapped, each file read once); [`approved`] pins models by
//! digest in an approved-model list (`approved.toml`) and verifies a file or folder against it.
//! [`safetensors`] maps safetensors weights and [`weights`] fingerprints them (per-tensor
//! statistics) and diffs a model against a reference model or a stored fingerprint.
//!
//! Design decisions:
//! - **Allow-list first.** Deny-lists only grade severity and explain; an unknown callable invoked
//!   during load is already high.
//! - **Bounded work on hostile input.** Length fields are checked against the bytes actually
//!   present before anything is read, payloads are skipped (never copied), and opcode, stack,
//!   memo, nesting and decompression budgets turn exhaustion into findings. Large files are read
//!   on demand: pickles in windows that skip payloads by offset, zips member by member (raw
//!   tensor storages never), safetensors header only.
#![deny(missing_docs)]

pub mod approved;
pub mod checks;
pub mod container;
pub mod error;
pub mod formats;
pub mod hash;
pub mod lint;
pub mod pickle;
pub mod policy;
pub mod safetensors;
pub mod scan;
pub mod weights;

pub use checks::CHECKS;
pub use error::{Error, Result};
pub use scan::{scan_bytes, scan_paths, scan_paths_with, ScanOptions};
