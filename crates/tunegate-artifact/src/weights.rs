//! Weight fingerprints (`tunegate model fingerprint`) and weight diffs (`tunegate model diff`).
//!
//! **Fingerprint** ([`Fingerprint`], schema [`FP_SCHEMA`]): per shard file its sha256 and size;
//! per tensor its dtype, shape, element count, the sha256 of its bytes, NaN and infinity
//! counts, and over the finite elements mean, standard deviation (population), min, max, L2
//! norm and the quantiles [`QUANTILE_LEVELS`]. Quantiles come from a deterministic stride
//! sample of at most [`SAMPLE`] elements (element `i * numel / SAMPLE` for `i < SAMPLE`,
//! linearly interpolated): exact for tensors of up to [`SAMPLE`] elements, an estimate above
//! that, and reproducible run to run. Everything else is exact and computed in one streaming
//! pass over the memory map (no tensor is copied or converted as a whole), tensors in parallel.
//!
//! For tensors with two or more dimensions the fingerprint also keeps a **row summary**: a 32-bit
//! hash (low half of xxh3-64) of each row's bytes, or of each group of `rows_per_hash`
//! consecutive rows when the tensor has more than [`MAX_ROW_GROUPS`] rows. That is what lets a
//! diff against a stored fingerprint (without the reference weights) say which rows changed. The
//! limits: localisation is to a group of rows when rows are grouped; a changed row goes unseen
//! with probability 2^-32 (the tensor's sha256 still sees it); and without the reference bytes
//! the relative change is only a lower bound (`|‖a‖ − ‖b‖| / ‖b‖`), which is zero for a
//! change that keeps the norm (a row swap). The row summary costs 8 hex characters per row
//! group, a few MB of JSON for a 7B model. Statistics read back from JSON may differ from the
//! computed ones in the last bit; "changed" is always decided by the exact digests.
//!
//! **Diff** ([`diff`]): tensors are matched by name. Added or removed tensors and dtype or shape
//! changes are [`checks::DIFF_TENSOR_SET`]. For matched tensors a byte comparison decides
//! whether anything changed; with reference weights the relative change `‖a − b‖ / ‖b‖` is
//! exact and changed rows are found by comparing row bytes, with a fingerprint both come from
//! the stored statistics and row hashes. A changed tensor is anomalous when
//! - only a few of its rows changed (at most 5%, [`checks::DIFF_ROW_EDIT`]): a full fine-tune
//!   moves every row (weight decay alone does), a targeted edit does not;
//! - or it is one of few changed tensors (at most 3, or 5% of the matched tensors when that is
//!   more) while at least 75% of the model is bit-identical ([`checks::DIFF_LOCALIZED`]): a full
//!   fine-tune moves every tensor, and merged LoRA adapters or partial fine-tunes move whole
//!   families of tensors (every layer's q_proj, or every tensor of the last layers), which are
//!   more than a few. A targeted edit spread over more tensors than that is only summarised
//!   (and may still be an outlier);
//! - or its relative change is an outlier among the changed tensors ([`checks::DIFF_OUTLIER`],
//!   medium): robust z-score (median and MAD of log10 change) over 3.5 and at least ten times
//!   the median change, against all changed tensors or against the changed tensors of its own
//!   layer (fine-tunes often move late layers more than early ones, which widens the global
//!   spread), each needing at least five changed tensors.
//!
//! With reference weights, a tensor whose rows all moved is also checked row by row
//! ([`checks::DIFF_ROW_OUTLIERS`], medium): rows whose own relative change is a robust outlier
//! (same rule) among its changed rows, when they are at most 1% of the rows. That finds a few
//! rewritten embedding rows hidden inside a full fine-tune; it also fires on tokens a
//! fine-tune legitimately trained hard (new chat-template markers), hence medium. A fingerprint
//! holds row hashes, not row norms, so this check needs the reference weights.
//!
//! A full fine-tune therefore yields one info-level [`checks::DIFF_SUMMARY`]; a copy yields
//! nothing; `--identical` adds [`checks::DIFF_NOT_IDENTICAL`] (high) for any difference. NaN or
//! infinite values in the model are [`checks::NONFINITE_WEIGHTS`] either way. The report
//! carries a heatmap chart: layers (the first numeric component of a tensor name) by tensor kind,
//! coloured by log relative change.
use crate::checks;
use crate::safetensors::{visit, Model, Tensor};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tunegate_core::progress::Progress;
use tunegate_core::{Chart, ChartKind, Finding, Location, Report, Severity, Subject};

/// The schema tag of a fingerprint file.
pub const FP_SCHEMA: &str = "tunegate.fingerprint/v1";
/// Elements sampled per tensor for quantiles.
pub const SAMPLE: usize = 4096;
/// The quantile levels a fingerprint records.
pub const QUANTILE_LEVELS: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];
/// Most row hashes kept per tensor; taller tensors hash groups of rows.
pub const MAX_ROW_GROUPS: u64 = 65_536;
/// Largest fingerprint file read (bytes).
pub const MAX_FP_BYTES: u64 = 256 << 20;
/// Changed rows listed in a message; the evidence lists up to [`MAX_EVIDENCE_ROWS`].
const MAX_MESSAGE_ROWS: usize = 12;
const MAX_EVIDENCE_ROWS: usize = 200;
/// A tensor is row-edited when at most this fraction of its rows changed.
const ROW_EDIT_FRACTION: f64 = 0.05;
/// Changes are "localized" when at least this fraction of tensors is bit-identical.
const LOCALIZED_UNCHANGED: f64 = 0.75;
/// ... and at most this many tensors changed (or this fraction of them, when more).
const LOCALIZED_MAX: usize = 3;
const LOCALIZED_MAX_FRACTION: f64 = 0.05;

/// A model's fingerprint: the content of `fp.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Always [`FP_SCHEMA`].
    pub schema: String,
    /// The producing tool and version (`tunegate 0.1.0`).
    pub tool: String,
    /// The path that was fingerprinted, as given.
    pub source: String,
    /// Shard files in name order.
    pub files: Vec<FileDigest>,
    /// The levels of [`TensorStats::quantiles`].
    pub quantile_levels: Vec<f64>,
    /// Most elements sampled per tensor for quantiles.
    pub sample_size: usize,
    /// Per tensor, by name.
    pub tensors: BTreeMap<String, TensorStats>,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The file name (no folder).
    pub name: String,
    /// Lowercase hex sha256 of the whole file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One tensor's statistics. Mean, std, min, max, L2 and quantiles are over finite elements;
/// `None` (null) when there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    /// The shard file name holding it.
    pub file: String,
    /// safetensors dtype name.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Element count.
    pub numel: u64,
    /// Lowercase hex sha256 of the tensor's bytes.
    pub sha256: String,
    /// NaN elements.
    pub nan: u64,
    /// Infinite elements.
    pub inf: u64,
    /// Mean.
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub std: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// L2 norm.
    pub l2: f64,
    /// Quantiles at the fingerprint's `quantile_levels` (empty when no finite element).
    pub quantiles: Vec<f64>,
    /// Row hashes, for tensors of two or more dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowHashes>,
}

/// Hashes of a tensor's rows (first dimension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowHashes {
    /// Rows (the first dimension).
    pub rows: u64,
    /// Consecutive rows per hash (1 unless the tensor has more than [`MAX_ROW_GROUPS`] rows).
    pub rows_per_hash: u64,
    /// 8 lowercase hex characters (low 32 bits of xxh3-64) per group, concatenated.
    pub hashes: String,
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn row_groups(rows: u64) -> u64 {
    rows.div_ceil(MAX_ROW_GROUPS).max(1)
}

fn row_hashes(t: &Tensor, bytes: &[u8]) -> Option<RowHashes> {
    let rows = *t.shape.first()?;
    if t.shape.len() < 2 || rows < 2 {
        return None;
    }
    let g = row_groups(rows);
    let row_bytes = bytes.len() / rows as usize;
    let mut hashes = String::with_capacity(8 * rows.div_ceil(g) as usize);
    if row_bytes == 0 {
        return None;
    }
    for chunk in bytes.chunks(row_bytes * g as usize) {
        let h = xxhash_rust::xxh3::xxh3_64(chunk) as u32;
        hashes.push_str(&format!("{h:08x}"));
    }
    Some(RowHashes {
        rows,
        rows_per_hash: g,
        hashes,
    })
}

fn quantiles(mut sample: Vec<f64>) -> Vec<f64> {
    if sample.is_empty() {
        return Vec::new();
    }
    sample.sort_by(f64::total_cmp);
    let m = sample.len();
    QUANTILE_LEVELS
        .iter()
        .map(|p| {
            let pos = p * (m - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(m - 1);
            sample[lo] + (sample[hi] - sample[lo]) * (pos - lo as f64)
        })
        .collect()
}

/// The statistics of one tensor of `model`.
pub fn tensor_stats(model: &Model, t: &Tensor) -> TensorStats {
    let bytes = model.bytes(t);
    let size = t.dtype.size();
    let numel = bytes.len() / size;
    // Deterministic stride sample: quantiles, and a shift that keeps the variance sum stable.
    let k = numel.min(SAMPLE);
    let mut sample = Vec::with_capacity(k);
    for i in 0..k {
        let idx = if numel <= SAMPLE {
            i
        } else {
            (i as u128 * numel as u128 / SAMPLE as u128) as usize
        };
        visit(t.dtype, &bytes[idx * size..(idx + 1) * size], |v| {
            if v.is_finite() {
                sample.push(v)
            }
        });
    }
    let q = quantiles(sample);
    let shift = if q.is_empty() { 0.0 } else { q[3] };
    let (mut n, mut nan, mut inf) = (0u64, 0u64, 0u64);
    let (mut s1, mut s2, mut sq) = (0.0f64, 0.0f64, 0.0f64);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    visit(t.dtype, bytes, |v| {
        if v.is_nan() {
            nan += 1;
        } else if v.is_infinite() {
            inf += 1;
        } else {
            n += 1;
            let d = v - shift;
            s1 += d;
            s2 += d * d;
            sq += v * v;
            lo = lo.min(v);
            hi = hi.max(v);
        }
    });
    let (mean, std, min, max) = if n == 0 {
        (None, None, None, None)
    } else {
        let nf = n as f64;
        let var = ((s2 - s1 * s1 / nf) / nf).max(0.0);
        (Some(shift + s1 / nf), Some(var.sqrt()), Some(lo), Some(hi))
    };
    TensorStats {
        file: file_name(&model.shards[t.shard].path),
        dtype: t.dtype.name().to_string(),
        shape: t.shape.clone(),
        numel: t.numel(),
        sha256: hex::encode(Sha256::digest(bytes)),
        nan,
        inf,
        mean,
        std,
        min,
        max,
        l2: sq.sqrt(),
        quantiles: q,
        rows: row_hashes(t, bytes),
    }
}

fn shard_digests(model: &Model) -> Vec<FileDigest> {
    (0..model.shards.len())
        .into_par_iter()
        .map(|i| FileDigest {
            name: file_name(&model.shards[i].path),
            sha256: hex::encode(Sha256::digest(model.shard_bytes(i))),
            size: model.shards[i].size,
        })
        .collect()
}

/// Fingerprints an opened model (tensors in parallel), reporting tensor bytes done.
pub fn fingerprint_model(model: &Model, source: &str, progress: &dyn Progress) -> Fingerprint {
    let files = shard_digests(model);
    progress.start("fingerprint", tensor_bytes(&model.tensors));
    let tensors: Vec<(String, TensorStats)> = model
        .tensors
        .par_iter()
        .map(|t| {
            let s = tensor_stats(model, t);
            progress.advance(t.range.len() as u64);
            (t.name.clone(), s)
        })
        .collect();
    progress.finish();
    Fingerprint {
        schema: FP_SCHEMA.to_string(),
        tool: format!("tunegate {}", tunegate_core::VERSION),
        source: source.to_string(),
        files,
        quantile_levels: QUANTILE_LEVELS.to_vec(),
        sample_size: SAMPLE,
        tensors: tensors.into_iter().collect(),
    }
}

fn tensor_bytes<'a>(ts: impl IntoIterator<Item = &'a Tensor>) -> u64 {
    ts.into_iter().map(|t| t.range.len() as u64).sum()
}

/// Opens and fingerprints a safetensors file, index or folder.
pub fn fingerprint(path: &Path, progress: &dyn Progress) -> Result<Fingerprint> {
    let model = Model::open(path)?;
    Ok(fingerprint_model(
        &model,
        &path.display().to_string(),
        progress,
    ))
}

/// Reads and checks a fingerprint file: schema tag, and row hashes consistent with shapes.
pub fn read_fingerprint(path: &Path) -> Result<Fingerprint> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut text = Vec::new();
    f.take(MAX_FP_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > MAX_FP_BYTES {
        return Err(invalid(path, "fingerprint file larger than 256 MiB"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| invalid(path, format!("not valid JSON: {e}")))?;
    match v.get("schema").and_then(|s| s.as_str()) {
        Some(FP_SCHEMA) => {}
        other => {
            return Err(invalid(
                path,
                format!(
                    "schema {} is not {FP_SCHEMA}",
                    other.map_or("(missing)".to_string(), |s| format!("'{s}'"))
                ),
            ))
        }
    }
    let fp: Fingerprint = serde_json::from_value(v)
        .map_err(|e| invalid(path, format!("not a {FP_SCHEMA} fingerprint: {e}")))?;
    for (name, t) in &fp.tensors {
        if let Some(r) = &t.rows {
            let ok = r.rows_per_hash >= 1
                && r.rows.div_ceil(r.rows_per_hash).checked_mul(8) == Some(r.hashes.len() as u64)
                && r.hashes.bytes().all(|c| c.is_ascii_hexdigit())
                && t.shape.first() == Some(&r.rows);
            if !ok {
                return Err(invalid(
                    path,
                    format!("tensor '{name}': row hashes do not match its shape"),
                ));
            }
        }
    }
    Ok(fp)
}

/// How one matched tensor changed.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorChange {
    /// Tensor name.
    pub name: String,
    /// Whether any byte differs.
    pub changed: bool,
    /// `‖a − b‖ / ‖b‖` over finite element pairs when `measured`, else the lower bound
    /// `|‖a‖ − ‖b‖| / ‖b‖` from the fingerprint (1 when the reference norm is zero and the
    /// model's is not).
    pub rel: f64,
    /// True when computed from both tensors' bytes.
    pub measured: bool,
    /// Changed rows, for tensors of two or more dimensions.
    pub rows: Option<RowChange>,
}

/// Which rows of a tensor changed.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// Rows (first dimension).
    pub rows: u64,
    /// Rows per compared unit (1 with reference weights; the fingerprint's grouping otherwise).
    pub rows_per_unit: u64,
    /// Indices of the changed units, ascending.
    pub changed: Vec<u64>,
    /// Each changed row's relative change `‖a_r − b_r‖ / ‖b_r‖`, parallel to `changed`
    /// (reference weights only; empty with a fingerprint).
    pub rel: Vec<f64>,
}

impl RowChange {
    fn units(&self) -> u64 {
        self.rows.div_ceil(self.rows_per_unit)
    }
    /// Human-readable list of the first `max` changed rows or row ranges.
    fn describe(&self, max: usize) -> String {
        let mut parts: Vec<String> = self
            .changed
            .iter()
            .take(max)
            .map(|u| {
                let a = u * self.rows_per_unit;
                let b = ((u + 1) * self.rows_per_unit).min(self.rows) - 1;
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        if self.changed.len() > max {
            parts.push(format!("... ({} more)", self.changed.len() - max));
        }
        parts.join(", ")
    }
}

fn rel_of(diff2: f64, ref2: f64) -> f64 {
    if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else if diff2 > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Elements decoded at a time when comparing.
const BLOCK: usize = 4096;

/// `(Σ(x−y)², Σy²)` over element pairs of `a` and `b` where `y` (and for the difference `x`) is
/// finite, decoding at most [`BLOCK`] elements at a time.
fn pair_norms(
    da: crate::safetensors::Dtype,
    a: &[u8],
    db: crate::safetensors::Dtype,
    b: &[u8],
    bufs: &mut (Vec<f64>, Vec<f64>),
) -> (f64, f64) {
    let (mut d2, mut r2) = (0.0, 0.0);
    for (ca, cb) in a.chunks(BLOCK * da.size()).zip(b.chunks(BLOCK * db.size())) {
        bufs.0.clear();
        bufs.1.clear();
        visit(da, ca, |v| bufs.0.push(v));
        visit(db, cb, |v| bufs.1.push(v));
        for (x, y) in bufs.0.iter().zip(&bufs.1) {
            if y.is_finite() {
                r2 += y * y;
                if x.is_finite() {
                    d2 += (x - y) * (x - y);
                }
            }
        }
    }
    (d2, r2)
}

/// Compares two tensors of the same dtype and shape byte for byte, and numerically when they
/// differ (in blocks; nothing is copied whole).
pub fn compare_tensors(a: &Model, ta: &Tensor, b: &Model, tb: &Tensor) -> TensorChange {
    let (ab, bb) = (a.bytes(ta), b.bytes(tb));
    let mut out = TensorChange {
        name: ta.name.clone(),
        changed: ab != bb,
        rel: 0.0,
        measured: true,
        rows: None,
    };
    if !out.changed {
        return out;
    }
    let s = ta.dtype.size();
    let rows = match ta.shape.first() {
        Some(&r) if ta.shape.len() >= 2 && r >= 2 && !ab.is_empty() => Some(r),
        _ => None,
    };
    // Compare row by row for row-structured tensors, else in blocks; decode only what differs.
    let unit = rows.map_or(BLOCK * s, |r| ab.len() / r as usize).max(1);
    let mut bufs = (Vec::with_capacity(BLOCK), Vec::with_capacity(BLOCK));
    let (mut d2, mut r2) = (0.0f64, 0.0f64);
    let (mut changed_rows, mut row_rel) = (Vec::new(), Vec::new());
    for (i, (ca, cb)) in ab.chunks(unit).zip(bb.chunks(unit)).enumerate() {
        let (ud, ur) = if ca == cb {
            (0.0, pair_norms(tb.dtype, cb, tb.dtype, cb, &mut bufs).1)
        } else {
            let n = pair_norms(ta.dtype, ca, tb.dtype, cb, &mut bufs);
            if rows.is_some() {
                changed_rows.push(i as u64);
                row_rel.push(rel_of(n.0, n.1));
            }
            n
        };
        d2 += ud;
        r2 += ur;
    }
    if let Some(rows) = rows {
        out.rows = Some(RowChange {
            rows,
            rows_per_unit: 1,
            changed: changed_rows,
            rel: row_rel,
        });
    }
    out.rel = rel_of(d2, r2);
    out
}

/// Compares a tensor's statistics with a stored fingerprint's.
pub fn compare_stats(name: &str, a: &TensorStats, b: &TensorStats) -> TensorChange {
    let changed = a.sha256 != b.sha256;
    let rel = if changed {
        let d = a.l2 - b.l2;
        rel_of(d * d, b.l2 * b.l2)
    } else {
        0.0
    };
    let rows = match (&a.rows, &b.rows) {
        (Some(x), Some(y)) if changed && x.rows == y.rows && x.rows_per_hash == y.rows_per_hash => {
            let changed = x
                .hashes
                .as_bytes()
                .chunks(8)
                .zip(y.hashes.as_bytes().chunks(8))
                .enumerate()
                .filter(|(_, (p, q))| p != q)
                .map(|(i, _)| i as u64)
                .collect();
            Some(RowChange {
                rows: x.rows,
                rows_per_unit: x.rows_per_hash,
                changed,
                rel: Vec::new(),
            })
        }
        _ => None,
    };
    TensorChange {
        name: name.to_string(),
        changed,
        rel,
        measured: false,
        rows,
    }
}

/// Options of [`diff`].
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// The model is claimed identical to the reference: any difference is high.
    pub identical: bool,
}

/// What the reference is.
enum Reference {
    Weights(Model),
    Stored(Fingerprint),
}

/// True when `path` names a fingerprint file rather than weights.
pub fn is_fingerprint_path(path: &Path) -> bool {
    let n = file_name(path).to_ascii_lowercase();
    path.is_file() && n.ends_with(".json") && !n.ends_with(".index.json")
}

/// Diffs the model at `path` against `reference` (weights: a file, index or folder; or a
/// fingerprint `.json`) into a `model` gate report (threshold high).
pub fn diff(
    path: &Path,
    reference: &Path,
    opts: &DiffOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let model = Model::open(path)?;
    let reference_kind = if is_fingerprint_path(reference) {
        Reference::Stored(read_fingerprint(reference)?)
    } else {
        Reference::Weights(Model::open(reference)?)
    };
    let fp = fingerprint_model(&model, &path.display().to_string(), progress);
    let mut report = Report::new("model", Severity::High);
    for (s, d) in model.shards.iter().zip(&fp.files) {
        report
            .subjects
            .push(Subject::sha256(s.name.clone(), d.sha256.clone()));
    }
    // Reference tensors: name -> (dtype, shape, file shown in locations).
    let ref_meta: BTreeMap<String, (String, Vec<u64>, String)> = match &reference_kind {
        Reference::Weights(r) => {
            for (s, d) in r.shards.iter().zip(shard_digests(r)) {
                report
                    .subjects
                    .push(Subject::sha256(s.name.clone(), d.sha256));
            }
            r.tensors
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        (
                            t.dtype.name().to_string(),
                            t.shape.clone(),
                            r.shards[t.shard].name.clone(),
                        ),
                    )
                })
                .collect()
        }
        Reference::Stored(f) => {
            let (digest, _) = tunegate_core::digest::sha256_file(reference).map_err(|e| {
                invalid(reference, format!("cannot hash the fingerprint file: {e}"))
            })?;
            report
                .subjects
                .push(Subject::sha256(reference.display().to_string(), digest));
            f.tensors
                .iter()
                .map(|(n, t)| {
                    (
                        n.clone(),
                        (
                            t.dtype.clone(),
                            t.shape.clone(),
                            reference.display().to_string(),
                        ),
                    )
                })
                .collect()
        }
    };
    let shard_of = |name: &str| -> String {
        model
            .get(name)
            .map(|t| model.shards[t.shard].name.clone())
            .unwrap_or_default()
    };
    let loc = |file: String, tensor: &str| Location {
        tensor: Some(tensor.to_string()),
        ..Location::file(file)
    };
    let set_sev = if opts.identical {
        Severity::High
    } else {
        Severity::Medium
    };
    let mut set_changes = 0u64;
    let mut heat: Vec<(String, f64)> = Vec::new();
    let mut matched: Vec<&Tensor> = Vec::new();
    for t in &model.tensors {
        match ref_meta.get(&t.name) {
            None => {
                set_changes += 1;
                heat.push((t.name.clone(), 1.0));
                report.findings.push(
                    Finding::new(
                        &checks::DIFF_TENSOR_SET,
                        format!(
                            "tensor '{}' ({} {:?}) is not in the reference",
                            t.name,
                            t.dtype.name(),
                            t.shape
                        ),
                        loc(shard_of(&t.name), &t.name),
                    )
                    .severity(set_sev)
                    .evidence(
                        json!({"change": "added", "dtype": t.dtype.name(), "shape": t.shape}),
                    ),
                );
            }
            Some((d, s, _)) if d != t.dtype.name() || *s != t.shape => {
                set_changes += 1;
                heat.push((t.name.clone(), 1.0));
                report.findings.push(
                    Finding::new(
                        &checks::DIFF_TENSOR_SET,
                        format!(
                            "tensor '{}' is {} {:?} but {} {:?} in the reference",
                            t.name,
                            t.dtype.name(),
                            t.shape,
                            d,
                            s
                        ),
                        loc(shard_of(&t.name), &t.name),
                    )
                    .severity(set_sev)
                    .evidence(json!({"change": "dtype-or-shape", "dtype": t.dtype.name(), "shape": t.shape, "reference_dtype": d, "reference_shape": s})),
                );
            }
            Some(_) => matched.push(t),
        }
    }
    for (name, (d, s, file)) in &ref_meta {
        if model.get(name).is_none() {
            set_changes += 1;
            heat.push((name.clone(), 1.0));
            report.findings.push(
                Finding::new(
                    &checks::DIFF_TENSOR_SET,
                    format!("reference tensor '{name}' ({d} {s:?}) is missing from the model"),
                    loc(file.clone(), name),
                )
                .severity(set_sev)
                .evidence(json!({"change": "removed", "dtype": d, "shape": s})),
            );
        }
    }
    let changes: Vec<TensorChange> = match &reference_kind {
        Reference::Weights(r) => {
            progress.start("compare", tensor_bytes(matched.iter().copied()));
            let c = matched
                .par_iter()
                .map(|t| {
                    let c = compare_tensors(&model, t, r, r.get(&t.name).expect("matched"));
                    progress.advance(t.range.len() as u64);
                    c
                })
                .collect();
            progress.finish();
            c
        }
        Reference::Stored(f) => matched
            .iter()
            .map(|t| compare_stats(&t.name, &fp.tensors[&t.name], &f.tensors[&t.name]))
            .collect(),
    };
    let measured = matches!(reference_kind, Reference::Weights(_));
    let how = if measured {
        "relative change"
    } else {
        "relative change lower bound (fingerprint)"
    };
    // Non-finite values in the model.
    for (name, st) in &fp.tensors {
        if st.nan + st.inf > 0 {
            let refnote = match &reference_kind {
                Reference::Stored(f) => f
                    .tensors
                    .get(name)
                    .map(|r| format!(" (reference: {} NaN, {} infinite)", r.nan, r.inf))
                    .unwrap_or_default(),
                Reference::Weights(_) => String::new(),
            };
            report.findings.push(
                Finding::new(
                    &checks::NONFINITE_WEIGHTS,
                    format!(
                        "tensor '{name}' holds {} NaN and {} infinite values{refnote}",
                        st.nan, st.inf
                    ),
                    loc(shard_of(name), name),
                )
                .evidence(json!({"nan": st.nan, "inf": st.inf})),
            );
        }
    }
    let n = changes.len();
    let changed: Vec<&TensorChange> = changes.iter().filter(|c| c.changed).collect();
    let unchanged = n - changed.len();
    let few = (LOCALIZED_MAX_FRACTION * n as f64).floor() as usize;
    let localized = !changed.is_empty()
        && changed.len() <= few.max(LOCALIZED_MAX)
        && unchanged as f64 >= LOCALIZED_UNCHANGED * n as f64;
    let outliers = outlier_names(&changed);
    for c in &changes {
        heat.push((
            c.name.clone(),
            if c.changed { c.rel.max(1e-12) } else { 0.0 },
        ));
    }
    for c in &changed {
        let location = loc(shard_of(&c.name), &c.name);
        let mut ev = json!({"relative_change": c.rel, "measured": c.measured});
        if let Some(r) = &c.rows {
            let rows_changed: u64 = r
                .changed
                .iter()
                .map(|u| ((u + 1) * r.rows_per_unit).min(r.rows) - u * r.rows_per_unit)
                .sum();
            ev["rows"] = json!(r.rows);
            ev["rows_per_unit"] = json!(r.rows_per_unit);
            ev["changed_units"] = json!(r.changed.len());
            ev["changed_rows_at_most"] = json!(rows_changed);
            ev["changed"] = json!(r
                .changed
                .iter()
                .take(MAX_EVIDENCE_ROWS)
                .map(|u| u * r.rows_per_unit)
                .collect::<Vec<_>>());
            let sparse = !r.changed.is_empty()
                && r.changed.len() as f64 <= ROW_EDIT_FRACTION * r.units() as f64;
            if sparse {
                let what = if r.rows_per_unit == 1 {
                    format!("{} of {} rows", r.changed.len(), r.rows)
                } else {
                    format!(
                        "{} of {} groups of {} rows",
                        r.changed.len(),
                        r.units(),
                        r.rows_per_unit
                    )
                };
                report.findings.push(
                    Finding::new(
                        &checks::DIFF_ROW_EDIT,
                        format!(
                            "{what} of {} changed: rows {} ({how} {:.3e}); the other rows are bit-identical",
                            c.name,
                            r.describe(MAX_MESSAGE_ROWS),
                            c.rel
                        ),
                        location,
                    )
                    .evidence(ev),
                );
                continue;
            }
            let hot = row_outliers(r);
            if !hot.is_empty() {
                let hot_rows: Vec<u64> = hot.iter().map(|&i| r.changed[i]).collect();
                let hot_rel: Vec<f64> = hot.iter().map(|&i| r.rel[i]).collect();
                let list: Vec<String> = hot_rows
                    .iter()
                    .zip(&hot_rel)
                    .take(MAX_MESSAGE_ROWS)
                    .map(|(row, rel)| format!("{row} ({rel:.2e})"))
                    .collect();
                report.findings.push(
                    Finding::new(
                        &checks::DIFF_ROW_OUTLIERS,
                        format!(
                            "{} row(s) of {} changed far more than its other {} changed rows (median row change {:.2e}): rows {}",
                            hot.len(),
                            c.name,
                            r.changed.len() - hot.len(),
                            median(r.rel.clone()),
                            list.join(", ")
                        ),
                        location.clone(),
                    )
                    .evidence(json!({
                        "rows": hot_rows.iter().take(MAX_EVIDENCE_ROWS).collect::<Vec<_>>(),
                        "row_relative_change": hot_rel.iter().take(MAX_EVIDENCE_ROWS).collect::<Vec<_>>(),
                        "median_row_relative_change": median(r.rel.clone()),
                        "changed_rows": r.changed.len(),
                    })),
                );
            }
        }
        if localized {
            report.findings.push(
                Finding::new(
                    &checks::DIFF_LOCALIZED,
                    format!(
                        "{} changed ({how} {:.3e}) while {unchanged} of {n} tensors are bit-identical to the reference",
                        c.name, c.rel
                    ),
                    location,
                )
                .evidence(ev),
            );
        } else if let Some((scope, med)) = outliers.get(c.name.as_str()) {
            report.findings.push(
                Finding::new(
                    &checks::DIFF_OUTLIER,
                    format!(
                        "{} changed far more than {scope} ({how} {:.3e}, their median {med:.3e})",
                        c.name, c.rel
                    ),
                    location,
                )
                .evidence(ev),
            );
        }
    }
    if !changed.is_empty() || set_changes > 0 {
        let rels: Vec<f64> = changed.iter().map(|c| c.rel).collect();
        let max = changed
            .iter()
            .max_by(|a, b| a.rel.total_cmp(&b.rel))
            .map(|c| (c.name.clone(), c.rel));
        let mut msg = format!(
            "{} of {n} matched tensors changed, {set_changes} added, removed or reshaped",
            changed.len()
        );
        if let Some((mn, mv)) = &max {
            msg.push_str(&format!(
                "; median {how} {:.3e}, largest {mv:.3e} ({mn})",
                median(rels.clone())
            ));
        }
        report.findings.push(
            Finding::new(
                &checks::DIFF_SUMMARY,
                msg,
                Location::file(path.display().to_string()),
            )
            .evidence(json!({
                "matched": n,
                "changed": changed.len(),
                "unchanged": unchanged,
                "added_removed_reshaped": set_changes,
                "median_relative_change": if rels.is_empty() { None } else { Some(median(rels)) },
                "measured": measured,
            })),
        );
        if opts.identical {
            let names: Vec<&str> = changed.iter().take(10).map(|c| c.name.as_str()).collect();
            report.findings.push(
                Finding::new(
                    &checks::DIFF_NOT_IDENTICAL,
                    format!(
                        "claimed identical to {}, but {} tensors changed and {set_changes} were added, removed or reshaped{}",
                        reference.display(),
                        changed.len(),
                        if names.is_empty() { String::new() } else { format!(" (changed: {})", names.join(", ")) }
                    ),
                    Location::file(path.display().to_string()),
                )
                .evidence(json!({"changed": changed.len(), "added_removed_reshaped": set_changes})),
            );
        }
    }
    report.charts.push(heatmap(&heat, measured));
    report.summary.records = Some(model.shards.len() as u64);
    report.finish();
    Ok(report)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len();
    if m % 2 == 1 {
        v[m / 2]
    } else {
        (v[m / 2 - 1] + v[m / 2]) / 2.0
    }
}

/// Indices of `values` whose log10 has a robust z-score (median and MAD) over 3.5 and lies at
/// least a decade above the median; zero, negative and non-finite values are ignored. Needs
/// `min_n` usable values.
fn robust_outliers(values: &[f64], min_n: usize) -> Vec<usize> {
    let xs: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.0 && v.is_finite())
        .map(|(i, v)| (i, v.log10()))
        .collect();
    if xs.len() < min_n {
        return Vec::new();
    }
    let med = median(xs.iter().map(|x| x.1).collect());
    let mad = median(xs.iter().map(|x| (x.1 - med).abs()).collect()).max(1e-9);
    xs.into_iter()
        .filter(|(_, x)| 0.6745 * (x - med) / mad > 3.5 && x - med >= 1.0)
        .map(|(i, _)| i)
        .collect()
}

/// Changed tensors whose relative change is a robust outlier, against all changed tensors or
/// against the changed tensors of their own layer (each needs at least five), with the scope
/// and the median they were compared with.
fn outlier_names<'a>(changed: &[&'a TensorChange]) -> BTreeMap<&'a str, (String, f64)> {
    let mut out = BTreeMap::new();
    let rels: Vec<f64> = changed.iter().map(|c| c.rel).collect();
    let med = median(rels.clone());
    for i in robust_outliers(&rels, 5) {
        out.insert(
            changed[i].name.as_str(),
            ("the rest of the model".to_string(), med),
        );
    }
    let mut layers: BTreeMap<String, Vec<&'a TensorChange>> = BTreeMap::new();
    for c in changed {
        let (_, row, _) = layer_of(&c.name);
        if row != "(no layer)" {
            layers.entry(row).or_default().push(c);
        }
    }
    for (layer, members) in layers {
        let rels: Vec<f64> = members.iter().map(|c| c.rel).collect();
        let med = median(rels.clone());
        for i in robust_outliers(&rels, 5) {
            out.entry(members[i].name.as_str())
                .or_insert_with(|| (format!("the other tensors of {layer}"), med));
        }
    }
    out
}

/// Rows (indices into `r.changed`) that changed far more than the tensor's other changed rows:
/// robust outliers, at most 1% of the rows (a distribution of large changes is not a few
/// edited rows), in tensors of at least 50 rows.
fn row_outliers(r: &RowChange) -> Vec<usize> {
    if r.rows < 50 || r.rel.len() != r.changed.len() {
        return Vec::new();
    }
    let out = robust_outliers(&r.rel, 20);
    if out.len() as u64 > (r.rows / 100).max(1) {
        return Vec::new();
    }
    out
}

/// Splits a tensor name into (layer sort key, row label, column label): the layer is the first
/// all-digit dotted component (`model.layers.12.mlp.up_proj.weight` → row `model.layers.12`,
/// column `mlp.up_proj.weight`); names without one go to the row `(no layer)`.
fn layer_of(name: &str) -> ((String, u64), String, String) {
    let parts: Vec<&str> = name.split('.').collect();
    for (k, p) in parts.iter().enumerate() {
        if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) {
            if let Ok(i) = p.parse::<u64>() {
                let prefix = parts[..k].join(".");
                let col = parts[k + 1..].join(".");
                let row = if prefix.is_empty() {
                    p.to_string()
                } else {
                    format!("{prefix}.{p}")
                };
                let col = if col.is_empty() {
                    "(value)".into()
                } else {
                    col
                };
                return ((prefix, i), row, col);
            }
        }
    }
    ((String::new(), 0), "(no layer)".into(), name.to_string())
}

fn heatmap(cells: &[(String, f64)], measured: bool) -> Chart {
    let mut rows: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut cols: BTreeSet<String> = BTreeSet::new();
    let mut at: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (name, v) in cells {
        let (key, row, col) = layer_of(name);
        rows.insert(key, row.clone());
        cols.insert(col.clone());
        at.insert((row, col), *v);
    }
    let columns: Vec<String> = cols.into_iter().collect();
    let labels: Vec<String> = rows.into_values().collect();
    let mut values = Vec::with_capacity(labels.len() * columns.len());
    for r in &labels {
        for c in &columns {
            values.push(at.get(&(r.clone(), c.clone())).copied().unwrap_or(-1.0));
        }
    }
    Chart {
        id: "weight-change-heatmap".into(),
        title: "Weight change per layer and tensor".into(),
        kind: ChartKind::Heatmap { columns },
        labels,
        values,
        unit: if measured {
            "relative change ‖a−b‖/‖b‖ (added, removed, reshaped = 1)".into()
        } else {
            "relative change lower bound |‖a‖−‖b‖|/‖b‖ (added, removed, reshaped = 1)".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_columns() {
        assert_eq!(
            layer_of("model.layers.12.mlp.up_proj.weight"),
            (
                ("model.layers".into(), 12),
                "model.layers.12".into(),
                "mlp.up_proj.weight".into()
            )
        );
        assert_eq!(layer_of("lm_head.weight").1, "(no layer)");
        assert_eq!(layer_of("h.3").2, "(value)");
    }

    #[test]
    fn quantiles_interpolate() {
        let q = quantiles((0..=100).map(f64::from).rev().collect());
        assert_eq!(q, vec![1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0]);
        assert!(quantiles(Vec::new()).is_empty());
    }

    #[test]
    fn row_ranges_describe() {
        let r = RowChange {
            rows: 10,
            rows_per_unit: 4,
            changed: vec![0, 2],
            rel: Vec::new(),
        };
        assert_eq!(r.describe(5), "0-3, 8-9");
        let r = RowChange {
            rows: 10,
            rows_per_unit: 1,
            changed: vec![1, 2, 3],
            rel: Vec::new(),
        };
        assert_eq!(r.describe(2), "1, 2, ... (1 more)");
    }

    #[test]
    fn outliers_need_a_decade_and_a_z_score() {
        let mk = |n: &str, rel: f64| TensorChange {
            name: n.into(),
            changed: true,
            rel,
            measured: true,
            rows: None,
        };
        let v: Vec<TensorChange> = (0..8)
            .map(|i| mk(&format!("t{i}"), 0.01 * (1.0 + i as f64 * 0.05)))
            .chain([mk("big", 0.5)])
            .collect();
        let refs: Vec<&TensorChange> = v.iter().collect();
        let out = outlier_names(&refs);
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec!["big"]);
        assert_eq!(out["big"].0, "the rest of the model");
        let refs: Vec<&TensorChange> = v[..8].iter().collect();
        assert!(outlier_names(&refs).is_empty());
        // Layers that drift apart hide a tensor from the global rule, not from its layer's.
        let mut v = Vec::new();
        for l in 0..8 {
            let s = 10f64.powf(-4.0 + 0.3 * l as f64);
            for k in ["q", "k", "v", "o", "up", "down"] {
                let rel = if l == 5 && k == "v" { 0.45 } else { s };
                v.push(mk(&format!("m.layers.{l}.{k}"), rel));
            }
        }
        let refs: Vec<&TensorChange> = v.iter().collect();
        let out = outlier_names(&refs);
        assert_eq!(
            out.keys().copied().collect::<Vec<_>>(),
            vec!["m.layers.5.v"]
        );
        assert_eq!(out["m.layers.5.v"].0, "the other tensors of m.layers.5");
    }
}
