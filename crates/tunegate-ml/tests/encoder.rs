//! tunegate's BERT / DistilBERT / RoBERTa against `transformers`, its gradients against finite
//! differences, and its errors on broken folders.
//!
//! Reference vectors: `tests/vectors/make_encoder_vectors.py` (run with the reference venv; it
//! also wrote the tiny fixtures under `tests/fixtures/tiny-*`). The MiniLM test reads the real
//! all-MiniLM-L6-v2 from `TUNEGATE_MINILM_DIR` and is skipped without it, unless
//! `TUNEGATE_REQUIRE_MODELS=1`.
use candle_core::{DType, Device, Tensor, Var, D};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tunegate_ml::runtime::bert::{mean_pool, sentence_embeddings, Pooling};
use tunegate_ml::runtime::nn::FullWeights;
use tunegate_ml::runtime::{
    load_encoder, load_model, load_tokenizer, Ctx, Encoder, LoadOptions, LoraFactors, MlError,
    Task, TextModel,
};

const TOL: f32 = 1e-4;

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("tiny-{arch}"))
}

fn vectors(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read vectors")).expect("json")
}

fn flat(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number")),
        other => panic!("unexpected {other:?} in vectors"),
    }
}

fn flatten(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flat(v, &mut out);
    out
}

/// Max |ours - reference| over all entries (shapes must agree in element count).
fn max_diff(ours: &Tensor, reference: &Value) -> f32 {
    let a: Vec<f32> = ours
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b = flatten(reference);
    assert_eq!(a.len(), b.len(), "element count differs from the reference");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (*x as f64 - y).abs() as f32)
        .fold(0.0, f32::max)
}

fn ids_of(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn sentences(v: &Value) -> Vec<String> {
    v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Tokenize the reference sentences with tunegate's tokenizer and check it gives the ids
/// `transformers` ran on.
fn batch_for(dir: &Path, v: &Value) -> tunegate_ml::runtime::Batch {
    let tok = load_tokenizer(dir).expect("tokenizer");
    let s = sentences(v);
    let refs: Vec<&str> = s.iter().map(|x| x.as_str()).collect();
    let batch = tok.batch(&refs, 512, &Device::Cpu).expect("batch");
    let ours: Vec<Vec<u32>> = batch.ids.to_vec2().unwrap();
    assert_eq!(
        ours,
        ids_of(&v["ids"]),
        "tokenizer ids differ from the reference"
    );
    let mask: Vec<Vec<f32>> = batch.mask.to_vec2().unwrap();
    let ref_mask: Vec<Vec<f32>> = ids_of(&v["mask"])
        .into_iter()
        .map(|r| r.into_iter().map(|x| x as f32).collect())
        .collect();
    assert_eq!(mask, ref_mask);
    batch
}

fn tiny_parity(arch: &str) {
    let v = &vectors("encoder_tiny.json")[arch];
    let dir = fixture(arch);
    let model = load_model(&dir, &LoadOptions::default(), &Device::Cpu).expect("load");
    let batch = batch_for(&dir, v);
    let out = model
        .forward(&batch.ids, &batch.mask, &Ctx::eval())
        .unwrap();
    let refs = v["hidden_states"].as_array().unwrap();
    assert_eq!(out.hidden_states.len(), refs.len(), "hidden state count");
    assert_eq!(out.hidden_states.len(), 3, "embeddings + 2 layers");
    let dl = max_diff(&out.logits, &v["logits"]);
    let dh = out
        .hidden_states
        .iter()
        .zip(refs)
        .map(|(h, r)| max_diff(h, r))
        .fold(0.0, f32::max);
    eprintln!("tiny-{arch}: max |logits diff| {dl:.2e}, max |hidden diff| {dh:.2e}");
    assert!(dl <= TOL, "tiny-{arch} logits differ by {dl}");
    assert!(dh <= TOL, "tiny-{arch} hidden states differ by {dh}");
    let labels = v["logits"].as_array().unwrap()[0].as_array().unwrap().len();
    assert_eq!(model.task(), Task::Classify(labels));
}

#[test]
fn tiny_bert_matches_transformers() {
    tiny_parity("bert");
}

#[test]
fn tiny_distilbert_matches_transformers() {
    tiny_parity("distilbert");
}

#[test]
fn tiny_roberta_matches_transformers() {
    tiny_parity("roberta");
}

fn minilm_dir() -> Option<PathBuf> {
    match std::env::var_os("TUNEGATE_MINILM_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None if std::env::var("TUNEGATE_REQUIRE_MODELS").as_deref() == Ok("1") => {
            panic!("TUNEGATE_REQUIRE_MODELS=1 but TUNEGATE_MINILM_DIR is not set")
        }
        None => {
            eprintln!("skipped: TUNEGATE_MINILM_DIR is not set (the all-MiniLM-L6-v2 folder)");
            None
        }
    }
}

#[test]
fn minilm_matches_transformers() {
    let Some(dir) = minilm_dir() else { return };
    let v = vectors("encoder_minilm.json");
    let dev = Device::Cpu;
    let model = load_encoder(&dir, &LoadOptions::default(), &dev).expect("load MiniLM");
    assert!(!model.has_pretrained_head(), "MiniLM is a plain BertModel");
    assert_eq!(
        model.linears()[0].name,
        "bert.encoder.layer.0.attention.self.query"
    );
    assert_peft_names(&model, &v["peft"], "MiniLM");
    let batch = batch_for(&dir, &v);
    // The reference logits come from a fixed classifier on the pooler output; install it as a
    // replaced module, as the trainer does for a trained head.
    let w = Tensor::from_vec(
        flatten(&v["classifier_weight"])
            .iter()
            .map(|x| *x as f32)
            .collect::<Vec<_>>(),
        (2, 384),
        &dev,
    )
    .unwrap();
    let b = Tensor::from_vec(
        flatten(&v["classifier_bias"])
            .iter()
            .map(|x| *x as f32)
            .collect::<Vec<_>>(),
        2,
        &dev,
    )
    .unwrap();
    let mut ctx = Ctx::eval();
    ctx.full.insert(
        "classifier".into(),
        FullWeights {
            weight: w,
            bias: Some(b),
        },
    );
    let out = model.forward(&batch.ids, &batch.mask, &ctx).unwrap();
    let layers = v["layers"].as_u64().unwrap() as usize;
    assert_eq!(out.hidden_states.len(), layers);
    let last = out.hidden_states.last().unwrap();

    let d_last = max_diff(last, &v["last_hidden_state"]);
    // the same, over real tokens only (padding rows are computed but carry no meaning)
    let ours: Vec<Vec<Vec<f32>>> = last.to_vec3().unwrap();
    let reference = &v["last_hidden_state"];
    let mut d_last_real = 0f32;
    for (i, row) in ours.iter().enumerate() {
        for (t, tok) in row.iter().enumerate().take(batch.lengths[i]) {
            for (k, x) in tok.iter().enumerate() {
                let r = reference[i][t][k].as_f64().unwrap();
                d_last_real = d_last_real.max((*x as f64 - r).abs() as f32);
            }
        }
    }
    let probe: Vec<u32> = flatten(&v["probe_dims"])
        .iter()
        .map(|x| *x as u32)
        .collect();
    let probe = Tensor::new(probe.as_slice(), &dev).unwrap();
    let (mut d_mean, mut d_probe, mut d_l2_rel) = (0f32, 0f32, 0f32);
    for (h, s) in out
        .hidden_states
        .iter()
        .zip(v["hidden_summary"].as_array().unwrap())
    {
        d_mean = d_mean.max(max_diff(&h.mean(D::Minus1).unwrap(), &s["mean"]));
        d_probe = d_probe.max(max_diff(&h.index_select(&probe, 2).unwrap(), &s["probe"]));
        let l2: Vec<f32> = h
            .sqr()
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            .sqrt()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, r) in l2.iter().zip(flatten(&s["l2"])) {
            d_l2_rel = d_l2_rel.max(((*a as f64 - r).abs() / r.max(1.0)) as f32);
        }
    }
    let pooled = mean_pool(last, &batch.mask).unwrap();
    let d_pool = max_diff(&pooled, &v["mean_pooled"]);
    let via_api = sentence_embeddings(&model, &batch, Pooling::Mean, false).unwrap();
    assert_eq!(max_diff(&via_api, &v["mean_pooled"]), d_pool);
    let pooler = model.pooler_output(last, &Ctx::eval()).unwrap().unwrap();
    let d_pooler = max_diff(&pooler, &v["pooler_output"]);
    let d_logits = max_diff(&out.logits, &v["logits"]);
    eprintln!(
        "MiniLM: last hidden {d_last:.2e} (real tokens {d_last_real:.2e}), all layers: mean {d_mean:.2e} probe {d_probe:.2e} \
         l2 (rel) {d_l2_rel:.2e}; mean-pooled {d_pool:.2e}; pooler {d_pooler:.2e}; logits {d_logits:.2e}"
    );
    for (what, d) in [
        ("last hidden state", d_last),
        ("last hidden state (real tokens)", d_last_real),
        ("hidden-state means", d_mean),
        ("hidden-state coordinates", d_probe),
        ("hidden-state norms", d_l2_rel),
        ("mean-pooled embeddings", d_pool),
        ("pooler output", d_pooler),
        ("logits", d_logits),
    ] {
        assert!(d <= TOL, "MiniLM {what} differ by {d}");
    }
    // normalized embeddings have unit norm
    let unit = sentence_embeddings(&model, &batch, Pooling::Mean, true).unwrap();
    let norms: Vec<f32> = unit
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
}

// ---------------------------------------------------------------------------------------
// Folders rewritten from the fixtures.

/// Copy fixture `arch` to a temp folder, letting `edit` change the tensors and config.
fn rewrite(
    arch: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>, &mut Value),
) -> tempfile::TempDir {
    let src = fixture(arch);
    let dst = tempfile::tempdir().unwrap();
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut tensors, &mut config);
    candle_core::safetensors::save(&tensors, dst.path().join("model.safetensors")).unwrap();
    std::fs::write(
        dst.path().join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        src.join("tokenizer.json"),
        dst.path().join("tokenizer.json"),
    )
    .unwrap();
    dst
}

fn tiny_inputs(arch: &str) -> tunegate_ml::runtime::Batch {
    let v = &vectors("encoder_tiny.json")[arch];
    batch_for(&fixture(arch), v)
}

fn logits_of(model: &dyn TextModel, arch: &str) -> Tensor {
    let b = tiny_inputs(arch);
    model.forward(&b.ids, &b.mask, &Ctx::eval()).unwrap().logits
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn names(infos: Vec<tunegate_ml::runtime::LinearInfo>) -> Vec<String> {
    infos.into_iter().map(|i| i.name).collect()
}

/// Our LoRA targets are PEFT's LoRA module names, and our head modules are exactly the
/// modules inside PEFT's `modules_to_save` (RoBERTa's `classifier` is a container of two).
fn assert_peft_names(model: &dyn TextModel, peft: &Value, what: &str) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(model.linears()),
        strings(&peft["lora_modules"]),
        "{what}: LoRA module names"
    );
    let saved = strings(&peft["modules_to_save"]);
    for h in names(model.head_modules()) {
        assert!(
            saved
                .iter()
                .any(|s| h == *s || h.starts_with(&format!("{s}."))),
            "{what}: head module {h} is not in PEFT's modules_to_save {saved:?}"
        );
    }
    for s in &saved {
        assert!(
            names(model.head_modules())
                .iter()
                .any(|h| h == s || h.starts_with(&format!("{s}."))),
            "{what}: PEFT saves {s}, which is not a head module"
        );
    }
}

#[test]
fn module_names_are_pefts() {
    let v = vectors("encoder_tiny.json");
    for arch in ["bert", "distilbert", "roberta"] {
        let m = load_model(&fixture(arch), &LoadOptions::default(), &Device::Cpu).unwrap();
        assert_peft_names(&*m, &v[arch]["peft"], arch);
    }
}

#[test]
fn module_names_and_sizes() {
    let dev = Device::Cpu;
    let o = LoadOptions::default();
    let bert = load_model(&fixture("bert"), &o, &dev).unwrap();
    let l = names(bert.linears());
    assert_eq!(l.len(), 2 * 6 + 1);
    assert_eq!(
        &l[..6],
        [
            "bert.encoder.layer.0.attention.self.query",
            "bert.encoder.layer.0.attention.self.key",
            "bert.encoder.layer.0.attention.self.value",
            "bert.encoder.layer.0.attention.output.dense",
            "bert.encoder.layer.0.intermediate.dense",
            "bert.encoder.layer.0.output.dense",
        ]
    );
    assert_eq!(l[12], "bert.pooler.dense");
    assert_eq!(names(bert.head_modules()), ["classifier"]);
    let info = &bert.head_modules()[0];
    assert_eq!((info.in_dim, info.out_dim), (32, 3));
    assert!(bert.linear("bert.encoder.layer.1.output.dense").is_some());
    assert!(bert.linear("encoder.layer.1.output.dense").is_none());

    let distil = load_model(&fixture("distilbert"), &o, &dev).unwrap();
    let l = names(distil.linears());
    assert_eq!(l[0], "distilbert.transformer.layer.0.attention.q_lin");
    assert_eq!(l[3], "distilbert.transformer.layer.0.attention.out_lin");
    assert_eq!(l[11], "distilbert.transformer.layer.1.ffn.lin2");
    assert_eq!(l.len(), 12);
    assert_eq!(
        names(distil.head_modules()),
        ["pre_classifier", "classifier"]
    );

    let roberta = load_model(&fixture("roberta"), &o, &dev).unwrap();
    assert_eq!(
        names(roberta.linears())[4],
        "roberta.encoder.layer.0.intermediate.dense"
    );
    assert_eq!(
        roberta.linears().len(),
        12,
        "no pooler in RoBERTa's classifier"
    );
    assert_eq!(
        names(roberta.head_modules()),
        ["classifier.dense", "classifier.out_proj"]
    );
    assert_eq!(roberta.embedding_matrix().dims(), [118, 32]);
}

/// A `BertModel` checkpoint (keys without `bert.`, no head): same encoder, same module names,
/// a fresh head that depends only on the seed.
#[test]
fn unprefixed_headless_checkpoint_gets_prefixed_names_and_seeded_head() {
    let dev = Device::Cpu;
    let dir = rewrite("bert", |t, c| {
        *t = t
            .drain()
            .filter(|(k, _)| k.starts_with("bert."))
            .map(|(k, v)| (k["bert.".len()..].to_string(), v))
            .collect();
        c["architectures"] = serde_json::json!(["BertModel"]);
    });
    let opts = |seed| LoadOptions {
        num_labels: Some(4),
        seed,
        ..Default::default()
    };
    let a = load_encoder(dir.path(), &opts(7), &dev).unwrap();
    assert!(!a.has_pretrained_head());
    assert_eq!(a.task(), Task::Classify(4));
    let orig = load_encoder(&fixture("bert"), &LoadOptions::default(), &dev).unwrap();
    assert_eq!(names(a.linears()), names(orig.linears()));
    assert_eq!(names(a.head_modules()), ["classifier"]);
    let b = tiny_inputs("bert");
    let ha = a.forward(&b.ids, &b.mask, &Ctx::eval()).unwrap();
    let ho = orig.forward(&b.ids, &b.mask, &Ctx::eval()).unwrap();
    for (x, y) in ha.hidden_states.iter().zip(&ho.hidden_states) {
        assert_eq!(max_abs(x, y), 0.0);
    }
    // fresh head: N(0, initializer_range) weights, zero bias, reproducible from the seed
    let head = a.linear("classifier").unwrap();
    assert_eq!(head.weight.dims(), [4, 32]);
    let w: Vec<f32> = head.weight.flatten_all().unwrap().to_vec1().unwrap();
    let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    assert!(
        (0.15..0.25).contains(&std),
        "std {std} for initializer_range 0.2"
    );
    let bias: Vec<f32> = head.bias.as_ref().unwrap().to_vec1().unwrap();
    assert!(bias.iter().all(|x| *x == 0.0));
    let again = load_encoder(dir.path(), &opts(7), &dev).unwrap();
    assert_eq!(max_abs(&logits_of(&again, "bert"), &ha.logits), 0.0);
    let other = load_encoder(dir.path(), &opts(8), &dev).unwrap();
    assert!(max_abs(&logits_of(&other, "bert"), &ha.logits) > 1e-4);
    // head_init on a loaded model replaces the head the same way
    let mut c = orig.clone();
    assert!(c.has_pretrained_head());
    c.head_init(4, 7).unwrap();
    assert_eq!(
        max_abs(
            &c.linear("classifier").unwrap().weight,
            &a.linear("classifier").unwrap().weight
        ),
        0.0
    );
}

#[test]
fn legacy_gamma_beta_names_load() {
    let dir = rewrite("bert", |t, _| {
        *t = t
            .drain()
            .map(|(k, v)| {
                let k = if k.contains("LayerNorm") {
                    k.replace(".weight", ".gamma").replace(".bias", ".beta")
                } else {
                    k
                };
                (k, v)
            })
            .collect();
        assert!(t.contains_key("bert.embeddings.LayerNorm.gamma"));
    });
    let dev = Device::Cpu;
    let a = load_model(dir.path(), &LoadOptions::default(), &dev).unwrap();
    let b = load_model(&fixture("bert"), &LoadOptions::default(), &dev).unwrap();
    assert_eq!(
        max_abs(&logits_of(&*a, "bert"), &logits_of(&*b, "bert")),
        0.0
    );
}

#[test]
fn xlm_roberta_model_type_uses_the_roberta_file() {
    let dir = rewrite("roberta", |_, c| {
        c["model_type"] = "xlm-roberta".into();
    });
    let dev = Device::Cpu;
    let a = load_model(dir.path(), &LoadOptions::default(), &dev).unwrap();
    let v = &vectors("encoder_tiny.json")["roberta"];
    assert!(max_diff(&logits_of(&*a, "roberta"), &v["logits"]) <= TOL);
    assert_eq!(
        a.linears()[0].name,
        "roberta.encoder.layer.0.attention.self.query"
    );
}

/// RoBERTa positions come from the mask: the same sentence alone and padded in a batch gives
/// the same logits.
#[test]
fn padding_does_not_change_results() {
    let dev = Device::Cpu;
    for arch in ["bert", "distilbert", "roberta"] {
        let m = load_model(&fixture(arch), &LoadOptions::default(), &dev).unwrap();
        let b = tiny_inputs(arch);
        let all = m.forward(&b.ids, &b.mask, &Ctx::eval()).unwrap().logits;
        let len = b.lengths[0];
        let one = m
            .forward(
                &b.ids.narrow(0, 0, 1).unwrap().narrow(1, 0, len).unwrap(),
                &b.mask.narrow(0, 0, 1).unwrap().narrow(1, 0, len).unwrap(),
                &Ctx::eval(),
            )
            .unwrap()
            .logits;
        let d = max_abs(&all.narrow(0, 0, 1).unwrap(), &one);
        assert!(d < 1e-5, "{arch}: padded vs alone differ by {d}");
    }
}

// ---------------------------------------------------------------------------------------
// Gradients.

/// Summed cross-entropy of `logits` `(N, C)` against `labels`.
fn ce_loss(logits: &Tensor, labels: &[u32]) -> Tensor {
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1).unwrap();
    let idx = Tensor::new(labels, logits.device())
        .unwrap()
        .unsqueeze(1)
        .unwrap();
    lp.gather(&idx, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar().unwrap()
}

fn get(t: &Tensor, idx: &[usize]) -> f64 {
    let flat = t.flatten_all().unwrap();
    let strides: Vec<usize> = {
        let d = t.dims();
        (0..d.len()).map(|i| d[i + 1..].iter().product()).collect()
    };
    let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
    flat.get(off).unwrap().to_scalar::<f64>().unwrap()
}

/// `t` with `delta` added at `idx`.
fn bump(t: &Tensor, idx: &[usize], delta: f64) -> Tensor {
    let mut v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
    let d = t.dims();
    let off: usize = idx
        .iter()
        .enumerate()
        .map(|(k, i)| i * d[k + 1..].iter().product::<usize>())
        .sum();
    v[off] += delta;
    Tensor::from_vec(v, d, t.device()).unwrap()
}

fn f64_model(arch: &str) -> Encoder {
    load_encoder(&fixture(arch), &LoadOptions::default(), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

fn labels_for(n: usize, classes: usize) -> Vec<u32> {
    (0..n).map(|i| (i % classes) as u32).collect()
}

/// Backward against a central difference (h = 1e-5, f64). The bound is 2e-5 relative, not
/// 1e-9: candle's GELU backward uses 6-digit constants (0.398942 for 1/sqrt(2 pi), ...), which
/// puts about 1e-6 relative error into every gradient behind a GELU. A wrong gradient
/// (a missing path, a cut graph) is off by far more.
fn assert_close(analytic: f64, numeric: f64, what: &str) {
    let err = (analytic - numeric).abs();
    assert!(
        err <= 2e-5 * analytic.abs().max(numeric.abs()).max(1e-3),
        "{what}: backward {analytic:.10e}, finite difference {numeric:.10e}"
    );
}

#[test]
fn input_embedding_gradients_match_finite_differences() {
    for arch in ["bert", "distilbert", "roberta"] {
        let m = f64_model(arch);
        let b = tiny_inputs(arch);
        let mask = b.mask.to_dtype(DType::F64).unwrap();
        let Task::Classify(c) = m.task() else {
            panic!()
        };
        let labels = labels_for(b.lengths.len(), c);
        let emb = m.embed(&b.ids).unwrap();
        let var = Var::from_tensor(&emb).unwrap();
        let loss = |e: &Tensor| {
            ce_loss(
                &m.forward_embeds(e, &mask, &Ctx::eval()).unwrap().logits,
                &labels,
            )
        };
        let grads = loss(var.as_tensor()).backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .expect("gradient reaches the input embeddings");
        let h = 1e-5;
        for idx in [
            [0, 0, 0],
            [1, 3, 7],
            [3, 15, 31],
            [4, 2, 5],
            [5, 4, 19],
            [2, 1, 12],
        ] {
            let fd = (scalar(&loss(&bump(&emb, &idx, h))) - scalar(&loss(&bump(&emb, &idx, -h))))
                / (2.0 * h);
            assert_close(
                get(g, &idx),
                fd,
                &format!("{arch} d loss / d embeds{idx:?}"),
            );
            assert!(
                get(g, &idx).abs() > 1e-8,
                "{arch}: zero gradient at {idx:?}"
            );
        }
        // padding positions do not influence the loss at all
        for (row, &len) in b.lengths.iter().enumerate() {
            let t = b.ids.dims()[1];
            if len < t {
                let pad = g.get(row).unwrap().narrow(0, len, t - len).unwrap();
                assert_eq!(
                    scalar(&pad.abs().unwrap().sum_all().unwrap()),
                    0.0,
                    "{arch} row {row}"
                );
            }
        }
    }
}

/// Seeded uniform values in [-0.3, 0.3).
fn uniform(shape: (usize, usize), seed: u64, dtype: DType) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| rng.gen::<f64>() * 0.6 - 0.3)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Seeded LoRA factors of rank `r` (B non-zero, so A has a gradient) for `targets`.
fn lora(
    m: &Encoder,
    targets: &[&str],
    r: usize,
    seed: u64,
    dtype: DType,
) -> Vec<(String, Tensor, Tensor)> {
    targets
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let l = m.linear(name).unwrap_or_else(|| panic!("no module {name}"));
            let s = seed + 2 * k as u64;
            (
                name.to_string(),
                uniform((r, l.in_dim()), s, dtype),
                uniform((l.out_dim(), r), s + 1, dtype),
            )
        })
        .collect()
}

fn ctx_with(factors: &[(String, Tensor, Tensor)]) -> Ctx {
    let mut ctx = Ctx::eval();
    for (n, a, b) in factors {
        ctx.lora.insert(
            n.clone(),
            LoraFactors {
                a: a.clone(),
                b: b.clone(),
                scale: 2.0,
                dropout: 0.0,
            },
        );
    }
    ctx
}

#[test]
fn lora_gradients_match_finite_differences() {
    for (arch, targets) in [
        (
            "bert",
            vec![
                "bert.encoder.layer.0.attention.self.query",
                "bert.encoder.layer.1.attention.self.value",
                "bert.encoder.layer.1.output.dense",
            ],
        ),
        (
            "distilbert",
            vec![
                "distilbert.transformer.layer.0.attention.k_lin",
                "distilbert.transformer.layer.1.ffn.lin1",
            ],
        ),
        (
            "roberta",
            vec![
                "roberta.encoder.layer.0.attention.output.dense",
                "roberta.encoder.layer.1.attention.self.query",
            ],
        ),
    ] {
        let m = f64_model(arch);
        let b = tiny_inputs(arch);
        let mask = b.mask.to_dtype(DType::F64).unwrap();
        let Task::Classify(c) = m.task() else {
            panic!()
        };
        let labels = labels_for(b.lengths.len(), c);
        let factors = lora(&m, &targets, 2, 11, DType::F64);
        let vars: Vec<(Var, Var)> = factors
            .iter()
            .map(|(_, a, b)| (Var::from_tensor(a).unwrap(), Var::from_tensor(b).unwrap()))
            .collect();
        let live: Vec<(String, Tensor, Tensor)> = factors
            .iter()
            .zip(&vars)
            .map(|((n, _, _), (a, b))| (n.clone(), a.as_tensor().clone(), b.as_tensor().clone()))
            .collect();
        let loss = |f: &[(String, Tensor, Tensor)]| {
            ce_loss(
                &m.forward(&b.ids, &mask, &ctx_with(f)).unwrap().logits,
                &labels,
            )
        };
        let grads = loss(&live).backward().unwrap();
        let h = 1e-5;
        for (k, (va, vb)) in vars.iter().enumerate() {
            let ga = grads.get(va.as_tensor()).expect("gradient reaches LoRA A");
            let gb = grads.get(vb.as_tensor()).expect("gradient reaches LoRA B");
            for (is_a, idx) in [
                (true, [0, 3]),
                (true, [1, 17]),
                (false, [5, 0]),
                (false, [20, 1]),
            ] {
                let fd = {
                    let mut plus = factors.clone();
                    let mut minus = factors.clone();
                    if is_a {
                        plus[k].1 = bump(&factors[k].1, &idx, h);
                        minus[k].1 = bump(&factors[k].1, &idx, -h);
                    } else {
                        plus[k].2 = bump(&factors[k].2, &idx, h);
                        minus[k].2 = bump(&factors[k].2, &idx, -h);
                    }
                    (scalar(&loss(&plus)) - scalar(&loss(&minus))) / (2.0 * h)
                };
                let g = get(if is_a { ga } else { gb }, &idx);
                let which = if is_a { "A" } else { "B" };
                assert_close(g, fd, &format!("{arch} {} {which}{idx:?}", targets[k]));
                assert!(g.abs() > 1e-8, "{arch}: zero gradient for {which}{idx:?}");
            }
        }
    }
}

/// One backward pass over the batch with per-example copies of the LoRA factors (and of the
/// head, as a replaced module) gives, for copy `i`, the gradient of example `i`'s loss alone.
#[test]
fn per_example_factors_give_each_examples_own_gradient() {
    let dev = Device::Cpu;
    for (arch, targets) in [
        (
            "bert",
            vec![
                "bert.encoder.layer.0.attention.self.query",
                "bert.encoder.layer.1.intermediate.dense",
            ],
        ),
        (
            "distilbert",
            vec!["distilbert.transformer.layer.0.attention.v_lin"],
        ),
        ("roberta", vec!["roberta.encoder.layer.1.output.dense"]),
    ] {
        let m = load_encoder(&fixture(arch), &LoadOptions::default(), &dev).unwrap();
        let b = tiny_inputs(arch);
        let n = b.lengths.len();
        let Task::Classify(c) = m.task() else {
            panic!()
        };
        let labels = labels_for(n, c);
        let factors = lora(&m, &targets, 3, 5, DType::F32);
        let head = m.head_modules().last().unwrap().name.clone();
        let head_w = m.linear(&head).unwrap().weight.clone();
        let head_b = m.linear(&head).unwrap().bias.clone().unwrap();

        // batched, per-example copies
        let copy = |t: &Tensor| {
            Var::from_tensor(&Tensor::cat(&vec![t.unsqueeze(0).unwrap(); n], 0).unwrap()).unwrap()
        };
        let per: Vec<(Var, Var)> = factors.iter().map(|(_, a, b)| (copy(a), copy(b))).collect();
        let (hw, hb) = (copy(&head_w), copy(&head_b));
        let mut ctx = ctx_with(
            &factors
                .iter()
                .zip(&per)
                .map(|((nm, _, _), (a, b))| {
                    (nm.clone(), a.as_tensor().clone(), b.as_tensor().clone())
                })
                .collect::<Vec<_>>(),
        );
        ctx.full.insert(
            head.clone(),
            FullWeights {
                weight: hw.as_tensor().clone(),
                bias: Some(hb.as_tensor().clone()),
            },
        );
        let grads = ce_loss(&m.forward(&b.ids, &b.mask, &ctx).unwrap().logits, &labels)
            .backward()
            .unwrap();

        for i in 0..n {
            let shared: Vec<(Var, Var)> = factors
                .iter()
                .map(|(_, a, b)| (Var::from_tensor(a).unwrap(), Var::from_tensor(b).unwrap()))
                .collect();
            let (sw, sb) = (
                Var::from_tensor(&head_w).unwrap(),
                Var::from_tensor(&head_b).unwrap(),
            );
            let mut ctx = ctx_with(
                &factors
                    .iter()
                    .zip(&shared)
                    .map(|((nm, _, _), (a, b))| {
                        (nm.clone(), a.as_tensor().clone(), b.as_tensor().clone())
                    })
                    .collect::<Vec<_>>(),
            );
            ctx.full.insert(
                head.clone(),
                FullWeights {
                    weight: sw.as_tensor().clone(),
                    bias: Some(sb.as_tensor().clone()),
                },
            );
            let ids = b.ids.narrow(0, i, 1).unwrap();
            let mask = b.mask.narrow(0, i, 1).unwrap();
            let gi = ce_loss(
                &m.forward(&ids, &mask, &ctx).unwrap().logits,
                &labels[i..=i],
            )
            .backward()
            .unwrap();
            let mut pairs: Vec<(&Var, &Var)> = Vec::new();
            for ((pa, pb), (sa, sb2)) in per.iter().zip(&shared) {
                pairs.push((pa, sa));
                pairs.push((pb, sb2));
            }
            pairs.push((&hw, &sw));
            pairs.push((&hb, &sb));
            for (p, s) in pairs {
                let batched = grads.get(p.as_tensor()).unwrap().get(i).unwrap();
                let single = gi.get(s.as_tensor()).unwrap();
                let d = max_abs(&batched, single);
                let scale = max_abs(single, &single.zeros_like().unwrap());
                assert!(scale > 0.0, "{arch}: zero gradient for example {i}");
                assert!(
                    d <= 1e-5,
                    "{arch} example {i}: per-example gradient off by {d}"
                );
            }
        }
    }
}

#[test]
fn dropout_in_training_is_seeded_and_differentiable() {
    use rand::SeedableRng;
    let dev = Device::Cpu;
    let m = load_model(&fixture("bert"), &LoadOptions::default(), &dev).unwrap();
    let b = tiny_inputs("bert");
    let run = |seed: u64| {
        let ctx = Ctx {
            train: true,
            hidden_dropout: 0.1,
            rng: Some(std::cell::RefCell::new(
                rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            )),
            ..Default::default()
        };
        let emb = Var::from_tensor(&m.embed(&b.ids).unwrap()).unwrap();
        let logits = m
            .forward_embeds(emb.as_tensor(), &b.mask, &ctx)
            .unwrap()
            .logits;
        let g = ce_loss(&logits, &[0, 1, 2, 0, 1, 2]).backward().unwrap();
        assert!(g.get(emb.as_tensor()).is_some());
        logits
    };
    let eval = logits_of(&*m, "bert");
    assert_eq!(max_abs(&run(3), &run(3)), 0.0);
    assert!(max_abs(&run(3), &run(4)) > 1e-4);
    assert!(max_abs(&run(3), &eval) > 1e-4);
}

// ---------------------------------------------------------------------------------------
// Errors: every one an MlError that names the file or tensor, no panic.

fn load_err(dir: &Path, opts: &LoadOptions) -> MlError {
    match load_model(dir, opts, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor_is_named() {
    let name = "bert.encoder.layer.1.attention.self.key.weight";
    let dir = rewrite("bert", |t, _| {
        t.remove(name).unwrap();
    });
    match load_err(dir.path(), &LoadOptions::default()) {
        MlError::Tensor { name: n, msg } => {
            assert_eq!(n, name);
            assert!(msg.contains("missing"), "{msg}");
        }
        e => panic!("wrong error: {e}"),
    }
    // a config with fewer layers than stored would drop weights silently
    let dir = rewrite("bert", |_, c| c["num_hidden_layers"] = 1.into());
    let e = load_err(dir.path(), &LoadOptions::default());
    assert!(
        matches!(&e, MlError::Tensor { name, msg } if name == "bert.encoder.layer.1.attention.self.query.weight" && msg.contains("1 layers")),
        "{e}"
    );
    // no word embeddings under either prefix
    let dir = rewrite("distilbert", |t, _| {
        t.remove("distilbert.embeddings.word_embeddings.weight")
            .unwrap();
    });
    let e = load_err(dir.path(), &LoadOptions::default());
    assert!(
        matches!(&e, MlError::Tensor { name, .. } if name == "distilbert.embeddings.word_embeddings.weight"),
        "{e}"
    );
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let name = "roberta.encoder.layer.0.intermediate.dense.weight";
    let dir = rewrite("roberta", |t, _| {
        t.insert(
            name.into(),
            Tensor::zeros((32, 64), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_err(dir.path(), &LoadOptions::default());
    let text = e.to_string();
    assert!(
        matches!(&e, MlError::Tensor { name: n, .. } if n == name),
        "{text}"
    );
    assert!(
        text.contains("[32, 64]") && text.contains("[64, 32]"),
        "{text}"
    );
    // a stored head with another number of labels than asked for
    let e = load_err(
        &fixture("bert"),
        &LoadOptions {
            num_labels: Some(5),
            ..Default::default()
        },
    );
    let text = e.to_string();
    assert!(
        text.contains("classifier.weight") && text.contains("[3, 32]") && text.contains("[5, 32]"),
        "{text}"
    );
}

#[test]
fn pickle_only_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("bert").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    // never parsed: a pickle opcode stream that would run code if it were unpickled
    std::fs::write(
        dir.path().join("pytorch_model.bin"),
        b"\x80\x02cos\nsystem\n(S'true'\ntR.",
    )
    .unwrap();
    match load_err(dir.path(), &LoadOptions::default()) {
        MlError::Format { path, msg } => {
            assert_eq!(path, dir.path());
            assert!(
                msg.contains("pytorch_model.bin") && msg.contains("pickle"),
                "{msg}"
            );
        }
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn bad_config_names_the_file() {
    let check = |dir: &Path, needle: &str| match load_err(dir, &LoadOptions::default()) {
        MlError::Format { path, msg } => {
            assert_eq!(path, dir.join("config.json"));
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        }
        e => panic!("wrong error: {e}"),
    };
    let dir = rewrite("bert", |_, _| {});
    std::fs::write(dir.path().join("config.json"), "{\"model_type\": \"bert\",").unwrap();
    check(dir.path(), "invalid JSON");
    let dir = rewrite("bert", |_, c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    check(dir.path(), "hidden_size");
    let dir = rewrite("bert", |_, c| c["model_type"] = "t5".into());
    check(dir.path(), "`t5`");
    let dir = rewrite("bert", |_, c| {
        c.as_object_mut().unwrap().remove("model_type");
    });
    check(dir.path(), "model_type");
    let dir = rewrite("bert", |_, c| c["num_attention_heads"] = 5.into());
    check(dir.path(), "heads");
    let dir = rewrite("bert", |_, c| c["hidden_act"] = "swiglu-ish".into());
    check(dir.path(), "hidden_act");
    let dir = rewrite("distilbert", |_, c| c["n_layers"] = "two".into());
    check(dir.path(), "n_layers");
    let dir = rewrite("bert", |_, c| {
        c["position_embedding_type"] = "relative_key".into()
    });
    check(dir.path(), "relative_key");
    // no config.json at all: an I/O error naming it
    let dir = tempfile::tempdir().unwrap();
    match load_err(dir.path(), &LoadOptions::default()) {
        MlError::Io { path, .. } => assert_eq!(path, dir.path().join("config.json")),
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn bad_options_and_inputs_are_errors() {
    let dev = Device::Cpu;
    let e = load_err(
        &fixture("bert"),
        &LoadOptions {
            task: Some(Task::CausalLm(123)),
            ..Default::default()
        },
    );
    assert!(matches!(e, MlError::Config(_)), "{e}");
    let e = load_err(
        &fixture("bert"),
        &LoadOptions {
            task: Some(Task::Classify(3)),
            num_labels: Some(2),
            ..Default::default()
        },
    );
    assert!(matches!(e, MlError::Config(_)), "{e}");
    let e = load_err(
        &fixture("roberta"),
        &LoadOptions {
            num_labels: Some(0),
            ..Default::default()
        },
    );
    assert!(matches!(e, MlError::Config(_)), "{e}");

    let m = load_model(&fixture("bert"), &LoadOptions::default(), &dev).unwrap();
    // a token id outside the vocabulary
    let ids = Tensor::new(&[[2u32, 123, 3]], &dev).unwrap();
    let mask = Tensor::ones((1, 3), DType::F32, &dev).unwrap();
    match m.forward(&ids, &mask, &Ctx::eval()) {
        Err(MlError::Data { msg, .. }) => assert!(msg.contains("123"), "{msg}"),
        other => panic!("expected a data error, got {:?}", other.map(|_| ())),
    }
    // longer than the position table (64 for BERT, 64 real tokens for RoBERTa with pad 1)
    for (arch, t) in [("bert", 65), ("roberta", 65), ("distilbert", 65)] {
        let m = load_model(&fixture(arch), &LoadOptions::default(), &dev).unwrap();
        let ids = Tensor::zeros((1, t), DType::U32, &dev).unwrap();
        let mask = Tensor::ones((1, t), DType::F32, &dev).unwrap();
        match m.forward(&ids, &mask, &Ctx::eval()) {
            Err(MlError::Data { msg, .. }) => assert!(msg.contains("64"), "{arch}: {msg}"),
            other => panic!("{arch}: expected a data error, got {:?}", other.map(|_| ())),
        }
        let ok = Tensor::zeros((1, 64), DType::U32, &dev).unwrap();
        let mask = Tensor::ones((1, 64), DType::F32, &dev).unwrap();
        assert!(
            m.forward(&ok, &mask, &Ctx::eval()).is_ok(),
            "{arch} at 64 tokens"
        );
    }
    // a mask of the wrong shape
    let ids = Tensor::zeros((2, 4), DType::U32, &dev).unwrap();
    let mask = Tensor::ones((2, 5), DType::F32, &dev).unwrap();
    assert!(matches!(
        m.forward(&ids, &mask, &Ctx::eval()),
        Err(MlError::Config(_))
    ));
}
