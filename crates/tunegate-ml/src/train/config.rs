//! `train.toml`: what `tunegate train` trains, on what, and how. Every key is documented in
//! the README ("Training") and in `examples/train/`; unknown keys are errors (a typo must not
//! silently fall back to a default). Relative paths are relative to the config file.
use super::lora::LoraSettings;
use crate::runtime::{MlError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest `train.toml` read (bytes).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// What is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Sequence classification (`{"text", "label"}` records).
    Classify,
    /// Supervised fine-tuning of a causal LM (`{"prompt", "response"}` or `{"messages"}`).
    Sft,
}

/// Learning-rate decay after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Linear to 0 at the last step.
    Linear,
    /// Half-cosine to 0 at the last step.
    Cosine,
    /// No decay.
    Constant,
}

/// `[data]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training records (JSONL).
    pub train: PathBuf,
    /// Held-out records (JSONL), optional.
    pub eval: Option<PathBuf>,
    /// Dataset lock (`tunegate dataset lock`): verified before training when given, and every
    /// data file must be one it locks.
    pub lock: Option<PathBuf>,
    /// Use only the first N training records (0 = all).
    #[serde(default)]
    pub limit_train: usize,
    /// Use only the first N eval records (0 = all).
    #[serde(default)]
    pub limit_eval: usize,
}

/// `[lora]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    /// Rank.
    #[serde(default = "d_r")]
    pub r: usize,
    /// `lora_alpha`.
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Dropout on the adapter input.
    #[serde(default)]
    pub dropout: f64,
    /// Target module suffixes, or `["all-linear"]`.
    #[serde(default = "d_targets")]
    pub target_modules: Vec<String>,
    /// Fully trained modules (default: the model's head).
    pub modules_to_save: Option<Vec<String>>,
    /// rsLoRA scaling.
    #[serde(default)]
    pub use_rslora: bool,
}

fn d_r() -> usize {
    8
}
fn d_alpha() -> f64 {
    16.0
}
fn d_targets() -> Vec<String> {
    vec!["all-linear".into()]
}

impl Default for LoraSection {
    fn default() -> Self {
        LoraSection {
            r: d_r(),
            alpha: d_alpha(),
            dropout: 0.0,
            target_modules: d_targets(),
            modules_to_save: None,
            use_rslora: false,
        }
    }
}

impl LoraSection {
    /// As [`LoraSettings`].
    pub fn settings(&self) -> LoraSettings {
        LoraSettings {
            r: self.r,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            modules_to_save: self.modules_to_save.clone(),
            use_rslora: self.use_rslora,
        }
    }
}

/// `[optim]`: AdamW and the learning-rate schedule.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// Peak learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// β₁.
    #[serde(default = "d_b1")]
    pub beta1: f64,
    /// β₂.
    #[serde(default = "d_b2")]
    pub beta2: f64,
    /// ε of AdamW.
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// Decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Warm-up steps (linear from 0); exclusive with `warmup_ratio`.
    pub warmup_steps: Option<u64>,
    /// Warm-up as a fraction of the total steps.
    pub warmup_ratio: Option<f64>,
    /// Decay after warm-up.
    #[serde(default = "d_decay")]
    pub decay: Decay,
}

fn d_lr() -> f64 {
    5e-4
}
fn d_b1() -> f64 {
    0.9
}
fn d_b2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_decay() -> Decay {
    Decay::Linear
}

impl Default for OptimSection {
    fn default() -> Self {
        OptimSection {
            lr: d_lr(),
            beta1: d_b1(),
            beta2: d_b2(),
            eps: d_eps(),
            weight_decay: 0.0,
            warmup_steps: None,
            warmup_ratio: None,
            decay: d_decay(),
        }
    }
}

/// `[train]`: schedule and batching.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Epochs (exclusive with `max_steps`; default 1 when neither is given).
    pub epochs: Option<f64>,
    /// Optimizer steps.
    pub max_steps: Option<u64>,
    /// Examples per physical micro-batch.
    #[serde(default = "d_bs")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step (logical batch = batch_size × this).
    #[serde(default = "d_one")]
    pub grad_accum: usize,
    /// Evaluate every N optimizer steps (0 = only at the end).
    #[serde(default)]
    pub eval_every: u64,
    /// Dropout inside the model (attention and hidden) during training.
    #[serde(default)]
    pub model_dropout: f64,
}

fn d_bs() -> usize {
    16
}
fn d_one() -> usize {
    1
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: None,
            max_steps: None,
            batch_size: d_bs(),
            grad_accum: 1,
            eval_every: 0,
            model_dropout: 0.0,
        }
    }
}

/// `[dp]`: DP-SGD.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DpSection {
    /// Train with DP-SGD.
    #[serde(default)]
    pub enabled: bool,
    /// Per-example clipping norm C.
    #[serde(default = "d_c")]
    pub max_grad_norm: f64,
    /// Noise multiplier σ (exclusive with `target_epsilon`).
    pub noise_multiplier: Option<f64>,
    /// Target ε: σ is chosen by the accountant before training.
    pub target_epsilon: Option<f64>,
    /// δ.
    #[serde(default = "d_delta")]
    pub delta: f64,
}

fn d_c() -> f64 {
    1.0
}
fn d_delta() -> f64 {
    1e-5
}

/// A parsed `train.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Base model folder (Hugging Face layout).
    pub model: PathBuf,
    /// `classify` or `sft`.
    pub task: TaskKind,
    /// Seed of every random choice (initialisation, shuffling, dropout, sampling, noise).
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Longest token sequence; longer records are truncated (SFT: an error when the response
    /// would be cut away entirely).
    #[serde(default = "d_max_len")]
    pub max_len: usize,
    /// Adapter output folder (the CLI's `--out` overrides it).
    pub out: Option<PathBuf>,
    /// Also write the merged full checkpoint (base + adapter) to this folder.
    pub merged_out: Option<PathBuf>,
    /// Data.
    pub data: DataSection,
    /// LoRA.
    #[serde(default)]
    pub lora: LoraSection,
    /// Optimizer.
    #[serde(default)]
    pub optim: OptimSection,
    /// Schedule.
    #[serde(default)]
    pub train: TrainSection,
    /// DP-SGD.
    pub dp: Option<DpSection>,
    /// Folder the config was read from (relative paths resolve against it).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The config file.
    #[serde(skip)]
    pub path: PathBuf,
}

fn d_seed() -> u64 {
    0
}
fn d_max_len() -> usize {
    128
}

impl TrainConfig {
    /// Parse `text` as read from `path` and check every value.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut c: TrainConfig = toml::from_str(text).map_err(|e| {
            MlError::Config(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        c.path = path.to_path_buf();
        c.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        c.validate()?;
        Ok(c)
    }

    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(MlError::format(path, "config over 1 MiB"));
        }
        let text = std::fs::read_to_string(path).map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// `p` resolved against the config's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn err(&self, key: &str, msg: impl std::fmt::Display) -> MlError {
        MlError::Config(format!("{}: `{key}` {msg}", self.path.display()))
    }

    fn validate(&self) -> Result<()> {
        if self.max_len < 2 || self.max_len > 1 << 16 {
            return Err(self.err("max_len", "must be in 2..=65536"));
        }
        let l = &self.lora;
        if l.r == 0 || l.r > 4096 {
            return Err(self.err("lora.r", "must be in 1..=4096"));
        }
        if !(l.alpha.is_finite() && l.alpha > 0.0) {
            return Err(self.err("lora.alpha", "must be positive"));
        }
        if !(0.0..1.0).contains(&l.dropout) {
            return Err(self.err("lora.dropout", "must be in [0, 1)"));
        }
        if l.target_modules.is_empty() {
            return Err(self.err("lora.target_modules", "is empty"));
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(self.err("optim.lr", "must be positive"));
        }
        for (k, v) in [("optim.beta1", o.beta1), ("optim.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(self.err(k, "must be in [0, 1)"));
            }
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(self.err("optim.eps", "must be positive"));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(self.err("optim.weight_decay", "must be >= 0"));
        }
        if o.warmup_steps.is_some() && o.warmup_ratio.is_some() {
            return Err(self.err(
                "optim.warmup_ratio",
                "and `optim.warmup_steps` exclude each other",
            ));
        }
        if let Some(r) = o.warmup_ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(self.err("optim.warmup_ratio", "must be in [0, 1]"));
            }
        }
        let t = &self.train;
        if t.epochs.is_some() && t.max_steps.is_some() {
            return Err(self.err("train.max_steps", "and `train.epochs` exclude each other"));
        }
        if let Some(e) = t.epochs {
            if !(e.is_finite() && e > 0.0 && e <= 1e6) {
                return Err(self.err("train.epochs", "must be positive"));
            }
        }
        if t.max_steps == Some(0) {
            return Err(self.err("train.max_steps", "must be at least 1"));
        }
        if t.batch_size == 0 || t.batch_size > 1 << 16 {
            return Err(self.err("train.batch_size", "must be in 1..=65536"));
        }
        if t.grad_accum == 0 || t.grad_accum > 1 << 16 {
            return Err(self.err("train.grad_accum", "must be in 1..=65536"));
        }
        if !(0.0..1.0).contains(&t.model_dropout) {
            return Err(self.err("train.model_dropout", "must be in [0, 1)"));
        }
        if let Some(d) = &self.dp {
            if d.enabled {
                if !(d.max_grad_norm.is_finite() && d.max_grad_norm > 0.0) {
                    return Err(self.err("dp.max_grad_norm", "must be positive"));
                }
                match (d.noise_multiplier, d.target_epsilon) {
                    (Some(_), Some(_)) => {
                        return Err(self.err(
                            "dp.target_epsilon",
                            "and `dp.noise_multiplier` exclude each other",
                        ))
                    }
                    (None, None) => {
                        return Err(self.err("dp", "needs `noise_multiplier` or `target_epsilon`"))
                    }
                    (Some(s), None) if !(s.is_finite() && s >= 0.0) => {
                        return Err(self.err("dp.noise_multiplier", "must be >= 0"))
                    }
                    (None, Some(e)) if !(e.is_finite() && e > 0.0) => {
                        return Err(self.err("dp.target_epsilon", "must be positive"))
                    }
                    _ => {}
                }
                if !(d.delta > 0.0 && d.delta < 1.0) {
                    return Err(self.err("dp.delta", "must be in (0, 1)"));
                }
            }
        }
        Ok(())
    }

    /// The DP section when DP-SGD is enabled.
    pub fn dp_enabled(&self) -> Option<&DpSection> {
        self.dp.as_ref().filter(|d| d.enabled)
    }
}
