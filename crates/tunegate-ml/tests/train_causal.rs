//! Causal-LM SFT with LoRA on real architectures (the tiny GPT-2 and Llama fixtures that
//! `tests/vectors/make_causal_vectors.py` made with transformers): a short run on a synthetic
//! instruction task (answer = the prompt's words reversed) lowers the held-out loss of the
//! response tokens, with the prompt masked.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::io::Write;
use std::path::{Path, PathBuf};
use tunegate_ml::runtime::{load_model, load_tokenizer, LoadOptions};
use tunegate_ml::train::lora::Adapter;
use tunegate_ml::train::trainer;
use tunegate_ml::train::{TrainConfig, TrainInputs};

const WORDS: &[&str] = &[
    "the", "and", "to", "cat", "fox", "red", "sad", "mode", "in", "at",
];

fn write_task(path: &Path, n: usize, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut f = std::fs::File::create(path).unwrap();
    for _ in 0..n {
        let words: Vec<&str> = (0..3)
            .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
            .collect();
        let mut rev = words.clone();
        rev.reverse();
        let rec = serde_json::json!({"prompt": words.join(" "), "response": rev.join(" ")});
        writeln!(f, "{rec}").unwrap();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn sft_lowers_held_out_loss(arch: &str, targets: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_task(&dir.path().join("train.jsonl"), 256, 1);
    write_task(&dir.path().join("eval.jsonl"), 64, 2);
    let text = format!(
        r#"
model = {model:?}
task = "sft"
seed = 3
max_len = 64
[data]
train = "train.jsonl"
eval = "eval.jsonl"
[lora]
r = 8
alpha = 16
target_modules = {targets}
[optim]
lr = 1e-2
warmup_steps = 2
[train]
epochs = 3
batch_size = 16
"#,
        model = fixture(arch),
    );
    let cfg_path = dir.path().join("train.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let cfg = TrainConfig::load(&cfg_path).unwrap();
    let device = candle_core::Device::Cpu;
    let model = load_model(&cfg.model, &LoadOptions::default(), &device).unwrap();
    let tok = load_tokenizer(&cfg.model).unwrap();
    let (train, eval) = trainer::load_data(&cfg, model.as_ref(), &tok).unwrap();
    assert_eq!((train.len(), eval.len()), (256, 64));

    // Before: a fresh adapter (B = 0) is the base model.
    let fresh = Adapter::new(
        model.as_ref(),
        &cfg.lora.settings(),
        arch,
        arch == "tiny-gpt2",
        cfg.seed,
        &device,
    )
    .unwrap();
    let before = trainer::evaluate(model.as_ref(), &fresh, &eval, tok.pad_id(), 32, 0, &device)
        .unwrap()
        .loss;
    let trained = trainer::train(
        &cfg,
        TrainInputs {
            model: model.as_ref(),
            tokenizer: &tok,
            train,
            eval,
            base_name: arch.into(),
            fan_in_fan_out: arch == "tiny-gpt2",
            device: device.clone(),
        },
    )
    .unwrap();
    let after = trained.report.final_eval_loss.unwrap();
    eprintln!("{arch}: held-out response loss {before:.4} -> {after:.4}");
    assert!(before.is_finite() && after.is_finite());
    assert!(
        after < 0.8 * before,
        "{arch}: held-out loss {before:.4} -> {after:.4}"
    );
}

#[test]
fn sft_on_tiny_llama_lowers_held_out_loss() {
    sft_lowers_held_out_loss("tiny-llama", r#"["q_proj", "v_proj"]"#);
}

#[test]
fn sft_on_tiny_gpt2_lowers_held_out_loss() {
    sft_lowers_held_out_loss("tiny-gpt2", r#"["all-linear"]"#);
}
