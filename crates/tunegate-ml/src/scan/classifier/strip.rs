//! STRIP for text: perturbed copies of an input (a fraction of its words replaced by words of
//! the clean set), the entropy of the model's prediction averaged over the copies. A trigger
//! keeps the prediction pinned whatever else changes, so triggered inputs keep a low entropy.
use super::forward::{encode, run};
use super::ClassifierScanConfig;
use crate::runtime::MlError;
use crate::runtime::Result;
use crate::scan::detectors::strip_entropies;
use crate::scan::model::ScanModel;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tunegate_core::progress::Progress;

/// `copies` perturbed copies of `text`: in each, `round(swap × words)` word positions (at least
/// one) get a word drawn from `donors`.
pub(crate) fn perturb(
    text: &str,
    donors: &[&str],
    copies: usize,
    swap: f64,
    rng: &mut impl Rng,
) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    (0..copies)
        .map(|_| {
            if words.is_empty() || donors.is_empty() {
                return text.to_string();
            }
            let m = ((swap * words.len() as f64).round() as usize).clamp(1, words.len());
            let mut w = words.clone();
            for i in sample(rng, words.len(), m) {
                w[i] = donors[rng.gen_range(0..donors.len())];
            }
            w.join(" ")
        })
        .collect()
}

/// The words of the clean set that perturbations draw from.
pub(crate) fn donor_words(clean: &[&str]) -> Vec<String> {
    clean
        .iter()
        .flat_map(|t| t.split_whitespace())
        .map(str::to_string)
        .collect()
}

/// Mean prediction entropy (nats) of each text over its perturbed copies.
pub(crate) fn entropies(
    model: &ScanModel,
    texts: &[&str],
    donors: &[String],
    cfg: &ClassifierScanConfig,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    let copies = cfg.strip_copies.max(1);
    let d: Vec<&str> = donors.iter().map(String::as_str).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(texts.len());
    // bounded chunks: the copies of 256 inputs at a time
    for chunk in texts.chunks(256) {
        let mut all = Vec::with_capacity(chunk.len() * copies);
        for t in chunk {
            all.extend(perturb(t, &d, copies, cfg.strip_swap, &mut rng));
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let rows: Vec<Vec<u32>> = encode(model, &refs, cfg.max_len)?
            .into_iter()
            .map(|r| r.ids)
            .collect();
        let f = run(model, &rows, cfg.batch_size, false, None)?;
        let h = strip_entropies(&f.probs, chunk.len(), copies, f.classes)
            .map_err(|e| MlError::Config(format!("STRIP: {e}")))?;
        out.extend(h);
        progress.advance(chunk.len() as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perturbation_swaps_the_asked_fraction() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let text = "a b c d e f g h";
        let copies = perturb(text, &["X"], 5, 0.5, &mut rng);
        assert_eq!(copies.len(), 5);
        for c in &copies {
            assert_eq!(c.split_whitespace().filter(|w| *w == "X").count(), 4, "{c}");
        }
        // one word: at least one swap; no donors: unchanged
        assert_eq!(perturb("a", &["X"], 1, 0.1, &mut rng), vec!["X"]);
        assert_eq!(perturb(text, &[], 1, 0.5, &mut rng), vec![text]);
    }
}
