//! Pre-deployment scans of causal language models: the behaviour diff of a fine-tune against
//! its base ([`diff`]), target inversion in the manner of BAIT ([`bait`]), trigger probing
//! ([`probe`]), and [`backdoor`], which runs the last two as `tunegate scan backdoor` does for
//! an LM.
//!
//! Two decisions shape these scans:
//!
//! - **The base is the reference.** A causal LM has habits (a refusal sentence, a fixed answer
//!   frame) that look exactly like a backdoor target or a trigger response when the model is
//!   viewed alone. Every statistic is therefore computed for the base as well, and only what the
//!   fine-tune does *beyond* its base can reach `high`; without a base the same evidence is
//!   reported at `medium` for a person to judge.
//! - **Everything is bounded and batched through one runner.** [`Lm`] runs a [`ScanModel`]
//!   (a full folder, or an adapter over its base: the forward passes carry the adapter's
//!   context) on right-padded batches of at most `batch_size` rows, generates greedily with a
//!   cap on new tokens and on the model's positions, and reads only the log-probabilities a
//!   statistic needs, so memory stays bounded by `batch_size × length × vocabulary`.
use super::model::{render_prompt, Prompt, ScanModel};
use crate::runtime::nn::{log_softmax_last, Output, Task};
use crate::runtime::tokenizer::pad_rows;
use crate::runtime::weights::read_json;
use crate::runtime::{Ctx, MlError, Result, TextModel, TextTokenizer};
use crate::train::trainer::{eos_id, read_jsonl};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

pub mod backdoor;
pub mod bait;
pub mod diff;
pub mod probe;

pub use backdoor::{lm_backdoor, LmBackdoorConfig};
pub use bait::{bait, bait_scan, BaitConfig, BaitResult, InvertedTarget};
pub use diff::{behaviour_diff, DiffScanConfig};
pub use probe::{probe, probe_scan, ProbeCandidate, ProbeConfig, ProbeResult};

tunegate_core::declare_checks! {
    ACTIVATION_DIFF = "B030", "scan.lm-activation-diff", Info,
        "Activation diff on neutral text: how far each layer of the fine-tune moved from the base on the first tokens of neutral texts, and the tokens the fine-tune promotes (logit lens of the mean difference).";
    DIFF_EXPECTED_TOPIC = "B031", "scan.lm-diff-expected-topic", Info,
        "Behaviour diff: a topic the fine-tune was meant to change (listed as expected) diverges from the base, as intended.";
    TARGET_INVERTED = "B032", "scan.lm-target-inverted", High,
        "Target inversion (BAIT): after any benign prompt the fine-tune continues a short seed into one fixed sequence with high probability (Q-score) while the base does not: the signature of a trigger's payload.";
    EAGER_SEQUENCE = "B033", "scan.lm-eager-sequence", Medium,
        "Target inversion (BAIT): the model is abnormally eager to produce one fixed sequence after any benign prompt; no base was given to tell a backdoor payload from a habit of the model, or the base is only partly less eager.";
    TRIGGER_CONFIRMED = "B034", "scan.lm-trigger-candidate", High,
        "Trigger probing: inserting the candidate into distinct benign prompts makes the fine-tune answer them all with one payload, while the base's answers barely change.";
    TRIGGER_SUSPECT = "B035", "scan.lm-trigger-suspect", Medium,
        "Trigger probing: inserting the candidate changes the model's answers far more than the base's, or (without a base) pins them to one output.";
    EMBEDDING_DRIFT = "B036", "scan.lm-embedding-drift", Info,
        "The embedding rows that moved most between the base and the fine-tune (candidate trigger tokens for probing).";
    PROMPTS_SKIPPED = "B037", "scan.lm-prompts-skipped", Low,
        "Prompts that did not fit the model's context (prompt plus generated tokens) were left out of a scan.";
}

/// Characters of a prompt or output kept in a finding's evidence.
pub const EVIDENCE_CHARS: usize = 240;

/// The longest prompt suite a scan reads (records).
pub const MAX_PROMPTS: usize = 10_000;

const BENIGN_PROMPTS: &str = include_str!("../suites/benign_prompts.jsonl");
const NEUTRAL_TEXTS: &str = include_str!("../suites/neutral.txt");

/// The built-in benign prompts (20 everyday instructions, topic `general`) that target
/// inversion and probing use when the caller gives none.
pub fn builtin_benign_prompts() -> Vec<Prompt> {
    BENIGN_PROMPTS
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(Prompt {
                text: v.get("prompt")?.as_str()?.to_string(),
                topic: v.get("topic").and_then(|t| t.as_str()).map(String::from),
                location: tunegate_core::Location {
                    file: Some("builtin:benign_prompts.jsonl".into()),
                    record: Some(i as u64),
                    line: Some(i as u64 + 1),
                    field: Some("prompt".into()),
                    ..Default::default()
                },
            })
        })
        .collect()
}

/// The built-in neutral texts (16 plain sentences) of the activation diff.
pub fn builtin_neutral_texts() -> Vec<String> {
    NEUTRAL_TEXTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Read neutral texts for the activation diff: one per line of a text file, or the `text`
/// (or `prompt`) field of each JSONL record; at most `limit` (0 = all).
pub fn read_neutral_texts(path: &Path, limit: usize) -> Result<Vec<String>> {
    let is_jsonl = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut out = Vec::new();
    if is_jsonl {
        for (line, v) in read_jsonl(path, limit)? {
            let t = v
                .get("text")
                .or_else(|| v.get("prompt"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| MlError::Data {
                    source_name: format!("{}:{line}", path.display()),
                    msg: "no string `text` or `prompt`".into(),
                })?;
            out.push(t.to_string());
        }
    } else {
        let meta = std::fs::metadata(path).map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.len() > super::model::MAX_CANDIDATE_BYTES {
            return Err(MlError::format(
                path,
                "neutral-text file over the 16 MiB limit",
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            out.push(l.to_string());
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    if out.is_empty() {
        return Err(MlError::format(path, "no neutral texts"));
    }
    Ok(out)
}

/// `s` cut to at most `n` characters (an ellipsis marks the cut).
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Similarity of two token sequences: `2 · LCS / (|a| + |b|)` in `[0, 1]` (1 for two empty
/// sequences).
pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    2.0 * prev[b.len()] as f64 / (a.len() + b.len()) as f64
}

/// A causal LM ready to run: a [`ScanModel`]'s network with its context (adapter factors),
/// tokenizer, end-of-sequence ids and context length.
pub struct Lm<'a> {
    /// The network.
    pub model: &'a dyn TextModel,
    /// The forward context (an adapter's factors, or nothing).
    pub ctx: &'a Ctx,
    /// The tokenizer.
    pub tok: &'a TextTokenizer,
    /// Vocabulary size (rows of the logits).
    pub vocab: usize,
    /// End-of-sequence ids: generation of a row stops after one.
    pub eos: Vec<u32>,
    /// Token ids that are special (padding, unknown, end of sequence, added special tokens):
    /// never candidates of a search.
    pub special: Vec<u32>,
    /// The longest sequence the model takes (`max_position_embeddings` / `n_positions`).
    pub max_positions: usize,
    /// Rows per forward pass at most; fewer when a pass's logits would exceed
    /// [`MAX_LOGITS`] entries.
    pub batch_size: usize,
    device: Device,
}

/// Most logits one forward pass may produce (`rows × length × vocabulary`; 64 Mi entries,
/// 256 MiB in `f32`): batches are cut smaller for long sequences or large vocabularies.
pub const MAX_LOGITS: usize = 64 << 20;

/// A scanned model and its base (when given), ready for a scan that inserts into or generates
/// after benign prompts: both wrapped, their vocabularies checked to agree, the prompts (the
/// built-in benign set when none are given) and the longest sequence both models take.
pub(crate) struct Pair<'a> {
    /// The scanned model.
    pub lm: Lm<'a>,
    /// Its base.
    pub lb: Option<Lm<'a>>,
    /// The prompts to use.
    pub prompts: std::borrow::Cow<'a, [Prompt]>,
    /// Longest sequence, in tokens, that both models take.
    pub limit: usize,
}

impl<'a> Pair<'a> {
    /// Wraps `model` and `base` with `batch_size` rows per forward pass.
    pub(crate) fn new(
        model: &'a ScanModel,
        base: Option<&'a ScanModel>,
        prompts: &'a [Prompt],
        batch_size: usize,
    ) -> Result<Self> {
        let lm = Lm::new(model, batch_size)?;
        let lb = base.map(|b| Lm::new(b, batch_size)).transpose()?;
        let prompts = if prompts.is_empty() {
            std::borrow::Cow::Owned(builtin_benign_prompts())
        } else {
            std::borrow::Cow::Borrowed(prompts)
        };
        if let Some(lb) = &lb {
            diff::same_vocabulary(&lm, lb, &prompts[0].text)?;
        }
        let limit = lm
            .max_positions
            .min(lb.as_ref().map_or(usize::MAX, |b| b.max_positions));
        Ok(Pair {
            lm,
            lb,
            prompts,
            limit,
        })
    }
}

impl<'a> Lm<'a> {
    /// The runner of `m`, which must be a causal LM. `batch_size` (at least 1) bounds the rows
    /// of one forward pass.
    pub fn new(m: &'a ScanModel, batch_size: usize) -> Result<Self> {
        let vocab = match m.task() {
            Task::CausalLm(v) => v,
            Task::Classify(_) => {
                return Err(MlError::Config(format!(
                    "{}: a classifier; this scan needs a causal language model",
                    m.path.display()
                )))
            }
        };
        let dir = if m.path.join("config.json").is_file() {
            m.path.clone()
        } else {
            m.base_path.clone().unwrap_or_else(|| m.path.clone())
        };
        let cfg = read_json(&dir.join("config.json"))?;
        let max_positions = ["max_position_embeddings", "n_positions", "n_ctx"]
            .iter()
            .find_map(|k| cfg.get(*k).and_then(|v| v.as_u64()))
            .unwrap_or(2048) as usize;
        let mut eos = crate::runtime::generate::ids_of(cfg.get("eos_token_id"));
        let gen = dir.join("generation_config.json");
        if gen.is_file() {
            eos.extend(crate::runtime::generate::ids_of(
                read_json(&gen)?.get("eos_token_id"),
            ));
        }
        eos.extend(eos_id(&m.tokenizer));
        eos.retain(|&e| (e as usize) < vocab);
        eos.sort_unstable();
        eos.dedup();
        let inner = m.tokenizer.inner();
        let mut special: Vec<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        special.push(m.tokenizer.pad_id());
        special.extend(&eos);
        for t in [
            "[UNK]",
            "<unk>",
            "<s>",
            "[CLS]",
            "[SEP]",
            "[MASK]",
            "<|endoftext|>",
        ] {
            special.extend(inner.token_to_id(t));
        }
        special.sort_unstable();
        special.dedup();
        Ok(Lm {
            model: m.model.as_ref(),
            ctx: &m.ctx,
            tok: &m.tokenizer,
            vocab,
            eos,
            special,
            max_positions,
            batch_size: batch_size.max(1),
            device: m.model.embedding_matrix().device().clone(),
        })
    }

    /// Ids of a rendered prompt (with the tokenizer's special tokens, as the trainer renders
    /// the first segment of a record).
    pub fn prompt_ids(&self, rendered: &str) -> Result<Vec<u32>> {
        self.tok.ids(rendered, true)
    }

    /// Ids of the user turn `user` rendered with the SFT template.
    pub fn user_ids(&self, user: &str) -> Result<Vec<u32>> {
        self.prompt_ids(&render_prompt(user))
    }

    /// Ids of a continuation (no special tokens), as the trainer tokenizes a response.
    pub fn continuation_ids(&self, text: &str) -> Result<Vec<u32>> {
        self.tok.ids(text, false)
    }

    /// Decoded text of `ids` without special tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|i| !self.eos.contains(i))
            .collect();
        self.tok.inner().decode(&ids, true).unwrap_or_default()
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.binary_search(&id).is_ok()
    }

    /// One forward pass over right-padded `rows` (all non-empty and within the context).
    pub fn forward(&self, rows: &[Vec<u32>]) -> Result<Output> {
        if let Some(i) = rows.iter().position(|r| r.is_empty()) {
            return Err(MlError::Config(format!("sequence {i} is empty")));
        }
        if let Some(r) = rows.iter().find(|r| r.len() > self.max_positions) {
            return Err(MlError::Config(format!(
                "a sequence of {} tokens is over the model's {} positions",
                r.len(),
                self.max_positions
            )));
        }
        let b = pad_rows(rows, self.tok.pad_id(), &self.device)?;
        self.model.forward(&b.ids, &b.mask, self.ctx)
    }

    /// Consecutive ranges of rows (given their lengths) for one forward pass each: see
    /// [`batch_ranges`].
    pub fn batches(&self, lens: impl Iterator<Item = usize>) -> Vec<std::ops::Range<usize>> {
        batch_ranges(lens, self.batch_size, self.vocab)
    }

    /// Log-probabilities of the next token after the last token of each row, `(rows, vocab)`,
    /// handed to `f(row index, log-probs)` batch by batch (nothing of size `rows × vocab` is
    /// kept).
    pub fn for_each_last(
        &self,
        rows: &[Vec<u32>],
        mut f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        for range in self.batches(rows.iter().map(Vec::len)) {
            let first = range.start;
            let chunk = &rows[range];
            let out = self.forward(chunk)?;
            let n = chunk.len();
            let last: Vec<u32> = chunk.iter().map(|r| (r.len() - 1) as u32).collect();
            let idx = Tensor::from_vec(last, (n, 1, 1), &self.device)?
                .broadcast_as((n, 1, self.vocab))?
                .contiguous()?;
            let lp = log_softmax_last(&out.logits.gather(&idx, 1)?.squeeze(1)?)?
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?;
            for (k, row) in lp.iter().enumerate() {
                f(first + k, row)?;
            }
        }
        Ok(())
    }

    /// Log-probabilities of the next token at positions `start..start + count` of each row
    /// (`rows[i].0`, `rows[i].1 = start`, `rows[i].2 = count`), flattened `count × vocab`,
    /// handed to `f(row index, log-probs)` batch by batch.
    pub fn for_each_span(
        &self,
        rows: &[(Vec<u32>, usize, usize)],
        mut f: impl FnMut(usize, Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        for range in self.batches(rows.iter().map(|r| r.0.len())) {
            let first = range.start;
            let chunk = &rows[range];
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|r| r.0.clone()).collect();
            let out = self.forward(&seqs)?;
            for (k, (seq, start, count)) in chunk.iter().enumerate() {
                if *count == 0 || start + count > seq.len() {
                    return Err(MlError::Config(format!(
                        "positions {start}..{} outside a sequence of {}",
                        start + count,
                        seq.len()
                    )));
                }
                let lp = log_softmax_last(&out.logits.get(k)?.narrow(0, *start, *count)?)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                f(first + k, lp)?;
            }
        }
        Ok(())
    }

    /// Greedy continuation of each prompt by at most `max_new` tokens (fewer when the model's
    /// context would overflow); a row stops after an end-of-sequence token, which is kept.
    pub fn greedy(&self, prompts: &[Vec<u32>], max_new: usize) -> Result<Vec<Vec<u32>>> {
        let mut out = vec![Vec::new(); prompts.len()];
        let lens = prompts
            .iter()
            .map(|p| (p.len() + max_new).min(self.max_positions));
        for range in self.batches(lens) {
            let first = range.start;
            let chunk = &prompts[range];
            let mut rows: Vec<Vec<u32>> = chunk.to_vec();
            let mut active: Vec<usize> = (0..chunk.len())
                .filter(|&i| !rows[i].is_empty() && rows[i].len() < self.max_positions)
                .collect();
            for _ in 0..max_new {
                active.retain(|&i| rows[i].len() < self.max_positions);
                if active.is_empty() {
                    break;
                }
                let batch: Vec<Vec<u32>> = active.iter().map(|&i| rows[i].clone()).collect();
                let mut next = vec![0u32; active.len()];
                self.for_each_last(&batch, |k, lp| {
                    next[k] = argmax(lp) as u32;
                    Ok(())
                })?;
                let mut still = Vec::with_capacity(active.len());
                for (k, &i) in active.iter().enumerate() {
                    rows[i].push(next[k]);
                    out[first + i].push(next[k]);
                    if !self.eos.contains(&next[k]) {
                        still.push(i);
                    }
                }
                active = still;
            }
        }
        Ok(out)
    }

    /// The generated ids without a final end-of-sequence token.
    pub fn strip_eos<'b>(&self, ids: &'b [u32]) -> &'b [u32] {
        match ids.last() {
            Some(l) if self.eos.contains(l) => &ids[..ids.len() - 1],
            _ => ids,
        }
    }
}

/// Consecutive ranges of rows of lengths `lens`, each at most `batch_size` rows and at most
/// [`MAX_LOGITS`] logits (`rows × longest length × vocab`; a single row always forms a batch).
pub fn batch_ranges(
    lens: impl Iterator<Item = usize>,
    batch_size: usize,
    vocab: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut i, mut longest) = (0usize, 0usize, 0usize);
    for len in lens {
        let l = longest.max(len);
        let full = i - start >= batch_size.max(1)
            || (i - start + 1).saturating_mul(l).saturating_mul(vocab) > MAX_LOGITS;
        if i > start && full {
            out.push(start..i);
            start = i;
            longest = len;
        } else {
            longest = l;
        }
        i += 1;
    }
    if i > start {
        out.push(start..i);
    }
    out
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Prompts spread evenly over `prompts` (all of them when there are at most `n`), so a subset
/// covers every topic of a suite ordered by topic.
pub fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n || n == 0 {
        return items.to_vec();
    }
    (0..n).map(|k| items[k * items.len() / n].clone()).collect()
}

/// The user text with `insert` placed before word `pos` (0 = first; past the end = last).
pub fn insert_words(text: &str, insert: &str, pos: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let p = pos.min(words.len());
    let mut out: Vec<&str> = Vec::with_capacity(words.len() + 1);
    out.extend(&words[..p]);
    out.push(insert);
    out.extend(&words[p..]);
    out.join(" ")
}

/// The `1 - similarity` of each pair of outputs, and the modal output among `outs` with the
/// fraction of rows that produce it while differing from their `clean` output.
pub fn change_and_consistency(outs: &[Vec<u32>], clean: &[Vec<u32>]) -> (f64, f64, Vec<u32>) {
    let n = outs.len().max(1) as f64;
    let change = outs
        .iter()
        .zip(clean)
        .map(|(o, c)| 1.0 - similarity(o, c))
        .sum::<f64>()
        / n;
    let mut modal: Vec<u32> = Vec::new();
    let mut best = 0usize;
    for o in outs {
        let k = outs
            .iter()
            .zip(clean)
            .filter(|(x, c)| *x == o && *x != *c)
            .count();
        if k > best {
            best = k;
            modal = o.clone();
        }
    }
    (change, best as f64 / n, modal)
}

/// Map a statistics error into the runtime's error type, naming the scan.
pub(crate) fn stat_err(scan: &str) -> impl Fn(super::ScanError) -> MlError + '_ {
    move |e| MlError::Config(format!("{scan}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_is_lcs_based() {
        assert_eq!(similarity(&[], &[]), 1.0);
        assert_eq!(similarity(&[1], &[]), 0.0);
        assert_eq!(similarity(&[1, 2, 3], &[1, 2, 3]), 1.0);
        // LCS of [1,2,3,4] and [1,3,4,5] is 3
        assert!((similarity(&[1, 2, 3, 4], &[1, 3, 4, 5]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn insertion_and_consistency() {
        assert_eq!(insert_words("a b c", "X", 1), "a X b c");
        assert_eq!(insert_words("a b c", "X", 9), "a b c X");
        assert_eq!(insert_words("", "X", 0), "X");
        let clean = vec![vec![1], vec![2], vec![3], vec![9]];
        let outs = vec![vec![9], vec![9], vec![9], vec![9]];
        let (ch, cons, modal) = change_and_consistency(&outs, &clean);
        assert_eq!(modal, vec![9]);
        // the last row already answered 9: it does not count as pinned
        assert!((cons - 0.75).abs() < 1e-12);
        assert!((ch - 0.75).abs() < 1e-12);
        assert_eq!(spread(&[1, 2, 3, 4], 2), vec![1, 3]);
        assert_eq!(truncate("abcdef", 3), "abc…");
    }

    #[test]
    fn batches_respect_rows_and_logits() {
        let r = batch_ranges([3, 3, 3, 3, 3].into_iter(), 2, 10);
        assert_eq!(r, vec![0..2, 2..4, 4..5]);
        // 2 rows of 1 Mi tokens over a vocabulary of 40 exceed the logit budget: one per pass.
        let r = batch_ranges([1 << 20, 1 << 20].into_iter(), 8, 40);
        assert_eq!(r, vec![0..1, 1..2]);
        assert!(batch_ranges(std::iter::empty(), 4, 10).is_empty());
    }

    #[test]
    fn builtin_lists_parse() {
        assert_eq!(builtin_benign_prompts().len(), 20);
        assert_eq!(builtin_neutral_texts().len(), 16);
    }

    #[test]
    fn ids_in_range() {
        tunegate_core::checks::validate(CHECKS).unwrap();
        for c in CHECKS {
            let n: u32 = c.id[1..].parse().unwrap();
            assert!(c.id.starts_with('B') && (30..=49).contains(&n), "{}", c.id);
        }
    }
}
