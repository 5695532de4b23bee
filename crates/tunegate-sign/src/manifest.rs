//! The model manifest: which files a signature covers and their digests, serialized exactly as
//! OpenSSF `model_signing` does.
//!
//! Compatibility rules (each one observable by the other tool):
//! - resources are sorted by path *component* (`a/x` < `a-b/x`, `tokenizer/vocab.txt` <
//!   `tokenizer.json`), shards by integer offsets, like Python's `PurePosixPath` ordering;
//! - a single-file model has one resource named `.`;
//! - shard resources are named `path:start:end` with algorithm `sha256-sharded-N`, and empty
//!   files have no shard;
//! - the subject ("root") digest is SHA-256 over the raw per-resource digests in listed order;
//! - `.git`, `.gitattributes`, `.github`, `.gitignore` are ignored at the top level only.
use crate::error::Error;
use crate::hashing::{self, FileToHash, Plan};
use crate::statement::{ResourceDescriptor, Statement};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Predicate type of OMS signatures (model_signing v0.3 and later).
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// Predicate type of model_signing v0.2.0 signatures (one subject per file), verify only.
pub const PREDICATE_TYPE_COMPAT: &str = "https://model_signing/Digests/v0.1";
/// The default shard size of `model_signing`'s shard serialization.
pub const DEFAULT_SHARD_SIZE: u64 = 1_000_000_000;
/// Top-level paths ignored by default (`--ignore-git-paths`).
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// How a model is cut into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One resource per file (what the `model_signing` CLI produces).
    Files,
    /// One resource per fixed-size shard of every non-empty file.
    Shards(u64),
}

/// The `serialization` block of the predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serialization {
    /// Files or shards.
    pub method: Method,
    /// Per-resource hash; tunegate supports `sha256`.
    pub hash_type: String,
    /// Whether symlinked files were followed (hashed through the link).
    pub allow_symlinks: bool,
    /// Paths (relative to the model root) left out of the signature.
    pub ignore_paths: Vec<String>,
}

/// One signed resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Relative POSIX path, `.` for a single-file model, `path:start:end` for a shard.
    pub name: String,
    /// `sha256`, or `sha256-sharded-N` for shards.
    pub algorithm: String,
    /// The raw digest.
    pub digest: Vec<u8>,
}

/// A model's manifest: name, serialization parameters and resources in canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Informational model name (the subject name).
    pub model_name: String,
    /// Serialization parameters.
    pub serialization: Serialization,
    /// Resources in signed order.
    pub resources: Vec<Resource>,
}

/// Options for walking and hashing a model.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Files or shards.
    pub method: Method,
    /// Follow symlinked files instead of refusing them.
    pub allow_symlinks: bool,
    /// Paths relative to the model root to leave out (exact path or anything below it).
    pub ignore_paths: Vec<String>,
    /// Leave out the top-level git paths ([`GIT_PATHS`]).
    pub ignore_git_paths: bool,
    /// Refuse, before hashing, a walk that would produce more resources than this (a hostile
    /// signature with a 1-byte shard size must not make the verifier build billions of them).
    pub max_resources: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            method: Method::Files,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
            ignore_git_paths: true,
            max_resources: usize::MAX,
        }
    }
}

/// Why a model folder could not be walked. At signing time every kind is an input error; at
/// verification time [`WalkError::Symlink`], [`WalkError::Special`] and [`WalkError::Escape`]
/// mean the folder does not match what was signed.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// I/O or other input problem.
    #[error(transparent)]
    Input(#[from] Error),
    /// A symlink met while symlinks are not allowed, or a symlink to a directory (never
    /// followed: content under it would silently escape the signature).
    #[error("{0}")]
    Symlink(String),
    /// A fifo, socket or device.
    #[error("{0}")]
    Special(String),
    /// A resource path that leaves the model folder.
    #[error("{0}")]
    Escape(String),
    /// More resources than [`WalkOptions::max_resources`].
    #[error("{0}")]
    TooMany(String),
}

/// Orders two relative POSIX paths like Python's `PurePosixPath.__lt__`: component by
/// component.
pub fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Splits a shard name `path:start:end` at its last two colons.
pub fn parse_shard_name(name: &str) -> Option<(&str, u64, u64)> {
    let mut it = name.rsplitn(3, ':');
    let end = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    let path = it.next()?;
    Some((path, start, end))
}

/// Checks that a resource path stays inside the model folder: relative, `/`-separated, no `..`,
/// `.` or empty components, no NUL or backslash (`.` alone is the single-file model).
pub fn check_resource_path(p: &str) -> std::result::Result<(), String> {
    if p == "." {
        return Ok(());
    }
    if p.is_empty() || p.starts_with('/') || p.contains('\0') || p.contains('\\') {
        return Err(format!(
            "resource path '{p}' is not a relative POSIX path inside the model folder"
        ));
    }
    for c in p.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(format!(
                "resource path '{p}' escapes or leaves the model folder (component '{c}')"
            ));
        }
    }
    Ok(())
}

fn is_ignored(rel: &str, ignores: &[String]) -> bool {
    ignores.iter().any(|i| {
        let i = i.trim_end_matches('/');
        rel == i || (rel.len() > i.len() && rel.starts_with(i) && rel.as_bytes()[i.len()] == b'/')
    })
}

/// A file found by [`walk`].
#[derive(Debug, Clone)]
pub struct WalkedFile {
    /// Resource path (`.` for a single-file model).
    pub name: String,
    /// Where to read it.
    pub path: PathBuf,
    /// Length in bytes.
    pub len: u64,
}

/// The effective ignore list for a walk: the given paths plus the git defaults.
pub fn effective_ignores(opts: &WalkOptions) -> Vec<String> {
    let mut v: Vec<String> = opts
        .ignore_paths
        .iter()
        .map(|s| s.trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if opts.ignore_git_paths {
        v.extend(GIT_PATHS.iter().map(|s| s.to_string()));
    }
    v.sort();
    v.dedup();
    v
}

/// Lists the files of a model (a folder, or a single file) in canonical order.
pub fn walk(root: &Path, opts: &WalkOptions) -> std::result::Result<Vec<WalkedFile>, WalkError> {
    let ignores = effective_ignores(opts);
    let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    let mut out = Vec::new();
    if meta.file_type().is_symlink() && !opts.allow_symlinks {
        return Err(WalkError::Symlink(format!(
            "{} is a symlink and symlinks are not allowed",
            root.display()
        )));
    }
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.is_file() {
        out.push(WalkedFile {
            name: ".".into(),
            path: root.to_path_buf(),
            len: meta.len(),
        });
        return Ok(out);
    }
    if !meta.is_dir() {
        return Err(WalkError::Special(format!(
            "{} is neither a file nor a folder",
            root.display()
        )));
    }
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let fname = entry.file_name();
            let Some(fname) = fname.to_str() else {
                return Err(Error::Model(format!(
                    "{}: file name is not UTF-8 (cannot be named in a signature)",
                    entry.path().display()
                ))
                .into());
            };
            let rel = if prefix.is_empty() {
                fname.to_string()
            } else {
                format!("{prefix}/{fname}")
            };
            if is_ignored(&rel, &ignores) {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_symlink() {
                if !opts.allow_symlinks {
                    return Err(WalkError::Symlink(format!(
                        "'{rel}' is a symlink and symlinks are not allowed (allow_symlinks=false)"
                    )));
                }
                let m = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                if m.is_file() {
                    out.push(WalkedFile {
                        name: rel,
                        path,
                        len: m.len(),
                    });
                } else {
                    return Err(WalkError::Symlink(format!(
                        "'{rel}' is a symlink to something other than a file (symlinked folders are never followed)"
                    )));
                }
            } else if ft.is_dir() {
                stack.push((path, rel));
            } else if ft.is_file() {
                let m = entry.metadata().map_err(|e| Error::io(&path, e))?;
                out.push(WalkedFile {
                    name: rel,
                    path,
                    len: m.len(),
                });
            } else {
                return Err(WalkError::Special(format!(
                    "'{rel}' is not a regular file (fifo, socket or device)"
                )));
            }
        }
    }
    out.sort_by(|a, b| path_order(&a.name, &b.name));
    Ok(out)
}

/// The subject digest: SHA-256 over the raw resource digests in listed order.
pub fn root_digest(resources: &[Resource]) -> [u8; 32] {
    let mut h = Sha256::new();
    for r in resources {
        h.update(&r.digest);
    }
    h.finalize().into()
}

/// The subject name `model_signing` writes: the path's last component, or the resolved
/// folder's name for `.`/`..`.
pub fn model_name(root: &Path) -> String {
    match root.file_name().and_then(|n| n.to_str()) {
        Some(n) if n != ".." && n != "." => n.to_string(),
        _ => std::fs::canonicalize(root)
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
            .unwrap_or_else(|| ".".into()),
    }
}

/// Walks and hashes a model into a manifest. `signed_ignores` are recorded in the predicate
/// (the walk also applies the git defaults when asked, and records them too).
pub fn build(root: &Path, opts: &WalkOptions) -> std::result::Result<Manifest, WalkError> {
    let files = walk(root, opts)?;
    let to_hash: Vec<FileToHash> = files
        .iter()
        .map(|f| FileToHash {
            path: f.path.clone(),
            len: f.len,
        })
        .collect();
    let plan = match opts.method {
        Method::Files => Plan::WholeFiles,
        Method::Shards(n) => {
            if n == 0 {
                return Err(Error::Model("shard size must be positive".into()).into());
            }
            Plan::Shards(n)
        }
    };
    let count: u64 = match plan {
        Plan::WholeFiles => files.len() as u64,
        Plan::Shards(n) => files.iter().map(|f| f.len.div_ceil(n)).sum(),
    };
    if count > opts.max_resources as u64 {
        return Err(WalkError::TooMany(format!(
            "the folder would yield {count} resources with this serialization, more than the {} allowed",
            opts.max_resources
        )));
    }
    let digests = hashing::hash_files(&to_hash, plan)?;
    let mut resources = Vec::new();
    for (f, ds) in files.iter().zip(digests) {
        for d in ds {
            resources.push(match opts.method {
                Method::Files => Resource {
                    name: f.name.clone(),
                    algorithm: "sha256".into(),
                    digest: d.digest.to_vec(),
                },
                Method::Shards(n) => Resource {
                    name: format!("{}:{}:{}", f.name, d.start, d.end),
                    algorithm: format!("sha256-sharded-{n}"),
                    digest: d.digest.to_vec(),
                },
            });
        }
    }
    Ok(Manifest {
        model_name: model_name(root),
        serialization: Serialization {
            method: opts.method,
            hash_type: "sha256".into(),
            allow_symlinks: opts.allow_symlinks,
            ignore_paths: effective_ignores(opts),
        },
        resources,
    })
}

impl Manifest {
    /// The root digest as lowercase hex.
    pub fn root_hex(&self) -> String {
        hex::encode(root_digest(&self.resources))
    }

    /// The OMS predicate: `{"serialization": {...}, "resources": [...]}`.
    pub fn to_predicate(&self) -> Value {
        let s = &self.serialization;
        let mut ser = serde_json::Map::new();
        ser.insert(
            "method".into(),
            json!(match s.method {
                Method::Files => "files",
                Method::Shards(_) => "shards",
            }),
        );
        ser.insert("hash_type".into(), json!(s.hash_type));
        ser.insert("allow_symlinks".into(), json!(s.allow_symlinks));
        if let Method::Shards(n) = s.method {
            ser.insert("shard_size".into(), json!(n));
        }
        ser.insert("ignore_paths".into(), json!(s.ignore_paths));
        let res: Vec<Value> = self
            .resources
            .iter()
            .map(|r| json!({"name": r.name, "algorithm": r.algorithm, "digest": hex::encode(&r.digest)}))
            .collect();
        json!({"serialization": Value::Object(ser), "resources": res})
    }

    /// The in-toto statement signing this manifest.
    pub fn to_statement(&self) -> Statement {
        Statement::new(
            vec![ResourceDescriptor::sha256(
                self.model_name.clone(),
                self.root_hex(),
            )],
            PREDICATE_TYPE,
            self.to_predicate(),
        )
    }

    /// Reads a manifest back from a verified statement (OMS v1.0 or the v0.2.0 compat
    /// predicate). Checks the root digest against the subject in listed order and that every
    /// resource path stays inside the model.
    pub fn from_statement(st: &Statement) -> std::result::Result<Self, ManifestProblem> {
        use ManifestProblem as P;
        match st.predicate_type.as_str() {
            PREDICATE_TYPE => {}
            PREDICATE_TYPE_COMPAT => return Self::from_compat(st),
            other => {
                return Err(P::Unsupported(format!(
                    "predicate type '{other}' is not a model signature"
                )))
            }
        }
        if st.subject.len() != 1 {
            return Err(P::Invalid(format!(
                "expected exactly one subject, found {}",
                st.subject.len()
            )));
        }
        let subj = &st.subject[0];
        let root = subj
            .digest
            .get("sha256")
            .ok_or_else(|| P::Invalid("subject has no sha256 digest".into()))?;
        let pred = st
            .predicate
            .as_object()
            .ok_or_else(|| P::Invalid("predicate is not an object".into()))?;
        let ser = pred
            .get("serialization")
            .and_then(Value::as_object)
            .ok_or_else(|| P::Invalid("predicate has no serialization".into()))?;
        let hash_type = ser
            .get("hash_type")
            .and_then(Value::as_str)
            .unwrap_or("sha256")
            .to_string();
        if hash_type != "sha256" {
            return Err(P::Unsupported(format!(
                "hash type '{hash_type}' (tunegate verifies sha256)"
            )));
        }
        let method = match ser.get("method").and_then(Value::as_str) {
            Some("files") => Method::Files,
            Some("shards") => {
                let n = ser.get("shard_size").and_then(|v| {
                    v.as_u64().or_else(|| {
                        v.as_f64()
                            .filter(|f| f.fract() == 0.0 && *f > 0.0 && *f < 1e18)
                            .map(|f| f as u64)
                    })
                });
                match n {
                    Some(n) if n > 0 => Method::Shards(n),
                    _ => {
                        return Err(P::Invalid(
                            "shards serialization without a positive shard_size".into(),
                        ))
                    }
                }
            }
            Some(m) => return Err(P::Unsupported(format!("serialization method '{m}'"))),
            None => return Err(P::Invalid("serialization has no method".into())),
        };
        let allow_symlinks = ser
            .get("allow_symlinks")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let ignore_paths = match ser.get("ignore_paths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| P::Invalid("ignore_paths holds a non-string".into()))
                })
                .collect::<std::result::Result<_, _>>()?,
            Some(_) => return Err(P::Invalid("ignore_paths is not a list".into())),
        };
        let list = pred
            .get("resources")
            .and_then(Value::as_array)
            .ok_or_else(|| P::Invalid("predicate has no resources".into()))?;
        let mut resources = Vec::with_capacity(list.len());
        for r in list {
            let get = |k: &str| r.get(k).and_then(Value::as_str);
            let (Some(name), Some(alg), Some(dig)) = (get("name"), get("algorithm"), get("digest"))
            else {
                return Err(P::Invalid(
                    "a resource lacks name, algorithm or digest".into(),
                ));
            };
            let digest = hex::decode(dig)
                .map_err(|_| P::Invalid(format!("resource '{name}' digest is not hex")))?;
            let path = match method {
                Method::Files => name,
                Method::Shards(_) => {
                    parse_shard_name(name).map(|(p, _, _)| p).ok_or_else(|| {
                        P::Invalid(format!("shard name '{name}' is not path:start:end"))
                    })?
                }
            };
            check_resource_path(path).map_err(P::Escape)?;
            resources.push(Resource {
                name: name.to_string(),
                algorithm: alg.to_string(),
                digest,
            });
        }
        if resources.iter().any(|r| r.name == ".") && resources.len() > 1 {
            return Err(P::Invalid(
                "'.' (single-file model) listed with other resources".into(),
            ));
        }
        let got = hex::encode(root_digest(&resources));
        if !got.eq_ignore_ascii_case(root) {
            return Err(P::Inconsistent(format!(
                "the subject digest {root} is not the digest of the listed resources ({got})"
            )));
        }
        Ok(Manifest {
            model_name: subj.name.clone(),
            serialization: Serialization {
                method,
                hash_type,
                allow_symlinks,
                ignore_paths,
            },
            resources,
        })
    }

    fn from_compat(st: &Statement) -> std::result::Result<Self, ManifestProblem> {
        let mut resources = Vec::new();
        for s in &st.subject {
            let d = s.digest.get("sha256").ok_or_else(|| {
                ManifestProblem::Invalid(format!("subject '{}' has no sha256", s.name))
            })?;
            check_resource_path(&s.name).map_err(ManifestProblem::Escape)?;
            resources.push(Resource {
                name: s.name.clone(),
                algorithm: "sha256".into(),
                digest: hex::decode(d)
                    .map_err(|_| ManifestProblem::Invalid("digest is not hex".into()))?,
            });
        }
        resources.sort_by(|a, b| path_order(&a.name, &b.name));
        Ok(Manifest {
            model_name: "compat-undefined-not-present".into(),
            serialization: Serialization {
                method: Method::Files,
                hash_type: "sha256".into(),
                allow_symlinks: false,
                ignore_paths: Vec::new(),
            },
            resources,
        })
    }
}

/// What is wrong with a signed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestProblem {
    /// Structurally invalid predicate.
    Invalid(String),
    /// The root digest does not match the resources.
    Inconsistent(String),
    /// A resource path escapes the model folder.
    Escape(String),
    /// A method, hash or predicate tunegate does not verify.
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &[u8])]) {
        for (n, b) in files {
            let p = root.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        }
    }

    #[test]
    fn python_component_order_vector() {
        // Vector from the research note §6.3 (computed with Python's PurePosixPath).
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("tokenizer.json", b"A"),
                ("tokenizer/vocab.txt", b"B"),
                ("a-b/x", b"C"),
                ("a/x", b"D"),
            ],
        );
        let m = build(d.path(), &WalkOptions::default()).unwrap();
        let names: Vec<_> = m.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["a/x", "a-b/x", "tokenizer/vocab.txt", "tokenizer.json"]
        );
        assert_eq!(
            m.root_hex(),
            "647806184c48a4c806cd8147070b1504f6dee08c785c525d8bab5665b4db1183"
        );
    }

    fn sample_model_folder(root: &Path) {
        for i in 0..2 {
            for j in 0..3 {
                write(
                    root,
                    &[(
                        &format!("d{i}/f{i}{j}"),
                        format!("This is file f{i}{j} in d{i}.").as_bytes(),
                    )],
                );
            }
        }
        for i in 0..4 {
            write(
                root,
                &[(
                    &format!("f{i}"),
                    format!("This is file f{i} in root.").as_bytes(),
                )],
            );
        }
    }

    #[test]
    fn upstream_fixture_roots() {
        // Roots of model_signing's own test fixtures (research note §6.2).
        let d = tempfile::tempdir().unwrap();
        sample_model_folder(d.path());
        let m = build(d.path(), &WalkOptions::default()).unwrap();
        assert_eq!(
            m.root_hex(),
            "143cc682e555951649f18e2761c3d526d2502996f5e32dc187ef7f8a614f8df7"
        );
        let sh = build(
            d.path(),
            &WalkOptions {
                method: Method::Shards(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            sh.root_hex(),
            "2139af57fd2a4f324ac7cd0fc04898cce73d0871b363c8eb3fc07ab7da4c8445"
        );
        assert_eq!(sh.resources[0].name, "d0/f00:0:8");
        assert_eq!(sh.resources[0].algorithm, "sha256-sharded-8");
        let f = d.path().join("model");
        std::fs::write(&f, b"This is a simple model").unwrap();
        let single = build(&f, &WalkOptions::default()).unwrap();
        assert_eq!(single.resources[0].name, ".");
        assert_eq!(
            single.root_hex(),
            "002d162f867c5eee944e5080d25829b6625be0e3f081f6fbafc7dd655ca2e178"
        );
    }

    #[test]
    fn shard_offsets_sort_numerically() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[("w.bin", &[7u8; 12])]);
        let m = build(
            d.path(),
            &WalkOptions {
                method: Method::Shards(1),
                ..Default::default()
            },
        )
        .unwrap();
        let names: Vec<_> = m
            .resources
            .iter()
            .take(3)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["w.bin:0:1", "w.bin:1:2", "w.bin:2:3"]);
        assert_eq!(m.resources[11].name, "w.bin:11:12");
    }

    #[test]
    fn git_paths_ignored_only_at_top_level() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                (".gitignore", b"x"),
                (".git/HEAD", b"y"),
                ("sub/.gitignore", b"z"),
                ("w", b"w"),
            ],
        );
        let m = build(d.path(), &WalkOptions::default()).unwrap();
        let names: Vec<_> = m.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["sub/.gitignore", "w"]);
        let all = build(
            d.path(),
            &WalkOptions {
                ignore_git_paths: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.resources.len(), 4);
    }

    #[test]
    fn statement_roundtrip_and_inconsistent_root() {
        let d = tempfile::tempdir().unwrap();
        sample_model_folder(d.path());
        let m = build(
            d.path(),
            &WalkOptions {
                ignore_paths: vec!["d1".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(m.resources.iter().all(|r| !r.name.starts_with("d1/")));
        let st = m.to_statement();
        let back = Manifest::from_statement(&st).unwrap();
        assert_eq!(back, m);
        let mut bad = st.clone();
        bad.predicate["resources"][0]["digest"] = json!("00".repeat(32));
        assert!(matches!(
            Manifest::from_statement(&bad),
            Err(ManifestProblem::Inconsistent(_))
        ));
        let mut esc = st.clone();
        esc.predicate["resources"][0]["name"] = json!("../evil");
        assert!(matches!(
            Manifest::from_statement(&esc),
            Err(ManifestProblem::Escape(_))
        ));
        let mut float = build(
            d.path(),
            &WalkOptions {
                method: Method::Shards(8),
                ..Default::default()
            },
        )
        .unwrap()
        .to_statement();
        float.predicate["serialization"]["shard_size"] = json!(8.0);
        assert_eq!(
            Manifest::from_statement(&float)
                .unwrap()
                .serialization
                .method,
            Method::Shards(8)
        );
    }

    #[test]
    fn resource_paths() {
        for ok in [".", "a", "a/b.c", "a b/c:d"] {
            assert!(check_resource_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
        ] {
            assert!(check_resource_path(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_shard_name("a:b:0:8"), Some(("a:b", 0, 8)));
    }
}
