//! Tokenising, inserting tokens, and batched forward passes of a classifier: predicted
//! distributions, the last layer's first-token (`[CLS]`) state and the mean-pooled hidden state
//! of every layer.
use crate::runtime::nn::softmax_last;
use crate::runtime::tokenizer::pad_rows;
use crate::runtime::{MlError, Result, Task};
use crate::scan::model::ScanModel;
use candle_core::{DType, Device, Tensor, D};
use std::collections::HashSet;
use tunegate_core::progress::Progress;

/// The number of classes of a classifier, or an error saying what the model is instead.
pub(crate) fn classes_of(model: &ScanModel) -> Result<usize> {
    match model.task() {
        Task::Classify(n) if n >= 2 => Ok(n),
        Task::Classify(n) => Err(MlError::format(
            &model.path,
            format!("a classifier with {n} label cannot be scanned for flips (2 or more needed)"),
        )),
        Task::CausalLm(_) => Err(MlError::format(
            &model.path,
            "this is a causal language model: use the causal-LM scans (scan diff, scan probe on prompts)",
        )),
    }
}

pub(crate) fn device_of(model: &ScanModel) -> Device {
    model.model.embedding_matrix().device().clone()
}

/// Ids of the tokenizer's special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]`, …).
pub(crate) fn special_ids(model: &ScanModel) -> HashSet<u32> {
    let inner = model.tokenizer.inner();
    let added = inner.get_added_vocabulary();
    let mut out: HashSet<u32> = inner
        .get_vocab(true)
        .into_iter()
        .filter(|(t, _)| added.is_special_token(t))
        .map(|(_, id)| id)
        .collect();
    out.insert(model.tokenizer.pad_id());
    out
}

/// A tokenised input: ids with the model's special tokens, and how many special tokens lead
/// and trail it (insertions go between them).
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub ids: Vec<u32>,
    pub pre: usize,
    pub post: usize,
}

impl Row {
    /// Number of real (non-special) tokens.
    pub fn content(&self) -> usize {
        self.ids.len() - self.pre - self.post
    }

    /// The row with `toks` inserted at content fraction `u` in `[0, 1)`: position
    /// `pre + floor(u (content + 1))`. When the result would exceed `max_len`, the content is
    /// cut from its end first, so the inserted tokens always survive.
    pub fn insert(&self, toks: &[u32], u: f64, max_len: usize) -> Vec<u32> {
        let room = max_len.saturating_sub(self.pre + self.post + toks.len());
        let keep = self.content().min(room);
        let content = &self.ids[self.pre..self.pre + keep];
        let at = ((u * (keep + 1) as f64) as usize).min(keep);
        let mut out = Vec::with_capacity(self.pre + keep + toks.len() + self.post);
        out.extend_from_slice(&self.ids[..self.pre]);
        out.extend_from_slice(&content[..at]);
        out.extend_from_slice(toks);
        out.extend_from_slice(&content[at..]);
        out.extend_from_slice(&self.ids[self.ids.len() - self.post..]);
        out
    }

    /// The index at which [`Row::insert`] puts the first inserted token.
    pub fn insert_index(&self, n_toks: usize, u: f64, max_len: usize) -> usize {
        let room = max_len.saturating_sub(self.pre + self.post + n_toks);
        let keep = self.content().min(room);
        self.pre + ((u * (keep + 1) as f64) as usize).min(keep)
    }
}

/// Tokenise `texts` with special tokens, truncated to `max_len` (a final special token is
/// kept). An empty tokenisation is an error naming the text's index.
pub(crate) fn encode(model: &ScanModel, texts: &[&str], max_len: usize) -> Result<Vec<Row>> {
    let specials = special_ids(model);
    let max_len = max_len.max(2);
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut ids = model.tokenizer.ids(t, true)?;
            if ids.is_empty() {
                return Err(MlError::Data {
                    source_name: format!("input {i}"),
                    msg: "the text has no tokens".into(),
                });
            }
            if ids.len() > max_len {
                let last = ids[ids.len() - 1];
                ids.truncate(max_len);
                if specials.contains(&last) {
                    ids[max_len - 1] = last;
                }
            }
            let pre = ids.iter().take_while(|x| specials.contains(x)).count();
            let post = if pre == ids.len() {
                0
            } else {
                ids.iter()
                    .rev()
                    .take_while(|x| specials.contains(x))
                    .count()
            };
            Ok(Row { ids, pre, post })
        })
        .collect()
}

/// What a batched forward pass collected, row-major, in input order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fwd {
    /// `n × classes` probabilities.
    pub probs: Vec<f32>,
    /// `n × hidden`: the last layer's first-token state (what the head reads).
    pub cls: Vec<f32>,
    /// Per layer (embedding output first), `n × hidden` mean-pooled states.
    pub layers: Vec<Vec<f32>>,
    /// Classes.
    pub classes: usize,
    /// Hidden size.
    pub hidden: usize,
}

impl Fwd {
    pub fn argmax(&self, i: usize) -> usize {
        let p = &self.probs[i * self.classes..(i + 1) * self.classes];
        let mut best = 0;
        for (c, v) in p.iter().enumerate() {
            if *v > p[best] {
                best = c;
            }
        }
        best
    }

    pub fn rows(&self) -> usize {
        self.probs.len() / self.classes.max(1)
    }
}

/// Forward `rows` in batches of `batch` (rows sorted by length so padding stays small).
/// With `hidden`, also the first-token and mean-pooled states. Advances `progress` by one per
/// row.
pub(crate) fn run(
    model: &ScanModel,
    rows: &[Vec<u32>],
    batch: usize,
    hidden: bool,
    progress: Option<&dyn Progress>,
) -> Result<Fwd> {
    let classes = classes_of(model)?;
    let h = model.model.hidden_size();
    let n = rows.len();
    let device = device_of(model);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| rows[i].len());
    let mut out = Fwd {
        probs: vec![0.0; n * classes],
        cls: if hidden { vec![0.0; n * h] } else { Vec::new() },
        layers: Vec::new(),
        classes,
        hidden: h,
    };
    for chunk in order.chunks(batch.max(1)) {
        let part: Vec<Vec<u32>> = chunk.iter().map(|&i| rows[i].clone()).collect();
        let b = pad_rows(&part, model.tokenizer.pad_id(), &device)?;
        let o = model.model.forward(&b.ids, &b.mask, &model.ctx)?;
        let p: Vec<Vec<f32>> = softmax_last(&o.logits.to_dtype(DType::F32)?)?.to_vec2()?;
        for (k, &i) in chunk.iter().enumerate() {
            out.probs[i * classes..(i + 1) * classes].copy_from_slice(&p[k]);
        }
        if hidden {
            let last = o
                .hidden_states
                .last()
                .ok_or_else(|| MlError::Config("the model returned no hidden states".into()))?;
            let cls: Vec<Vec<f32>> = last
                .narrow(1, 0, 1)?
                .squeeze(1)?
                .to_dtype(DType::F32)?
                .to_vec2()?;
            for (k, &i) in chunk.iter().enumerate() {
                out.cls[i * h..(i + 1) * h].copy_from_slice(&cls[k]);
            }
            if out.layers.is_empty() {
                out.layers = vec![vec![0.0; n * h]; o.hidden_states.len()];
            }
            let m = b.mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let count = m.sum(1)?.clamp(1.0, f64::INFINITY)?;
            for (l, hs) in o.hidden_states.iter().enumerate() {
                let pooled: Vec<Vec<f32>> = hs
                    .to_dtype(DType::F32)?
                    .broadcast_mul(&m)?
                    .sum(1)?
                    .broadcast_div(&count)?
                    .to_vec2()?;
                for (k, &i) in chunk.iter().enumerate() {
                    out.layers[l][i * h..(i + 1) * h].copy_from_slice(&pooled[k]);
                }
            }
        }
        if let Some(p) = progress {
            p.advance(chunk.len() as u64);
        }
    }
    if out.probs.iter().any(|v| !v.is_finite()) {
        return Err(MlError::format(
            &model.path,
            "the model produced non-finite probabilities",
        ));
    }
    Ok(out)
}

/// The predicted class of each text.
pub fn predict(
    model: &ScanModel,
    texts: &[&str],
    max_len: usize,
    batch: usize,
) -> Result<Vec<usize>> {
    let rows: Vec<Vec<u32>> = encode(model, texts, max_len)?
        .into_iter()
        .map(|r| r.ids)
        .collect();
    let f = run(model, &rows, batch, false, None)?;
    Ok((0..rows.len()).map(|i| f.argmax(i)).collect())
}

/// Per-row log-probability of class `target` with gradient of its mean with respect to the
/// input embeddings at `positions[i]` of row `i`: returns the mean gradient `(hidden)`.
pub(crate) fn embedding_gradient(
    model: &ScanModel,
    rows: &[Vec<u32>],
    positions: &[usize],
    target: usize,
) -> Result<Vec<f32>> {
    let device = device_of(model);
    let b = pad_rows(rows, model.tokenizer.pad_id(), &device)?;
    let emb = model.model.embed(&b.ids)?.detach();
    let var = candle_core::Var::from_tensor(&emb)?;
    let o = model
        .model
        .forward_embeds(var.as_tensor(), &b.mask, &model.ctx)?;
    let lp = crate::runtime::nn::log_softmax_last(&o.logits)?;
    let loss = lp.narrow(1, target, 1)?.mean_all()?;
    let grads = loss.backward()?;
    let g = grads
        .get(var.as_tensor())
        .ok_or_else(|| MlError::Config("no gradient reached the input embeddings".into()))?;
    let h = model.model.hidden_size();
    let mut acc = vec![0f32; h];
    for (i, &p) in positions.iter().enumerate() {
        let row: Vec<f32> = g.get(i)?.get(p)?.to_dtype(DType::F32)?.to_vec1()?;
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    let n = positions.len().max(1) as f32;
    acc.iter_mut().for_each(|a| *a /= n);
    if acc.iter().any(|v| !v.is_finite()) {
        return Err(MlError::format(
            &model.path,
            "non-finite gradient with respect to the input embeddings",
        ));
    }
    Ok(acc)
}

/// `E · g` for every vocabulary row: `(vocab)`.
pub(crate) fn vocab_dot(model: &ScanModel, g: &[f32]) -> Result<Vec<f32>> {
    let e = model.model.embedding_matrix().to_dtype(DType::F32)?;
    let gt = Tensor::from_vec(g.to_vec(), (g.len(), 1), e.device())?;
    Ok(e.matmul(&gt)?.squeeze(D::Minus1)?.to_vec1()?)
}
