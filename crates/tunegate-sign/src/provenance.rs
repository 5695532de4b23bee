//! SLSA Provenance v1 for training runs (`tunegate run`), and the checks `tunegate attest verify`
//! makes against it.
//!
//! The statement is an in-toto Statement v1 ([`crate::statement`]) with predicate type
//! [`PREDICATE_TYPE`], signed through the same DSSE + Sigstore-bundle path as model signatures
//! ([`crate::sign::sign_statement`]). Layout:
//! - `subject`: one descriptor per output file (relative path, sha256; annotation
//!   `tunegate.role = output`), plus one for the output folder as a whole whose sha256 is the
//!   model-signing root digest (annotation `tunegate.role = output-root`, name `<folder>/`);
//! - `buildDefinition.buildType` = [`BUILD_TYPE`]; `externalParameters` = the command line, the
//!   working directory and the hyperparameters; `internalParameters` = the tunegate version, the
//!   dataset-lock state (drift, `--allow-drift`), git state and environment facts;
//! - `resolvedDependencies`: the dataset files from the lock (role `dataset`), the lock itself
//!   (`dataset-lock`), the base-model files (`base-model`) and folder digest
//!   (`base-model-folder`), the code commit as `git+URI@SHA` (`source`), the container image
//!   (`container-image`) and the hyperparameter file (`hparams`);
//! - `runDetails`: builder id [`BUILDER_ID`], `metadata{invocationId, startedOn, finishedOn}`,
//!   `byproducts`: the stdout/stderr logs (role `log`) and the exit status (role `exit-status`,
//!   inline JSON content plus annotations).
//!
//! Every role lives in the descriptor's `annotations["tunegate.role"]`, so verifiers find
//! materials by role, never by position.
use crate::checks;
use crate::manifest::{self, Manifest, Method, Resource, Serialization, WalkError, WalkOptions};
use crate::statement::Statement;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use tunegate_core::{Finding, Location};

/// SLSA Provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type of `tunegate run` (what the external and internal parameters mean).
pub const BUILD_TYPE: &str = "https://tunegate.dev/attestation/run/v1";
/// The builder id: a local `tunegate run` wrapping a trainer command.
pub const BUILDER_ID: &str = "https://tunegate.dev/builder/tunegate-run/v1";
/// The annotation key holding a descriptor's role.
pub const ROLE: &str = "tunegate.role";

/// A file and its sha256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Relative `/`-separated path.
    pub path: String,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// The dataset as locked and verified before the run.
#[derive(Debug, Clone)]
pub struct DatasetRecord {
    /// The lock file as given.
    pub lock_path: String,
    /// sha256 of the lock file's bytes.
    pub lock_sha256: String,
    /// The lock's content digest (`lineage.digest`).
    pub content_digest: String,
    /// The locked files (paths as in the lock).
    pub files: Vec<FileDigest>,
    /// Drift found at start (one line per finding); empty when the data matched the lock.
    pub drift: Vec<String>,
    /// Whether `--allow-drift` let the run start despite drift.
    pub allow_drift: bool,
}

/// The base model as hashed before the run.
#[derive(Debug, Clone)]
pub struct BaseRecord {
    /// The folder or file as given.
    pub path: String,
    /// The tunegate folder digest (`tunegate model fingerprint`).
    pub folder_digest: String,
    /// Its files.
    pub files: Vec<FileDigest>,
}

/// The training code's git state.
#[derive(Debug, Clone, Default)]
pub struct GitRecord {
    /// The commit, when known.
    pub commit: Option<String>,
    /// Whether the working tree had changes; `None` when unknown.
    pub dirty: Option<bool>,
    /// The remote URL (or the repository path) used in the `git+` URI.
    pub uri: Option<String>,
    /// How the state was read (`git`, `.git/HEAD`, or why it is unknown).
    pub how: String,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit code when it exited.
    pub code: Option<i32>,
    /// Signal number when it was killed.
    pub signal: Option<i32>,
}

impl ExitRecord {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0) && self.signal.is_none()
    }
}

/// A log file (byproduct).
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Its name (`stdout.log`).
    pub name: String,
    /// Where it was written.
    pub uri: String,
    /// sha256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// Everything `tunegate run` recorded.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The trainer argv.
    pub command: Vec<String>,
    /// The working directory.
    pub working_directory: String,
    /// Hyperparameters: `{path, sha256, values}`, when a file was named.
    pub hparams: Option<Value>,
    /// The dataset lock, when there was one.
    pub dataset: Option<DatasetRecord>,
    /// The base model, when given.
    pub base: Option<BaseRecord>,
    /// Git state of the working directory.
    pub git: GitRecord,
    /// Container image digest (`sha256:…`), when given.
    pub image_digest: Option<String>,
    /// Environment facts (OS, CPU, memory, GPUs, packages).
    pub environment: Value,
    /// Unique id of this run.
    pub invocation_id: String,
    /// RFC 3339 start.
    pub started_on: String,
    /// RFC 3339 end.
    pub finished_on: String,
    /// How the command ended.
    pub exit: ExitRecord,
    /// The output folder's name (subject of the root digest).
    pub output_name: String,
    /// The output folder's manifest (files method), if it had files.
    pub outputs: Option<Manifest>,
    /// Logs.
    pub logs: Vec<LogRecord>,
    /// tunegate version.
    pub tunegate_version: String,
}

fn role_desc(mut d: Map<String, Value>, role: &str) -> Value {
    let mut ann = Map::new();
    ann.insert(ROLE.into(), json!(role));
    if let Some(Value::Object(extra)) = d.remove("annotations") {
        ann.extend(extra);
    }
    d.insert("annotations".into(), Value::Object(ann));
    Value::Object(d)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A fresh random invocation id (UUID v4 text).
pub fn new_invocation_id() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Builds the provenance statement of a run.
pub fn statement(r: &RunRecord) -> Statement {
    let mut subject = Vec::new();
    if let Some(m) = &r.outputs {
        for res in &m.resources {
            subject.push(crate::statement::ResourceDescriptor {
                name: res.name.clone(),
                digest: BTreeMap::from([("sha256".to_string(), hex::encode(&res.digest))]),
                annotations: Some(obj(json!({ROLE: "output"}))),
                ..Default::default()
            });
        }
        subject.push(crate::statement::ResourceDescriptor {
            name: format!("{}/", r.output_name),
            digest: BTreeMap::from([("sha256".to_string(), m.root_hex())]),
            annotations: Some(obj(json!({
                ROLE: "output-root",
                "tunegate.digest": "model-signing root: sha256 over the per-file sha256 digests in model-signing path order",
            }))),
            ..Default::default()
        });
    } else {
        // Nothing was written: the statement is then about the run's logs (a subject list
        // must not be empty), and verification against any output folder reports it.
        for l in &r.logs {
            subject.push(crate::statement::ResourceDescriptor {
                name: l.name.clone(),
                digest: BTreeMap::from([("sha256".to_string(), l.sha256.clone())]),
                annotations: Some(obj(json!({ROLE: "log"}))),
                ..Default::default()
            });
        }
    }

    let mut deps: Vec<Value> = Vec::new();
    if let Some(d) = &r.dataset {
        for f in &d.files {
            deps.push(role_desc(
                obj(json!({"name": f.path, "digest": {"sha256": f.sha256}})),
                "dataset",
            ));
        }
        deps.push(role_desc(
            obj(
                json!({"name": d.lock_path, "digest": {"sha256": d.lock_sha256},
                "annotations": {"tunegate.lockDigest": d.content_digest}}),
            ),
            "dataset-lock",
        ));
    }
    if let Some(b) = &r.base {
        for f in &b.files {
            deps.push(role_desc(
                obj(json!({"name": f.path, "digest": {"sha256": f.sha256}})),
                "base-model",
            ));
        }
        deps.push(role_desc(
            obj(json!({"name": b.path, "digest": {"sha256": b.folder_digest},
                "annotations": {"tunegate.digest": "tunegate folder digest (tunegate model fingerprint)"}})),
            "base-model-folder",
        ));
    }
    if let Some(c) = &r.git.commit {
        let uri = r
            .git
            .uri
            .clone()
            .unwrap_or_else(|| r.working_directory.clone());
        let mut d = obj(json!({"uri": format!("git+{uri}@{c}"), "digest": {"gitCommit": c}}));
        if let Some(dirty) = r.git.dirty {
            d.insert("annotations".into(), json!({"tunegate.dirty": dirty}));
        }
        deps.push(role_desc(d, "source"));
    }
    if let Some(img) = &r.image_digest {
        let (alg, hexd) = img.split_once(':').unwrap_or(("sha256", img.as_str()));
        deps.push(role_desc(
            obj(json!({"name": "container-image", "digest": {alg: hexd}})),
            "container-image",
        ));
    }
    if let Some(h) = &r.hparams {
        if let (Some(p), Some(s)) = (
            h.get("path").and_then(Value::as_str),
            h.get("sha256").and_then(Value::as_str),
        ) {
            deps.push(role_desc(
                obj(json!({"name": p, "digest": {"sha256": s}})),
                "hparams",
            ));
        }
    }

    let mut external = Map::new();
    external.insert("command".into(), json!(r.command));
    external.insert("workingDirectory".into(), json!(r.working_directory));
    if let Some(h) = &r.hparams {
        external.insert("hparams".into(), h.clone());
    }
    let dataset_params = match &r.dataset {
        Some(d) => json!({"lock": d.lock_path, "lockDigest": d.content_digest,
            "driftAtStart": d.drift, "allowDrift": d.allow_drift}),
        None => json!({"lock": null}),
    };
    let internal = json!({
        "tunegateVersion": r.tunegate_version,
        "dataset": dataset_params,
        "git": {
            "commit": r.git.commit.clone().unwrap_or_else(|| "unknown".into()),
            "dirty": match r.git.dirty { Some(d) => json!(d), None => json!("unknown") },
            "how": r.git.how,
        },
        "environment": r.environment,
    });

    let mut byproducts: Vec<Value> = r
        .logs
        .iter()
        .map(|l| {
            role_desc(
                obj(
                    json!({"name": l.name, "uri": l.uri, "digest": {"sha256": l.sha256},
                    "annotations": {"tunegate.size": l.size}}),
                ),
                "log",
            )
        })
        .collect();
    let exit = json!({"code": r.exit.code, "signal": r.exit.signal, "success": r.exit.success()});
    byproducts.push(role_desc(
        obj(json!({
            "name": "exit-status",
            "mediaType": "application/json",
            "content": base64::engine::general_purpose::STANDARD.encode(exit.to_string()),
            "annotations": {"tunegate.exitCode": r.exit.code, "tunegate.signal": r.exit.signal,
                "tunegate.success": r.exit.success()},
        })),
        "exit-status",
    ));

    let predicate = json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": {"tunegate": r.tunegate_version}},
            "metadata": {
                "invocationId": r.invocation_id,
                "startedOn": r.started_on,
                "finishedOn": r.finished_on,
            },
            "byproducts": byproducts,
        },
    });
    Statement::new(subject, PREDICATE_TYPE, predicate)
}

/// Adds a resolved dependency `{name, digest: {sha256}}` with `role` to a statement made by
/// [`statement`]: materials a built-in trainer knows beyond the [`RunRecord`] fields (e.g.
/// `tunegate train`'s data files when no lock names them, role `dataset`).
pub fn add_dependency(st: &mut Statement, role: &str, name: &str, sha256: &str) {
    let d = role_desc(
        obj(json!({"name": name, "digest": {"sha256": sha256}})),
        role,
    );
    if let Some(deps) = st
        .predicate
        .pointer_mut("/buildDefinition/resolvedDependencies")
        .and_then(Value::as_array_mut)
    {
        deps.push(d);
    }
}

/// Sets `buildDefinition.internalParameters[key]` of a statement made by [`statement`] (e.g.
/// `tunegate train`'s results: metrics, ε and δ).
pub fn set_internal_parameter(st: &mut Statement, key: &str, value: Value) {
    if let Some(Value::Object(ip)) = st
        .predicate
        .pointer_mut("/buildDefinition/internalParameters")
    {
        ip.insert(key.to_string(), value);
    }
}

/// A descriptor from the statement, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Name (or URI for sources).
    pub name: String,
    /// sha256 (or gitCommit for sources).
    pub digest: String,
}

/// What a provenance statement records, read back for verification.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Output files (path, sha256).
    pub outputs: Vec<Material>,
    /// Whether the subjects are outputs (false: the run wrote nothing, the subjects are logs).
    pub has_outputs: bool,
    /// Dataset files.
    pub dataset: Vec<Material>,
    /// The lock file, if any.
    pub lock: Option<Material>,
    /// Base-model files.
    pub base: Vec<Material>,
    /// The base-model folder digest, if any.
    pub base_folder: Option<Material>,
    /// Exit code / signal / success.
    pub exit: (Option<i64>, Option<i64>, bool),
    /// Git dirty: Some(true/false) or None for unknown.
    pub dirty: Option<bool>,
    /// Git commit, when known.
    pub commit: Option<String>,
    /// Whether drift was allowed at start, with the drift lines.
    pub drift_allowed: Option<Vec<String>>,
    /// The command line.
    pub command: Vec<String>,
    /// Invocation id.
    pub invocation_id: String,
}

fn role_of(d: &Value) -> &str {
    d.get("annotations")
        .and_then(|a| a.get(ROLE))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn material(d: &Value, alg: &str) -> Option<Material> {
    let name = d
        .get("name")
        .or_else(|| d.get("uri"))
        .and_then(Value::as_str)?;
    let digest = d.get("digest")?.get(alg)?.as_str()?;
    Some(Material {
        name: name.to_string(),
        digest: digest.to_ascii_lowercase(),
    })
}

impl Recorded {
    /// Reads a verified statement; `Err` says why it is not a tunegate run provenance.
    pub fn from_statement(st: &Statement) -> Result<Self, String> {
        if st.predicate_type != PREDICATE_TYPE {
            return Err(format!(
                "predicate type '{}' is not {PREDICATE_TYPE}",
                st.predicate_type
            ));
        }
        let p = &st.predicate;
        let bd = p
            .get("buildDefinition")
            .ok_or("the predicate has no buildDefinition")?;
        let bt = bd.get("buildType").and_then(Value::as_str).unwrap_or("");
        if bt != BUILD_TYPE {
            return Err(format!("build type '{bt}' is not {BUILD_TYPE}"));
        }
        let rd = p
            .get("runDetails")
            .ok_or("the predicate has no runDetails")?;
        let deps = bd
            .get("resolvedDependencies")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let by_role = |role: &str, alg: &str| -> Result<Vec<Material>, String> {
            deps.iter()
                .filter(|d| role_of(d) == role)
                .map(|d| {
                    material(d, alg)
                        .ok_or_else(|| format!("a '{role}' dependency has no name or {alg} digest"))
                })
                .collect()
        };
        let mut outputs = Vec::new();
        let mut has_outputs = false;
        for s in &st.subject {
            let role = s
                .annotations
                .as_ref()
                .and_then(|a| a.get(ROLE))
                .and_then(Value::as_str)
                .unwrap_or("");
            match role {
                "output" => {
                    has_outputs = true;
                    let d = s
                        .digest
                        .get("sha256")
                        .ok_or_else(|| format!("subject '{}' has no sha256 digest", s.name))?;
                    outputs.push(Material {
                        name: s.name.clone(),
                        digest: d.to_ascii_lowercase(),
                    });
                }
                "output-root" => has_outputs = true,
                "log" => {}
                other => return Err(format!("subject '{}' has unknown role '{other}'", s.name)),
            }
        }
        let exit = rd
            .get("byproducts")
            .and_then(Value::as_array)
            .and_then(|b| b.iter().find(|d| role_of(d) == "exit-status"))
            .and_then(|d| d.get("annotations"))
            .ok_or("runDetails.byproducts records no exit status")?;
        let exit = (
            exit.get("tunegate.exitCode").and_then(Value::as_i64),
            exit.get("tunegate.signal").and_then(Value::as_i64),
            exit.get("tunegate.success")
                .and_then(Value::as_bool)
                .ok_or("the exit status has no success flag")?,
        );
        let ip = bd.get("internalParameters").cloned().unwrap_or(Value::Null);
        let git = ip.get("git").cloned().unwrap_or(Value::Null);
        let dirty = git.get("dirty").and_then(Value::as_bool);
        let commit = git
            .get("commit")
            .and_then(Value::as_str)
            .filter(|c| *c != "unknown")
            .map(String::from);
        let ds = ip.get("dataset").cloned().unwrap_or(Value::Null);
        let drift_allowed = if ds.get("allowDrift").and_then(Value::as_bool) == Some(true) {
            let lines: Vec<String> = ds
                .get("driftAtStart")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            if lines.is_empty() {
                None
            } else {
                Some(lines)
            }
        } else {
            None
        };
        let command = bd
            .get("externalParameters")
            .and_then(|e| e.get("command"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Recorded {
            outputs,
            has_outputs,
            dataset: by_role("dataset", "sha256")?,
            lock: by_role("dataset-lock", "sha256")?.into_iter().next(),
            base: by_role("base-model", "sha256")?,
            base_folder: by_role("base-model-folder", "sha256")?.into_iter().next(),
            exit,
            dirty,
            commit,
            drift_allowed,
            command,
            invocation_id: rd
                .get("metadata")
                .and_then(|m| m.get("invocationId"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }
}

/// The output folder's manifest as `tunegate run` records it: model-signing `files` method,
/// top-level git paths ignored, symlinks refused.
pub fn output_manifest(dir: &Path) -> Result<Manifest, WalkError> {
    manifest::build(dir, &WalkOptions::default())
}

fn to_manifest(name: &str, files: &[Material]) -> Manifest {
    Manifest {
        model_name: name.to_string(),
        serialization: Serialization {
            method: Method::Files,
            hash_type: "sha256".into(),
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        },
        resources: files
            .iter()
            .map(|m| Resource {
                name: m.name.clone(),
                algorithm: "sha256".into(),
                digest: hex::decode(&m.digest).unwrap_or_default(),
            })
            .collect(),
    }
}

/// Compares the artifact folder with the recorded output subjects. `Err` is an input error
/// (unreadable folder); a mismatch is a finding.
pub fn check_outputs(rec: &Recorded, dir: &Path) -> Result<Vec<Finding>, crate::Error> {
    let loc = Location::file(dir.display().to_string());
    let local = match std::fs::symlink_metadata(dir) {
        Err(e) => return Err(crate::Error::io(dir, e)),
        Ok(_) => match output_manifest(dir) {
            Ok(m) => m,
            Err(WalkError::Input(e)) => return Err(e),
            Err(e) => {
                return Ok(vec![Finding::new(
                    &checks::PROV_SUBJECT_MISMATCH,
                    format!("{}: {e}", dir.display()),
                    loc,
                )])
            }
        },
    };
    if !rec.has_outputs {
        return Ok(vec![Finding::new(
            &checks::PROV_SUBJECT_MISMATCH,
            format!(
                "the run recorded no output files, but {} is given as its artifact ({} file(s))",
                dir.display(),
                local.resources.len()
            ),
            loc,
        )]);
    }
    let signed = to_manifest("provenance", &rec.outputs);
    match crate::verify::compare(&signed, &local, false) {
        Ok(_) => Ok(Vec::new()),
        Err(f) => Ok(vec![Finding::new(
            &checks::PROV_SUBJECT_MISMATCH,
            format!(
                "{} does not match the provenance subjects: {}",
                dir.display(),
                f.reason
            ),
            loc,
        )
        .evidence(json!({"differences": f.details, "reason_check": f.check.id}))]),
    }
}

/// Compares two sets of (path, sha256): the lines naming what differs (changed, only in
/// `reference` = "not used by the run", only in `recorded` = "not in the reference").
pub fn diff_materials(recorded: &[Material], reference: &[FileDigest]) -> Vec<String> {
    let rec: BTreeMap<&str, &str> = recorded
        .iter()
        .map(|m| (m.name.as_str(), m.digest.as_str()))
        .collect();
    let refm: BTreeMap<&str, &str> = reference
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    let mut out = Vec::new();
    for (p, d) in &refm {
        match rec.get(p) {
            None => out.push(format!("approved but not recorded by the run: {p}")),
            Some(r) if !r.eq_ignore_ascii_case(d) => out.push(format!(
                "changed: {p} (run sha256 {r}, approved sha256 {d})"
            )),
            Some(_) => {}
        }
    }
    for p in rec.keys() {
        if !refm.contains_key(p) {
            out.push(format!("recorded by the run but not approved: {p}"));
        }
    }
    out
}

/// Findings about the run itself: failure, dirty tree, drift allowed.
pub fn run_findings(rec: &Recorded, provenance: &str) -> Vec<Finding> {
    let loc = || Location::file(provenance.to_string());
    let mut v = Vec::new();
    if !rec.exit.2 {
        let how = match (rec.exit.0, rec.exit.1) {
            (_, Some(s)) => format!("was killed by signal {s}"),
            (Some(c), None) => format!("exited with status {c}"),
            (None, None) => "did not finish".to_string(),
        };
        v.push(
            Finding::new(
                &checks::PROV_RUN_FAILED,
                format!("the training command {how}: `{}`", rec.command.join(" ")),
                loc(),
            )
            .evidence(json!({"exitCode": rec.exit.0, "signal": rec.exit.1})),
        );
    }
    match rec.dirty {
        Some(false) => {}
        Some(true) => v.push(Finding::new(
            &checks::PROV_DIRTY_TREE,
            format!(
                "the code's git working tree had uncommitted changes at commit {}",
                rec.commit.as_deref().unwrap_or("unknown")
            ),
            loc(),
        )),
        None => v.push(Finding::new(
            &checks::PROV_DIRTY_TREE,
            format!(
                "the code's git state was unknown at run time (commit {}): the code that ran is not pinned",
                rec.commit.as_deref().unwrap_or("unknown")
            ),
            loc(),
        )),
    }
    if let Some(lines) = &rec.drift_allowed {
        v.push(
            Finding::new(
                &checks::PROV_DRIFT_ALLOWED,
                format!(
                    "the run started with --allow-drift while the dataset differed from its lock ({} difference(s)): {}",
                    lines.len(),
                    lines.first().map(String::as_str).unwrap_or("")
                ),
                loc(),
            )
            .evidence(json!({"drift": lines})),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outputs: Option<Manifest>) -> RunRecord {
        RunRecord {
            command: vec!["python".into(), "train.py".into()],
            working_directory: "/w".into(),
            hparams: Some(
                json!({"path": "hp.json", "sha256": "ab".repeat(32), "values": {"lr": 0.1}}),
            ),
            dataset: Some(DatasetRecord {
                lock_path: "tunegate.lock".into(),
                lock_sha256: "cd".repeat(32),
                content_digest: "ef".repeat(32),
                files: vec![FileDigest {
                    path: "data/train.jsonl".into(),
                    sha256: "01".repeat(32),
                }],
                drift: vec!["D021 changed".into()],
                allow_drift: true,
            }),
            base: Some(BaseRecord {
                path: "base".into(),
                folder_digest: "02".repeat(32),
                files: vec![FileDigest {
                    path: "model.safetensors".into(),
                    sha256: "03".repeat(32),
                }],
            }),
            git: GitRecord {
                commit: Some("a".repeat(40)),
                dirty: Some(true),
                uri: Some("https://example.invalid/r.git".into()),
                how: "git".into(),
            },
            image_digest: Some(format!("sha256:{}", "04".repeat(32))),
            environment: json!({"os": "linux"}),
            invocation_id: new_invocation_id(),
            started_on: "2026-01-01T00:00:00Z".into(),
            finished_on: "2026-01-01T00:01:00Z".into(),
            exit: ExitRecord {
                code: Some(3),
                signal: None,
            },
            output_name: "out".into(),
            outputs,
            logs: vec![LogRecord {
                name: "stdout.log".into(),
                uri: "out.logs/stdout.log".into(),
                sha256: "05".repeat(32),
                size: 9,
            }],
            tunegate_version: "0.1.0".into(),
        }
    }

    #[test]
    fn statement_roundtrips_through_recorded() {
        let m = Manifest {
            model_name: "out".into(),
            serialization: Serialization {
                method: Method::Files,
                hash_type: "sha256".into(),
                allow_symlinks: false,
                ignore_paths: vec![],
            },
            resources: vec![Resource {
                name: "adapter.bin".into(),
                algorithm: "sha256".into(),
                digest: vec![7; 32],
            }],
        };
        let st = statement(&record(Some(m.clone())));
        let back = Statement::from_payload(&st.to_payload()).unwrap();
        assert_eq!(back.subject.len(), 2);
        assert_eq!(back.subject[1].digest["sha256"], m.root_hex());
        let r = Recorded::from_statement(&back).unwrap();
        assert!(r.has_outputs);
        assert_eq!(r.outputs[0].digest, "07".repeat(32));
        assert_eq!(r.dataset.len(), 1);
        assert_eq!(r.base.len(), 1);
        assert_eq!(r.base_folder.as_ref().unwrap().digest, "02".repeat(32));
        assert_eq!(r.exit, (Some(3), None, false));
        assert_eq!(r.dirty, Some(true));
        assert_eq!(r.drift_allowed.as_ref().unwrap().len(), 1);
        let ids: Vec<String> = run_findings(&r, "p.json")
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, ["S045", "S046", "S047"]);
        let src = back.predicate["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| role_of(d) == "source")
            .unwrap();
        assert_eq!(
            src["uri"],
            format!("git+https://example.invalid/r.git@{}", "a".repeat(40))
        );
    }

    #[test]
    fn no_outputs_means_log_subjects() {
        let st = statement(&record(None));
        assert_eq!(st.subject.len(), 1);
        let r = Recorded::from_statement(&st).unwrap();
        assert!(!r.has_outputs);
    }

    #[test]
    fn foreign_statements_are_refused() {
        let mut st = statement(&record(None));
        st.predicate["buildDefinition"]["buildType"] = json!("https://other/v1");
        assert!(Recorded::from_statement(&st)
            .unwrap_err()
            .contains("build type"));
        st.predicate_type = "https://slsa.dev/provenance/v0.2".into();
        assert!(Recorded::from_statement(&st).is_err());
    }

    #[test]
    fn material_diff_names_each_difference() {
        let rec = vec![
            Material {
                name: "a".into(),
                digest: "11".into(),
            },
            Material {
                name: "b".into(),
                digest: "22".into(),
            },
        ];
        let reference = vec![
            FileDigest {
                path: "a".into(),
                sha256: "11".into(),
            },
            FileDigest {
                path: "b".into(),
                sha256: "33".into(),
            },
            FileDigest {
                path: "c".into(),
                sha256: "44".into(),
            },
        ];
        let d = diff_materials(&rec, &reference);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("changed: b"));
        assert!(d[1].contains("not recorded by the run: c"));
        assert!(diff_materials(&rec, &reference[..1])[0].contains("not approved: b"));
    }
}
