//! The artifact crate's error type.
use std::path::PathBuf;

/// Errors that stop the gate (exit 2). Hostile or broken content is a finding, not an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Input that weight statistics cannot be computed from: a malformed safetensors header, an
    /// unsupported dtype, a broken index or fingerprint. The message names the tensor when there
    /// is one.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the tensor.
        message: String,
    },
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
