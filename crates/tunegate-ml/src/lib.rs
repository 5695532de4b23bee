//! Machine-learning pieces of tunegate.
//!
//! Today the crate holds only the DP-SGD privacy accountant ([`dp`]): Rényi DP of the
//! Poisson-subsampled Gaussian mechanism, its conversion to (ε, δ), and the search for the noise
//! multiplier that meets a target ε. It is deliberately light (pure Rust, `libm` for log-gamma
//! and erfc) so the CLI can use it without an ML runtime.
//!
//! This is the future home of the candle runtime: the LoRA trainer, DP-SGD training itself
//! (per-example clipping and noising) and the model scans that need forward/backward passes will
//! join this crate, behind features, when that runtime lands.
#![deny(missing_docs)]

pub mod dp;
