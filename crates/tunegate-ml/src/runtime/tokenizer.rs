//! `tokenizer.json` through the `tokenizers` crate (pure Rust, no Python), with the folder's
//! own padding and truncation replaced by ours: pad to the longest in the batch, truncate at a
//! maximum length.
use super::error::{MlError, Result};
use candle_core::{Device, Tensor};
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

/// Largest `tokenizer.json` read (bytes).
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

/// A tokenizer with its padding id.
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

/// A tokenized batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids `(N, T)` (u32).
    pub ids: Tensor,
    /// 1 for real tokens, 0 for padding `(N, T)` (f32).
    pub mask: Tensor,
    /// Number of real tokens per row.
    pub lengths: Vec<usize>,
}

impl TextTokenizer {
    /// Load `dir/tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let meta = std::fs::metadata(&path).map_err(|source| MlError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.len() > MAX_TOKENIZER_BYTES {
            return Err(MlError::format(&path, "tokenizer file over the size limit"));
        }
        let mut inner = Tokenizer::from_file(&path)
            .map_err(|e| MlError::format(&path, format!("invalid tokenizer: {e}")))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .or_else(|| inner.token_to_id("<pad>"))
            .or_else(|| inner.token_to_id("<|endoftext|>"))
            .unwrap_or(0);
        let pad_token = inner.id_to_token(pad_id).unwrap_or_default();
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..Default::default()
        }));
        inner.with_truncation(None).map_err(|e| {
            MlError::format(
                &path,
                format!("cannot reset the tokenizer's truncation: {e}"),
            )
        })?;
        Ok(TextTokenizer { inner, pad_id })
    }

    /// The padding token id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The underlying tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Ids of one text (with the model's special tokens when `special`).
    pub fn ids(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| MlError::Config(format!("tokenizing {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token string of an id.
    pub fn token(&self, id: u32) -> String {
        self.inner.id_to_token(id).unwrap_or_default()
    }

    /// Tokenize `texts` with special tokens, truncated to `max_len`, padded to the longest.
    pub fn batch(&self, texts: &[&str], max_len: usize, device: &Device) -> Result<Batch> {
        let rows: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| {
                let mut ids = self.ids(t, true)?;
                if ids.len() > max_len {
                    // keep the final special token (e.g. [SEP]) when truncating
                    let last = *ids.last().unwrap_or(&self.pad_id);
                    ids.truncate(max_len);
                    if let Some(l) = ids.last_mut() {
                        if self
                            .inner
                            .get_added_vocabulary()
                            .is_special_token(&self.token(last))
                        {
                            *l = last;
                        }
                    }
                }
                Ok(ids)
            })
            .collect::<Result<_>>()?;
        pad_rows(&rows, self.pad_id, device)
    }
}

/// Pad id rows to the longest into a [`Batch`].
pub fn pad_rows(rows: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Batch> {
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let n = rows.len();
    let mut ids = Vec::with_capacity(n * t);
    let mut mask = Vec::with_capacity(n * t);
    for r in rows {
        ids.extend_from_slice(r);
        ids.extend(std::iter::repeat_n(pad_id, t - r.len()));
        mask.extend(std::iter::repeat_n(1f32, r.len()));
        mask.extend(std::iter::repeat_n(0f32, t - r.len()));
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (n, t), device)?,
        mask: Tensor::from_vec(mask, (n, t), device)?,
        lengths: rows.iter().map(|r| r.len()).collect(),
    })
}
