//! PEFT compatibility of LoRA adapters, without torch: the fixtures and logits were made once
//! by `tests/vectors/make_peft_vectors.py` (tiny random `BertForSequenceClassification`, PEFT
//! LoRA r=4 on query/value with `modules_to_save = ["classifier"]`, lora_B and the head set to
//! random non-zero values, saved with `save_pretrained`).
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use tunegate_ml::runtime::{load_model, Ctx, LoadOptions, TextModel};
use tunegate_ml::train::lora::{Adapter, LoraSettings};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn vectors() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root().join("vectors/peft_lora_logits.json")).unwrap())
        .unwrap()
}

fn model() -> Box<dyn TextModel> {
    load_model(
        &root().join("fixtures/tiny-bert-cls"),
        &LoadOptions::default(),
        &Device::Cpu,
    )
    .unwrap()
}

fn inputs(v: &serde_json::Value) -> (Tensor, Tensor) {
    let ids: Vec<Vec<u32>> = serde_json::from_value(v["input_ids"].clone()).unwrap();
    let mask: Vec<Vec<f32>> = serde_json::from_value(v["attention_mask"].clone()).unwrap();
    let (n, t) = (ids.len(), ids[0].len());
    (
        Tensor::from_vec(ids.concat(), (n, t), &Device::Cpu).unwrap(),
        Tensor::from_vec(mask.concat(), (n, t), &Device::Cpu).unwrap(),
    )
}

fn max_diff(got: &Tensor, want: &serde_json::Value) -> f32 {
    let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(&want)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max)
}

#[test]
fn peft_saved_adapter_reproduces_peft_logits() {
    let v = vectors();
    let m = model();
    let (ids, mask) = inputs(&v);
    let base = m.forward(&ids, &mask, &Ctx::eval()).unwrap().logits;
    assert!(
        max_diff(&base, &v["base_logits"]) < 1e-4,
        "base model parity"
    );
    let a = Adapter::load(
        &root().join("fixtures/peft-lora-bert"),
        m.as_ref(),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(a.lora.len(), 4, "query and value of 2 layers");
    assert_eq!(a.heads.keys().collect::<Vec<_>>(), ["classifier"]);
    let got = m.forward(&ids, &mask, &a.ctx(false)).unwrap().logits;
    let d = max_diff(&got, &v["peft_logits"]);
    assert!(d < 1e-4, "PEFT logits differ by {d}");
    // The adapter matters: PEFT's logits are far from the base model's.
    assert!(max_diff(&base, &v["peft_logits"]) > 0.1);
}

#[test]
fn our_adapter_has_peft_key_set_shapes_and_config() {
    let m = model();
    let s = LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["query".into(), "value".into()],
        modules_to_save: None,
        use_rslora: false,
    };
    let ours = Adapter::new(m.as_ref(), &s, "tiny-bert-cls", false, 1, &Device::Cpu).unwrap();
    let d = tempfile::tempdir().unwrap();
    ours.save(d.path()).unwrap();
    let read = |dir: &Path| {
        let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<usize>, String)> = st
            .tensors()
            .into_iter()
            .map(|(k, t)| (k, t.shape().to_vec(), format!("{:?}", t.dtype())))
            .collect();
        v.sort();
        v
    };
    let peft_dir = root().join("fixtures/peft-lora-bert");
    assert_eq!(read(d.path()), read(&peft_dir));
    let cfg = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap()).unwrap()
    };
    let (o, p) = (cfg(d.path()), cfg(&peft_dir));
    for k in [
        "peft_type",
        "task_type",
        "r",
        "lora_alpha",
        "lora_dropout",
        "bias",
        "fan_in_fan_out",
        "inference_mode",
        "use_rslora",
        "use_dora",
    ] {
        assert_eq!(o[k], p[k], "adapter_config.json `{k}`");
    }
    let sorted = |v: &serde_json::Value| {
        let mut s: Vec<String> = serde_json::from_value(v.clone()).unwrap();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(sorted(&o["target_modules"]), sorted(&p["target_modules"]));
    assert!(sorted(&p["modules_to_save"]).contains(&"classifier".to_string()));
    assert_eq!(sorted(&o["modules_to_save"]), ["classifier"]);
    assert_eq!(o["base_model_name_or_path"], "tiny-bert-cls");
    // And it loads back onto the model like PEFT's.
    Adapter::load(d.path(), m.as_ref(), &Device::Cpu).unwrap();
}

/// Writes one of our adapters (with random B and head) and the logits we compute with it to
/// `$TUNEGATE_PEFT_CHECK_DIR`, for `make_peft_vectors.py check DIR` to load with
/// `PeftModel.from_pretrained` (run by hand; see tests/vectors/peft_check.txt).
#[test]
fn write_adapter_for_the_peft_check() {
    let Some(dir) = std::env::var_os("TUNEGATE_PEFT_CHECK_DIR") else {
        eprintln!("skipped: set TUNEGATE_PEFT_CHECK_DIR to write an adapter for the PEFT check");
        return;
    };
    let dir = PathBuf::from(dir);
    let m = model();
    let s = LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["query".into(), "value".into()],
        modules_to_save: None,
        use_rslora: false,
    };
    let a = Adapter::new(m.as_ref(), &s, "tiny-bert-cls", false, 3, &Device::Cpu).unwrap();
    for (i, v) in a.vars().iter().enumerate() {
        let n = v.elem_count();
        let vals: Vec<f32> = (0..n)
            .map(|j| (((i * 7919 + j * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.8)
            .collect();
        v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    a.save(&dir).unwrap();
    let v = vectors();
    let (ids, mask) = inputs(&v);
    let logits: Vec<Vec<f32>> = m
        .forward(&ids, &mask, &a.ctx(false))
        .unwrap()
        .logits
        .to_vec2()
        .unwrap();
    let out = serde_json::json!({"input_ids": v["input_ids"], "attention_mask": v["attention_mask"], "logits": logits});
    std::fs::write(dir.join("tunegate_logits.json"), out.to_string()).unwrap();
}
