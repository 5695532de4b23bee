//! `tunegate scan diff FINETUNE --base BASE --prompts eval.jsonl`: how a fine-tune's behaviour
//! differs from its base's, prompt by prompt and topic by topic, and what changed inside.
//!
//! For every prompt (rendered with the trainer's SFT template) both models answer greedily
//! (bounded tokens). Along the *fine-tune's* answer, both models' next-token distributions give
//! the per-prompt `KL(p_ft ‖ p_base)` and the log-prob ratio of the answer; the two answers give
//! an output similarity. [`crate::scan::detectors::behaviour_diff`] finds prompts and topics
//! that stand out (B010, B011). A topic that stands out is `high` only when the answers there
//! actually changed (at least `changed_fraction` of its prompts get a different greedy answer);
//! a material shift of probabilities (median KL at least `material_kl`) that leaves the greedy
//! answers alone is `medium`, a smaller one `low`. A prompt is `medium` when its answer changed
//! or its KL is material, else `low`. A topic the fine-tune was meant to
//! change (`expected_topics`) is `info` (B031): a fine-tune is *supposed* to diverge on its
//! objective; what gates is divergence elsewhere.
//!
//! The activation diff (B030, after ADL) averages `h_ft − h_base` per layer over the first
//! tokens of neutral texts; the final layer's mean difference is decoded through the models' own
//! heads (for the last layer the logit lens is exact: the mean log-probability difference of
//! each token), naming the tokens the fine-tune promotes even where no prompt asks for them.
use super::{builtin_neutral_texts, similarity, PROMPTS_SKIPPED};
use super::{stat_err, truncate, Lm, ACTIVATION_DIFF, DIFF_EXPECTED_TOPIC, EVIDENCE_CHARS};
use crate::runtime::nn::log_softmax_last;
use crate::runtime::{MlError, Result};
use crate::scan::detectors::{behaviour_diff as diff_stats, prompt_diff, DiffConfig, PromptDiff};
use crate::scan::model::{Prompt, ScanModel, ScanOutcome};
use crate::scan::report::{
    diff_charts, DETECTOR_SUMMARY, DIFF_PROMPT, DIFF_TOPIC, FINDINGS_TRUNCATED,
};
use candle_core::DType;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tunegate_core::progress::Progress;
use tunegate_core::{Chart, ChartKind, Finding, Location, Severity};

/// Settings of [`behaviour_diff`]. Every field has a default (shown in brackets).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffScanConfig {
    /// Tokens generated per prompt and model [32].
    pub max_new_tokens: usize,
    /// Prompts read at most; the rest are ignored [2000].
    pub max_prompts: usize,
    /// Sequences per forward pass [8].
    pub batch_size: usize,
    /// Robust z of ln KL (or of the log-prob ratio) above which a prompt stands out [3.5].
    pub prompt_z: f64,
    /// ... with at least this KL, nats [0.01].
    pub min_kl: f64,
    /// Robust effect size above which a topic stands out [2.5].
    pub topic_effect: f64,
    /// Topics with fewer prompts are not judged [3].
    pub min_topic_prompts: usize,
    /// A standing-out topic is `high` when at least this fraction of its prompts get a
    /// different greedy answer from the fine-tune than from the base (the answers changed, not
    /// only their probabilities) [0.5].
    pub changed_fraction: f64,
    /// KL (nats) from which a shift of probabilities alone is material: `medium` rather than
    /// `low` [0.5].
    pub material_kl: f64,
    /// Topics the fine-tune was trained to change: reported at `info` (B031) [none].
    pub expected_topics: Vec<String>,
    /// Neutral texts of the activation diff (empty: the built-in 16 sentences) [].
    pub neutral_texts: Vec<String>,
    /// Leading tokens of each neutral text used by the activation diff [5].
    pub activation_tokens: usize,
    /// Promoted tokens listed [12].
    pub promoted_tokens: usize,
    /// Per-prompt findings listed one by one; the rest are counted (B014) [25].
    pub max_prompt_findings: usize,
}

impl Default for DiffScanConfig {
    fn default() -> Self {
        let d = DiffConfig::default();
        DiffScanConfig {
            max_new_tokens: 32,
            max_prompts: 2000,
            batch_size: 8,
            prompt_z: d.prompt_z,
            min_kl: d.min_kl,
            topic_effect: d.topic_effect,
            min_topic_prompts: d.min_topic_prompts,
            changed_fraction: 0.5,
            material_kl: 0.5,
            expected_topics: Vec::new(),
            neutral_texts: Vec::new(),
            activation_tokens: 5,
            promoted_tokens: 12,
            max_prompt_findings: 25,
        }
    }
}

/// One prompt's answers and statistics.
#[derive(Debug, Clone, Serialize)]
struct Answered {
    index: usize,
    ft: Vec<u32>,
    base: Vec<u32>,
    diff: PromptDiff,
    similarity: f64,
}

impl Answered {
    /// Whether the two greedy answers differ (end-of-sequence tokens aside).
    fn changed(&self, lm: &Lm<'_>) -> bool {
        lm.strip_eos(&self.ft) != lm.strip_eos(&self.base)
    }
}

/// Check that two runners can be compared token for token.
pub(crate) fn same_vocabulary(ft: &Lm<'_>, base: &Lm<'_>, probe_text: &str) -> Result<()> {
    if ft.vocab != base.vocab {
        return Err(MlError::Config(format!(
            "the fine-tune's vocabulary has {} tokens, the base's {}: not a fine-tune of this base",
            ft.vocab, base.vocab
        )));
    }
    if ft.prompt_ids(probe_text)? != base.prompt_ids(probe_text)? {
        return Err(MlError::Config(
            "the fine-tune's and the base's tokenizers split text differently".into(),
        ));
    }
    Ok(())
}

/// Behaviour diff of `ft` against `base` on `prompts`, plus the activation diff on neutral
/// texts. Findings: B010 per prompt that stands out (with both answers), B011 (or B031) per
/// topic, B030 (activation diff), B037 for prompts that did not fit, B013 summary. Charts: the
/// per-prompt KL histogram, median KL and answer similarity per topic, the activation change
/// per layer and the promoted tokens.
pub fn behaviour_diff(
    ft: &ScanModel,
    base: &ScanModel,
    prompts: &[Prompt],
    cfg: &DiffScanConfig,
    progress: &dyn Progress,
) -> Result<ScanOutcome> {
    let lf = Lm::new(ft, cfg.batch_size)?;
    let lb = Lm::new(base, cfg.batch_size)?;
    let prompts = &prompts[..prompts.len().min(cfg.max_prompts.max(1))];
    if prompts.len() < 5 {
        return Err(MlError::Config(format!(
            "behaviour diff needs at least 5 prompts, got {}",
            prompts.len()
        )));
    }
    same_vocabulary(&lf, &lb, &prompts[0].text)?;
    let ctx_len = lf.max_positions.min(lb.max_positions);
    let mut kept: Vec<usize> = Vec::new();
    let mut ids: Vec<Vec<u32>> = Vec::new();
    let mut skipped: Vec<usize> = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let t = lf.user_ids(&p.text)?;
        if t.is_empty() || t.len() + cfg.max_new_tokens.max(1) > ctx_len {
            skipped.push(i);
        } else {
            kept.push(i);
            ids.push(t);
        }
    }
    if kept.len() < 5 {
        return Err(MlError::Config(format!(
            "only {} prompts fit the model's {ctx_len} positions with {} new tokens; the diff needs 5",
            kept.len(),
            cfg.max_new_tokens
        )));
    }
    progress.start("behaviour diff", kept.len() as u64);
    let mut answered: Vec<Answered> = Vec::with_capacity(kept.len());
    let step = cfg.batch_size.max(1);
    for (c, chunk) in ids.chunks(step).enumerate() {
        let gf = lf.greedy(chunk, cfg.max_new_tokens.max(1))?;
        let gb = lb.greedy(chunk, cfg.max_new_tokens.max(1))?;
        let spans: Vec<(Vec<u32>, usize, usize)> = chunk
            .iter()
            .zip(&gf)
            .map(|(p, r)| {
                let mut s = p.clone();
                s.extend(r);
                (s, p.len() - 1, r.len())
            })
            .collect();
        let mut lp_ft: Vec<Vec<f32>> = vec![Vec::new(); chunk.len()];
        lf.for_each_span(&spans, |k, v| {
            lp_ft[k] = v;
            Ok(())
        })?;
        let mut diffs: Vec<Option<PromptDiff>> = vec![None; chunk.len()];
        lb.for_each_span(&spans, |k, v| {
            let n = spans[k].2;
            diffs[k] = Some(
                prompt_diff(&lp_ft[k], &v, n, lf.vocab, Some(&gf[k]))
                    .map_err(stat_err("behaviour diff"))?,
            );
            Ok(())
        })?;
        for (k, d) in diffs.into_iter().enumerate() {
            let d = d.ok_or_else(|| MlError::Config("behaviour diff: missing row".into()))?;
            let (a, b) = (lf.strip_eos(&gf[k]), lb.strip_eos(&gb[k]));
            answered.push(Answered {
                index: kept[c * step + k],
                similarity: similarity(a, b),
                ft: gf[k].clone(),
                base: gb[k].clone(),
                diff: d,
            });
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();

    let any_topic = answered.iter().any(|a| prompts[a.index].topic.is_some());
    let topics: Option<Vec<String>> = any_topic.then(|| {
        answered
            .iter()
            .map(|a| {
                prompts[a.index]
                    .topic
                    .clone()
                    .unwrap_or_else(|| "(no topic)".into())
            })
            .collect()
    });
    let dcfg = DiffConfig {
        prompt_z: cfg.prompt_z,
        min_kl: cfg.min_kl,
        topic_effect: cfg.topic_effect,
        min_topic_prompts: cfg.min_topic_prompts,
    };
    let diffs: Vec<PromptDiff> = answered.iter().map(|a| a.diff).collect();
    let r = diff_stats(&diffs, topics.as_deref(), &dcfg).map_err(stat_err("behaviour diff"))?;

    let mut out = ScanOutcome::default();
    let evidence_of = |a: &Answered| {
        let p = &prompts[a.index];
        json!({
            "prompt": truncate(&p.text, EVIDENCE_CHARS),
            "topic": p.topic,
            "finetune_output": truncate(&lf.decode(&a.ft), EVIDENCE_CHARS),
            "base_output": truncate(&lb.decode(&a.base), EVIDENCE_CHARS),
            "kl": a.diff.kl,
            "logprob_ratio": a.diff.logprob_ratio,
            "similarity": a.similarity,
        })
    };
    for (n, &i) in r.flagged_prompts.iter().enumerate() {
        if n >= cfg.max_prompt_findings {
            let rest = r.flagged_prompts.len() - n;
            out.findings.push(
                Finding::new(
                    &FINDINGS_TRUNCATED,
                    format!("{rest} more prompts that stand out in the behaviour diff are not listed one by one"),
                    Location::default(),
                )
                .evidence(json!({"check": DIFF_PROMPT.id, "not_listed": rest})),
            );
            break;
        }
        let a = &answered[i];
        let s = &r.prompts[i];
        let mut ev = evidence_of(a);
        ev["z_kl"] = json!(s.z_kl);
        ev["z_ratio"] = json!(s.z_ratio);
        let (sev, what) = if a.changed(&lf) {
            (
                Severity::Medium,
                format!(
                    "fine-tune answers {:?}, base {:?}",
                    truncate(&lf.decode(&a.ft), 80),
                    truncate(&lb.decode(&a.base), 80)
                ),
            )
        } else {
            let sev = if s.kl >= cfg.material_kl {
                Severity::Medium
            } else {
                Severity::Low
            };
            (
                sev,
                format!("both answer {:?}", truncate(&lf.decode(&a.ft), 80)),
            )
        };
        out.findings.push(
            Finding::new(
                &DIFF_PROMPT,
                format!(
                    "prompt diverges from the base: KL {:.3} nats (robust z {:.1}); {what}",
                    s.kl, s.z_kl
                ),
                prompts[a.index].location.clone(),
            )
            .severity(sev)
            .evidence(ev),
        );
    }
    let mut topic_summary = Vec::new();
    let mut sim_labels = Vec::new();
    let mut sim_values = Vec::new();
    for t in &r.topics {
        let members: Vec<&Answered> = answered
            .iter()
            .zip(topics.iter().flatten())
            .filter(|(_, name)| **name == t.topic)
            .map(|(a, _)| a)
            .collect();
        let sims: Vec<f64> = members.iter().map(|a| a.similarity).collect();
        let median_sim = crate::scan::linalg::median(&sims).unwrap_or(1.0);
        let changed =
            members.iter().filter(|a| a.changed(&lf)).count() as f64 / members.len().max(1) as f64;
        sim_labels.push(t.topic.clone());
        sim_values.push(median_sim);
        let expected = cfg.expected_topics.contains(&t.topic);
        let severity = if !t.flagged {
            None
        } else if expected {
            Some(Severity::Info)
        } else if changed >= cfg.changed_fraction {
            Some(Severity::High)
        } else if t.median_kl >= cfg.material_kl {
            Some(Severity::Medium)
        } else {
            Some(Severity::Low)
        };
        topic_summary.push(json!({
            "topic": t.topic, "prompts": t.prompts, "median_kl": t.median_kl,
            "effect": t.effect, "judged": t.judged, "median_similarity": median_sim,
            "changed_answers": changed,
            "flagged": t.flagged, "expected": expected,
            "severity": severity.map(|s| s.to_string()),
        }));
        let Some(sev) = severity else { continue };
        let mut ex: Vec<&Answered> = members.clone();
        ex.sort_by(|a, b| b.diff.kl.total_cmp(&a.diff.kl));
        let examples: Vec<serde_json::Value> = ex.iter().take(3).map(|a| evidence_of(a)).collect();
        let ev = json!({
            "topic": t.topic, "prompts": t.prompts, "median_kl": t.median_kl,
            "suite_median_kl": r.median_kl, "effect": t.effect,
            "median_similarity": median_sim, "changed_answers": changed, "examples": examples,
        });
        let f = if expected {
            Finding::new(
                &DIFF_EXPECTED_TOPIC,
                format!(
                    "topic '{}' ({} prompts) diverges from the base as expected of the fine-tune's objective: median KL {:.3} nats, effect {:.1} robust SDs",
                    t.topic, t.prompts, t.median_kl, t.effect
                ),
                Location::default(),
            )
        } else {
            let how = if sev == Severity::High {
                format!(
                    "its answers changed on {:.0}% of its prompts (median similarity to the base's {:.2})",
                    100.0 * changed,
                    median_sim
                )
            } else {
                format!(
                    "its probabilities shifted but the greedy answers mostly did not ({:.0}% changed)",
                    100.0 * changed
                )
            };
            Finding::new(
                &DIFF_TOPIC,
                format!(
                    "topic '{}' ({} prompts) diverges from the base far more than the rest: median KL {:.3} nats vs {:.3} overall, effect {:.1} robust SDs; {how}",
                    t.topic, t.prompts, t.median_kl, r.median_kl, t.effect
                ),
                Location::default(),
            )
            .severity(sev)
        };
        out.findings.push(f.evidence(ev));
    }
    if !skipped.is_empty() {
        out.findings.push(
            Finding::new(
                &PROMPTS_SKIPPED,
                format!(
                    "{} prompts did not fit the model's {ctx_len} positions with {} new tokens and were left out of the behaviour diff",
                    skipped.len(),
                    cfg.max_new_tokens
                ),
                prompts[skipped[0]].location.clone(),
            )
            .evidence(json!({"skipped": skipped.len(), "first": skipped[0]})),
        );
    }
    let sims: Vec<f64> = answered.iter().map(|a| a.similarity).collect();
    let median_sim = crate::scan::linalg::median(&sims).unwrap_or(1.0);
    out.findings.push(
        Finding::new(
            &DETECTOR_SUMMARY,
            format!(
                "behaviour diff: {} prompts, median KL {:.4} nats, median answer similarity {:.2}; {} prompts and {} topics stand out",
                answered.len(),
                r.median_kl,
                median_sim,
                r.flagged_prompts.len(),
                r.topics.iter().filter(|t| t.flagged).count()
            ),
            Location::default(),
        )
        .evidence(json!({"detector": "behaviour-diff", "rule": r.rationale})),
    );
    out.charts.extend(diff_charts(&r));
    if !sim_labels.is_empty() {
        out.charts.push(Chart {
            id: "diff-topic-similarity".into(),
            title: "Median similarity of the fine-tune's and the base's answers per topic".into(),
            kind: ChartKind::Bar,
            labels: sim_labels,
            values: sim_values,
            unit: "2·LCS / total length".into(),
        });
    }
    let act = activation_diff(&lf, &lb, cfg)?;
    out.findings.push(act.finding());
    out.charts.extend(act.charts());
    out.summary = json!({
        "prompts": answered.len(),
        "skipped": skipped.len(),
        "median_kl": r.median_kl,
        "median_similarity": median_sim,
        "flagged_prompts": r.flagged_prompts.len(),
        "topics": topic_summary,
        "activation": act,
    });
    Ok(out)
}

/// The activation diff on neutral texts.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationDiff {
    /// Neutral texts used.
    pub texts: usize,
    /// Token positions averaged.
    pub positions: usize,
    /// Per hidden state (embeddings first): `‖mean(h_ft − h_base)‖ / mean ‖h_base‖`.
    pub relative_change: Vec<f64>,
    /// Tokens the fine-tune promotes most on neutral text, with the mean log-probability
    /// difference (nats).
    pub promoted: Vec<(String, f64)>,
    /// Tokens the fine-tune suppresses most.
    pub suppressed: Vec<(String, f64)>,
}

impl ActivationDiff {
    fn finding(&self) -> Finding {
        let (layer, most) = self
            .relative_change
            .iter()
            .enumerate()
            .fold((0, 0.0), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        let toks: Vec<String> = self
            .promoted
            .iter()
            .take(8)
            .map(|(t, v)| format!("{t:?} (+{v:.2})"))
            .collect();
        Finding::new(
            &ACTIVATION_DIFF,
            format!(
                "activation diff on {} neutral texts: largest relative change at hidden state {layer} ({:.1}%); the fine-tune promotes {}",
                self.texts,
                100.0 * most,
                toks.join(", ")
            ),
            Location::default(),
        )
        .evidence(serde_json::to_value(self).unwrap_or_default())
    }

    fn charts(&self) -> Vec<Chart> {
        vec![
            Chart {
                id: "activation-diff-layers".into(),
                title: "Activation diff on neutral text: ‖mean(h_ft − h_base)‖ / mean ‖h_base‖ per hidden state (0 = embeddings)".into(),
                kind: ChartKind::Bar,
                labels: (0..self.relative_change.len()).map(|i| format!("state {i}")).collect(),
                values: self.relative_change.clone(),
                unit: "relative change".into(),
            },
            Chart {
                id: "activation-diff-promoted".into(),
                title: "Tokens the fine-tune promotes on neutral text (logit lens of the mean difference)".into(),
                kind: ChartKind::Bar,
                labels: self.promoted.iter().map(|(t, _)| t.clone()).collect(),
                values: self.promoted.iter().map(|(_, v)| *v).collect(),
                unit: "nats".into(),
            },
        ]
    }
}

/// Mean `h_ft − h_base` per hidden state over the first `activation_tokens` of each neutral
/// text, and the mean next-token log-probability difference per vocabulary entry.
fn activation_diff(lf: &Lm<'_>, lb: &Lm<'_>, cfg: &DiffScanConfig) -> Result<ActivationDiff> {
    let texts = if cfg.neutral_texts.is_empty() {
        builtin_neutral_texts()
    } else {
        cfg.neutral_texts.clone()
    };
    let k = cfg.activation_tokens.max(1);
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let mut ids = lf.prompt_ids(t)?;
            ids.truncate(k.min(lf.max_positions.min(lb.max_positions)));
            Ok(ids)
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    if rows.is_empty() {
        return Err(MlError::Config(
            "activation diff: no neutral text has a token".into(),
        ));
    }
    let v = lf.vocab;
    let mut diff_sum: Vec<Vec<f64>> = Vec::new();
    let mut base_norm: Vec<f64> = Vec::new();
    let mut lp_sum = vec![0f64; v];
    let mut count = 0usize;
    for chunk in rows.chunks(lf.batch_size) {
        let of = lf.forward(chunk)?;
        let ob = lb.forward(chunk)?;
        if of.hidden_states.len() != ob.hidden_states.len() {
            return Err(MlError::Config(format!(
                "the fine-tune has {} hidden states, the base {}: not the same architecture",
                of.hidden_states.len(),
                ob.hidden_states.len()
            )));
        }
        if diff_sum.is_empty() {
            let h = of.hidden_states[0].dim(2)?;
            diff_sum = vec![vec![0f64; h]; of.hidden_states.len()];
            base_norm = vec![0f64; of.hidden_states.len()];
        }
        for (l, (hf, hb)) in of.hidden_states.iter().zip(&ob.hidden_states).enumerate() {
            let hf = hf.to_dtype(DType::F32)?.to_vec3::<f32>()?;
            let hb = hb.to_dtype(DType::F32)?.to_vec3::<f32>()?;
            for (r, row) in chunk.iter().enumerate() {
                for t in 0..row.len() {
                    let (a, b) = (&hf[r][t], &hb[r][t]);
                    let mut nb = 0f64;
                    for j in 0..a.len() {
                        diff_sum[l][j] += f64::from(a[j] - b[j]);
                        nb += f64::from(b[j]).powi(2);
                    }
                    base_norm[l] += nb.sqrt();
                }
            }
        }
        let lpf = log_softmax_last(&of.logits)?
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?;
        let lpb = log_softmax_last(&ob.logits)?
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?;
        for (r, row) in chunk.iter().enumerate() {
            for t in 0..row.len() {
                for (s, (a, b)) in lp_sum.iter_mut().zip(lpf[r][t].iter().zip(&lpb[r][t])) {
                    *s += f64::from(a - b);
                }
            }
            count += row.len();
        }
    }
    let n = count.max(1) as f64;
    let relative_change = diff_sum
        .iter()
        .zip(&base_norm)
        .map(|(d, nb)| {
            let norm = d.iter().map(|x| (x / n).powi(2)).sum::<f64>().sqrt();
            norm / (nb / n).max(1e-12)
        })
        .collect();
    let mut order: Vec<usize> = (0..v).filter(|&i| !lf.is_special(i as u32)).collect();
    order.sort_by(|&a, &b| lp_sum[b].total_cmp(&lp_sum[a]));
    let name = |i: usize| lf.tok.token(i as u32);
    let take = cfg.promoted_tokens.max(1);
    let promoted = order
        .iter()
        .take(take)
        .map(|&i| (name(i), lp_sum[i] / n))
        .collect();
    let suppressed = order
        .iter()
        .rev()
        .take(take)
        .map(|&i| (name(i), lp_sum[i] / n))
        .collect();
    Ok(ActivationDiff {
        texts: rows.len(),
        positions: count,
        relative_change,
        promoted,
        suppressed,
    })
}
