//! The infra crate's error type.
use std::path::PathBuf;

/// Errors that stop a gate (exit 2): unreadable or unparseable input, bad arguments.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but cannot be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A bad argument or a request that cannot be met.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// A parse error in `path` at `line`.
    pub fn parse(path: impl Into<PathBuf>, line: u64, message: impl Into<String>) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

/// The infra crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest input file read (YAML, JSON, lockfiles, advisories): 32 MiB.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Reads a text file with the size bound, naming the file on error.
pub fn read_text(path: &std::path::Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::parse(
            path,
            0,
            format!(
                "file is {} bytes, over the {} byte limit",
                meta.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::parse(path, 0, format!("not UTF-8: {e}")))
}
