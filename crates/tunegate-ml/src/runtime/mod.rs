//! The model runtime on candle: Hugging Face folders loaded as they are, tunegate's own
//! differentiable model files, LoRA adapters and the pieces the trainer and the scans share.
pub mod bert;
pub mod error;
pub mod load;
pub mod nn;
pub mod tokenizer;
pub mod weights;

pub use bert::{Encoder, EncoderArch, EncoderConfig, Pooling};
pub use error::{MlError, Result};
pub use load::{load_encoder, load_model, load_tokenizer, LoadOptions};
pub use nn::{Ctx, Linear, LinearInfo, LoraFactors, Output, Task, TextModel};
pub use tokenizer::{Batch, TextTokenizer};
pub use weights::{Cfg, ModelDir, Weights};
