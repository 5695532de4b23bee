//! Readers: JSON Lines, CSV/TSV and Parquet files into typed [`Record`]s.
//!
//! Every reader hashes the file in the same pass that parses it (SHA-256 of the raw bytes, as
//! the lock and report subjects use), keeps memory bounded per record (a JSONL line or CSV row
//! over [`MAX_RECORD_BYTES`] is a finding or an error, never an allocation of its size), and
//! turns a record that does not parse or does not fit its schema into a `D001` finding with
//! file, record index, line and field. Only a file that cannot be read as its format at all is
//! an [`Error`] (exit 2).
//!
//! The schema is detected per file from the field names of the first record (JSONL) or the
//! header/columns (CSV, Parquet), unless forced with [`ReadOptions::schema`].
//!
//! [`fingerprint_file`] is the lock's view of a file: digest, size, record count and per-chunk
//! digests, without decoding every record.
use crate::checks::MALFORMED;
use crate::record::FileInfo;
use crate::{Dataset, Error, Format, Record, Result, Schema};
use rayon::prelude::*;
use std::path::{Component, Path, PathBuf};
use tunegate_core::lock::Chunk;
use tunegate_core::progress::{NoProgress, Progress};
use tunegate_core::{Finding, Location};

mod columnar;
mod delimited;
mod io;
mod jsonl;
mod schema;

/// The most bytes one record (a JSONL line, a CSV row) may take: 64 MiB.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// How to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Force a schema instead of detecting one per file.
    pub schema: Option<Schema>,
    /// Per-record byte limit (see [`MAX_RECORD_BYTES`]).
    pub max_record_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            schema: None,
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }
}

impl ReadOptions {
    /// Default options with `schema` forced (or detected, for `None`).
    pub fn with_schema(schema: Option<Schema>) -> Self {
        ReadOptions {
            schema,
            ..Default::default()
        }
    }
}

/// Everything read from one file.
///
/// Invariant: `ids` is indexed like `records`; `malformed` and `malformed_raw` are in read order
/// (Parquet rows have no raw range, so `malformed_raw` may be shorter than `malformed`).
#[derive(Debug, Clone)]
pub struct FileData {
    /// The file: path, format, schema, digest, size, records seen.
    pub info: FileInfo,
    /// Well-formed records in read order.
    pub records: Vec<Record>,
    /// `D001` findings for malformed records.
    pub malformed: Vec<Finding>,
    /// Raw ranges of malformed records as (file, index, (start, end)).
    pub malformed_raw: Vec<(u32, u64, (u64, u64))>,
    /// The `id` field of each well-formed record, when it has a scalar one.
    pub ids: Vec<Option<String>>,
}

/// The lock's view of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 of the raw bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Format.
    pub format: Format,
    /// Detected or forced schema.
    pub schema: Schema,
    /// Records seen (malformed included; blank JSONL lines excluded).
    pub records: u64,
    /// Chunk digests (see [`tunegate_core::lock`] for what a chunk covers).
    pub chunks: Vec<Chunk>,
}

/// Per-file reading context.
pub(crate) struct Ctx<'a> {
    path: &'a Path,
    name: &'a str,
    file_index: u32,
    opts: &'a ReadOptions,
    format: Format,
    delimiter: u8,
    /// `.json` files: say so when the file is one JSON document rather than JSON Lines.
    json_document_hint: bool,
    /// The file's size when reading a file from disk (sizes the record array).
    file_size: Option<u64>,
}

impl<'a> Ctx<'a> {
    fn new(
        path: &'a Path,
        name: &'a str,
        file_index: u32,
        opts: &'a ReadOptions,
        format: Format,
    ) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        Ctx {
            path,
            name,
            file_index,
            opts,
            format,
            delimiter: delimited::delimiter_for(name),
            json_document_hint: ext == "json",
            file_size: None,
        }
    }
}

/// Where the last pushed record went, so its raw end can be set once known.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Record(usize),
    Malformed(usize),
    Nowhere,
}

/// Collects one file's records and findings.
#[derive(Default)]
pub(crate) struct Collect {
    records: Vec<Record>,
    malformed: Vec<Finding>,
    malformed_raw: Vec<(u32, u64, (u64, u64))>,
    ids: Vec<Option<String>>,
    /// Records seen so far, malformed included.
    seen: u64,
}

/// The most records [`Collect::reserve_for`] reserves room for in advance.
const MAX_RESERVE: usize = 1 << 23;

impl Collect {
    /// Reserves room for the records of a file of `file_size` bytes whose first `seen_bytes`
    /// bytes held `seen_records` records (with a quarter's margin, and at most
    /// [`MAX_RESERVE`]), so that a large file's record array is not grown by doubling: each
    /// doubling copies the array into memory touched for the first time.
    fn reserve_for(&mut self, file_size: u64, seen_bytes: u64, seen_records: usize) {
        if seen_records == 0 || seen_bytes == 0 {
            return;
        }
        let estimate = (file_size as f64 / seen_bytes as f64 * seen_records as f64 * 1.25) as usize;
        let want = estimate.min(MAX_RESERVE).saturating_sub(self.records.len());
        self.records.reserve(want);
        self.ids.reserve(want);
    }

    fn record(
        &mut self,
        ctx: &Ctx,
        index: u64,
        line: Option<u64>,
        raw: Option<(u64, u64)>,
        m: schema::Mapped,
    ) -> Slot {
        self.seen = self.seen.max(index + 1);
        self.records.push(Record {
            file: ctx.file_index,
            index,
            line,
            raw,
            fields: m.fields,
            label: m.label,
        });
        self.ids.push(m.id);
        Slot::Record(self.records.len() - 1)
    }

    fn bad(
        &mut self,
        ctx: &Ctx,
        index: u64,
        line: Option<u64>,
        raw: Option<(u64, u64)>,
        reason: String,
        field: Option<String>,
    ) -> Slot {
        self.seen = self.seen.max(index + 1);
        let message = match line {
            Some(l) => format!("line {l}: {reason}"),
            None => format!("row {index}: {reason}"),
        };
        let mut loc = Location::file(ctx.name).record(index, line);
        if let Some(f) = field {
            loc = loc.field(f);
        }
        self.malformed.push(
            Finding::new(&MALFORMED, message, loc)
                .evidence(serde_json::json!({ "reason": reason })),
        );
        match raw {
            Some(r) => {
                self.malformed_raw.push((ctx.file_index, index, r));
                Slot::Malformed(self.malformed_raw.len() - 1)
            }
            None => Slot::Nowhere,
        }
    }

    fn set_end(&mut self, slot: Slot, end: u64) {
        match slot {
            Slot::Record(i) => {
                if let Some(r) = self.records.get_mut(i).and_then(|r| r.raw.as_mut()) {
                    r.1 = end;
                }
            }
            Slot::Malformed(i) => {
                if let Some(m) = self.malformed_raw.get_mut(i) {
                    m.2 .1 = end;
                }
            }
            Slot::Nowhere => {}
        }
    }

    fn finish(self, ctx: &Ctx, schema: Schema, done: io::Tapped) -> FileData {
        FileData {
            info: FileInfo {
                path: ctx.name.to_string(),
                format: ctx.format,
                schema,
                sha256: done.sha256,
                size: done.size,
                records: self.seen,
            },
            records: self.records,
            malformed: self.malformed,
            malformed_raw: self.malformed_raw,
            ids: self.ids,
        }
    }
}

/// The format of `path` from its extension; an unknown extension is a usage error naming it.
pub fn format_of(path: &Path) -> Result<Format> {
    Format::from_path(path).ok_or_else(|| {
        Error::Usage(format!(
            "{}: unknown dataset format (expected .jsonl, .ndjson, .json, .csv, .tsv, .parquet or .pq)",
            path.display()
        ))
    })
}

/// Expands `paths` into dataset files: a file stays as given (its extension must be known); a
/// directory becomes every file below it with a known extension except `.json` (folder
/// metadata), sorted, skipping hidden files and directories and not following symlinked
/// directories. The same file named twice is kept
/// once. A missing path is an I/O error naming it; a directory with no dataset file is a usage
/// error.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let found = if meta.is_dir() {
            let found = dataset_files_under(p)?;
            if found.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: directory holds no dataset files (.jsonl, .ndjson, .csv, .tsv, .parquet, .pq; name .json files explicitly)",
                    p.display()
                )));
            }
            found
        } else {
            format_of(p)?;
            vec![p.clone()]
        };
        for f in found {
            if seen.insert(absolute(&f)) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Every dataset file below `dir` (as [`expand_paths`] finds them, sorted), possibly none.
pub fn dataset_files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(dir, &mut found)?;
    found.sort();
    Ok(found)
}

/// SHA-256 and size of a file, streamed, reporting bytes to `progress`.
pub fn hash_file(path: &Path, progress: &dyn Progress) -> Result<(String, u64)> {
    let file = open(path)?;
    let done = io::Tap::new(file, progress)
        .finish()
        .map_err(|e| Error::io(path, e))?;
    Ok((done.sha256, done.size))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let is_file = if ft.is_symlink() {
            std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        } else if ft.is_dir() {
            walk(&path, out)?;
            false
        } else {
            ft.is_file()
        };
        // `.json` files found in a folder are metadata far more often than data (Hugging
        // Face's dataset_info.json, state.json); name a `.json` data file explicitly to read it.
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_file && !is_json && Format::from_path(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// `path` made absolute against the current directory and normalised lexically (`.` dropped,
/// `..` applied), without resolving symlinks.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Reads every file of `paths` (see [`expand_paths`]) with `schema` forced or detected.
pub fn read_paths(
    paths: &[PathBuf],
    schema: Option<Schema>,
    progress: &dyn Progress,
) -> Result<Dataset> {
    read_paths_with(paths, &ReadOptions::with_schema(schema), progress)
}

/// [`read_paths`] with options.
pub fn read_paths_with(
    paths: &[PathBuf],
    opts: &ReadOptions,
    progress: &dyn Progress,
) -> Result<Dataset> {
    read_paths_keyed(paths, opts, progress).map(|(ds, _)| ds)
}

/// [`read_paths_with`], also returning each record's `id` field (indexed like the records).
pub fn read_paths_keyed(
    paths: &[PathBuf],
    opts: &ReadOptions,
    progress: &dyn Progress,
) -> Result<(Dataset, Vec<Option<String>>)> {
    let files = expand_paths(paths)?;
    let formats = files
        .iter()
        .map(|p| format_of(p))
        .collect::<Result<Vec<_>>>()?;
    if u32::try_from(files.len()).is_err() {
        return Err(Error::Usage("too many files".into()));
    }
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.start("reading", total);
    let results: Vec<Result<FileData>> = (0..files.len())
        .into_par_iter()
        .map(|i| read_file(&files[i], formats[i], opts, i as u32, progress))
        .collect();
    progress.finish();
    let mut ds = Dataset::default();
    let mut ids = Vec::new();
    for r in results {
        let fd = r?;
        ds.files.push(fd.info);
        // The first file's arrays are moved, not copied into new memory.
        if ds.records.is_empty() {
            ds.records = fd.records;
            ids = fd.ids;
        } else {
            ds.records.extend(fd.records);
            ids.extend(fd.ids);
        }
        ds.malformed.extend(fd.malformed);
        ds.malformed_raw.extend(fd.malformed_raw);
    }
    Ok((ds, ids))
}

/// Reads one file as `format`. Records carry `file_index`. Errors name the path.
pub fn read_file(
    path: &Path,
    format: Format,
    opts: &ReadOptions,
    file_index: u32,
    progress: &dyn Progress,
) -> Result<FileData> {
    let name = path.to_string_lossy();
    let mut ctx = Ctx::new(path, &name, file_index, opts, format);
    let file = open(path)?;
    ctx.file_size = file.metadata().ok().map(|m| m.len());
    match format {
        Format::Jsonl => jsonl::read(file, &ctx, progress),
        Format::Csv => delimited::read(file, &ctx, progress),
        Format::Parquet => columnar::read_file(file, &ctx, progress),
    }
}

fn open(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory"),
        ));
    }
    Ok(file)
}

/// Reads `bytes` as a file called `name` (the name picks the CSV delimiter and appears in
/// findings). For fuzzing and tests; records carry file index 0.
pub fn read_bytes(
    name: &str,
    bytes: &[u8],
    format: Format,
    opts: &ReadOptions,
) -> Result<FileData> {
    let path = Path::new(name);
    let ctx = Ctx::new(path, name, 0, opts, format);
    match format {
        Format::Jsonl => jsonl::read(bytes, &ctx, &NoProgress),
        Format::Csv => delimited::read(bytes, &ctx, &NoProgress),
        Format::Parquet => columnar::read(
            bytes::Bytes::copy_from_slice(bytes),
            &ctx,
            tunegate_core::digest::sha256_hex(bytes),
            bytes.len() as u64,
        ),
    }
}

/// The lock's view of a file: digest, size, schema, record count and chunk digests (one per
/// `chunk_records` records for JSONL and CSV, one per row group for Parquet), without decoding
/// records beyond what schema detection needs.
pub fn fingerprint_file(
    path: &Path,
    format: Format,
    opts: &ReadOptions,
    chunk_records: u64,
    progress: &dyn Progress,
) -> Result<Fingerprint> {
    let name = path.to_string_lossy();
    let ctx = Ctx::new(path, &name, 0, opts, format);
    let file = open(path)?;
    let (schema, records, done) = match format {
        Format::Jsonl => jsonl::fingerprint(file, &ctx, progress, chunk_records)?,
        Format::Csv => delimited::fingerprint(file, &ctx, progress, chunk_records)?,
        Format::Parquet => columnar::fingerprint(file, &ctx, progress)?,
    };
    Ok(Fingerprint {
        sha256: done.sha256,
        size: done.size,
        format,
        schema,
        records,
        chunks: done.chunks.unwrap_or_default(),
    })
}

/// [`fingerprint_file`] over bytes in memory.
pub fn fingerprint_bytes(
    name: &str,
    bytes: &[u8],
    format: Format,
    opts: &ReadOptions,
    chunk_records: u64,
) -> Result<Fingerprint> {
    let path = Path::new(name);
    let ctx = Ctx::new(path, name, 0, opts, format);
    let (schema, records, done) = match format {
        Format::Jsonl => jsonl::fingerprint(bytes, &ctx, &NoProgress, chunk_records)?,
        Format::Csv => delimited::fingerprint(bytes, &ctx, &NoProgress, chunk_records)?,
        Format::Parquet => {
            let b = bytes::Bytes::copy_from_slice(bytes);
            let (schema, records, chunks) = columnar::fingerprint_source(b.clone(), b, &ctx)?;
            (
                schema,
                records,
                io::Tapped {
                    sha256: tunegate_core::digest::sha256_hex(bytes),
                    size: bytes.len() as u64,
                    chunks: Some(chunks),
                },
            )
        }
    };
    Ok(Fingerprint {
        sha256: done.sha256,
        size: done.size,
        format,
        schema,
        records,
        chunks: done.chunks.unwrap_or_default(),
    })
}
