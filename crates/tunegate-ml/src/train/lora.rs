//! LoRA adapters over a [`TextModel`], saved and loaded in PEFT's layout.
//!
//! An [`Adapter`] holds, for every targeted linear layer, the factors `A` `(r, in)` and `B`
//! `(out, r)` as trainable `Var`s (the layer computes `y = x Wᵀ + b + scale · dropout(x) Aᵀ Bᵀ`
//! with `scale = alpha / r`, or `alpha / √r` with rsLoRA), and the fully trained head modules
//! (PEFT's `modules_to_save`). It builds the [`Ctx`] a forward pass runs with: the shared
//! factors, or one copy per example for DP-SGD's per-example gradients.
//!
//! On disk it is PEFT's layout: `adapter_config.json` and `adapter_model.safetensors` with the
//! tensor names `base_model.model.<module>.lora_A.weight`, `…lora_B.weight`, and
//! `base_model.model.<module>.weight` / `.bias` for the saved modules, so
//! `PeftModel.from_pretrained` loads it (and we load PEFT's).
use crate::runtime::nn::{FullWeights, LinearInfo, LoraFactors};
use crate::runtime::weights::{read_json, Weights};
use crate::runtime::{Ctx, MlError, Result, Task, TextModel};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The prefix PEFT gives every tensor of a saved adapter.
pub const PEFT_PREFIX: &str = "base_model.model.";
/// File name of the adapter config.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// File name of the adapter weights.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// Largest adapter weight file loaded (bytes).
pub const MAX_ADAPTER_BYTES: u64 = 8 << 30;

/// What to adapt and how (PEFT's `LoraConfig` fields tunegate supports).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraSettings {
    /// Rank `r` (>= 1).
    pub r: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// Dropout on the adapter input, in [0, 1).
    pub dropout: f64,
    /// Target modules: names matched as the module-name suffix (`query` matches
    /// `bert.encoder.layer.0.attention.self.query`), or the single entry `all-linear`
    /// (every linear layer except the head modules).
    pub target_modules: Vec<String>,
    /// Modules trained in full and saved whole; `None` = the model's
    /// [`TextModel::head_modules`].
    pub modules_to_save: Option<Vec<String>>,
    /// rsLoRA scaling `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
}

impl Default for LoraSettings {
    fn default() -> Self {
        LoraSettings {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: vec!["all-linear".into()],
            modules_to_save: None,
            use_rslora: false,
        }
    }
}

impl LoraSettings {
    /// The scale applied to `B A`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(MlError::Config("lora: r must be at least 1".into()));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(MlError::Config(
                "lora: alpha must be a positive number".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(MlError::Config("lora: dropout must be in [0, 1)".into()));
        }
        if self.target_modules.is_empty() {
            return Err(MlError::Config(
                "lora: target_modules is empty (name modules, or `all-linear`)".into(),
            ));
        }
        Ok(())
    }
}

/// Whether module `name` matches target `t` the way PEFT matches a list entry: the whole name,
/// or its last dotted components.
pub fn suffix_match(name: &str, t: &str) -> bool {
    name == t
        || (name.len() > t.len()
            && name.ends_with(t)
            && name[..name.len() - t.len()].ends_with('.'))
}

/// The LoRA factors of one layer.
#[derive(Debug)]
pub struct LoraPair {
    /// `A`, `(r, in)`.
    pub a: Var,
    /// `B`, `(out, r)`.
    pub b: Var,
}

/// A fully trained module.
#[derive(Debug)]
pub struct HeadWeights {
    /// Weight `(out, in)`.
    pub weight: Var,
    /// Bias `(out)`.
    pub bias: Option<Var>,
}

/// A LoRA adapter set over one model.
#[derive(Debug)]
pub struct Adapter {
    /// Its settings.
    pub settings: LoraSettings,
    /// The model's task (PEFT `task_type`).
    pub task: Task,
    /// `base_model_name_or_path` written to the config.
    pub base_model: String,
    /// GPT-2's Conv1D layers store weights `(in, out)` (PEFT's `fan_in_fan_out`).
    pub fan_in_fan_out: bool,
    /// Factors by module name (sorted: the parameter order is deterministic).
    pub lora: BTreeMap<String, LoraPair>,
    /// Saved modules by name.
    pub heads: BTreeMap<String, HeadWeights>,
}

/// The [`Ctx`] of a per-example (DP-SGD) pass and its expanded parameters, in
/// [`Adapter::vars`] order: each is the parameter repeated along a new leading batch axis.
pub struct Expanded {
    /// The context (rank-3 LoRA factors, per-example head weights).
    pub ctx: Ctx,
    /// The expanded copies whose gradients are per-example gradients.
    pub vars: Vec<Var>,
}

fn kaiming_uniform_a_sqrt5(rng: &mut ChaCha20Rng, rows: usize, cols: usize) -> Vec<f32> {
    // kaiming_uniform_(a=√5) on a (rows, cols) weight: fan_in = cols, gain = √(2/(1+5)),
    // bound = gain·√(3/fan_in) = 1/√fan_in.
    let bound = 1.0 / (cols as f64).sqrt();
    (0..rows * cols)
        .map(|_| rng.gen_range(-bound..bound) as f32)
        .collect()
}

fn select_targets(
    model: &dyn TextModel,
    s: &LoraSettings,
    heads: &[String],
) -> Result<Vec<LinearInfo>> {
    let all = model.linears();
    let chosen: Vec<LinearInfo> = if s.target_modules.len() == 1
        && s.target_modules[0] == "all-linear"
    {
        all.into_iter()
            .filter(|l| !heads.contains(&l.name))
            .collect()
    } else {
        for t in &s.target_modules {
            if t == "all-linear" {
                return Err(MlError::Config(
                    "lora: `all-linear` must be the only entry of target_modules".into(),
                ));
            }
            if !all.iter().any(|l| suffix_match(&l.name, t)) {
                return Err(MlError::Config(format!(
                    "lora: target module `{t}` matches no linear layer of the model (it has e.g. {})",
                    all.iter().take(4).map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        all.into_iter()
            .filter(|l| s.target_modules.iter().any(|t| suffix_match(&l.name, t)))
            .filter(|l| !heads.contains(&l.name))
            .collect()
    };
    if chosen.is_empty() {
        return Err(MlError::Config("lora: no linear layer to adapt".into()));
    }
    Ok(chosen)
}

fn resolve_heads(model: &dyn TextModel, s: &LoraSettings) -> Result<Vec<LinearInfo>> {
    let known: Vec<LinearInfo> = model
        .head_modules()
        .into_iter()
        .chain(model.linears())
        .collect();
    match &s.modules_to_save {
        None => Ok(model.head_modules()),
        Some(names) => {
            let mut out: Vec<LinearInfo> = Vec::new();
            for n in names {
                let hit: Vec<&LinearInfo> =
                    known.iter().filter(|l| suffix_match(&l.name, n)).collect();
                if hit.is_empty() {
                    return Err(MlError::Config(format!(
                        "lora: modules_to_save entry `{n}` names no linear module of the model"
                    )));
                }
                for h in hit {
                    if !out.iter().any(|o| o.name == h.name) {
                        out.push(h.clone());
                    }
                }
            }
            Ok(out)
        }
    }
}

fn head_from_model(model: &dyn TextModel, name: &str) -> Result<HeadWeights> {
    let lin = model
        .linear(name)
        .ok_or_else(|| MlError::Config(format!("lora: the model has no module `{name}`")))?;
    Ok(HeadWeights {
        weight: Var::from_tensor(&lin.weight.to_dtype(DType::F32)?.copy()?)?,
        bias: match &lin.bias {
            Some(b) => Some(Var::from_tensor(&b.to_dtype(DType::F32)?.copy()?)?),
            None => None,
        },
    })
}

impl Adapter {
    /// A fresh adapter: `A` from PEFT's initialisation (kaiming-uniform, a = √5) drawn from a
    /// ChaCha RNG seeded with `seed`, `B` zero, heads copied from the model's current weights.
    pub fn new(
        model: &dyn TextModel,
        settings: &LoraSettings,
        base_model: &str,
        fan_in_fan_out: bool,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        settings.validate()?;
        let heads = resolve_heads(model, settings)?;
        let head_names: Vec<String> = heads.iter().map(|h| h.name.clone()).collect();
        let targets = select_targets(model, settings, &head_names)?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut lora = BTreeMap::new();
        // Initialise in model order (independent of map order), store sorted.
        for t in &targets {
            let a = kaiming_uniform_a_sqrt5(&mut rng, settings.r, t.in_dim);
            let a = Tensor::from_vec(a, (settings.r, t.in_dim), device)?;
            let b = Tensor::zeros((t.out_dim, settings.r), DType::F32, device)?;
            lora.insert(
                t.name.clone(),
                LoraPair {
                    a: Var::from_tensor(&a)?,
                    b: Var::from_tensor(&b)?,
                },
            );
        }
        let mut hw = BTreeMap::new();
        for h in &heads {
            hw.insert(h.name.clone(), head_from_model(model, &h.name)?);
        }
        Ok(Adapter {
            settings: settings.clone(),
            task: model.task(),
            base_model: base_model.to_string(),
            fan_in_fan_out,
            lora,
            heads: hw,
        })
    }

    /// Every trainable parameter, in a fixed order: each LoRA layer's `A` then `B` (layers
    /// sorted by name), then each head's weight and bias (sorted by name).
    pub fn vars(&self) -> Vec<Var> {
        let mut v = Vec::new();
        for p in self.lora.values() {
            v.push(p.a.clone());
            v.push(p.b.clone());
        }
        for h in self.heads.values() {
            v.push(h.weight.clone());
            if let Some(b) = &h.bias {
                v.push(b.clone());
            }
        }
        v
    }

    /// Names of [`Adapter::vars`] in PEFT's layout (`base_model.model.…`).
    pub fn var_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for m in self.lora.keys() {
            v.push(format!("{PEFT_PREFIX}{m}.lora_A.weight"));
            v.push(format!("{PEFT_PREFIX}{m}.lora_B.weight"));
        }
        for (m, h) in &self.heads {
            v.push(format!("{PEFT_PREFIX}{m}.weight"));
            if h.bias.is_some() {
                v.push(format!("{PEFT_PREFIX}{m}.bias"));
            }
        }
        v
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// The context of a forward pass with the shared parameters (gradients flow to
    /// [`Adapter::vars`]). `train` enables dropout (give the `Ctx` an `rng` for masks).
    pub fn ctx(&self, train: bool) -> Ctx {
        let scale = self.settings.scale();
        let mut ctx = Ctx {
            train,
            ..Ctx::default()
        };
        for (m, p) in &self.lora {
            ctx.lora.insert(
                m.clone(),
                LoraFactors {
                    a: p.a.as_tensor().clone(),
                    b: p.b.as_tensor().clone(),
                    scale,
                    dropout: self.settings.dropout,
                },
            );
        }
        for (m, h) in &self.heads {
            ctx.full.insert(
                m.clone(),
                FullWeights {
                    weight: h.weight.as_tensor().clone(),
                    bias: h.bias.as_ref().map(|b| b.as_tensor().clone()),
                },
            );
        }
        ctx
    }

    /// The context of a per-example pass over `n` examples: every parameter repeated `n` times
    /// along a new leading axis, so the gradient of a summed loss with respect to copy `i` is
    /// example `i`'s gradient.
    pub fn ctx_expanded(&self, n: usize, train: bool) -> Result<Expanded> {
        let scale = self.settings.scale();
        let mut ctx = Ctx {
            train,
            ..Ctx::default()
        };
        let expand = |v: &Var| -> Result<Var> {
            let t = v.as_tensor();
            let mut dims = vec![n];
            dims.extend_from_slice(t.dims());
            Ok(Var::from_tensor(
                &t.unsqueeze(0)?.broadcast_as(dims)?.contiguous()?,
            )?)
        };
        let mut vars = Vec::new();
        for (m, p) in &self.lora {
            let a = expand(&p.a)?;
            let b = expand(&p.b)?;
            ctx.lora.insert(
                m.clone(),
                LoraFactors {
                    a: a.as_tensor().clone(),
                    b: b.as_tensor().clone(),
                    scale,
                    dropout: self.settings.dropout,
                },
            );
            vars.push(a);
            vars.push(b);
        }
        for (m, h) in &self.heads {
            let w = expand(&h.weight)?;
            let b = h.bias.as_ref().map(expand).transpose()?;
            ctx.full.insert(
                m.clone(),
                FullWeights {
                    weight: w.as_tensor().clone(),
                    bias: b.as_ref().map(|b| b.as_tensor().clone()),
                },
            );
            vars.push(w);
            if let Some(b) = b {
                vars.push(b);
            }
        }
        Ok(Expanded { ctx, vars })
    }

    /// PEFT's `adapter_config.json` for this adapter.
    pub fn config_json(&self) -> Value {
        let mut targets: Vec<&str> = self
            .settings
            .target_modules
            .iter()
            .map(String::as_str)
            .collect();
        targets.sort_unstable();
        let targets: Value = if targets == ["all-linear"] {
            // PEFT would expand `all-linear` at load time; record the layers actually adapted
            // by their suffixes so the adapter loads onto exactly these modules.
            let mut leaves: Vec<String> = self
                .lora
                .keys()
                .map(|m| m.rsplit('.').next().unwrap_or(m).to_string())
                .collect();
            leaves.sort();
            leaves.dedup();
            json!(leaves)
        } else {
            json!(targets)
        };
        let saved: Vec<&String> = self.heads.keys().collect();
        json!({
            "peft_type": "LORA",
            "task_type": match self.task {
                Task::Classify(_) => "SEQ_CLS",
                Task::CausalLm(_) => "CAUSAL_LM",
            },
            "base_model_name_or_path": self.base_model,
            "r": self.settings.r,
            // PEFT types lora_alpha as an int; keep a fractional alpha as a float.
            "lora_alpha": if self.settings.alpha.fract() == 0.0 && self.settings.alpha < 1e15 {
                json!(self.settings.alpha as i64)
            } else {
                json!(self.settings.alpha)
            },
            "lora_dropout": self.settings.dropout,
            "target_modules": targets,
            "modules_to_save": if saved.is_empty() { Value::Null } else { json!(saved) },
            "bias": "none",
            "fan_in_fan_out": self.fan_in_fan_out,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": self.settings.use_rslora,
            "use_dora": false,
            "lora_bias": false,
            "rank_pattern": {},
            "alpha_pattern": {},
            "layers_to_transform": null,
            "layers_pattern": null,
            "exclude_modules": null,
            "revision": null,
            "auto_mapping": null,
        })
    }

    /// The tensors PEFT saves, by name (f32, on the CPU).
    pub fn tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (name, v) in self.var_names().into_iter().zip(self.vars()) {
            out.insert(name, v.as_tensor().to_device(&Device::Cpu)?.contiguous()?);
        }
        Ok(out)
    }

    /// Write `dir/adapter_config.json` and `dir/adapter_model.safetensors` (bytes are a
    /// function of the parameters only: reproducible runs give identical files).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| MlError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let cfg = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&self.config_json())
            .map_err(|e| MlError::format(&cfg, e.to_string()))?;
        std::fs::write(&cfg, text + "\n").map_err(|source| MlError::Io {
            path: cfg.clone(),
            source,
        })?;
        let path = dir.join(WEIGHTS_FILE);
        let tensors = self.tensors()?;
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(k, t)| {
                let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
                let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Ok((k.clone(), bytes, t.dims().to_vec()))
            })
            .collect::<Result<_>>()?;
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(k, b, s)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| MlError::tensor(k, e.to_string()))
            })
            .collect::<Result<_>>()?;
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), &path)
            .map_err(|e| MlError::format(&path, e.to_string()))?;
        Ok(())
    }

    /// Load an adapter saved by [`Adapter::save`] or by PEFT's `save_pretrained` onto `model`.
    /// Every tensor must name a linear layer (or head) of the model with the right shape;
    /// unknown tensors and unsupported PEFT options (DoRA, rank/alpha patterns, LoRA bias) are
    /// errors, never skipped.
    pub fn load(dir: &Path, model: &dyn TextModel, device: &Device) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let cfg = read_json(&cfg_path)?;
        let bad = |msg: String| MlError::format(&cfg_path, msg);
        let peft_type = cfg.get("peft_type").and_then(Value::as_str).unwrap_or("");
        if peft_type != "LORA" {
            return Err(bad(format!("peft_type `{peft_type}` is not LORA")));
        }
        let r = cfg
            .get("r")
            .and_then(Value::as_u64)
            .filter(|r| *r >= 1 && *r <= 65536)
            .ok_or_else(|| bad("`r` is not a positive integer".into()))? as usize;
        let alpha = cfg
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("`lora_alpha` is not a number".into()))?;
        let dropout = cfg
            .get("lora_dropout")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let use_rslora = cfg
            .get("use_rslora")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if cfg.get("use_dora").and_then(Value::as_bool) == Some(true) {
            return Err(bad("DoRA adapters (`use_dora`) are not supported".into()));
        }
        if cfg.get("lora_bias").and_then(Value::as_bool) == Some(true) {
            return Err(bad("`lora_bias` adapters are not supported".into()));
        }
        if let Some(b) = cfg.get("bias").and_then(Value::as_str) {
            if b != "none" {
                return Err(bad(format!("bias `{b}` is not supported (only `none`)")));
            }
        }
        for k in ["rank_pattern", "alpha_pattern"] {
            if cfg
                .get(k)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(format!("a non-empty `{k}` is not supported")));
            }
        }
        let fan_in_fan_out = cfg
            .get("fan_in_fan_out")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let strings = |k: &str| -> Vec<String> {
            match cfg.get(k) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        let target_modules = strings("target_modules");
        let modules_to_save = strings("modules_to_save");
        let base_model = cfg
            .get("base_model_name_or_path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();

        let wpath = dir.join(WEIGHTS_FILE);
        let meta = std::fs::metadata(&wpath).map_err(|source| MlError::Io {
            path: wpath.clone(),
            source,
        })?;
        if meta.len() > MAX_ADAPTER_BYTES {
            return Err(MlError::format(
                &wpath,
                "adapter weights over the size limit",
            ));
        }
        let w = Weights::open_files(vec![wpath.clone()])?;
        let linears: HashMap<String, LinearInfo> = model
            .linears()
            .into_iter()
            .chain(model.head_modules())
            .map(|l| (l.name.clone(), l))
            .collect();
        let mut a_of: BTreeMap<String, Tensor> = BTreeMap::new();
        let mut b_of: BTreeMap<String, Tensor> = BTreeMap::new();
        let mut hw: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        let names: Vec<(String, Vec<usize>)> = w
            .names()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        for (name, _) in &names {
            let rest = name.strip_prefix(PEFT_PREFIX).ok_or_else(|| {
                MlError::format(
                    &wpath,
                    format!("tensor `{name}` lacks the `{PEFT_PREFIX}` prefix"),
                )
            })?;
            let unknown = || {
                MlError::format(
                    &wpath,
                    format!("tensor `{name}` names no linear layer of the model"),
                )
            };
            if let Some(m) = rest.strip_suffix(".lora_A.weight") {
                let l = linears.get(m).ok_or_else(unknown)?;
                a_of.insert(m.to_string(), w.get(name, Some(&[r, l.in_dim]), device)?);
            } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
                let l = linears.get(m).ok_or_else(unknown)?;
                b_of.insert(m.to_string(), w.get(name, Some(&[l.out_dim, r]), device)?);
            } else if let Some(m) = rest.strip_suffix(".weight") {
                let l = linears.get(m).ok_or_else(unknown)?;
                hw.entry(m.to_string()).or_default().0 =
                    Some(w.get(name, Some(&[l.out_dim, l.in_dim]), device)?);
            } else if let Some(m) = rest.strip_suffix(".bias") {
                let l = linears.get(m).ok_or_else(unknown)?;
                hw.entry(m.to_string()).or_default().1 =
                    Some(w.get(name, Some(&[l.out_dim]), device)?);
            } else {
                return Err(MlError::format(
                    &wpath,
                    format!("tensor `{name}` is not a LoRA factor nor a saved module (unsupported adapter kind)"),
                ));
            }
        }
        let mut lora = BTreeMap::new();
        for (m, a) in a_of {
            let b = b_of.remove(&m).ok_or_else(|| {
                MlError::format(&wpath, format!("`{m}` has lora_A but no lora_B"))
            })?;
            lora.insert(
                m,
                LoraPair {
                    a: Var::from_tensor(&a)?,
                    b: Var::from_tensor(&b)?,
                },
            );
        }
        if let Some(m) = b_of.keys().next() {
            return Err(MlError::format(
                &wpath,
                format!("`{m}` has lora_B but no lora_A"),
            ));
        }
        let mut heads = BTreeMap::new();
        for (m, (wt, bs)) in hw {
            let wt = wt.ok_or_else(|| {
                MlError::format(
                    &wpath,
                    format!("saved module `{m}` has a bias but no weight"),
                )
            })?;
            heads.insert(
                m,
                HeadWeights {
                    weight: Var::from_tensor(&wt)?,
                    bias: bs.map(|b| Var::from_tensor(&b)).transpose()?,
                },
            );
        }
        if lora.is_empty() {
            return Err(MlError::format(&wpath, "no LoRA factors"));
        }
        Ok(Adapter {
            settings: LoraSettings {
                r,
                alpha,
                dropout,
                target_modules,
                modules_to_save: Some(modules_to_save),
                use_rslora,
            },
            task: model.task(),
            base_model,
            fan_in_fan_out,
            lora,
            heads,
        })
    }

    /// `W + scale · B A` of a LoRA layer, `(out, in)`.
    pub fn merged_weight(&self, module: &str, base: &Tensor) -> Result<Tensor> {
        let p = self
            .lora
            .get(module)
            .ok_or_else(|| MlError::Config(format!("no LoRA factors for `{module}`")))?;
        let delta = (p.b.as_tensor().matmul(p.a.as_tensor())? * self.settings.scale())?;
        Ok((base.to_dtype(DType::F32)? + delta)?)
    }

    /// Merge into a full checkpoint: every tensor of the base folder's weights written to
    /// `out/model.safetensors` under its stored name and dtype, with `W + scale·B·A` for the
    /// adapted layers and the trained heads in place of theirs (added under the module name
    /// when the base stores none); `config.json`, tokenizer and vocabulary files copied.
    pub fn merge(&self, base_dir: &Path, out: &Path) -> Result<()> {
        let w = Weights::open_dir(base_dir)?;
        let stored: Vec<(String, Vec<usize>)> = w
            .names()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        let find = |module: &str, leaf: &str| -> Option<String> {
            // The stored name is the module name or one of its suffixes (checkpoints saved
            // without the `bert.` / `transformer.` prefix).
            let mut m = module;
            loop {
                let n = format!("{m}.{leaf}");
                if stored.iter().any(|(s, _)| *s == n) {
                    return Some(n);
                }
                m = m.split_once('.')?.1;
            }
        };
        let cpu = Device::Cpu;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for f in w.files() {
            let all = candle_core::safetensors::load(f, &cpu)
                .map_err(|e| MlError::format(f, format!("reading weights: {e}")))?;
            tensors.extend(all);
        }
        for m in self.lora.keys() {
            let name = find(m, "weight")
                .ok_or_else(|| MlError::tensor(format!("{m}.weight"), "not in the base weights"))?;
            let t = &tensors[&name];
            let dtype = t.dtype();
            let p = &self.lora[m];
            let (out_d, in_d) = (p.b.dims()[0], p.a.dims()[1]);
            let transposed = t.dims() == [in_d, out_d] && (self.fan_in_fan_out || in_d != out_d);
            let merged = if transposed {
                self.merged_weight(m, &t.t()?.contiguous()?.to_device(p.a.device())?)?
                    .t()?
                    .contiguous()?
            } else if t.dims() == [out_d, in_d] {
                self.merged_weight(m, &t.to_device(p.a.device())?)?
            } else {
                return Err(MlError::tensor(
                    name,
                    format!("shape {:?} does not fit LoRA ({out_d}, {in_d})", t.dims()),
                ));
            };
            tensors.insert(name, merged.to_device(&cpu)?.to_dtype(dtype)?);
        }
        for (m, h) in &self.heads {
            for (leaf, v) in [("weight", Some(&h.weight)), ("bias", h.bias.as_ref())] {
                let Some(v) = v else { continue };
                let name = find(m, leaf).unwrap_or_else(|| format!("{m}.{leaf}"));
                let dtype = tensors.get(&name).map(|t| t.dtype()).unwrap_or(DType::F32);
                tensors.insert(name, v.as_tensor().to_device(&cpu)?.to_dtype(dtype)?);
            }
        }
        std::fs::create_dir_all(out).map_err(|source| MlError::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let path = out.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &path)
            .map_err(|e| MlError::format(&path, format!("writing merged weights: {e}")))?;
        for f in [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
            "vocab.json",
            "merges.txt",
            "generation_config.json",
        ] {
            let src = base_dir.join(f);
            if src.is_file() {
                std::fs::copy(&src, out.join(f)).map_err(|source| MlError::Io {
                    path: src.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}
