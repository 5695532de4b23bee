//! The statistical core of the pre-deployment backdoor scans.
//!
//! Model-independent: everything here works on feature matrices, predicted distributions and
//! log-probabilities that the model code computes and feeds in.
//!
//! - [`linalg`]: means, Ledoit-Wolf shrunk covariance, Cholesky, principal components by power
//!   iteration, k-means++ with restarts, silhouette, median/MAD robust z-scores, conformal
//!   thresholds.
//! - [`detectors`]: Activation Clustering, spectral signatures, Mahalanobis feature distance,
//!   STRIP entropy, the Neural-Cleanse anomaly index and the behaviour diff of a causal LM
//!   against its base.
//! - [`model`]: what the model-side scans share: the model to scan (a full folder or a LoRA
//!   adapter over its base), their inputs, and [`model::ScanOutcome`].
//! - [`report`]: the `B###` checks and the conversion of detector results into findings and
//!   charts.
//! - [`classifier`]: the model-side scans of text classifiers (trigger search with flip rates,
//!   soft-trigger inversion and anomaly index, data-level detectors on the model's features,
//!   candidate probes) and their checks `B015`–`B029`.
//! - [`causal`]: the scans of causal LMs (behaviour diff, target inversion, trigger probing;
//!   `B030`–`B049`).
//! - [`safety`]: safety regression of a fine-tune against its base on JSONL suites
//!   (`B050`–`B059`).

pub mod causal;
pub mod classifier;
pub mod detectors;
pub mod linalg;
pub mod model;
pub mod report;
pub mod safety;

/// Errors of the scan statistics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScanError {
    /// Inputs whose lengths or widths disagree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A NaN or infinite input.
    #[error("non-finite input: {0}")]
    NonFinite(String),
    /// Too few rows for the statistic.
    #[error("too few samples: {0}")]
    TooFewSamples(String),
    /// Data the statistic is undefined on (identical points, singular covariance).
    #[error("degenerate data: {0}")]
    Degenerate(String),
    /// An invalid argument or setting.
    #[error("invalid input: {0}")]
    Invalid(String),
}
