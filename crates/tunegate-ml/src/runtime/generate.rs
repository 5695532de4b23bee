//! Text generation and sequence scoring with any causal [`TextModel`].
//!
//! Generation re-runs the whole sequence at every step (no key/value cache): simple and exact,
//! meant for the short probes of the safety scans, not for serving. Greedy decoding is
//! deterministic (ties go to the lowest token id); sampling is seeded. Prompts are token ids
//! exactly as the model should see them: a beginning-of-sequence token, if the model wants one,
//! is the caller's to add ([`prompt_ids`] does it from the tokenizer's post-processor).
use super::error::{MlError, Result};
use super::nn::{next_token_logprobs, Ctx, Task, TextModel};
use super::tokenizer::{pad_rows, TextTokenizer};
use super::weights::{read_json, ModelDir};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

/// How to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens added to each prompt.
    pub max_new_tokens: usize,
    /// Generation of a row stops after any of these tokens (it is kept in the output).
    pub eos_ids: Vec<u32>,
    /// 0 for greedy decoding; otherwise logits are divided by it and a token is sampled.
    pub temperature: f64,
    /// With sampling, draw only among the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 32,
            eos_ids: Vec::new(),
            temperature: 0.0,
            top_k: 0,
            seed: 0,
        }
    }
}

impl GenerateOptions {
    /// Greedy decoding of at most `max_new_tokens`, stopping at `eos_ids`.
    pub fn greedy(max_new_tokens: usize, eos_ids: Vec<u32>) -> Self {
        GenerateOptions {
            max_new_tokens,
            eos_ids,
            ..Default::default()
        }
    }
}

/// Token ids of a config value that is one id or a list of them (`eos_token_id`); nothing for
/// anything else.
pub(crate) fn ids_of(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => Vec::new(),
    }
}

/// The end-of-sequence ids of a model folder: `eos_token_id` (a number or a list) of
/// `generation_config.json` when that file sets it, else of `config.json`.
pub fn eos_ids(dir: &ModelDir) -> Result<Vec<u32>> {
    let gen = dir.root.join("generation_config.json");
    if gen.is_file() {
        let g = read_json(&gen)?;
        let ids = ids_of(g.get("eos_token_id"));
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    Ok(ids_of(dir.config.get("eos_token_id")))
}

/// Ids of `text` for use as a prompt, with the tokenizer's special tokens (e.g. a leading
/// `<s>` for Llama tokenizers that add one).
pub fn prompt_ids(tok: &TextTokenizer, text: &str) -> Result<Vec<u32>> {
    tok.ids(text, true)
}

fn causal_vocab(model: &dyn TextModel) -> Result<usize> {
    match model.task() {
        Task::CausalLm(v) => Ok(v),
        Task::Classify(_) => Err(MlError::Config(
            "a classifier cannot generate or score text; a causal language model is needed".into(),
        )),
    }
}

fn device_of(model: &dyn TextModel) -> Device {
    model.embedding_matrix().device().clone()
}

/// Pick the next token from a row of logits.
fn pick(logits: &[f32], opts: &GenerateOptions, rng: &mut rand_chacha::ChaCha8Rng) -> u32 {
    if opts.temperature <= 0.0 {
        let mut best = 0usize;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if opts.top_k > 0 {
        order.truncate(opts.top_k);
    }
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / opts.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (k, w) in weights.iter().enumerate() {
        if u < *w {
            return order[k] as u32;
        }
        u -= w;
    }
    order[order.len() - 1] as u32
}

/// Continue each prompt (token ids, at least one each) by up to `opts.max_new_tokens` tokens;
/// returns the new tokens of each row (ending with the end-of-sequence token when one was
/// produced). Rows are run together, right-padded, so the result equals generating each alone.
pub fn generate_batch(
    model: &dyn TextModel,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
) -> Result<Vec<Vec<u32>>> {
    let vocab = causal_vocab(model)?;
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(MlError::Config(format!(
            "prompt {i} is empty: generation needs at least one token"
        )));
    }
    if !(opts.temperature.is_finite() && opts.temperature >= 0.0) {
        return Err(MlError::Config(format!(
            "temperature {} must be a finite number >= 0",
            opts.temperature
        )));
    }
    let device = device_of(model);
    let ctx = Ctx::eval();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let mut rows: Vec<Vec<u32>> = prompts.to_vec();
    let mut new: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut active: Vec<usize> = (0..prompts.len()).collect();
    for _ in 0..opts.max_new_tokens {
        if active.is_empty() {
            break;
        }
        let batch_rows: Vec<Vec<u32>> = active.iter().map(|&i| rows[i].clone()).collect();
        let batch = pad_rows(&batch_rows, 0, &device)?;
        let out = model.forward(&batch.ids, &batch.mask, &ctx)?;
        // logits at each row's last real token
        let last: Vec<u32> = batch.lengths.iter().map(|l| (*l - 1) as u32).collect();
        let n = active.len();
        let idx = Tensor::from_vec(last, (n, 1, 1), &device)?
            .broadcast_as((n, 1, vocab))?
            .contiguous()?;
        let next = out.logits.gather(&idx, 1)?.squeeze(1)?;
        let next: Vec<Vec<f32>> = next.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut still = Vec::with_capacity(n);
        for (k, &i) in active.iter().enumerate() {
            let tok = pick(&next[k], opts, &mut rng);
            rows[i].push(tok);
            new[i].push(tok);
            if !opts.eos_ids.contains(&tok) {
                still.push(i);
            }
        }
        active = still;
    }
    Ok(new)
}

/// Continue one prompt; see [`generate_batch`].
pub fn generate(model: &dyn TextModel, prompt: &[u32], opts: &GenerateOptions) -> Result<Vec<u32>> {
    Ok(generate_batch(model, &[prompt.to_vec()], opts)?
        .pop()
        .unwrap_or_default())
}

/// Continue a text prompt (tokenized with [`prompt_ids`]) and decode the new tokens, special
/// tokens such as the end-of-sequence one left out.
pub fn generate_text(
    model: &dyn TextModel,
    tok: &TextTokenizer,
    prompt: &str,
    opts: &GenerateOptions,
) -> Result<String> {
    let ids = prompt_ids(tok, prompt)?;
    let new = generate(model, &ids, opts)?;
    tok.inner()
        .decode(&new, true)
        .map_err(|e| MlError::Config(format!("decoding generated ids: {e}")))
}

/// Per-token log-probabilities of a sequence: entry `t` is `log p(ids[t+1] | ids[..=t])`
/// (`ids.len() - 1` entries).
pub fn token_logprobs(model: &dyn TextModel, ids: &[u32]) -> Result<Vec<f32>> {
    causal_vocab(model)?;
    if ids.len() < 2 {
        return Ok(Vec::new());
    }
    let device = device_of(model);
    let batch = pad_rows(&[ids.to_vec()], 0, &device)?;
    let out = model.forward(&batch.ids, &batch.mask, &Ctx::eval())?;
    let lp = next_token_logprobs(&out.logits, &batch.ids)?;
    Ok(lp
        .squeeze(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

/// `log p(continuation | prompt)`: the sum of the continuation tokens' log-probabilities after
/// the prompt (at least one token).
pub fn sequence_logprob(
    model: &dyn TextModel,
    prompt_ids: &[u32],
    continuation_ids: &[u32],
) -> Result<f32> {
    Ok(sequence_logprobs(model, &[(prompt_ids.to_vec(), continuation_ids.to_vec())])?[0])
}

/// [`sequence_logprob`] of several (prompt, continuation) pairs in one right-padded batch.
pub fn sequence_logprobs(
    model: &dyn TextModel,
    pairs: &[(Vec<u32>, Vec<u32>)],
) -> Result<Vec<f32>> {
    causal_vocab(model)?;
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = pairs.iter().position(|(p, _)| p.is_empty()) {
        return Err(MlError::Config(format!(
            "prompt {i} is empty: scoring needs at least one prompt token"
        )));
    }
    let device = device_of(model);
    let rows: Vec<Vec<u32>> = pairs
        .iter()
        .map(|(p, c)| p.iter().chain(c).copied().collect())
        .collect();
    let batch = pad_rows(&rows, 0, &device)?;
    let out = model.forward(&batch.ids, &batch.mask, &Ctx::eval())?;
    if batch.ids.dim(1)? < 2 {
        return Ok(vec![0.0; pairs.len()]);
    }
    let lp: Vec<Vec<f32>> = next_token_logprobs(&out.logits, &batch.ids)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2()?;
    Ok(pairs
        .iter()
        .zip(lp)
        .map(|((p, c), row)| row[p.len() - 1..p.len() - 1 + c.len()].iter().sum())
        .collect())
}
