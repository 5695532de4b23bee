//! GPT-2 (`model_type` `gpt2`, `GPT2LMHeadModel` checkpoints) from differentiable ops.
//!
//! Weights are read with or without the `transformer.` prefix; the `lm_head` is the word
//! embedding matrix (tied) unless the config unties it and `lm_head.weight` is stored. Module
//! names (for LoRA) are the ones PEFT sees on `GPT2LMHeadModel`:
//! `transformer.h.{i}.attn.c_attn`, `transformer.h.{i}.attn.c_proj`,
//! `transformer.h.{i}.mlp.c_fc`, `transformer.h.{i}.mlp.c_proj`.
//!
//! GPT-2 stores these layers as `Conv1D`, weight `(in, out)`; [`Linear`] holds them transposed,
//! `(out, in)`. A LoRA adapter is the same either way: `A` is `(r, in)` and `B` is `(out, r)`,
//! stored by PEFT as `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` with
//! `"fan_in_fan_out": true` in `adapter_config.json` (PEFT sets it for `Conv1D` targets). Only a
//! merge differs: the stored `(in, out)` Conv1D weight gains `scale · (B A)ᵀ`.
//!
//! `c_attn` is one fused projection to query, key and value, so an adapter on it changes all
//! three. Batches are right-padded (see [`super::causal`]); sequences longer than
//! `n_positions` are refused.
use super::causal::{
    attention, causal_bias, check_inputs, lm_output, lookup, merge_heads, split_heads,
};
use super::error::{MlError, Result};
use super::nn::{Activation, Ctx, LayerNorm, Linear, LinearInfo, Output, Task, TextModel};
use super::weights::{Cfg, ModelDir, Weights};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// GPT-2 settings read from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size (`n_embd`).
    pub hidden: usize,
    /// Number of blocks (`n_layer`).
    pub layers: usize,
    /// Attention heads (`n_head`).
    pub heads: usize,
    /// Longest sequence (`n_positions`).
    pub max_positions: usize,
    /// MLP inner size (`n_inner`, default `4 * n_embd`).
    pub inner: usize,
    /// LayerNorm epsilon (`layer_norm_epsilon`).
    pub eps: f64,
    /// MLP activation (`activation_function`, default `gelu_new`).
    pub activation: Activation,
    /// Divide attention scores by `sqrt(head_dim)` (`scale_attn_weights`).
    pub scale_attn_weights: bool,
    /// Also divide them by `layer + 1` (`scale_attn_by_inverse_layer_idx`).
    pub scale_by_layer: bool,
    /// The output projection is the word embedding matrix.
    pub tied: bool,
}

impl Gpt2Config {
    /// Read the settings of folder `dir`, naming `config.json` in errors.
    pub fn from_dir(dir: &ModelDir) -> Result<Self> {
        Self::from_json(&dir.root.join("config.json"), &dir.config)
    }

    /// Read the settings from `config` (parsed from `path`, named in errors).
    pub fn from_json(path: &Path, config: &serde_json::Value) -> Result<Self> {
        let path = path.to_path_buf();
        let c = Cfg::new(path.clone(), config);
        let mt = c.str_opt("model_type").unwrap_or("");
        if mt != "gpt2" {
            return Err(MlError::format(
                &path,
                format!("model_type `{mt}` is not gpt2"),
            ));
        }
        let hidden = match c.usize_opt("n_embd")? {
            Some(h) => h,
            None => c.usize("hidden_size")?,
        };
        let heads = match c.usize_opt("n_head")? {
            Some(h) => h,
            None => c.usize("num_attention_heads")?,
        };
        let layers = match c.usize_opt("n_layer")? {
            Some(h) => h,
            None => c.usize("num_hidden_layers")?,
        };
        let max_positions = match c.usize_opt("n_positions")? {
            Some(p) => p,
            None => c.usize("n_ctx")?,
        };
        let vocab_size = c.usize("vocab_size")?;
        if hidden == 0 || heads == 0 || hidden % heads != 0 {
            return Err(MlError::format(
                &path,
                format!("n_embd {hidden} is not a multiple of n_head {heads}"),
            ));
        }
        if vocab_size == 0 || max_positions == 0 {
            return Err(MlError::format(
                &path,
                "vocab_size and n_positions must be > 0",
            ));
        }
        let act_name = c.str_opt("activation_function").unwrap_or("gelu_new");
        let activation = Activation::parse(act_name).ok_or_else(|| {
            MlError::format(&path, format!("activation `{act_name}` is not supported"))
        })?;
        if c.bool_opt("add_cross_attention") == Some(true) {
            return Err(MlError::format(
                &path,
                "GPT-2 with cross-attention (an encoder-decoder part) is not supported",
            ));
        }
        Ok(Gpt2Config {
            vocab_size,
            hidden,
            layers,
            heads,
            max_positions,
            inner: c.usize_opt("n_inner")?.unwrap_or(4 * hidden),
            eps: c.f64_opt("layer_norm_epsilon")?.unwrap_or(1e-5),
            activation,
            scale_attn_weights: c.bool_opt("scale_attn_weights").unwrap_or(true),
            scale_by_layer: c
                .bool_opt("scale_attn_by_inverse_layer_idx")
                .unwrap_or(false),
            tied: c.bool_opt("tie_word_embeddings").unwrap_or(true),
        })
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// A GPT-2 language model.
pub struct Gpt2 {
    cfg: Gpt2Config,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Option<Tensor>,
    wte_name: String,
}

impl Gpt2 {
    /// Load a GPT-2 folder (`model_type` `gpt2`) on `device`. Missing or misshapen tensors are
    /// errors naming the tensor.
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        Self::from_weights(&dir.weights, Gpt2Config::from_dir(dir)?, device)
    }

    /// Build from settings read with [`Gpt2Config::from_json`] and the folder's weights.
    pub fn from_weights(w: &Weights, cfg: Gpt2Config, device: &Device) -> Result<Self> {
        let p = w
            .find_prefix(&["transformer.", ""], "wte.weight")
            .unwrap_or("transformer.");
        let h = cfg.hidden;
        let wte_name = format!("{p}wte.weight");
        let wte = w.get(&wte_name, Some(&[cfg.vocab_size, h]), device)?;
        let wpe = w.get(
            &format!("{p}wpe.weight"),
            Some(&[cfg.max_positions, h]),
            device,
        )?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let s = format!("{p}h.{i}");
            let m = format!("transformer.h.{i}");
            let lin = |sub: &str, i_dim: usize, o_dim: usize| {
                Linear::load(
                    w,
                    &format!("{s}.{sub}"),
                    &format!("{m}.{sub}"),
                    i_dim,
                    o_dim,
                    true,
                    true,
                    device,
                )
            };
            blocks.push(Block {
                ln_1: LayerNorm::load(w, &format!("{s}.ln_1"), h, cfg.eps, device)?,
                c_attn: lin("attn.c_attn", h, 3 * h)?,
                attn_proj: lin("attn.c_proj", h, h)?,
                ln_2: LayerNorm::load(w, &format!("{s}.ln_2"), h, cfg.eps, device)?,
                c_fc: lin("mlp.c_fc", h, cfg.inner)?,
                mlp_proj: lin("mlp.c_proj", cfg.inner, h)?,
            });
        }
        let ln_f = LayerNorm::load(w, &format!("{p}ln_f"), h, cfg.eps, device)?;
        let lm_head = if !cfg.tied {
            Some(w.get("lm_head.weight", Some(&[cfg.vocab_size, h]), device)?)
        } else {
            None
        };
        Ok(Gpt2 {
            cfg,
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
            wte_name,
        })
    }

    /// The same model with every tensor in `dtype` (F64 for finite-difference checks, BF16 or
    /// F16 to halve memory on a GPU).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    ln_1: b.ln_1.to_dtype(dtype)?,
                    c_attn: b.c_attn.to_dtype(dtype)?,
                    attn_proj: b.attn_proj.to_dtype(dtype)?,
                    ln_2: b.ln_2.to_dtype(dtype)?,
                    c_fc: b.c_fc.to_dtype(dtype)?,
                    mlp_proj: b.mlp_proj.to_dtype(dtype)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Gpt2 {
            cfg: self.cfg.clone(),
            wte: self.wte.to_dtype(dtype)?,
            wpe: self.wpe.to_dtype(dtype)?,
            blocks,
            ln_f: self.ln_f.to_dtype(dtype)?,
            lm_head: self
                .lm_head
                .as_ref()
                .map(|t| t.to_dtype(dtype))
                .transpose()?,
            wte_name: self.wte_name.clone(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    fn all_linears(&self) -> impl Iterator<Item = &Linear> {
        self.blocks
            .iter()
            .flat_map(|b| [&b.c_attn, &b.attn_proj, &b.c_fc, &b.mlp_proj])
    }
}

impl TextModel for Gpt2 {
    fn task(&self) -> Task {
        Task::CausalLm(self.cfg.vocab_size)
    }

    fn hidden_size(&self) -> usize {
        self.cfg.hidden
    }

    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        lookup(&self.wte, ids, &self.wte_name)
    }

    /// Logits `(N, T, vocab)` at every position. `hidden_states` has `n_layer + 1` entries, as
    /// transformers returns them: word plus position embeddings, each block's output, except
    /// that the last entry is the final block's output after `ln_f`.
    fn forward_embeds(&self, embeds: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Output> {
        let (_, t, h) = check_inputs(
            embeds,
            mask,
            self.cfg.hidden,
            self.cfg.max_positions,
            "GPT-2 (n_positions)",
        )?;
        let heads = self.cfg.heads;
        let hd = h / heads;
        let pos = self.wpe.narrow(0, 0, t)?;
        let mut x = ctx.dropout(&embeds.broadcast_add(&pos)?, ctx.hidden_dropout)?;
        let bias = causal_bias(mask, None, x.dtype())?;
        let mut hidden_states = vec![x.clone()];
        for (i, b) in self.blocks.iter().enumerate() {
            let a = b.ln_1.forward(&x)?;
            let qkv = b.c_attn.forward(&a, ctx)?;
            let q = split_heads(&qkv.narrow(2, 0, h)?, heads, hd)?;
            let k = split_heads(&qkv.narrow(2, h, h)?, heads, hd)?;
            let v = split_heads(&qkv.narrow(2, 2 * h, h)?, heads, hd)?;
            let mut scale = 1.0;
            if self.cfg.scale_attn_weights {
                scale /= (hd as f64).sqrt();
            }
            if self.cfg.scale_by_layer {
                scale /= (i + 1) as f64;
            }
            let att = merge_heads(&attention(&q, &k, &v, &bias, scale, ctx)?)?;
            let att = b.attn_proj.forward(&att, ctx)?;
            x = (x + ctx.dropout(&att, ctx.hidden_dropout)?)?;
            let m = b.ln_2.forward(&x)?;
            let m = self.cfg.activation.forward(&b.c_fc.forward(&m, ctx)?)?;
            let m = b.mlp_proj.forward(&m, ctx)?;
            x = (x + ctx.dropout(&m, ctx.hidden_dropout)?)?;
            hidden_states.push(x.clone());
        }
        let head = self.lm_head.as_ref().unwrap_or(&self.wte);
        lm_output(self.ln_f.forward(&x)?, hidden_states, head)
    }

    /// The four projections of every block (`lm_head`, tied to the embeddings, is not one).
    fn linears(&self) -> Vec<LinearInfo> {
        self.all_linears().map(Linear::info).collect()
    }

    fn head_modules(&self) -> Vec<LinearInfo> {
        Vec::new()
    }

    fn embedding_matrix(&self) -> &Tensor {
        &self.wte
    }

    fn linear(&self, name: &str) -> Option<&Linear> {
        self.all_linears().find(|l| l.name == name)
    }
}
