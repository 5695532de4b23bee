//! The training loop: data, LoRA (with or without DP-SGD), AdamW with warm-up and decay,
//! gradient accumulation, evaluation and the training report.
//!
//! Losses: a classifier's per-example loss is the cross-entropy of its label; an SFT example's
//! is the mean negative log-likelihood of its target tokens (prompt tokens are masked out). A
//! step's loss is the mean over the logical batch (without DP) or, under DP-SGD, the clipped
//! per-example gradients are summed, noised and divided by the expected batch size.
//!
//! SFT records are rendered with a fixed template (documented in the README):
//! `{"prompt", "response"}` becomes `"### User:\n{prompt}\n\n### Assistant:\n"` (masked)
//! followed by `{response}` and the end-of-sequence token (trained); `{"messages": [{"role",
//! "content"}, …]}` becomes, per message, `"### {System|User|Assistant}:\n"` (masked), the
//! content (trained for assistant messages only) and `"\n\n"` (masked), with the end-of-sequence
//! token (trained) after the last assistant message.
use super::config::{Decay, TaskKind, TrainConfig};
use super::dpsgd;
use super::lora::Adapter;
use crate::dp;
use crate::runtime::nn::{log_softmax_last, next_token_logprobs};
use crate::runtime::tokenizer::pad_rows;
use crate::runtime::{Ctx, MlError, Result, Task, TextModel, TextTokenizer};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

/// Largest data file read (bytes).
pub const MAX_DATA_BYTES: u64 = 4 << 30;
/// Longest JSONL line (bytes).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// What an example is trained to predict.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A class label.
    Label(usize),
    /// Per-token flags: `true` where the token is a target (predicted from its prefix).
    Tokens(Vec<bool>),
}

/// A tokenized example.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Token ids (already truncated to `max_len`).
    pub ids: Vec<u32>,
    /// Target.
    pub target: Target,
}

/// One evaluation.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EvalPoint {
    /// Optimizer steps done.
    pub step: u64,
    /// Mean held-out loss (per example for classifiers, per target token for SFT).
    pub loss: f64,
    /// Accuracy (classifiers).
    pub accuracy: Option<f64>,
}

/// The privacy of a DP-SGD run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DpReport {
    /// ε at δ (RDP accountant); `None` if infinite.
    pub epsilon: Option<f64>,
    /// δ.
    pub delta: f64,
    /// The Rényi order of the bound.
    pub order: f64,
    /// σ.
    pub noise_multiplier: f64,
    /// C.
    pub max_grad_norm: f64,
    /// Poisson sampling rate q.
    pub sample_rate: f64,
    /// Steps accounted.
    pub steps: u64,
    /// The target ε when σ was chosen for it.
    pub target_epsilon: Option<f64>,
    /// `rdp`.
    pub accountant: &'static str,
    /// Fraction of per-example gradients that were clipped.
    pub clipped_fraction: f64,
}

/// What a run did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TrainReport {
    /// `classify` or `sft`.
    pub task: TaskKind,
    /// Seed.
    pub seed: u64,
    /// Optimizer steps.
    pub steps: u64,
    /// Training examples available.
    pub train_examples: usize,
    /// Held-out examples.
    pub eval_examples: usize,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Examples processed (forward + backward).
    pub samples: u64,
    /// Real (non-padding) tokens processed.
    pub tokens: u64,
    /// Wall time of the training loop (s), evaluation excluded.
    pub train_seconds: f64,
    /// Throughput.
    pub samples_per_second: f64,
    /// Throughput.
    pub tokens_per_second: f64,
    /// Mean training loss of the first logical batch.
    pub first_loss: Option<f64>,
    /// Mean training loss of the last logical batch.
    pub last_loss: Option<f64>,
    /// Evaluations (every `eval_every` steps and at the end).
    pub evals: Vec<EvalPoint>,
    /// Final held-out loss.
    pub final_eval_loss: Option<f64>,
    /// Final held-out accuracy (classifiers).
    pub final_eval_accuracy: Option<f64>,
    /// DP-SGD privacy, when enabled.
    pub dp: Option<DpReport>,
}

/// A finished run.
pub struct Trained {
    /// The trained adapter.
    pub adapter: Adapter,
    /// The report.
    pub report: TrainReport,
}

fn data_err(file: &Path, line: usize, msg: impl Into<String>) -> MlError {
    MlError::Data {
        source_name: format!("{}:{line}", file.display()),
        msg: msg.into(),
    }
}

/// Read JSONL records (at most `limit`, 0 = all): each line a JSON object; blank lines are
/// skipped; anything else is an error naming the line.
pub fn read_jsonl(path: &Path, limit: usize) -> Result<Vec<(usize, Value)>> {
    let meta = std::fs::metadata(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_DATA_BYTES {
        return Err(MlError::format(path, "data file over the 4 GiB limit"));
    }
    let f = std::fs::File::open(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut r = std::io::BufReader::new(f);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        line += 1;
        let n = std::io::Read::take(&mut r, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| MlError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(data_err(path, line, "line longer than 16 MiB"));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| data_err(path, line, "not UTF-8"))?;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| data_err(path, line, format!("invalid JSON: {e}")))?;
        if !v.is_object() {
            return Err(data_err(path, line, "not a JSON object"));
        }
        out.push((line, v));
        if limit > 0 && out.len() >= limit {
            break;
        }
    }
    if out.is_empty() {
        return Err(MlError::format(path, "no records"));
    }
    Ok(out)
}

/// The end-of-sequence token of a tokenizer (tried in order: `</s>`, `<|endoftext|>`,
/// `<|im_end|>`, `<|eot_id|>`, `<eos>`, `[SEP]`).
pub fn eos_id(tok: &TextTokenizer) -> Option<u32> {
    [
        "</s>",
        "<|endoftext|>",
        "<|im_end|>",
        "<|eot_id|>",
        "<eos>",
        "[SEP]",
    ]
    .iter()
    .find_map(|t| tok.inner().token_to_id(t))
}

fn str_field<'a>(v: &'a Value, k: &str, file: &Path, line: usize) -> Result<&'a str> {
    match v.get(k) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(data_err(file, line, format!("field `{k}` is not a string"))),
        None => Err(data_err(file, line, format!("missing field `{k}`"))),
    }
}

/// Tokenize records for `task`.
pub fn prepare(
    records: &[(usize, Value)],
    file: &Path,
    task: Task,
    tok: &TextTokenizer,
    max_len: usize,
) -> Result<Vec<Example>> {
    let mut out = Vec::with_capacity(records.len());
    for (line, v) in records {
        let line = *line;
        match task {
            Task::Classify(labels) => {
                let text = str_field(v, "text", file, line)?;
                let label = match v.get("label") {
                    Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                        data_err(file, line, "`label` is not a non-negative integer")
                    })? as usize,
                    Some(Value::Bool(b)) => *b as usize,
                    Some(_) => return Err(data_err(file, line, "`label` is not an integer")),
                    None => return Err(data_err(file, line, "missing field `label`")),
                };
                if label >= labels {
                    return Err(data_err(
                        file,
                        line,
                        format!("label {label} is out of range: the model has {labels} labels"),
                    ));
                }
                let mut ids = tok.ids(text, true)?;
                if ids.len() > max_len {
                    let last = *ids.last().unwrap_or(&0);
                    ids.truncate(max_len);
                    // keep a final special token such as [SEP]
                    if tok
                        .inner()
                        .get_added_vocabulary()
                        .is_special_token(&tok.token(last))
                    {
                        *ids.last_mut().expect("max_len >= 2") = last;
                    }
                }
                if ids.is_empty() {
                    return Err(data_err(file, line, "the text has no tokens"));
                }
                out.push(Example {
                    ids,
                    target: Target::Label(label),
                });
            }
            Task::CausalLm(_) => {
                let eos = eos_id(tok).ok_or_else(|| {
                    MlError::Config("the tokenizer has no end-of-sequence token".into())
                })?;
                let segs = sft_segments(v, file, line)?;
                let mut ids = Vec::new();
                let mut tgt = Vec::new();
                for (i, (text, trained)) in segs.iter().enumerate() {
                    let t = tok.ids(text, i == 0)?;
                    tgt.extend(std::iter::repeat_n(*trained, t.len()));
                    ids.extend(t);
                }
                ids.push(eos);
                tgt.push(true);
                ids.truncate(max_len);
                tgt.truncate(max_len);
                // Position 0 is never predicted.
                if let Some(t) = tgt.first_mut() {
                    *t = false;
                }
                if !tgt.iter().any(|t| *t) {
                    return Err(data_err(
                        file,
                        line,
                        format!("no response token left within max_len = {max_len}"),
                    ));
                }
                out.push(Example {
                    ids,
                    target: Target::Tokens(tgt),
                });
            }
        }
    }
    Ok(out)
}

/// The template segments `(text, trained)` of an SFT record (see the module doc).
pub fn sft_segments(v: &Value, file: &Path, line: usize) -> Result<Vec<(String, bool)>> {
    if let Some(m) = v.get("messages") {
        let msgs = m
            .as_array()
            .ok_or_else(|| data_err(file, line, "`messages` is not an array"))?;
        let mut segs = Vec::new();
        let mut any = false;
        for (i, msg) in msgs.iter().enumerate() {
            let role = msg.get("role").and_then(Value::as_str).ok_or_else(|| {
                data_err(file, line, format!("messages[{i}] has no string `role`"))
            })?;
            let content = msg.get("content").and_then(Value::as_str).ok_or_else(|| {
                data_err(file, line, format!("messages[{i}] has no string `content`"))
            })?;
            let (head, trained) = match role {
                "system" => ("System", false),
                "user" => ("User", false),
                "assistant" => ("Assistant", true),
                other => {
                    return Err(data_err(
                        file,
                        line,
                        format!("messages[{i}] has role `{other}` (system, user or assistant)"),
                    ))
                }
            };
            any |= trained;
            segs.push((format!("### {head}:\n"), false));
            segs.push((content.to_string(), trained));
            if i + 1 < msgs.len() {
                segs.push(("\n\n".to_string(), false));
            }
        }
        if !any {
            return Err(data_err(file, line, "no assistant message to train on"));
        }
        Ok(segs)
    } else {
        let p = str_field(v, "prompt", file, line)?;
        let r = str_field(v, "response", file, line)?;
        Ok(vec![
            (format!("### User:\n{p}\n\n### Assistant:\n"), false),
            (r.to_string(), true),
        ])
    }
}

/// Per-example losses `(n)` of `batch` under `ctx`.
pub fn example_losses(
    model: &dyn TextModel,
    batch: &[&Example],
    pad_id: u32,
    ctx: &Ctx,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let rows: Vec<Vec<u32>> = batch.iter().map(|e| e.ids.clone()).collect();
    let b = pad_rows(&rows, pad_id, device)?;
    let out = model.forward(&b.ids, &b.mask, ctx)?;
    match model.task() {
        Task::Classify(_) => {
            let labels: Vec<u32> = batch
                .iter()
                .map(|e| match e.target {
                    Target::Label(l) => l as u32,
                    Target::Tokens(_) => 0,
                })
                .collect();
            let labels = Tensor::from_vec(labels, (batch.len(), 1), device)?;
            let lp = log_softmax_last(&out.logits)?;
            let nll = lp.gather(&labels, 1)?.squeeze(1)?.neg()?;
            let pred = out.logits.argmax(1)?;
            Ok((nll, Some(pred)))
        }
        Task::CausalLm(_) => {
            let t = b.ids.dims()[1];
            let mut m = vec![0f32; batch.len() * t.saturating_sub(1)];
            for (i, e) in batch.iter().enumerate() {
                if let Target::Tokens(tg) = &e.target {
                    for (j, on) in tg.iter().enumerate().skip(1) {
                        if *on {
                            m[i * (t - 1) + j - 1] = 1.0;
                        }
                    }
                }
            }
            let m = Tensor::from_vec(m, (batch.len(), t - 1), device)?;
            let lp = next_token_logprobs(&out.logits, &b.ids)?;
            let count = m.sum(1)?.clamp(1f32, f32::MAX)?;
            let nll = (lp * &m)?.sum(1)?.neg()?.div(&count)?;
            Ok((nll, None))
        }
    }
}

/// Learning rate at 0-based optimizer step `step` of `total`: linear warm-up over `warmup`
/// steps (step `s` < warmup gets `lr·(s+1)/warmup`), then the decay to 0 at `total`.
pub fn lr_at(lr: f64, step: u64, total: u64, warmup: u64, decay: Decay) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let p = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
    match decay {
        Decay::Constant => lr,
        Decay::Linear => lr * (1.0 - p),
        Decay::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
    }
}

/// Held-out loss (per example for classifiers, per target token for SFT) and accuracy
/// (classifiers) of `model` with `adapter` on `data`, in batches of `batch_size`.
///
/// Batches are formed from the examples in order of length, so each batch pads to a length
/// close to its own rows' instead of to the longest row in a window of the file. The order does
/// not change the result beyond float rounding: padding is masked, and losses and hits are
/// summed per example.
pub fn evaluate(
    model: &dyn TextModel,
    adapter: &Adapter,
    data: &[Example],
    pad_id: u32,
    batch_size: usize,
    step: u64,
    device: &Device,
) -> Result<EvalPoint> {
    let ctx = adapter.ctx(false);
    let mut loss_sum = 0f64;
    let mut weight = 0f64;
    let mut correct = 0usize;
    let classify = matches!(model.task(), Task::Classify(_));
    let mut by_len: Vec<&Example> = data.iter().collect();
    by_len.sort_by_key(|e| e.ids.len());
    for chunk in by_len.chunks(batch_size.max(1)) {
        let (nll, pred) = example_losses(model, chunk, pad_id, &ctx, device)?;
        let nll: Vec<f32> = nll.to_vec1()?;
        for (e, l) in chunk.iter().zip(&nll) {
            let w = match &e.target {
                Target::Label(_) => 1.0,
                Target::Tokens(t) => t.iter().skip(1).filter(|x| **x).count() as f64,
            };
            loss_sum += *l as f64 * w;
            weight += w;
        }
        if let Some(p) = pred {
            let p: Vec<u32> = p.to_vec1()?;
            for (e, p) in chunk.iter().zip(p) {
                if e.target == Target::Label(p as usize) {
                    correct += 1;
                }
            }
        }
    }
    Ok(EvalPoint {
        step,
        loss: loss_sum / weight.max(1.0),
        accuracy: classify.then(|| correct as f64 / data.len().max(1) as f64),
    })
}

/// Everything a run needs besides the config.
pub struct TrainInputs<'a> {
    /// The base model.
    pub model: &'a dyn TextModel,
    /// Its tokenizer.
    pub tokenizer: &'a TextTokenizer,
    /// Training examples.
    pub train: Vec<Example>,
    /// Held-out examples.
    pub eval: Vec<Example>,
    /// `base_model_name_or_path` for the adapter config.
    pub base_name: String,
    /// GPT-2 Conv1D weights (PEFT `fan_in_fan_out`).
    pub fan_in_fan_out: bool,
    /// Device.
    pub device: Device,
}

/// Load and tokenize the config's data for `model`.
pub fn load_data(
    cfg: &TrainConfig,
    model: &dyn TextModel,
    tok: &TextTokenizer,
) -> Result<(Vec<Example>, Vec<Example>)> {
    let task = model.task();
    match (cfg.task, task) {
        (TaskKind::Classify, Task::Classify(_)) | (TaskKind::Sft, Task::CausalLm(_)) => {}
        (k, t) => {
            return Err(MlError::Config(format!(
                "{}: `task` is {k:?} but the model at {} is {t:?}",
                cfg.path.display(),
                cfg.model.display()
            )))
        }
    }
    let tp = cfg.resolve(&cfg.data.train);
    let train = prepare(
        &read_jsonl(&tp, cfg.data.limit_train)?,
        &tp,
        task,
        tok,
        cfg.max_len,
    )?;
    let eval = match &cfg.data.eval {
        Some(e) => {
            let ep = cfg.resolve(e);
            prepare(
                &read_jsonl(&ep, cfg.data.limit_eval)?,
                &ep,
                task,
                tok,
                cfg.max_len,
            )?
        }
        None => Vec::new(),
    };
    Ok((train, eval))
}

/// Train. Bit-reproducible on the CPU for a given config and seed.
pub fn train(cfg: &TrainConfig, inp: TrainInputs<'_>) -> Result<Trained> {
    let model = inp.model;
    let device = &inp.device;
    let pad_id = inp.tokenizer.pad_id();
    let n = inp.train.len();
    let t = &cfg.train;
    let logical = t.batch_size * t.grad_accum;
    let dpc = cfg.dp_enabled().cloned();

    // Schedule and privacy, fixed before training.
    let (q, total_steps) = match (&dpc, t.max_steps) {
        (_, Some(s)) => ((logical as f64 / n as f64).min(1.0), s),
        (Some(_), None) => {
            dp::schedule_from_epochs(t.epochs.unwrap_or(1.0), n as u64, logical as u64)
                .map_err(|e| MlError::Config(format!("{}: dp schedule: {e}", cfg.path.display())))?
        }
        (None, None) => {
            let per_epoch = n.div_ceil(logical) as f64;
            (
                (logical as f64 / n as f64).min(1.0),
                (t.epochs.unwrap_or(1.0) * per_epoch).ceil().max(1.0) as u64,
            )
        }
    };
    let mut target_eps = None;
    let sigma = match &dpc {
        None => 0.0,
        Some(d) => match (d.noise_multiplier, d.target_epsilon) {
            (Some(s), _) => s,
            (None, Some(e)) => {
                target_eps = Some(e);
                dp::noise_for_epsilon(e, q, total_steps, d.delta)
                    .map_err(|e| MlError::Config(format!("{}: dp: {e}", cfg.path.display())))?
                    .noise_multiplier
            }
            (None, None) => unreachable!("validated"),
        },
    };
    let accounting = match &dpc {
        Some(d) => Some(
            dp::epsilon(sigma, q, total_steps, d.delta)
                .map_err(|e| MlError::Config(format!("{}: dp: {e}", cfg.path.display())))?,
        ),
        None => None,
    };
    let warmup = match (cfg.optim.warmup_steps, cfg.optim.warmup_ratio) {
        (Some(w), _) => w,
        (None, Some(r)) => (r * total_steps as f64).ceil() as u64,
        _ => 0,
    };

    let adapter = Adapter::new(
        model,
        &cfg.lora.settings(),
        &inp.base_name,
        inp.fan_in_fan_out,
        cfg.seed,
        device,
    )?;
    let vars = adapter.vars();
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.optim.lr,
            beta1: cfg.optim.beta1,
            beta2: cfg.optim.beta2,
            eps: cfg.optim.eps,
            weight_decay: cfg.optim.weight_decay,
        },
    )?;
    // Independent seeded streams, so changing one use of randomness does not shift another.
    let mut order_rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x5348_5546);
    let mut sample_rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x504f_4953);
    let mut noise_rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x4e4f_4953);
    let mut dropout_rng = Some(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x4452_4f50));

    let mut order: Vec<usize> = (0..n).collect();
    let mut cursor = n; // forces a shuffle at the start
    let mut samples = 0u64;
    let mut tokens = 0u64;
    let mut first_loss = None;
    let mut last_loss = None;
    let mut evals = Vec::new();
    let mut clipped = 0u64;
    let mut per_example_seen = 0u64;
    let mut train_time = 0f64;

    for step in 0..total_steps {
        let t0 = Instant::now();
        opt.set_learning_rate(lr_at(
            cfg.optim.lr,
            step,
            total_steps,
            warmup,
            cfg.optim.decay,
        ));
        let batch: Vec<usize> = if dpc.is_some() {
            dpsgd::poisson_sample(n, q, &mut sample_rng)
        } else {
            let mut b = Vec::with_capacity(logical);
            while b.len() < logical.min(n) {
                if cursor >= n {
                    order.shuffle(&mut order_rng);
                    cursor = 0;
                }
                b.push(order[cursor]);
                cursor += 1;
            }
            b
        };
        let mut sums: Vec<Tensor> = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()?;
        let mut loss_sum = 0f64;
        for micro in batch.chunks(t.batch_size) {
            let exs: Vec<&Example> = micro.iter().map(|&i| &inp.train[i]).collect();
            samples += exs.len() as u64;
            tokens += exs.iter().map(|e| e.ids.len() as u64).sum::<u64>();
            let mut run = |ctx: &Ctx| -> Result<Tensor> {
                Ok(example_losses(model, &exs, pad_id, ctx, device)?.0)
            };
            if let Some(d) = &dpc {
                let (g, l, r) = dpsgd::per_example_grads(
                    &adapter,
                    exs.len(),
                    t.model_dropout,
                    dropout_rng.take(),
                    &mut run,
                )?;
                dropout_rng = r;
                let (g, norms) = dpsgd::clip_per_example(&g, d.max_grad_norm)?;
                clipped += norms
                    .iter()
                    .filter(|x| **x as f64 > d.max_grad_norm)
                    .count() as u64;
                per_example_seen += norms.len() as u64;
                for (s, gs) in sums.iter_mut().zip(dpsgd::sum_examples(&g)?) {
                    *s = (&*s + gs)?;
                }
                loss_sum += l.sum_all()?.to_scalar::<f32>()? as f64;
            } else {
                let mut ctx = adapter.ctx(true);
                ctx.hidden_dropout = t.model_dropout;
                ctx.rng = dropout_rng.take().map(RefCell::new);
                let l = run(&ctx)?;
                dropout_rng = ctx.rng.take().map(RefCell::into_inner);
                let grads = (l.sum_all()? / batch.len() as f64)?.backward()?;
                for (s, v) in sums.iter_mut().zip(&vars) {
                    if let Some(g) = grads.get(v.as_tensor()) {
                        *s = (&*s + g)?;
                    }
                }
                loss_sum += l.detach().sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let grads: Vec<Tensor> = match &dpc {
            Some(d) => dpsgd::add_noise(&sums, sigma * d.max_grad_norm, &mut noise_rng)?
                .into_iter()
                .map(|g| Ok((g / (q * n as f64))?))
                .collect::<Result<_>>()?,
            None => sums,
        };
        let mut store = GradStore::default();
        for (v, g) in vars.iter().zip(grads) {
            store.insert(v.as_tensor(), g);
        }
        opt.step(&store)?;
        if !batch.is_empty() {
            let m = loss_sum / batch.len() as f64;
            if !m.is_finite() {
                return Err(MlError::Config(format!(
                    "training diverged at step {step} (loss {m}); lower optim.lr"
                )));
            }
            first_loss.get_or_insert(m);
            last_loss = Some(m);
        }
        train_time += t0.elapsed().as_secs_f64();
        if t.eval_every > 0
            && (step + 1) % t.eval_every == 0
            && step + 1 < total_steps
            && !inp.eval.is_empty()
        {
            evals.push(evaluate(
                model,
                &adapter,
                &inp.eval,
                pad_id,
                t.batch_size,
                step + 1,
                device,
            )?);
        }
    }
    if !inp.eval.is_empty() {
        evals.push(evaluate(
            model,
            &adapter,
            &inp.eval,
            pad_id,
            t.batch_size,
            total_steps,
            device,
        )?);
    }
    let last = evals.last().cloned();
    let report = TrainReport {
        task: cfg.task,
        seed: cfg.seed,
        steps: total_steps,
        train_examples: n,
        eval_examples: inp.eval.len(),
        trainable_params: adapter.num_params(),
        samples,
        tokens,
        train_seconds: train_time,
        samples_per_second: samples as f64 / train_time.max(1e-9),
        tokens_per_second: tokens as f64 / train_time.max(1e-9),
        first_loss,
        last_loss,
        final_eval_loss: last.as_ref().map(|e| e.loss),
        final_eval_accuracy: last.as_ref().and_then(|e| e.accuracy),
        evals,
        dp: match (&dpc, accounting) {
            (Some(d), Some(a)) => Some(DpReport {
                epsilon: a.epsilon.is_finite().then_some(a.epsilon),
                delta: a.delta,
                order: a.order,
                noise_multiplier: sigma,
                max_grad_norm: d.max_grad_norm,
                sample_rate: q,
                steps: total_steps,
                target_epsilon: target_eps,
                accountant: "rdp",
                clipped_fraction: clipped as f64 / per_example_seen.max(1) as f64,
            }),
            _ => None,
        },
    };
    Ok(Trained { adapter, report })
}
