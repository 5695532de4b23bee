//! Machine-learning runtime of tunegate, on candle.
//!
//! - [`dp`]: the DP-SGD privacy accountant (Rényi DP of the Poisson-subsampled Gaussian, its
//!   conversion to (ε, δ), and the noise multiplier for a target ε).
//! - [`runtime`]: Hugging Face model folders loaded without Python, tunegate's own
//!   differentiable model files (gradients flow to input embeddings and LoRA factors), and the
//!   layers the trainer and the pre-deployment scans share.
//! - [`scan`]: the statistics of the pre-deployment backdoor scans (activation clustering,
//!   spectral signatures, Mahalanobis distance, STRIP, anomaly index, behaviour diff) and their
//!   `B###` checks.
//! - [`train`]: LoRA fine-tuning (PEFT-compatible adapters), DP-SGD and `train.toml`.
//! - [`zoo`]: populations of clean and backdoored models trained with [`train`], on which the
//!   scans are measured.
#![deny(missing_docs)]

pub mod dp;
pub mod runtime;
pub mod scan;
pub mod train;
pub mod zoo;
