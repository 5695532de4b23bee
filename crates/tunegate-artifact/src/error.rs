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
    /// A file of a kind the command does not handle was named explicitly.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// Why it cannot be handled.
        reason: String,
    },
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
