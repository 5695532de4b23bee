//! Errors of the model runtime. Every variant names the file, tensor or record at fault, so
//! the CLI can print it and exit 2.
use std::path::PathBuf;

/// What went wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model folder, config or weight file is malformed or unsupported.
    #[error("{path}: {msg}")]
    Format {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A tensor the architecture needs is missing or has the wrong shape or type.
    #[error("tensor `{name}`: {msg}")]
    Tensor {
        /// The tensor name as stored in the weight files.
        name: String,
        /// What is wrong with it.
        msg: String,
    },
    /// Input data (a dataset record, a prompt) is unusable.
    #[error("{source_name}: {msg}")]
    Data {
        /// File and record, e.g. `train.jsonl:17`.
        source_name: String,
        /// What is wrong with it.
        msg: String,
    },
    /// An invalid setting (training config, LoRA target, ...).
    #[error("{0}")]
    Config(String),
    /// A tensor operation failed (shape mismatch inside a model, device error).
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result of the runtime.
pub type Result<T, E = MlError> = std::result::Result<T, E>;

impl MlError {
    /// A [`MlError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        MlError::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
    /// A [`MlError::Tensor`] for `name`.
    pub fn tensor(name: impl Into<String>, msg: impl Into<String>) -> Self {
        MlError::Tensor {
            name: name.into(),
            msg: msg.into(),
        }
    }
}
