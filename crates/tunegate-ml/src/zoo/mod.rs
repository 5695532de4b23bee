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
