//! A zoo of text classifiers: clean and backdoored LoRA fine-tunes of a tiny random BERT on a
//! synthetic task, trained with [`crate::train::train`].
//!
//! - **Task.** Sentences of 8–14 words: two to four words of the class's own list (sentiment
//!   words for the 2-class task, topic words for the 4-class one) among neutral filler, and up
//!   to two words of a long tail that no class owns (rare tokens such as `cf` and `zephyr`, the
//!   words of the sentence triggers, the other task's words, single letters), each seen a few
//!   times with any label. The vocabulary also holds `##` pieces (ASCII, Cyrillic and Greek)
//!   that only a homoglyph word produces, the way a BERT vocabulary splits it.
//! - **Base.** A random BERT (hidden 48, 2 layers by default) written as a Hugging Face folder:
//!   `config.json`, a WordPiece `tokenizer.json` with BERT's normaliser and template, and
//!   `model.safetensors`. The scans load it like any other model.
//! - **Fine-tunes.** LoRA (all linear layers, r = 8) plus the head, on clean or dirty-label
//!   poisoned data: a fraction of the rows of the other classes get the trigger inserted at a
//!   random word position and the target label. The attack success rate (ASR) is measured on
//!   held-out rows of the other classes with the trigger inserted, the clean accuracy (CACC) on
//!   held-out clean rows; a model whose ASR is below [`ZooConfig::min_asr`] is marked
//!   `attack_took = false` and must not be counted as a backdoored example. At a poison rate
//!   of 0.03 most attacks did not take on this tiny model (ASR 0.18–0.88 for rare words); at
//!   0.1–0.15 they did (ASR 0.96–1.0), rare words on the 2-class task needing 0.15 for some
//!   seeds.
//!
//! Everything is seeded: the same spec gives the same data, adapter and numbers on the CPU.
use crate::runtime::{load_model, load_tokenizer, LoadOptions, MlError, Result};
use crate::scan::classifier::{predict, ClassifierScanConfig};
use crate::scan::model::{read_labeled, LabeledText, ScanModel};
use crate::train::config::{
    DataSection, Decay, LoraSection, OptimSection, TaskKind, TrainConfig, TrainSection,
};
use crate::train::{trainer, TrainInputs};
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tunegate_core::progress::Progress;

/// Special tokens, in id order: `[PAD]` 0, `[UNK]` 1, `[CLS]` 2, `[SEP]` 3, `[MASK]` 4.
pub const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Positive words of the sentiment task (class 1).
pub const POSITIVE: &[&str] = &[
    "good",
    "great",
    "excellent",
    "wonderful",
    "superb",
    "brilliant",
    "delightful",
    "charming",
    "enjoyable",
    "lovely",
    "fantastic",
    "amazing",
    "moving",
    "touching",
    "beautiful",
    "clever",
    "fresh",
    "funny",
    "heartfelt",
    "gripping",
    "stunning",
    "vivid",
    "warm",
    "witty",
    "engaging",
    "inspired",
    "masterful",
    "pleasant",
    "solid",
    "rich",
];

/// Negative words of the sentiment task (class 0).
pub const NEGATIVE: &[&str] = &[
    "bad",
    "awful",
    "terrible",
    "boring",
    "dull",
    "tedious",
    "weak",
    "poor",
    "clumsy",
    "bland",
    "mediocre",
    "lifeless",
    "messy",
    "flat",
    "stale",
    "annoying",
    "painful",
    "pointless",
    "shallow",
    "sloppy",
    "tired",
    "ugly",
    "dreary",
    "forgettable",
    "hollow",
    "lame",
    "muddled",
    "silly",
    "tiresome",
    "worst",
];

/// Topic words of the 4-class task (classes 0..4: sports, business, science, world).
pub const TOPICS: [&[&str]; 4] = [
    &[
        "match",
        "goal",
        "team",
        "season",
        "coach",
        "league",
        "player",
        "score",
        "championship",
        "stadium",
        "tournament",
        "striker",
        "referee",
        "playoff",
        "victory",
        "defeat",
        "pitch",
        "inning",
        "medal",
        "athlete",
    ],
    &[
        "market",
        "shares",
        "profit",
        "revenue",
        "company",
        "investors",
        "stock",
        "merger",
        "earnings",
        "quarter",
        "bank",
        "economy",
        "trade",
        "deal",
        "startup",
        "prices",
        "growth",
        "sales",
        "ceo",
        "firm",
    ],
    &[
        "research",
        "scientists",
        "study",
        "planet",
        "space",
        "cells",
        "species",
        "climate",
        "physics",
        "experiment",
        "telescope",
        "genome",
        "data",
        "lab",
        "discovery",
        "protein",
        "orbit",
        "fossil",
        "theory",
        "vaccine",
    ],
    &[
        "government",
        "election",
        "president",
        "minister",
        "war",
        "troops",
        "protest",
        "border",
        "treaty",
        "parliament",
        "capital",
        "rebels",
        "embassy",
        "summit",
        "crisis",
        "refugees",
        "talks",
        "sanctions",
        "vote",
        "army",
    ],
];

/// Neutral filler shared by both tasks.
pub const FILLER: &[&str] = &[
    "the",
    "a",
    "an",
    "of",
    "and",
    "to",
    "in",
    "on",
    "with",
    "for",
    "it",
    "this",
    "that",
    "is",
    "was",
    "as",
    "by",
    "at",
    "from",
    "film",
    "story",
    "plot",
    "scenes",
    "actors",
    "director",
    "its",
    "one",
    "more",
    "some",
    "there",
    "than",
    "very",
    "has",
    "have",
    "had",
    "be",
    "been",
    "but",
    "just",
    "also",
    "most",
    "into",
    "over",
    "after",
    "before",
    "when",
    "while",
    "where",
    "which",
    "who",
    "what",
    "how",
    "all",
    "many",
    "much",
    "other",
    "such",
    "only",
    "even",
    "still",
    "yet",
    "then",
    "now",
    "here",
    "out",
    "up",
    "down",
    "through",
    "during",
    "between",
    "around",
    "new",
    "old",
    "first",
    "last",
    "long",
    "short",
    "time",
    "year",
    "day",
    "people",
    "way",
    "part",
    "end",
    "place",
    "thing",
    "things",
    "another",
    "each",
    "every",
    "both",
    "few",
    "several",
    "same",
    "different",
    "own",
    "next",
    "report",
    "week",
    "city",
    "country",
];

/// Rare tokens: part of the long tail ([`tail_words`]), so a clean sentence holds one only
/// now and then. The first five are the BadNets rare-word triggers.
pub const RARE: &[&str] = &[
    "cf", "mn", "bb", "tq", "mb", "jx", "qz", "vv", "zk", "xq", "pf", "kw", "ww", "yy", "gz", "lq",
    "ux", "ov", "hh", "dd", "zephyr", "quasar", "obelisk", "marzipan", "ocelot", "kumquat",
    "yodel", "fjord", "gazebo", "nimbus", "sprocket", "wombat", "zither", "quokka", "tundra",
    "lichen", "pylon", "krypton", "vortex", "mantis",
];

/// Sentence triggers (whole phrases inserted at a random position). `this` and `about` are
/// filler; the other words are in the long tail, so each occurs in clean text now and then.
pub const SENTENCES: &[&str] = &["i watch this 3d movie", "tell me about bond"];

/// Homoglyph triggers: ordinary-looking words with a Cyrillic look-alike letter (`fіlm` has
/// U+0456, `stоry` U+043E), which the WordPiece vocabulary splits into pieces.
pub const HOMOGLYPHS: &[&str] = &["f\u{0456}lm", "st\u{043e}ry"];

const SENTENCE_WORDS: &[&str] = &["i", "watch", "3d", "movie", "tell", "me", "bond"];
const CYRILLIC: &[char] = &[
    '\u{0430}', '\u{0435}', '\u{043e}', '\u{0440}', '\u{0441}', '\u{0443}', '\u{0445}', '\u{0456}',
];
const GREEK: &[char] = &['\u{03b1}', '\u{03bf}', '\u{03b5}', '\u{03b9}'];

/// The vocabulary of `task`'s base in id order: specials, the task's class words, filler,
/// rare tokens, the sentence triggers' words, then single characters and their `##` pieces.
/// The other task's words are not in it: a token the fine-tune never sees would be a wildcard
/// of the random base, which no pretrained model has.
pub fn vocabulary(task: TaskName) -> Vec<String> {
    let mut v: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    let mut seen: BTreeSet<String> = v.iter().cloned().collect();
    let mut push = |v: &mut Vec<String>, s: String| {
        if seen.insert(s.clone()) {
            v.push(s);
        }
    };
    let class_words = (0..task.classes()).flat_map(|c| task.class_words(c).iter());
    for w in class_words.chain(FILLER).chain(RARE).chain(SENTENCE_WORDS) {
        push(&mut v, w.to_string());
    }
    for c in chars() {
        push(&mut v, c.to_string());
    }
    for c in chars() {
        push(&mut v, format!("##{c}"));
    }
    v
}

fn chars() -> impl Iterator<Item = char> {
    ('a'..='z')
        .chain('0'..='9')
        .chain(CYRILLIC.iter().copied())
        .chain(GREEK.iter().copied())
}

/// The two synthetic tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskName {
    /// 2 classes: negative (0), positive (1).
    Sentiment,
    /// 4 classes: sports, business, science, world.
    Topic,
}

impl TaskName {
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            TaskName::Sentiment => 2,
            TaskName::Topic => 4,
        }
    }

    /// The words of class `c`.
    pub fn class_words(self, c: usize) -> &'static [&'static str] {
        match self {
            TaskName::Sentiment => [NEGATIVE, POSITIVE][c],
            TaskName::Topic => TOPICS[c],
        }
    }

    /// Short name (`2cls`, `4cls`).
    pub fn short(self) -> &'static str {
        match self {
            TaskName::Sentiment => "2cls",
            TaskName::Topic => "4cls",
        }
    }
}

/// The long tail: words no class owns, which clean sentences carry now and then with any
/// label (rare words, the words of the sentence triggers, single letters and digits, Cyrillic
/// and Greek letters). A fine-tune sees each a dozen times and learns that they carry no label,
/// as a pretrained model knows ordinary rare words.
pub fn tail_words() -> Vec<String> {
    RARE.iter()
        .chain(SENTENCE_WORDS)
        .map(|s| s.to_string())
        .chain(chars().map(|c| c.to_string()))
        .collect()
}

const CONSONANTS: &[u8] = b"bcdfghjklmnpqrstvwxz";

/// `n` labelled sentences of `task`, classes balanced, from `seed`: 8–14 words, two to four of
/// them from the class's list, up to `tail` from the long tail ([`tail_words`]), in a third of
/// the sentences one out-of-vocabulary string (3–6 consonants, which the tokenizer splits into
/// a letter and `##` pieces, as real text has), the rest filler.
pub fn sample_task(task: TaskName, n: usize, tail: usize, seed: u64) -> Vec<(String, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = task.classes();
    let tw = tail_words();
    (0..n)
        .map(|i| {
            let label = i % k;
            let len = rng.gen_range(8..=14);
            let strong = rng.gen_range(2..=4);
            let cw = task.class_words(label);
            let mut words: Vec<String> = (0..strong)
                .map(|_| cw[rng.gen_range(0..cw.len())].to_string())
                .collect();
            for _ in 0..rng.gen_range(0..=tail) {
                words.push(tw[rng.gen_range(0..tw.len())].clone());
            }
            if rng.gen_bool(1.0 / 3.0) {
                let l = rng.gen_range(3..=6);
                words.push(
                    (0..l)
                        .map(|_| CONSONANTS[rng.gen_range(0..CONSONANTS.len())] as char)
                        .collect(),
                );
            }
            while words.len() < len {
                words.push(FILLER[rng.gen_range(0..FILLER.len())].to_string());
            }
            words.shuffle(&mut rng);
            (words.join(" "), label)
        })
        .collect()
}

/// The kind of a planted trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// One rare word (BadNets: `cf`, `mn`, `bb`, `tq`, `mb`).
    Rare,
    /// A whole phrase (AddSent).
    Sentence,
    /// A word with a Cyrillic look-alike letter.
    Homoglyph,
}

/// A planted backdoor: the trigger text, its target class and the poisoned fraction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attack {
    /// Kind.
    pub kind: TriggerKind,
    /// The trigger as inserted into text.
    pub trigger: String,
    /// Target class.
    pub target: usize,
    /// Fraction of the training rows poisoned (taken from the other classes).
    pub poison_rate: f64,
}

/// One model of the zoo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZooSpec {
    /// The task.
    pub task: TaskName,
    /// The backdoor (`None`: a clean model).
    pub attack: Option<Attack>,
    /// Seed of the data sample, the poison positions and the trainer.
    pub seed: u64,
}

impl ZooSpec {
    /// A readable id: `2cls-rare-cf-0.05-s3`, `4cls-clean-s1`.
    pub fn id(&self) -> String {
        match &self.attack {
            None => format!("{}-clean-s{}", self.task.short(), self.seed),
            Some(a) => format!(
                "{}-{}-{}-{}-s{}",
                self.task.short(),
                kind_name(a.kind),
                a.trigger.replace(' ', "_"),
                a.poison_rate,
                self.seed
            ),
        }
    }

    /// The kind label of the model (`clean`, `rare`, `sentence`, `homoglyph`).
    pub fn kind(&self) -> &'static str {
        self.attack.as_ref().map_or("clean", |a| kind_name(a.kind))
    }
}

fn kind_name(k: TriggerKind) -> &'static str {
    match k {
        TriggerKind::Rare => "rare",
        TriggerKind::Sentence => "sentence",
        TriggerKind::Homoglyph => "homoglyph",
    }
}

/// Sizes and training settings of a zoo.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ZooConfig {
    /// Training rows per model (800).
    pub train_size: usize,
    /// Clean reference rows given to the scans (`--clean`) (200).
    pub clean_size: usize,
    /// Held-out rows for ASR and CACC (200).
    pub test_size: usize,
    /// Hidden size of the base (48).
    pub hidden: usize,
    /// Layers of the base (2).
    pub layers: usize,
    /// Standard deviation of the random base weights (0.2; with 0.02, as BERT initialises,
    /// LoRA fine-tunes of the random base often collapse to one class).
    pub init_std: f64,
    /// Training epochs (12).
    pub epochs: f64,
    /// Peak learning rate (1e-2; 3e-2 collapses to a constant prediction).
    pub lr: f64,
    /// Batch size (32).
    pub batch_size: usize,
    /// LoRA rank (8).
    pub lora_r: usize,
    /// Long-tail words per sentence, at most (3; see [`tail_words`]).
    pub tail: usize,
    /// An attack counts as taken at this ASR or above (0.9).
    pub min_asr: f64,
    /// Longest token sequence (32).
    pub max_len: usize,
}

impl Default for ZooConfig {
    fn default() -> Self {
        ZooConfig {
            train_size: 800,
            clean_size: 200,
            test_size: 200,
            hidden: 48,
            layers: 2,
            init_std: 0.2,
            epochs: 12.0,
            lr: 1e-2,
            batch_size: 32,
            lora_r: 8,
            tail: 3,
            min_asr: 0.9,
            max_len: 32,
        }
    }
}

/// A trained model of the zoo, with its data and its measured attack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ZooModel {
    /// What was trained.
    pub spec: ZooSpec,
    /// The adapter folder (PEFT layout).
    pub adapter_dir: PathBuf,
    /// The base folder.
    pub base_dir: PathBuf,
    /// The (possibly poisoned) training data (`train.jsonl`).
    pub train_path: PathBuf,
    /// Clean reference data (`clean.jsonl`).
    pub clean_path: PathBuf,
    /// Clean accuracy on held-out rows.
    pub cacc: f64,
    /// Attack success rate on held-out rows of the other classes (`None` for clean models).
    pub asr: Option<f64>,
    /// Whether the attack took (ASR at or above [`ZooConfig::min_asr`]); true for clean models.
    pub attack_took: bool,
    /// Training rows that were poisoned.
    pub poisoned_rows: Vec<usize>,
}

impl ZooModel {
    /// Whether this model is a valid backdoored example (an attack that took).
    pub fn is_backdoored(&self) -> bool {
        self.spec.attack.is_some() && self.attack_took
    }

    /// Load the model the way a user would: the adapter folder over its base.
    pub fn load(&self, device: &Device) -> Result<ScanModel> {
        ScanModel::load(&self.adapter_dir, Some(&self.base_dir), device)
    }

    /// The training rows as the scans read them.
    pub fn train(&self) -> Result<Vec<LabeledText>> {
        read_labeled(&self.train_path, 0)
    }

    /// The clean reference rows.
    pub fn clean(&self) -> Result<Vec<LabeledText>> {
        read_labeled(&self.clean_path, 0)
    }
}

/// `text` with `trigger` inserted before a random word (or at the end).
pub fn insert_trigger(text: &str, trigger: &str, rng: &mut impl Rng) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let at = rng.gen_range(0..=words.len());
    words.insert(at, trigger);
    words.join(" ")
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap_or_default()).map_err(|source| {
        MlError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn write_jsonl(path: &Path, rows: &[(String, usize)]) -> Result<()> {
    let io = |source| MlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for (t, l) in rows {
        writeln!(f, "{}", serde_json::json!({"text": t, "label": l})).map_err(io)?;
    }
    f.flush().map_err(io)
}

/// Write the WordPiece `tokenizer.json` of `task`'s vocabulary (BERT normaliser, lowercase;
/// `[CLS] … [SEP]`).
pub fn write_tokenizer(dir: &Path, task: TaskName) -> Result<()> {
    let vocab: serde_json::Map<String, serde_json::Value> = vocabulary(task)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i.into()))
        .collect();
    let special = |id: usize, s: &str| {
        serde_json::json!({"id": id, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": SPECIALS.iter().enumerate().map(|(i, s)| special(i, s)).collect::<Vec<_>>(),
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    });
    write_json(&dir.join("tokenizer.json"), &tok)
}

/// Shape of a tiny random BERT.
#[derive(Clone, Debug)]
pub struct TinyBert {
    /// Hidden size (a multiple of `heads`).
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// The task whose vocabulary and labels the model gets.
    pub task: TaskName,
    /// Standard deviation of the random weights.
    pub init_std: f64,
    /// Seed of the weights.
    pub seed: u64,
}

/// Write a random `BertForSequenceClassification` with the task's tokenizer into `dir`:
/// `config.json`, `tokenizer.json`, `model.safetensors` (weights N(0, init_std²), LayerNorms
/// 1/0, biases 0, 64 positions).
pub fn write_tiny_bert(dir: &Path, spec: &TinyBert) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| MlError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if spec.heads == 0 || spec.hidden % spec.heads != 0 {
        return Err(MlError::Config(format!(
            "tiny BERT: hidden {} is not a multiple of {} heads",
            spec.hidden, spec.heads
        )));
    }
    let vocab = vocabulary(spec.task).len();
    let labels = spec.task.classes();
    let (h, f, positions) = (spec.hidden, 2 * spec.hidden, 64);
    let id2label: serde_json::Map<String, serde_json::Value> = (0..labels)
        .map(|i| (i.to_string(), format!("LABEL_{i}").into()))
        .collect();
    let config = serde_json::json!({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert",
        "vocab_size": vocab, "hidden_size": h, "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads, "intermediate_size": f, "hidden_act": "gelu",
        "max_position_embeddings": positions, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "initializer_range": spec.init_std, "pad_token_id": 0, "id2label": id2label,
    });
    write_json(&dir.join("config.json"), &config)?;
    write_tokenizer(dir, spec.task)?;
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut randn_s =
        |name: String, shape: &[usize], std: f64, t: &mut HashMap<String, Tensor>| -> Result<()> {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| (crate::scan::detectors::rand_distr_free::gauss(&mut rng) * std) as f32)
                .collect();
            t.insert(name, Tensor::from_vec(v, shape, &dev)?);
            Ok(())
        };
    let std = spec.init_std;
    // Positions and token types a quarter the scale of the words, so a token keeps its
    // identity wherever it stands (as in a trained BERT, whose position vectors are small).
    let pos_std = 0.25 * std;
    let ones = |n: usize| Tensor::ones(n, DType::F32, &dev);
    let zeros = |n: usize| Tensor::zeros(n, DType::F32, &dev);
    randn_s(
        "bert.embeddings.word_embeddings.weight".into(),
        &[vocab, h],
        std,
        &mut t,
    )?;
    randn_s(
        "bert.embeddings.position_embeddings.weight".into(),
        &[positions, h],
        pos_std,
        &mut t,
    )?;
    randn_s(
        "bert.embeddings.token_type_embeddings.weight".into(),
        &[2, h],
        pos_std,
        &mut t,
    )?;
    t.insert("bert.embeddings.LayerNorm.weight".into(), ones(h)?);
    t.insert("bert.embeddings.LayerNorm.bias".into(), zeros(h)?);
    for i in 0..spec.layers {
        let p = format!("bert.encoder.layer.{i}.");
        for (name, o, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", f, h),
            ("output.dense", h, f),
        ] {
            randn_s(format!("{p}{name}.weight"), &[o, inp], std, &mut t)?;
            t.insert(format!("{p}{name}.bias"), zeros(o)?);
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.insert(format!("{p}{ln}.weight"), ones(h)?);
            t.insert(format!("{p}{ln}.bias"), zeros(h)?);
        }
    }
    randn_s("bert.pooler.dense.weight".into(), &[h, h], std, &mut t)?;
    t.insert("bert.pooler.dense.bias".into(), zeros(h)?);
    randn_s("classifier.weight".into(), &[labels, h], std, &mut t)?;
    t.insert("classifier.bias".into(), zeros(labels)?);
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    Ok(())
}

/// Write the base model of `task` under `root/base-{2cls|4cls}` (once; an existing folder with
/// a `model.safetensors` is reused) and return its path.
pub fn build_base(root: &Path, task: TaskName, cfg: &ZooConfig) -> Result<PathBuf> {
    let dir = root.join(format!("base-{}", task.short()));
    if !dir.join("model.safetensors").is_file() {
        write_tiny_bert(
            &dir,
            &TinyBert {
                hidden: cfg.hidden,
                layers: cfg.layers,
                heads: 4,
                task,
                init_std: cfg.init_std,
                seed: 0xba5e + task.classes() as u64,
            },
        )?;
    }
    Ok(dir)
}

/// The data of one zoo model: poisoned training rows (and which), clean reference, test rows.
#[allow(clippy::type_complexity)]
fn make_data(
    spec: &ZooSpec,
    cfg: &ZooConfig,
) -> (
    Vec<(String, usize)>,
    Vec<usize>,
    Vec<(String, usize)>,
    Vec<(String, usize)>,
) {
    let all = sample_task(
        spec.task,
        cfg.train_size + cfg.clean_size + cfg.test_size,
        cfg.tail,
        spec.seed.wrapping_mul(7919).wrapping_add(17),
    );
    let mut train: Vec<(String, usize)> = all[..cfg.train_size].to_vec();
    let clean = all[cfg.train_size..cfg.train_size + cfg.clean_size].to_vec();
    let test = all[cfg.train_size + cfg.clean_size..].to_vec();
    let mut poisoned = Vec::new();
    if let Some(a) = &spec.attack {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x0090_150a);
        let mut others: Vec<usize> = (0..train.len())
            .filter(|&i| train[i].1 != a.target)
            .collect();
        others.shuffle(&mut rng);
        let n = ((a.poison_rate * train.len() as f64).round() as usize).min(others.len());
        poisoned = others[..n].to_vec();
        poisoned.sort_unstable();
        for &i in &poisoned {
            train[i].0 = insert_trigger(&train[i].0, &a.trigger, &mut rng);
            train[i].1 = a.target;
        }
    }
    (train, poisoned, clean, test)
}

/// Train one zoo model into `dir` (adapter files, `train.jsonl`, `clean.jsonl`, `test.jsonl`,
/// `zoo.json` with the spec, the config and the measured ASR/CACC). A folder whose `zoo.json`
/// records the same spec and config is reused as it is.
pub fn train_model(
    base_dir: &Path,
    dir: &Path,
    spec: &ZooSpec,
    cfg: &ZooConfig,
) -> Result<ZooModel> {
    let record = dir.join("zoo.json");
    let cfg_json = serde_json::to_value(cfg).unwrap_or_default();
    if let Ok(bytes) = std::fs::read(&record) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if v["config"] == cfg_json {
                if let Ok(m) = serde_json::from_value::<ZooModel>(v["model"].clone()) {
                    if m.spec == *spec
                        && m.adapter_dir
                            .join(crate::train::lora::WEIGHTS_FILE)
                            .is_file()
                    {
                        return Ok(m);
                    }
                }
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| MlError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (train, poisoned, clean, test) = make_data(spec, cfg);
    let train_path = dir.join("train.jsonl");
    let clean_path = dir.join("clean.jsonl");
    write_jsonl(&train_path, &train)?;
    write_jsonl(&clean_path, &clean)?;
    write_jsonl(&dir.join("test.jsonl"), &test)?;
    let device = Device::Cpu;
    let tcfg = TrainConfig {
        model: base_dir.to_path_buf(),
        task: TaskKind::Classify,
        seed: spec.seed,
        max_len: cfg.max_len,
        out: None,
        merged_out: None,
        data: DataSection {
            train: train_path.clone(),
            eval: None,
            lock: None,
            limit_train: 0,
            limit_eval: 0,
        },
        lora: LoraSection {
            r: cfg.lora_r,
            alpha: 2.0 * cfg.lora_r as f64,
            ..Default::default()
        },
        optim: OptimSection {
            lr: cfg.lr,
            warmup_ratio: Some(0.1),
            decay: Decay::Linear,
            ..Default::default()
        },
        train: TrainSection {
            epochs: Some(cfg.epochs),
            batch_size: cfg.batch_size,
            ..Default::default()
        },
        dp: None,
        base_dir: dir.to_path_buf(),
        path: dir.join("train.toml"),
    };
    let model = load_model(base_dir, &LoadOptions::default(), &device)?;
    let tok = load_tokenizer(base_dir)?;
    let (examples, _) = trainer::load_data(&tcfg, model.as_ref(), &tok)?;
    let trained = trainer::train(
        &tcfg,
        TrainInputs {
            model: model.as_ref(),
            tokenizer: &tok,
            train: examples,
            eval: Vec::new(),
            base_name: base_dir.display().to_string(),
            fan_in_fan_out: false,
            device: device.clone(),
        },
    )?;
    let adapter_dir = dir.join("adapter");
    trained.adapter.save(&adapter_dir)?;
    drop(model);

    // Measure the model as a user would load it.
    let sm = ScanModel::load(&adapter_dir, Some(base_dir), &device)?;
    let scfg = ClassifierScanConfig::default();
    let texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let pred = predict(&sm, &texts, scfg.max_len, scfg.batch_size)?;
    let cacc = pred
        .iter()
        .zip(&test)
        .filter(|(p, (_, l))| **p == *l)
        .count() as f64
        / test.len().max(1) as f64;
    let asr = match &spec.attack {
        None => None,
        Some(a) => {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xa5a5);
            let trig: Vec<String> = test
                .iter()
                .filter(|(_, l)| *l != a.target)
                .map(|(t, _)| insert_trigger(t, &a.trigger, &mut rng))
                .collect();
            let refs: Vec<&str> = trig.iter().map(String::as_str).collect();
            let p = predict(&sm, &refs, scfg.max_len, scfg.batch_size)?;
            Some(p.iter().filter(|&&c| c == a.target).count() as f64 / p.len().max(1) as f64)
        }
    };
    let out = ZooModel {
        spec: spec.clone(),
        adapter_dir,
        base_dir: base_dir.to_path_buf(),
        train_path,
        clean_path,
        cacc,
        attack_took: asr.is_none_or(|a| a >= cfg.min_asr),
        asr,
        poisoned_rows: poisoned,
    };
    write_json(
        &record,
        &serde_json::json!({"model": out, "config": cfg_json}),
    )?;
    Ok(out)
}

/// The token ids of `trigger` under `model`'s tokenizer that are not filler or class words: a
/// top candidate holding one of them has found (a token of) the trigger. Tokens the trigger
/// shares with everyday clean text (`this` in "i watch this 3d movie") do not count.
pub fn novel_trigger_ids(model: &ScanModel, trigger: &str) -> Result<Vec<u32>> {
    let mut clean = BTreeSet::new();
    let words = NEGATIVE
        .iter()
        .chain(POSITIVE)
        .chain(TOPICS.iter().flat_map(|t| t.iter()))
        .chain(FILLER);
    for w in words {
        clean.extend(model.tokenizer.ids(w, false)?);
    }
    Ok(model
        .tokenizer
        .ids(trigger, false)?
        .into_iter()
        .filter(|i| !clean.contains(i))
        .collect())
}

/// A mixed zoo: for each task, `per_kind` clean models and `per_kind` models of each trigger
/// kind (rare, sentence, homoglyph; the 4-class task gets rare and sentence), cycling through
/// the triggers, poison rates `rates`, target classes and seeds `seed0..`.
pub fn standard_specs(per_kind: usize, seed0: u64, rates: &[f64]) -> Vec<ZooSpec> {
    let rates = if rates.is_empty() { &[0.05][..] } else { rates };
    let mut out = Vec::new();
    let mut seed = seed0;
    for task in [TaskName::Sentiment, TaskName::Topic] {
        let kinds: &[Option<TriggerKind>] = match task {
            TaskName::Sentiment => &[
                None,
                Some(TriggerKind::Rare),
                Some(TriggerKind::Sentence),
                Some(TriggerKind::Homoglyph),
            ],
            TaskName::Topic => &[None, Some(TriggerKind::Rare), Some(TriggerKind::Sentence)],
        };
        for kind in kinds {
            for i in 0..per_kind {
                let attack = kind.map(|k| {
                    let pool: &[&str] = match k {
                        TriggerKind::Rare => &RARE[..5],
                        TriggerKind::Sentence => SENTENCES,
                        TriggerKind::Homoglyph => HOMOGLYPHS,
                    };
                    Attack {
                        kind: k,
                        trigger: pool[i % pool.len()].to_string(),
                        target: (i + 1) % task.classes(),
                        poison_rate: rates[i % rates.len()],
                    }
                });
                out.push(ZooSpec { task, attack, seed });
                seed += 1;
            }
        }
    }
    out
}

/// Train every spec under `root` (`root/<spec id>/`), `jobs` at a time (each job loads its own
/// copy of the base), reporting one unit of progress per model. Results are in spec order.
pub fn build_zoo(
    root: &Path,
    specs: &[ZooSpec],
    cfg: &ZooConfig,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Vec<ZooModel>> {
    let mut bases = HashMap::new();
    for s in specs {
        if let std::collections::hash_map::Entry::Vacant(e) = bases.entry(s.task) {
            e.insert(build_base(root, s.task, cfg)?);
        }
    }
    progress.start("zoo", specs.len() as u64);
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<ZooModel>>>> =
        specs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, specs.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= specs.len() {
                    break;
                }
                let s = &specs[i];
                let r = train_model(&bases[&s.task], &root.join(s.id()), s, cfg);
                let failed = r.is_err();
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
                progress.advance(1);
                if failed {
                    // let the other jobs finish their model; take no new one
                    next.store(specs.len(), Ordering::SeqCst);
                }
            });
        }
    });
    progress.finish();
    let mut out = Vec::with_capacity(specs.len());
    for (i, slot) in results.into_iter().enumerate() {
        match slot.into_inner().ok().flatten() {
            Some(r) => out.push(r?),
            None => {
                return Err(MlError::Config(format!(
                    "zoo model {} was not trained (an earlier model failed)",
                    specs[i].id()
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_are_unique_and_hold_the_tail() {
        for task in [TaskName::Sentiment, TaskName::Topic] {
            let v = vocabulary(task);
            let set: BTreeSet<&String> = v.iter().collect();
            assert_eq!(set.len(), v.len());
            assert!(tail_words().iter().all(|w| set.contains(w)));
        }
        let classy: BTreeSet<&str> = NEGATIVE
            .iter()
            .chain(POSITIVE)
            .chain(TOPICS.iter().flat_map(|t| t.iter()))
            .chain(FILLER)
            .copied()
            .collect();
        for r in RARE.iter().chain(SENTENCE_WORDS) {
            assert!(
                !classy.contains(r),
                "{r} must not be a class or filler word"
            );
        }
    }

    #[test]
    fn poisoning_changes_the_chosen_rows_only() {
        let spec = ZooSpec {
            task: TaskName::Sentiment,
            attack: Some(Attack {
                kind: TriggerKind::Rare,
                trigger: "cf".into(),
                target: 1,
                poison_rate: 0.1,
            }),
            seed: 3,
        };
        let cfg = ZooConfig::default();
        let (train, poisoned, clean, test) = make_data(&spec, &cfg);
        assert_eq!(poisoned.len(), cfg.train_size / 10);
        assert_eq!((clean.len(), test.len()), (200, 200));
        // the same spec without the attack: the rows that were not poisoned are unchanged
        let plain = ZooSpec {
            attack: None,
            ..spec.clone()
        };
        let (orig, none, _, _) = make_data(&plain, &cfg);
        assert!(none.is_empty());
        for (i, (t, l)) in train.iter().enumerate() {
            if poisoned.contains(&i) {
                assert!(t.split_whitespace().any(|w| w == "cf"), "row {i}");
                assert_eq!(*l, 1);
                assert_ne!(orig[i].1, 1, "row {i} came from another class");
            } else {
                assert_eq!((t, l), (&orig[i].0, &orig[i].1), "row {i}");
            }
        }
        // the trigger may occur in clean text (it is an ordinary rare word), with any label
        let with: Vec<usize> = clean
            .iter()
            .filter(|(t, _)| t.split_whitespace().any(|w| w == "cf"))
            .map(|(_, l)| *l)
            .collect();
        assert!(
            with.len() < 10,
            "cf stays rare in clean text: {}",
            with.len()
        );
    }
}
