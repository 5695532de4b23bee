//! Memory-mapped safetensors weights for the weight statistics of [`crate::weights`].
//!
//! [`Model::open`] takes one `.safetensors` file, a `model.safetensors.index.json`, or a folder
//! (the index when present, otherwise every `*.safetensors` file directly inside it). Every
//! shard's header is validated with the same checks `model scan` applies
//! ([`crate::container::safetensors_header`] and [`crate::formats::safetensors_problems`]) before
//! any tensor byte is touched; a header with any problem is an error naming the file and tensor
//! (exit 2), because statistics over bytes the header lies about would be meaningless.
//!
//! Tensor data is never copied: [`Model::bytes`] is a slice of the shard's read-only map, and
//! [`visit`] decodes it element by element.
use crate::{container, formats, Error, Result};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The element types statistics are computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// float8 e4m3 "fn" (no infinities; `S.1111.111` is NaN).
    F8E4M3,
    /// float8 e5m2 (IEEE-like, with infinities and NaNs).
    F8E5M2,
    /// float8 e8m0 (a power of two; `0xFF` is NaN).
    F8E8M0,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// One byte, zero is false.
    Bool,
}

impl Dtype {
    /// Parses a safetensors dtype name; `None` for names statistics are not computed for
    /// (complex, sub-byte floats).
    pub fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F64" => Dtype::F64,
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F8_E4M3" => Dtype::F8E4M3,
            "F8_E5M2" => Dtype::F8E5M2,
            "F8_E8M0" => Dtype::F8E8M0,
            "I8" => Dtype::I8,
            "U8" => Dtype::U8,
            "I16" => Dtype::I16,
            "U16" => Dtype::U16,
            "I32" => Dtype::I32,
            "U32" => Dtype::U32,
            "I64" => Dtype::I64,
            "U64" => Dtype::U64,
            "BOOL" => Dtype::Bool,
            _ => return None,
        })
    }

    /// The safetensors name.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::Bool => "BOOL",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 | Dtype::U16 => 2,
            _ => 1,
        }
    }
}

/// float8 e4m3fn to f64: bias 7, no infinities, `S.1111.111` is NaN.
pub fn f8_e4m3(b: u8) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((b >> 3) & 0x0f);
    let m = f64::from(b & 0x07);
    if e == 0x0f && b & 0x07 == 0x07 {
        return f64::NAN;
    }
    if e == 0 {
        sign * m / 8.0 * 2f64.powi(-6)
    } else {
        sign * (1.0 + m / 8.0) * 2f64.powi(e - 7)
    }
}

/// float8 e5m2 to f64: bias 15, exponent 31 holds infinities and NaNs.
pub fn f8_e5m2(b: u8) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((b >> 2) & 0x1f);
    let m = f64::from(b & 0x03);
    if e == 0x1f {
        return if m == 0.0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    if e == 0 {
        sign * m / 4.0 * 2f64.powi(-14)
    } else {
        sign * (1.0 + m / 4.0) * 2f64.powi(e - 15)
    }
}

/// Calls `f` with every element of `bytes` (little-endian `dtype` values) as f64, in order.
/// Trailing bytes that do not make a whole element are ignored (validated headers have none).
pub fn visit(dtype: Dtype, bytes: &[u8], mut f: impl FnMut(f64)) {
    macro_rules! each {
        ($n:literal, $conv:expr) => {
            for c in bytes.chunks_exact($n) {
                let a: [u8; $n] = c.try_into().expect("chunk size");
                f($conv(a));
            }
        };
    }
    match dtype {
        Dtype::F64 => each!(8, f64::from_le_bytes),
        Dtype::F32 => each!(4, |a| f64::from(f32::from_le_bytes(a))),
        Dtype::F16 => each!(2, |a| half::f16::from_le_bytes(a).to_f64()),
        Dtype::BF16 => each!(2, |a| half::bf16::from_le_bytes(a).to_f64()),
        Dtype::F8E4M3 => each!(1, |a: [u8; 1]| f8_e4m3(a[0])),
        Dtype::F8E5M2 => each!(1, |a: [u8; 1]| f8_e5m2(a[0])),
        Dtype::F8E8M0 => each!(1, |a: [u8; 1]| if a[0] == 0xff {
            f64::NAN
        } else {
            2f64.powi(i32::from(a[0]) - 127)
        }),
        Dtype::I8 => each!(1, |a| f64::from(i8::from_le_bytes(a))),
        Dtype::U8 => each!(1, |a| f64::from(u8::from_le_bytes(a))),
        Dtype::I16 => each!(2, |a| f64::from(i16::from_le_bytes(a))),
        Dtype::U16 => each!(2, |a| f64::from(u16::from_le_bytes(a))),
        Dtype::I32 => each!(4, |a| f64::from(i32::from_le_bytes(a))),
        Dtype::U32 => each!(4, |a| f64::from(u32::from_le_bytes(a))),
        Dtype::I64 => each!(8, |a| i64::from_le_bytes(a) as f64),
        Dtype::U64 => each!(8, |a| u64::from_le_bytes(a) as f64),
        Dtype::Bool => each!(1, |a: [u8; 1]| f64::from(u8::from(a[0] != 0))),
    }
}

/// The element at index `i` of `bytes` as f64.
pub fn value_at(dtype: Dtype, bytes: &[u8], i: usize) -> f64 {
    let s = dtype.size();
    let mut out = f64::NAN;
    visit(dtype, &bytes[i * s..(i + 1) * s], |v| out = v);
    out
}

/// One mapped shard.
#[derive(Debug)]
pub struct Shard {
    /// The path as opened.
    pub path: PathBuf,
    /// The path as shown in messages and reports.
    pub name: String,
    /// The file's size in bytes.
    pub size: u64,
    map: Mmap,
}

/// One tensor of a model.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Its name in the header.
    pub name: String,
    /// Index into [`Model::shards`].
    pub shard: usize,
    /// Element type.
    pub dtype: Dtype,
    /// Shape (empty for a scalar).
    pub shape: Vec<u64>,
    /// Absolute byte range in the shard file.
    pub range: std::ops::Range<usize>,
}

impl Tensor {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A safetensors model: its shards, mapped read-only, and its tensors in name order.
#[derive(Debug)]
pub struct Model {
    /// Shard files in name order.
    pub shards: Vec<Shard>,
    /// Tensors sorted by name; names are unique across shards.
    pub tensors: Vec<Tensor>,
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps one shard and parses its validated header into tensors (shard index `idx`).
fn open_shard(path: &Path, idx: usize) -> Result<(Shard, Vec<Tensor>)> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    if size < 8 {
        return Err(invalid(
            path,
            "safetensors file shorter than its 8-byte header length",
        ));
    }
    // SAFETY: the map is read-only and private to this process. Another process truncating or
    // rewriting the file while it is mapped could change (or, on truncation, fault) the bytes
    // read; tunegate reads inputs it was pointed at and accepts that, like every mmap-based
    // safetensors loader.
    let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
    let (header, data_len) =
        container::safetensors_header(&map, size).map_err(|m| invalid(path, m))?;
    let problems = formats::safetensors_problems(header, data_len);
    if !problems.is_empty() {
        let msgs: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
        return Err(invalid(
            path,
            format!("invalid safetensors header: {}", msgs.join("; ")),
        ));
    }
    let base = 8 + header.len();
    let v: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| invalid(path, e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "header is not a JSON object"))?;
    let mut tensors = Vec::with_capacity(obj.len());
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| invalid(path, format!("tensor '{name}': {what}"));
        let dname = t
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad("no dtype"))?;
        let dtype = Dtype::parse(dname).ok_or_else(|| {
            bad(&format!(
                "dtype {dname} is not supported by weight statistics"
            ))
        })?;
        let shape: Vec<u64> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect())
            .ok_or_else(|| bad("bad shape"))?;
        let offs: Vec<usize> = t
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                    .collect()
            })
            .ok_or_else(|| bad("bad data_offsets"))?;
        let [b, e] = offs[..] else {
            return Err(bad("bad data_offsets"));
        };
        tensors.push(Tensor {
            name: name.clone(),
            shard: idx,
            dtype,
            shape,
            range: base + b..base + e,
        });
    }
    Ok((
        Shard {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            size,
            map,
        },
        tensors,
    ))
}

/// A shard name from an index must be a plain file name inside the model folder.
fn plain_name(index: &Path, f: &str) -> Result<()> {
    let p = Path::new(f);
    let ok = !f.is_empty()
        && p.components().count() == 1
        && matches!(p.components().next(), Some(std::path::Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            index,
            format!("weight_map names shard '{f}', which is not a file name inside the folder"),
        ))
    }
}

/// An index file and its weight map (tensor name → shard file name).
type Index = (PathBuf, BTreeMap<String, String>);

/// The shard files of `path` and, when an index was used, its weight map.
fn shard_files(path: &Path) -> Result<(Vec<PathBuf>, Option<Index>)> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let index = if meta.is_dir() {
        let i = path.join("model.safetensors.index.json");
        i.is_file().then_some(i)
    } else if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".safetensors.index.json"))
    {
        Some(path.to_path_buf())
    } else {
        return Ok((vec![path.to_path_buf()], None));
    };
    if let Some(index) = index {
        let text = std::fs::read(&index).map_err(io(&index))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| invalid(&index, format!("not valid JSON: {e}")))?;
        let wm = v
            .get("weight_map")
            .and_then(|w| w.as_object())
            .ok_or_else(|| invalid(&index, "no weight_map object"))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut map = BTreeMap::new();
        let mut files = std::collections::BTreeSet::new();
        for (t, f) in wm {
            let f = f.as_str().ok_or_else(|| {
                invalid(
                    &index,
                    format!("weight_map entry for tensor '{t}' is not a string"),
                )
            })?;
            plain_name(&index, f)?;
            files.insert(f.to_string());
            map.insert(t.clone(), f.to_string());
        }
        if files.is_empty() {
            return Err(invalid(&index, "weight_map is empty"));
        }
        let paths = files.iter().map(|f| dir.join(f)).collect();
        return Ok((paths, Some((index, map))));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".safetensors"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(invalid(path, "no *.safetensors file in this folder"));
    }
    Ok((files, None))
}

impl Model {
    /// Opens a file, an index or a folder (see the module docs). Headers are validated; tensor
    /// names must be unique across shards and agree with the index when there is one.
    pub fn open(path: &Path) -> Result<Model> {
        let (files, index) = shard_files(path)?;
        let mut shards = Vec::with_capacity(files.len());
        let mut tensors: Vec<Tensor> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let (s, t) = open_shard(f, i)?;
            shards.push(s);
            tensors.extend(t);
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        for w in tensors.windows(2) {
            if w[0].name == w[1].name {
                return Err(invalid(
                    &shards[w[1].shard].path,
                    format!(
                        "tensor '{}' is also in {}",
                        w[1].name, shards[w[0].shard].name
                    ),
                ));
            }
        }
        if let Some((ipath, map)) = index {
            for (t, f) in &map {
                let found = tensors
                    .binary_search_by(|x| x.name.as_str().cmp(t))
                    .ok()
                    .map(|k| &tensors[k]);
                let in_file = found.is_some_and(|x| {
                    shards[x.shard]
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy())
                        == Some(f.as_str().into())
                });
                if !in_file {
                    return Err(invalid(
                        &ipath,
                        format!("weight_map puts tensor '{t}' in {f}, which does not hold it"),
                    ));
                }
            }
        }
        Ok(Model { shards, tensors })
    }

    /// The raw bytes of `t`.
    pub fn bytes(&self, t: &Tensor) -> &[u8] {
        &self.shards[t.shard].map[t.range.clone()]
    }

    /// The whole mapped file of shard `i` (for its digest).
    pub fn shard_bytes(&self, i: usize) -> &[u8] {
        &self.shards[i].map
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors
            .binary_search_by(|x| x.name.as_str().cmp(name))
            .ok()
            .map(|k| &self.tensors[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f8_decoding() {
        assert_eq!(f8_e4m3(0x00), 0.0);
        assert_eq!(f8_e4m3(0x38), 1.0); // e=7, m=0
        assert_eq!(f8_e4m3(0xb8), -1.0);
        assert_eq!(f8_e4m3(0x7e), 448.0); // largest finite
        assert!(f8_e4m3(0x7f).is_nan());
        assert_eq!(f8_e4m3(0x01), 2f64.powi(-9)); // smallest subnormal
        assert_eq!(f8_e5m2(0x3c), 1.0); // e=15
        assert_eq!(f8_e5m2(0x7b), 57344.0);
        assert_eq!(f8_e5m2(0x7c), f64::INFINITY);
        assert_eq!(f8_e5m2(0xfc), f64::NEG_INFINITY);
        assert!(f8_e5m2(0x7d).is_nan());
        assert_eq!(f8_e5m2(0x01), 2f64.powi(-16));
    }

    #[test]
    fn visit_decodes_little_endian() {
        let mut v = Vec::new();
        visit(Dtype::I16, &[0xff, 0xff, 0x02, 0x00], |x| v.push(x));
        assert_eq!(v, [-1.0, 2.0]);
        // bf16 1.5 = 0x3fc0, f16 -2 = 0xc000.
        assert_eq!(value_at(Dtype::BF16, &[0xc0, 0x3f], 0), 1.5);
        assert_eq!(value_at(Dtype::F16, &[0x00, 0x00, 0x00, 0xc0], 1), -2.0);
        assert_eq!(value_at(Dtype::Bool, &[0, 7], 1), 1.0);
    }
}
