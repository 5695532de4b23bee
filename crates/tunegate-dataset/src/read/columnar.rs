//! Parquet, through the `parquet` crate's row API (no Arrow: it would triple build time).
//!
//! Rows become JSON-shaped objects and go through the same schema mapping as JSON Lines; string
//! cells that hold a JSON list are parsed (message lists stored as text). Rows have no line and
//! no byte range. The decoder is not ours and may panic on hostile input, so every call into it
//! runs under `catch_unwind` and a panic becomes an "unreadable file" error naming the file.
use super::io::Tap;
use super::schema;
use super::{Collect, Ctx, FileData};
use crate::{Error, Result, Schema};
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::record::Field as PqField;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tunegate_core::lock::Chunk;
use tunegate_core::progress::Progress;

/// Runs `f`, turning a panic inside the Parquet decoder into an error naming the file.
fn guarded<T>(ctx: &Ctx, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown error".to_string());
            Err(Error::unreadable(
                ctx.path,
                format!("the Parquet decoder failed: {msg}"),
            ))
        }
    }
}

fn open<R: ChunkReader + 'static>(ctx: &Ctx, src: R) -> Result<SerializedFileReader<R>> {
    SerializedFileReader::new(src)
        .map_err(|e| Error::unreadable(ctx.path, format!("not a readable Parquet file: {e}")))
}

/// Top-level column names.
fn columns<R: ChunkReader + 'static>(reader: &SerializedFileReader<R>) -> Vec<String> {
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema();
    if !root.is_group() {
        return Vec::new();
    }
    root.get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

fn schema_for(ctx: &Ctx, cols: &[String]) -> Result<Schema> {
    match ctx.opts.schema {
        Some(s) => match schema::missing_columns(s, cols) {
            Some(msg) => Err(Error::unreadable(ctx.path, msg)),
            None => Ok(s),
        },
        None => schema::detect(cols.iter().map(String::as_str))
            .ok_or_else(|| Error::unreadable(ctx.path, schema::no_schema_message("columns", cols))),
    }
}

/// The byte ranges of each row group's column chunks, checked to lie inside a source of
/// `file_len` bytes. The decoder asserts on negative offsets instead of returning an error, so
/// this runs before any row is decoded.
fn row_group_ranges<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    file_len: u64,
    ctx: &Ctx,
) -> Result<Vec<Vec<(u64, u64)>>> {
    let meta = reader.metadata();
    let mut out = Vec::with_capacity(meta.num_row_groups());
    for (g, rg) in meta.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return Err(Error::unreadable(
                ctx.path,
                format!("row group {g} has a negative row count"),
            ));
        }
        let mut ranges = Vec::with_capacity(rg.columns().len());
        for col in rg.columns() {
            let start = col
                .dictionary_page_offset()
                .unwrap_or_else(|| col.data_page_offset());
            let (Ok(start), Ok(len)) = (u64::try_from(start), u64::try_from(col.compressed_size()))
            else {
                return Err(Error::unreadable(
                    ctx.path,
                    format!("row group {g} has a negative column offset or size"),
                ));
            };
            match start.checked_add(len) {
                Some(end) if end <= file_len => ranges.push((start, len)),
                _ => {
                    return Err(Error::unreadable(
                        ctx.path,
                        format!("row group {g} points past the end of the file"),
                    ))
                }
            }
        }
        ranges.sort_unstable();
        out.push(ranges);
    }
    Ok(out)
}

/// Reads rows from a Parquet source whose bytes were already hashed (`sha256`, `size`).
pub(crate) fn read<R: ChunkReader + 'static>(
    src: R,
    ctx: &Ctx,
    sha256: String,
    size: u64,
) -> Result<FileData> {
    guarded(ctx, || {
        let file_len = src.len();
        let reader = open(ctx, src)?;
        let cols = columns(&reader);
        let schema = schema_for(ctx, &cols)?;
        row_group_ranges(&reader, file_len, ctx)?;
        let rows = reader
            .get_row_iter(None)
            .map_err(|e| Error::unreadable(ctx.path, format!("cannot read rows: {e}")))?;
        let mut out = Collect::default();
        for (index, row) in (0u64..).zip(rows) {
            let row = row.map_err(|e| {
                Error::unreadable(ctx.path, format!("cannot decode row {index}: {e}"))
            })?;
            let mut obj = Map::with_capacity(row.len());
            for (name, field) in row.get_column_iter() {
                obj.insert(name.clone(), to_json(field));
            }
            match schema::map(&mut obj, schema, true) {
                Ok(m) => out.record(ctx, index, None, None, m),
                Err(b) => out.bad(ctx, index, None, None, b.reason, b.field),
            };
        }
        Ok(out.finish(
            ctx,
            schema,
            super::io::Tapped {
                sha256,
                size,
                chunks: None,
            },
        ))
    })
}

/// Reads a Parquet file from disk: hashes it in one streaming pass, then decodes its rows.
pub(crate) fn read_file(
    file: std::fs::File,
    ctx: &Ctx,
    progress: &dyn Progress,
) -> Result<FileData> {
    let again = file.try_clone().map_err(|e| Error::io(ctx.path, e))?;
    let (sha256, size) = hash_all(again, ctx, progress)?;
    read(file, ctx, sha256, size)
}

fn hash_all<R: Read>(src: R, ctx: &Ctx, progress: &dyn Progress) -> Result<(String, u64)> {
    let done = Tap::new(src, progress)
        .finish()
        .map_err(|e| Error::io(ctx.path, e))?;
    Ok((done.sha256, done.size))
}

/// Schema, row count and one chunk per row group (the bytes of its column chunks), for the lock.
pub(crate) fn fingerprint(
    file: std::fs::File,
    ctx: &Ctx,
    progress: &dyn Progress,
) -> Result<(Schema, u64, super::io::Tapped)> {
    let again = file.try_clone().map_err(|e| Error::io(ctx.path, e))?;
    let (sha256, size) = hash_all(again, ctx, progress)?;
    let raw = file.try_clone().map_err(|e| Error::io(ctx.path, e))?;
    let (schema, records, chunks) = fingerprint_source(file, raw, ctx)?;
    Ok((
        schema,
        records,
        super::io::Tapped {
            sha256,
            size,
            chunks: Some(chunks),
        },
    ))
}

/// Schema, row count and row-group chunks of any Parquet source; `raw` is a second handle on the
/// same bytes, read for the chunk digests.
pub(crate) fn fingerprint_source<R: ChunkReader + 'static>(
    src: R,
    raw: R,
    ctx: &Ctx,
) -> Result<(Schema, u64, Vec<Chunk>)> {
    guarded(ctx, || {
        let reader = open(ctx, src)?;
        let schema = schema_for(ctx, &columns(&reader))?;
        let meta = reader.metadata();
        let groups = row_group_ranges(&reader, raw.len(), ctx)?;
        let mut first = 0u64;
        let mut chunks = Vec::with_capacity(groups.len());
        for (g, (rg, ranges)) in meta.row_groups().iter().zip(groups).enumerate() {
            let count = u64::try_from(rg.num_rows()).unwrap_or(0);
            let mut h = Sha256::new();
            for (start, len) in ranges {
                let r = raw.get_read(start).map_err(|e| {
                    Error::unreadable(ctx.path, format!("cannot read row group {g}: {e}"))
                })?;
                let mut r = r.take(len);
                std::io::copy(&mut r, &mut HashWriter(&mut h))
                    .map_err(|e| Error::io(ctx.path, e))?;
            }
            chunks.push(Chunk {
                first,
                count,
                sha256: hex::encode(h.finalize()),
                lines: None,
            });
            first = first.saturating_add(count);
        }
        Ok((schema, first, chunks))
    })
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Parquet cell as JSON: scalars as themselves, structs as objects, lists as arrays, maps as
/// objects, dates, times and decimals as text; bytes that are not UTF-8 become null.
fn to_json(f: &PqField) -> Value {
    match f {
        PqField::Null => Value::Null,
        PqField::Bool(b) => Value::Bool(*b),
        PqField::Byte(n) => Value::from(*n),
        PqField::Short(n) => Value::from(*n),
        PqField::Int(n) => Value::from(*n),
        PqField::Long(n) => Value::from(*n),
        PqField::UByte(n) => Value::from(*n),
        PqField::UShort(n) => Value::from(*n),
        PqField::UInt(n) => Value::from(*n),
        PqField::ULong(n) => Value::from(*n),
        PqField::Float(x) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number)
        }
        PqField::Double(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        PqField::Str(s) => Value::String(s.clone()),
        PqField::Bytes(b) => {
            std::str::from_utf8(b.data()).map_or(Value::Null, |s| Value::String(s.to_string()))
        }
        PqField::Group(row) => {
            let mut m = Map::with_capacity(row.len());
            for (k, v) in row.get_column_iter() {
                m.insert(k.clone(), to_json(v));
            }
            Value::Object(m)
        }
        PqField::ListInternal(list) => Value::Array(list.elements().iter().map(to_json).collect()),
        PqField::MapInternal(map) => {
            let mut m = Map::with_capacity(map.entries().len());
            for (k, v) in map.entries() {
                let key = match k {
                    PqField::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        other => Value::String(other.to_string()),
    }
}
