//! Test-only text models: tiny, deterministic, differentiable, with named linear layers so
//! LoRA and DP-SGD mechanics can be tested without a real architecture.
#![allow(dead_code)]
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use std::path::Path;
use tunegate_ml::runtime::nn::LinearInfo;
use tunegate_ml::runtime::{Ctx, Linear, Output, Result, Task, TextModel};

/// Words of the toy vocabulary (ids 2..): `w0 … w{n-1}`; 0 = [PAD], 1 = [UNK].
pub fn word(i: usize) -> String {
    format!("w{i}")
}

/// A WordLevel `tokenizer.json` over `[PAD] [UNK] [EOS] w0..w{words-1}` with whitespace
/// splitting and no special tokens added.
pub fn write_tokenizer(dir: &Path, words: usize) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("[PAD]".into(), 0.into());
    vocab.insert("[UNK]".into(), 1.into());
    vocab.insert("</s>".into(), 2.into());
    for i in 0..words {
        vocab.insert(word(i), (i + 3).into());
    }
    let special = |id: u32, s: &str| {
        serde_json::json!({"id": id, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "</s>")],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
}

fn randn(rng: &mut rand_chacha::ChaCha8Rng, shape: (usize, usize), s: f32) -> Tensor {
    let v: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * s)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Classifier: word embeddings → `encoder.dense` (per token) → masked sum →
/// `encoder.pool` → tanh → `classifier`.
pub struct ToyClassifier {
    pub emb: Tensor,
    pub dense: Linear,
    pub pool: Linear,
    pub head: Linear,
    pub labels: usize,
}

impl ToyClassifier {
    pub fn new(vocab: usize, hidden: usize, labels: usize, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let lin = |rng: &mut rand_chacha::ChaCha8Rng, name: &str, o: usize, i: usize| Linear {
            name: name.into(),
            weight: randn(rng, (o, i), 1.0 / (i as f32).sqrt()),
            bias: Some(randn(rng, (1, o), 0.1).squeeze(0).unwrap()),
        };
        ToyClassifier {
            emb: randn(&mut rng, (vocab, hidden), 1.0),
            dense: lin(&mut rng, "encoder.dense", hidden, hidden),
            pool: lin(&mut rng, "encoder.pool", hidden, hidden),
            head: lin(&mut rng, "classifier", labels, hidden),
            labels,
        }
    }
}

impl TextModel for ToyClassifier {
    fn task(&self) -> Task {
        Task::Classify(self.labels)
    }
    fn hidden_size(&self) -> usize {
        self.emb.dims()[1]
    }
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (n, t) = ids.dims2()?;
        Ok(self
            .emb
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((n, t, self.hidden_size()))?)
    }
    fn forward_embeds(&self, embeds: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Output> {
        let h = self.dense.forward(embeds, ctx)?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = h.broadcast_mul(&m)?.sum(1)?;
        let p = self.pool.forward(&pooled, ctx)?.tanh()?;
        let logits = self.head.forward(&p, ctx)?;
        Ok(Output {
            logits,
            hidden_states: vec![embeds.clone(), h],
        })
    }
    fn linears(&self) -> Vec<LinearInfo> {
        [&self.dense, &self.pool]
            .iter()
            .map(|l| LinearInfo {
                name: l.name.clone(),
                in_dim: l.in_dim(),
                out_dim: l.out_dim(),
            })
            .collect()
    }
    fn head_modules(&self) -> Vec<LinearInfo> {
        vec![LinearInfo {
            name: self.head.name.clone(),
            in_dim: self.head.in_dim(),
            out_dim: self.head.out_dim(),
        }]
    }
    fn embedding_matrix(&self) -> &Tensor {
        &self.emb
    }
    fn linear(&self, name: &str) -> Option<&Linear> {
        [&self.dense, &self.pool, &self.head]
            .into_iter()
            .find(|l| l.name == name)
    }
}

/// Causal LM without attention: each position predicts the next token from its own
/// embedding and the running mean of the prefix: `h = tanh(mlp.fc(e) + prefix mean)`,
/// `logits = lm_head(h)`.
pub struct ToyLm {
    pub emb: Tensor,
    pub fc: Linear,
    pub lm_head: Linear,
}

impl ToyLm {
    pub fn new(vocab: usize, hidden: usize, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        ToyLm {
            emb: randn(&mut rng, (vocab, hidden), 1.0),
            fc: Linear {
                name: "model.mlp.fc".into(),
                weight: randn(&mut rng, (hidden, hidden), 1.0 / (hidden as f32).sqrt()),
                bias: None,
            },
            lm_head: Linear {
                name: "lm_head".into(),
                weight: randn(&mut rng, (vocab, hidden), 1.0 / (hidden as f32).sqrt()),
                bias: None,
            },
        }
    }
}

impl TextModel for ToyLm {
    fn task(&self) -> Task {
        Task::CausalLm(self.emb.dims()[0])
    }
    fn hidden_size(&self) -> usize {
        self.emb.dims()[1]
    }
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (n, t) = ids.dims2()?;
        Ok(self
            .emb
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((n, t, self.hidden_size()))?)
    }
    fn forward_embeds(&self, embeds: &Tensor, _mask: &Tensor, ctx: &Ctx) -> Result<Output> {
        let (_, t, _) = embeds.dims3()?;
        let cum = embeds.cumsum(1)?;
        let denom = Tensor::arange(1f32, (t + 1) as f32, embeds.device())?.reshape((1, t, 1))?;
        let prefix = cum.broadcast_div(&denom)?;
        let h = (self.fc.forward(embeds, ctx)? + prefix)?.tanh()?;
        let logits = self.lm_head.forward(&h, ctx)?;
        Ok(Output {
            logits,
            hidden_states: vec![embeds.clone(), h],
        })
    }
    fn linears(&self) -> Vec<LinearInfo> {
        [&self.fc, &self.lm_head]
            .iter()
            .map(|l| LinearInfo {
                name: l.name.clone(),
                in_dim: l.in_dim(),
                out_dim: l.out_dim(),
            })
            .collect()
    }
    fn head_modules(&self) -> Vec<LinearInfo> {
        Vec::new()
    }
    fn embedding_matrix(&self) -> &Tensor {
        &self.emb
    }
    fn linear(&self, name: &str) -> Option<&Linear> {
        [&self.fc, &self.lm_head]
            .into_iter()
            .find(|l| l.name == name)
    }
}
