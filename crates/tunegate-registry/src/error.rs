//! The registry's error type.
use std::path::Path;

/// Anything that stops a registry operation before it can answer with a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed (locked past the timeout, corrupt, disk full).
    #[error("registry store: {0}")]
    Store(String),
    /// Bad configuration or policy.
    #[error("registry policy: {0}")]
    Policy(String),
    /// Bad input: unknown model or version, malformed argument.
    #[error("{0}")]
    Input(String),
    /// The acting principal may not do this (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No or a wrong token (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A signing-layer error (reading keys).
    #[error(transparent)]
    Sign(#[from] tunegate_sign::Error),
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(e.to_string())
    }
}

/// Result with the registry's error.
pub type Result<T> = std::result::Result<T, Error>;
