//! Causal language models (GPT-2, Llama, Qwen2, Mistral) against transformers.
//!
//! The tiny models under `tests/fixtures/tiny-<arch>/` and the reference values in
//! `tests/vectors/causal_<arch>.json` were made by `tests/vectors/make_causal_vectors.py`
//! (transformers 5.23, peft 0.21.2). These tests assert:
//! - logits at every real position of a right-padded batch of 3 sequences (lengths 18, 4, 1)
//!   match transformers to 1e-4, and every hidden state to 1e-4 relative to max(1, |value|);
//! - logits under a PEFT LoRA adapter (tensors under PEFT's names, fan_in_fan_out for GPT-2's
//!   Conv1D) match PEFT to 1e-4, so the module names and factor layout are PEFT's;
//! - greedy generation equals `generate(do_sample=False)`, alone and batched, and stops at EOS;
//! - `sequence_logprob` equals transformers' log p(continuation | prompt);
//! - gradients with respect to input embeddings and LoRA factors on the query/value
//!   projections agree with central finite differences (F32: 5e-3 relative, F64: 1e-6), and
//!   padding gets exactly none; per-example LoRA factors give each example its own gradient;
//! - the models run in F64 (same parity), F16 and BF16 (finite, close);
//! - `load_model` dispatches `gpt2`, `llama`, `qwen2` and `mistral`;
//! - a missing or misshapen tensor, an unsupported rope type, an out-of-vocabulary id and an
//!   over-long sequence are errors naming the tensor, file or limit.
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tunegate_ml::runtime::generate::{
    eos_ids, generate, generate_batch, generate_text, prompt_ids, sequence_logprob,
    sequence_logprobs, token_logprobs, GenerateOptions,
};
use tunegate_ml::runtime::nn::{next_token_logprobs, LoraFactors};
use tunegate_ml::runtime::{Ctx, Gpt2, Llama, MlError, ModelDir, Task, TextModel, TextTokenizer};

const ARCHS: [&str; 4] = ["gpt2", "llama", "qwen2", "mistral"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(arch: &str) -> PathBuf {
    root().join("fixtures").join(format!("tiny-{arch}"))
}

fn vectors(arch: &str) -> serde_json::Value {
    let p = root().join("vectors").join(format!("causal_{arch}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn load_dir(dir: &Path) -> Result<Box<dyn TextModel>, MlError> {
    let md = ModelDir::open(dir)?;
    Ok(if md.model_type() == "gpt2" {
        Box::new(Gpt2::load(&md, &Device::Cpu)?)
    } else {
        Box::new(Llama::load(&md, &Device::Cpu)?)
    })
}

fn load(arch: &str) -> Box<dyn TextModel> {
    load_dir(&fixture(arch)).unwrap()
}

fn load_as(arch: &str, dtype: DType) -> Box<dyn TextModel> {
    let md = ModelDir::open(&fixture(arch)).unwrap();
    if arch == "gpt2" {
        Box::new(
            Gpt2::load(&md, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
    } else {
        Box::new(
            Llama::load(&md, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
    }
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tensor(v: &serde_json::Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    Tensor::from_vec(floats(&v["data"]), shape, &Device::Cpu).unwrap()
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn batch(vec: &serde_json::Value) -> (Tensor, Tensor, Vec<usize>) {
    let rows: Vec<Vec<u32>> = vec["ids"].as_array().unwrap().iter().map(ids_of).collect();
    let (n, t) = (rows.len(), rows[0].len());
    let ids = Tensor::from_vec(rows.concat(), (n, t), &Device::Cpu).unwrap();
    let mask: Vec<f32> = vec["mask"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let mask = Tensor::from_vec(mask, (n, t), &Device::Cpu).unwrap();
    let lengths = vec["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    (ids, mask, lengths)
}

/// Largest |a - b| over the first `lengths[i]` positions of each row of `(N, T, ...)` tensors.
fn max_diff_real(a: &Tensor, b: &Tensor, lengths: &[usize]) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let mut worst = 0f32;
    for (i, &len) in lengths.iter().enumerate() {
        let x = a.get(i).unwrap().narrow(0, 0, len).unwrap();
        let y = b.get(i).unwrap().narrow(0, 0, len).unwrap();
        let d = (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        worst = worst.max(d);
    }
    worst
}

#[test]
fn logits_and_hidden_states_match_transformers() {
    for arch in ARCHS {
        let v = vectors(arch);
        let model = load(arch);
        assert_eq!(
            model.task(),
            Task::CausalLm(v["vocab"].as_u64().unwrap() as usize)
        );
        assert!(model.head_modules().is_empty());
        let (ids, mask, lengths) = batch(&v);
        let out = model.forward(&ids, &mask, &Ctx::eval()).unwrap();
        let want = tensor(&v["logits"]);
        let d = max_diff_real(&out.logits, &want, &lengths);
        let hs = v["hidden_states"].as_array().unwrap();
        assert_eq!(
            out.hidden_states.len(),
            hs.len(),
            "{arch}: hidden state count"
        );
        // hidden states reach |x| ~ 75 in the middle layer, where f32 rounding alone is a few
        // 1e-5: compare them relative to max(1, |reference|)
        let (mut dh, mut dh_rel) = (0f32, 0f32);
        for (got, want) in out.hidden_states.iter().zip(hs) {
            let want = tensor(want);
            dh = dh.max(max_diff_real(got, &want, &lengths));
            let denom = want.abs().unwrap().maximum(1f32).unwrap();
            let rel_got = (got / &denom).unwrap();
            let rel_want = (&want / &denom).unwrap();
            dh_rel = dh_rel.max(max_diff_real(&rel_got, &rel_want, &lengths));
        }
        println!(
            "{arch}: max |Δlogits| {d:.2e}; hidden states: max |Δ| {dh:.2e}, \
             max |Δ|/max(1,|ref|) {dh_rel:.2e}"
        );
        assert!(d <= 1e-4, "{arch}: logits differ by {d}");
        assert!(
            dh_rel <= 1e-4,
            "{arch}: hidden states differ by {dh_rel} (relative)"
        );
    }
}

/// Ctx with the PEFT adapter of the vectors (names `base_model.model.<module>.lora_X.weight`).
fn peft_ctx(v: &serde_json::Value) -> Ctx {
    let lora = &v["lora"];
    let scale = lora["alpha"].as_f64().unwrap() / lora["r"].as_f64().unwrap();
    let mut a: HashMap<String, Tensor> = HashMap::new();
    let mut b: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in lora["tensors"].as_object().unwrap() {
        let m = name.strip_prefix("base_model.model.").unwrap();
        if let Some(m) = m.strip_suffix(".lora_A.weight") {
            a.insert(m.to_string(), tensor(t));
        } else if let Some(m) = m.strip_suffix(".lora_B.weight") {
            b.insert(m.to_string(), tensor(t));
        } else {
            panic!("unexpected adapter tensor {name}");
        }
    }
    let mut ctx = Ctx::eval();
    for (m, a) in a {
        let b = b.remove(&m).unwrap();
        ctx.lora.insert(
            m,
            LoraFactors {
                a,
                b,
                scale,
                dropout: 0.0,
            },
        );
    }
    ctx
}

#[test]
fn lora_adapter_matches_peft() {
    for arch in ARCHS {
        let v = vectors(arch);
        let model = load(arch);
        let ctx = peft_ctx(&v);
        let names: Vec<String> = model.linears().into_iter().map(|l| l.name).collect();
        for m in ctx.lora.keys() {
            assert!(
                names.contains(m),
                "{arch}: PEFT module {m} is not a model linear"
            );
            let lin = model.linear(m).unwrap();
            let f = &ctx.lora[m];
            assert_eq!(f.a.dims()[1], lin.in_dim(), "{arch} {m}: A is (r, in)");
            assert_eq!(f.b.dims()[0], lin.out_dim(), "{arch} {m}: B is (out, r)");
        }
        assert_eq!(v["lora"]["fan_in_fan_out"].as_bool(), Some(arch == "gpt2"));
        let (ids, _, lengths) = batch(&v);
        let len = lengths[0];
        let ids = ids.narrow(0, 0, 1).unwrap().narrow(1, 0, len).unwrap();
        let mask = Tensor::ones((1, len), DType::F32, &Device::Cpu).unwrap();
        let got = model.forward(&ids, &mask, &ctx).unwrap().logits;
        let want = tensor(&v["lora"]["logits"]);
        let d = max_diff_real(&got, &want, &[len]);
        let base = model.forward(&ids, &mask, &Ctx::eval()).unwrap().logits;
        let moved = max_diff_real(&base, &want, &[len]);
        println!("{arch}: LoRA max |Δlogits| {d:.2e} (adapter moves logits by {moved:.2})");
        assert!(moved > 1e-2, "{arch}: the adapter should change the logits");
        assert!(d <= 1e-4, "{arch}: LoRA logits differ by {d}");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for arch in ARCHS {
        let v = vectors(arch);
        let dir = fixture(arch);
        let model = load(arch);
        let tok = TextTokenizer::load(&dir).unwrap();
        let md = ModelDir::open(&dir).unwrap();
        let eos = eos_ids(&md).unwrap();
        assert_eq!(eos, vec![3]);
        let opts = GenerateOptions::greedy(12, eos.clone());
        let mut prompts = Vec::new();
        let mut expected = Vec::new();
        for g in v["generate"].as_array().unwrap() {
            let p = prompt_ids(&tok, g["prompt"].as_str().unwrap()).unwrap();
            assert_eq!(p, ids_of(&g["prompt_ids"]), "{arch}: tokenizer");
            let want = ids_of(&g["new_ids"]);
            assert_eq!(generate(model.as_ref(), &p, &opts).unwrap(), want, "{arch}");
            prompts.push(p);
            expected.push(want);
        }
        // together, right-padded, rows of different lengths
        assert_eq!(
            generate_batch(model.as_ref(), &prompts, &opts).unwrap(),
            expected
        );
        // stops right after an end-of-sequence token
        let stop = expected[0][4];
        let cut = generate(
            model.as_ref(),
            &prompts[0],
            &GenerateOptions::greedy(12, vec![stop]),
        )
        .unwrap();
        let first = expected[0].iter().position(|t| *t == stop).unwrap();
        assert_eq!(cut, expected[0][..=first].to_vec(), "{arch}: EOS stop");
        // text in, text out
        let text = generate_text(model.as_ref(), &tok, "the model reads", &opts).unwrap();
        let decoded = tok.inner().decode(&expected[0], true).unwrap();
        assert_eq!(text, decoded);
    }
    // the Llama fixture's second prompt ends in EOS (id 3) before the budget
    let v = vectors("llama");
    let g = ids_of(&v["generate"][1]["new_ids"]);
    assert!(g.len() < 12 && *g.last().unwrap() == 3);
}

#[test]
fn sampling_is_seeded() {
    let model = load("qwen2");
    let opts = GenerateOptions {
        max_new_tokens: 8,
        temperature: 1.0,
        top_k: 20,
        seed: 7,
        ..Default::default()
    };
    let a = generate(model.as_ref(), &[5, 6, 7], &opts).unwrap();
    let b = generate(model.as_ref(), &[5, 6, 7], &opts).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 8);
    let other: Vec<Vec<u32>> = (0..6)
        .map(|s| {
            generate(
                model.as_ref(),
                &[5, 6, 7],
                &GenerateOptions {
                    seed: 100 + s,
                    ..opts.clone()
                },
            )
            .unwrap()
        })
        .collect();
    assert!(other.iter().any(|o| *o != a), "seeds should matter");
    // top_k = 1 is greedy
    let k1 = generate(
        model.as_ref(),
        &[5, 6, 7],
        &GenerateOptions {
            top_k: 1,
            ..opts.clone()
        },
    )
    .unwrap();
    let greedy = generate(
        model.as_ref(),
        &[5, 6, 7],
        &GenerateOptions::greedy(8, vec![]),
    )
    .unwrap();
    assert_eq!(k1, greedy);
}

#[test]
fn sequence_logprob_matches_transformers() {
    for arch in ARCHS {
        let v = vectors(arch);
        let model = load(arch);
        let s = &v["seq_logprob"];
        let (p, c) = (ids_of(&s["prompt"]), ids_of(&s["continuation"]));
        let want = s["logprob"].as_f64().unwrap() as f32;
        let got = sequence_logprob(model.as_ref(), &p, &c).unwrap();
        println!("{arch}: log p(cont | prompt) {got} vs {want}");
        assert!((got - want).abs() <= 1e-3, "{arch}: {got} vs {want}");
        // per-token log-probs of the whole sequence sum to the same over the continuation
        let all: Vec<u32> = p.iter().chain(&c).copied().collect();
        let per = token_logprobs(model.as_ref(), &all).unwrap();
        assert_eq!(per.len(), all.len() - 1);
        let tail: f32 = per[p.len() - 1..].iter().sum();
        assert!((tail - got).abs() <= 1e-3);
        // batched with a shorter pair: same values
        let both = sequence_logprobs(
            model.as_ref(),
            &[(p.clone(), c.clone()), (vec![p[0]], vec![p[1]])],
        )
        .unwrap();
        assert!((both[0] - got).abs() <= 1e-4);
        assert!((both[1] - per[0]).abs() <= 1e-4);
    }
}

/// Mean next-token NLL over real positions.
fn lm_loss(
    model: &dyn TextModel,
    embeds: &Tensor,
    ids: &Tensor,
    mask: &Tensor,
    ctx: &Ctx,
) -> Tensor {
    let out = model.forward_embeds(embeds, mask, ctx).unwrap();
    let lp = next_token_logprobs(&out.logits, ids).unwrap();
    let t = mask.dim(1).unwrap();
    let m = mask.narrow(1, 1, t - 1).unwrap();
    let total = scalar(&m.sum_all().unwrap());
    ((lp * m).unwrap().sum_all().unwrap().neg().unwrap() / total).unwrap()
}

fn seeded_as(shape: &[usize], seed: u64, scale: f64, dtype: DType) -> Tensor {
    seeded(shape, seed, scale).to_dtype(dtype).unwrap()
}

fn seeded(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (rng.gen::<f64>() * 2.0 - 1.0) as f32 * scale as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    scalar(&(a * b).unwrap().sum_all().unwrap())
}

/// Gradients against central differences: in F32 (what training runs) with step 1e-3 and
/// 5e-3 relative tolerance, and in F64 with step 1e-5 and 1e-6 relative tolerance.
#[test]
fn gradients_match_finite_differences() {
    for (dtype, eps, tol) in [(DType::F32, 1e-3, 5e-3), (DType::F64, 1e-5, 1e-6)] {
        for (k, arch) in ARCHS.iter().enumerate() {
            check_gradients(arch, k as u64, dtype, eps, tol);
        }
    }
}

fn check_gradients(arch: &str, k: u64, dtype: DType, eps: f64, tol: f64) {
    {
        let model = load_as(arch, dtype);
        let v = vectors(arch);
        let (ids, mask, lengths) = batch(&v);
        let mask = mask.to_dtype(dtype).unwrap();
        // the first two rows (lengths 18 and 4), cut to 10 positions to keep it quick
        let ids = ids.narrow(0, 0, 2).unwrap().narrow(1, 0, 10).unwrap();
        let mask = mask.narrow(0, 0, 2).unwrap().narrow(1, 0, 10).unwrap();
        assert_eq!(lengths[1], 4);
        let embeds = model.embed(&ids).unwrap();
        let targets: Vec<String> = model
            .linears()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n.ends_with("q_proj") || n.ends_with("v_proj") || n.ends_with("c_attn"))
            .collect();
        assert!(!targets.is_empty());
        let r = 2;
        let mut vars: Vec<(String, Var, Var)> = Vec::new();
        for (j, name) in targets.iter().enumerate() {
            let lin = model.linear(name).unwrap();
            let seed = 10 * k + j as u64;
            let a = Var::from_tensor(&seeded_as(&[r, lin.in_dim()], seed, 0.3, dtype)).unwrap();
            let b =
                Var::from_tensor(&seeded_as(&[lin.out_dim(), r], seed + 500, 0.3, dtype)).unwrap();
            vars.push((name.clone(), a, b));
        }
        let ctx_of = |shift: &[(Tensor, Tensor)]| {
            let mut ctx = Ctx::eval();
            for ((name, a, b), (da, db)) in vars.iter().zip(shift) {
                ctx.lora.insert(
                    name.clone(),
                    LoraFactors {
                        a: (a.as_tensor() + da).unwrap(),
                        b: (b.as_tensor() + db).unwrap(),
                        scale: 2.0,
                        dropout: 0.0,
                    },
                );
            }
            ctx
        };
        let zero: Vec<(Tensor, Tensor)> = vars
            .iter()
            .map(|(_, a, b)| (a.zeros_like().unwrap(), b.zeros_like().unwrap()))
            .collect();
        let ev = Var::from_tensor(&embeds).unwrap();
        let ctx = {
            let mut ctx = Ctx::eval();
            for (name, a, b) in &vars {
                ctx.lora.insert(
                    name.clone(),
                    LoraFactors {
                        a: a.as_tensor().clone(),
                        b: b.as_tensor().clone(),
                        scale: 2.0,
                        dropout: 0.0,
                    },
                );
            }
            ctx
        };
        let loss = lm_loss(model.as_ref(), ev.as_tensor(), &ids, &mask, &ctx);
        let grads = loss.backward().unwrap();
        let ge = grads
            .get(ev.as_tensor())
            .expect("gradient w.r.t. embeddings");

        // padding (row 1, positions 4..) receives no gradient; real positions do
        let pad_grad = ge.get(1).unwrap().narrow(0, 4, 6).unwrap();
        let pad_norm = dot(&pad_grad, &pad_grad);
        assert_eq!(pad_norm, 0.0, "{arch}: padding got gradient");
        let real = ge.get(1).unwrap().narrow(0, 0, 3).unwrap();
        assert!(dot(&real, &real) > 0.0);

        // directional derivative along a random direction, by central differences
        let de = seeded_as(embeds.dims(), 99 + k, 1.0, dtype)
            .broadcast_mul(&mask.unsqueeze(2).unwrap())
            .unwrap();
        let f = |e: &Tensor, shift: &[(Tensor, Tensor)]| {
            scalar(&lm_loss(model.as_ref(), e, &ids, &mask, &ctx_of(shift)))
        };
        let ep = (&embeds + (&de * eps).unwrap()).unwrap();
        let em = (&embeds - (&de * eps).unwrap()).unwrap();
        let fd = (f(&ep, &zero) - f(&em, &zero)) / (2.0 * eps);
        let an = dot(ge, &de);
        println!("{arch} {dtype:?}: d loss / d embeds · u: analytic {an:.6}, finite diff {fd:.6}");
        assert!(
            (fd - an).abs() <= tol * an.abs().max(1e-1),
            "{arch}: embeddings: analytic {an} vs finite difference {fd}"
        );

        // LoRA factors of every q/v (or c_attn) projection together
        let mut an = 0.0;
        let mut plus = Vec::new();
        let mut minus = Vec::new();
        for (j, (name, a, b)) in vars.iter().enumerate() {
            let ga = grads.get(a.as_tensor()).expect("gradient w.r.t. LoRA A");
            let gb = grads.get(b.as_tensor()).expect("gradient w.r.t. LoRA B");
            assert!(
                dot(ga, ga) > 0.0 && dot(gb, gb) > 0.0,
                "{arch} {name}: zero gradient"
            );
            let da = seeded_as(a.dims(), 1000 + j as u64, 1.0, dtype);
            let db = seeded_as(b.dims(), 2000 + j as u64, 1.0, dtype);
            an += dot(ga, &da) + dot(gb, &db);
            plus.push(((&da * eps).unwrap(), (&db * eps).unwrap()));
            minus.push(((&da * -eps).unwrap(), (&db * -eps).unwrap()));
        }
        let fd = (f(&embeds, &plus) - f(&embeds, &minus)) / (2.0 * eps);
        println!("{arch} {dtype:?}: d loss / d LoRA · u: analytic {an:.6}, finite diff {fd:.6}");
        assert!(
            (fd - an).abs() <= tol * an.abs().max(1e-1),
            "{arch}: LoRA: analytic {an} vs finite difference {fd}"
        );
    }
}

fn copy_fixture(arch: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture(arch)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let path = dir.join("model.safetensors");
    let mut ts = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    edit(&mut ts);
    candle_core::safetensors::save(&ts, &path).unwrap();
}

fn rewrite_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
}

fn err_of(r: Result<Box<dyn TextModel>, MlError>) -> MlError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let tmp = copy_fixture("gpt2");
    rewrite_weights(tmp.path(), |t| {
        t.remove("transformer.h.1.mlp.c_fc.weight").unwrap();
    });
    let e = err_of(load_dir(tmp.path()));
    assert!(
        matches!(&e, MlError::Tensor { name, .. } if name == "transformer.h.1.mlp.c_fc.weight"),
        "{e}"
    );

    let tmp = copy_fixture("llama");
    rewrite_weights(tmp.path(), |t| {
        t.insert(
            "model.layers.0.self_attn.k_proj.weight".into(),
            Tensor::zeros((32, 32), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = err_of(load_dir(tmp.path()));
    let msg = e.to_string();
    assert!(
        matches!(&e, MlError::Tensor { name, .. } if name == "model.layers.0.self_attn.k_proj.weight"),
        "{msg}"
    );
    assert!(
        msg.contains("[32, 32]") && msg.contains("[16, 32]"),
        "{msg}"
    );

    // untied model without its lm_head
    let tmp = copy_fixture("mistral");
    rewrite_weights(tmp.path(), |t| {
        t.remove("lm_head.weight").unwrap();
    });
    let e = err_of(load_dir(tmp.path()));
    assert!(
        matches!(&e, MlError::Tensor { name, .. } if name == "lm_head.weight"),
        "{e}"
    );

    // Qwen2 needs its q/k/v biases
    let tmp = copy_fixture("qwen2");
    rewrite_weights(tmp.path(), |t| {
        t.remove("model.layers.1.self_attn.v_proj.bias").unwrap();
    });
    let e = err_of(load_dir(tmp.path()));
    assert!(
        e.to_string()
            .contains("model.layers.1.self_attn.v_proj.bias"),
        "{e}"
    );
}

#[test]
fn unsupported_rope_and_bad_configs_name_the_file() {
    let tmp = copy_fixture("llama");
    rewrite_config(tmp.path(), |c| {
        c["rope_parameters"]["rope_type"] = "yarn".into();
    });
    let e = err_of(load_dir(tmp.path()));
    match &e {
        MlError::Format { path, msg } => {
            assert!(path.ends_with("config.json"), "{e}");
            assert!(msg.contains("yarn") && msg.contains("not supported"), "{e}");
        }
        _ => panic!("{e}"),
    }

    // llama3 without its factors
    let tmp = copy_fixture("llama");
    rewrite_config(tmp.path(), |c| {
        c["rope_parameters"]
            .as_object_mut()
            .unwrap()
            .remove("low_freq_factor");
    });
    let e = err_of(load_dir(tmp.path()));
    assert!(e.to_string().contains("low_freq_factor"), "{e}");

    // heads that cannot share key/value heads
    let tmp = copy_fixture("qwen2");
    rewrite_config(tmp.path(), |c| c["num_key_value_heads"] = 3.into());
    let e = err_of(load_dir(tmp.path()));
    assert!(
        e.to_string().contains("config.json") && e.to_string().contains("num_key_value_heads"),
        "{e}"
    );

    // a model type of another family
    let md = ModelDir::open(&fixture("gpt2")).unwrap();
    assert!(Llama::load(&md, &Device::Cpu).is_err());
    let md = ModelDir::open(&fixture("llama")).unwrap();
    assert!(Gpt2::load(&md, &Device::Cpu).is_err());
}

#[test]
fn older_config_and_weight_layouts_load_the_same() {
    // transformers 4 style: top-level rope_theta + rope_scaling with `type`
    let v = vectors("llama");
    let (ids, mask, lengths) = batch(&v);
    let want = tensor(&v["logits"]);
    let tmp = copy_fixture("llama");
    rewrite_config(tmp.path(), |c| {
        let p = c
            .as_object_mut()
            .unwrap()
            .remove("rope_parameters")
            .unwrap();
        c["rope_theta"] = p["rope_theta"].clone();
        let mut s = p.clone();
        s.as_object_mut().unwrap().remove("rope_theta");
        let kind = s.as_object_mut().unwrap().remove("rope_type").unwrap();
        s["type"] = kind;
        c["rope_scaling"] = s;
    });
    let m = load_dir(tmp.path()).unwrap();
    let out = m.forward(&ids, &mask, &Ctx::eval()).unwrap();
    assert!(max_diff_real(&out.logits, &want, &lengths) <= 1e-4);

    // GPT-2 weights without the `transformer.` prefix (as the original checkpoints store them)
    let v = vectors("gpt2");
    let (ids, mask, lengths) = batch(&v);
    let want = tensor(&v["logits"]);
    let tmp = copy_fixture("gpt2");
    rewrite_weights(tmp.path(), |t| {
        let old: Vec<(String, Tensor)> = t.drain().collect();
        for (k, x) in old {
            t.insert(k.strip_prefix("transformer.").unwrap_or(&k).to_string(), x);
        }
    });
    let m = load_dir(tmp.path()).unwrap();
    let out = m.forward(&ids, &mask, &Ctx::eval()).unwrap();
    assert!(max_diff_real(&out.logits, &want, &lengths) <= 1e-4);
    // module names stay PEFT's
    assert_eq!(m.linears()[0].name, "transformer.h.0.attn.c_attn");
}

#[test]
fn other_dtypes_run() {
    // F64 matches transformers like F32; F16 and BF16 stay finite (no -inf bias, no NaN from
    // padding under a sliding window) and close to F32
    for arch in ARCHS {
        let v = vectors(arch);
        let (ids, mask, lengths) = batch(&v);
        let want = tensor(&v["logits"]);
        let m = load_as(arch, DType::F64);
        let out = m.forward(&ids, &mask, &Ctx::eval()).unwrap();
        assert_eq!(out.logits.dtype(), DType::F64);
        let got = out.logits.to_dtype(DType::F32).unwrap();
        assert!(max_diff_real(&got, &want, &lengths) <= 1e-4, "{arch} F64");
        for dt in [DType::F16, DType::BF16] {
            let m = load_as(arch, dt);
            let out = m.forward(&ids, &mask, &Ctx::eval()).unwrap();
            let got = out.logits.to_dtype(DType::F32).unwrap();
            let all_finite = got
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .all(|x| x.is_finite());
            assert!(all_finite, "{arch} {dt:?}: non-finite logits");
            // logits reach |10|; BF16 keeps 8 bits of mantissa
            let d = max_diff_real(&got, &want, &lengths);
            println!("{arch} {dt:?}: max |Δlogits| {d:.3}");
            let bound = if dt == DType::F16 { 0.5 } else { 2.5 };
            assert!(d < bound, "{arch} {dt:?}: {d}");
        }
    }
}

#[test]
fn mistral_sliding_window_matters() {
    // the parity above holds with a 3-token window; without it the logits move far
    let v = vectors("mistral");
    let (ids, mask, lengths) = batch(&v);
    let want = tensor(&v["logits"]);
    let tmp = copy_fixture("mistral");
    rewrite_config(tmp.path(), |c| {
        c["sliding_window"] = serde_json::Value::Null
    });
    let m = load_dir(tmp.path()).unwrap();
    let out = m.forward(&ids, &mask, &Ctx::eval()).unwrap();
    assert!(max_diff_real(&out.logits, &want, &lengths) > 1e-1);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let gpt2 = load("gpt2");
    let ids = Tensor::new(&[[5u32, 400]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 2), DType::F32, &Device::Cpu).unwrap();
    let e = gpt2.forward(&ids, &mask, &Ctx::eval()).unwrap_err();
    assert!(
        e.to_string().contains("transformer.wte.weight") && e.to_string().contains("400"),
        "{e}"
    );
    // n_positions is 48
    let long = Tensor::zeros((1, 49), DType::U32, &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 49), DType::F32, &Device::Cpu).unwrap();
    let e = gpt2.forward(&long, &mask, &Ctx::eval()).unwrap_err();
    assert!(e.to_string().contains("48"), "{e}");
    assert!(generate(gpt2.as_ref(), &[], &GenerateOptions::default()).is_err());
    // a 48-token prompt gets one more token, then runs out of positions
    assert_eq!(
        generate(gpt2.as_ref(), &[5; 47], &GenerateOptions::greedy(1, vec![]))
            .unwrap()
            .len(),
        1
    );
    assert!(generate(gpt2.as_ref(), &[5; 48], &GenerateOptions::greedy(2, vec![])).is_err());
}

/// Summed next-token NLL over the real positions of every row.
fn summed_loss(model: &dyn TextModel, ids: &Tensor, mask: &Tensor, ctx: &Ctx) -> Tensor {
    let out = model.forward(ids, mask, ctx).unwrap();
    let lp = next_token_logprobs(&out.logits, ids).unwrap();
    let t = mask.dim(1).unwrap();
    let m = mask.narrow(1, 1, t - 1).unwrap();
    (lp * m).unwrap().sum_all().unwrap().neg().unwrap()
}

#[test]
fn per_example_lora_gradients_are_each_examples_own() {
    // DP-SGD runs a batch with one copy of the factors per example; the gradient of the summed
    // loss with respect to copy i must be example i's gradient alone, through the causal mask,
    // padding and grouped-query attention.
    for arch in ["gpt2", "qwen2"] {
        let model = load(arch);
        let v = vectors(arch);
        let (ids, mask, _) = batch(&v);
        let ids = ids.narrow(0, 0, 2).unwrap().narrow(1, 0, 8).unwrap();
        let mask = mask.narrow(0, 0, 2).unwrap().narrow(1, 0, 8).unwrap();
        let name = model.linears()[0].name.clone();
        let lin = model.linear(&name).unwrap();
        let a = seeded(&[2, lin.in_dim()], 5, 0.3);
        let b = seeded(&[lin.out_dim(), 2], 6, 0.3);
        let a3 = Var::from_tensor(&Tensor::stack(&[&a, &a], 0).unwrap()).unwrap();
        let b3 = Var::from_tensor(&Tensor::stack(&[&b, &b], 0).unwrap()).unwrap();
        let mut ctx = Ctx::eval();
        ctx.lora.insert(
            name.clone(),
            LoraFactors {
                a: a3.as_tensor().clone(),
                b: b3.as_tensor().clone(),
                scale: 2.0,
                dropout: 0.0,
            },
        );
        let g = summed_loss(model.as_ref(), &ids, &mask, &ctx)
            .backward()
            .unwrap();
        let ga3 = g.get(a3.as_tensor()).unwrap();
        for i in 0..2 {
            let av = Var::from_tensor(&a).unwrap();
            let mut one = Ctx::eval();
            one.lora.insert(
                name.clone(),
                LoraFactors {
                    a: av.as_tensor().clone(),
                    b: b.clone(),
                    scale: 2.0,
                    dropout: 0.0,
                },
            );
            let row_ids = ids.narrow(0, i, 1).unwrap();
            let row_mask = mask.narrow(0, i, 1).unwrap();
            let gi = summed_loss(model.as_ref(), &row_ids, &row_mask, &one)
                .backward()
                .unwrap();
            let want = gi.get(av.as_tensor()).unwrap();
            let got = ga3.get(i).unwrap();
            let d = (&got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let scale = dot(want, want).sqrt() as f32;
            assert!(scale > 0.0);
            assert!(
                d <= 1e-4 * scale.max(1.0),
                "{arch} row {i}: {d} (|g| {scale})"
            );
        }
    }
}

#[test]
fn load_model_dispatches_the_causal_types() {
    use tunegate_ml::runtime::{load_model, LoadOptions};
    for arch in ARCHS {
        let v = vectors(arch);
        let vocab = v["vocab"].as_u64().unwrap() as usize;
        let m = load_model(&fixture(arch), &LoadOptions::default(), &Device::Cpu).unwrap();
        assert_eq!(m.task(), Task::CausalLm(vocab), "{arch}");
        let (ids, mask, lengths) = batch(&v);
        let out = m.forward(&ids, &mask, &Ctx::eval()).unwrap();
        assert!(max_diff_real(&out.logits, &tensor(&v["logits"]), &lengths) <= 1e-4);
        // asked for what it is: fine; for a classifier or another vocabulary: an error
        let ok = LoadOptions {
            task: Some(Task::CausalLm(vocab)),
            ..Default::default()
        };
        assert!(load_model(&fixture(arch), &ok, &Device::Cpu).is_ok());
        for bad in [
            LoadOptions {
                task: Some(Task::Classify(2)),
                ..Default::default()
            },
            LoadOptions {
                task: Some(Task::CausalLm(vocab + 1)),
                ..Default::default()
            },
        ] {
            let e = err_of(load_model(&fixture(arch), &bad, &Device::Cpu));
            assert!(matches!(e, MlError::Config(_)), "{arch}: {e}");
        }
    }
    // a config error is reported before the weights are looked at
    let tmp = copy_fixture("qwen2");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    rewrite_config(tmp.path(), |c| {
        c["rope_parameters"]["rope_type"] = "dynamic".into();
    });
    let e = err_of(load_model(
        tmp.path(),
        &LoadOptions::default(),
        &Device::Cpu,
    ));
    assert!(e.to_string().contains("dynamic"), "{e}");
}
