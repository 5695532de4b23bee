//! The dataset crate's error type.
use std::path::PathBuf;

/// Errors that stop the gate (exit 2). Bad records are findings, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not in the format it claims (not Parquet, no CSV header, ...).
    #[error("{path}: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A bad option or argument.
    #[error("{0}")]
    Usage(String),
    /// An error from core (lock/config files).
    #[error(transparent)]
    Core(#[from] tunegate_core::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// `path` cannot be read as a dataset.
    pub fn unreadable(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Unreadable {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The dataset crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
