//! Lock and verify: `tunegate dataset lock` records every dataset file's digest, record count
//! and per-chunk digests in `tunegate.lock`; `verify` re-hashes and names what drifted.
//!
//! - `D020` a locked file changed: the message names the changed record ranges ("records
//!   1000–1999 (lines 1001–2000) changed"), found by re-chunking the new file and comparing
//!   chunk digests.
//! - `D021` a locked file is missing.
//! - `D022` a dataset file sits in a locked directory but is not in the lock (an added file is
//!   how poison slips into a glob like `data/*.jsonl`).
//!
//! Lock also records the trigger candidates (`D004`) the dataset scan finds in the locked files
//! as `[[triggers]]` (see [`tunegate_core::lock`]), so the production monitor can watch prompts
//! for them with no separate report; [`LockOptions::triggers`] turns that scan off.
//!
//! Verify only reads. Lock keeps lineage: re-locking over an existing lock appends the previous
//! version to `[[lineage.history]]` and lists the files added, removed and changed since.
use crate::checks::{LOCK_ADDED, LOCK_CHANGED, LOCK_MISSING};
use crate::read::{self, absolute, ReadOptions, MAX_RECORD_BYTES};
use crate::scan::ScanOptions;
use crate::{Error, Format, Result, Schema};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use tunegate_core::lock::{
    self as core_lock, Chunk, LockedFile, LockedTrigger, Lockfile, DEFAULT_CHUNK_RECORDS,
};
use tunegate_core::progress::{NoProgress, Progress};
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// Lineage facts the user supplies when locking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineageInput {
    /// Where the data came from. When absent, the previous lock's source is kept.
    pub source: Option<String>,
    /// Who approved this version (never carried over from a previous lock).
    pub approved_by: Option<String>,
    /// Free text.
    pub note: Option<String>,
}

/// How to lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Force a schema instead of detecting one per file.
    pub schema: Option<Schema>,
    /// Records per chunk digest (JSONL, CSV).
    pub chunk_records: u64,
    /// Per-record byte limit.
    pub max_record_bytes: usize,
    /// Run the trigger detector over the locked files and record its flagged candidates
    /// (`[[triggers]]`). This reads every record into memory, as a scan does.
    pub triggers: bool,
    /// Minimum records holding a token before it can be a trigger candidate.
    pub trigger_min_count: usize,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            schema: None,
            chunk_records: DEFAULT_CHUNK_RECORDS,
            max_record_bytes: MAX_RECORD_BYTES,
            triggers: true,
            trigger_min_count: ScanOptions::default().trigger_min_count,
        }
    }
}

/// Locks `paths` (files or directories) into `lock_path` and returns the lock written.
pub fn lock(
    paths: &[PathBuf],
    schema: Option<Schema>,
    lineage: LineageInput,
    lock_path: &Path,
    progress: &dyn Progress,
) -> Result<Lockfile> {
    let opts = LockOptions {
        schema,
        ..Default::default()
    };
    lock_with(paths, &opts, lineage, lock_path, progress)
}

/// [`lock`] with options.
pub fn lock_with(
    paths: &[PathBuf],
    opts: &LockOptions,
    lineage: LineageInput,
    lock_path: &Path,
    progress: &dyn Progress,
) -> Result<Lockfile> {
    let l = build_lock(paths, opts, lineage, lock_path, progress)?;
    l.save(lock_path)?;
    Ok(l)
}

/// The lock [`lock_with`] would write to `lock_path`, without writing it. An existing lock at
/// `lock_path` is read for lineage history; one that cannot be read is an error (fail closed:
/// history is never dropped silently).
pub fn build_lock(
    paths: &[PathBuf],
    opts: &LockOptions,
    lineage: LineageInput,
    lock_path: &Path,
    progress: &dyn Progress,
) -> Result<Lockfile> {
    if paths.is_empty() {
        return Err(Error::Usage(
            "nothing to lock: give dataset files or directories".into(),
        ));
    }
    let base = absolute(&lock_dir(lock_path));
    let mut roots = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            roots.push(relative(&base, &absolute(p)));
        }
    }
    roots.sort();
    roots.dedup();
    let files = read::expand_paths(paths)?;
    let formats = files
        .iter()
        .map(|p| read::format_of(p))
        .collect::<Result<Vec<_>>>()?;
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let ropts = ReadOptions {
        schema: opts.schema,
        max_record_bytes: opts.max_record_bytes,
    };
    progress.start("locking", total);
    let locked: Vec<Result<LockedFile>> = (0..files.len())
        .into_par_iter()
        .map(|i| {
            let fp = read::fingerprint_file(
                &files[i],
                formats[i],
                &ropts,
                opts.chunk_records,
                progress,
            )?;
            Ok(LockedFile {
                path: relative(&base, &absolute(&files[i])),
                sha256: fp.sha256,
                size: fp.size,
                format: fp.format.as_str().to_string(),
                records: Some(fp.records),
                schema: Some(fp.schema.as_str().to_string()),
                chunk_records: (fp.format != Format::Parquet).then_some(opts.chunk_records),
                chunks: fp.chunks,
            })
        })
        .collect();
    progress.finish();
    let mut locked = locked.into_iter().collect::<Result<Vec<_>>>()?;
    locked.sort_by(|a, b| a.path.cmp(&b.path));

    let previous = match lock_path.try_exists() {
        Ok(true) => Some(Lockfile::load(lock_path)?),
        Ok(false) => None,
        Err(e) => return Err(Error::io(lock_path, e)),
    };
    let triggers = if opts.triggers {
        Some(scan_triggers(
            &files, &ropts, opts, &base, &locked, progress,
        )?)
    } else {
        None
    };
    let mut l = Lockfile {
        version: core_lock::VERSION,
        roots,
        triggers_version: triggers.is_some().then_some(core_lock::TRIGGERS_VERSION),
        triggers: triggers.unwrap_or_default(),
        files: locked,
        lineage: core_lock::Lineage {
            source: lineage.source,
            approved_by: lineage.approved_by,
            note: lineage.note,
            created: core_lock::now_rfc3339(),
            tool: format!("tunegate {}", tunegate_core::VERSION),
            ..Default::default()
        },
    };
    l.lineage.digest = l.content_digest();
    if let Some(prev) = previous {
        if l.lineage.source.is_none() {
            l.lineage.source = prev.lineage.source.clone();
        }
        l.lineage.changes = Some(l.changes_since(&prev));
        l.lineage.history = prev.lineage.history.clone();
        l.lineage.history.push(prev.as_history_entry());
    }
    Ok(l)
}

/// Reads the locked files as the scan does and records the trigger detector's flagged
/// candidates, one entry per candidate and file. A file whose digest differs from the one just
/// locked changed while locking: an error, so recorded triggers always describe locked bytes.
fn scan_triggers(
    files: &[PathBuf],
    ropts: &ReadOptions,
    opts: &LockOptions,
    base: &Path,
    locked: &[LockedFile],
    progress: &dyn Progress,
) -> Result<Vec<LockedTrigger>> {
    let ds = read::read_paths_with(files, ropts, progress)?;
    let rel: Vec<String> = ds
        .files
        .iter()
        .map(|f| relative(base, &absolute(Path::new(&f.path))))
        .collect();
    for (f, r) in ds.files.iter().zip(&rel) {
        if locked.iter().any(|l| &l.path == r && l.sha256 != f.sha256) {
            return Err(Error::Usage(format!(
                "{} changed while it was being locked; lock again",
                f.path
            )));
        }
    }
    let scan = ScanOptions {
        trigger_min_count: opts.trigger_min_count,
        ..Default::default()
    };
    progress.start("trigger scan", 0);
    let corpus = crate::corpus::Corpus::build(&ds);
    let ctx = crate::detect::Ctx::new(&ds, &corpus, &scan);
    let candidates = crate::detect::triggers::candidates(&ctx);
    progress.finish();
    // (token, source) -> (records, target); BTreeMap keeps the lock's order stable.
    let mut out: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
    for c in candidates.iter().filter(|c| c.flagged) {
        for &r in &c.records {
            let e = out
                .entry((c.text.clone(), rel[ds.records[r].file as usize].clone()))
                .or_insert_with(|| (0, c.target_text()));
            e.0 += 1;
        }
    }
    Ok(out
        .into_iter()
        .map(|((token, source), (records, target))| LockedTrigger {
            token,
            check: crate::checks::TRIGGER.id.to_string(),
            records,
            source,
            target: Some(target),
        })
        .collect())
}

/// The directory lock paths are relative to.
fn lock_dir(lock_path: &Path) -> PathBuf {
    match lock_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `target` relative to `base` (both absolute and normalised), with forward slashes.
fn relative(base: &Path, target: &Path) -> String {
    let b: Vec<Component> = base.components().collect();
    let t: Vec<Component> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), b.len() - common).collect();
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// `rel` (forward slashes) under the lock's directory, as a path to open and to show.
fn resolve(base: &Path, rel: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    for part in rel.split('/') {
        if part != "." {
            p.push(part);
        }
    }
    p
}

/// Verifies the lock at `lock_path` against the files on disk. Returns `D020`/`D021`/`D022`
/// findings, sorted by file; an empty list means nothing drifted. Reads only.
pub fn verify(lock_path: &Path, progress: &dyn Progress) -> Result<Vec<Finding>> {
    let lock = Lockfile::load(lock_path)?;
    let base = match lock_path.parent() {
        Some(p) => p.to_path_buf(),
        None => PathBuf::new(),
    };
    verify_lock(&lock, &base, progress)
}

/// [`verify`] as a report for the `dataset` gate: subjects are the locked files with their
/// locked digests.
pub fn verify_report(
    lock_path: &Path,
    fail_on: Severity,
    progress: &dyn Progress,
) -> Result<Report> {
    let lock = Lockfile::load(lock_path)?;
    let base = lock_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let findings = verify_lock(&lock, &base, progress)?;
    let mut report = Report::new("dataset", fail_on);
    for f in &lock.files {
        report.subjects.push(Subject::sha256(
            resolve(&base, &f.path).to_string_lossy(),
            &f.sha256,
        ));
    }
    report.summary.records = Some(lock.total_records());
    report.findings = findings;
    report.finish();
    Ok(report)
}

/// Verifies `lock` with relative paths resolved against `base` (the lock's directory; empty
/// for the current directory).
pub fn verify_lock(lock: &Lockfile, base: &Path, progress: &dyn Progress) -> Result<Vec<Finding>> {
    let total: u64 = lock.files.iter().map(|f| f.size).sum();
    progress.start("verifying", total);
    let per_file: Vec<Result<Option<Finding>>> = lock
        .files
        .par_iter()
        .map(|lf| verify_file(lf, base, progress))
        .collect();
    progress.finish();
    let mut findings = Vec::new();
    for r in per_file {
        if let Some(f) = r? {
            findings.push(f);
        }
    }
    let locked: HashSet<&str> = lock.files.iter().map(|f| &*f.path).collect();
    for root in &lock.roots {
        let dir = resolve(base, root);
        if !dir.is_dir() {
            continue; // its files are reported missing one by one
        }
        for file in read::dataset_files_under(&dir)? {
            let Ok(below) = file.strip_prefix(&dir) else {
                continue;
            };
            let below: Vec<String> = below
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let rel = if root == "." {
                below.join("/")
            } else {
                format!("{root}/{}", below.join("/"))
            };
            if locked.contains(rel.as_str()) {
                continue;
            }
            let (sha256, size) = read::hash_file(&file, &NoProgress)?;
            let shown = file.to_string_lossy().into_owned();
            findings.push(
                Finding::new(
                    &LOCK_ADDED,
                    format!("{shown} is in locked directory '{root}' but not recorded in the lock"),
                    Location::file(shown),
                )
                .evidence(json!({ "root": root, "sha256": sha256, "size": size })),
            );
        }
    }
    findings.sort_by(|a, b| (&a.location.file, &a.id).cmp(&(&b.location.file, &b.id)));
    Ok(findings)
}

fn verify_file(lf: &LockedFile, base: &Path, progress: &dyn Progress) -> Result<Option<Finding>> {
    let path = resolve(base, &lf.path);
    let shown = path.to_string_lossy().into_owned();
    let missing = |why: &str| {
        Finding::new(
            &LOCK_MISSING,
            format!("{shown} is recorded in the lock but {why}"),
            Location::file(shown.clone()),
        )
        .evidence(json!({ "sha256": lf.sha256, "size": lf.size, "records": lf.records }))
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(missing("is missing")))
        }
        Err(e) => return Err(Error::io(&path, e)),
        Ok(m) if !m.is_file() => return Ok(Some(missing("is no longer a regular file"))),
        Ok(_) => {}
    }
    let (sha256, size) = read::hash_file(&path, progress)?;
    if sha256 == lf.sha256 && size == lf.size {
        return Ok(None);
    }
    Ok(Some(changed(lf, &path, &shown, sha256, size)))
}

/// The `D020` finding for a locked file whose digest no longer matches.
fn changed(lf: &LockedFile, path: &Path, shown: &str, sha256: String, size: u64) -> Finding {
    let mut evidence = json!({
        "old_sha256": lf.sha256,
        "new_sha256": sha256,
        "old_size": lf.size,
        "new_size": size,
        "old_records": lf.records,
    });
    let format = match lf.format.as_str() {
        "jsonl" => Some(Format::Jsonl),
        "csv" => Some(Format::Csv),
        "parquet" => Some(Format::Parquet),
        _ => None,
    };
    let schema = lf.schema.as_deref().and_then(|s| s.parse::<Schema>().ok());
    let head = format!("{shown} changed since it was locked");
    let Some(format) = format else {
        return Finding::new(
            &LOCK_CHANGED,
            format!("{head} (sha256 {sha256})"),
            Location::file(shown),
        )
        .evidence(evidence);
    };
    let opts = ReadOptions {
        schema,
        ..Default::default()
    };
    let n = lf.chunk_records.unwrap_or(DEFAULT_CHUNK_RECORDS);
    let fp = match read::fingerprint_file(path, format, &opts, n, &NoProgress) {
        Ok(fp) => fp,
        Err(e) => {
            let msg = format!("{head} and no longer reads as {}: {e}", format.as_str());
            return Finding::new(&LOCK_CHANGED, msg, Location::file(shown)).evidence(evidence);
        }
    };
    let (one, many) = if format == Format::Parquet {
        ("row", "rows")
    } else {
        ("record", "records")
    };
    let unit = |single: bool| if single { one } else { many };
    let diff = compare_chunks(&lf.chunks, &fp.chunks);
    let mut parts = Vec::new();
    if !diff.ranges.is_empty() {
        let single = diff.ranges.len() == 1 && diff.ranges[0].first == diff.ranges[0].last;
        let ranges: Vec<String> = diff.ranges.iter().map(Range::describe).collect();
        parts.push(format!("{} {} changed", unit(single), ranges.join(", ")));
    }
    if diff.header_changed {
        parts.push(if format == Format::Parquet {
            "the file's metadata changed".to_string()
        } else {
            "the bytes before the first record (header) changed".to_string()
        });
    }
    if let Some((a, b)) = diff.added {
        let r = Range {
            first: a,
            last: b,
            lines: None,
        };
        parts.push(format!("{} {} added", unit(a == b), r.describe()));
    }
    if let Some(old) = lf.records {
        if old != fp.records {
            parts.push(format!("{} {many} now, {old} locked", fp.records));
        }
    }
    if parts.is_empty() {
        parts.push(
            "its bytes changed outside the record chunks (file metadata or footer)".to_string(),
        );
    }
    if let Some(obj) = evidence.as_object_mut() {
        obj.insert("new_records".into(), json!(fp.records));
        obj.insert(
            "ranges".into(),
            json!(diff
                .ranges
                .iter()
                .map(|r| json!({"first": r.first, "last": r.last, "lines": r.lines}))
                .collect::<Vec<_>>()),
        );
        obj.insert("changed_chunks".into(), json!(diff.chunks));
    }
    Finding::new(
        &LOCK_CHANGED,
        format!("{head}: {}", parts.join("; ")),
        Location::file(shown),
    )
    .evidence(evidence)
}

/// A run of changed records, by locked record index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    first: u64,
    last: u64,
    lines: Option<[u64; 2]>,
}

impl Range {
    fn describe(&self) -> String {
        let span = |a: u64, b: u64| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        };
        match self.lines {
            Some([a, b]) if a == b => format!("{} (line {a})", span(self.first, self.last)),
            Some([a, b]) => format!("{} (lines {a}–{b})", span(self.first, self.last)),
            None => span(self.first, self.last),
        }
    }
}

#[derive(Debug, Default)]
struct ChunkDiff {
    ranges: Vec<Range>,
    /// A chunk with no records changed (the header of a CSV file with no rows, say).
    header_changed: bool,
    /// Records present now beyond the last locked chunk.
    added: Option<(u64, u64)>,
    chunks: Vec<serde_json::Value>,
}

fn compare_chunks(old: &[Chunk], new: &[Chunk]) -> ChunkDiff {
    let mut d = ChunkDiff::default();
    let mut open: Option<Range> = None;
    for (i, o) in old.iter().enumerate() {
        let n = new.get(i);
        let same =
            n.is_some_and(|n| n.sha256 == o.sha256 && n.first == o.first && n.count == o.count);
        if same {
            if let Some(r) = open.take() {
                d.ranges.push(r);
            }
            continue;
        }
        d.chunks.push(json!({
            "first": o.first,
            "count": o.count,
            "old_sha256": o.sha256,
            "new_sha256": n.map(|n| n.sha256.clone()),
        }));
        if o.count == 0 {
            d.header_changed = true;
            continue;
        }
        let last = o.first.saturating_add(o.count - 1);
        open = Some(match open.take() {
            Some(mut r) => {
                r.last = last;
                r.lines = match (r.lines, o.lines) {
                    (Some([a, _]), Some([_, b])) => Some([a, b]),
                    _ => None,
                };
                r
            }
            None => Range {
                first: o.first,
                last,
                lines: o.lines,
            },
        });
    }
    if let Some(r) = open.take() {
        d.ranges.push(r);
    }
    let extra: Vec<&Chunk> = new.iter().skip(old.len()).filter(|c| c.count > 0).collect();
    if let (Some(f), Some(l)) = (extra.first(), extra.last()) {
        d.added = Some((f.first, l.first.saturating_add(l.count - 1)));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(first: u64, count: u64, h: char) -> Chunk {
        Chunk {
            first,
            count,
            sha256: std::iter::repeat_n(h, 64).collect(),
            lines: Some([first + 1, first + count]),
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/b/c/d.jsonl")),
            "c/d.jsonl"
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/x.jsonl")),
            "../x.jsonl"
        );
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), ".");
        assert_eq!(
            resolve(Path::new(""), "data/x.jsonl"),
            PathBuf::from("data/x.jsonl")
        );
        assert_eq!(resolve(Path::new("d"), "."), PathBuf::from("d"));
    }

    #[test]
    fn chunk_ranges_merge() {
        let old = [c(0, 10, 'a'), c(10, 10, 'b'), c(20, 10, 'c'), c(30, 5, 'd')];
        let new = [
            c(0, 10, 'a'),
            c(10, 10, 'x'),
            c(20, 10, 'y'),
            c(30, 10, 'd'),
            c(40, 3, 'e'),
        ];
        let d = compare_chunks(&old, &new);
        assert_eq!(
            d.ranges,
            vec![Range {
                first: 10,
                last: 34,
                lines: Some([11, 35])
            }]
        );
        assert_eq!(d.added, Some((40, 42)));
        assert_eq!(d.chunks.len(), 3);
    }
}
