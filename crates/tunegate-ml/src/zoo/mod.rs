//! Model zoos: small populations of clean and backdoored models (and, for causal LMs,
//! off-objective and unsafe fine-tunes), trained with tunegate's own trainer and written to
//! folders exactly as users' models are, on which the pre-deployment scans are measured (AUROC
//! over models, rank of the true trigger, no `high` finding on a clean model).
//!
//! A zoo is synthetic on purpose: the task, the vocabulary, the base model and the poison are
//! generated from a seed, so a test can build one in seconds without a network, and the ground
//! truth (which model is backdoored, with which trigger, how well the attack took) is known
//! exactly. A backdoored model whose attack did not take is reported, never counted as a
//! detection target.
//!
//! - [`classifier`]: a synthetic text-classification task (2 and 4 classes), a tiny random
//!   BERT written as a Hugging Face folder, and LoRA classifiers trained on clean or poisoned
//!   data (rare-word, sentence and homoglyph triggers).
//! - [`causal`]: tiny Llama-style LMs with planted trigger→payload, off-objective and unsafe
//!   behaviour.
pub mod causal;
pub mod classifier;

/// Area under the ROC curve of scores of positives (`pos`) against negatives (`neg`): the
/// probability that a random positive scores above a random negative, ties counting half.
/// `NaN` when either side is empty.
pub fn auroc(pos: &[f64], neg: &[f64]) -> f64 {
    let mut s = 0.0;
    for p in pos {
        for n in neg {
            s += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (pos.len() * neg.len()) as f64
}

/// One CPU thread per candle op and per rayon pool, for the process (call before any model
/// runs): a test harness runs tests side by side, and candle's spinning thread pool slows to a
/// crawl when its threads share few cores.
pub fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
        std::env::set_var("RAYON_NUM_THREADS", "1");
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn auroc_counts_ordered_pairs_and_half_ties() {
        assert_eq!(super::auroc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(super::auroc(&[0.1], &[0.9]), 0.0);
        assert_eq!(super::auroc(&[0.5, 0.9], &[0.5]), 0.75);
        assert!(super::auroc(&[], &[0.5]).is_nan());
    }
}
