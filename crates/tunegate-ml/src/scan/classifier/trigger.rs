//! Trigger search for text classifiers: candidate tokens, their exact flip rates, greedy phrase
//! extension and the soft (embedding-space) trigger inversion per class.
//!
//! Candidates come from four places: the vocabulary pruned by a first-order (HotFlip) score,
//! the rows of the embedding matrix that moved against the base, the user's list, and the
//! nearest tokens of each class's optimised soft trigger. Every candidate is then evaluated
//! exactly: inserted at a fixed random position into each clean input of the pool (the same
//! position for every candidate, so rates are comparable), and its flip rate to class `t` is
//! the fraction of the pool's inputs of other classes, not predicted `t` before, that the
//! insertion turns into `t`.
use super::forward::{embedding_gradient, encode, run, special_ids, vocab_dot, Row};
use super::ClassifierScanConfig;
use crate::runtime::nn::{log_softmax_last, softmax_last};
use crate::runtime::tokenizer::pad_rows;
use crate::runtime::{MlError, Result};
use crate::scan::model::{LabeledText, ScanModel};
use candle_core::{DType, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeSet;
use tunegate_core::progress::Progress;

/// Where a candidate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Given by the user (`--triggers`: a words file or a dataset report).
    User,
    /// Top of the first-order (HotFlip) score for some target class.
    Gradient,
    /// An embedding row that moved against the base.
    Drift,
    /// A nearest token of an optimised soft trigger.
    Inversion,
    /// A greedy extension of top tokens into a phrase.
    Phrase,
    /// Evaluated because the vocabulary is small enough to evaluate whole
    /// ([`super::ClassifierScanConfig::exhaustive_vocab`]).
    Vocabulary,
}

/// One evaluated candidate.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateResult {
    /// 1-based rank (by flip rate, then mean target probability).
    pub rank: usize,
    /// The candidate as text.
    pub candidate: String,
    /// Its tokens.
    pub tokens: Vec<String>,
    /// Its token ids.
    pub ids: Vec<u32>,
    /// Where it came from.
    pub sources: Vec<Source>,
    /// The class it flips the most inputs to.
    pub target: usize,
    /// Flip rate to `target`.
    pub flip_rate: f64,
    /// Inputs the flip rate to `target` is measured on.
    pub inputs: usize,
    /// Mean probability of `target` over those inputs with the candidate inserted.
    pub mean_target_prob: f64,
    /// Flip rate to every class (0 where no input was eligible).
    pub flip_rates: Vec<f64>,
    /// The base model's flip rate to `target` (when a comparable base was given).
    pub base_flip_rate: Option<f64>,
    /// `flip_rate - base_flip_rate` (the flip rate without a base).
    pub excess: f64,
    /// Robust z-score of `excess` across the candidates that are not natural.
    pub z: f64,
    /// Flip rate to `target` when inserted once into the clean inputs repeated twice (a
    /// backdoor overrides the content; ordinary evidence is outweighed by twice the words).
    /// Measured for the best [`super::ClassifierScanConfig::dominance_top`] candidates only.
    pub dominance: Option<f64>,
    /// Whether a token of the candidate is a natural feature of `target` in the clean
    /// reference (see [`super::ClassifierScanConfig::natural_share`]): then the flip is the
    /// task, not a backdoor, and the candidate neither sets the score nor backs a finding.
    pub natural: bool,
    /// Clean reference inputs holding the candidate's most target-specific token.
    pub clean_count: usize,
    /// The share of those inputs labelled `target`.
    pub clean_share: f64,
}

impl CandidateResult {
    /// What the model score and the `high` rule rest on: the smaller of the excess flip rate
    /// and the dominance (`None` where the dominance was not measured). A trigger forces its
    /// class whatever else the input says; a combination of ordinary weak features does not
    /// survive the input's own evidence doubled.
    pub fn strength(&self) -> Option<f64> {
        self.dominance.map(|d| self.excess.min(d))
    }
}

/// How often each token occurs in the clean reference, per class (inputs containing it).
pub(crate) struct CleanStats {
    pub counts: std::collections::HashMap<u32, Vec<u32>>,
    pub prior: Vec<f64>,
}

impl CleanStats {
    pub fn build(rows: &[Row], labels: &[usize], classes: usize) -> Self {
        let mut counts: std::collections::HashMap<u32, Vec<u32>> = Default::default();
        let mut per = vec![0usize; classes];
        for (r, &l) in rows.iter().zip(labels) {
            per[l] += 1;
            let uniq: BTreeSet<u32> = r.ids[r.pre..r.ids.len() - r.post].iter().copied().collect();
            for id in uniq {
                counts.entry(id).or_insert_with(|| vec![0; classes])[l] += 1;
            }
        }
        let n = rows.len().max(1) as f64;
        CleanStats {
            counts,
            prior: per.iter().map(|&c| c as f64 / n).collect(),
        }
    }

    /// `(count, share of class t)` of the token of `ids` most specific to `t` (largest
    /// share, then count).
    pub fn evidence(&self, ids: &[u32], t: usize) -> (usize, f64) {
        let mut best = (0usize, 0.0f64);
        for id in ids {
            if let Some(c) = self.counts.get(id) {
                let n: u32 = c.iter().sum();
                let share = f64::from(c[t]) / f64::from(n.max(1));
                if (share, n as usize) > (best.1, best.0) {
                    best = (n as usize, share);
                }
            }
        }
        best
    }
}

/// Flip statistics of one candidate.
#[derive(Clone, Debug)]
pub(crate) struct Flip {
    pub rates: Vec<f64>,
    pub n: Vec<usize>,
    pub mean_prob: Vec<f64>,
}

impl Flip {
    pub fn best(&self) -> usize {
        let mut b = 0;
        for c in 0..self.rates.len() {
            let better = self.rates[c] > self.rates[b]
                || (self.rates[c] == self.rates[b] && self.mean_prob[c] > self.mean_prob[b]);
            if better {
                b = c;
            }
        }
        b
    }
}

/// Clean inputs that candidates are inserted into, with their clean predictions and the
/// insertion point of each (a fraction of the content, fixed per input).
pub(crate) struct Pool {
    pub rows: Vec<Row>,
    pub labels: Vec<usize>,
    pub pred: Vec<usize>,
    pub u: Vec<f64>,
    pub classes: usize,
    pub texts: Vec<String>,
}

impl Pool {
    /// Up to `per_class` clean inputs of each class (a seeded sample).
    pub fn build(
        model: &ScanModel,
        clean: &[LabeledText],
        classes: usize,
        cfg: &ClassifierScanConfig,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x9001);
        let mut chosen = Vec::new();
        for c in 0..classes {
            let mut idx: Vec<usize> = (0..clean.len()).filter(|&i| clean[i].label == c).collect();
            idx.shuffle(&mut rng);
            idx.truncate(cfg.flip_inputs_per_class);
            chosen.extend(idx);
        }
        chosen.sort_unstable();
        let texts: Vec<String> = chosen.iter().map(|&i| clean[i].text.clone()).collect();
        let labels: Vec<usize> = chosen.iter().map(|&i| clean[i].label).collect();
        Self::from_texts(model, texts, labels, classes, cfg)
    }

    /// The same inputs, tokenised and predicted by another model (the base).
    pub fn from_texts(
        model: &ScanModel,
        texts: Vec<String>,
        labels: Vec<usize>,
        classes: usize,
        cfg: &ClassifierScanConfig,
    ) -> Result<Self> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let rows = encode(model, &refs, cfg.max_len)?;
        let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
        let f = run(model, &ids, cfg.batch_size, false, None)?;
        let pred = (0..rows.len()).map(|i| f.argmax(i)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x1005);
        let u = (0..rows.len()).map(|_| rng.gen::<f64>()).collect();
        Ok(Pool {
            rows,
            labels,
            pred,
            u,
            classes,
            texts,
        })
    }

    /// Rows eligible for flips to `t`: of another class and not predicted `t` before.
    pub fn eligible(&self, t: usize) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|&i| self.labels[i] != t && self.pred[i] != t)
            .collect()
    }
}

/// Flip statistics of each candidate (token ids) over the pool, evaluated in chunks of
/// candidates to bound memory. Advances `progress` by one per candidate.
pub(crate) fn flip_eval(
    model: &ScanModel,
    pool: &Pool,
    cands: &[Vec<u32>],
    cfg: &ClassifierScanConfig,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Flip>> {
    let n = pool.rows.len();
    let k = pool.classes;
    let mut out = Vec::with_capacity(cands.len());
    let per_chunk = (1024 / n.max(1)).max(1);
    for chunk in cands.chunks(per_chunk) {
        let mut rows = Vec::with_capacity(chunk.len() * n);
        for c in chunk {
            for (i, r) in pool.rows.iter().enumerate() {
                rows.push(r.insert(c, pool.u[i], cfg.max_len));
            }
        }
        let f = run(model, &rows, cfg.batch_size, false, None)?;
        for (ci, _) in chunk.iter().enumerate() {
            let mut rates = vec![0.0; k];
            let mut ns = vec![0usize; k];
            let mut probs = vec![0.0; k];
            for t in 0..k {
                let mut flips = 0usize;
                for i in 0..n {
                    if pool.labels[i] == t || pool.pred[i] == t {
                        continue;
                    }
                    let r = ci * n + i;
                    ns[t] += 1;
                    probs[t] += f64::from(f.probs[r * k + t]);
                    if f.argmax(r) == t {
                        flips += 1;
                    }
                }
                if ns[t] > 0 {
                    rates[t] = flips as f64 / ns[t] as f64;
                    probs[t] /= ns[t] as f64;
                }
            }
            out.push(Flip {
                rates,
                n: ns,
                mean_prob: probs,
            });
        }
        if let Some(p) = progress {
            p.advance(chunk.len() as u64);
        }
    }
    Ok(out)
}

/// Vocabulary ids a scan may insert: every token except special ones (the unknown token is
/// kept: an out-of-vocabulary trigger becomes it), `[unused…]` slots and blank tokens. `##`
/// continuation pieces are kept only when they hold a non-ASCII character (a homoglyph piece)
/// unless `ascii_subwords`.
pub(crate) fn allowed_tokens(model: &ScanModel, ascii_subwords: bool) -> Vec<u32> {
    let inner = model.tokenizer.inner();
    let added = inner.get_added_vocabulary();
    let rows = model.model.embedding_matrix().dims()[0];
    let pad = model.tokenizer.pad_id();
    let mut out: Vec<u32> = inner
        .get_vocab(true)
        .into_iter()
        .filter(|(t, id)| {
            if (*id as usize) >= rows || *id == pad {
                return false;
            }
            let unk = matches!(t.as_str(), "[UNK]" | "<unk>" | "<UNK>");
            if added.is_special_token(t) && !unk {
                return false;
            }
            if t.trim().is_empty() || t.starts_with("[unused") || t.starts_with("<unused") {
                return false;
            }
            if let Some(rest) = t.strip_prefix("##") {
                return ascii_subwords || !rest.is_ascii();
            }
            true
        })
        .map(|(_, id)| id)
        .collect();
    out.sort_unstable();
    out
}

/// The candidate's tokens as text: `##` pieces join the previous token, byte-level `Ġ`
/// becomes a space.
pub(crate) fn render(model: &ScanModel, ids: &[u32]) -> (String, Vec<String>) {
    let toks: Vec<String> = ids.iter().map(|&i| model.tokenizer.token(i)).collect();
    let mut s = String::new();
    for (k, t) in toks.iter().enumerate() {
        if k > 0 {
            if let Some(rest) = t.strip_prefix("##") {
                s.push_str(rest);
                continue;
            }
            s.push(' ');
        }
        s.push_str(t.strip_prefix('\u{0120}').unwrap_or(t));
    }
    (s, toks)
}

/// The placeholder token whose embedding the first-order score starts from: `[MASK]`, else the
/// unknown token, else padding.
fn placeholder(model: &ScanModel) -> u32 {
    let inner = model.tokenizer.inner();
    ["[MASK]", "<mask>", "[UNK]", "<unk>"]
        .iter()
        .find_map(|t| inner.token_to_id(t))
        .unwrap_or(model.tokenizer.pad_id())
}

/// Per target class, the `top_k` allowed tokens with the highest first-order gain of the
/// target's log-probability when inserted (HotFlip: the gradient at an inserted placeholder,
/// averaged over up to `grad_inputs` inputs of the other classes, dotted with every embedding
/// row). Returns `(class, ids)` pairs.
pub(crate) fn gradient_candidates(
    model: &ScanModel,
    pool: &Pool,
    allowed: &[Vec<u32>],
    cfg: &ClassifierScanConfig,
) -> Result<Vec<(usize, Vec<u32>)>> {
    let ph = placeholder(model);
    let mut out = Vec::new();
    for (t, allowed_t) in allowed.iter().enumerate().take(pool.classes) {
        let mut idx: Vec<usize> = (0..pool.rows.len())
            .filter(|&i| pool.labels[i] != t)
            .collect();
        idx.truncate(cfg.grad_inputs);
        if idx.is_empty() {
            continue;
        }
        let rows: Vec<Vec<u32>> = idx
            .iter()
            .map(|&i| pool.rows[i].insert(&[ph], pool.u[i], cfg.max_len))
            .collect();
        let pos: Vec<usize> = idx
            .iter()
            .map(|&i| pool.rows[i].insert_index(1, pool.u[i], cfg.max_len))
            .collect();
        let g = embedding_gradient(model, &rows, &pos, t)?;
        let s = vocab_dot(model, &g)?;
        let mut ranked: Vec<u32> = allowed_t.clone();
        ranked.sort_by(|a, b| s[*b as usize].total_cmp(&s[*a as usize]));
        ranked.truncate(cfg.grad_top_k);
        out.push((t, ranked));
    }
    Ok(out)
}

/// Embedding rows that moved against `base` (same matrix shape required), largest L2 change
/// first: up to `top_k` rows whose change exceeds 1e-6 of the matrix's mean row norm. Empty
/// when the shapes differ or nothing moved (a LoRA adapter never moves them).
pub(crate) fn drift_candidates(
    model: &ScanModel,
    base: &ScanModel,
    allowed: &[u32],
    top_k: usize,
) -> Result<Vec<(u32, f64)>> {
    let a = model.model.embedding_matrix().to_dtype(DType::F32)?;
    let b = base.model.embedding_matrix().to_dtype(DType::F32)?;
    if a.dims() != b.dims() || top_k == 0 {
        return Ok(Vec::new());
    }
    let b = b.to_device(a.device())?;
    let moved: Vec<f32> = (&a - &b)?.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    let norms: Vec<f32> = a.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    let mean = norms.iter().map(|&v| f64::from(v)).sum::<f64>() / norms.len().max(1) as f64;
    let mut rows: Vec<(u32, f64)> = allowed
        .iter()
        .map(|&i| (i, f64::from(moved[i as usize])))
        .filter(|(_, d)| *d > 1e-6 * mean.max(1e-12))
        .collect();
    rows.sort_by(|x, y| y.1.total_cmp(&x.1));
    rows.truncate(top_k);
    Ok(rows)
}

/// The soft-trigger inversion of one target class.
#[derive(Clone, Debug, Serialize)]
pub struct Inversion {
    /// Target class.
    pub class: usize,
    /// Mean cross-entropy to the class over the last steps ("effort": small when a few
    /// inserted positions are enough to force the class).
    pub loss: f64,
    /// The most likely token of each position of the optimised trigger.
    pub tokens: Vec<String>,
    /// Their ids.
    pub ids: Vec<u32>,
    /// The three most likely tokens of each position (they join the candidates).
    pub top_ids: Vec<u32>,
    /// Inputs the trigger was optimised on.
    pub inputs: usize,
}

/// Optimise a soft trigger of `cfg.invert_positions` positions, inserted after the leading
/// special tokens, that pushes inputs of other classes to `target`: each position is a
/// softmax-weighted mix of the allowed vocabulary rows (a point in their convex hull, as in
/// DBS), optimised with Adam on the mean cross-entropy to `target`.
pub(crate) fn invert_class(
    model: &ScanModel,
    pool: &Pool,
    allowed: &[u32],
    target: usize,
    cfg: &ClassifierScanConfig,
) -> Result<Option<Inversion>> {
    let mut idx = pool.eligible(target);
    idx.truncate(cfg.invert_inputs);
    if idx.is_empty() || allowed.is_empty() {
        return Ok(None);
    }
    let device = super::forward::device_of(model);
    let rows: Vec<Vec<u32>> = idx.iter().map(|&i| pool.rows[i].ids.clone()).collect();
    let pre = idx.iter().map(|&i| pool.rows[i].pre).min().unwrap_or(0);
    let b = pad_rows(&rows, model.tokenizer.pad_id(), &device)?;
    let emb = model.model.embed(&b.ids)?.detach();
    let dtype = emb.dtype();
    let (n, t, h) = emb.dims3()?;
    let p = cfg.invert_positions.max(1);
    let ids_t = Tensor::from_vec(allowed.to_vec(), allowed.len(), &device)?;
    let table = model
        .model
        .embedding_matrix()
        .index_select(&ids_t, 0)?
        .to_dtype(DType::F32)?
        .detach();
    let theta = Var::from_tensor(&Tensor::zeros((p, allowed.len()), DType::F32, &device)?)?;
    let mut opt = AdamW::new(
        vec![theta.clone()],
        ParamsAdamW {
            lr: cfg.invert_lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mask_ins = Tensor::ones((n, p), b.mask.dtype(), &device)?;
    let mask = Tensor::cat(
        &[
            b.mask.narrow(1, 0, pre)?,
            mask_ins,
            b.mask.narrow(1, pre, t - pre)?,
        ],
        1,
    )?;
    let mut losses = Vec::with_capacity(cfg.invert_steps);
    for _ in 0..cfg.invert_steps.max(1) {
        let w = softmax_last(theta.as_tensor())?;
        let trig = w.matmul(&table)?.to_dtype(dtype)?;
        let tb = trig.unsqueeze(0)?.broadcast_as((n, p, h))?;
        let x = Tensor::cat(
            &[emb.narrow(1, 0, pre)?, tb, emb.narrow(1, pre, t - pre)?],
            1,
        )?;
        let o = model.model.forward_embeds(&x, &mask, &model.ctx)?;
        let lp = log_softmax_last(&o.logits.to_dtype(DType::F32)?)?;
        let loss = lp.narrow(1, target, 1)?.mean_all()?.neg()?;
        let v = loss.to_scalar::<f32>()?;
        if !v.is_finite() {
            return Err(MlError::format(
                &model.path,
                format!("trigger inversion for class {target} diverged (loss {v})"),
            ));
        }
        losses.push(f64::from(v));
        opt.backward_step(&loss)?;
    }
    let tail = losses.len().min(5);
    let loss = losses[losses.len() - tail..].iter().sum::<f64>() / tail as f64;
    let w: Vec<Vec<f32>> = theta.as_tensor().to_vec2()?;
    let mut ids = Vec::with_capacity(p);
    let mut top_ids = Vec::new();
    for row in &w {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
        ids.push(allowed[order[0]]);
        for &o in order.iter().take(3) {
            if !top_ids.contains(&allowed[o]) {
                top_ids.push(allowed[o]);
            }
        }
    }
    Ok(Some(Inversion {
        class: target,
        loss,
        tokens: ids.iter().map(|&i| model.tokenizer.token(i)).collect(),
        ids,
        top_ids,
        inputs: idx.len(),
    }))
}

/// A candidate being collected: ids and where it came from (deduplicated by ids).
#[derive(Default)]
pub(crate) struct Candidates {
    pub items: Vec<(Vec<u32>, BTreeSet<Source>, Option<String>)>,
}

impl Candidates {
    /// Add `ids` from `src` (merging sources when already present); `text` is the user's
    /// spelling of it. Returns false when the list is at `cap`.
    pub fn add(&mut self, ids: Vec<u32>, src: Source, text: Option<String>, cap: usize) -> bool {
        if ids.is_empty() {
            return true;
        }
        if let Some(e) = self.items.iter_mut().find(|e| e.0 == ids) {
            e.1.insert(src);
            if e.2.is_none() {
                e.2 = text;
            }
            return true;
        }
        if self.items.len() >= cap {
            return false;
        }
        self.items.push((ids, BTreeSet::from([src]), text));
        true
    }
}

/// Greedy phrase extension: starting from each of the best `cfg.phrase_seeds` single tokens,
/// repeatedly try prepending or appending each of the `cfg.phrase_pool` tokens with the
/// highest flip rate to the seed's class, and keep the best extension while it raises the flip
/// rate by at least `cfg.phrase_min_gain`, up to `cfg.max_phrase_len` tokens. Returns the
/// phrases found (length ≥ 2) with their flips.
pub(crate) fn extend_phrases(
    model: &ScanModel,
    pool: &Pool,
    singles: &[(Vec<u32>, Flip)],
    cfg: &ClassifierScanConfig,
) -> Result<Vec<(Vec<u32>, Flip)>> {
    let mut order: Vec<usize> = (0..singles.len()).collect();
    let key = |i: usize| {
        let f = &singles[i].1;
        let b = f.best();
        (f.rates[b], f.mean_prob[b])
    };
    order.sort_by(|&a, &b| {
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<(Vec<u32>, Flip)> = Vec::new();
    for &s in order.iter().take(cfg.phrase_seeds) {
        let (seed_ids, seed_flip) = &singles[s];
        let t = seed_flip.best();
        if seed_flip.rates[t] >= 0.999 {
            continue;
        }
        let mut pool_ids: Vec<usize> = (0..singles.len()).filter(|&i| i != s).collect();
        pool_ids.sort_by(|&a, &b| {
            let (fa, fb) = (&singles[a].1, &singles[b].1);
            (fb.rates[t], fb.mean_prob[t])
                .partial_cmp(&(fa.rates[t], fa.mean_prob[t]))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let words: Vec<&Vec<u32>> = pool_ids
            .iter()
            .take(cfg.phrase_pool)
            .map(|&i| &singles[i].0)
            .collect();
        let mut cur = seed_ids.clone();
        let mut cur_rate = seed_flip.rates[t];
        let mut cur_flip = seed_flip.clone();
        while cur.len() < cfg.max_phrase_len {
            let mut trials: Vec<Vec<u32>> = Vec::new();
            for w in &words {
                if w.iter().all(|x| cur.contains(x)) {
                    continue;
                }
                trials.push(cur.iter().chain(w.iter()).copied().collect());
                trials.push(w.iter().chain(cur.iter()).copied().collect());
            }
            trials.retain(|c| c.len() <= cfg.max_phrase_len);
            if trials.is_empty() {
                break;
            }
            let flips = flip_eval(model, pool, &trials, cfg, None)?;
            let (bi, bf) = flips
                .iter()
                .enumerate()
                .max_by(|a, b| {
                    (a.1.rates[t], a.1.mean_prob[t])
                        .partial_cmp(&(b.1.rates[t], b.1.mean_prob[t]))
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .ok_or_else(|| MlError::Config("phrase extension: no trial".into()))?;
            if bf.rates[t] < cur_rate + cfg.phrase_min_gain {
                break;
            }
            cur = trials[bi].clone();
            cur_rate = bf.rates[t];
            cur_flip = bf.clone();
        }
        if cur.len() >= 2 && !out.iter().any(|(ids, _)| *ids == cur) {
            out.push((cur, cur_flip));
        }
    }
    Ok(out)
}

/// Ids of a user candidate under the model's tokenizer (no special tokens).
pub(crate) fn user_ids(model: &ScanModel, text: &str) -> Result<Vec<u32>> {
    let specials = special_ids(model);
    let ids = model.tokenizer.ids(text, false)?;
    Ok(ids
        .into_iter()
        .filter(|i| !specials.contains(i) || is_unk(model, *i))
        .collect())
}

fn is_unk(model: &ScanModel, id: u32) -> bool {
    matches!(
        model.tokenizer.token(id).as_str(),
        "[UNK]" | "<unk>" | "<UNK>"
    )
}
