//! The entry point for loading a Hugging Face model folder: read `config.json`, pick tunegate's
//! own model file by `model_type`, map the weights.
//!
//! Order of checks, so the first error is the most useful: `config.json` (exists, bounded,
//! valid JSON), then `model_type` (supported), then the weights (safetensors only; a folder with
//! only a pickle checkpoint is refused), then every tensor the architecture needs (name, shape).
use super::bert::{Encoder, EncoderArch, EncoderConfig};
use super::error::{MlError, Result};
use super::nn::{Task, TextModel};
use super::tokenizer::TextTokenizer;
use super::weights::{read_json, Cfg, Weights};
use candle_core::Device;
use std::path::Path;

/// The `model_type`s [`load_model`] accepts.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["bert", "distilbert", "roberta", "xlm-roberta"];

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The task asked for; `None`: what the architecture is (encoders classify, decoders
    /// predict the next token).
    pub task: Option<Task>,
    /// Labels of a classifier; `None`: from the task, else from `config.json` (`id2label`,
    /// `num_labels`, else 2).
    pub num_labels: Option<usize>,
    /// Seed of freshly initialised modules (a classification head the folder lacks).
    pub seed: u64,
}

impl LoadOptions {
    /// The number of labels for a classifier whose config says `config_labels`; `what` names
    /// the model in errors.
    pub fn classifier_labels(&self, config_labels: usize, what: &str) -> Result<usize> {
        let from_task = match self.task {
            None => None,
            Some(Task::Classify(n)) => Some(n),
            Some(Task::CausalLm(_)) => {
                return Err(MlError::Config(format!(
                    "{what} is an encoder with a classification head; it cannot be loaded as a \
                     causal language model"
                )))
            }
        };
        match (from_task, self.num_labels) {
            (Some(a), Some(b)) if a != b => Err(MlError::Config(format!(
                "the task asks for {a} labels and num_labels for {b}"
            ))),
            (Some(n), _) | (None, Some(n)) => Ok(n),
            (None, None) => Ok(config_labels),
        }
    }
}

/// `config.json` of folder `dir`, parsed, with its `model_type`.
fn read_config(dir: &Path) -> Result<(serde_json::Value, String)> {
    if !dir.is_dir() {
        return Err(MlError::format(dir, "not a model folder"));
    }
    let config_path = dir.join("config.json");
    let config = read_json(&config_path)?;
    if !config.is_object() {
        return Err(MlError::format(&config_path, "not a JSON object"));
    }
    let model_type = match config.get("model_type") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(MlError::format(
                &config_path,
                "`model_type` is not a string",
            ))
        }
        None => return Err(MlError::format(&config_path, "no `model_type`")),
    };
    Ok((config, model_type))
}

fn unsupported(dir: &Path, model_type: &str) -> MlError {
    MlError::format(
        dir.join("config.json"),
        format!(
            "model_type `{model_type}` is not supported (supported: {})",
            SUPPORTED_MODEL_TYPES.join(", ")
        ),
    )
}

/// Load the model in folder `dir` (`config.json`, `*.safetensors`) on `device`.
///
/// Dispatches on `config.json`'s `model_type`: `bert`, `distilbert`, `roberta` and
/// `xlm-roberta` give an [`Encoder`] with its classification head (see [`super::bert`] for
/// names and fresh heads). Any other type is a [`MlError::Format`] naming `config.json` and
/// the type.
pub fn load_model(dir: &Path, opts: &LoadOptions, device: &Device) -> Result<Box<dyn TextModel>> {
    let (config, model_type) = read_config(dir)?;
    match model_type.as_str() {
        "bert" | "distilbert" | "roberta" | "xlm-roberta" => Ok(Box::new(encoder_from_config(
            dir,
            config,
            &model_type,
            opts,
            device,
        )?)),
        // Causal LMs (`gpt2`, `llama`, `qwen2`) get their arms here.
        other => Err(unsupported(dir, other)),
    }
}

/// Load a BERT-family folder as the concrete [`Encoder`] (for what the trait does not
/// expose: [`Encoder::head_init`], [`Encoder::to_dtype`], the pooler).
pub fn load_encoder(dir: &Path, opts: &LoadOptions, device: &Device) -> Result<Encoder> {
    let (config, model_type) = read_config(dir)?;
    encoder_from_config(dir, config, &model_type, opts, device)
}

fn encoder_from_config(
    dir: &Path,
    config: serde_json::Value,
    model_type: &str,
    opts: &LoadOptions,
    device: &Device,
) -> Result<Encoder> {
    let arch =
        EncoderArch::from_model_type(model_type).ok_or_else(|| unsupported(dir, model_type))?;
    // Settings first, so a config error is reported before the weights are looked at.
    let cfg = EncoderConfig::from_cfg(&Cfg::new(dir.join("config.json"), &config), arch)?;
    let labels = opts.classifier_labels(cfg.config_labels, &format!("`{model_type}`"))?;
    let weights = Weights::open_dir(dir)?;
    Encoder::from_weights(&weights, cfg, labels, opts.seed, device)
}

/// Load `dir/tokenizer.json` (padding to the longest of a batch, no truncation: see
/// [`TextTokenizer`]).
pub fn load_tokenizer(dir: &Path) -> Result<TextTokenizer> {
    TextTokenizer::load(dir)
}
