//! Label noise for text/label data (`D012 dataset.label-noise`).
//!
//! Two independent signals must agree before a person is asked to look:
//! 1. **Out-of-sample confidence**: a leave-one-out naive Bayes model (the same counts the
//!    trigger detector uses) gives the probability of the record's own label; confident
//!    learning's per-class threshold (the mean self-confidence of the class) decides which
//!    records are suspicious, and only those below [`LOW_P`] are reported at all.
//! 2. **Neighbour disagreement**: records sharing most of the record's words (token-set
//!    Jaccard ≥ [`NEIGHBOUR_JACCARD`], found through an inverted index of its rarer tokens) carry
//!    another label, and none carries the record's own.
//!
//! Signal 1 alone is `low` (naive Bayes is over-confident on short texts: on clean SST-2 it
//! puts ~1% of records below 1e-3); both together are `medium`.
use super::mismatch::lexical::jaccard;
use super::nb::NaiveBayes;
use super::{Ctx, Output};
use crate::checks::LABEL_NOISE;
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use tunegate_core::{Finding, Severity};

/// Self-confidence below which a record is reported.
pub const LOW_P: f64 = 1e-3;
/// Jaccard of token sets at which another record counts as a neighbour.
pub const NEIGHBOUR_JACCARD: f64 = 0.5;
/// Neighbours with another label needed for `medium`.
pub const MIN_NEIGHBOURS: usize = 2;

/// Runs the detector.
pub fn detect(ctx: &Ctx) -> Output {
    let idx: Vec<usize> = (0..ctx.ds.records.len())
        .filter(|&i| ctx.ds.records[i].label.is_some() && ctx.corpus.prompt.present[i])
        .collect();
    let mut out = Output::default();
    if idx.len() < 20 {
        return out;
    }
    let Some(nb) = NaiveBayes::fit(ctx, idx) else {
        return out;
    };
    let n = nb.idx.len();
    let probs: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|p| nb.loo_probs(p, &[]))
        .collect();
    // Confident learning: per-class threshold = mean self-confidence of the class.
    let mut sum = vec![0f64; nb.k];
    for p in 0..n {
        sum[nb.y[p]] += probs[p][nb.y[p]];
    }
    let thresh: Vec<f64> = (0..nb.k).map(|c| sum[c] / nb.ny[c].max(1) as f64).collect();
    let suspects: Vec<usize> = (0..n)
        .filter(|&p| {
            let y = nb.y[p];
            let own = probs[p][y];
            own < LOW_P && (0..nb.k).any(|c| c != y && probs[p][c] >= thresh[c])
        })
        .collect();
    if suspects.is_empty() {
        return out;
    }
    // Inverted index over tokens that are not too common (neighbour search for suspects only).
    let cap = (n / 20).max(50) as u32;
    let mut postings: HashMap<u32, Vec<usize>> = HashMap::new();
    for (p, s) in nb.sets.iter().enumerate() {
        for &t in s {
            if nb.df[t as usize] <= cap {
                postings.entry(t).or_default().push(p);
            }
        }
    }
    let found: Vec<(usize, Vec<(usize, f64)>)> = suspects
        .par_iter()
        .map(|&p| {
            let mut seen: Vec<usize> = nb.sets[p]
                .iter()
                .filter_map(|t| postings.get(t))
                .flatten()
                .copied()
                .filter(|&q| q != p)
                .collect();
            seen.sort_unstable();
            seen.dedup();
            let mut near: Vec<(usize, f64)> = seen
                .into_iter()
                .map(|q| (q, jaccard(&nb.sets[p], &nb.sets[q])))
                .filter(|(_, j)| *j >= NEIGHBOUR_JACCARD)
                .collect();
            near.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            near.truncate(10);
            (p, near)
        })
        .collect();
    for (p, near) in found {
        let y = nb.y[p];
        let rec = &ctx.ds.records[nb.idx[p]];
        let (best, best_p) = (0..nb.k)
            .filter(|&c| c != y)
            .map(|c| (c, probs[p][c]))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((y, 0.0));
        let disagree = near.iter().filter(|(q, _)| nb.y[*q] != y).count();
        let agree = near.len() - disagree;
        let medium = disagree >= MIN_NEIGHBOURS && agree == 0;
        let neighbours: Vec<_> = near
            .iter()
            .map(|(q, j)| {
                let r = &ctx.ds.records[nb.idx[*q]];
                json!({"record": r.index, "label": nb.names[nb.y[*q]], "jaccard": (j * 1000.0).round() / 1000.0})
            })
            .collect();
        let msg = if medium {
            format!(
                "label {} looks wrong: {} similar records are labelled {} and none {}; a model trained without this record gives its label p = {:.1e}",
                nb.names[y], disagree, nb.names[best], nb.names[y], probs[p][y]
            )
        } else {
            format!(
                "label {} is unlikely for this text (p = {:.1e} out of sample; {} is likelier)",
                nb.names[y], probs[p][y], nb.names[best]
            )
        };
        out.findings.push(
            Finding::new(&LABEL_NOISE, msg, ctx.ds.location(rec).field("label"))
                .severity(if medium {
                    Severity::Medium
                } else {
                    Severity::Low
                })
                .evidence(json!({
                    "label": nb.names[y],
                    "suggested_label": nb.names[best],
                    "p_label": probs[p][y],
                    "p_suggested": best_p,
                    "class_threshold": thresh[best],
                    "neighbours": neighbours,
                })),
        );
    }
    out
}
