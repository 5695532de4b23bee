//! JSON Lines: streamed line by line in bounded memory.
//!
//! Each non-blank line is one record; its raw range covers the line and its newline so
//! `--write-clean` reproduces it byte for byte. A top-level object with a repeated key is
//! malformed: Python keeps the last value and some other parsers the first, so a record with two
//! `output`s could train on text the scan never saw.
use super::io::{content, Chunker, LineMeta, Lines, Tap, Tapped};
use super::schema;
use super::{Collect, Ctx, FileData};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::io::{BufReader, Read};
use tunegate_core::progress::Progress;

/// Lines parsed together: up to this many bytes...
const BATCH_BYTES: usize = 8 << 20;
/// ...or this many records.
const BATCH_RECORDS: usize = 8192;

/// A batch of record lines: their metadata and their bytes, stored end to end.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    items: Vec<(LineMeta, std::ops::Range<usize>)>,
}

/// What one record line turned out to be.
enum Outcome {
    Record(schema::Mapped),
    Bad(String, Option<String>),
}

/// Reads JSON Lines from `src`.
///
/// Lines are split and hashed in order on the calling thread and parsed in batches on rayon, so
/// memory stays bounded by two batches plus the records kept, and results keep read order.
/// While one batch is parsed, the next is filled: splitting and hashing are sequential, so
/// without the overlap the other threads would wait for them.
pub(crate) fn read<R: Read + Send>(src: R, ctx: &Ctx, progress: &dyn Progress) -> Result<FileData> {
    let tap = Tap::new(src, progress);
    let mut lines = Lines::new(
        BufReader::with_capacity(256 * 1024, tap),
        ctx.opts.max_record_bytes,
        None,
    );
    let mut schema = ctx.opts.schema;
    let mut out = Collect::default();
    let mut scratch = Vec::new();
    let mut batch = Batch::default();
    let mut next = Batch::default();
    let mut more = fill(&mut lines, &mut scratch, &mut batch, ctx)?;
    if let (true, Some(size)) = (more, ctx.file_size) {
        let seen = batch.items.last().map_or(0, |(m, _)| m.end);
        out.reserve_for(size, seen, batch.items.len());
    }
    loop {
        let mut items = batch.items.iter();
        // Until the schema is known, one record at a time: the first object decides it.
        while schema.is_none() {
            let Some((meta, range)) = items.next() else {
                break;
            };
            let text = &batch.bytes[range.clone()];
            match parse(meta, text, ctx) {
                Err(reason) => push(&mut out, ctx, meta, Outcome::Bad(reason, None)),
                Ok(obj) => {
                    let s = detect(ctx, &obj, meta.line)?;
                    schema = Some(s);
                    push(&mut out, ctx, meta, outcome(Ok(obj), s));
                }
            }
        }
        let rest: Vec<_> = items.collect();
        let parse_rest = || -> Vec<Outcome> {
            match schema {
                Some(s) => rest
                    .par_iter()
                    .map(|(meta, range)| outcome(parse(meta, &batch.bytes[range.clone()], ctx), s))
                    .collect(),
                None => Vec::new(),
            }
        };
        next.bytes.clear();
        next.items.clear();
        let (outcomes, filled) = if more {
            rayon::join(parse_rest, || {
                fill(&mut lines, &mut scratch, &mut next, ctx)
            })
        } else {
            (parse_rest(), Ok(false))
        };
        for ((meta, _), o) in rest.iter().zip(outcomes) {
            push(&mut out, ctx, meta, o);
        }
        if !more {
            break;
        }
        more = filled?;
        std::mem::swap(&mut batch, &mut next);
    }
    let records = out.seen;
    let done = lines
        .into_inner()
        .into_inner()
        .finish()
        .map_err(|e| Error::io(ctx.path, e))?;
    let schema = no_schema(ctx, schema, records)?;
    Ok(out.finish(ctx, schema, done))
}

/// Reads record lines into `batch` until it is full; false at end of input. Checks, on the
/// first record of a `.json` file, that the file is not one JSON document.
fn fill<R: std::io::BufRead>(
    lines: &mut Lines<R>,
    scratch: &mut Vec<u8>,
    batch: &mut Batch,
    ctx: &Ctx,
) -> Result<bool> {
    while batch.bytes.len() < BATCH_BYTES && batch.items.len() < BATCH_RECORDS {
        let Some(meta) = lines
            .next_line(scratch)
            .map_err(|e| Error::io(ctx.path, e))?
        else {
            return Ok(false);
        };
        let Some(index) = meta.record else { continue };
        let text = content(scratch, meta.line);
        if index == 0 && ctx.json_document_hint && !meta.too_long {
            if let Some(msg) = json_document(text) {
                return Err(Error::unreadable(ctx.path, msg));
            }
        }
        let start = batch.bytes.len();
        batch.bytes.extend_from_slice(text);
        batch.items.push((meta, start..batch.bytes.len()));
    }
    Ok(true)
}

/// Parses a record line (a too-long line is malformed without parsing).
fn parse(
    meta: &LineMeta,
    text: &[u8],
    ctx: &Ctx,
) -> std::result::Result<Map<String, Value>, String> {
    if meta.too_long {
        return Err(format!(
            "line is {} bytes, over the {} byte limit for one record",
            meta.end - meta.start,
            ctx.opts.max_record_bytes
        ));
    }
    parse_object(text)
}

fn outcome(parsed: std::result::Result<Map<String, Value>, String>, s: crate::Schema) -> Outcome {
    match parsed {
        Err(reason) => Outcome::Bad(reason, None),
        Ok(mut obj) => match schema::map(&mut obj, s, false) {
            Ok(m) => Outcome::Record(m),
            Err(b) => Outcome::Bad(b.reason, b.field),
        },
    }
}

fn push(out: &mut Collect, ctx: &Ctx, meta: &LineMeta, o: Outcome) {
    let index = meta.record.unwrap_or_default();
    let raw = Some((meta.start, meta.end));
    let line = Some(meta.line);
    match o {
        Outcome::Record(m) => out.record(ctx, index, line, raw, m),
        Outcome::Bad(reason, field) => out.bad(ctx, index, line, raw, reason, field),
    };
}

/// The schema of the first object, or the error naming its fields.
fn detect(ctx: &Ctx, obj: &Map<String, Value>, line: u64) -> Result<crate::Schema> {
    schema::detect(obj.keys().map(String::as_str)).ok_or_else(|| {
        let keys: Vec<String> = obj.keys().cloned().collect();
        Error::unreadable(
            ctx.path,
            schema::no_schema_message(&format!("fields of the first record (line {line})"), &keys),
        )
    })
}

/// Counts records and digests chunks of `chunk_records` records; parses lines only until the
/// schema is known (for the lock).
pub(crate) fn fingerprint<R: Read>(
    src: R,
    ctx: &Ctx,
    progress: &dyn Progress,
    chunk_records: u64,
) -> Result<(crate::Schema, u64, Tapped)> {
    let tap = Tap::new(src, progress);
    let mut lines = Lines::new(
        BufReader::with_capacity(256 * 1024, tap),
        ctx.opts.max_record_bytes,
        Some(Chunker::new(chunk_records)),
    );
    let mut schema = ctx.opts.schema;
    let mut buf = Vec::new();
    let mut records = 0u64;
    while let Some(meta) = lines
        .next_line(&mut buf)
        .map_err(|e| Error::io(ctx.path, e))?
    {
        let Some(index) = meta.record else { continue };
        records = index + 1;
        if meta.too_long {
            continue;
        }
        let text = content(&buf, meta.line);
        if index == 0 && ctx.json_document_hint {
            if let Some(msg) = json_document(text) {
                return Err(Error::unreadable(ctx.path, msg));
            }
        }
        if schema.is_some() {
            continue;
        }
        if let Ok(obj) = parse_object(text) {
            schema = Some(detect(ctx, &obj, meta.line)?);
        }
    }
    let chunks = lines.take_chunks();
    let mut done = lines
        .into_inner()
        .into_inner()
        .finish()
        .map_err(|e| Error::io(ctx.path, e))?;
    done.chunks = chunks;
    let schema = no_schema(ctx, schema, records)?;
    Ok((schema, records, done))
}

/// The schema, or the error for a file with no JSON object to detect one from.
fn no_schema(ctx: &Ctx, schema: Option<crate::Schema>, records: u64) -> Result<crate::Schema> {
    match schema {
        Some(s) => Ok(s),
        None if records == 0 => Err(Error::unreadable(
            ctx.path,
            "no records, so no schema to detect (pass --schema to accept an empty file)",
        )),
        None => Err(Error::unreadable(
            ctx.path,
            format!(
                "none of its {records} lines is a JSON object: not JSON Lines (pass --schema to report each line instead)"
            ),
        )),
    }
}

/// Parses one line as a JSON object, or says why it is not one.
pub(crate) fn parse_object(text: &[u8]) -> std::result::Result<Map<String, Value>, String> {
    if let Err(e) = std::str::from_utf8(text) {
        return Err(format!(
            "invalid UTF-8 at byte {} of the line",
            e.valid_up_to()
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let v = <Strict as de::Deserialize>::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| format!("not valid JSON: {}", without_position(&e)))?;
    match v.0 {
        Value::Object(o) => Ok(o),
        other => Err(format!("not a JSON object (found {})", kind(&other))),
    }
}

/// For `.json` files: the message when the first record shows the file is one JSON document
/// (an array, or pretty-printed) rather than JSON Lines.
fn json_document(text: &[u8]) -> Option<String> {
    let t = text.trim_ascii_start();
    let starts = t.first().is_some_and(|b| *b == b'[' || *b == b'{');
    if !starts {
        return None;
    }
    let whole = serde_json::from_slice::<Value>(text);
    let document = match &whole {
        Ok(Value::Array(_)) => true,
        Ok(_) => false,
        Err(e) => e.classify() == serde_json::error::Category::Eof,
    };
    document.then(|| {
        "this is one JSON document (an array or a pretty-printed value), not JSON Lines with one \
         object per line; convert it with `jq -c '.[]' FILE > FILE.jsonl`"
            .to_string()
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message with " at line 1 column N" turned into "at column N" (the line is
/// already in the finding).
fn without_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => format!("{} at column {}", &s[..i], e.column()),
        None => s,
    }
}

/// A JSON value that rejects objects with a repeated key, at any depth.
struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key '{k}' (parsers disagree on which value wins)"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reasons() {
        assert!(parse_object(br#"{"a": 1}"#).is_ok());
        let e = parse_object(br#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(e.contains("duplicate key 'a'"), "{e}");
        let e = parse_object(br#"{"a": {"b": 1, "b": 1}}"#).unwrap_err();
        assert!(e.contains("duplicate key 'b'"), "{e}");
        let e = parse_object(b"[1]").unwrap_err();
        assert_eq!(e, "not a JSON object (found an array)");
        let e = parse_object(b"{\"a\": \"\xff\"}").unwrap_err();
        assert_eq!(e, "invalid UTF-8 at byte 7 of the line");
        let e = parse_object(b"{\"a\": }").unwrap_err();
        assert!(
            e.starts_with("not valid JSON: expected value at column"),
            "{e}"
        );
        let e = parse_object(b"{} {}").unwrap_err();
        assert!(e.contains("trailing characters"), "{e}");
        let deep = "[".repeat(10_000);
        assert!(parse_object(deep.as_bytes())
            .unwrap_err()
            .contains("recursion"));
    }

    #[test]
    fn json_documents_are_recognised() {
        assert!(json_document(b"[").is_some());
        assert!(json_document(b"{").is_some());
        assert!(json_document(br#"[{"a": 1}]"#).is_some());
        assert!(json_document(br#"{"a": 1}"#).is_none());
        assert!(json_document(b"garbage").is_none());
    }
}
