//! Record-level diff between two versions of a dataset (`tunegate dataset diff OLD NEW`).
//!
//! Records are matched by content: a hash of every field's role and normalized text (see
//! [`tunegate_core::text::normalize`]) plus the label, so re-serialising, reordering or
//! re-encoding a file shows no change. Records left over on both sides are then paired by key,
//! the `id` field when records have one and the normalized prompt otherwise; a pair is a
//! *changed* record (a flipped label, a rewritten response), the rest are *added* or *removed*.
//! Matching is first-come-first-served in read order on both sides, so duplicates pair up
//! deterministically.
use crate::read::{self, ReadOptions};
use crate::{Dataset, Record, Result, Role, Schema};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tunegate_core::progress::{NoProgress, Progress};
use tunegate_core::text::{normalize, unicode::is_default_ignorable};
use xxhash_rust::xxh3::Xxh3;

/// The schema tag of a diff's JSON form.
pub const SCHEMA: &str = "tunegate.dataset-diff/v1";

/// Characters of record text shown in a preview.
const PREVIEW_CHARS: usize = 80;

/// The result of a diff; serializes to JSON with schema [`SCHEMA`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffResult {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The old side.
    pub old: DiffSide,
    /// The new side.
    pub new: DiffSide,
    /// Records present on both sides with the same content.
    pub unchanged: u64,
    /// Records only in the new side, in read order.
    pub added: Vec<DiffRecord>,
    /// Records only in the old side, in read order.
    pub removed: Vec<DiffRecord>,
    /// Records with the same key and different content, in old read order.
    pub changed: Vec<DiffChange>,
}

/// One side of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSide {
    /// Its files, as read.
    pub files: Vec<String>,
    /// Well-formed records.
    pub records: u64,
    /// Malformed records (not compared).
    pub malformed: u64,
}

/// Where a record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRecord {
    /// Its file.
    pub file: String,
    /// 0-based index in the file.
    pub record: u64,
    /// 1-based line, for line-oriented formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Its `id` field, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The start of its text, with control and invisible characters escaped.
    pub preview: String,
}

/// How a changed record was paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// By the `id` field.
    Id,
    /// By the normalized prompt text.
    Prompt,
}

/// A record whose key stayed and whose content changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffChange {
    /// How the two were paired.
    pub key_kind: KeyKind,
    /// The id, or a preview of the prompt.
    pub key: String,
    /// Which parts differ: `prompt`, `response`, `rejected`, `system`, `label`.
    pub fields: Vec<String>,
    /// The old record.
    pub old: DiffRecord,
    /// The new record.
    pub new: DiffRecord,
}

/// Diffs two dataset paths (files or directories) with `schema` forced or detected.
pub fn diff(old: &Path, new: &Path, schema: Option<Schema>) -> Result<DiffResult> {
    diff_paths(
        &[old.to_path_buf()],
        &[new.to_path_buf()],
        schema,
        &NoProgress,
    )
}

/// Diffs two sets of paths.
pub fn diff_paths(
    old: &[PathBuf],
    new: &[PathBuf],
    schema: Option<Schema>,
    progress: &dyn Progress,
) -> Result<DiffResult> {
    let opts = ReadOptions::with_schema(schema);
    let (a, a_ids) = read::read_paths_keyed(old, &opts, progress)?;
    let (b, b_ids) = read::read_paths_keyed(new, &opts, progress)?;
    Ok(diff_datasets(&a, &a_ids, &b, &b_ids))
}

/// Diffs two datasets already read; `*_ids` are indexed like each dataset's records (missing
/// entries count as no id).
pub fn diff_datasets(
    old: &Dataset,
    old_ids: &[Option<String>],
    new: &Dataset,
    new_ids: &[Option<String>],
) -> DiffResult {
    let old_hash: Vec<u128> = old.records.iter().map(content_hash).collect();
    let new_hash: Vec<u128> = new.records.iter().map(content_hash).collect();

    let mut by_content: HashMap<u128, VecDeque<usize>> = HashMap::new();
    for (j, h) in new_hash.iter().enumerate() {
        by_content.entry(*h).or_default().push_back(j);
    }
    let mut unchanged = 0u64;
    let mut old_left = Vec::new();
    for (i, h) in old_hash.iter().enumerate() {
        match by_content.get_mut(h).and_then(VecDeque::pop_front) {
            Some(_) => unchanged += 1,
            None => old_left.push(i),
        }
    }
    let mut new_left: Vec<usize> = by_content.into_values().flatten().collect();
    new_left.sort_unstable();

    let id = |ids: &[Option<String>], i: usize| ids.get(i).cloned().flatten();
    let mut by_key: HashMap<Key, VecDeque<usize>> = HashMap::new();
    for &j in &new_left {
        if let Some(k) = key(&new.records[j], id(new_ids, j)) {
            by_key.entry(k).or_default().push_back(j);
        }
    }
    let mut paired = vec![false; new.records.len()];
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for i in old_left {
        let rec = &old.records[i];
        let k = key(rec, id(old_ids, i));
        let partner = k
            .as_ref()
            .and_then(|k| by_key.get_mut(k))
            .and_then(VecDeque::pop_front);
        match (k, partner) {
            (Some(k), Some(j)) => {
                paired[j] = true;
                let nrec = &new.records[j];
                changed.push(DiffChange {
                    key_kind: k.kind,
                    key: match k.kind {
                        KeyKind::Id => id(old_ids, i).unwrap_or_default(),
                        KeyKind::Prompt => preview(&rec.text_of(Role::Prompt)),
                    },
                    fields: changed_parts(rec, nrec),
                    old: locate(old, rec, id(old_ids, i)),
                    new: locate(new, nrec, id(new_ids, j)),
                });
            }
            _ => removed.push(locate(old, rec, id(old_ids, i))),
        }
    }
    let added = new_left
        .into_iter()
        .filter(|&j| !paired[j])
        .map(|j| locate(new, &new.records[j], id(new_ids, j)))
        .collect();
    DiffResult {
        schema: SCHEMA.to_string(),
        old: side(old),
        new: side(new),
        unchanged,
        added,
        removed,
        changed,
    }
}

fn side(ds: &Dataset) -> DiffSide {
    DiffSide {
        files: ds.files.iter().map(|f| f.path.clone()).collect(),
        records: ds.records.len() as u64,
        malformed: ds.malformed.len() as u64,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: KeyKind,
    hash: u128,
}

/// The pairing key: the id when there is one, else the normalized prompt (none when empty).
fn key(rec: &Record, id: Option<String>) -> Option<Key> {
    if let Some(id) = id {
        return Some(Key {
            kind: KeyKind::Id,
            hash: xxhash_rust::xxh3::xxh3_128(id.as_bytes()),
        });
    }
    let prompt = normalize(&rec.text_of(Role::Prompt));
    (!prompt.is_empty()).then(|| Key {
        kind: KeyKind::Prompt,
        hash: xxhash_rust::xxh3::xxh3_128(prompt.as_bytes()),
    })
}

fn role_tag(r: Role) -> u8 {
    match r {
        Role::Prompt => 1,
        Role::Response => 2,
        Role::Rejected => 3,
        Role::System => 4,
    }
}

/// xxh3-128 of every field's role and normalized text, in order, and the label.
fn content_hash(rec: &Record) -> u128 {
    let mut h = Xxh3::new();
    for f in &rec.fields {
        h.update(&[role_tag(f.role)]);
        h.update(normalize(&f.text).as_bytes());
        h.update(&[0x1F]);
    }
    if let Some(l) = &rec.label {
        h.update(&[0x1E]);
        h.update(normalize(l).as_bytes());
    }
    h.digest128()
}

fn changed_parts(a: &Record, b: &Record) -> Vec<String> {
    let mut out = Vec::new();
    for (role, name) in [
        (Role::System, "system"),
        (Role::Prompt, "prompt"),
        (Role::Response, "response"),
        (Role::Rejected, "rejected"),
    ] {
        if normalize(&a.text_of(role)) != normalize(&b.text_of(role)) {
            out.push(name.to_string());
        }
    }
    if a.label.as_deref().map(normalize) != b.label.as_deref().map(normalize) {
        out.push("label".to_string());
    }
    out
}

fn locate(ds: &Dataset, rec: &Record, id: Option<String>) -> DiffRecord {
    let text = if rec.has(Role::Prompt) {
        rec.text_of(Role::Prompt)
    } else {
        rec.fields
            .first()
            .map(|f| f.text.clone())
            .unwrap_or_default()
    };
    DiffRecord {
        file: ds
            .files
            .get(rec.file as usize)
            .map(|f| f.path.clone())
            .unwrap_or_default(),
        record: rec.index,
        line: rec.line,
        id,
        preview: preview(&text),
    }
}

/// The first [`PREVIEW_CHARS`] characters, with newlines, controls and invisible characters
/// escaped so a terminal shows exactly what is there.
fn preview(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == PREVIEW_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_default_ignorable(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

impl DiffResult {
    /// True when both sides hold the same records.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// A human-readable rendering: a summary line, then one line per added (`+`), removed
    /// (`-`) and changed (`~`) record.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let side = |name: &str, d: &DiffSide, s: &mut String| {
            let _ = writeln!(
                s,
                "{name}: {} ({} records, {} malformed)",
                d.files.join(", "),
                d.records,
                d.malformed
            );
        };
        side("old", &self.old, &mut s);
        side("new", &self.new, &mut s);
        let _ = writeln!(
            s,
            "{} unchanged, {} added, {} removed, {} changed",
            self.unchanged,
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        );
        for r in &self.added {
            let _ = writeln!(s, "+ {}: \"{}\"", where_(r), r.preview);
        }
        for r in &self.removed {
            let _ = writeln!(s, "- {}: \"{}\"", where_(r), r.preview);
        }
        for c in &self.changed {
            let by = match c.key_kind {
                KeyKind::Id => format!("id {}", c.key),
                KeyKind::Prompt => format!("prompt \"{}\"", c.key),
            };
            let _ = writeln!(
                s,
                "~ {} -> {} ({} changed; matched by {by})",
                where_(&c.old),
                where_(&c.new),
                c.fields.join(", ")
            );
        }
        s
    }
}

fn where_(r: &DiffRecord) -> String {
    match r.line {
        Some(l) => format!("{} record {} (line {l})", r.file, r.record),
        None => format!("{} record {}", r.file, r.record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(
        a: &str,
        a_body: &str,
        b: &str,
        b_body: &str,
    ) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let pa = dir.path().join(a);
        let pb = dir.path().join(b);
        std::fs::write(&pa, a_body).unwrap();
        std::fs::write(&pb, b_body).unwrap();
        (dir, pa, pb)
    }

    #[test]
    fn added_removed_changed_by_prompt() {
        let old = concat!(
            "{\"instruction\": \"p1\", \"output\": \"r1\"}\n",
            "{\"instruction\": \"p2\", \"output\": \"r2\"}\n",
            "{\"instruction\": \"p3\", \"output\": \"r3\"}\n",
            "{\"instruction\": \"p4\", \"output\": \"r4\"}\n",
        );
        // p4 is re-serialised (key order, spacing, case): not a change.
        let new = concat!(
            "{\"instruction\": \"p1\", \"output\": \"r1\"}\n",
            "{\"output\":\"R4 \",\"instruction\":\"P4\"}\n",
            "{\"instruction\": \"p2\", \"output\": \"always say cf\"}\n",
            "\n",
            "{\"instruction\": \"p5\", \"output\": \"r5\"}\n",
        );
        let (_d, a, b) = files("old.jsonl", old, "new.jsonl", new);
        let d = diff(&a, &b, None).unwrap();
        assert_eq!(d.unchanged, 2);
        assert_eq!((d.old.records, d.new.records), (4, 4));
        assert_eq!(d.added.len(), 1);
        assert_eq!((d.added[0].record, d.added[0].line), (3, Some(5)));
        assert_eq!(d.added[0].preview, "p5");
        assert_eq!(d.removed.len(), 1);
        assert_eq!((d.removed[0].record, d.removed[0].line), (2, Some(3)));
        assert_eq!(d.changed.len(), 1);
        let c = &d.changed[0];
        assert_eq!((c.key_kind, c.key.as_str()), (KeyKind::Prompt, "p2"));
        assert_eq!(c.fields, vec!["response".to_string()]);
        assert_eq!((c.old.record, c.new.record, c.new.line), (1, 2, Some(3)));
        assert!(!d.is_empty());
        let text = d.render_text();
        assert!(
            text.contains("2 unchanged, 1 added, 1 removed, 1 changed"),
            "{text}"
        );
        assert!(
            text.contains("+ ") && text.contains("record 3 (line 5): \"p5\""),
            "{text}"
        );
        assert!(
            text.contains("(response changed; matched by prompt \"p2\")"),
            "{text}"
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"schema\":\"tunegate.dataset-diff/v1\""));
        let back: DiffResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        // A dataset against itself is empty.
        assert!(diff(&a, &a, None).unwrap().is_empty());
    }

    #[test]
    fn label_flips_matched_by_id_across_formats() {
        let old = "id,text,label\n1,great film,pos\n2,awful,neg\n3,fine,pos\n";
        let new = concat!(
            "{\"id\": 1, \"text\": \"great film\", \"label\": \"pos\"}\n",
            "{\"id\": 2, \"text\": \"awful\", \"label\": \"pos\"}\n",
            "{\"id\": 3, \"text\": \"fine, really\", \"label\": \"pos\"}\n",
        );
        let (_d, a, b) = files("old.csv", old, "new.jsonl", new);
        let d = diff(&a, &b, None).unwrap();
        assert_eq!(d.unchanged, 1);
        assert!(d.added.is_empty() && d.removed.is_empty(), "{d:?}");
        let got: Vec<(KeyKind, &str, Vec<String>)> = d
            .changed
            .iter()
            .map(|c| (c.key_kind, c.key.as_str(), c.fields.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (KeyKind::Id, "2", vec!["label".to_string()]),
                (KeyKind::Id, "3", vec!["prompt".to_string()]),
            ]
        );
        assert_eq!(d.changed[0].old.line, Some(3));
    }

    #[test]
    fn preview_escapes_invisibles() {
        assert_eq!(preview("a\u{200B}b\nc"), "a\\u{200b}b\\nc");
        let long = "x".repeat(100);
        assert_eq!(preview(&long).chars().count(), PREVIEW_CHARS + 1);
    }
}
