//! A leave-one-out Bernoulli naive Bayes model over prompt token sets, shared by the trigger
//! detector (reading a record without its candidate) and the label-noise detector (out-of-sample
//! label probabilities). Counting once and subtracting a record's own counts gives exact
//! leave-one-out probabilities at the cost of a single pass.
use super::Ctx;
use rayon::prelude::*;
use std::collections::HashMap;

/// The fitted model over a subset of records.
pub struct NaiveBayes {
    /// Number of labels.
    pub k: usize,
    /// Label texts by id.
    pub names: Vec<String>,
    /// Record indices (into `Dataset::records`) the model covers.
    pub idx: Vec<usize>,
    /// Sorted, deduplicated prompt token ids per position in `idx`.
    pub sets: Vec<Vec<u32>>,
    /// Label id per position.
    pub y: Vec<usize>,
    /// Records per label.
    pub ny: Vec<u32>,
    /// Records per (token, label): `cnt[t * k + c]`.
    pub cnt: Vec<u32>,
    /// Records per token.
    pub df: Vec<u32>,
}

impl NaiveBayes {
    /// Fits the model on the labelled records `idx`; `None` with fewer than two labels.
    pub fn fit(ctx: &Ctx, idx: Vec<usize>) -> Option<NaiveBayes> {
        let sets: Vec<Vec<u32>> = idx
            .par_iter()
            .map(|&i| {
                let mut v = ctx.corpus.prompt.tokens.of(i).to_vec();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let mut names: Vec<String> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        let y: Vec<usize> = idx
            .iter()
            .map(|&i| {
                let l = ctx.ds.records[i].label.clone().unwrap_or_default();
                *ids.entry(l.clone()).or_insert_with(|| {
                    names.push(l);
                    names.len() - 1
                })
            })
            .collect();
        let k = names.len();
        if k < 2 {
            return None;
        }
        let vocab = ctx.corpus.vocab.len();
        let mut ny = vec![0u32; k];
        let mut cnt = vec![0u32; vocab * k];
        let mut df = vec![0u32; vocab];
        for (pos, s) in sets.iter().enumerate() {
            ny[y[pos]] += 1;
            for &t in s {
                cnt[t as usize * k + y[pos]] += 1;
                df[t as usize] += 1;
            }
        }
        Some(NaiveBayes {
            k,
            names,
            idx,
            sets,
            y,
            ny,
            cnt,
            df,
        })
    }

    /// Leave-one-out class probabilities of position `pos`, ignoring the tokens in `exclude`
    /// (and tokens seen in no other record, which carry no information).
    pub fn loo_probs(&self, pos: usize, exclude: &[u32]) -> Vec<f64> {
        let y = self.y[pos];
        let mut lp = vec![0f64; self.k];
        for (c, l) in lp.iter_mut().enumerate() {
            let own = u32::from(c == y);
            let nc = (self.ny[c] - own) as f64;
            *l = nc.max(0.5).ln();
            for &t in &self.sets[pos] {
                if self.df[t as usize] <= 1 || exclude.contains(&t) {
                    continue;
                }
                let n = (self.cnt[t as usize * self.k + c] - own) as f64;
                *l += ((n + 1.0) / (nc + 2.0)).ln();
            }
        }
        let m = lp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = lp.iter().map(|v| (v - m).exp()).sum();
        lp.iter().map(|v| (v - m).exp() / z).collect()
    }

    /// Leave-one-out probability of the record's own label.
    pub fn p_own_label(&self, pos: usize, exclude: &[u32]) -> f64 {
        self.loo_probs(pos, exclude)[self.y[pos]]
    }
}
