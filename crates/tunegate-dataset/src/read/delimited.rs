//! CSV and TSV with a header row.
//!
//! The `csv` crate reports where it *started* reading a record, which may be a blank line or the
//! `\n` of the previous CRLF, and its line numbers miss skipped blank lines. So the reader keeps
//! the bytes it has not yet attributed ([`Tap`] with a buffer) and finds each record's true first
//! byte and line itself. A record's raw range runs from its first byte to the next record's first
//! byte (the last to end of file), so its terminator is always included.
use super::io::{RecordTooLong, Tap, BOM};
use super::schema;
use super::{Collect, Ctx, FileData, Slot};
use crate::{Error, Result, Schema};
use serde_json::{Map, Value};
use std::io::Read;
use tunegate_core::progress::Progress;

const BUFFER: usize = 256 * 1024;

/// The delimiter for a path or name: tab for `.tsv`, comma otherwise.
pub(crate) fn delimiter_for(name: &str) -> u8 {
    if name.to_ascii_lowercase().ends_with(".tsv") {
        b'\t'
    } else {
        b','
    }
}

/// One pass over a delimited file: the `csv` reader over a [`Tap`], the header, the row count.
pub(crate) struct Pass<'p, R> {
    rdr: csv::Reader<Tap<'p, R>>,
    header: Vec<String>,
    rec: csv::ByteRecord,
    index: u64,
}

impl<'p, R: Read> Pass<'p, R> {
    /// Opens the reader and reads the header row.
    pub(crate) fn open(
        src: R,
        ctx: &Ctx,
        progress: &'p dyn Progress,
        chunk_records: Option<u64>,
    ) -> Result<Self> {
        let limit = ctx.opts.max_record_bytes as u64 + 2 * BUFFER as u64;
        let tap = Tap::new(src, progress)
            .buffered(limit)
            .chunked(chunk_records);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(ctx.delimiter)
            .buffer_capacity(BUFFER)
            .from_reader(tap);
        let mut rec = csv::ByteRecord::new();
        if !rdr
            .read_byte_record(&mut rec)
            .map_err(|e| csv_error(ctx, e, 1))?
        {
            return Err(Error::unreadable(
                ctx.path,
                "empty file: a CSV header row is required",
            ));
        }
        let mut header = Vec::with_capacity(rec.len());
        for (i, raw) in rec.iter().enumerate() {
            let raw = if i == 0 {
                raw.strip_prefix(BOM).unwrap_or(raw)
            } else {
                raw
            };
            let name = std::str::from_utf8(raw).map_err(|_| {
                Error::unreadable(
                    ctx.path,
                    format!("header column {} is not valid UTF-8", i + 1),
                )
            })?;
            header.push(name.trim().to_string());
        }
        Ok(Pass {
            rdr,
            header,
            rec,
            index: 0,
        })
    }

    /// Reads the next row: its index, first byte and line, or `None` at end of input.
    fn next_row(&mut self, ctx: &Ctx) -> Result<Option<(u64, u64, u64)>> {
        let line_hint = self.rdr.position().line();
        if !self
            .rdr
            .read_byte_record(&mut self.rec)
            .map_err(|e| csv_error(ctx, e, line_hint))?
        {
            return Ok(None);
        }
        let reported = self.rec.position().map_or(0, |p| p.byte());
        let tap = self.rdr.get_mut();
        // Skip the blank lines and the stray `\n` of a CRLF that csv counts into the record.
        let skip = tap
            .pending_from(reported)
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count() as u64;
        let start = reported + skip;
        let index = self.index;
        self.index += 1;
        let line = tap.record(index, start);
        Ok(Some((index, start, line)))
    }

    /// Reads the rest of the input; returns the digest, size and chunks.
    fn finish(self, ctx: &Ctx) -> Result<super::io::Tapped> {
        self.rdr
            .into_inner()
            .finish()
            .map_err(|e| Error::io(ctx.path, e))
    }
}

fn csv_error(ctx: &Ctx, e: csv::Error, line: u64) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => {
            if let Some(RecordTooLong(at)) =
                io.get_ref().and_then(|r| r.downcast_ref::<RecordTooLong>())
            {
                Error::unreadable(
                    ctx.path,
                    format!(
                        "the record starting at byte {at} (near line {line}) is longer than {} bytes; \
                         an unclosed quote makes the rest of the file one field",
                        ctx.opts.max_record_bytes
                    ),
                )
            } else {
                Error::io(ctx.path, io)
            }
        }
        other => Error::unreadable(ctx.path, format!("CSV error near line {line}: {other:?}")),
    }
}

/// Picks the schema for a header: forced (checked against the columns) or detected.
fn schema_for(ctx: &Ctx, header: &[String]) -> Result<Schema> {
    match ctx.opts.schema {
        Some(s) => match schema::missing_columns(s, header) {
            Some(msg) => Err(Error::unreadable(ctx.path, msg)),
            None => Ok(s),
        },
        None => schema::detect(header.iter().map(String::as_str)).ok_or_else(|| {
            Error::unreadable(
                ctx.path,
                schema::no_schema_message("header columns", header),
            )
        }),
    }
}

/// Reads CSV (or TSV) from `src`.
pub(crate) fn read<R: Read>(src: R, ctx: &Ctx, progress: &dyn Progress) -> Result<FileData> {
    let mut pass = Pass::open(src, ctx, progress, None)?;
    let schema = schema_for(ctx, &pass.header)?;
    let mut out = Collect::default();
    let mut last: Option<Slot> = None;
    while let Some((index, start, line)) = pass.next_row(ctx)? {
        if let Some(slot) = last.take() {
            out.set_end(slot, start);
        }
        let line = Some(line);
        let raw = Some((start, start));
        let header = &pass.header;
        let rec = &pass.rec;
        if rec.len() != header.len() {
            let reason = format!(
                "row has {} fields, the header has {}",
                rec.len(),
                header.len()
            );
            last = Some(out.bad(ctx, index, line, raw, reason, None));
            continue;
        }
        let mut obj = Map::with_capacity(header.len());
        let mut bad_utf8 = None;
        for (name, cell) in header.iter().zip(rec.iter()) {
            match std::str::from_utf8(cell) {
                Ok(s) => {
                    // The first of two same-named columns wins, as in pandas.
                    if !obj.contains_key(name) {
                        obj.insert(name.clone(), Value::String(s.to_string()));
                    }
                }
                Err(e) => {
                    bad_utf8 = Some((name.clone(), e.valid_up_to()));
                    break;
                }
            }
        }
        if let Some((name, at)) = bad_utf8 {
            let reason = format!("column '{name}' is not valid UTF-8 (at byte {at} of the cell)");
            last = Some(out.bad(ctx, index, line, raw, reason, Some(name)));
            continue;
        }
        last = Some(match schema::map(&mut obj, schema, true) {
            Ok(m) => out.record(ctx, index, line, raw, m),
            Err(b) => out.bad(ctx, index, line, raw, b.reason, b.field),
        });
    }
    let done = pass.finish(ctx)?;
    if let Some(slot) = last {
        out.set_end(slot, done.size);
    }
    Ok(out.finish(ctx, schema, done))
}

/// Counts records and digests chunks without decoding cells (for the lock).
pub(crate) fn fingerprint<R: Read>(
    src: R,
    ctx: &Ctx,
    progress: &dyn Progress,
    chunk_records: u64,
) -> Result<(Schema, u64, super::io::Tapped)> {
    let mut pass = Pass::open(src, ctx, progress, Some(chunk_records))?;
    let schema = schema_for(ctx, &pass.header)?;
    let mut records = 0;
    while pass.next_row(ctx)?.is_some() {
        records += 1;
    }
    let done = pass.finish(ctx)?;
    Ok((schema, records, done))
}
