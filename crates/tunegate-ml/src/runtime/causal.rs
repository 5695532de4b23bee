//! Pieces shared by the causal language models ([`super::gpt2`], [`super::llama`]): token
//! lookup with bounds checks, the causal-and-padding attention bias, differentiable multi-head
//! attention with grouped key/value heads, and rotary position embeddings from `config.json`.
//!
//! Batches are assumed RIGHT-padded (real tokens first, padding after, as
//! [`super::tokenizer::pad_rows`] builds them): positions are `0..T` for every row, so a
//! left-padded row would see its tokens at shifted positions.
use super::error::{MlError, Result};
use super::nn::{padding_bias, softmax_last, Ctx, Output};
use super::weights::Cfg;
use candle_core::{DType, Tensor, D};

/// Rows of `table` `(V, H)` for the ids `(N, T)`: `(N, T, H)`. Ids outside the table are an
/// error naming `what` (the embedding tensor), not a panic.
pub fn lookup(table: &Tensor, ids: &Tensor, what: &str) -> Result<Tensor> {
    let (n, t) = ids.dims2()?;
    let (v, h) = table.dims2()?;
    let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
    if n * t > 0 {
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= v {
            return Err(MlError::tensor(
                what,
                format!("token id {max} is outside the vocabulary of {v}"),
            ));
        }
    }
    Ok(table.index_select(&flat, 0)?.reshape((n, t, h))?)
}

/// Additive attention bias `(N, 1, T, T)`: 0 where query `i` may attend key `j` (`j <= i`, key
/// `j` is a real token, and `i - j < window` when a sliding window is set), a large negative
/// number elsewhere (-1e4 in F16, whose range ends at 65504, so no score becomes infinite).
/// `mask` is the `(N, T)` 0/1 padding mask.
pub fn causal_bias(mask: &Tensor, window: Option<usize>, dtype: DType) -> Result<Tensor> {
    let (_, t) = mask.dims2()?;
    let mut c = vec![0f32; t * t];
    for i in 0..t {
        for j in 0..t {
            let visible = j <= i && window.is_none_or(|w| i - j < w);
            if !visible {
                c[i * t + j] = -1e9;
            }
        }
    }
    let causal = Tensor::from_vec(c, (1, 1, t, t), mask.device())?;
    let bias = causal.broadcast_add(&padding_bias(mask, DType::F32)?)?;
    let bias = if dtype == DType::F16 {
        bias.maximum(-1e4f32)?
    } else {
        bias
    };
    Ok(bias.to_dtype(dtype)?)
}

/// Check a causal LM's inputs: `embeds` `(N, T, hidden)` and a `(N, T)` mask, with `T` within
/// `max_positions` (named `limit` in the error). Returns `(N, T, hidden)`.
pub fn check_inputs(
    embeds: &Tensor,
    mask: &Tensor,
    hidden: usize,
    max_positions: usize,
    limit: &str,
) -> Result<(usize, usize, usize)> {
    let (n, t, h) = embeds.dims3()?;
    if h != hidden {
        return Err(MlError::Config(format!(
            "embeddings of width {h}, the model's hidden size is {hidden}"
        )));
    }
    if mask.dims2()? != (n, t) {
        return Err(MlError::Config(format!(
            "attention mask {:?} does not match {n} sequences of {t} tokens",
            mask.dims()
        )));
    }
    if t > max_positions {
        return Err(MlError::Config(format!(
            "{t} tokens, over the {max_positions} positions of {limit}"
        )));
    }
    Ok((n, t, h))
}

/// The output of a causal LM: `last` (the final layer after the final norm) replaces the last
/// hidden state, as transformers reports it, and is projected on `head` `(vocab, hidden)`.
pub fn lm_output(last: Tensor, mut hidden_states: Vec<Tensor>, head: &Tensor) -> Result<Output> {
    if let Some(l) = hidden_states.last_mut() {
        *l = last.clone();
    }
    let logits = super::nn::frozen_matmul_t(&last, head)?;
    Ok(Output {
        logits,
        hidden_states,
    })
}

/// `(N, T, heads * dim)` to `(N, heads, T, dim)`.
pub fn split_heads(x: &Tensor, heads: usize, dim: usize) -> Result<Tensor> {
    let (n, t, _) = x.dims3()?;
    Ok(x.reshape((n, t, heads, dim))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `(N, heads, T, dim)` to `(N, T, heads * dim)`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (n, h, t, d) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((n, t, h * d))?)
}

/// Scaled dot-product attention from differentiable ops. `q` is `(N, H, T, D)`; `k` and `v`
/// are `(N, Hkv, T, D)` with `H` a multiple of `Hkv` (query head `h` reads key/value head
/// `h / (H / Hkv)`, as transformers' `repeat_kv` does); `bias` is `(N, 1, T, T)`. Dropout of
/// `ctx.hidden_dropout` on the attention probabilities in training mode. Returns `(N, H, T, D)`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
    ctx: &Ctx,
) -> Result<Tensor> {
    let (n, h, t, d) = q.dims4()?;
    let hkv = k.dim(1)?;
    if hkv == 0 || h % hkv != 0 {
        return Err(MlError::Config(format!(
            "{h} attention heads cannot share {hkv} key/value heads"
        )));
    }
    let (k, v) = if hkv == h {
        (k.clone(), v.clone())
    } else {
        let rep = h / hkv;
        let expand = |x: &Tensor| -> Result<Tensor> {
            Ok(x.unsqueeze(2)?
                .broadcast_as((n, hkv, rep, t, d))?
                .reshape((n, h, t, d))?)
        };
        (expand(k)?, expand(v)?)
    };
    let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
    let probs = ctx.dropout(&softmax_last(&scores)?, ctx.hidden_dropout)?;
    Ok(probs.matmul(&v.contiguous()?)?)
}

/// How rotary position embeddings are computed, from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// Base `θ` of the frequencies.
    pub theta: f64,
    /// Dimensions rotated per head (`head_dim * partial_rotary_factor`, even).
    pub rot_dim: usize,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// The `rope_type`s supported.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain rotary embeddings (`rope_type` absent, `null` or `default`).
    Default,
    /// Positions divided by `factor` (`linear`).
    Linear {
        /// Divisor of the positions.
        factor: f64,
    },
    /// Llama 3's frequency-dependent scaling (`llama3`).
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelength threshold factor below which frequencies are scaled.
        low_freq_factor: f64,
        /// Wavelength threshold factor above which frequencies are kept.
        high_freq_factor: f64,
        /// Context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

impl Rope {
    /// Read the rotary settings for heads of `head_dim`: transformers 5's `rope_parameters`
    /// object, or the older top-level `rope_theta` and `rope_scaling`. Scaling types other than
    /// `default`, `linear` and `llama3` (`dynamic`, `yarn`, `longrope`, ...) are refused with an
    /// error naming `config.json`.
    pub fn from_config(cfg: &Cfg<'_>, raw: &serde_json::Value, head_dim: usize) -> Result<Self> {
        let path = cfg.path();
        let params = raw.get("rope_parameters").filter(|v| !v.is_null());
        let scaling = raw.get("rope_scaling").filter(|v| !v.is_null());
        if let Some(p) = params {
            if !p.is_object() {
                return Err(MlError::format(path, "`rope_parameters` is not an object"));
            }
        }
        if let Some(s) = scaling {
            if !s.is_object() {
                return Err(MlError::format(path, "`rope_scaling` is not an object"));
            }
        }
        let num = |obj: Option<&serde_json::Value>, key: &str| -> Result<Option<f64>> {
            match obj.and_then(|o| o.get(key)) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                    MlError::format(path, format!("rope setting `{key}` is not a number"))
                }),
            }
        };
        // settings come from `rope_parameters`, else `rope_scaling`, else the top level
        let pick = |key: &str| -> Result<Option<f64>> {
            Ok(match num(params, key)? {
                Some(v) => Some(v),
                None => match num(scaling, key)? {
                    Some(v) => Some(v),
                    None => cfg.f64_opt(key)?,
                },
            })
        };
        let theta = pick("rope_theta")?.unwrap_or(10000.0);
        if !(theta.is_finite() && theta > 1.0) {
            return Err(MlError::format(
                path,
                format!("`rope_theta` {theta} must be > 1"),
            ));
        }
        let partial = pick("partial_rotary_factor")?.unwrap_or(1.0);
        if !(partial > 0.0 && partial <= 1.0) {
            return Err(MlError::format(
                path,
                format!("`partial_rotary_factor` {partial} must be in (0, 1]"),
            ));
        }
        let rot_dim = ((head_dim as f64 * partial) as usize) & !1;
        if rot_dim == 0 {
            return Err(MlError::format(path, "rotary dimension is 0"));
        }
        let kind = [params, scaling]
            .iter()
            .flatten()
            .find_map(|o| {
                o.get("rope_type")
                    .or_else(|| o.get("type"))
                    .and_then(|v| v.as_str())
            })
            .unwrap_or("default");
        let need = |key: &str| -> Result<f64> {
            pick(key)?
                .ok_or_else(|| MlError::format(path, format!("rope type `{kind}` needs `{key}`")))
        };
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "linear" => {
                let factor = need("factor")?;
                if !(factor.is_finite() && factor > 0.0) {
                    return Err(MlError::format(path, format!("rope `factor` {factor}")));
                }
                RopeScaling::Linear { factor }
            }
            "llama3" => {
                let s = RopeScaling::Llama3 {
                    factor: need("factor")?,
                    low_freq_factor: need("low_freq_factor")?,
                    high_freq_factor: need("high_freq_factor")?,
                    original_max_position_embeddings: need("original_max_position_embeddings")?,
                };
                if let RopeScaling::Llama3 {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings,
                } = s
                {
                    let ok = [factor, low_freq_factor, high_freq_factor]
                        .iter()
                        .all(|x| x.is_finite() && *x > 0.0)
                        && high_freq_factor > low_freq_factor
                        && original_max_position_embeddings >= 1.0;
                    if !ok {
                        return Err(MlError::format(path, "inconsistent `llama3` rope settings"));
                    }
                }
                s
            }
            other => {
                return Err(MlError::format(
                    path,
                    format!(
                        "rope type `{other}` is not supported (supported: default, linear, llama3)"
                    ),
                ))
            }
        };
        Ok(Rope {
            theta,
            rot_dim,
            scaling,
        })
    }

    /// Inverse frequencies, `rot_dim / 2` of them, after scaling.
    pub fn inv_freq(&self) -> Vec<f64> {
        let half = self.rot_dim / 2;
        let base: Vec<f64> = (0..half)
            .map(|i| 1.0 / self.theta.powf((2 * i) as f64 / self.rot_dim as f64))
            .collect();
        match self.scaling {
            RopeScaling::Default => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }

    /// Cosine and sine tables `(T, rot_dim / 2)` for positions `0..t`.
    pub fn tables(&self, t: usize, device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
        let inv = self.inv_freq();
        let half = inv.len();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in 0..t {
            for f in &inv {
                // transformers computes the angle in f32
                let a = (p as f32) * (*f as f32);
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (t, half), device)?,
            Tensor::from_vec(sin, (t, half), device)?,
        ))
    }

    /// Rotate `x` `(N, H, T, head_dim)` (the first `rot_dim` dimensions of each head, in
    /// transformers' non-interleaved "rotate half" layout) with tables from [`Rope::tables`].
    /// Differentiable (`rope_slow`).
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        if self.rot_dim == d {
            return Ok(candle_nn::rotary_emb::rope_slow(x, cos, sin)?);
        }
        let rot = x.narrow(D::Minus1, 0, self.rot_dim)?;
        let pass = x.narrow(D::Minus1, self.rot_dim, d - self.rot_dim)?;
        let rot = candle_nn::rotary_emb::rope_slow(&rot.contiguous()?, cos, sin)?;
        Ok(Tensor::cat(&[rot, pass], D::Minus1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::path::PathBuf;

    fn rope(json: serde_json::Value) -> Result<Rope> {
        Rope::from_config(&Cfg::new(PathBuf::from("config.json"), &json), &json, 8)
    }

    #[test]
    fn rope_settings_old_and_new_layouts_agree() {
        let new = rope(
            serde_json::json!({"rope_parameters": {"rope_type": "llama3",
            "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
        )
        .unwrap();
        let old = rope(serde_json::json!({"rope_theta": 500000.0, "rope_scaling": {
            "type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}}))
        .unwrap();
        assert_eq!(new, old);
        assert_eq!(new.rot_dim, 8);
        let plain = rope(serde_json::json!({})).unwrap();
        assert_eq!(plain.theta, 10000.0);
        assert_eq!(plain.scaling, RopeScaling::Default);
        let close = |a: Vec<f64>, b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(plain.inv_freq(), &[1.0, 0.1, 0.01, 0.001]));
        let lin = rope(serde_json::json!({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}))
            .unwrap();
        assert!(close(lin.inv_freq(), &[0.5, 0.05, 0.005, 0.0005]));
        let partial = rope(serde_json::json!({"partial_rotary_factor": 0.5})).unwrap();
        assert_eq!(partial.rot_dim, 4);
    }

    #[test]
    fn unsupported_rope_types_are_refused() {
        for kind in ["dynamic", "yarn", "longrope", "su"] {
            let e = rope(serde_json::json!({"rope_scaling": {"rope_type": kind, "factor": 2.0}}))
                .unwrap_err();
            assert!(e.to_string().contains(kind), "{e}");
            assert!(e.to_string().starts_with("config.json"), "{e}");
        }
        assert!(rope(serde_json::json!({"rope_scaling": "linear"})).is_err());
        assert!(rope(serde_json::json!({"rope_theta": -1.0})).is_err());
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let r = rope(
            serde_json::json!({"rope_theta": 100.0, "rope_scaling": {"rope_type":
            "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32}}),
        )
        .unwrap();
        let base = rope(serde_json::json!({"rope_theta": 100.0}))
            .unwrap()
            .inv_freq();
        let f = r.inv_freq();
        assert_eq!(f[0], base[0]); // wavelength 6.3 < 8: kept
        assert!(f[1] < base[1] && f[1] > base[1] / 8.0); // 19.9: smoothed
        assert!((f[2] - base[2] / 8.0).abs() < 1e-15); // 62.8 > 32: divided
        assert!((f[3] - base[3] / 8.0).abs() < 1e-15);
    }

    #[test]
    fn causal_bias_masks_future_padding_and_outside_the_window() {
        let mask = Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 0., 0.]], &Device::Cpu).unwrap();
        let b = causal_bias(&mask, Some(2), DType::F32).unwrap();
        let b: Vec<Vec<Vec<f32>>> = b.squeeze(1).unwrap().to_vec3().unwrap();
        let seen = |n: usize, i: usize, j: usize| b[n][i][j] > -1.0;
        assert!(seen(0, 3, 3) && seen(0, 3, 2) && !seen(0, 3, 1) && !seen(0, 2, 3));
        assert!(seen(1, 1, 0) && !seen(1, 3, 2) && !seen(1, 3, 3));
        let full = causal_bias(&mask, None, DType::F32).unwrap();
        let full: Vec<Vec<Vec<f32>>> = full.squeeze(1).unwrap().to_vec3().unwrap();
        assert!(full[0][3][0] > -1.0);
    }
}
