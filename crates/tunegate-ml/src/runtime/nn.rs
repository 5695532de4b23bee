//! Differentiable building blocks for tunegate's own model files.
//!
//! candle-transformers' models use fused kernels (LayerNorm, RmsNorm, `softmax_last_dim`,
//! rotary embeddings, `sdpa`) that have no backward pass: `backward()` succeeds but gradients
//! upstream of them are silently missing. Everything here is built from differentiable ops only,
//! and every linear layer can carry a LoRA adapter, with factors either shared by the batch or
//! one copy per example (for DP-SGD's per-example gradients in a single backward pass).
use super::error::{MlError, Result};
use super::weights::Weights;
use candle_core::{DType, Device, Tensor, D};
use rand::Rng;
use std::cell::RefCell;
use std::collections::HashMap;

/// LoRA factors of one linear layer: `y += scale * dropout(x) Aᵀ Bᵀ`.
///
/// `a` is `(r, in)` and `b` is `(out, r)` when shared by the batch, or `(N, r, in)` and
/// `(N, out, r)` with one copy per example (row `i` of the batch uses copy `i`), which makes the
/// gradient of a summed loss with respect to copy `i` the gradient of example `i` alone.
#[derive(Clone, Debug)]
pub struct LoraFactors {
    /// Down-projection `A`.
    pub a: Tensor,
    /// Up-projection `B` (zero at initialisation, as in PEFT).
    pub b: Tensor,
    /// `alpha / r`.
    pub scale: f64,
    /// Dropout probability on the adapter's input (training only).
    pub dropout: f64,
}

/// A full replacement weight (and bias) for a trainable, non-LoRA module such as a
/// classification head (PEFT's `modules_to_save`); shared `(out, in)` or per-example
/// `(N, out, in)`.
#[derive(Clone, Debug)]
pub struct FullWeights {
    /// Weight, `(out, in)` or `(N, out, in)`.
    pub weight: Tensor,
    /// Bias, `(out)` or `(N, out)`.
    pub bias: Option<Tensor>,
}

/// What a forward pass runs with: adapters, replaced modules, training mode and the seeded
/// random source for dropout.
#[derive(Default)]
pub struct Ctx {
    /// LoRA factors by module name (the model's own names, e.g.
    /// `bert.encoder.layer.0.attention.self.query`: PEFT's names without `base_model.model.`).
    pub lora: HashMap<String, LoraFactors>,
    /// Replaced modules by name.
    pub full: HashMap<String, FullWeights>,
    /// Training mode: dropout is active.
    pub train: bool,
    /// Dropout probability inside the model (attention and hidden dropout) in training mode.
    pub hidden_dropout: f64,
    /// Seeded source of dropout masks (reproducible runs); `None` disables dropout.
    pub rng: Option<RefCell<rand_chacha::ChaCha8Rng>>,
}

impl Ctx {
    /// Inference: no adapters, no dropout.
    pub fn eval() -> Self {
        Ctx::default()
    }

    /// Dropout of probability `p` with a mask from the seeded source (identity outside
    /// training, at `p == 0`, or without a source).
    pub fn dropout(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        if !self.train || p <= 0.0 {
            return Ok(x.clone());
        }
        let Some(rng) = &self.rng else {
            return Ok(x.clone());
        };
        let n = x.elem_count();
        let keep = 1.0 - p;
        let mut rng = rng.borrow_mut();
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.gen::<f64>() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

/// `x Wᵀ` for a frozen `w` `(out, in)`, with `x` `(N, T, in)` or `(N, in)`.
///
/// candle's matmul backward computes the gradient of both operands, whether or not anything
/// asks for it: for a frozen base weight broadcast over a batch that is one more matmul per
/// layer per step, into an `(N, in, out)` buffer that is then summed and thrown away. When `x`
/// is on a gradient path (LoRA training, DP-SGD, trigger search) on the CPU, the product is
/// computed without a graph and re-attached to `x` through a custom op whose backward
/// gives `x` its gradient `g W` and `w` none. Elsewhere (inference, CUDA) it is a plain matmul.
pub fn frozen_matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.track_op() || w.track_op() || !x.device().is_cpu() {
        return Ok(x.broadcast_matmul(&w.t()?)?);
    }
    let y = x.detach().broadcast_matmul(&w.t()?)?;
    Ok(x.apply_op2(&y, FrozenMatmul { w: w.clone() })?)
}

/// The backward half of [`frozen_matmul_t`]: forward hands back its second argument (the
/// product, computed without a graph); backward gives the first (`x`) `grad · W`.
struct FrozenMatmul {
    /// `(out, in)`.
    w: Tensor,
}

impl candle_core::CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        _x: &candle_core::CpuStorage,
        _xl: &candle_core::Layout,
        y: &candle_core::CpuStorage,
        yl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        let Some((lo, hi)) = yl.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul: the product is not contiguous")
        };
        let out = match y {
            S::F32(v) => S::F32(v[lo..hi].to_vec()),
            S::F64(v) => S::F64(v[lo..hi].to_vec()),
            S::BF16(v) => S::BF16(v[lo..hi].to_vec()),
            S::F16(v) => S::F16(v[lo..hi].to_vec()),
            _ => candle_core::bail!("frozen-matmul: unsupported dtype"),
        };
        Ok((out, yl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.broadcast_matmul(&self.w)?), None))
    }
}

/// Multiply `x` `(N, T, in)` or `(N, in)` by per-example matrices `w` `(N, out, in)`ᵀ.
fn per_example_matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let wt = w.transpose(1, 2)?;
    if x.rank() == 2 {
        Ok(x.unsqueeze(1)?.matmul(&wt)?.squeeze(1)?)
    } else {
        Ok(x.matmul(&wt)?)
    }
}

/// A linear layer `y = x Wᵀ + b` with its module name, so a [`Ctx`] can attach LoRA factors
/// or replace it.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Module name (e.g. `bert.encoder.layer.0.attention.self.query`).
    pub name: String,
    /// Weight `(out, in)`.
    pub weight: Tensor,
    /// Bias `(out)`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Load `{name}.weight` (and `{name}.bias` when `bias`) stored as `(out, in)`; with
    /// `conv1d` the weight is stored `(in, out)` (GPT-2's Conv1D) and is transposed.
    /// `module` is the name adapters refer to; `name` is the stored prefix.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        w: &Weights,
        stored: &str,
        module: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        conv1d: bool,
        device: &Device,
    ) -> Result<Self> {
        let wname = format!("{stored}.weight");
        let weight = if conv1d {
            w.get(&wname, Some(&[in_dim, out_dim]), device)?
                .t()?
                .contiguous()?
        } else {
            w.get(&wname, Some(&[out_dim, in_dim]), device)?
        };
        let bias = if bias {
            Some(w.get(&format!("{stored}.bias"), Some(&[out_dim]), device)?)
        } else {
            None
        };
        Ok(Linear {
            name: module.to_string(),
            weight,
            bias,
        })
    }

    /// A copy with its tensors in `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Linear {
            name: self.name.clone(),
            weight: self.weight.to_dtype(dtype)?,
            bias: self.bias.as_ref().map(|b| b.to_dtype(dtype)).transpose()?,
        })
    }

    /// Name and sizes, as [`TextModel::linears`] lists them.
    pub fn info(&self) -> LinearInfo {
        LinearInfo {
            name: self.name.clone(),
            in_dim: self.in_dim(),
            out_dim: self.out_dim(),
        }
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x` is `(N, T, in)` or `(N, in)`.
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut y = match ctx.full.get(&self.name) {
            Some(f) if f.weight.rank() == 3 => {
                let y = per_example_matmul_t(x, &f.weight)?;
                match &f.bias {
                    Some(b) if x.rank() == 3 => y.broadcast_add(&b.unsqueeze(1)?)?,
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
            Some(f) => {
                let y = x.broadcast_matmul(&f.weight.t()?)?;
                match &f.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
            None => {
                let y = frozen_matmul_t(x, &self.weight)?;
                match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
        };
        if let Some(l) = ctx.lora.get(&self.name) {
            let xd = ctx.dropout(x, l.dropout)?;
            let delta = if l.a.rank() == 3 {
                per_example_matmul_t(&per_example_matmul_t(&xd, &l.a)?, &l.b)?
            } else {
                xd.broadcast_matmul(&l.a.t()?)?
                    .broadcast_matmul(&l.b.t()?)?
            };
            y = (y + (delta * l.scale)?)?;
        }
        Ok(y)
    }
}

/// LayerNorm from differentiable ops (`layer_norm_slow`).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// Scale.
    pub weight: Tensor,
    /// Shift.
    pub bias: Tensor,
    /// Epsilon.
    pub eps: f64,
}

impl LayerNorm {
    /// Load `{name}.weight` and `{name}.bias` (or the older `gamma`/`beta` names).
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64, device: &Device) -> Result<Self> {
        let pick = |a: &str, b: &str| -> Result<Tensor> {
            let n1 = format!("{name}.{a}");
            if w.contains(&n1) {
                w.get(&n1, Some(&[dim]), device)
            } else {
                w.get(&format!("{name}.{b}"), Some(&[dim]), device)
                    .map_err(|_| MlError::tensor(n1, "missing from the weight files"))
            }
        };
        Ok(LayerNorm {
            weight: pick("weight", "gamma")?,
            bias: pick("bias", "beta")?,
            eps,
        })
    }

    /// A copy with its tensors in `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(LayerNorm {
            weight: self.weight.to_dtype(dtype)?,
            bias: self.bias.to_dtype(dtype)?,
            eps: self.eps,
        })
    }

    /// Normalise over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm_slow(
            x,
            &self.weight,
            &self.bias,
            self.eps as f32,
        )?)
    }
}

/// RMSNorm from differentiable ops (`rms_norm_slow`).
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// Scale.
    pub weight: Tensor,
    /// Epsilon.
    pub eps: f64,
}

impl RmsNorm {
    /// Load `{name}.weight`.
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64, device: &Device) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.get(&format!("{name}.weight"), Some(&[dim]), device)?,
            eps,
        })
    }

    /// A copy with its weight in `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(RmsNorm {
            weight: self.weight.to_dtype(dtype)?,
            eps: self.eps,
        })
    }

    /// Normalise over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm_slow(
            x,
            &self.weight,
            self.eps as f32,
        )?)
    }
}

/// Differentiable softmax over the last dimension.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// Differentiable log-softmax over the last dimension.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::log_softmax(x, D::Minus1)?)
}

/// Activation functions named in `config.json` (`hidden_act` / `activation_function`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (erf).
    Gelu,
    /// tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// ReLU.
    Relu,
    /// SiLU / swish.
    Silu,
}

impl Activation {
    /// Parse a `transformers` activation name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            _ => return None,
        })
    }

    /// Apply.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => x.gelu_erf()?,
            Activation::GeluTanh => x.gelu()?,
            Activation::Relu => x.relu()?,
            Activation::Silu => candle_nn::ops::silu(x)?,
        })
    }
}

/// Additive attention bias `(N, 1, 1, T)` from a `(N, T)` 0/1 mask: 0 where attended, a large
/// negative number where masked.
pub fn padding_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (n, t) = mask.dims2()?;
    let m = mask.to_dtype(dtype)?;
    let bias = ((m - 1.0)? * 1e9)?;
    Ok(bias.reshape((n, 1, 1, t))?)
}

/// What a forward pass returns.
#[derive(Clone, Debug)]
pub struct Output {
    /// Classifier: `(N, labels)`. Causal LM: `(N, T, vocab)`.
    pub logits: Tensor,
    /// The embedding output followed by every layer's output, each `(N, T, hidden)`.
    pub hidden_states: Vec<Tensor>,
}

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Sequence classification with this many labels.
    Classify(usize),
    /// Next-token prediction over this vocabulary.
    CausalLm(usize),
}

/// A linear layer a LoRA adapter can target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearInfo {
    /// Module name as the model (and PEFT, after its `base_model.model.` prefix) calls it.
    pub name: String,
    /// Input features.
    pub in_dim: usize,
    /// Output features.
    pub out_dim: usize,
}

/// A text model tunegate can run and differentiate.
pub trait TextModel {
    /// What it predicts.
    fn task(&self) -> Task;
    /// Hidden size.
    fn hidden_size(&self) -> usize;
    /// Word embeddings of `ids` `(N, T)`: `(N, T, hidden)`. Gradients with respect to input
    /// embeddings are taken by passing a `Var` of this to [`TextModel::forward_embeds`].
    fn embed(&self, ids: &Tensor) -> Result<Tensor>;
    /// Run from word embeddings with a `(N, T)` 0/1 attention mask (1 = real token).
    fn forward_embeds(&self, embeds: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Output>;
    /// Run from token ids.
    fn forward(&self, ids: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Output> {
        self.forward_embeds(&self.embed(ids)?, mask, ctx)
    }
    /// Every linear layer (LoRA targets), in model order.
    fn linears(&self) -> Vec<LinearInfo>;
    /// Modules trained in full next to the adapters by default (a classification head).
    fn head_modules(&self) -> Vec<LinearInfo>;
    /// The word-embedding matrix `(vocab, hidden)` (trigger search, embedding drift).
    fn embedding_matrix(&self) -> &Tensor;
    /// The stored weight of a module named by [`TextModel::linears`] or
    /// [`TextModel::head_modules`] (for merging adapters and initialising heads).
    fn linear(&self, name: &str) -> Option<&Linear>;
}

/// Per-token log-probabilities of the next token: `logits` `(N, T, V)` and `ids` `(N, T)` give
/// `(N, T-1)` where entry `t` is `log p(ids[t+1] | ids[..=t])`.
pub fn next_token_logprobs(logits: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (_, t, _) = logits.dims3()?;
    let lp = log_softmax_last(&logits.narrow(1, 0, t - 1)?)?;
    let next = ids.narrow(1, 1, t - 1)?.unsqueeze(2)?;
    Ok(lp.gather(&next.contiguous()?, 2)?.squeeze(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn grads_of(x: &Var, w: &Tensor, frozen: bool) -> (Tensor, Tensor) {
        let xx = (x.as_tensor() * 1.5).unwrap(); // an op between the Var and the product
        let y = if frozen {
            frozen_matmul_t(&xx, w).unwrap()
        } else {
            xx.broadcast_matmul(&w.t().unwrap()).unwrap()
        };
        let loss = y.sqr().unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        (y, g.get(x.as_tensor()).expect("x has a gradient").clone())
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>());
        d.unwrap()
    }

    #[test]
    fn frozen_matmul_matches_matmul_and_its_input_gradient_in_both_ranks() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (5, 7), &dev).unwrap();
        for shape in [vec![3usize, 4, 7], vec![3, 7]] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape.as_slice(), &dev).unwrap())
                .unwrap();
            let (y0, g0) = grads_of(&x, &w, false);
            let (y1, g1) = grads_of(&x, &w, true);
            assert_eq!(y0.dims(), y1.dims());
            assert!(
                max_abs_diff(&y0, &y1) < 1e-5,
                "products differ for {shape:?}"
            );
            assert_eq!(g0.dims(), g1.dims());
            assert!(
                max_abs_diff(&g0, &g1) < 1e-4,
                "gradients differ for {shape:?}"
            );
        }
    }

    #[test]
    fn frozen_matmul_gives_the_weight_no_gradient_and_leaves_trainable_weights_alone() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 4), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (6, 4), &dev).unwrap();
        let y = frozen_matmul_t(x.as_tensor(), &w).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(&w).is_none(), "a frozen weight got a gradient");
        assert!(g.get(x.as_tensor()).is_some());
        // A trainable weight takes the ordinary matmul and gets its gradient.
        let wv = Var::from_tensor(&w).unwrap();
        let y = frozen_matmul_t(x.as_tensor(), wv.as_tensor()).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(
            g.get(wv.as_tensor()).is_some(),
            "a trainable weight lost its gradient"
        );
        // Without a graph on x it is a plain product.
        let plain = frozen_matmul_t(&x.as_tensor().detach(), &w).unwrap();
        assert!(!plain.track_op());
    }
}
