//! The crate's error type: input and usage problems (exit 2 at the CLI). Verification failures
//! are not errors of this kind: they are [`crate::verify::VerifyFailure`]s, which carry a check id
//! and a reason, so the CLI can exit 1 naming why.
use std::path::PathBuf;

/// Everything that can go wrong while loading keys, reading files or building a signature.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file is not a key tunegate can use.
    #[error("key: {0}")]
    Key(String),
    /// A bundle, envelope or statement that cannot be built or parsed.
    #[error("{0}")]
    Format(String),
    /// A model folder that cannot be signed as asked (empty, special files, bad names, ...).
    #[error("{0}")]
    Model(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
