//! The Llama family from differentiable ops: Llama (`model_type` `llama`), Qwen2 (`qwen2`,
//! biased query/key/value projections) and Mistral (`mistral`, sliding-window attention).
//!
//! Pre-norm decoder layers with RMSNorm, grouped-query attention (`num_key_value_heads`),
//! rotary position embeddings (transformers' non-interleaved layout; `rope_theta`,
//! `partial_rotary_factor`, and the `default`, `linear` and `llama3` rope types; others are
//! refused), a gated MLP (`down(act(gate(x)) * up(x))`), a final norm and an `lm_head` or tied
//! embeddings (`tie_word_embeddings`). Both transformers 5's `rope_parameters` and the older
//! `rope_theta` / `rope_scaling` keys are read.
//!
//! Sliding windows: per layer from `layer_types` (`sliding_attention`) when the config lists
//! them, else every layer for Mistral with `sliding_window` set, and layers from
//! `max_window_layers` on for Qwen2 with `use_sliding_window`.
//!
//! Weights are read with or without the `model.` prefix. Module names (for LoRA) are the ones
//! PEFT sees on `*ForCausalLM`: `model.layers.{i}.self_attn.{q,k,v,o}_proj` and
//! `model.layers.{i}.mlp.{gate,up,down}_proj`. Batches are right-padded with positions `0..T`
//! (see [`super::causal`]); sequences longer than `max_position_embeddings` are refused.
use super::causal::{
    attention, causal_bias, check_inputs, lm_output, lookup, merge_heads, split_heads, Rope,
};
use super::error::{MlError, Result};
use super::nn::{Activation, Ctx, Linear, LinearInfo, Output, RmsNorm, Task, TextModel};
use super::weights::{Cfg, ModelDir, Weights};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// Which member of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `llama`.
    Llama,
    /// `qwen2`.
    Qwen2,
    /// `mistral`.
    Mistral,
}

impl Family {
    /// The family of a `model_type`.
    pub fn from_model_type(mt: &str) -> Option<Self> {
        Some(match mt {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "mistral" => Family::Mistral,
            _ => return None,
        })
    }
}

/// Settings read from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Family member.
    pub family: Family,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP inner size (`intermediate_size`).
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`num_key_value_heads`, default `num_attention_heads`).
    pub kv_heads: usize,
    /// Per-head size (`head_dim`, default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Longest sequence (`max_position_embeddings`).
    pub max_positions: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// MLP activation (`hidden_act`).
    pub activation: Activation,
    /// Bias on the query/key/value projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Bias on the MLP projections (`mlp_bias`).
    pub mlp_bias: bool,
    /// The output projection is the word embedding matrix.
    pub tied: bool,
    /// Rotary embeddings.
    pub rope: Rope,
    /// Sliding attention window of each layer (`None`: full causal attention).
    pub windows: Vec<Option<usize>>,
}

impl LlamaConfig {
    /// Read the settings of folder `dir`, naming `config.json` in errors.
    pub fn from_dir(dir: &ModelDir) -> Result<Self> {
        Self::from_json(&dir.root.join("config.json"), &dir.config)
    }

    /// Read the settings from `config` (parsed from `path`, named in errors).
    pub fn from_json(path: &Path, config: &serde_json::Value) -> Result<Self> {
        let path = path.to_path_buf();
        let mt = config
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let family = Family::from_model_type(mt).ok_or_else(|| {
            MlError::format(
                &path,
                format!("model_type `{mt}` is not llama, qwen2 or mistral"),
            )
        })?;
        let c = Cfg::new(path.clone(), config);
        let hidden = c.usize("hidden_size")?;
        let heads = c.usize("num_attention_heads")?;
        let layers = c.usize("num_hidden_layers")?;
        let kv_heads = c.usize_opt("num_key_value_heads")?.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(MlError::format(
                &path,
                format!(
                    "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
                ),
            ));
        }
        let head_dim = match c.usize_opt("head_dim")? {
            Some(d) => d,
            None if hidden % heads == 0 => hidden / heads,
            None => {
                return Err(MlError::format(
                    &path,
                    format!(
                        "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
                    ),
                ))
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(MlError::format(
                &path,
                format!("head_dim {head_dim} must be even"),
            ));
        }
        let vocab_size = c.usize("vocab_size")?;
        let max_positions = c.usize_opt("max_position_embeddings")?.unwrap_or(2048);
        if vocab_size == 0 || max_positions == 0 {
            return Err(MlError::format(
                &path,
                "vocab_size and max_position_embeddings must be > 0",
            ));
        }
        let act_name = c.str_opt("hidden_act").unwrap_or("silu");
        let activation = Activation::parse(act_name).ok_or_else(|| {
            MlError::format(&path, format!("hidden_act `{act_name}` is not supported"))
        })?;
        let attention_bias = c.bool_opt("attention_bias");
        let (qkv_bias, o_bias) = match family {
            Family::Qwen2 => (true, false),
            _ => {
                let b = attention_bias.unwrap_or(false);
                (b, b)
            }
        };
        let rope = Rope::from_config(&c, config, head_dim)?;
        let windows = Self::windows(&c, config, family, layers)?;
        Ok(LlamaConfig {
            family,
            vocab_size,
            hidden,
            intermediate: c.usize("intermediate_size")?,
            layers,
            heads,
            kv_heads,
            head_dim,
            max_positions,
            eps: c.f64_opt("rms_norm_eps")?.unwrap_or(1e-6),
            activation,
            qkv_bias,
            o_bias,
            mlp_bias: c.bool_opt("mlp_bias").unwrap_or(false),
            tied: c.bool_opt("tie_word_embeddings").unwrap_or(false),
            rope,
            windows,
        })
    }

    fn windows(
        c: &Cfg<'_>,
        raw: &serde_json::Value,
        family: Family,
        layers: usize,
    ) -> Result<Vec<Option<usize>>> {
        let window = c.usize_opt("sliding_window")?.filter(|w| *w > 0);
        let path = c.path();
        let raw_types = raw.get("layer_types");
        if let Some(types) = raw_types.filter(|v| !v.is_null()) {
            let types = types
                .as_array()
                .ok_or_else(|| MlError::format(path, "`layer_types` is not a list"))?;
            if types.len() != layers {
                return Err(MlError::format(
                    path,
                    format!(
                        "`layer_types` lists {} layers, num_hidden_layers is {layers}",
                        types.len()
                    ),
                ));
            }
            return types
                .iter()
                .map(|t| match t.as_str() {
                    Some("full_attention") => Ok(None),
                    Some("sliding_attention") => window.map(Some).ok_or_else(|| {
                        MlError::format(
                            path,
                            "a `sliding_attention` layer without `sliding_window`",
                        )
                    }),
                    _ => Err(MlError::format(
                        path,
                        format!("layer type {t} is not supported"),
                    )),
                })
                .collect();
        }
        Ok(match family {
            Family::Llama => vec![None; layers],
            Family::Mistral => vec![window; layers],
            Family::Qwen2 => {
                if c.bool_opt("use_sliding_window") == Some(true) {
                    let from = c.usize_opt("max_window_layers")?.unwrap_or(0);
                    (0..layers)
                        .map(|i| if i >= from { window } else { None })
                        .collect()
                } else {
                    vec![None; layers]
                }
            }
        })
    }
}

struct Layer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-family language model.
pub struct Llama {
    cfg: LlamaConfig,
    embed_tokens: Tensor,
    embed_name: String,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Option<Tensor>,
}

impl Llama {
    /// Load a `llama`, `qwen2` or `mistral` folder on `device`. Missing or misshapen tensors
    /// are errors naming the tensor; unsupported settings are errors naming `config.json`.
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        Self::from_weights(&dir.weights, LlamaConfig::from_dir(dir)?, device)
    }

    /// Build from settings read with [`LlamaConfig::from_json`] and the folder's weights.
    pub fn from_weights(w: &Weights, cfg: LlamaConfig, device: &Device) -> Result<Self> {
        let p = w
            .find_prefix(&["model.", ""], "embed_tokens.weight")
            .unwrap_or("model.");
        let h = cfg.hidden;
        let embed_name = format!("{p}embed_tokens.weight");
        let embed_tokens = w.get(&embed_name, Some(&[cfg.vocab_size, h]), device)?;
        let q_out = cfg.heads * cfg.head_dim;
        let kv_out = cfg.kv_heads * cfg.head_dim;
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let s = format!("{p}layers.{i}");
            let m = format!("model.layers.{i}");
            let lin = |sub: &str, i_dim: usize, o_dim: usize, bias: bool| {
                Linear::load(
                    w,
                    &format!("{s}.{sub}"),
                    &format!("{m}.{sub}"),
                    i_dim,
                    o_dim,
                    bias,
                    false,
                    device,
                )
            };
            let inter = cfg.intermediate;
            layers.push(Layer {
                input_norm: RmsNorm::load(w, &format!("{s}.input_layernorm"), h, cfg.eps, device)?,
                q: lin("self_attn.q_proj", h, q_out, cfg.qkv_bias)?,
                k: lin("self_attn.k_proj", h, kv_out, cfg.qkv_bias)?,
                v: lin("self_attn.v_proj", h, kv_out, cfg.qkv_bias)?,
                o: lin("self_attn.o_proj", q_out, h, cfg.o_bias)?,
                post_norm: RmsNorm::load(
                    w,
                    &format!("{s}.post_attention_layernorm"),
                    h,
                    cfg.eps,
                    device,
                )?,
                gate: lin("mlp.gate_proj", h, inter, cfg.mlp_bias)?,
                up: lin("mlp.up_proj", h, inter, cfg.mlp_bias)?,
                down: lin("mlp.down_proj", inter, h, cfg.mlp_bias)?,
            });
        }
        let norm = RmsNorm::load(w, &format!("{p}norm"), h, cfg.eps, device)?;
        let lm_head = if cfg.tied {
            None
        } else {
            Some(w.get("lm_head.weight", Some(&[cfg.vocab_size, h]), device)?)
        };
        Ok(Llama {
            cfg,
            embed_tokens,
            embed_name,
            layers,
            norm,
            lm_head,
        })
    }

    /// The same model with every tensor in `dtype` (F64 for finite-difference checks, BF16 or
    /// F16 to halve memory on a GPU).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    input_norm: l.input_norm.to_dtype(dtype)?,
                    q: l.q.to_dtype(dtype)?,
                    k: l.k.to_dtype(dtype)?,
                    v: l.v.to_dtype(dtype)?,
                    o: l.o.to_dtype(dtype)?,
                    post_norm: l.post_norm.to_dtype(dtype)?,
                    gate: l.gate.to_dtype(dtype)?,
                    up: l.up.to_dtype(dtype)?,
                    down: l.down.to_dtype(dtype)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Llama {
            cfg: self.cfg.clone(),
            embed_tokens: self.embed_tokens.to_dtype(dtype)?,
            embed_name: self.embed_name.clone(),
            layers,
            norm: self.norm.to_dtype(dtype)?,
            lm_head: self
                .lm_head
                .as_ref()
                .map(|t| t.to_dtype(dtype))
                .transpose()?,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    fn all_linears(&self) -> impl Iterator<Item = &Linear> {
        self.layers
            .iter()
            .flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down])
    }
}

impl TextModel for Llama {
    fn task(&self) -> Task {
        Task::CausalLm(self.cfg.vocab_size)
    }

    fn hidden_size(&self) -> usize {
        self.cfg.hidden
    }

    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        lookup(&self.embed_tokens, ids, &self.embed_name)
    }

    /// Logits `(N, T, vocab)` at every position. `hidden_states` has `num_hidden_layers + 1`
    /// entries, as transformers returns them: the embeddings, each layer's output, except that
    /// the last entry is the final layer's output after the final norm.
    fn forward_embeds(&self, embeds: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Output> {
        let (_, t, _) = check_inputs(
            embeds,
            mask,
            self.cfg.hidden,
            self.cfg.max_positions,
            "the model (max_position_embeddings)",
        )?;
        let c = &self.cfg;
        let (cos, sin) = c.rope.tables(t, embeds.device())?;
        let (cos, sin) = (cos.to_dtype(embeds.dtype())?, sin.to_dtype(embeds.dtype())?);
        let full_bias = causal_bias(mask, None, embeds.dtype())?;
        let mut window_bias: Vec<(usize, Tensor)> = Vec::new();
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut x = embeds.clone();
        let mut hidden_states = vec![x.clone()];
        for (i, l) in self.layers.iter().enumerate() {
            let bias = match c.windows[i] {
                None => full_bias.clone(),
                Some(w) => match window_bias.iter().find(|(ww, _)| *ww == w) {
                    Some((_, b)) => b.clone(),
                    None => {
                        let b = causal_bias(mask, Some(w), embeds.dtype())?;
                        window_bias.push((w, b.clone()));
                        b
                    }
                },
            };
            let a = l.input_norm.forward(&x)?;
            let q = split_heads(&l.q.forward(&a, ctx)?, c.heads, c.head_dim)?;
            let k = split_heads(&l.k.forward(&a, ctx)?, c.kv_heads, c.head_dim)?;
            let v = split_heads(&l.v.forward(&a, ctx)?, c.kv_heads, c.head_dim)?;
            let q = c.rope.apply(&q, &cos, &sin)?;
            let k = c.rope.apply(&k, &cos, &sin)?;
            let att = merge_heads(&attention(&q, &k, &v, &bias, scale, ctx)?)?;
            let att = l.o.forward(&att, ctx)?;
            x = (x + ctx.dropout(&att, ctx.hidden_dropout)?)?;
            let m = l.post_norm.forward(&x)?;
            let g = c.activation.forward(&l.gate.forward(&m, ctx)?)?;
            let m = l.down.forward(&(g * l.up.forward(&m, ctx)?)?, ctx)?;
            x = (x + ctx.dropout(&m, ctx.hidden_dropout)?)?;
            hidden_states.push(x.clone());
        }
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        lm_output(self.norm.forward(&x)?, hidden_states, head)
    }

    /// The seven projections of every layer (the `lm_head` is not one).
    fn linears(&self) -> Vec<LinearInfo> {
        self.all_linears().map(Linear::info).collect()
    }

    fn head_modules(&self) -> Vec<LinearInfo> {
        Vec::new()
    }

    fn embedding_matrix(&self) -> &Tensor {
        &self.embed_tokens
    }

    fn linear(&self, name: &str) -> Option<&Linear> {
        self.all_linears().find(|l| l.name == name)
    }
}
