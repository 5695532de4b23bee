//! Trainer mechanics on test-only models: LoRA adapters (PEFT layout, load back, merge),
//! DP-SGD (per-example gradients, clipping, noise, Poisson sampling), reproducibility, and
//! tiny runs that learn a rule with and without DP.
mod common;

use candle_core::{Device, Tensor};
use common::{word, write_tokenizer, ToyClassifier, ToyLm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::path::Path;
use tunegate_ml::runtime::{Ctx, TextModel, TextTokenizer};
use tunegate_ml::train::dpsgd;
use tunegate_ml::train::lora::{Adapter, LoraSettings};
use tunegate_ml::train::trainer::{self, example_losses, Example, Target};
use tunegate_ml::train::{TrainConfig, TrainInputs};

const WORDS: usize = 24;
const VOCAB: usize = WORDS + 3;

fn settings(targets: &[&str]) -> LoraSettings {
    LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: targets.iter().map(|s| s.to_string()).collect(),
        modules_to_save: None,
        use_rslora: false,
    }
}

/// Give B (zero at init) random values so every factor has a gradient.
fn randomise_b(a: &Adapter, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for p in a.lora.values() {
        let n = p.b.elem_count();
        let v: Vec<f32> = (0..n).map(|_| rng.gen::<f32>() - 0.5).collect();
        p.b.set(&Tensor::from_vec(v, p.b.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn examples(n: usize, seed: u64) -> Vec<Example> {
    // ids 3.. are words; label 1 iff word 0 (id 3) occurs.
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let len = rng.gen_range(2..6);
            let mut ids: Vec<u32> = (0..len).map(|_| rng.gen_range(4..VOCAB as u32)).collect();
            let label = i % 2;
            if label == 1 {
                let at = rng.gen_range(0..len);
                ids[at] = 3;
            }
            Example {
                ids,
                target: Target::Label(label),
            }
        })
        .collect()
}

#[test]
fn targets_match_module_suffixes_and_a_follows_peft_init() {
    let m = ToyClassifier::new(VOCAB, 16, 2, 1);
    let a = Adapter::new(&m, &settings(&["dense"]), "toy", false, 7, &Device::Cpu).unwrap();
    assert_eq!(a.lora.keys().collect::<Vec<_>>(), ["encoder.dense"]);
    assert_eq!(a.heads.keys().collect::<Vec<_>>(), ["classifier"]);
    let p = &a.lora["encoder.dense"];
    assert_eq!(p.a.dims(), [4, 16]);
    assert_eq!(p.b.dims(), [16, 4]);
    // B is zero; A is uniform in ±1/√in (kaiming-uniform with a = √5).
    let b: Vec<f32> = p.b.flatten_all().unwrap().to_vec1().unwrap();
    assert!(b.iter().all(|x| *x == 0.0));
    let av: Vec<f32> = p.a.flatten_all().unwrap().to_vec1().unwrap();
    let bound = 1.0 / 4.0;
    assert!(av.iter().all(|x| x.abs() <= bound));
    assert!(
        av.iter().any(|x| x.abs() > bound * 0.7),
        "spread over the range"
    );
    // Heads start as the model's weights.
    let h = a.heads["classifier"].weight.as_tensor();
    let diff = (h - &m.head.weight)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    // all-linear takes every linear except the head; an unknown target is an error.
    let all = Adapter::new(
        &m,
        &settings(&["all-linear"]),
        "toy",
        false,
        7,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        all.lora.keys().collect::<Vec<_>>(),
        ["encoder.dense", "encoder.pool"]
    );
    let err = Adapter::new(&m, &settings(&["query"]), "toy", false, 7, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("query"), "{err}");
    // `ense` is not a dotted suffix of `encoder.dense`.
    assert!(Adapter::new(&m, &settings(&["ense"]), "toy", false, 7, &Device::Cpu).is_err());
    // Same seed, same A.
    let again = Adapter::new(&m, &settings(&["dense"]), "toy", false, 7, &Device::Cpu).unwrap();
    let av2: Vec<f32> = again.lora["encoder.dense"]
        .a
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(av, av2);
}

#[test]
fn saved_adapter_loads_back_and_merges_to_the_same_logits() {
    let dev = Device::Cpu;
    let m = ToyClassifier::new(VOCAB, 16, 3, 2);
    let a = Adapter::new(&m, &settings(&["all-linear"]), "toy", false, 3, &dev).unwrap();
    randomise_b(&a, 9);
    let d = tempfile::tempdir().unwrap();
    a.save(d.path()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "SEQ_CLS");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["target_modules"], serde_json::json!(["dense", "pool"]));
    assert_eq!(cfg["modules_to_save"], serde_json::json!(["classifier"]));
    let st = std::fs::read(d.path().join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "base_model.model.classifier.bias",
            "base_model.model.classifier.weight",
            "base_model.model.encoder.dense.lora_A.weight",
            "base_model.model.encoder.dense.lora_B.weight",
            "base_model.model.encoder.pool.lora_A.weight",
            "base_model.model.encoder.pool.lora_B.weight",
        ]
    );

    let ids = Tensor::new(&[[3u32, 5, 7, 9], [4, 6, 8, 0]], &dev).unwrap();
    let mask = Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 1., 0.]], &dev).unwrap();
    let want = m.forward(&ids, &mask, &a.ctx(false)).unwrap().logits;
    let back = Adapter::load(d.path(), &m, &dev).unwrap();
    let got = m.forward(&ids, &mask, &back.ctx(false)).unwrap().logits;
    let err = (&want - &got).unwrap().abs().unwrap().max_all().unwrap();
    assert!(err.to_scalar::<f32>().unwrap() < 1e-6);
    // and the adapter changes the output
    let base = m.forward(&ids, &mask, &Ctx::eval()).unwrap().logits;
    let moved = (&want - &base).unwrap().abs().unwrap().max_all().unwrap();
    assert!(moved.to_scalar::<f32>().unwrap() > 1e-3);

    // Merge: W + scale·B·A under the stored names; the head replaced.
    let base_dir = d.path().join("base");
    std::fs::create_dir_all(&base_dir).unwrap();
    let mut stored = std::collections::HashMap::new();
    for l in [&m.dense, &m.pool, &m.head] {
        stored.insert(format!("{}.weight", l.name), l.weight.clone());
        stored.insert(format!("{}.bias", l.name), l.bias.clone().unwrap());
    }
    stored.insert("embeddings.weight".to_string(), m.emb.clone());
    candle_core::safetensors::save(&stored, base_dir.join("model.safetensors")).unwrap();
    std::fs::write(base_dir.join("config.json"), "{}").unwrap();
    let out = d.path().join("merged");
    a.merge(&base_dir, &out).unwrap();
    let merged = candle_core::safetensors::load(out.join("model.safetensors"), &dev).unwrap();
    assert!(out.join("config.json").is_file());
    let mut mm = ToyClassifier::new(VOCAB, 16, 3, 2);
    mm.dense.weight = merged["encoder.dense.weight"].clone();
    mm.pool.weight = merged["encoder.pool.weight"].clone();
    mm.head.weight = merged["classifier.weight"].clone();
    mm.head.bias = Some(merged["classifier.bias"].clone());
    let got = mm.forward(&ids, &mask, &Ctx::eval()).unwrap().logits;
    let err = (&want - &got).unwrap().abs().unwrap().max_all().unwrap();
    assert!(err.to_scalar::<f32>().unwrap() < 1e-5);
}

#[test]
fn bad_adapters_are_refused_naming_the_problem() {
    let dev = Device::Cpu;
    let m = ToyClassifier::new(VOCAB, 16, 2, 2);
    let a = Adapter::new(&m, &settings(&["dense"]), "toy", false, 3, &dev).unwrap();
    let d = tempfile::tempdir().unwrap();
    a.save(d.path()).unwrap();
    // A model whose layer is narrower: shapes do not fit.
    let small = ToyClassifier::new(VOCAB, 8, 2, 2);
    let e = Adapter::load(d.path(), &small, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("base_model.model.") && e.contains("shape"),
        "{e}"
    );
    // DoRA is refused.
    let p = d.path().join("adapter_config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    cfg["use_dora"] = true.into();
    std::fs::write(&p, cfg.to_string()).unwrap();
    let e = Adapter::load(d.path(), &m, &dev).unwrap_err().to_string();
    assert!(
        e.contains("DoRA") && e.contains("adapter_config.json"),
        "{e}"
    );
}

#[test]
fn per_example_gradients_equal_separate_backward_passes() {
    let dev = Device::Cpu;
    let m = ToyClassifier::new(VOCAB, 16, 2, 4);
    let a = Adapter::new(&m, &settings(&["all-linear"]), "toy", false, 5, &dev).unwrap();
    randomise_b(&a, 11);
    let exs = examples(5, 1);
    let refs: Vec<&Example> = exs.iter().collect();
    let mut run = |ctx: &Ctx| Ok(example_losses(&m, &refs, 0, ctx, &dev)?.0);
    let (per, _, _) = dpsgd::per_example_grads(&a, 5, 0.0, None, &mut run).unwrap();
    let vars = a.vars();
    assert_eq!(per.len(), vars.len());
    for (i, e) in exs.iter().enumerate() {
        let ctx = a.ctx(false);
        let (l, _) = example_losses(&m, &[e], 0, &ctx, &dev).unwrap();
        let g = l.sum_all().unwrap().backward().unwrap();
        for (v, pe) in vars.iter().zip(&per) {
            let want = g.get(v.as_tensor()).expect("gradient");
            let got = pe.get(i).unwrap();
            let err = (want - &got).unwrap().abs().unwrap().max_all().unwrap();
            let scale = want.abs().unwrap().max_all().unwrap();
            let (err, scale) = (
                err.to_scalar::<f32>().unwrap(),
                scale.to_scalar::<f32>().unwrap(),
            );
            assert!(scale > 0.0, "every parameter has a gradient");
            assert!(
                err <= 1e-5 * scale.max(1.0),
                "example {i}: {err} vs {scale}"
            );
        }
    }
}

#[test]
fn clipping_bounds_every_per_example_norm() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mk = |rng: &mut ChaCha20Rng, shape: &[usize], s: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.gen::<f32>() - 0.5) * s).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    // 8 examples of two parameters, scaled so some are under and some over C.
    let g1 = mk(&mut rng, &[8, 3, 5], 1.0);
    let scales = Tensor::new(
        &[0.01f32, 0.1, 1.0, 10.0, 0.05, 3.0, 100.0, 0.2],
        &Device::Cpu,
    )
    .unwrap()
    .reshape((8, 1, 1))
    .unwrap();
    let g1 = g1.broadcast_mul(&scales).unwrap();
    let g2 = mk(&mut rng, &[8, 4], 2.0);
    let c = 0.5;
    let before = dpsgd::per_example_norms(&[g1.clone(), g2.clone()])
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (clipped, norms) = dpsgd::clip_per_example(&[g1, g2], c).unwrap();
    assert_eq!(norms, before);
    let after = dpsgd::per_example_norms(&clipped)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut some_clipped = false;
    for (b, a) in before.iter().zip(&after) {
        assert!(*a as f64 <= c + 1e-6, "clipped norm {a} > C");
        if (*b as f64) <= c {
            assert!(
                (a - b).abs() <= 1e-6 * b.max(1.0),
                "small gradients are kept"
            );
        } else {
            some_clipped = true;
            assert!((*a as f64 - c).abs() < 1e-4, "large gradients land on C");
        }
    }
    assert!(some_clipped);
}

#[test]
fn noise_has_standard_deviation_sigma_c() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let zeros = Tensor::zeros((200, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
    let (sigma, c) = (1.3, 0.7);
    let noised = dpsgd::add_noise(&[zeros], sigma * c, &mut rng).unwrap();
    let v: Vec<f32> = noised[0].flatten_all().unwrap().to_vec1().unwrap();
    let n = v.len() as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt();
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((std / (sigma * c) - 1.0).abs() < 0.03, "std {std}");
}

#[test]
fn poisson_sample_sizes_are_binomial() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (n, q) = (1000, 0.05);
    let sizes: Vec<f64> = (0..400)
        .map(|_| dpsgd::poisson_sample(n, q, &mut rng).len() as f64)
        .collect();
    let mean = sizes.iter().sum::<f64>() / sizes.len() as f64;
    let var = sizes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / sizes.len() as f64;
    let (em, ev) = (n as f64 * q, n as f64 * q * (1.0 - q));
    assert!((mean - em).abs() < 1.5, "mean {mean} vs {em}");
    assert!((var / ev - 1.0).abs() < 0.3, "variance {var} vs {ev}");
    // sizes vary (not a fixed batch)
    assert!(sizes.iter().any(|s| *s != sizes[0]));
    let s = dpsgd::poisson_sample(20, 0.5, &mut rng);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "distinct, in order");
}

// ---------------------------------------------------------------------------------------------
// Whole runs

fn write_data(dir: &Path, name: &str, n: usize, seed: u64) {
    let exs = examples(n, seed);
    let mut s = String::new();
    for e in exs {
        let text: Vec<String> = e.ids.iter().map(|i| word(*i as usize - 3)).collect();
        let Target::Label(l) = e.target else {
            unreachable!()
        };
        s.push_str(&serde_json::json!({"text": text.join(" "), "label": l}).to_string());
        s.push('\n');
    }
    std::fs::write(dir.join(name), s).unwrap();
}

fn classify_setup(dir: &Path) {
    write_tokenizer(dir, WORDS);
    write_data(dir, "train.jsonl", 192, 1);
    write_data(dir, "eval.jsonl", 64, 2);
}

fn run(dir: &Path, toml: &str, model: &dyn TextModel) -> tunegate_ml::train::Trained {
    let path = dir.join("train.toml");
    std::fs::write(&path, toml).unwrap();
    let cfg = TrainConfig::load(&path).unwrap();
    let tok = TextTokenizer::load(dir).unwrap();
    let (train, eval) = trainer::load_data(&cfg, model, &tok).unwrap();
    tunegate_ml::train::train(
        &cfg,
        TrainInputs {
            model,
            tokenizer: &tok,
            train,
            eval,
            base_name: "toy".into(),
            fan_in_fan_out: false,
            device: Device::Cpu,
        },
    )
    .unwrap()
}

const CLASSIFY: &str = r#"
model = "unused"
task = "classify"
seed = SEED
max_len = 16
[data]
train = "train.jsonl"
eval = "eval.jsonl"
[lora]
r = 4
alpha = 8
dropout = 0.1
target_modules = ["all-linear"]
[optim]
lr = 0.03
warmup_steps = 2
decay = "linear"
[train]
epochs = 6
batch_size = 8
grad_accum = 2
eval_every = 12
"#;

#[test]
fn a_tiny_classifier_learns_the_rule() {
    let d = tempfile::tempdir().unwrap();
    classify_setup(d.path());
    let m = ToyClassifier::new(VOCAB, 32, 2, 6);
    let t = run(d.path(), &CLASSIFY.replace("SEED", "1"), &m);
    let r = &t.report;
    assert_eq!(r.steps, 72, "6 epochs of 192 examples in batches of 16");
    assert_eq!(r.samples, 72 * 16);
    assert!(r.last_loss.unwrap() < r.first_loss.unwrap() * 0.5, "{r:?}");
    assert!(r.final_eval_accuracy.unwrap() >= 0.9, "{r:?}");
    assert_eq!(r.evals.len(), 6);
    assert!(r.dp.is_none());
}

#[test]
fn a_tiny_classifier_learns_the_rule_under_dp_sgd() {
    let d = tempfile::tempdir().unwrap();
    classify_setup(d.path());
    let m = ToyClassifier::new(VOCAB, 32, 2, 6);
    let toml = CLASSIFY
        .replace("SEED", "1")
        .replace("epochs = 6", "epochs = 10")
        + "[dp]\nenabled = true\nmax_grad_norm = 1.0\nnoise_multiplier = 0.6\ndelta = 1e-3\n";
    let t = run(d.path(), &toml, &m);
    let r = &t.report;
    let dp = r.dp.as_ref().expect("dp report");
    assert_eq!(dp.steps, 120);
    assert!((dp.sample_rate - 16.0 / 192.0).abs() < 1e-12);
    let want = tunegate_ml::dp::epsilon(0.6, 16.0 / 192.0, 120, 1e-3).unwrap();
    assert_eq!(dp.epsilon, Some(want.epsilon));
    assert!(dp.epsilon.unwrap() > 1.0 && dp.epsilon.unwrap().is_finite());
    assert!(r.final_eval_accuracy.unwrap() >= 0.8, "{r:?}");
    // target ε: σ is chosen so the run meets it
    let toml = CLASSIFY
        .replace("SEED", "1")
        .replace("epochs = 6", "max_steps = 5")
        + "[dp]\nenabled = true\ntarget_epsilon = 4.0\ndelta = 1e-3\n";
    let t = run(d.path(), &toml, &m);
    let dp = t.report.dp.unwrap();
    assert!(
        dp.epsilon.unwrap() <= 4.0 && dp.epsilon.unwrap() > 3.9,
        "{dp:?}"
    );
    assert_eq!(dp.target_epsilon, Some(4.0));
}

#[test]
fn runs_are_reproducible_and_the_seed_matters() {
    let d = tempfile::tempdir().unwrap();
    classify_setup(d.path());
    let m = ToyClassifier::new(VOCAB, 32, 2, 6);
    let bytes = |seed: &str, dp: bool| {
        let mut toml = CLASSIFY
            .replace("SEED", seed)
            .replace("epochs = 6", "max_steps = 4");
        if dp {
            toml += "[dp]\nenabled = true\nnoise_multiplier = 1.0\n";
        }
        let t = run(d.path(), &toml, &m);
        let out = d.path().join(format!("out-{seed}-{dp}"));
        t.adapter.save(&out).unwrap();
        std::fs::read(out.join("adapter_model.safetensors")).unwrap()
    };
    for dp in [false, true] {
        let a = bytes("1", dp);
        assert_eq!(a, bytes("1", dp), "same seed, same bytes (dp {dp})");
        assert_ne!(
            a,
            bytes("2", dp),
            "different seed, different adapter (dp {dp})"
        );
    }
}

#[test]
fn sft_masks_the_prompt_and_lowers_held_out_loss() {
    let d = tempfile::tempdir().unwrap();
    write_tokenizer(d.path(), WORDS);
    // Random prompts, a fixed response: only a model trained on the response tokens (not the
    // prompt's) gets its held-out loss far down.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut mk = |n: usize| {
        let mut s = String::new();
        for i in 0..n {
            let ws: Vec<usize> = (0..3).map(|_| rng.gen_range(0..WORDS - 1)).collect();
            let p: Vec<String> = ws.iter().map(|w| word(*w)).collect();
            let r: Vec<String> = [1, 2, 3].iter().map(|w| word(*w)).collect();
            let rec = if i % 2 == 0 {
                serde_json::json!({"prompt": p.join(" "), "response": r.join(" ")})
            } else {
                serde_json::json!({"messages": [
                    {"role": "user", "content": p.join(" ")},
                    {"role": "assistant", "content": r.join(" ")}]})
            };
            s.push_str(&rec.to_string());
            s.push('\n');
        }
        s
    };
    std::fs::write(d.path().join("train.jsonl"), mk(64)).unwrap();
    std::fs::write(d.path().join("eval.jsonl"), mk(32)).unwrap();
    let m = ToyLm::new(VOCAB, 16, 3);
    // The template's words are unknown to the toy vocabulary ([UNK]); the masks must still
    // put only response tokens and the end token in the loss.
    let tok = TextTokenizer::load(d.path()).unwrap();
    let rec = serde_json::json!({"prompt": "w1 w2", "response": "w3"});
    let ex = trainer::prepare(&[(1, rec)], Path::new("x.jsonl"), m.task(), &tok, 64).unwrap();
    let Target::Tokens(t) = &ex[0].target else {
        panic!()
    };
    let trained: Vec<u32> = ex[0]
        .ids
        .iter()
        .zip(t)
        .filter(|(_, on)| **on)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        trained,
        [tok.ids("w3", false).unwrap()[0], 2],
        "response then </s>"
    );
    let toml = r#"
model = "unused"
task = "sft"
max_len = 32
[data]
train = "train.jsonl"
eval = "eval.jsonl"
[lora]
r = 4
target_modules = ["fc", "lm_head"]
[optim]
lr = 0.02
decay = "cosine"
warmup_ratio = 0.1
[train]
epochs = 8
batch_size = 16
"#;
    let t = run(d.path(), toml, &m);
    let r = &t.report;
    let before = r.evals.first().unwrap().loss;
    assert_eq!(r.evals.len(), 1);
    // A zero-step baseline: the untrained adapter (B = 0) equals the base model.
    let tok = TextTokenizer::load(d.path()).unwrap();
    let cfg = TrainConfig::load(&d.path().join("train.toml")).unwrap();
    let (_, eval) = trainer::load_data(&cfg, &m, &tok).unwrap();
    let refs: Vec<&Example> = eval.iter().collect();
    let (l0, _) = example_losses(&m, &refs, 0, &Ctx::eval(), &Device::Cpu).unwrap();
    let base = l0.mean_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!(before < base * 0.4, "held-out loss {before} vs base {base}");
}

#[test]
fn bad_config_and_data_name_the_file_key_and_record() {
    let d = tempfile::tempdir().unwrap();
    classify_setup(d.path());
    let p = d.path().join("train.toml");
    let e = TrainConfig::parse(
        &p,
        &CLASSIFY
            .replace("SEED", "1")
            .replace("lr = 0.03", "lr = -1"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("train.toml") && e.contains("optim.lr"), "{e}");
    let e = TrainConfig::parse(
        &p,
        &CLASSIFY
            .replace("SEED", "1")
            .replace("[optim]", "[optim]\nlearning_rate = 1"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("learning_rate"), "{e}");
    let e = TrainConfig::parse(
        &p,
        &(CLASSIFY.replace("SEED", "1") + "[dp]\nenabled = true\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("noise_multiplier") && e.contains("target_epsilon"),
        "{e}"
    );

    let m = ToyClassifier::new(VOCAB, 32, 2, 6);
    let tok = TextTokenizer::load(d.path()).unwrap();
    std::fs::write(
        d.path().join("train.jsonl"),
        "{\"text\": \"w1\", \"label\": 0}\n{\"text\": \"w2\", \"label\": 5}\n",
    )
    .unwrap();
    let cfg = TrainConfig::parse(&p, &CLASSIFY.replace("SEED", "1")).unwrap();
    let e = match trainer::load_data(&cfg, &m, &tok) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("label 5 of 2 accepted"),
    };
    assert!(e.contains("train.jsonl:2") && e.contains("label 5"), "{e}");
    std::fs::write(
        d.path().join("train.jsonl"),
        "{\"text\": \"w1\"}\n{\"text\": \"w2\", \"label\": 1}\n",
    )
    .unwrap();
    let e = match trainer::load_data(&cfg, &m, &tok) {
        Err(e) => e.to_string(),
        Ok(_) => panic!(),
    };
    assert!(e.contains("train.jsonl:1") && e.contains("label"), "{e}");
}
