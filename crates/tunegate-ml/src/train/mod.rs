//! Fine-tuning: LoRA adapters in PEFT's layout ([`lora`]), DP-SGD ([`dpsgd`]), the
//! `train.toml` config ([`config`]) and the training loop ([`trainer`]).
pub mod config;
pub mod dpsgd;
pub mod lora;
pub mod trainer;

pub use config::{TaskKind, TrainConfig};
pub use lora::{Adapter, LoraSettings};
pub use trainer::{train, TrainInputs, TrainReport, Trained};
