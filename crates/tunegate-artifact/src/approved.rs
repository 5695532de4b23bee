//! The approved-model list (`approved.toml`) and verification of a model against it.
//!
//! The list pins, per model id, the SHA-256 of every file of an approved model. `tunegate model
//! approve` writes entries; `tunegate model verify` hashes a file or folder ([`crate::hash`]) and
//! reports every changed, missing, unexpected or linked file as a `model` gate finding. It fails
//! closed: anything but an exact match is at least high.
//!
//! # Format (version 1)
//!
//! ```toml
//! version = 1                       # optional; 1 is the only version
//!
//! [[model]]
//! id = "org/name"                   # required, unique in the list
//! revision = "a1b2c3d"              # optional: the upstream commit or tag
//! folder_digest = "sha256:…"        # optional: see below
//!
//! [model.files]                     # path relative to the model folder = digest
//! "config.json" = "sha256:…"
//! "model-00001-of-00002.safetensors" = { digest = "sha256:…", size = 4997123456 }
//! ```
//!
//! - A file's value is either the digest string `"sha256:<64 hex>"` or an inline table with
//!   `digest` and an optional `size` in bytes. Hex may be upper or lower case.
//! - Paths are relative, `/`-separated, and may not be empty, start with `/`, contain `.` or `..`
//!   components, backslashes, control characters or a drive prefix (`C:`).
//! - `folder_digest` is the SHA-256 of the model's `sha256sum`-style listing (see
//!   [`crate::hash::folder_digest`]). An entry needs `files`, `folder_digest` or both. When both
//!   are present they must agree (checked at parse time), so a hand edit of one without the other
//!   is caught. An entry with only a folder digest can be verified but cannot name the file that
//!   differs.
//! - For a single-file model the one key is the file's name.
//!
//! Parsing is strict: an unknown key, a malformed digest, a bad path, a duplicate id or a
//! disagreeing folder digest is an [`Error::Approved`] naming the list and the entry (exit 2).
//!
//! # Trust
//!
//! [`parse`] takes bytes the caller has already read, so a caller that checks a detached
//! signature over those exact bytes can do so before anything in them is trusted; nothing here
//! re-reads the file. `approve` rewrites the whole file in a canonical layout (comments are not
//! kept), which invalidates any signature over the old bytes, as it should.
//!
//! # Which entry is compared
//!
//! `--model ID` picks the entry. Otherwise a list with one entry uses it; with several, the
//! entry whose files (or folder digest) match exactly wins, else the entry sharing the most
//! `(path, digest)` pairs with the model, when that best count is positive and unique. With no
//! such entry the report has one [`checks::APPROVED_NO_ENTRY`] finding.
use crate::hash::{self, HashOptions, Tree};
use crate::{checks, Error, Result};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tunegate_core::progress::Progress;
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// The list format version this build reads and writes.
pub const VERSION: i64 = 1;

/// One approved file. Invariant: `sha256` is 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedFile {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Size in bytes, when recorded.
    pub size: Option<u64>,
}

/// One approved model. Invariants: `id` is non-empty without whitespace or control characters;
/// every key of `files` is a safe relative path (see the module doc); at least one of `files`
/// and `folder_digest` is set, `files` is non-empty when set, and when both are set the folder
/// digest is the digest of `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedModel {
    /// Model id (`org/name`).
    pub id: String,
    /// Upstream revision, when recorded.
    pub revision: Option<String>,
    /// Lowercase hex folder digest, when recorded.
    pub folder_digest: Option<String>,
    /// Relative path → approved file, when recorded.
    pub files: Option<BTreeMap<String, ApprovedFile>>,
}

/// A parsed `approved.toml`. Invariant: ids are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovedList {
    /// Entries in file order.
    pub models: Vec<ApprovedModel>,
    /// Lowercase hex SHA-256 of the bytes this list was parsed from (empty for a new list).
    pub source_sha256: String,
}

fn bad(file: &str, msg: impl Into<String>) -> Error {
    Error::Approved {
        file: file.to_string(),
        msg: msg.into(),
    }
}

/// Parses a digest `sha256:<64 hex>` into lowercase hex.
pub fn parse_digest(s: &str) -> std::result::Result<String, String> {
    let Some(hex) = s.strip_prefix("sha256:") else {
        return Err(format!(
            "digest '{s}' does not start with 'sha256:' (the only algorithm supported)"
        ));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "digest '{s}' is not 'sha256:' followed by 64 hex digits"
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// Checks a relative path from the list: see the module doc for the rules.
pub fn check_path(p: &str) -> std::result::Result<(), String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p.starts_with('/') {
        return Err(format!("path '{p}' is absolute"));
    }
    if p.contains('\\') {
        return Err(format!(
            "path '{p}' contains a backslash (use '/' separators)"
        ));
    }
    if p.chars().any(char::is_control) {
        return Err(format!("path {p:?} contains a control character"));
    }
    let b = p.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return Err(format!("path '{p}' has a drive prefix"));
    }
    for c in p.split('/') {
        match c {
            "" => return Err(format!("path '{p}' has an empty component")),
            "." | ".." => return Err(format!("path '{p}' has a '{c}' component")),
            _ => {}
        }
    }
    Ok(())
}

fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("id is empty".into());
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "id {id:?} contains whitespace or a control character"
        ));
    }
    Ok(())
}

fn type_name(v: &toml::Value) -> &'static str {
    v.type_str()
}

/// Parses and validates an approved-model list from bytes already read (see the module doc's
/// Trust section). `file` names the list in error messages.
pub fn parse(file: &str, bytes: &[u8]) -> Result<ApprovedList> {
    let text = std::str::from_utf8(bytes).map_err(|e| bad(file, format!("not UTF-8: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(file, format!("not valid TOML: {e}")))?;
    let mut models = Vec::new();
    for (k, v) in &table {
        match k.as_str() {
            "version" => match v.as_integer() {
                Some(VERSION) => {}
                _ => {
                    return Err(bad(
                        file,
                        format!(
                            "version = {v} is not supported (this build reads version {VERSION})"
                        ),
                    ))
                }
            },
            "model" => {
                let Some(arr) = v.as_array() else {
                    return Err(bad(
                        file,
                        format!(
                            "'model' must be an array of tables ([[model]]), not {}",
                            type_name(v)
                        ),
                    ));
                };
                for (i, m) in arr.iter().enumerate() {
                    models.push(parse_model(file, i, m)?);
                }
            }
            other => {
                return Err(bad(
                    file,
                    format!(
                        "unknown top-level key '{other}' (expected 'version' and [[model]] tables)"
                    ),
                ))
            }
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in models.iter().enumerate() {
        if let Some(j) = seen.insert(&m.id, i) {
            return Err(bad(
                file,
                format!(
                    "model #{} and model #{} both have id '{}' (ids must be unique)",
                    j + 1,
                    i + 1,
                    m.id
                ),
            ));
        }
    }
    Ok(ApprovedList {
        models,
        source_sha256: tunegate_core::digest::sha256_hex(bytes),
    })
}

fn parse_model(file: &str, i: usize, v: &toml::Value) -> Result<ApprovedModel> {
    let Some(t) = v.as_table() else {
        return Err(bad(file, format!("model #{} is not a table", i + 1)));
    };
    let id = match t.get("id") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(bad(
                file,
                format!(
                    "model #{}: id must be a string, not {}",
                    i + 1,
                    type_name(other)
                ),
            ))
        }
        None => return Err(bad(file, format!("model #{} has no id", i + 1))),
    };
    let who = format!("model #{} ('{id}')", i + 1);
    check_id(&id).map_err(|e| bad(file, format!("{who}: {e}")))?;
    let mut m = ApprovedModel {
        id,
        revision: None,
        folder_digest: None,
        files: None,
    };
    for (k, v) in t {
        match (k.as_str(), v) {
            ("id", _) => {}
            ("revision", toml::Value::String(s)) => {
                if s.is_empty() || s.chars().any(char::is_control) {
                    return Err(bad(
                        file,
                        format!("{who}: revision {s:?} is empty or has control characters"),
                    ));
                }
                m.revision = Some(s.clone());
            }
            ("folder_digest", toml::Value::String(s)) => {
                m.folder_digest = Some(
                    parse_digest(s).map_err(|e| bad(file, format!("{who}: folder_digest: {e}")))?,
                );
            }
            ("files", toml::Value::Table(ft)) => {
                let mut files = BTreeMap::new();
                for (p, fv) in ft {
                    check_path(p).map_err(|e| bad(file, format!("{who}: files: {e}")))?;
                    let f = parse_file(fv)
                        .map_err(|e| bad(file, format!("{who}: files.{}: {e}", quote_key(p))))?;
                    files.insert(p.clone(), f);
                }
                if files.is_empty() {
                    return Err(bad(file, format!("{who}: files is empty")));
                }
                m.files = Some(files);
            }
            ("revision" | "folder_digest" | "files", other) => {
                return Err(bad(
                    file,
                    format!("{who}: {k} has the wrong type ({})", type_name(other)),
                ))
            }
            (other, _) => {
                return Err(bad(
                    file,
                    format!(
                    "{who}: unknown key '{other}' (expected id, revision, folder_digest, files)"
                ),
                ))
            }
        }
    }
    match (&m.files, &m.folder_digest) {
        (None, None) => {
            return Err(bad(
                file,
                format!("{who}: needs files, folder_digest or both"),
            ));
        }
        (Some(files), Some(fd)) => {
            let actual =
                hash::folder_digest(files.iter().map(|(p, f)| (p.as_str(), f.sha256.as_str())));
            if &actual != fd {
                return Err(bad(
                    file,
                    format!(
                        "{who}: folder_digest sha256:{fd} disagrees with its files (which give sha256:{actual}); was one edited by hand?"
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(m)
}

fn parse_file(v: &toml::Value) -> std::result::Result<ApprovedFile, String> {
    match v {
        toml::Value::String(s) => Ok(ApprovedFile {
            sha256: parse_digest(s)?,
            size: None,
        }),
        toml::Value::Table(t) => {
            let mut digest = None;
            let mut size = None;
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("digest", toml::Value::String(s)) => digest = Some(parse_digest(s)?),
                    ("size", toml::Value::Integer(n)) => {
                        size = Some(u64::try_from(*n).map_err(|_| format!("size {n} is negative"))?)
                    }
                    ("digest" | "size", other) => {
                        return Err(format!("{k} has the wrong type ({})", other.type_str()))
                    }
                    (other, _) => {
                        return Err(format!("unknown key '{other}' (expected digest, size)"))
                    }
                }
            }
            Ok(ApprovedFile {
                sha256: digest.ok_or("no digest")?,
                size,
            })
        }
        other => Err(format!(
            "expected \"sha256:…\" or {{ digest = \"sha256:…\", size = N }}, not {}",
            other.type_str()
        )),
    }
}

fn quote_key(k: &str) -> String {
    toml::Value::String(k.to_string()).to_string()
}

impl ApprovedModel {
    /// An entry for a hashed model: every file with digest and size, and the folder digest.
    /// `file` names the list in errors. Symlinks and empty folders cannot be approved.
    pub fn from_tree(file: &str, id: &str, revision: Option<&str>, tree: &Tree) -> Result<Self> {
        check_id(id).map_err(|e| bad(file, format!("--id: {e}")))?;
        if let Some(s) = tree.symlinks.first() {
            return Err(bad(
                file,
                format!(
                    "cannot approve {}: it is a symbolic link (to {}); tunegate does not follow links, copy the real files into the folder",
                    s.path, s.target
                ),
            ));
        }
        if tree.files.is_empty() {
            return Err(bad(
                file,
                format!("cannot approve '{id}': the model has no files"),
            ));
        }
        let mut files = BTreeMap::new();
        for f in &tree.files {
            check_path(&f.path).map_err(|e| bad(file, format!("cannot approve '{id}': {e}")))?;
            files.insert(
                f.path.clone(),
                ApprovedFile {
                    sha256: f.sha256.clone(),
                    size: Some(f.size),
                },
            );
        }
        Ok(ApprovedModel {
            id: id.to_string(),
            revision: revision.map(str::to_string),
            folder_digest: Some(tree.folder_digest()),
            files: Some(files),
        })
    }
}

impl ApprovedList {
    /// Replaces the entry with the same id (keeping its position) or appends; returns whether
    /// an entry was replaced.
    pub fn upsert(&mut self, m: ApprovedModel) -> bool {
        match self.models.iter_mut().find(|x| x.id == m.id) {
            Some(x) => {
                *x = m;
                true
            }
            None => {
                self.models.push(m);
                false
            }
        }
    }

    /// Writes the list in its canonical layout (one `[[model]]` table per entry, one file per
    /// line); [`parse`] reads it back to an equal list.
    pub fn to_toml(&self) -> String {
        let mut s = String::from(
            "# Approved models for `tunegate model verify`; written by `tunegate model approve`.\n",
        );
        s.push_str(&format!("version = {VERSION}\n"));
        for m in &self.models {
            s.push_str("\n[[model]]\n");
            s.push_str(&format!("id = {}\n", quote_key(&m.id)));
            if let Some(r) = &m.revision {
                s.push_str(&format!("revision = {}\n", quote_key(r)));
            }
            if let Some(d) = &m.folder_digest {
                s.push_str(&format!("folder_digest = \"sha256:{d}\"\n"));
            }
            if let Some(files) = &m.files {
                s.push_str("\n[model.files]\n");
                for (p, f) in files {
                    match f.size {
                        Some(n) => s.push_str(&format!(
                            "{} = {{ digest = \"sha256:{}\", size = {n} }}\n",
                            quote_key(p),
                            f.sha256
                        )),
                        None => {
                            s.push_str(&format!("{} = \"sha256:{}\"\n", quote_key(p), f.sha256))
                        }
                    }
                }
            }
        }
        s
    }
}

/// How the compared entry was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    Named,
    Only,
    Exact,
    Closest(usize),
}

fn pairs_in_common(m: &ApprovedModel, tree: &Tree) -> usize {
    let Some(files) = &m.files else { return 0 };
    tree.files
        .iter()
        .filter(|f| files.get(&f.path).is_some_and(|a| a.sha256 == f.sha256))
        .count()
}

fn exact(m: &ApprovedModel, tree: &Tree) -> bool {
    if !tree.symlinks.is_empty() {
        return false;
    }
    match &m.files {
        Some(files) => files.len() == tree.files.len() && pairs_in_common(m, tree) == files.len(),
        None => m.folder_digest.as_deref() == Some(tree.folder_digest().as_str()),
    }
}

fn select<'a>(
    list: &'a ApprovedList,
    file: &str,
    tree: &Tree,
    model: Option<&str>,
) -> Result<Option<(&'a ApprovedModel, Chosen)>> {
    if let Some(id) = model {
        return match list.models.iter().find(|m| m.id == id) {
            Some(m) => Ok(Some((m, Chosen::Named))),
            None => {
                let ids: Vec<&str> = list.models.iter().map(|m| m.id.as_str()).collect();
                Err(bad(
                    file,
                    format!(
                        "no model with id '{id}' (the list has: {})",
                        if ids.is_empty() {
                            "no entries".to_string()
                        } else {
                            ids.join(", ")
                        }
                    ),
                ))
            }
        };
    }
    if list.models.len() == 1 {
        return Ok(Some((&list.models[0], Chosen::Only)));
    }
    if let Some(m) = list.models.iter().find(|m| exact(m, tree)) {
        return Ok(Some((m, Chosen::Exact)));
    }
    let scores: Vec<usize> = list
        .models
        .iter()
        .map(|m| pairs_in_common(m, tree))
        .collect();
    let best = scores.iter().copied().max().unwrap_or(0);
    if best > 0 && scores.iter().filter(|&&s| s == best).count() == 1 {
        let i = scores.iter().position(|&s| s == best).expect("best exists");
        return Ok(Some((&list.models[i], Chosen::Closest(best))));
    }
    Ok(None)
}

fn entry_name(m: &ApprovedModel) -> String {
    match &m.revision {
        Some(r) => format!("{}@{r}", m.id),
        None => m.id.clone(),
    }
}

fn size_note(a: Option<u64>, b: u64) -> String {
    match a {
        Some(a) if a != b => format!(" (size {a} → {b} bytes)"),
        _ => String::new(),
    }
}

/// Hashes `target` (a file or folder) and verifies it against `list` (read from `file`), into a
/// `model` gate report at threshold `high`. `model` names the entry to compare (an unknown id is
/// an error); otherwise one is chosen as the module doc says. Hashing reports to `progress`.
pub fn verify(
    list: &ApprovedList,
    file: &str,
    target: &Path,
    model: Option<&str>,
    opts: &HashOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let tree = hash::hash_tree_with(target, opts, progress)?;
    verify_tree(list, file, target, &tree, model)
}

/// [`verify`] on an already hashed tree; `root` is how findings name the model's files.
pub fn verify_tree(
    list: &ApprovedList,
    file: &str,
    root: &Path,
    tree: &Tree,
    model: Option<&str>,
) -> Result<Report> {
    let show = |rel: &str| -> String {
        if tree.single_file {
            root.display().to_string()
        } else {
            root.join(rel).display().to_string()
        }
    };
    let mut r = Report::new("model", Severity::High);
    r.summary.records = Some(tree.files.len() as u64);
    for f in &tree.files {
        r.subjects
            .push(Subject::sha256(show(&f.path), f.sha256.clone()));
    }
    if !list.source_sha256.is_empty() {
        r.subjects
            .push(Subject::sha256(file, list.source_sha256.clone()));
    }
    for ig in &tree.ignored {
        r.findings.push(
            Finding::new(
                &checks::APPROVED_IGNORED,
                format!("{ig}/ skipped: not model content (only top-level .git/ and .cache/huggingface/ are skipped)"),
                Location::file(show(ig)),
            )
            .evidence(json!({"path": ig})),
        );
    }
    let folder = tree.folder_digest();
    let Some((m, how)) = select(list, file, tree, model)? else {
        let ids: Vec<&str> = list.models.iter().map(|m| m.id.as_str()).collect();
        r.findings.push(
            Finding::new(
                &checks::APPROVED_NO_ENTRY,
                if ids.is_empty() {
                    format!("{file} lists no models: {} is not approved", root.display())
                } else {
                    format!(
                        "no entry of {file} matches {} ({} entries; none shares a file digest with it, or several tie): not approved; name one with --model to see the differences",
                        root.display(),
                        ids.len()
                    )
                },
                Location::file(root.display().to_string()),
            )
            .evidence(json!({"candidates": ids, "folder_digest": format!("sha256:{folder}")})),
        );
        r.finish();
        return Ok(r);
    };
    let name = entry_name(m);
    let chosen = match how {
        Chosen::Named => "--model".to_string(),
        Chosen::Only => "the list's only entry".to_string(),
        Chosen::Exact => "exact match".to_string(),
        Chosen::Closest(n) => format!("closest entry: {n} of {} files match", tree.files.len()),
    };
    let ev = |extra: serde_json::Value| {
        let mut e = json!({"model": m.id, "revision": m.revision, "chosen_by": chosen});
        if let (Some(o), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        e
    };
    let before = r.findings.len();
    let linked: BTreeSet<&str> = tree.symlinks.iter().map(|s| s.path.as_str()).collect();
    for s in &tree.symlinks {
        let approved = m.files.as_ref().is_some_and(|f| f.contains_key(&s.path));
        r.findings.push(
            Finding::new(
                &checks::APPROVED_SYMLINK,
                format!(
                    "{} is a symbolic link to {}{}; tunegate does not follow links, so its content is unverified (copy the real file into the folder)",
                    s.path,
                    s.target,
                    if approved { format!(" where {name} approves a file") } else { String::new() }
                ),
                Location::file(show(&s.path)),
            )
            .evidence(ev(json!({"path": s.path, "target": s.target}))),
        );
    }
    match &m.files {
        Some(files) => {
            let actual: BTreeMap<&str, &hash::HashedFile> =
                tree.files.iter().map(|f| (f.path.as_str(), f)).collect();
            let mut by_digest: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (p, f) in files {
                by_digest.entry(f.sha256.as_str()).or_default().push(p);
            }
            let missing: BTreeSet<&str> = files
                .keys()
                .map(String::as_str)
                .filter(|p| !actual.contains_key(p) && !linked.contains(p))
                .collect();
            for (p, want) in files {
                if let Some(got) = actual.get(p.as_str()) {
                    if got.sha256 == want.sha256 {
                        continue;
                    }
                    let other: Vec<&str> = by_digest
                        .get(got.sha256.as_str())
                        .map(|v| v.iter().copied().filter(|o| o != p).collect())
                        .unwrap_or_default();
                    let hint = if other.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; its content is the approved {} (swapped files?)",
                            other.join(", ")
                        )
                    };
                    r.findings.push(
                        Finding::new(
                            &checks::APPROVED_CHANGED,
                            format!(
                                "{p} differs from {name}: expected sha256:{}, found sha256:{}{}{hint}",
                                want.sha256,
                                got.sha256,
                                size_note(want.size, got.size)
                            ),
                            Location::file(show(p)),
                        )
                        .evidence(ev(json!({
                            "path": p,
                            "expected": format!("sha256:{}", want.sha256),
                            "actual": format!("sha256:{}", got.sha256),
                            "expected_size": want.size,
                            "actual_size": got.size,
                            "content_of": other,
                        }))),
                    );
                } else if missing.contains(p.as_str()) {
                    r.findings.push(
                        Finding::new(
                            &checks::APPROVED_MISSING,
                            format!(
                                "{p} is missing: {name} approves it with sha256:{}",
                                want.sha256
                            ),
                            Location::file(show(p)),
                        )
                        .evidence(ev(
                            json!({"path": p, "expected": format!("sha256:{}", want.sha256)}),
                        )),
                    );
                }
            }
            for f in &tree.files {
                if files.contains_key(&f.path) {
                    continue;
                }
                let same: Vec<&str> = by_digest
                    .get(f.sha256.as_str())
                    .cloned()
                    .unwrap_or_default();
                let renamed: Vec<&str> = same
                    .iter()
                    .copied()
                    .filter(|p| missing.contains(p))
                    .collect();
                let hint = if !renamed.is_empty() {
                    format!(
                        "; same content as the missing {} (renamed?)",
                        renamed.join(", ")
                    )
                } else if !same.is_empty() {
                    format!("; same content as the approved {}", same.join(", "))
                } else {
                    String::new()
                };
                r.findings.push(
                    Finding::new(
                        &checks::APPROVED_UNEXPECTED,
                        format!(
                            "{} is not in {name}'s approved files (sha256:{}, {} bytes){hint}",
                            f.path, f.sha256, f.size
                        ),
                        Location::file(show(&f.path)),
                    )
                    .evidence(ev(json!({
                        "path": f.path,
                        "actual": format!("sha256:{}", f.sha256),
                        "actual_size": f.size,
                        "same_content_as": same,
                    }))),
                );
            }
        }
        None => {
            let want = m.folder_digest.as_deref().unwrap_or_default();
            if want != folder {
                r.findings.push(
                    Finding::new(
                        &checks::APPROVED_FOLDER_DIGEST,
                        format!(
                            "folder digest differs from {name}: expected sha256:{want}, found sha256:{folder} ({} files; the entry lists no files, so the differing file cannot be named: re-approve with `tunegate model approve` to record them)",
                            tree.files.len()
                        ),
                        Location::file(root.display().to_string()),
                    )
                    .evidence(ev(json!({
                        "expected": format!("sha256:{want}"),
                        "actual": format!("sha256:{folder}"),
                    }))),
                );
            }
        }
    }
    if r.findings.len() == before {
        r.findings.push(
            Finding::new(
                &checks::APPROVED_MATCH,
                format!(
                    "{} matches approved model {name} ({} files, folder sha256:{folder}; entry chosen: {chosen})",
                    root.display(),
                    tree.files.len()
                ),
                Location::file(root.display().to_string()),
            )
            .evidence(ev(json!({"folder_digest": format!("sha256:{folder}"), "files": tree.files.len()}))),
        );
    }
    r.finish();
    Ok(r)
}
