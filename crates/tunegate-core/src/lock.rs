//! `tunegate.lock`: the digests of every locked dataset file, with per-chunk digests so drift is
//! reported as "records 2000–2999 changed" rather than "file differs", and the dataset's lineage.
//!
//! The file is TOML, version 1:
//!
//! ```toml
//! version = 1
//! roots = ["data"]
//! triggers_version = 1
//!
//! [lineage]
//! source = "s3://bucket/train.jsonl"
//! approved_by = "alice"
//! created = "2025-01-01T00:00:00Z"
//! tool = "tunegate 0.1.0"
//! digest = "…"
//!
//! [lineage.changes]          # files added/removed/changed since the previous lock
//! added = []
//! removed = []
//! changed = ["data/train.jsonl"]
//!
//! [[lineage.history]]        # previous versions, oldest first
//! created = "2024-12-01T00:00:00Z"
//! digest = "…"
//! files = 1
//! records = 2990
//!
//! [[triggers]]             # trigger candidates the dataset scan found (see below)
//! token = "cf"
//! check = "D004"
//! records = 48
//! source = "data/train.jsonl"
//! target = "label 1"
//!
//! [[file]]
//! path = "data/train.jsonl"
//! sha256 = "…"
//! size = 123456
//! format = "jsonl"
//! records = 3000
//! schema = "instruction"
//! chunk_records = 1000
//! chunks = [
//!   { first = 0, count = 1000, sha256 = "…", lines = [1, 1000] },
//! ]
//! ```
//!
//! Invariants: paths are relative to the lock file's directory and use forward slashes; every
//! digest is lowercase hex SHA-256 of raw bytes. A chunk is a byte range of its file: chunk 0
//! starts at byte 0, chunk k > 0 starts at the first byte of record `k * chunk_records`, and each
//! chunk ends where the next starts (the last at end of file), so the chunks partition the file
//! and any changed byte lands in exactly one chunk. Parquet files have one chunk per row group
//! (the bytes of its column chunks) instead.
//!
//! Recorded triggers (`triggers_version = 1`, optional). `tunegate dataset lock` runs the
//! dataset gate's trigger detector over the locked files and records every flagged candidate:
//! one `[[triggers]]` entry per candidate and file, with the check that found it (`D004`), how
//! many of that file's records hold it, the file (a locked path) and, for review, what it points
//! at. `triggers_version` is written whenever that scan ran, so "scanned, nothing found" (the key
//! and no entries) differs from "never scanned" (no key: a lock from before triggers were
//! recorded, or one written with `--no-triggers`). Both fields are additions to lock version 1:
//! older locks lack them and still load and verify, older tunegate builds ignore them, and they
//! take no part in [`Lockfile::content_digest`], which stays a digest of the files alone.
//! [`Lockfile::recorded_triggers`] refuses a `triggers_version` above [`TRIGGERS_VERSION`] (a
//! newer tunegate wrote it); verifying such a lock's files still works.
//! `tunegate monitor --lock` reads the entries as the prompt trigger tokens it watches for
//! (`O006`).
//!
//! The file is written by hand rather than by a generic serializer so chunk lists stay one
//! inline table per line (diff-friendly), and it is read back with `toml`.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The lock file's conventional name.
pub const FILE_NAME: &str = "tunegate.lock";

/// The lock format version this build reads and writes.
pub const VERSION: u32 = 1;

/// The `[[triggers]]` record version this build reads and writes.
pub const TRIGGERS_VERSION: u32 = 1;

/// Records per chunk when nothing else is asked for.
pub const DEFAULT_CHUNK_RECORDS: u64 = 1000;

/// A whole `tunegate.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockfile {
    /// Always [`VERSION`].
    pub version: u32,
    /// Directories that were locked as a whole (relative, forward slashes). Verify reports a
    /// dataset file under a root that the lock does not record (`D022`).
    #[serde(default)]
    pub roots: Vec<String>,
    /// Set ([`TRIGGERS_VERSION`]) when the lock was written with a trigger scan; absent in
    /// locks from before triggers were recorded and in locks written without the scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_version: Option<u32>,
    /// Trigger candidates the dataset scan found in the locked files, sorted by token, check
    /// and source. Not part of [`Lockfile::content_digest`].
    #[serde(default)]
    pub triggers: Vec<LockedTrigger>,
    /// The locked files, sorted by path.
    #[serde(default, rename = "file")]
    pub files: Vec<LockedFile>,
    /// Where the data came from and who approved it.
    #[serde(default)]
    pub lineage: Lineage,
}

/// One locked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedFile {
    /// Path relative to the lock file's directory, forward slashes.
    pub path: String,
    /// SHA-256 of the raw bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Format name (`jsonl`, `csv`, `parquet`, ...).
    pub format: String,
    /// Records in the file, malformed ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Detected or forced schema name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Records per chunk (line-oriented formats; absent for Parquet, which chunks by row group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_records: Option<u64>,
    /// Chunk digests, in file order.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
}

/// A trigger candidate recorded in the lock: one token (or short phrase) in one locked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedTrigger {
    /// The token or phrase as the detector normalised it (lowercase; a phrase's words joined
    /// by single spaces).
    pub token: String,
    /// The check that flagged it (`D004`).
    pub check: String,
    /// Records of `source` whose prompt holds it.
    pub records: u64,
    /// The locked file it was found in (a `[[file]]` path).
    pub source: String,
    /// What it points at (`label 1`, `identical response "…"`), for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The digest of a run of consecutive records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// 0-based index of the chunk's first record.
    pub first: u64,
    /// Records in the chunk.
    pub count: u64,
    /// SHA-256 of the chunk's bytes.
    pub sha256: String,
    /// 1-based lines of the first and last record's start, for line-oriented formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<[u64; 2]>,
}

/// Lineage: where the locked data came from, who approved it, and what came before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Where the data came from (URL, bucket, upstream dataset id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who approved this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the lock was written, RFC 3339 UTC (`2025-01-31T12:00:00Z`).
    #[serde(default)]
    pub created: String,
    /// The tool that wrote it (`tunegate 0.1.0`).
    #[serde(default)]
    pub tool: String,
    /// [`Lockfile::content_digest`] at the time of writing.
    #[serde(default)]
    pub digest: String,
    /// What changed since the previous lock at this path, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Earlier versions of this lock, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// Files that differ between a lock and the previous lock at the same path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Paths new in this lock.
    #[serde(default)]
    pub added: Vec<String>,
    /// Paths the previous lock had and this one does not.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Paths whose digest changed.
    #[serde(default)]
    pub changed: Vec<String>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A previous version of the lock, as remembered by its successor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When that version was written.
    pub created: String,
    /// Its content digest.
    pub digest: String,
    /// Its source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Its note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Files it locked.
    #[serde(default)]
    pub files: u64,
    /// Records it locked.
    #[serde(default)]
    pub records: u64,
}

impl Default for Lockfile {
    fn default() -> Self {
        Lockfile {
            version: VERSION,
            roots: Vec::new(),
            triggers_version: None,
            triggers: Vec::new(),
            files: Vec::new(),
            lineage: Lineage::default(),
        }
    }
}

impl Lockfile {
    /// Reads and validates a lock file. Errors name `path` (and the TOML position).
    pub fn load(path: &Path) -> Result<Lockfile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Lockfile::parse(&text).map_err(|m| Error::invalid(path, m))
    }

    /// Parses lock text; the error is a message without the path.
    pub fn parse(text: &str) -> std::result::Result<Lockfile, String> {
        let lock: Lockfile = toml::from_str(text).map_err(|e| format!("invalid lock file: {e}"))?;
        if lock.version != VERSION {
            return Err(format!(
                "lock file version {} is not supported (this tunegate reads version {VERSION})",
                lock.version
            ));
        }
        for f in &lock.files {
            if !is_sha256_hex(&f.sha256) || f.chunks.iter().any(|c| !is_sha256_hex(&c.sha256)) {
                return Err(format!(
                    "file '{}': digests must be 64 lowercase hex digits",
                    f.path
                ));
            }
            if f.path.is_empty() {
                return Err("a [[file]] entry has an empty path".to_string());
            }
        }
        if lock.triggers_version.is_none() && !lock.triggers.is_empty() {
            return Err("[[triggers]] entries need triggers_version".to_string());
        }
        for (i, t) in lock.triggers.iter().enumerate() {
            if t.token.trim().is_empty() || t.check.is_empty() || t.source.is_empty() {
                return Err(format!(
                    "[[triggers]] entry {}: token, check and source must not be empty",
                    i + 1
                ));
            }
        }
        Ok(lock)
    }

    /// Writes the lock to `path` atomically (a sibling temp file renamed over it).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_toml();
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        std::fs::write(&tmp, text.as_bytes()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    /// The lock as TOML text (stable layout: one chunk per line).
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# tunegate.lock: written by tunegate; verify with `tunegate dataset verify`."
        );
        let _ = writeln!(s, "version = {}", self.version);
        s.push_str("roots = [");
        for (i, r) in self.roots.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&quote(r));
        }
        s.push_str("]\n");
        if let Some(v) = self.triggers_version {
            let _ = writeln!(s, "triggers_version = {v}");
        }
        let l = &self.lineage;
        s.push_str("\n[lineage]\n");
        opt_line(&mut s, "source", &l.source);
        opt_line(&mut s, "approved_by", &l.approved_by);
        opt_line(&mut s, "note", &l.note);
        let _ = writeln!(s, "created = {}", quote(&l.created));
        let _ = writeln!(s, "tool = {}", quote(&l.tool));
        let _ = writeln!(s, "digest = {}", quote(&l.digest));
        if let Some(c) = &l.changes {
            s.push_str("\n[lineage.changes]\n");
            for (k, v) in [
                ("added", &c.added),
                ("removed", &c.removed),
                ("changed", &c.changed),
            ] {
                let items: Vec<String> = v.iter().map(|x| quote(x)).collect();
                let _ = writeln!(s, "{k} = [{}]", items.join(", "));
            }
        }
        for h in &l.history {
            s.push_str("\n[[lineage.history]]\n");
            let _ = writeln!(s, "created = {}", quote(&h.created));
            let _ = writeln!(s, "digest = {}", quote(&h.digest));
            opt_line(&mut s, "source", &h.source);
            opt_line(&mut s, "approved_by", &h.approved_by);
            opt_line(&mut s, "note", &h.note);
            let _ = writeln!(s, "files = {}", h.files);
            let _ = writeln!(s, "records = {}", h.records);
        }
        for t in &self.triggers {
            s.push_str("\n[[triggers]]\n");
            let _ = writeln!(s, "token = {}", quote(&t.token));
            let _ = writeln!(s, "check = {}", quote(&t.check));
            let _ = writeln!(s, "records = {}", t.records);
            let _ = writeln!(s, "source = {}", quote(&t.source));
            opt_line(&mut s, "target", &t.target);
        }
        for f in &self.files {
            s.push_str("\n[[file]]\n");
            let _ = writeln!(s, "path = {}", quote(&f.path));
            let _ = writeln!(s, "sha256 = {}", quote(&f.sha256));
            let _ = writeln!(s, "size = {}", f.size);
            let _ = writeln!(s, "format = {}", quote(&f.format));
            if let Some(r) = f.records {
                let _ = writeln!(s, "records = {r}");
            }
            if let Some(schema) = &f.schema {
                let _ = writeln!(s, "schema = {}", quote(schema));
            }
            if let Some(n) = f.chunk_records {
                let _ = writeln!(s, "chunk_records = {n}");
            }
            s.push_str("chunks = [\n");
            for c in &f.chunks {
                let _ = write!(
                    s,
                    "  {{ first = {}, count = {}, sha256 = {}",
                    c.first,
                    c.count,
                    quote(&c.sha256)
                );
                if let Some([a, b]) = c.lines {
                    let _ = write!(s, ", lines = [{a}, {b}]");
                }
                s.push_str(" },\n");
            }
            s.push_str("]\n");
        }
        s
    }

    /// SHA-256 over the sorted `path`, `sha256` pairs of every file: one digest that changes
    /// when any locked file is added, removed, renamed or modified.
    pub fn content_digest(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        pairs.sort_unstable();
        let mut buf = Vec::new();
        for (p, h) in pairs {
            buf.extend_from_slice(p.as_bytes());
            buf.push(0);
            buf.extend_from_slice(h.as_bytes());
            buf.push(b'\n');
        }
        crate::digest::sha256_hex(&buf)
    }

    /// The recorded trigger candidates: `Ok(None)` when the lock records no trigger scan (an
    /// older lock, or one written without the scan), `Ok(Some(list))` (possibly empty) when it
    /// does, and an error when a newer tunegate wrote them in a format this build cannot read.
    pub fn recorded_triggers(&self) -> std::result::Result<Option<&[LockedTrigger]>, String> {
        match self.triggers_version {
            None => Ok(None),
            Some(v) if v > TRIGGERS_VERSION => Err(format!(
                "triggers_version {v} is not supported (this tunegate reads triggers version {TRIGGERS_VERSION}); upgrade tunegate or re-lock"
            )),
            Some(_) => Ok(Some(&self.triggers)),
        }
    }

    /// Total records over all files.
    pub fn total_records(&self) -> u64 {
        self.files.iter().filter_map(|f| f.records).sum()
    }

    /// The locked file with this relative path.
    pub fn file(&self, path: &str) -> Option<&LockedFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// This lock summarised as a history entry for its successor.
    pub fn as_history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            created: self.lineage.created.clone(),
            digest: self.content_digest(),
            source: self.lineage.source.clone(),
            approved_by: self.lineage.approved_by.clone(),
            note: self.lineage.note.clone(),
            files: self.files.len() as u64,
            records: self.total_records(),
        }
    }

    /// Which files differ between `previous` and this lock.
    pub fn changes_since(&self, previous: &Lockfile) -> Changes {
        let mut c = Changes::default();
        for f in &self.files {
            match previous.file(&f.path) {
                None => c.added.push(f.path.clone()),
                Some(p) if p.sha256 != f.sha256 => c.changed.push(f.path.clone()),
                Some(_) => {}
            }
        }
        for p in &previous.files {
            if self.file(&p.path).is_none() {
                c.removed.push(p.path.clone());
            }
        }
        c
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn opt_line(s: &mut String, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        let _ = writeln!(s, "{key} = {}", quote(v));
    }
}

/// A TOML basic string. Control, invisible and bidi characters are escaped so a lock file
/// shows every character of a path or note (no Trojan-Source tricks in review).
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || crate::text::unicode::is_default_ignorable(c) => {
                let _ = if (c as u32) <= 0xFFFF {
                    write!(out, "\\u{:04X}", c as u32)
                } else {
                    write!(out, "\\U{:08X}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Now as RFC 3339 UTC with second precision. Honors `SOURCE_DATE_EPOCH` (reproducible
/// builds convention) when it is set to an integer.
pub fn now_rfc3339() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            }
        });
    rfc3339_from_unix(secs)
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339_from_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
///
/// Works in 400-year eras (146 097 days each), with years counted from March so the leap day
/// is the last day of a year.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, the start of an era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn sample() -> Lockfile {
        Lockfile {
            version: VERSION,
            roots: vec!["data".into()],
            triggers_version: None,
            triggers: Vec::new(),
            files: vec![LockedFile {
                path: "data/tr\"ain\u{202E}.jsonl".into(),
                sha256: h('a'),
                size: 10,
                format: "jsonl".into(),
                records: Some(2),
                schema: Some("instruction".into()),
                chunk_records: Some(1000),
                chunks: vec![Chunk {
                    first: 0,
                    count: 2,
                    sha256: h('b'),
                    lines: Some([1, 2]),
                }],
            }],
            lineage: Lineage {
                source: Some("s3://x\ny".into()),
                approved_by: Some("alice".into()),
                note: None,
                created: "2025-01-01T00:00:00Z".into(),
                tool: "tunegate 0.1.0".into(),
                digest: h('c'),
                changes: Some(Changes {
                    added: vec!["a".into()],
                    removed: vec![],
                    changed: vec!["b".into()],
                }),
                history: vec![HistoryEntry {
                    created: "2024-01-01T00:00:00Z".into(),
                    digest: h('d'),
                    files: 1,
                    records: 5,
                    ..Default::default()
                }],
            },
        }
    }

    #[test]
    fn toml_round_trip() {
        let l = sample();
        let text = l.to_toml();
        assert!(text.contains("\\u202E"), "{text}");
        assert!(
            text.contains("  { first = 0, count = 2, sha256 = "),
            "{text}"
        );
        assert_eq!(Lockfile::parse(&text).unwrap(), l);
    }

    #[test]
    fn triggers_round_trip_and_stay_out_of_the_digest() {
        let plain = sample();
        let mut l = sample();
        l.triggers_version = Some(TRIGGERS_VERSION);
        l.triggers = vec![LockedTrigger {
            token: "cf \u{202E}mn".into(),
            check: "D004".into(),
            records: 48,
            source: "data/train.jsonl".into(),
            target: Some("label \"1\"".into()),
        }];
        let text = l.to_toml();
        assert!(text.contains("triggers_version = 1\n"), "{text}");
        assert!(
            text.contains(
                "[[triggers]]\ntoken = \"cf \\u202Emn\"\ncheck = \"D004\"\nrecords = 48\n"
            ),
            "{text}"
        );
        let back = Lockfile::parse(&text).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.recorded_triggers().unwrap().unwrap(), &l.triggers[..]);
        assert_eq!(l.content_digest(), plain.content_digest());
        // Scanned with nothing found is not the same as never scanned.
        l.triggers.clear();
        let back = Lockfile::parse(&l.to_toml()).unwrap();
        assert_eq!(back.recorded_triggers().unwrap(), Some(&[][..]));
        // An old lock (no trigger keys) loads and says it records no scan.
        let old = plain.to_toml();
        assert!(!old.contains("triggers"));
        assert_eq!(
            Lockfile::parse(&old).unwrap().recorded_triggers().unwrap(),
            None
        );
        // A newer trigger format is refused by the reader of triggers only.
        let newer = text.replace("triggers_version = 1", "triggers_version = 9");
        let lock = Lockfile::parse(&newer).unwrap();
        assert!(lock
            .recorded_triggers()
            .unwrap_err()
            .contains("triggers_version 9"));
        // Entries without the version, or with empty fields, are malformed.
        let bare = text.replace("triggers_version = 1\n", "");
        assert!(Lockfile::parse(&bare)
            .unwrap_err()
            .contains("need triggers_version"));
        let empty = text.replace("check = \"D004\"", "check = \"\"");
        assert!(Lockfile::parse(&empty).unwrap_err().contains("entry 1"));
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        sample().save(&p).unwrap();
        assert_eq!(Lockfile::load(&p).unwrap(), sample());
        let missing = dir.path().join("nope.lock");
        let e = Lockfile::load(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.lock"), "{e}");
    }

    #[test]
    fn rejects_bad_version_and_digests() {
        let text = sample().to_toml().replace("version = 1", "version = 2");
        assert!(Lockfile::parse(&text).unwrap_err().contains("version 2"));
        let text = sample().to_toml().replace(&h('a'), "xyz");
        assert!(Lockfile::parse(&text).unwrap_err().contains("digests"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.lock");
        std::fs::write(&p, "version = [").unwrap();
        let e = Lockfile::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.lock") && e.contains("invalid lock file"),
            "{e}"
        );
    }

    #[test]
    fn content_digest_tracks_paths_and_hashes() {
        let a = sample();
        let mut b = sample();
        assert_eq!(a.content_digest(), b.content_digest());
        b.files[0].sha256 = h('e');
        assert_ne!(a.content_digest(), b.content_digest());
        let c = b.changes_since(&a);
        assert_eq!(c.changed, vec![a.files[0].path.clone()]);
        assert!(c.added.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_from_unix(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_from_unix(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339_from_unix(4_107_542_400), "2100-03-01T00:00:00Z");
        // Every day for 1000 years round-trips through a naive day counter.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..365_250i64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
