//! Hugging Face model folders as they are on disk: `config.json`, `tokenizer.json` and
//! `*.safetensors` weights (one file, or shards listed by `model.safetensors.index.json`),
//! memory-mapped. Pickle checkpoints (`pytorch_model.bin`, `*.pt`) are refused, never loaded:
//! tunegate does not unpickle.
use super::error::{MlError, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest `config.json` / index file read (bytes): these are small; a huge one is hostile.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Read and parse a JSON file of bounded size, naming the file in every error.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let meta = std::fs::metadata(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_JSON_BYTES {
        return Err(MlError::format(
            path,
            format!("{} bytes, over the {MAX_JSON_BYTES}-byte limit", meta.len()),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| MlError::format(path, format!("invalid JSON: {e}")))
}

/// The safetensors weights of a model folder, memory-mapped.
pub struct Weights {
    files: Vec<PathBuf>,
    st: MmapedSafetensors,
    /// name -> (dtype, shape) of every stored tensor.
    index: BTreeMap<String, (safetensors::Dtype, Vec<usize>)>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("files", &self.files)
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl Weights {
    /// The weight files of folder `dir`: `model.safetensors`, or the shards named by
    /// `model.safetensors.index.json`, or every `*.safetensors` file when neither exists.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let files = if index_path.is_file() {
            let index = read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| MlError::format(&index_path, "no `weight_map` object"))?;
            let mut shards: Vec<PathBuf> = Vec::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    MlError::format(&index_path, format!("`{tensor}` maps to a non-string"))
                })?;
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(MlError::format(
                        &index_path,
                        format!("shard name `{file}` leaves the model folder"),
                    ));
                }
                let p = dir.join(file);
                if !shards.contains(&p) {
                    shards.push(p);
                }
            }
            shards
        } else if single.is_file() {
            vec![single]
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| MlError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            found.sort();
            if found.is_empty() {
                let pickle = ["pytorch_model.bin", "model.pt", "model.pth", "model.ckpt"]
                    .iter()
                    .find(|n| dir.join(n).exists());
                let msg = match pickle {
                    Some(n) => format!(
                        "no *.safetensors weights; `{n}` is a pickle checkpoint, which tunegate \
                         never loads (convert it to safetensors in a sandbox first)"
                    ),
                    None => "no *.safetensors weights".to_string(),
                };
                return Err(MlError::format(dir, msg));
            }
            found
        };
        Self::open_files(files)
    }

    /// Memory-map the given safetensors files (their headers are validated by the
    /// `safetensors` crate, which bounds the header size).
    pub fn open_files(files: Vec<PathBuf>) -> Result<Self> {
        let mut index = BTreeMap::new();
        for f in &files {
            let st = unsafe { MmapedSafetensors::new(f) }
                .map_err(|e| MlError::format(f, format!("not a valid safetensors file: {e}")))?;
            for (name, view) in st.tensors() {
                index.insert(name, (view.dtype(), view.shape().to_vec()));
            }
        }
        // SAFETY: the files are mapped read-only; a file truncated by another process while
        // mapped raises SIGBUS (documented limitation shared with every mmap loader).
        let st = unsafe { MmapedSafetensors::multi(&files) }
            .map_err(|e| MlError::format(&files[0], format!("mapping weights: {e}")))?;
        Ok(Weights { files, st, index })
    }

    /// The weight files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every stored tensor name with its dtype and shape.
    pub fn names(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.index
            .iter()
            .map(|(k, (_, s))| (k.as_str(), s.as_slice()))
    }

    /// Whether tensor `name` is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The first of `prefixes` (e.g. `["bert.", ""]`) under which `probe` is stored.
    pub fn find_prefix<'a>(&self, prefixes: &[&'a str], probe: &str) -> Option<&'a str> {
        prefixes
            .iter()
            .copied()
            .find(|p| self.contains(&format!("{p}{probe}")))
    }

    /// Tensor `name` as f32 on `device`, checked against `shape` when given.
    pub fn get(&self, name: &str, shape: Option<&[usize]>, device: &Device) -> Result<Tensor> {
        let (dtype, stored) = self
            .index
            .get(name)
            .ok_or_else(|| MlError::tensor(name, "missing from the weight files"))?;
        if let Some(want) = shape {
            if stored.as_slice() != want {
                return Err(MlError::tensor(
                    name,
                    format!("shape {stored:?}, the config implies {want:?}"),
                ));
            }
        }
        use safetensors::Dtype as S;
        if !matches!(dtype, S::F32 | S::F16 | S::BF16 | S::F64) {
            return Err(MlError::tensor(
                name,
                format!("dtype {dtype:?} where a float tensor is expected"),
            ));
        }
        let t = self
            .st
            .load(name, device)
            .map_err(|e| MlError::tensor(name, format!("cannot load: {e}")))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    /// Like [`Weights::get`] but `None` when the tensor is absent.
    pub fn get_opt(
        &self,
        name: &str,
        shape: Option<&[usize]>,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name, shape, device).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A Hugging Face model folder: its config, weights and (when present) tokenizer.
pub struct ModelDir {
    /// The folder.
    pub root: PathBuf,
    /// `config.json`, parsed.
    pub config: serde_json::Value,
    /// The weights, memory-mapped.
    pub weights: Weights,
}

impl ModelDir {
    /// Open `root`: reads `config.json` and maps the weights; the tokenizer is loaded on demand
    /// with [`super::load::load_tokenizer`].
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(MlError::format(root, "not a model folder"));
        }
        let config = read_json(&root.join("config.json"))?;
        let weights = Weights::open_dir(root)?;
        Ok(ModelDir {
            root: root.to_path_buf(),
            config,
            weights,
        })
    }

    /// `config.json`'s `model_type` (empty when absent).
    pub fn model_type(&self) -> &str {
        self.config
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// The first architecture listed in `config.json` (empty when absent).
    pub fn architecture(&self) -> &str {
        self.config
            .get("architectures")
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }
}

/// Typed access to config fields, naming `config.json` and the key in errors.
pub struct Cfg<'a> {
    path: PathBuf,
    value: &'a serde_json::Value,
}

impl<'a> Cfg<'a> {
    /// View `value` (parsed from `path`).
    pub fn new(path: PathBuf, value: &'a serde_json::Value) -> Self {
        Cfg { path, value }
    }
    /// A required non-negative integer.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.usize_opt(key)?
            .ok_or_else(|| MlError::format(&self.path, format!("missing integer `{key}`")))
    }
    /// An optional non-negative integer.
    pub fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.value.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| MlError::format(&self.path, format!("`{key}` is not an integer"))),
        }
    }
    /// An optional number.
    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.value.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| MlError::format(&self.path, format!("`{key}` is not a number"))),
        }
    }
    /// An optional string.
    pub fn str_opt(&self, key: &str) -> Option<&'a str> {
        self.value.get(key).and_then(|v| v.as_str())
    }
    /// An optional boolean.
    pub fn bool_opt(&self, key: &str) -> Option<bool> {
        self.value.get(key).and_then(|v| v.as_bool())
    }
    /// The raw value of `key`, if present.
    pub fn value_of(&self, key: &str) -> Option<&'a serde_json::Value> {
        self.value.get(key)
    }
    /// The file these settings came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
