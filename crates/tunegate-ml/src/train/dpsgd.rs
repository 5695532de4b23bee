//! DP-SGD: Poisson sampling, per-example gradients in one backward pass, clipping and
//! Gaussian noise.
//!
//! Per-example gradients are computed without a batch of one: the adapter's parameters are
//! repeated once per example ([`Adapter::ctx_expanded`]), row `i` of the batch runs through
//! copy `i`, and one backward pass of the summed loss gives each copy exactly its example's
//! gradient. Each example's gradient (all trainable parameters together) is clipped to L2 norm
//! `C`, the clipped gradients are summed over the logical batch (physical micro-batches bound
//! memory), Gaussian noise of standard deviation `σ·C` is added once per logical batch, and the
//! sum is divided by the expected batch size `q·N` (as Opacus does with Poisson sampling).
use super::lora::Adapter;
use crate::runtime::{Ctx, MlError, Result};
use candle_core::{DType, Tensor};
use rand::Rng;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use std::cell::RefCell;

/// Poisson sampling: each of `n` indices independently with probability `q` (in order).
pub fn poisson_sample(n: usize, q: f64, rng: &mut ChaCha20Rng) -> Vec<usize> {
    (0..n).filter(|_| rng.gen::<f64>() < q).collect()
}

/// `n` independent standard normal draws (Box–Muller on the seeded source).
pub fn standard_normal(n: usize, rng: &mut ChaCha20Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1] so ln(u1) is finite.
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push((r * th.cos()) as f32);
        out.push((r * th.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// Per-example gradients of every adapter parameter for one physical batch of `n` examples:
/// `losses` runs the forward pass with the given context and returns the `(n)` vector of
/// per-example losses. The result is one tensor per [`Adapter::vars`] entry, shaped
/// `(n, …param shape)`. `hidden_dropout` is the model's own dropout; `rng` the dropout source, handed to the context and returned.
pub fn per_example_grads(
    adapter: &Adapter,
    n: usize,
    hidden_dropout: f64,
    rng: Option<ChaCha8Rng>,
    losses: &mut dyn FnMut(&Ctx) -> Result<Tensor>,
) -> Result<(Vec<Tensor>, Tensor, Option<ChaCha8Rng>)> {
    let mut ex = adapter.ctx_expanded(n, true)?;
    ex.ctx.hidden_dropout = hidden_dropout;
    ex.ctx.rng = rng.map(RefCell::new);
    let l = losses(&ex.ctx)?;
    if l.dims() != [n] {
        return Err(MlError::Config(format!(
            "per-example loss has shape {:?}, expected [{n}]",
            l.dims()
        )));
    }
    let grads = l.sum_all()?.backward()?;
    let out = ex
        .vars
        .iter()
        .map(|v| match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => Ok(v.as_tensor().zeros_like()?),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, l.detach(), ex.ctx.rng.take().map(RefCell::into_inner)))
}

/// The L2 norm of each example's gradient over all parameters together: `(n)`.
pub fn per_example_norms(grads: &[Tensor]) -> Result<Tensor> {
    let mut sq: Option<Tensor> = None;
    for g in grads {
        let n = g.dims()[0];
        let s = g.sqr()?.reshape((n, ()))?.sum(1)?;
        sq = Some(match sq {
            None => s,
            Some(t) => (t + s)?,
        });
    }
    let sq = sq.ok_or_else(|| MlError::Config("no trainable parameters".into()))?;
    Ok(sq.sqrt()?)
}

/// Clip each example's gradient to norm `max_norm` (factor `min(1, C / (‖g‖ + 1e-6))`, as
/// Opacus) and return the clipped per-example gradients and the per-example norms before
/// clipping.
pub fn clip_per_example(grads: &[Tensor], max_norm: f64) -> Result<(Vec<Tensor>, Vec<f32>)> {
    let norms = per_example_norms(grads)?;
    let factor = (norms.affine(1.0, 1e-6)?.recip()? * max_norm)?.clamp(0f32, 1f32)?;
    let clipped = grads
        .iter()
        .map(|g| {
            let mut shape = vec![g.dims()[0]];
            shape.extend(std::iter::repeat_n(1, g.rank() - 1));
            Ok(g.broadcast_mul(&factor.reshape(shape)?)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((clipped, norms.to_dtype(DType::F32)?.to_vec1()?))
}

/// Sum per-example gradients over the batch axis.
pub fn sum_examples(grads: &[Tensor]) -> Result<Vec<Tensor>> {
    grads.iter().map(|g| Ok(g.sum(0)?)).collect()
}

/// Add `N(0, std²)` noise to each tensor, drawn from `rng` in order.
pub fn add_noise(sums: &[Tensor], std: f64, rng: &mut ChaCha20Rng) -> Result<Vec<Tensor>> {
    sums.iter()
        .map(|s| {
            if std == 0.0 {
                return Ok(s.clone());
            }
            let z = standard_normal(s.elem_count(), rng);
            let z = Tensor::from_vec(z, s.shape(), s.device())?.to_dtype(s.dtype())?;
            Ok((s + (z * std)?)?)
        })
        .collect()
}
