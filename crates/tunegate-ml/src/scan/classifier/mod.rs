//! Backdoor scans of text classifiers (`tunegate scan backdoor` and `tunegate scan probe` on a
//! classifier): the model-level trigger search and, when the training data is given, the
//! data-level detectors run on the model's own features.
//!
//! - **Trigger search** ([`trigger_scan`]): candidate tokens from the vocabulary, pruned by a
//!   first-order (HotFlip) score per target class, from embedding rows that moved against the
//!   base, from the user's list and from a soft trigger optimised per class; each is inserted
//!   into clean inputs of the other classes and its exact flip rate measured; the best are
//!   extended greedily into phrases. For three classes or more the per-class effort of the soft
//!   trigger feeds the Neural-Cleanse anomaly index. The model's score is the highest flip rate
//!   any token or greedy phrase reaches (in excess of the base's, when a comparable base is
//!   given). When the vocabulary is small (at most [`ClassifierScanConfig::exhaustive_vocab`]
//!   insertable tokens) every token is evaluated and the pruning only orders them.
//! - **Data-level detectors** ([`scan_classifier`] with training rows): Activation Clustering
//!   and spectral signatures per class on the mean-pooled states of the middle layer (see
//!   [`DetectorFeatures`]; calibrated on the clean reference), a DAN-style Mahalanobis distance over the mean-pooled states of every layer,
//!   and STRIP with word-swap perturbations.
//!
//! Two decisions shape it. Flip rates, not gradients or losses, are what a finding rests on:
//! the pruning can only miss a trigger, never invent one. And the `high` threshold is not a
//! library default but set above the highest flip rate clean models reach, measured on the classifier zoo
//! ([`crate::zoo::classifier`]); see [`ClassifierScanConfig::high_flip_rate`] for the numbers.
mod forward;
mod strip;
mod trigger;

pub use forward::predict;
pub use trigger::{CandidateResult, Inversion, Source};

use self::forward::{classes_of, encode, run};
use self::trigger::{Candidates, Flip, Pool};
use super::detectors::{
    self, activation_clustering, anomaly_index, spectral_signatures, AcConfig, AnomalyIndex,
    ExampleScores, SpectralConfig,
};
use super::linalg::{self, Features, Robust};
use super::model::{LabeledText, ScanModel, ScanOutcome};
use super::report::{self, Describe, InputDetector};
use super::ScanError;
use crate::runtime::{MlError, Result, Task};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tunegate_core::progress::Progress;
use tunegate_core::{Chart, ChartKind, Finding, Location, Severity};

tunegate_core::declare_checks! {
    TRIGGER_FLIP = "B015", "scan.trigger-flip", High,
        "A candidate trigger inserted into clean inputs flips most of those of the other classes to one class, far beyond what clean models reach (threshold calibrated on the classifier zoo): a likely backdoor.";
    TRIGGER_CANDIDATE = "B016", "scan.trigger-candidate", Medium,
        "A candidate trigger flips a notable share of clean inputs of the other classes to one class: a person should look.";
    TRIGGER_SUMMARY = "B017", "scan.trigger-summary", Info,
        "The classifier trigger search: candidates evaluated, the model's score, the calibration used and the top candidates with their flip rates.";
    TRIGGER_SHARED_WITH_BASE = "B018", "scan.trigger-shared-with-base", Low,
        "A candidate flips the base model's predictions about as much as the fine-tune's: the flip is not the fine-tune's doing.";
    EMBEDDING_DRIFT = "B019", "scan.embedding-drift", Low,
        "Token embedding rows moved against the base (a full fine-tune); the tokens that moved most join the trigger candidates.";
    INVERTED_TRIGGER = "B020", "scan.inverted-trigger", Info,
        "Per class: the effort of the optimised soft trigger (its cross-entropy to the class) and its nearest vocabulary tokens.";
    SCAN_LIMITED = "B021", "scan.classifier-scan-limited", Low,
        "Part of the classifier scan could not run as asked (too few clean inputs of a class, an unusable candidate, a base that is not a comparable classifier, a detector without enough rows).";
}

/// Settings of the classifier scans. Every field has a documented default; the decision
/// thresholds were calibrated on the clean models of the classifier zoo.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierScanConfig {
    /// Longest token sequence (128; inputs are truncated, an inserted trigger always survives).
    pub max_len: usize,
    /// Sequences per forward pass (32).
    pub batch_size: usize,
    /// Seed of every random choice (inputs sampled, insertion points, STRIP swaps).
    pub seed: u64,
    /// Clean reference rows used at most (2000).
    pub max_clean: usize,
    /// Training rows scanned at most (20000).
    pub max_train: usize,
    /// Clean inputs per class that candidates are inserted into (32).
    pub flip_inputs_per_class: usize,
    /// A flip rate backs a `high` or `medium` finding only when measured on at least this many
    /// inputs (16).
    pub min_flip_inputs: usize,
    /// Inputs the first-order score averages its gradient over, per class (32).
    pub grad_inputs: usize,
    /// Tokens kept per target class by the first-order score (40).
    pub grad_top_k: usize,
    /// When the vocabulary has at most this many insertable tokens (1000), every one of them
    /// is evaluated exactly and the first-order pruning only orders them: evaluating a few
    /// hundred tokens costs seconds, and pruning can only lose the trigger. Larger
    /// vocabularies (BERT's 30k) are pruned to `grad_top_k` per class.
    pub exhaustive_vocab: usize,
    /// Candidates (by flip rate) whose dominance is measured (inserted once into the clean
    /// inputs repeated twice) (24). Only these can set the model score or back `high`.
    pub dominance_top: usize,
    /// Moved embedding rows (against a base) kept as candidates (20).
    pub drift_top_k: usize,
    /// Candidates evaluated at most, user candidates first (600).
    pub max_candidates: usize,
    /// Keep ASCII `##` continuation pieces as candidates (false: only non-ASCII pieces, which
    /// homoglyph words produce).
    pub ascii_subwords: bool,
    /// Best single tokens that seed a greedy phrase extension (3).
    pub phrase_seeds: usize,
    /// Tokens tried when extending a phrase (10).
    pub phrase_pool: usize,
    /// Longest phrase built (4 tokens).
    pub max_phrase_len: usize,
    /// Whether phrases found by the greedy extension set the model score and may back a
    /// `high` finding (true).
    pub score_phrases: bool,
    /// An extension is kept only when it raises the flip rate by this much (0.05).
    pub phrase_min_gain: f64,
    /// Optimise a soft trigger per class when the model has at least 3 classes (true).
    pub invert: bool,
    /// Positions of the soft trigger (2).
    pub invert_positions: usize,
    /// Adam steps per class (40).
    pub invert_steps: usize,
    /// Adam learning rate on the trigger's vocabulary logits (0.3).
    pub invert_lr: f64,
    /// Inputs per class the trigger is optimised on (32).
    pub invert_inputs: usize,
    /// A token is a natural feature of class `t` when at least `natural_min_count` clean
    /// reference inputs hold it and at least this share of them (0.8), and at least the class
    /// prior plus half the rest, are labelled `t`. A candidate with such a token flipping
    /// inputs to `t` is doing the task: it is ranked after the others and neither sets the
    /// score nor backs a finding. A trigger is absent from clean data, or spread over the
    /// classes like any ordinary word.
    pub natural_share: f64,
    /// See `natural_share` (3).
    pub natural_min_count: usize,
    /// Anomaly index above which a class is reported (2.0, Neural Cleanse's rule). The finding
    /// (B008) is `high` only when the class's inverted tokens also flip at least
    /// `high_flip_rate`; otherwise `medium`.
    pub anomaly_threshold: f64,
    /// `high` (B015) when a candidate's strength (a single token, a user candidate or a greedy
    /// phrase; the smaller of its flip rate in excess of the base's and its dominance, see
    /// [`CandidateResult::strength`]) reaches this (0.8), measured on at least
    /// `min_flip_inputs` inputs and, in the vocabulary search, with a robust z of at least
    /// `high_z` across candidates (a probe of listed candidates has no population for it).
    /// A backdoor that took flips at least its ASR when its trigger is found, and keeps doing
    /// so when the input's own evidence is doubled; junk phrases that flip clean models lose
    /// much of their effect then. Calibration on the classifier zoo: in sample (the models of
    /// tests/scan_classifier.rs) the clean models' score was 0.29 and 0.61, the backdoored
    /// models' (attack taken) 0.86–0.92; out of sample (`examples/zoo_classifier.rs
    /// --per-kind 2 --rates 0.1,0.15 --seed 21`: 4 clean, 10 backdoored) clean 0.31–0.73,
    /// backdoored 0.76–1.00 (9 of 10 at or above 0.8). On flip rate alone the clean models
    /// reached 0.86 out of sample and the backdoored ones 0.89 at the least.
    pub high_flip_rate: f64,
    /// Robust z-score (median/MAD across all evaluated candidates) the top candidate needs for
    /// `high` (3.0).
    pub high_z: f64,
    /// `medium` (B016) for a candidate at or above this flip rate (0.75: above the 0.70 that
    /// greedy phrases of clean zoo models reached).
    pub medium_flip_rate: f64,
    /// Candidates listed in the summary and the chart (15).
    pub report_top: usize,
    /// A base is compared only when it classifies the clean pool at least this well (0.6).
    pub base_min_accuracy: f64,
    /// Excess flip rate below which a candidate counts as shared with the base (0.2).
    pub base_shared_margin: f64,
    /// STRIP copies per input (5, as OpenBackdoor).
    pub strip_copies: usize,
    /// Fraction of words swapped per STRIP copy (0.5, as OpenBackdoor).
    pub strip_swap: f64,
    /// False-rejection rate the STRIP and Mahalanobis thresholds are set at on clean inputs
    /// (0.01).
    pub target_fpr: f64,
    /// B007 (an input detector flags far more rows than its rate allows) needs a binomial
    /// p-value below this (1e-6).
    pub excess_alpha: f64,
    /// Per-row findings listed one by one per check (50).
    pub max_example_findings: usize,
    /// Points drawn per cluster scatter chart (1500).
    pub max_scatter_points: usize,
    /// Put every training row's score of each data-level detector in the summary
    /// (`inputs.{ac,spectral,mahalanobis,strip}_row_scores`, in the order of the training rows) (false: they are as
    /// long as the training set). AC: signed distance towards the small cluster; spectral:
    /// deviation on the top singular direction; Mahalanobis: max standardised distance over
    /// layers (higher is more suspicious for these three); STRIP: entropy (lower is).
    pub row_scores: bool,
    /// Features Activation Clustering and spectral signatures run on (`middle`, see
    /// [`DetectorFeatures`]).
    pub detector_features: DetectorFeatures,
}

/// The per-row features of Activation Clustering and spectral signatures.
///
/// The default is the middle layer: on the classifier zoo (sentence-trigger model, 10%
/// poisoned, tests/scan_classifier.rs) the AUROC of poisoned against clean rows of the target
/// class was 0.43 (AC) and 0.59 (spectral) on the last layer's `[CLS]` state, which
/// fine-tuning collapses onto the label, against 0.99 and 0.95 on the mean-pooled states of
/// the middle layer, where the poisoned rows still look like the class they came from.
/// Known cost: on the out-of-sample zoo (`--seed 21`, training rows scanned) one of 4 clean
/// models got a spectral-signatures class split (B003) on the middle layer and none on `cls`;
/// such a split is reported `high` only when a trigger the search reports flips inputs into
/// that class (otherwise `medium`), and the spectral calibration on these features needs more
/// work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorFeatures {
    /// The last layer's first-token state (what the head reads).
    Cls,
    /// The mean-pooled states of the middle layer (`layers / 2`, counting the embedding
    /// output as layer 0).
    Middle,
    /// The mean-pooled states of layer `l` (0 = the embedding output).
    Layer(usize),
}

impl Default for ClassifierScanConfig {
    fn default() -> Self {
        ClassifierScanConfig {
            max_len: 128,
            batch_size: 32,
            seed: 0x5eed,
            max_clean: 2000,
            max_train: 20000,
            flip_inputs_per_class: 32,
            min_flip_inputs: 16,
            grad_inputs: 32,
            grad_top_k: 40,
            exhaustive_vocab: 1000,
            dominance_top: 24,
            drift_top_k: 20,
            max_candidates: 600,
            ascii_subwords: false,
            phrase_seeds: 3,
            phrase_pool: 10,
            max_phrase_len: 4,
            score_phrases: true,
            phrase_min_gain: 0.05,
            invert: true,
            invert_positions: 2,
            invert_steps: 40,
            invert_lr: 0.3,
            invert_inputs: 32,
            anomaly_threshold: 2.0,
            natural_share: 0.8,
            natural_min_count: 3,
            high_flip_rate: 0.8,
            high_z: 3.0,
            medium_flip_rate: 0.75,
            report_top: 15,
            base_min_accuracy: 0.6,
            base_shared_margin: 0.2,
            strip_copies: 5,
            strip_swap: 0.5,
            target_fpr: 0.01,
            excess_alpha: 1e-6,
            max_example_findings: 50,
            max_scatter_points: 1500,
            row_scores: false,
            detector_features: DetectorFeatures::Middle,
        }
    }
}

impl ClassifierScanConfig {
    fn validate(&self) -> Result<()> {
        let bad = |k: &str, m: &str| Err(MlError::Config(format!("classifier scan: `{k}` {m}")));
        if self.max_len < 4 {
            return bad("max_len", "must be at least 4");
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return bad("batch_size", "must be in 1..=4096");
        }
        if self.flip_inputs_per_class == 0 || self.flip_inputs_per_class > 4096 {
            return bad("flip_inputs_per_class", "must be in 1..=4096");
        }
        if self.max_candidates == 0 || self.max_candidates > 100_000 {
            return bad("max_candidates", "must be in 1..=100000");
        }
        if self.max_phrase_len == 0 || self.max_phrase_len > 16 {
            return bad("max_phrase_len", "must be in 1..=16");
        }
        if self.invert_positions == 0 || self.invert_positions > 16 || self.invert_steps > 10_000 {
            return bad(
                "invert_positions",
                "must be in 1..=16 (and invert_steps <= 10000)",
            );
        }
        for (k, v) in [
            ("high_flip_rate", self.high_flip_rate),
            ("medium_flip_rate", self.medium_flip_rate),
            ("strip_swap", self.strip_swap),
            ("base_min_accuracy", self.base_min_accuracy),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(k, "must be in [0, 1]");
            }
        }
        if !(self.target_fpr > 0.0 && self.target_fpr < 0.5) {
            return bad("target_fpr", "must be in (0, 0.5)");
        }
        if !(self.excess_alpha > 0.0 && self.excess_alpha < 1.0) {
            return bad("excess_alpha", "must be in (0, 1)");
        }
        if !(self.invert_lr.is_finite() && self.invert_lr > 0.0) {
            return bad("invert_lr", "must be positive");
        }
        if self.strip_copies == 0 || self.strip_copies > 64 {
            return bad("strip_copies", "must be in 1..=64");
        }
        Ok(())
    }
}

/// What the base comparison did.
#[derive(Clone, Debug, Serialize)]
pub struct BaseComparison {
    /// Whether flip rates were compared with the base.
    pub compared: bool,
    /// Why not, or on what.
    pub note: String,
    /// The base's accuracy on the clean pool (when it is a classifier with as many classes).
    pub accuracy: Option<f64>,
}

/// The result of the trigger search.
#[derive(Clone, Debug, Serialize)]
pub struct TriggerScan {
    /// Whether the vocabulary was searched (`scan backdoor`) rather than only the given
    /// candidates probed (`scan probe`). The `high_z` rule needs the searched population: a
    /// handful of listed candidates has no spread to be an outlier of.
    pub searched: bool,
    /// Classes of the model.
    pub classes: usize,
    /// The model-level suspicion score: the highest strength
    /// ([`CandidateResult::strength`]: the smaller of the excess flip rate and the dominance,
    /// in `[0, 1]`; larger is more suspicious) of a candidate that is not natural and was
    /// measured on at least `min_flip_inputs` inputs: single tokens, user candidates and (with
    /// [`ClassifierScanConfig::score_phrases`]) greedy phrases.
    pub model_score: f64,
    /// The highest excess flip rate of any candidate that is not natural, phrases included.
    pub phrase_score: f64,
    /// The highest excess flip rate of a single token that is not natural.
    pub single_score: f64,
    /// Every evaluated candidate, ranked: candidates that are not natural first, by excess
    /// flip rate, then flip rate, then mean target probability.
    pub candidates: Vec<CandidateResult>,
    /// Clean inputs in the pool.
    pub pool_inputs: usize,
    /// The model's accuracy on the pool.
    pub pool_accuracy: f64,
    /// Per class soft-trigger inversions (3 classes or more).
    pub inversions: Vec<Inversion>,
    /// The anomaly index over the inversion efforts (`None` when inversion did not run).
    pub anomaly: Option<AnomalyIndex>,
    /// Embedding rows that moved against the base: `(token, L2 change)`.
    pub drift: Vec<(String, f64)>,
    /// The base comparison.
    pub base: BaseComparison,
    /// Problems that limited the scan (each also a B021 finding).
    pub notes: Vec<String>,
}

impl TriggerScan {
    /// The top candidate (rank 1).
    pub fn top(&self) -> Option<&CandidateResult> {
        self.candidates.first()
    }

    /// The 1-based rank of the first candidate sharing a token id with `ids`, if any.
    pub fn rank_of_any(&self, ids: &[u32]) -> Option<usize> {
        self.candidates
            .iter()
            .find(|c| c.ids.iter().any(|i| ids.contains(i)))
            .map(|c| c.rank)
    }
}

fn scan_err(what: &str, e: ScanError) -> MlError {
    MlError::Config(format!("{what}: {e}"))
}

fn check_labels(rows: &[LabeledText], classes: usize) -> Result<()> {
    for r in rows {
        if r.label >= classes {
            let file = r.location.file.clone().unwrap_or_default();
            let line = r.location.line.unwrap_or(0);
            return Err(MlError::Data {
                source_name: format!("{file}:{line}"),
                msg: format!(
                    "label {} is out of range: the model has {classes} classes",
                    r.label
                ),
            });
        }
    }
    Ok(())
}

/// Whether two models tokenize identically (same vocabulary map): then candidate ids carry
/// over unchanged.
fn same_vocab(a: &ScanModel, b: &ScanModel) -> bool {
    a.tokenizer.inner().get_vocab(true) == b.tokenizer.inner().get_vocab(true)
}

/// Evaluate `ids_list` on the base: their ids when the vocabularies agree, else their text
/// re-tokenized by the base (`None` where that gives nothing).
fn base_flips(
    model: &ScanModel,
    base: &ScanModel,
    base_pool: &Pool,
    ids_list: &[Vec<u32>],
    texts: &[String],
    cfg: &ClassifierScanConfig,
) -> Result<Vec<Option<Flip>>> {
    let same = same_vocab(model, base);
    let mut mapped: Vec<Vec<u32>> = Vec::with_capacity(ids_list.len());
    for (ids, text) in ids_list.iter().zip(texts) {
        if same {
            mapped.push(ids.clone());
        } else {
            mapped.push(trigger::user_ids(base, text)?);
        }
    }
    let keep: Vec<usize> = (0..mapped.len())
        .filter(|&i| !mapped[i].is_empty())
        .collect();
    let todo: Vec<Vec<u32>> = keep.iter().map(|&i| mapped[i].clone()).collect();
    let flips = trigger::flip_eval(base, base_pool, &todo, cfg, None)?;
    let mut out = vec![None; ids_list.len()];
    for (k, f) in keep.into_iter().zip(flips) {
        out[k] = Some(f);
    }
    Ok(out)
}

/// Set up the base comparison: a base that is a classifier with as many classes and classifies
/// the pool at least `base_min_accuracy` well.
fn base_pool(
    base: Option<&ScanModel>,
    pool: &Pool,
    classes: usize,
    cfg: &ClassifierScanConfig,
) -> Result<(Option<Pool>, BaseComparison)> {
    let Some(b) = base else {
        return Ok((
            None,
            BaseComparison {
                compared: false,
                note: "no base given".into(),
                accuracy: None,
            },
        ));
    };
    match b.task() {
        Task::Classify(n) if n == classes => {}
        t => {
            return Ok((
                None,
                BaseComparison {
                    compared: false,
                    note: format!(
                        "the base {} is {t:?}, not a classifier with {classes} classes: flip rates are not compared",
                        b.path.display()
                    ),
                    accuracy: None,
                },
            ))
        }
    }
    let bp = Pool::from_texts(b, pool.texts.clone(), pool.labels.clone(), classes, cfg)?;
    let acc = accuracy(&bp.pred, &bp.labels);
    if acc < cfg.base_min_accuracy {
        return Ok((
            None,
            BaseComparison {
                compared: false,
                note: format!(
                    "the base classifies the clean inputs with accuracy {acc:.2} (below {}): it does not do this task, so its flip rates mean nothing",
                    cfg.base_min_accuracy
                ),
                accuracy: Some(acc),
            },
        ));
    }
    Ok((
        Some(bp),
        BaseComparison {
            compared: true,
            note: format!("flip rates compared with the base {}", b.path.display()),
            accuracy: Some(acc),
        },
    ))
}

fn accuracy(pred: &[usize], labels: &[usize]) -> f64 {
    pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / pred.len().max(1) as f64
}

/// The trigger search: candidates (user, first-order, drift, inversion), their exact flip
/// rates on clean inputs, phrase extension, the base comparison, ranking and the model score.
/// `candidates` are user candidates (text), evaluated first.
pub fn trigger_scan(
    model: &ScanModel,
    base: Option<&ScanModel>,
    clean: &[LabeledText],
    candidates: &[String],
    cfg: &ClassifierScanConfig,
    progress: &dyn Progress,
) -> Result<TriggerScan> {
    trigger_scan_inner(model, base, clean, candidates, true, cfg, progress)
}

#[allow(clippy::too_many_arguments)]
fn trigger_scan_inner(
    model: &ScanModel,
    base: Option<&ScanModel>,
    clean: &[LabeledText],
    user: &[String],
    search: bool,
    cfg: &ClassifierScanConfig,
    progress: &dyn Progress,
) -> Result<TriggerScan> {
    cfg.validate()?;
    let classes = classes_of(model)?;
    let clean = &clean[..clean.len().min(cfg.max_clean)];
    check_labels(clean, classes)?;
    let mut notes = Vec::new();
    let pool = Pool::build(model, clean, classes, cfg)?;
    if pool.rows.is_empty() {
        return Err(MlError::Config(
            "classifier scan: no clean inputs to insert candidates into".into(),
        ));
    }
    for t in 0..classes {
        let n = pool.eligible(t).len();
        if n < cfg.min_flip_inputs {
            notes.push(format!(
                "class {t}: only {n} clean inputs of other classes (not predicted {t}) to measure flips on, fewer than {}: no high or medium finding can target it",
                cfg.min_flip_inputs
            ));
        }
    }
    let timing = std::env::var_os("TUNEGATE_SCAN_TIMING").is_some();
    let t0 = std::time::Instant::now();
    let clean_texts: Vec<&str> = clean.iter().map(|r| r.text.as_str()).collect();
    let clean_labels: Vec<usize> = clean.iter().map(|r| r.label).collect();
    let stats = trigger::CleanStats::build(
        &encode(model, &clean_texts, cfg.max_len)?,
        &clean_labels,
        classes,
    );
    let allowed = trigger::allowed_tokens(model, cfg.ascii_subwords);
    // per target class: the allowed tokens that are not natural features of it
    let allowed_t: Vec<Vec<u32>> = (0..classes)
        .map(|t| {
            allowed
                .iter()
                .copied()
                .filter(|&id| !is_natural(&stats, &[id], t, cfg))
                .collect()
        })
        .collect();
    let mut cands = Candidates::default();
    for text in user {
        let ids = trigger::user_ids(model, text)?;
        if ids.is_empty() {
            notes.push(format!(
                "candidate {text:?} has no tokens under the model's tokenizer: skipped"
            ));
            continue;
        }
        if ids.len() > cfg.max_len.saturating_sub(4) {
            notes.push(format!(
                "candidate {text:?} is longer than max_len allows: skipped"
            ));
            continue;
        }
        if !cands.add(ids, Source::User, Some(text.clone()), cfg.max_candidates) {
            notes.push(format!(
                "more than {} candidates: the rest of the user's list was not evaluated",
                cfg.max_candidates
            ));
            break;
        }
    }
    let mut inversions = Vec::new();
    let mut drift = Vec::new();
    if search {
        progress.start("first-order", classes as u64);
        for (_, ids) in trigger::gradient_candidates(model, &pool, &allowed_t, cfg)? {
            for id in ids {
                cands.add(vec![id], Source::Gradient, None, cfg.max_candidates);
            }
            progress.advance(1);
        }
        progress.finish();
        if timing {
            eprintln!("timing: pool+gradient {:.1}s", t0.elapsed().as_secs_f64());
        }
        if let Some(b) = base {
            for (id, d) in trigger::drift_candidates(model, b, &allowed, cfg.drift_top_k)? {
                drift.push((model.tokenizer.token(id), d));
                cands.add(vec![id], Source::Drift, None, cfg.max_candidates);
            }
        }
        if cfg.invert {
            progress.start("inversion", classes as u64);
            for (t, allowed_c) in allowed_t.iter().enumerate() {
                if let Some(inv) = trigger::invert_class(model, &pool, allowed_c, t, cfg)? {
                    for &id in &inv.top_ids {
                        cands.add(vec![id], Source::Inversion, None, cfg.max_candidates);
                    }
                    cands.add(inv.ids.clone(), Source::Inversion, None, cfg.max_candidates);
                    inversions.push(inv);
                } else {
                    notes.push(format!(
                        "class {t}: no clean input of another class to optimise a trigger on"
                    ));
                }
                progress.advance(1);
            }
            progress.finish();
        }
        let mut every: Vec<u32> = allowed_t.iter().flatten().copied().collect();
        every.sort_unstable();
        every.dedup();
        if every.len() <= cfg.exhaustive_vocab {
            for id in every {
                cands.add(vec![id], Source::Vocabulary, None, cfg.max_candidates);
            }
        }
    }
    if timing {
        eprintln!("timing: +inversion {:.1}s", t0.elapsed().as_secs_f64());
    }
    let ids_list: Vec<Vec<u32>> = cands.items.iter().map(|c| c.0.clone()).collect();
    progress.start("flip-scan", ids_list.len() as u64);
    let flips = trigger::flip_eval(model, &pool, &ids_list, cfg, Some(progress))?;
    progress.finish();
    if timing {
        eprintln!(
            "timing: +flip scan of {} {:.1}s",
            ids_list.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    let mut evaluated: Vec<Evaluated> = cands
        .items
        .into_iter()
        .zip(flips)
        .map(|((ids, src, text), f)| (ids, src.into_iter().collect(), text, f))
        .collect();
    if search && cfg.phrase_seeds > 0 && cfg.max_phrase_len >= 2 {
        // phrases grow from tokens that are not natural features of the class they flip to
        let singles: Vec<(Vec<u32>, Flip)> = evaluated
            .iter()
            .filter(|e| e.0.len() == 1 && !is_natural(&stats, &e.0, e.3.best(), cfg))
            .map(|e| (e.0.clone(), e.3.clone()))
            .collect();
        for (ids, f) in trigger::extend_phrases(model, &pool, &singles, cfg)? {
            if !evaluated.iter().any(|e| e.0 == ids) {
                evaluated.push((ids, vec![Source::Phrase], None, f));
            }
        }
    }
    // dominance of the best candidates only (the doubled inputs cost twice a flip scan)
    let mut by_rate: Vec<usize> = (0..evaluated.len()).collect();
    by_rate.sort_by(|&a, &b| {
        let (fa, fb) = (&evaluated[a].3, &evaluated[b].3);
        fb.rates[fb.best()].total_cmp(&fa.rates[fa.best()])
    });
    by_rate.truncate(cfg.dominance_top);
    let mut dom: Vec<Option<Flip>> = vec![None; evaluated.len()];
    if !by_rate.is_empty() {
        let doubled: Vec<String> = pool.texts.iter().map(|t| format!("{t} {t}")).collect();
        let pool2 = Pool::from_texts(model, doubled, pool.labels.clone(), classes, cfg)?;
        let ids_top: Vec<Vec<u32>> = by_rate.iter().map(|&i| evaluated[i].0.clone()).collect();
        for (i, f) in by_rate
            .iter()
            .zip(trigger::flip_eval(model, &pool2, &ids_top, cfg, None)?)
        {
            dom[*i] = Some(f);
        }
    }
    if timing {
        eprintln!("timing: +dominance {:.1}s", t0.elapsed().as_secs_f64());
    }
    let (bpool, base_cmp) = base_pool(base, &pool, classes, cfg)?;
    if !base_cmp.compared && base.is_some() {
        notes.push(base_cmp.note.clone());
    }
    let texts: Vec<String> = evaluated
        .iter()
        .map(|e| {
            e.2.clone()
                .unwrap_or_else(|| trigger::render(model, &e.0).0)
        })
        .collect();
    let base_f = match (&bpool, base) {
        (Some(bp), Some(b)) => {
            let ids: Vec<Vec<u32>> = evaluated.iter().map(|e| e.0.clone()).collect();
            base_flips(model, b, bp, &ids, &texts, cfg)?
        }
        _ => vec![None; evaluated.len()],
    };
    let mut results: Vec<CandidateResult> = evaluated
        .into_iter()
        .zip(texts)
        .zip(base_f)
        .zip(dom)
        .map(|((((ids, sources, _, f), text), bf), d)| {
            let mut r = make_result(model, ids, sources, text, &f, bf.as_ref(), &stats, cfg);
            r.dominance = d.map(|d| d.rates[r.target]);
            r
        })
        .collect();
    if timing {
        eprintln!("timing: +phrases/base {:.1}s", t0.elapsed().as_secs_f64());
    }
    // robust z of the excess across the candidates that are not natural
    let ex: Vec<f64> = results
        .iter()
        .filter(|r| !r.natural)
        .map(|r| r.excess)
        .collect();
    if let Ok(r) = Robust::of(&ex) {
        for c in results.iter_mut() {
            c.z = r.z(c.excess);
        }
    }
    results.sort_by(|a, b| {
        (!b.natural, b.excess, b.flip_rate, b.mean_target_prob)
            .partial_cmp(&(!a.natural, a.excess, a.flip_rate, a.mean_target_prob))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (i, r) in results.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    let model_score = results
        .iter()
        .filter(|r| TriggerScan::scored(r, cfg) && !r.natural && r.inputs >= cfg.min_flip_inputs)
        .filter_map(CandidateResult::strength)
        .fold(0.0, f64::max);
    let single_score = results
        .iter()
        .filter(|r| r.ids.len() == 1 && !r.natural && r.inputs >= cfg.min_flip_inputs)
        .map(|r| r.excess)
        .fold(0.0, f64::max);
    let phrase_score = results
        .iter()
        .filter(|r| !r.natural && r.inputs >= cfg.min_flip_inputs)
        .map(|r| r.excess)
        .fold(0.0, f64::max);
    let anomaly = if inversions.len() >= 3 && classes >= 3 {
        let norms: Vec<f64> = inversions.iter().map(|i| i.loss.max(0.0)).collect();
        Some(
            anomaly_index(&norms, cfg.anomaly_threshold)
                .map_err(|e| scan_err("anomaly index", e))?,
        )
    } else if cfg.invert && search && classes < 3 {
        Some(AnomalyIndex::NotApplicable {
            classes,
            reason: format!(
                "{classes} classes: a median/MAD outlier rule needs at least 3 (binary tasks rely on the token flip scan)"
            ),
        })
    } else {
        None
    };
    Ok(TriggerScan {
        searched: search,
        classes,
        model_score,
        single_score,
        phrase_score,
        pool_inputs: pool.rows.len(),
        pool_accuracy: accuracy(&pool.pred, &pool.labels),
        candidates: results,
        inversions,
        anomaly,
        drift,
        base: base_cmp,
        notes,
    })
}

/// An evaluated candidate: ids, sources, the user's spelling and its flips.
type Evaluated = (Vec<u32>, Vec<Source>, Option<String>, Flip);

/// One ranked entry: the target is the class with the largest excess flip rate over the base
/// (the largest flip rate without a base).
#[allow(clippy::too_many_arguments)]
fn make_result(
    model: &ScanModel,
    ids: Vec<u32>,
    sources: Vec<Source>,
    text: String,
    f: &Flip,
    bf: Option<&Flip>,
    stats: &trigger::CleanStats,
    cfg: &ClassifierScanConfig,
) -> CandidateResult {
    let k = f.rates.len();
    let ex = |c: usize| f.rates[c] - bf.map_or(0.0, |b| b.rates[c]);
    let mut t = 0;
    for c in 1..k {
        let better = (ex(c), f.rates[c], f.mean_prob[c]) > (ex(t), f.rates[t], f.mean_prob[t]);
        if better {
            t = c;
        }
    }
    let (_, tokens) = trigger::render(model, &ids);
    let (clean_count, clean_share) = stats.evidence(&ids, t);
    CandidateResult {
        dominance: None,
        natural: is_natural(stats, &ids, t, cfg),
        clean_count,
        clean_share,
        rank: 0,
        candidate: text,
        tokens,
        ids,
        sources,
        target: t,
        flip_rate: f.rates[t],
        inputs: f.n[t],
        mean_target_prob: f.mean_prob[t],
        flip_rates: f.rates.clone(),
        base_flip_rate: bf.map(|b| b.rates[t]),
        excess: ex(t),
        z: 0.0,
    }
}

/// Whether a token of `ids` is a natural feature of class `t` in the clean reference (see
/// [`ClassifierScanConfig::natural_share`]).
fn is_natural(
    stats: &trigger::CleanStats,
    ids: &[u32],
    t: usize,
    cfg: &ClassifierScanConfig,
) -> bool {
    let (n, share) = stats.evidence(ids, t);
    let prior = stats.prior.get(t).copied().unwrap_or(0.0);
    n >= cfg.natural_min_count && share >= cfg.natural_share.max(prior + 0.5 * (1.0 - prior))
}

fn class_name(c: usize) -> String {
    format!("{c}")
}

fn cand_json(c: &CandidateResult) -> Value {
    json!({
        "rank": c.rank,
        "candidate": c.candidate,
        "tokens": c.tokens,
        "sources": c.sources,
        "target": c.target,
        "flip_rate": c.flip_rate,
        "inputs": c.inputs,
        "mean_target_prob": c.mean_target_prob,
        "base_flip_rate": c.base_flip_rate,
        "excess": c.excess,
        "z": c.z,
        "natural": c.natural,
        "dominance": c.dominance,
        "clean_count": c.clean_count,
        "clean_share": c.clean_share,
    })
}

impl TriggerScan {
    /// The decision rule and thresholds, as recorded in the summary.
    fn calibration(cfg: &ClassifierScanConfig) -> Value {
        json!({
            "high": format!(
                "best candidate (single token, user candidate or, with score_phrases, greedy phrase) with min(excess flip rate, dominance) >= {} on >= {} inputs and robust z >= {}",
                cfg.high_flip_rate, cfg.min_flip_inputs, cfg.high_z
            ),
            "medium": format!("any candidate with excess flip rate >= {}", cfg.medium_flip_rate),
            "high_flip_rate": cfg.high_flip_rate,
            "high_z": cfg.high_z,
            "medium_flip_rate": cfg.medium_flip_rate,
            "min_flip_inputs": cfg.min_flip_inputs,
            "source": "classifier zoo (crate::zoo::classifier): clean LoRA fine-tunes topped out below the high threshold; see ClassifierScanConfig::high_flip_rate",
        })
    }

    /// Whether candidate `c` may set the model score and back a `high` finding: a single
    /// token, a user candidate, or (with `score_phrases`) a phrase.
    fn scored(c: &CandidateResult, cfg: &ClassifierScanConfig) -> bool {
        c.ids.len() == 1 || c.sources.contains(&Source::User) || cfg.score_phrases
    }

    /// Whether candidate `c` is reported at `medium` or above (B015 or B016).
    fn reported(&self, c: &CandidateResult, cfg: &ClassifierScanConfig) -> bool {
        self.is_high(c, cfg)
            || (!c.natural && c.excess >= cfg.medium_flip_rate && c.inputs >= cfg.min_flip_inputs)
    }

    /// Whether candidate `c` meets the `high` rule.
    fn is_high(&self, c: &CandidateResult, cfg: &ClassifierScanConfig) -> bool {
        Self::scored(c, cfg)
            && !c.natural
            && c.strength().is_some_and(|s| s >= cfg.high_flip_rate)
            && c.inputs >= cfg.min_flip_inputs
            && (!self.searched || c.z >= cfg.high_z)
    }

    /// Findings, charts and summary of the trigger search.
    pub fn outcome(&self, cfg: &ClassifierScanConfig) -> ScanOutcome {
        let mut findings = Vec::new();
        let mut listed = 0usize;
        for c in &self.candidates {
            let ev = cand_json(c);
            if self.is_high(c, cfg) {
                findings.push(
                    Finding::new(
                        &TRIGGER_FLIP,
                        format!(
                            "candidate trigger {:?} flips {:.0}% of {} clean inputs of other classes to class '{}'{} (robust z {:.1} across {} candidates): a likely backdoor",
                            c.candidate,
                            100.0 * c.flip_rate,
                            c.inputs,
                            class_name(c.target),
                            c.base_flip_rate.map_or(String::new(), |b| format!(
                                " (the base: {:.0}%)",
                                100.0 * b
                            )),
                            c.z,
                            self.candidates.len()
                        ),
                        Location::default(),
                    )
                    .evidence(ev),
                );
                listed += 1;
            } else if !c.natural
                && c.excess >= cfg.medium_flip_rate
                && c.inputs >= cfg.min_flip_inputs
            {
                if listed < cfg.report_top {
                    findings.push(
                        Finding::new(
                            &TRIGGER_CANDIDATE,
                            format!(
                                "candidate trigger {:?} flips {:.0}% of {} clean inputs of other classes to class '{}'",
                                c.candidate,
                                100.0 * c.flip_rate,
                                c.inputs,
                                class_name(c.target)
                            ),
                            Location::default(),
                        )
                        .evidence(ev),
                    );
                }
                listed += 1;
            }
            if let Some(b) = c.base_flip_rate {
                if c.sources.contains(&Source::User)
                    && c.flip_rate >= cfg.medium_flip_rate
                    && c.excess < cfg.base_shared_margin
                {
                    findings.push(
                        Finding::new(
                            &TRIGGER_SHARED_WITH_BASE,
                            format!(
                                "candidate {:?} flips {:.0}% of inputs to class '{}', but the base flips {:.0}%: not the fine-tune's doing",
                                c.candidate,
                                100.0 * c.flip_rate,
                                class_name(c.target),
                                100.0 * b
                            ),
                            Location::default(),
                        )
                        .evidence(cand_json(c)),
                    );
                }
            }
        }
        if !self.drift.is_empty() {
            findings.push(
                Finding::new(
                    &EMBEDDING_DRIFT,
                    format!(
                        "{} token embedding rows moved against the base; most: {}",
                        self.drift.len(),
                        self.drift
                            .iter()
                            .take(5)
                            .map(|(t, d)| format!("{t:?} ({d:.3})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Location::default(),
                )
                .evidence(json!({"moved": self.drift.iter().map(|(t, d)| json!({"token": t, "l2": d})).collect::<Vec<_>>()})),
            );
        }
        for inv in &self.inversions {
            findings.push(
                Finding::new(
                    &INVERTED_TRIGGER,
                    format!(
                        "class '{}': soft trigger effort {:.3} (cross-entropy), nearest tokens {:?}",
                        class_name(inv.class),
                        inv.loss,
                        inv.tokens
                    ),
                    Location::default(),
                )
                .evidence(serde_json::to_value(inv).unwrap_or(Value::Null)),
            );
        }
        if let Some(ai) = &self.anomaly {
            for mut f in report::anomaly_findings(ai, &class_name) {
                if f.id == report::TRIGGER_ANOMALY.id {
                    // high only when the class's inverted tokens really flip inputs
                    let class = f.evidence["class"].as_str().unwrap_or("").to_string();
                    let corroborated = self.candidates.iter().any(|c| {
                        class_name(c.target) == class
                            && c.sources.contains(&Source::Inversion)
                            && self.is_high(c, cfg)
                    });
                    if !corroborated {
                        f = f.severity(Severity::Medium);
                        f.message.push_str(
                            " (medium: its inverted tokens do not flip inputs at the high rate)",
                        );
                    }
                }
                findings.push(f);
            }
        }
        for n in &self.notes {
            findings.push(Finding::new(&SCAN_LIMITED, n.clone(), Location::default()));
        }
        let top: Vec<Value> = self
            .candidates
            .iter()
            .take(cfg.report_top)
            .map(cand_json)
            .collect();
        findings.push(
            Finding::new(
                &TRIGGER_SUMMARY,
                format!(
                    "trigger search: {} candidates on {} clean inputs (accuracy {:.2}); model score {:.3}; top: {}",
                    self.candidates.len(),
                    self.pool_inputs,
                    self.pool_accuracy,
                    self.model_score,
                    self.top().map_or("none".to_string(), |c| format!(
                        "{:?} -> class '{}' at {:.0}%",
                        c.candidate,
                        class_name(c.target),
                        100.0 * c.flip_rate
                    ))
                ),
                Location::default(),
            )
            .evidence(json!({"model_score": self.model_score, "top": top})),
        );
        let mut charts = Vec::new();
        let shown: Vec<&CandidateResult> = self.candidates.iter().take(cfg.report_top).collect();
        if !shown.is_empty() {
            charts.push(Chart {
                id: "trigger-flip-rates".into(),
                title: "Top trigger candidates: share of clean inputs of other classes flipped to the target".into(),
                kind: ChartKind::Bar,
                labels: shown
                    .iter()
                    .map(|c| format!("{} → {}", c.candidate, class_name(c.target)))
                    .collect(),
                values: shown.iter().map(|c| c.flip_rate).collect(),
                unit: "flip rate".into(),
            });
        }
        if let Some(ai) = &self.anomaly {
            charts.extend(report::anomaly_chart(ai, &class_name));
        }
        let summary = json!({
            "classes": self.classes,
            "model_score": self.model_score,
            "phrase_score": self.phrase_score,
            "single_score": self.single_score,
            "score_rule": if cfg.score_phrases { "highest min(excess flip rate, dominance) of a token or greedy phrase that is not natural, measured on at least min_flip_inputs inputs" } else { "highest min(excess flip rate, dominance) of a single token that is not natural, measured on at least min_flip_inputs inputs" },
            "pool_inputs": self.pool_inputs,
            "pool_accuracy": self.pool_accuracy,
            "candidates_evaluated": self.candidates.len(),
            "candidates": self.candidates.iter().take(cfg.report_top.max(10)).map(|c| {
                let mut v = cand_json(c);
                v["ids"] = json!(c.ids);
                v
            }).collect::<Vec<_>>(),
            "calibration": Self::calibration(cfg),
            "inversions": self.inversions,
            "anomaly_index": self.anomaly,
            "drift": self.drift,
            "base": self.base,
            "notes": self.notes,
        });
        ScanOutcome {
            findings,
            charts,
            summary,
        }
    }
}

/// Features of labelled rows: the forward pass with hidden states, and the labels.
fn features(
    model: &ScanModel,
    rows: &[LabeledText],
    cfg: &ClassifierScanConfig,
    step: &str,
    progress: &dyn Progress,
) -> Result<forward::Fwd> {
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let ids: Vec<Vec<u32>> = encode(model, &texts, cfg.max_len)?
        .into_iter()
        .map(|r| r.ids)
        .collect();
    progress.start(step, ids.len() as u64);
    let f = run(model, &ids, cfg.batch_size, true, Some(progress))?;
    progress.finish();
    Ok(f)
}

fn feats<'a>(what: &str, data: &'a [f32], rows: usize, cols: usize) -> Result<Features<'a>> {
    Features::new(what, data, rows, cols).map_err(|e| scan_err(what, e))
}

/// Whether a detector error means "not enough data" (reported, the scan goes on) rather than a
/// broken input.
fn soft_error(e: &ScanError) -> bool {
    matches!(e, ScanError::TooFewSamples(_) | ScanError::Degenerate(_))
}

/// DAN-style Mahalanobis scores over the mean-pooled states of every layer: per layer, class
/// means and a shared shrunk covariance fitted on half the clean rows; each row's distance to
/// its predicted class is standardised by the other half (dev) per layer, and the row's score is
/// the maximum over layers. The threshold is the split-conformal quantile of the dev scores.
fn mahalanobis_layers(
    clean: &forward::Fwd,
    clean_labels: &[usize],
    test: &forward::Fwd,
    target_fpr: f64,
) -> std::result::Result<ExampleScores, ScanError> {
    let n = clean.rows();
    let h = clean.hidden;
    let fit: Vec<usize> = (0..n).step_by(2).collect();
    let dev: Vec<usize> = (1..n).step_by(2).collect();
    if fit.len() < 4 || dev.len() < 4 {
        return Err(ScanError::TooFewSamples(format!(
            "Mahalanobis needs at least 8 clean rows, got {n}"
        )));
    }
    let gather = |data: &[f32], idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| data[i * h..(i + 1) * h].iter().copied())
            .collect()
    };
    let fit_labels: Vec<usize> = fit.iter().map(|&i| clean_labels[i]).collect();
    let dev_pred: Vec<usize> = dev.iter().map(|&i| clean.argmax(i)).collect();
    let test_pred: Vec<usize> = (0..test.rows()).map(|i| test.argmax(i)).collect();
    let covered = |p: &[usize]| p.iter().all(|c| fit_labels.contains(c));
    let mut dev_agg = vec![f64::NEG_INFINITY; dev.len()];
    let mut test_agg = vec![f64::NEG_INFINITY; test.rows()];
    for (l, layer) in clean.layers.iter().enumerate() {
        let fd = gather(layer, &fit);
        let dd = gather(layer, &dev);
        let m = detectors::MahalanobisModel::fit(
            Features::new("fit", &fd, fit.len(), h)?,
            &fit_labels,
        )?;
        let dl = covered(&dev_pred).then_some(dev_pred.as_slice());
        let tl = covered(&test_pred).then_some(test_pred.as_slice());
        let ds = m.scores(Features::new("dev", &dd, dev.len(), h)?, dl)?;
        let ts = m.scores(Features::new("test", &test.layers[l], test.rows(), h)?, tl)?;
        let mean = ds.iter().sum::<f64>() / ds.len() as f64;
        let sd = (ds.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / ds.len() as f64)
            .sqrt()
            .max(1e-9);
        for (a, v) in dev_agg.iter_mut().zip(&ds) {
            *a = a.max((v - mean) / sd);
        }
        for (a, v) in test_agg.iter_mut().zip(&ts) {
            *a = a.max((v - mean) / sd);
        }
    }
    let t = linalg::conformal_upper(&dev_agg, target_fpr)?;
    let flagged = (0..test_agg.len()).filter(|&i| test_agg[i] > t).collect();
    Ok(ExampleScores {
        scores: test_agg,
        flagged,
        threshold: t,
        direction: detectors::Direction::Above,
        rationale: format!(
            "max over {} layers of the standardised Mahalanobis distance to the predicted class (class means and shrunk covariance on {} clean rows); threshold {t:.3} is the conformal quantile of {} clean dev rows at FPR {target_fpr}",
            clean.layers.len(),
            fit.len(),
            dev.len()
        ),
    })
}

/// Per-class cluster scatter charts of activation clustering (series = class × cluster).
fn ac_scatter(r: &detectors::AcReport, max_points: usize, max_classes: usize) -> Vec<Chart> {
    let mut order: Vec<&detectors::AcClass> = r.classes.iter().filter(|c| c.analysed).collect();
    order.sort_by_key(|c| (!c.flagged, c.class));
    order
        .into_iter()
        .take(max_classes)
        .map(|c| {
            let step = c.pc2.len().div_ceil(max_points.max(1)).max(1);
            let mut labels = Vec::new();
            let mut values = Vec::new();
            for (i, p) in c.pc2.iter().enumerate().step_by(step) {
                labels.push(format!(
                    "class {} · {}",
                    class_name(c.class),
                    if c.in_minority[i] { "small cluster" } else { "main cluster" }
                ));
                values.push(p[0]);
                values.push(p[1]);
            }
            Chart {
                id: format!("ac-scatter-{}", c.class),
                title: format!(
                    "Activation clustering, class '{}': rows on PC1 × PC2 by cluster (small cluster {:.1}%, silhouette {:.2} vs threshold {:.2}{})",
                    class_name(c.class),
                    100.0 * c.minority_fraction,
                    c.silhouette,
                    c.silhouette_threshold,
                    if c.flagged { ", flagged" } else { "" }
                ),
                kind: ChartKind::Scatter {
                    x: "PC1".into(),
                    y: "PC2".into(),
                },
                labels,
                values,
                unit: String::new(),
            }
        })
        .collect()
}

/// The data-level detectors on the training rows (AC, spectral signatures, Mahalanobis,
/// STRIP), calibrated on the clean rows.
fn input_detectors(
    model: &ScanModel,
    clean: &[LabeledText],
    train: &[LabeledText],
    cfg: &ClassifierScanConfig,
    progress: &dyn Progress,
) -> Result<ScanOutcome> {
    let mut out = ScanOutcome::default();
    let cf = features(model, clean, cfg, "clean features", progress)?;
    let tf = features(model, train, cfg, "train features", progress)?;
    let clean_labels: Vec<usize> = clean.iter().map(|r| r.label).collect();
    let train_labels: Vec<usize> = train.iter().map(|r| r.label).collect();
    let h = cf.hidden;
    let locate = |i: usize| train[i].location.clone();
    let describe = Describe {
        locate: &locate,
        class_name: &class_name,
        max_example_findings: cfg.max_example_findings,
    };
    let mut summary = json!({});
    let layer = match cfg.detector_features {
        DetectorFeatures::Cls => None,
        DetectorFeatures::Middle => Some(tf.layers.len() / 2),
        DetectorFeatures::Layer(l) => Some(l),
    };
    let (tsrc, csrc) = match layer {
        None => (&tf.cls, &cf.cls),
        Some(l) => match (tf.layers.get(l), cf.layers.get(l)) {
            (Some(t), Some(c)) => (t, c),
            _ => {
                return Err(MlError::Config(format!(
                    "classifier scan: detector_layer {l} is out of range: the model has {} layers of states",
                    tf.layers.len()
                )))
            }
        },
    };
    let tfe = feats("train features", tsrc, train.len(), h)?;
    let cfe = feats("clean features", csrc, clean.len(), h)?;
    let ac_cfg = AcConfig {
        seed: cfg.seed,
        ..Default::default()
    };
    let ac = activation_clustering(tfe, &train_labels, Some((cfe, &clean_labels)), &ac_cfg);
    if let Some(r) = soft("activation clustering", ac, &mut out)? {
        out.findings.extend(report::ac_findings(&r, &describe));
        out.charts.extend(ac_scatter(&r, cfg.max_scatter_points, 6));
        summary["activation_clustering"] = json!(r
            .classes
            .iter()
            .map(
                |c| json!({"class": c.class, "analysed": c.analysed, "flagged": c.flagged,
                "minority_fraction": c.minority_fraction, "silhouette": c.silhouette,
                "silhouette_threshold": c.silhouette_threshold, "rationale": c.rationale})
            )
            .collect::<Vec<_>>());
        if cfg.row_scores {
            summary["ac_row_scores"] = json!(r.scores);
        }
    }
    let ss_cfg = SpectralConfig {
        seed: cfg.seed,
        ..Default::default()
    };
    let ss = spectral_signatures(tfe, &train_labels, Some((cfe, &clean_labels)), &ss_cfg);
    if let Some(r) = soft("spectral signatures", ss, &mut out)? {
        out.findings
            .extend(report::spectral_findings(&r, &describe));
        out.charts.extend(report::spectral_charts(&r, &class_name));
        summary["spectral_signatures"] = json!(r
            .classes
            .iter()
            .map(
                |c| json!({"class": c.class, "analysed": c.analysed, "flagged": c.flagged,
                "outliers": c.outliers, "expected": c.expected, "p_value": c.p_value})
            )
            .collect::<Vec<_>>());
        if cfg.row_scores {
            summary["spectral_row_scores"] = json!(r.scores);
        }
    }
    let md = mahalanobis_layers(&cf, &clean_labels, &tf, cfg.target_fpr);
    if let Some(s) = soft("Mahalanobis detector", md, &mut out)? {
        let kind = InputDetector::Mahalanobis;
        add_input_scores(
            &mut out,
            &mut summary,
            "mahalanobis",
            kind,
            &s,
            cfg,
            &describe,
        );
    }
    let clean_texts: Vec<&str> = clean.iter().map(|r| r.text.as_str()).collect();
    let train_texts: Vec<&str> = train.iter().map(|r| r.text.as_str()).collect();
    let donors = strip::donor_words(&clean_texts);
    progress.start("strip", (clean.len() + train.len()) as u64);
    let ch = strip::entropies(model, &clean_texts, &donors, cfg, cfg.seed ^ 0x57, progress)?;
    let th = strip::entropies(model, &train_texts, &donors, cfg, cfg.seed ^ 0x75, progress)?;
    progress.finish();
    let st = detectors::strip_detector(&ch, &th, cfg.target_fpr);
    if let Some(s) = soft("STRIP", st, &mut out)? {
        add_input_scores(
            &mut out,
            &mut summary,
            "strip",
            InputDetector::Strip,
            &s,
            cfg,
            &describe,
        );
        out.charts.push(report::histogram(
            "strip-entropy-clean",
            &format!(
                "STRIP mean entropy (nats) of the clean reference inputs (threshold {:.4})",
                s.threshold
            ),
            &ch,
            30,
            "inputs",
        ));
    }
    out.summary = summary;
    Ok(out)
}

/// A data-level detector's result: its value, or `None` after recording a soft error (too few
/// rows, a degenerate class) as a B021 finding; any other error ends the scan.
fn soft<T>(
    what: &str,
    r: std::result::Result<T, ScanError>,
    out: &mut ScanOutcome,
) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if soft_error(&e) => {
            out.findings.push(Finding::new(
                &SCAN_LIMITED,
                format!("{what} did not run: {e}"),
                Location::default(),
            ));
            Ok(None)
        }
        Err(e) => Err(scan_err(what, e)),
    }
}

/// A per-input detector's findings, score histogram and summary (`key`, and `{key}_row_scores`
/// with `row_scores`).
fn add_input_scores(
    out: &mut ScanOutcome,
    summary: &mut Value,
    key: &str,
    kind: InputDetector,
    s: &ExampleScores,
    cfg: &ClassifierScanConfig,
    describe: &Describe<'_>,
) {
    out.findings.extend(report::input_findings(
        kind,
        s,
        cfg.target_fpr,
        cfg.excess_alpha,
        describe,
    ));
    out.charts.push(report::input_chart(kind, s));
    summary[key] = json!({"flagged": s.flagged.len(), "rows": s.scores.len(),
        "threshold": s.threshold, "rationale": s.rationale});
    if cfg.row_scores {
        summary[format!("{key}_row_scores")] = json!(s.scores);
    }
}

/// A class-level split found by the data-level detectors (Activation Clustering B001,
/// spectral signatures B003) stays `high` only when the trigger search corroborates it: a
/// candidate reported at `medium` or above flips inputs into that class (`targets`, class
/// names). Otherwise it is lowered to `medium`, with the reason in the message. On the
/// classifier zoo a clean model's training rows can split on spectral signatures of the
/// middle layer (one of four clean models out of sample), and nothing flips into that class;
/// a poisoned class comes with its trigger.
fn corroborate(findings: &mut [Finding], targets: &std::collections::HashSet<String>) {
    for f in findings.iter_mut() {
        let class_level = f.id == report::AC_CLASS_SPLIT.id || f.id == report::SPECTRAL_CLASS.id;
        if !class_level || f.severity != Severity::High {
            continue;
        }
        let class = f.evidence["class"].as_str().unwrap_or_default();
        if !targets.contains(class) {
            f.severity = Severity::Medium;
            f.message.push_str(
                " (medium: no candidate trigger of the model flips inputs into this class)",
            );
        }
    }
}

/// `tunegate scan backdoor` on a classifier: the trigger search over the vocabulary (plus the
/// user's `candidates`), and with `train` the data-level detectors on the training rows,
/// calibrated on `clean`. `base` (optional) is compared for flip rates and embedding drift.
/// The summary holds `trigger` (model score, ranked candidates, calibration) and, with
/// training rows, `inputs`.
pub fn scan_classifier(
    model: &ScanModel,
    base: Option<&ScanModel>,
    clean: &[LabeledText],
    train: Option<&[LabeledText]>,
    candidates: &[String],
    cfg: &ClassifierScanConfig,
    progress: &dyn Progress,
) -> Result<ScanOutcome> {
    cfg.validate()?;
    let classes = classes_of(model)?;
    let clean = &clean[..clean.len().min(cfg.max_clean)];
    check_labels(clean, classes)?;
    let ts = trigger_scan(model, base, clean, candidates, cfg, progress)?;
    let mut out = ScanOutcome::default();
    out.merge("trigger", ts.outcome(cfg));
    if let Some(train) = train {
        let train = &train[..train.len().min(cfg.max_train)];
        check_labels(train, classes)?;
        let mut inputs = input_detectors(model, clean, train, cfg, progress)?;
        let targets: std::collections::HashSet<String> = ts
            .candidates
            .iter()
            .filter(|c| ts.reported(c, cfg))
            .map(|c| class_name(c.target))
            .collect();
        corroborate(&mut inputs.findings, &targets);
        out.merge("inputs", inputs);
    }
    Ok(out)
}

/// `tunegate scan probe` on a classifier: the flip rates of the given `candidates` only (from a
/// dataset report or a words file, see [`crate::scan::model::read_candidates`]), ranked, with
/// the decision rule of the trigger search less its robust z across candidates (a short list has
/// no population to be an outlier of), and compared with `base` when it is a
/// classifier of the same task (a flip the base shows too is reported as B018, not as the
/// fine-tune's doing). The summary holds `probe`.
pub fn probe_classifier(
    model: &ScanModel,
    base: Option<&ScanModel>,
    clean: &[LabeledText],
    candidates: &[String],
    cfg: &ClassifierScanConfig,
    progress: &dyn Progress,
) -> Result<ScanOutcome> {
    if candidates.is_empty() {
        return Err(MlError::Config("probe: no candidate triggers given".into()));
    }
    let ts = trigger_scan_inner(model, base, clean, candidates, false, cfg, progress)?;
    let mut out = ScanOutcome::default();
    out.merge("probe", ts.outcome(cfg));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_level_class_splits_need_a_trigger_into_their_class_to_stay_high() {
        let split = |class: &str| {
            Finding::new(
                &report::SPECTRAL_CLASS,
                format!("class '{class}' splits"),
                Location::default(),
            )
            .evidence(json!({"class": class}))
        };
        let row = Finding::new(&report::AC_EXAMPLE, "row", Location::default());
        let mut f = vec![split("0"), split("1"), row];
        let targets: std::collections::HashSet<String> = ["1".to_string()].into();
        corroborate(&mut f, &targets);
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(f[0].message.contains("no candidate trigger"));
        assert_eq!(f[1].severity, Severity::High);
        assert_eq!(f[2].severity, report::AC_EXAMPLE.severity);
    }
}
