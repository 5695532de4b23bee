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
    /// A fifo, socket or device inside a model folder.
    #[error("{path}: {kind}, not a regular file, folder or symlink; refusing to read it")]
    Special {
        /// The path.
        path: PathBuf,
        /// What it is (`a fifo`, `a socket`, `a device`).
        kind: &'static str,
    },
    /// A file name that is not UTF-8 cannot be listed unambiguously.
    #[error("{path}: file name is not UTF-8")]
    NotUtf8 {
        /// The path (lossy when displayed).
        path: PathBuf,
    },
    /// A file changed size while it was being hashed.
    #[error("{path}: file changed size while it was being hashed")]
    Changed {
        /// The path.
        path: PathBuf,
    },
    /// An approved-model list that is malformed, or a request it cannot answer.
    #[error("{file}: {msg}")]
    Approved {
        /// The list as the user named it.
        file: String,
        /// What is wrong, naming the entry.
        msg: String,
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
