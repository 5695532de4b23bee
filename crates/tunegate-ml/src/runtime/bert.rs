//! The BERT family of encoders, differentiable end to end: BERT (MiniLM is a BERT), DistilBERT
//! and RoBERTa / XLM-RoBERTa, each with its sequence-classification head.
//!
//! Built only from the layers of [`super::nn`] (LayerNorm from `layer_norm_slow`, softmax from
//! `candle_nn::ops::softmax`), so gradients reach the input embeddings, LoRA factors and head.
//!
//! # Weights as stored
//! Tensors are read under the names Hugging Face stores, with or without the base-model prefix
//! (`bert.`, `distilbert.`, `roberta.`; a plain `BertModel` such as all-MiniLM-L6-v2 has none),
//! and LayerNorms under `weight`/`bias` or the legacy `gamma`/`beta`. The head sits at the top
//! level (`classifier`, DistilBERT's `pre_classifier`, RoBERTa's `classifier.dense` and
//! `classifier.out_proj`). When the folder has no head, a fresh one is made with
//! [`Encoder::head_init`] (normal weights of std `initializer_range`, zero biases, from the
//! seed), like `transformers` does for `*ForSequenceClassification` over a bare encoder.
//!
//! # Module names
//! Module names (what [`Ctx::lora`], [`Ctx::full`], [`TextModel::linears`] and
//! [`TextModel::head_modules`] use) are the module paths of the `*ForSequenceClassification`
//! model of `transformers`, i.e. PEFT's names without `base_model.model.`: the encoder's
//! modules always carry the base-model prefix, **whether or not the stored keys do**, e.g.
//! `bert.encoder.layer.0.attention.self.query` for MiniLM (stored as
//! `encoder.layer.0.attention.self.query.weight`), because loading a bare `BertModel` into
//! `BertForSequenceClassification` puts it under `bert.`. XLM-RoBERTa uses `roberta.` (its
//! `base_model_prefix`). The head modules have no prefix (`classifier`, ...). An adapter
//! trained here therefore carries the tensor names PEFT writes for the same model.
//!
//! # Positions
//! BERT and DistilBERT use positions `0..T`. RoBERTa numbers real tokens from `pad + 1` and
//! gives padding the position `pad`; `transformers` derives this from the input ids, here it
//! comes from the attention mask (the same thing when the mask marks the non-pad tokens, which
//! is what [`super::tokenizer::TextTokenizer::batch`] produces), so it holds for
//! [`TextModel::forward_embeds`] too.
use super::error::{MlError, Result};
use super::nn::{
    padding_bias, softmax_last, Activation, Ctx, LayerNorm, Linear, LinearInfo, Output, Task,
    TextModel,
};
use super::tokenizer::Batch;
use super::weights::{Cfg, ModelDir, Weights};
use candle_core::{DType, Device, Tensor, D};
use rand::{Rng, SeedableRng};

/// Most labels a classification head may have (a larger number is a hostile or broken config).
pub const MAX_LABELS: usize = 1 << 16;

/// Which member of the BERT family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderArch {
    /// BERT and MiniLM (`model_type` `bert`).
    Bert,
    /// DistilBERT (`distilbert`).
    DistilBert,
    /// RoBERTa and XLM-RoBERTa (`roberta`, `xlm-roberta`).
    Roberta,
}

impl EncoderArch {
    /// The architecture of a `config.json` `model_type`, if it is an encoder of this file.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Some(match model_type {
            "bert" => EncoderArch::Bert,
            "distilbert" => EncoderArch::DistilBert,
            "roberta" | "xlm-roberta" => EncoderArch::Roberta,
            _ => return None,
        })
    }

    /// The `base_model_prefix` of `transformers` (without the dot): `bert`, `distilbert` or
    /// `roberta`.
    pub fn base_prefix(self) -> &'static str {
        match self {
            EncoderArch::Bert => "bert",
            EncoderArch::DistilBert => "distilbert",
            EncoderArch::Roberta => "roberta",
        }
    }
}

/// The hyper-parameters of an encoder, read from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Architecture.
    pub arch: EncoderArch,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size (`hidden_size`, DistilBERT `dim`).
    pub hidden_size: usize,
    /// Number of layers.
    pub num_layers: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// Feed-forward size (`intermediate_size`, DistilBERT `hidden_dim`).
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Rows of the position-embedding table.
    pub max_positions: usize,
    /// Rows of the token-type table (0: none, as in DistilBERT).
    pub type_vocab_size: usize,
    /// Padding token id (RoBERTa's positions start after it).
    pub pad_token_id: usize,
    /// Standard deviation of fresh weights.
    pub initializer_range: f64,
    /// Labels of the stored head according to the config (`id2label`, `num_labels`; 2 when
    /// neither is given, as in `transformers`).
    pub config_labels: usize,
}

impl EncoderConfig {
    /// Read the settings of `arch` from a parsed `config.json`; errors name the file and key.
    pub fn from_cfg(cfg: &Cfg<'_>, arch: EncoderArch) -> Result<Self> {
        let distil = arch == EncoderArch::DistilBert;
        let key =
            |bert: &'static str, distil_key: &'static str| if distil { distil_key } else { bert };
        let hidden_size = cfg.usize(key("hidden_size", "dim"))?;
        let num_layers = cfg.usize(key("num_hidden_layers", "n_layers"))?;
        let num_heads = cfg.usize(key("num_attention_heads", "n_heads"))?;
        let intermediate_size = cfg.usize(key("intermediate_size", "hidden_dim"))?;
        let vocab_size = cfg.usize("vocab_size")?;
        let act_key = key("hidden_act", "activation");
        let act_name = match cfg.str_opt(act_key) {
            Some(s) => s,
            None if cfg.value_of(act_key).is_some() => {
                return Err(MlError::format(
                    cfg.path(),
                    format!("`{act_key}` is not a string"),
                ))
            }
            None => "gelu",
        };
        let activation = Activation::parse(act_name).ok_or_else(|| {
            MlError::format(
                cfg.path(),
                format!("`{act_key}` = `{act_name}` is not a supported activation"),
            )
        })?;
        if hidden_size == 0 || num_heads == 0 || hidden_size % num_heads != 0 {
            return Err(MlError::format(
                cfg.path(),
                format!("hidden size {hidden_size} is not a multiple of {num_heads} heads"),
            ));
        }
        if !distil {
            if let Some(p) = cfg.str_opt("position_embedding_type") {
                if p != "absolute" {
                    return Err(MlError::format(
                        cfg.path(),
                        format!(
                            "`position_embedding_type` = `{p}` is not supported (absolute only)"
                        ),
                    ));
                }
            }
        }
        let default_pad = if arch == EncoderArch::Roberta { 1 } else { 0 };
        let config_labels = match cfg.value_of("id2label") {
            Some(serde_json::Value::Object(m)) if !m.is_empty() => m.len(),
            _ => cfg.usize_opt("num_labels")?.unwrap_or(2),
        };
        Ok(EncoderConfig {
            arch,
            vocab_size,
            hidden_size,
            num_layers,
            num_heads,
            intermediate_size,
            activation,
            layer_norm_eps: if distil {
                1e-12
            } else {
                cfg.f64_opt("layer_norm_eps")?.unwrap_or(1e-12)
            },
            max_positions: cfg.usize_opt("max_position_embeddings")?.unwrap_or(512),
            type_vocab_size: if distil {
                0
            } else {
                cfg.usize_opt("type_vocab_size")?.unwrap_or(2)
            },
            pad_token_id: cfg.usize_opt("pad_token_id")?.unwrap_or(default_pad),
            initializer_range: cfg.f64_opt("initializer_range")?.unwrap_or(0.02),
            config_labels,
        })
    }
}

/// One transformer layer (post-LayerNorm, as in all three architectures).
#[derive(Clone, Debug)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// A BERT-family encoder with its sequence-classification head.
#[derive(Clone, Debug)]
pub struct Encoder {
    cfg: EncoderConfig,
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    /// BERT's pooler (dense + tanh on `[CLS]`).
    pooler: Option<Linear>,
    /// The head modules in forward order (see [`TextModel::head_modules`]).
    head: Vec<Linear>,
    num_labels: usize,
    pretrained_head: bool,
}

/// A seeded normal draw (Box-Muller) for fresh weights.
fn normal(rng: &mut rand_chacha::ChaCha8Rng, std: f64) -> f32 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
}

/// A fresh linear layer: weight ~ N(0, std²), bias 0 (the `transformers` initialisation).
fn fresh_linear(
    name: &str,
    in_dim: usize,
    out_dim: usize,
    std: f64,
    rng: &mut rand_chacha::ChaCha8Rng,
    dtype: DType,
    device: &Device,
) -> Result<Linear> {
    let w: Vec<f32> = (0..in_dim * out_dim).map(|_| normal(rng, std)).collect();
    Ok(Linear {
        name: name.to_string(),
        weight: Tensor::from_vec(w, (out_dim, in_dim), device)?.to_dtype(dtype)?,
        bias: Some(Tensor::zeros(out_dim, dtype, device)?),
    })
}

/// Stored names and module names of one encoder: `stored` is the prefix the weight files use
/// (`bert.` or empty), `module` the prefix of module names (always `bert.` etc.).
struct Names {
    stored: String,
    module: String,
}

impl Names {
    fn stored(&self, path: &str) -> String {
        format!("{}{path}", self.stored)
    }
    fn module(&self, path: &str) -> String {
        format!("{}{path}", self.module)
    }
    fn linear(&self, w: &Weights, path: &str, i: usize, o: usize, dev: &Device) -> Result<Linear> {
        Linear::load(
            w,
            &self.stored(path),
            &self.module(path),
            i,
            o,
            true,
            false,
            dev,
        )
    }
    fn norm(
        &self,
        w: &Weights,
        path: &str,
        dim: usize,
        eps: f64,
        dev: &Device,
    ) -> Result<LayerNorm> {
        LayerNorm::load(w, &self.stored(path), dim, eps, dev)
    }
}

impl Encoder {
    /// Load the encoder of an opened model folder with `num_labels` labels (the stored head
    /// must have that many; a missing head is created from `seed`).
    pub fn load(dir: &ModelDir, num_labels: usize, seed: u64, device: &Device) -> Result<Self> {
        let config_path = dir.root.join("config.json");
        let arch = EncoderArch::from_model_type(dir.model_type()).ok_or_else(|| {
            MlError::format(
                &config_path,
                format!(
                    "model_type `{}` is not a BERT-family encoder",
                    dir.model_type()
                ),
            )
        })?;
        let cfg = EncoderConfig::from_cfg(&Cfg::new(config_path, &dir.config), arch)?;
        Self::from_weights(&dir.weights, cfg, num_labels, seed, device)
    }

    /// Build the encoder from weights and a config.
    pub fn from_weights(
        w: &Weights,
        cfg: EncoderConfig,
        num_labels: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if num_labels == 0 || num_labels > MAX_LABELS {
            return Err(MlError::Config(format!(
                "{num_labels} labels: a classifier needs between 1 and {MAX_LABELS}"
            )));
        }
        let base = cfg.arch.base_prefix();
        let with_prefix = format!("{base}.");
        let probe = "embeddings.word_embeddings.weight";
        let stored = w
            .find_prefix(&[with_prefix.as_str(), ""], probe)
            .ok_or_else(|| {
                MlError::tensor(
                    format!("{with_prefix}{probe}"),
                    "missing from the weight files (also looked for it without the prefix)",
                )
            })?
            .to_string();
        let names = Names {
            stored,
            module: with_prefix,
        };
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        let eps = cfg.layer_norm_eps;
        let word = w.get(&names.stored(probe), Some(&[cfg.vocab_size, h]), device)?;
        let position = w.get(
            &names.stored("embeddings.position_embeddings.weight"),
            Some(&[cfg.max_positions, h]),
            device,
        )?;
        let token_type = if cfg.type_vocab_size > 0 {
            Some(w.get(
                &names.stored("embeddings.token_type_embeddings.weight"),
                Some(&[cfg.type_vocab_size, h]),
                device,
            )?)
        } else {
            None
        };
        let emb_norm = names.norm(w, "embeddings.LayerNorm", h, eps, device)?;
        let mut layers = Vec::with_capacity(cfg.num_layers.min(1024));
        for i in 0..cfg.num_layers {
            let layer = if cfg.arch == EncoderArch::DistilBert {
                let p = format!("transformer.layer.{i}.");
                Layer {
                    q: names.linear(w, &format!("{p}attention.q_lin"), h, h, device)?,
                    k: names.linear(w, &format!("{p}attention.k_lin"), h, h, device)?,
                    v: names.linear(w, &format!("{p}attention.v_lin"), h, h, device)?,
                    o: names.linear(w, &format!("{p}attention.out_lin"), h, h, device)?,
                    attn_norm: names.norm(w, &format!("{p}sa_layer_norm"), h, eps, device)?,
                    up: names.linear(w, &format!("{p}ffn.lin1"), h, f, device)?,
                    down: names.linear(w, &format!("{p}ffn.lin2"), f, h, device)?,
                    out_norm: names.norm(w, &format!("{p}output_layer_norm"), h, eps, device)?,
                }
            } else {
                let p = format!("encoder.layer.{i}.");
                Layer {
                    q: names.linear(w, &format!("{p}attention.self.query"), h, h, device)?,
                    k: names.linear(w, &format!("{p}attention.self.key"), h, h, device)?,
                    v: names.linear(w, &format!("{p}attention.self.value"), h, h, device)?,
                    o: names.linear(w, &format!("{p}attention.output.dense"), h, h, device)?,
                    attn_norm: names.norm(
                        w,
                        &format!("{p}attention.output.LayerNorm"),
                        h,
                        eps,
                        device,
                    )?,
                    up: names.linear(w, &format!("{p}intermediate.dense"), h, f, device)?,
                    down: names.linear(w, &format!("{p}output.dense"), f, h, device)?,
                    out_norm: names.norm(w, &format!("{p}output.LayerNorm"), h, eps, device)?,
                }
            };
            layers.push(layer);
        }
        // More layers stored than the config names would be silently dropped: refuse.
        let extra = if cfg.arch == EncoderArch::DistilBert {
            format!(
                "transformer.layer.{}.attention.q_lin.weight",
                cfg.num_layers
            )
        } else {
            format!(
                "encoder.layer.{}.attention.self.query.weight",
                cfg.num_layers
            )
        };
        if w.contains(&names.stored(&extra)) {
            return Err(MlError::tensor(
                names.stored(&extra),
                format!("stored, but config.json has only {} layers", cfg.num_layers),
            ));
        }
        let pooler = if cfg.arch == EncoderArch::Bert {
            if w.contains(&names.stored("pooler.dense.weight")) {
                Some(names.linear(w, "pooler.dense", h, h, device)?)
            } else {
                // transformers initialises a missing pooler; its own stream of the seed
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(1);
                let name = names.module("pooler.dense");
                Some(fresh_linear(
                    &name,
                    h,
                    h,
                    cfg.initializer_range,
                    &mut rng,
                    DType::F32,
                    device,
                )?)
            }
        } else {
            None
        };
        let mut enc = Encoder {
            cfg,
            word,
            position,
            token_type,
            emb_norm,
            layers,
            pooler,
            head: Vec::new(),
            num_labels,
            pretrained_head: false,
        };
        let specs = enc.head_specs(num_labels);
        if w.contains(&format!("{}.weight", specs[specs.len() - 1].0)) {
            for (name, i, o) in specs {
                enc.head
                    .push(Linear::load(w, &name, &name, i, o, true, false, device)?);
            }
            enc.pretrained_head = true;
        } else {
            enc.head_init(num_labels, seed)?;
        }
        Ok(enc)
    }

    /// Names and `(in, out)` sizes of the head modules for `num_labels` labels.
    fn head_specs(&self, num_labels: usize) -> Vec<(String, usize, usize)> {
        let h = self.cfg.hidden_size;
        match self.cfg.arch {
            EncoderArch::Bert => vec![("classifier".into(), h, num_labels)],
            EncoderArch::DistilBert => vec![
                ("pre_classifier".into(), h, h),
                ("classifier".into(), h, num_labels),
            ],
            EncoderArch::Roberta => vec![
                ("classifier.dense".into(), h, h),
                ("classifier.out_proj".into(), h, num_labels),
            ],
        }
    }

    /// Replace the classification head by a fresh one with `num_labels` labels: weights drawn
    /// from N(0, `initializer_range`²) by a ChaCha8 generator seeded with `seed` (modules in
    /// [`TextModel::head_modules`] order), biases zero. Same seed, same head.
    pub fn head_init(&mut self, num_labels: usize, seed: u64) -> Result<()> {
        if num_labels == 0 || num_labels > MAX_LABELS {
            return Err(MlError::Config(format!(
                "{num_labels} labels: a classifier needs between 1 and {MAX_LABELS}"
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let dtype = self.word.dtype();
        let device = self.word.device().clone();
        let std = self.cfg.initializer_range;
        self.head = self
            .head_specs(num_labels)
            .into_iter()
            .map(|(name, i, o)| fresh_linear(&name, i, o, std, &mut rng, dtype, &device))
            .collect::<Result<_>>()?;
        self.num_labels = num_labels;
        self.pretrained_head = false;
        Ok(())
    }

    /// Whether the head came from the weight files (false: made by [`Encoder::head_init`]).
    pub fn has_pretrained_head(&self) -> bool {
        self.pretrained_head
    }

    /// The settings read from `config.json`.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// The same model with every tensor in `dtype` (e.g. F64 for finite-difference checks).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    q: l.q.to_dtype(dtype)?,
                    k: l.k.to_dtype(dtype)?,
                    v: l.v.to_dtype(dtype)?,
                    o: l.o.to_dtype(dtype)?,
                    attn_norm: l.attn_norm.to_dtype(dtype)?,
                    up: l.up.to_dtype(dtype)?,
                    down: l.down.to_dtype(dtype)?,
                    out_norm: l.out_norm.to_dtype(dtype)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Encoder {
            cfg: self.cfg.clone(),
            word: self.word.to_dtype(dtype)?,
            position: self.position.to_dtype(dtype)?,
            token_type: self
                .token_type
                .as_ref()
                .map(|t| t.to_dtype(dtype))
                .transpose()?,
            emb_norm: self.emb_norm.to_dtype(dtype)?,
            layers,
            pooler: self
                .pooler
                .as_ref()
                .map(|p| p.to_dtype(dtype))
                .transpose()?,
            head: self
                .head
                .iter()
                .map(|l| l.to_dtype(dtype))
                .collect::<Result<_>>()?,
            num_labels: self.num_labels,
            pretrained_head: self.pretrained_head,
        })
    }

    /// Position embeddings for a `(N, T)` mask: `(1, T, H)` or, for RoBERTa, `(N, T, H)`.
    fn position_embeddings(&self, mask: &Tensor) -> Result<Tensor> {
        let (n, t) = mask.dims2()?;
        let h = self.cfg.hidden_size;
        if self.cfg.arch == EncoderArch::Roberta {
            let pad = self.cfg.pad_token_id;
            if t + pad + 1 > self.cfg.max_positions {
                return Err(too_long(t, self.cfg.max_positions.saturating_sub(pad + 1)));
            }
            let m = mask.to_dtype(DType::F32)?;
            let pos = m
                .cumsum(1)?
                .mul(&m)?
                .affine(1.0, pad as f64)?
                .to_dtype(DType::U32)?
                .flatten_all()?;
            Ok(self.position.index_select(&pos, 0)?.reshape((n, t, h))?)
        } else {
            if t > self.cfg.max_positions {
                return Err(too_long(t, self.cfg.max_positions));
            }
            Ok(self.position.narrow(0, 0, t)?.unsqueeze(0)?)
        }
    }

    /// The hidden states from word embeddings `(N, T, H)` and a `(N, T)` mask: the embedding
    /// output followed by every layer's output.
    pub fn encode(&self, embeds: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Vec<Tensor>> {
        let (n, t, h) = embeds.dims3()?;
        if h != self.cfg.hidden_size {
            return Err(MlError::Config(format!(
                "input embeddings of width {h}, the model's hidden size is {}",
                self.cfg.hidden_size
            )));
        }
        if mask.dims() != [n, t] {
            return Err(MlError::Config(format!(
                "attention mask of shape {:?} for embeddings of shape {:?}",
                mask.dims(),
                embeds.dims()
            )));
        }
        let dtype = embeds.dtype();
        let mut x = embeds.broadcast_add(&self.position_embeddings(mask)?.to_dtype(dtype)?)?;
        if let Some(tt) = &self.token_type {
            // token type 0 for every position (single-segment inputs)
            x = x.broadcast_add(&tt.narrow(0, 0, 1)?.to_dtype(dtype)?)?;
        }
        let x = self.emb_norm.forward(&x)?;
        let mut x = ctx.dropout(&x, ctx.hidden_dropout)?;
        let bias = padding_bias(mask, dtype)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        states.push(x.clone());
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &bias, ctx)?;
            states.push(x.clone());
        }
        Ok(states)
    }

    fn layer_forward(&self, l: &Layer, x: &Tensor, bias: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (n, t, h) = x.dims3()?;
        let heads = self.cfg.num_heads;
        let dh = h / heads;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((n, t, heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(l.q.forward(x, ctx)?)?;
        let k = split(l.k.forward(x, ctx)?)?;
        let v = split(l.v.forward(x, ctx)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (dh as f64).sqrt()))?;
        let probs = softmax_last(&scores.broadcast_add(bias)?)?;
        let probs = ctx.dropout(&probs, ctx.hidden_dropout)?;
        let attn = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, t, h))?;
        let mut a = l.o.forward(&attn, ctx)?;
        if self.cfg.arch != EncoderArch::DistilBert {
            // DistilBERT has no dropout after its attention output projection
            a = ctx.dropout(&a, ctx.hidden_dropout)?;
        }
        let x1 = l.attn_norm.forward(&(a + x)?)?;
        let f = self.cfg.activation.forward(&l.up.forward(&x1, ctx)?)?;
        let f = ctx.dropout(&l.down.forward(&f, ctx)?, ctx.hidden_dropout)?;
        l.out_norm.forward(&(f + x1)?)
    }

    /// BERT's pooler output (dense + tanh on the first token) of a last hidden state
    /// `(N, T, H)`; `None` for DistilBERT and RoBERTa, which have no pooler.
    pub fn pooler_output(&self, last: &Tensor, ctx: &Ctx) -> Result<Option<Tensor>> {
        match &self.pooler {
            Some(p) => Ok(Some(p.forward(&cls_pool(last)?, ctx)?.tanh()?)),
            None => Ok(None),
        }
    }

    /// The classification head on a last hidden state `(N, T, H)`: logits `(N, labels)`.
    pub fn classify(&self, last: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let p = ctx.hidden_dropout;
        match self.cfg.arch {
            EncoderArch::Bert => {
                let pooled = self
                    .pooler_output(last, ctx)?
                    .ok_or_else(|| MlError::Config("BERT model without a pooler".into()))?;
                self.head[0].forward(&ctx.dropout(&pooled, p)?, ctx)
            }
            EncoderArch::DistilBert => {
                let x = self.head[0].forward(&cls_pool(last)?, ctx)?.relu()?;
                self.head[1].forward(&ctx.dropout(&x, p)?, ctx)
            }
            EncoderArch::Roberta => {
                let x = ctx.dropout(&cls_pool(last)?, p)?;
                let x = self.head[0].forward(&x, ctx)?.tanh()?;
                self.head[1].forward(&ctx.dropout(&x, p)?, ctx)
            }
        }
    }
}

fn too_long(t: usize, max: usize) -> MlError {
    MlError::Data {
        source_name: "input batch".into(),
        msg: format!("{t} tokens, the model has positions for at most {max}"),
    }
}

impl TextModel for Encoder {
    fn task(&self) -> Task {
        Task::Classify(self.num_labels)
    }

    fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }

    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (n, t) = ids.dims2()?;
        let flat: Vec<i64> = ids.flatten_all()?.to_dtype(DType::I64)?.to_vec1()?;
        let vocab = self.cfg.vocab_size;
        if let Some((i, bad)) = flat
            .iter()
            .enumerate()
            .find(|&(_, &id)| id < 0 || id as usize >= vocab)
        {
            return Err(MlError::Data {
                source_name: "input batch".into(),
                msg: format!(
                    "token id {bad} at row {}, position {} is outside the vocabulary of {vocab}",
                    i / t.max(1),
                    i % t.max(1)
                ),
            });
        }
        let idx = Tensor::from_vec(
            flat.into_iter().map(|x| x as u32).collect::<Vec<_>>(),
            n * t,
            ids.device(),
        )?;
        Ok(self
            .word
            .index_select(&idx, 0)?
            .reshape((n, t, self.cfg.hidden_size))?)
    }

    fn forward_embeds(&self, embeds: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Output> {
        let hidden_states = self.encode(embeds, mask, ctx)?;
        let last = hidden_states
            .last()
            .ok_or_else(|| MlError::Config("encoder without layers".into()))?;
        let logits = self.classify(last, ctx)?;
        Ok(Output {
            logits,
            hidden_states,
        })
    }

    /// The encoder's linear layers in forward order (per layer: query, key, value, attention
    /// output, FFN up, FFN down; then BERT's pooler). The head is in
    /// [`TextModel::head_modules`].
    fn linears(&self) -> Vec<LinearInfo> {
        let mut out: Vec<LinearInfo> = self
            .layers
            .iter()
            .flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.up, &l.down])
            .map(Linear::info)
            .collect();
        out.extend(self.pooler.iter().map(Linear::info));
        out
    }

    /// The classification head, which PEFT's `modules_to_save = ["classifier"]` trains in
    /// full: `classifier` (BERT); `pre_classifier`, `classifier` (DistilBERT: PEFT matches
    /// names by suffix); `classifier.dense`, `classifier.out_proj` (RoBERTa).
    fn head_modules(&self) -> Vec<LinearInfo> {
        self.head.iter().map(Linear::info).collect()
    }

    fn embedding_matrix(&self) -> &Tensor {
        &self.word
    }

    fn linear(&self, name: &str) -> Option<&Linear> {
        self.layers
            .iter()
            .flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.up, &l.down])
            .chain(self.pooler.iter())
            .chain(self.head.iter())
            .find(|l| l.name == name)
    }
}

/// How a sentence embedding is pooled from the last hidden state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the real tokens (sentence-transformers' default, all-MiniLM-L6-v2).
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
}

/// Mean of `hidden` `(N, T, H)` over the tokens where `mask` `(N, T)` is 1: `(N, H)`.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    // sentence-transformers clamps the count at 1e-9; an empty row gives zeros
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    Ok(sum.broadcast_div(&count)?)
}

/// The first token of `hidden` `(N, T, H)`: `(N, H)`.
pub fn cls_pool(hidden: &Tensor) -> Result<Tensor> {
    Ok(hidden.narrow(1, 0, 1)?.squeeze(1)?)
}

/// Rows of `x` `(N, H)` scaled to unit L2 norm (cosine-similarity embeddings).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Sentence embeddings `(N, H)` of a tokenized batch (eval mode), pooled from the last hidden
/// state and, with `normalize`, scaled to unit norm.
pub fn sentence_embeddings(
    model: &dyn TextModel,
    batch: &Batch,
    pooling: Pooling,
    normalize: bool,
) -> Result<Tensor> {
    let out = model.forward(&batch.ids, &batch.mask, &Ctx::eval())?;
    let last = out
        .hidden_states
        .last()
        .ok_or_else(|| MlError::Config("model returned no hidden states".into()))?;
    let pooled = match pooling {
        Pooling::Mean => mean_pool(last, &batch.mask)?,
        Pooling::Cls => cls_pool(last)?,
    };
    if normalize {
        l2_normalize(&pooled)
    } else {
        Ok(pooled)
    }
}
