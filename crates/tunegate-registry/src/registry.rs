//! Registry operations: who may do what, and each change with its audit entry in one
//! transaction.
use crate::audit;
use crate::error::{Error, Result};
use crate::eval::{evaluate, Evaluation};
use crate::policy::Policy;
use crate::store::{Approval, AuditEntry, Evidence, Principal, Store, Txn, Version};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tunegate_sign::manifest::{self, WalkError, WalkOptions};

/// Roles a principal can hold.
pub const ROLES: &[&str] = &["trainer", "security-approver", "admin"];

/// Largest evidence file accepted.
pub const MAX_EVIDENCE_BYTES: u64 = 16 << 20;

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Principal name.
    pub name: String,
    /// Its role.
    pub role: String,
}

/// The registry: a store and a policy.
pub struct Registry {
    store: Box<dyn Store>,
    /// The promotion policy.
    pub policy: Policy,
}

/// An evidence file to attach: path and optional kind hint (`base=FILE`).
#[derive(Debug, Clone)]
pub struct EvidenceFile {
    /// The bundle file.
    pub path: PathBuf,
    /// Kind the user named, if any.
    pub hint: Option<String>,
}

impl EvidenceFile {
    /// Parses `FILE` or `KIND=FILE` (KIND one of the evidence kinds).
    pub fn parse(s: &str) -> Self {
        if let Some((k, p)) = s.split_once('=') {
            if crate::policy::KINDS.contains(&k) {
                return EvidenceFile {
                    path: p.into(),
                    hint: Some(k.into()),
                };
            }
        }
        EvidenceFile {
            path: s.into(),
            hint: None,
        }
    }

    fn load(&self, by: &str) -> Result<Evidence> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if meta.len() > MAX_EVIDENCE_BYTES {
            return Err(Error::Input(format!(
                "{}: {} bytes is larger than any evidence bundle (16 MiB limit)",
                self.path.display(),
                meta.len()
            )));
        }
        let body = std::fs::read(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        evidence_from_bytes(&name, self.hint.clone(), body, by)
            .map_err(|e| Error::Input(format!("{}: {e}", self.path.display())))
    }
}

/// Evidence from uploaded bytes: must parse as a Sigstore bundle (verification happens at
/// every evaluation).
pub fn evidence_from_bytes(
    name: &str,
    hint: Option<String>,
    body: Vec<u8>,
    by: &str,
) -> Result<Evidence> {
    if body.len() as u64 > MAX_EVIDENCE_BYTES {
        return Err(Error::Input(format!(
            "{name}: larger than any evidence bundle (16 MiB limit)"
        )));
    }
    if let Some(h) = &hint {
        if !crate::policy::KINDS.contains(&h.as_str()) {
            return Err(Error::Input(format!("unknown evidence kind '{h}'")));
        }
    }
    if let Err(e) = tunegate_sign::bundle::Bundle::parse(&body) {
        return Err(Error::Input(format!("{name}: {e}")));
    }
    Ok(Evidence {
        id: 0,
        name: name.to_string(),
        hint,
        sha256: hex::encode(Sha256::digest(&body)),
        body,
        attached_by: by.into(),
        attached_at: crate::time::now(),
    })
}

/// Hashes a token for storage and lookup.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_name(model: &str) -> Result<()> {
    let ok = !model.is_empty()
        && model.len() <= 128
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && !model.starts_with(['.', '/']);
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "model name '{model}' must be 1-128 characters of letters, digits, '.', '_', '-', '/'"
        )))
    }
}

fn require_role(actor: &Actor, roles: &[&str], what: &str) -> Result<()> {
    if roles.contains(&actor.role.as_str()) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "{} ({}) may not {what}; that needs the role {}",
            actor.name,
            actor.role,
            roles.join(" or ")
        )))
    }
}

/// Digests of a model or input path: (root, per-file (name, sha256)).
pub fn digest_path(path: &Path) -> Result<(String, Vec<(String, String)>)> {
    let m = manifest::build(path, &WalkOptions::default()).map_err(|e| match e {
        WalkError::Input(e) => Error::Sign(e),
        WalkError::Symlink(m)
        | WalkError::Special(m)
        | WalkError::Escape(m)
        | WalkError::TooMany(m) => Error::Input(format!("{}: {m}", path.display())),
    })?;
    if m.resources.is_empty() {
        return Err(Error::Input(format!(
            "{}: no files to register",
            path.display()
        )));
    }
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = m
        .resources
        .iter()
        .map(|r| {
            let name = if r.name == "." {
                base.clone()
            } else {
                r.name.clone()
            };
            (name, hex::encode(&r.digest))
        })
        .collect();
    Ok((m.root_hex(), files))
}

fn get_version(t: &mut dyn Txn, model: &str, version: i64) -> Result<Version> {
    t.version(model, version)?
        .ok_or_else(|| Error::Input(format!("no version {model}@{version} in the registry")))
}

impl Registry {
    /// A registry over `store` with `policy`.
    pub fn new(store: Box<dyn Store>, policy: Policy) -> Self {
        Registry { store, policy }
    }

    /// Opens the store the policy names: PostgreSQL when `store_url` is set, else the SQLite
    /// file.
    pub fn open(policy: Policy) -> Result<Self> {
        let s: Box<dyn Store> = match &policy.store_url {
            Some(url) => Box::new(crate::pg::PgStore::connect(url)?),
            None => Box::new(crate::sqlite::SqliteStore::open(&policy.store)?),
        };
        Ok(Self::new(s, policy))
    }

    /// The local OS user as an actor: its principal's role if registered; `admin` while no
    /// principal exists at all (a single-user registry); refused otherwise.
    pub fn local_actor(&self, user: &str) -> Result<Actor> {
        let mut out = None;
        self.store.read(&mut |t| {
            out = Some((t.principal(user)?, t.principals()?.is_empty()));
            Ok(())
        })?;
        match out {
            Some((Some(p), _)) => Ok(Actor {
                name: p.name,
                role: p.role,
            }),
            Some((None, true)) => Ok(Actor {
                name: user.into(),
                role: "admin".into(),
            }),
            _ => Err(Error::Forbidden(format!(
                "local user '{user}' is not a registered principal; use --as NAME with its token"
            ))),
        }
    }

    /// Authenticates a principal by name (if given) and token.
    pub fn authenticate(&self, name: Option<&str>, token: &str) -> Result<Actor> {
        let h = token_hash(token);
        let mut found = None;
        self.store.read(&mut |t| {
            found = t.principals()?.into_iter().find(|p| {
                p.token_sha256.as_deref() == Some(h.as_str()) && name.is_none_or(|n| n == p.name)
            });
            Ok(())
        })?;
        found
            .map(|p| Actor {
                name: p.name,
                role: p.role,
            })
            .ok_or_else(|| Error::Unauthenticated("unknown principal or wrong token".into()))
    }

    /// Creates or updates a principal and returns its new API token (shown once; only its hash
    /// is stored).
    pub fn add_principal(&self, actor: &Actor, name: &str, role: &str) -> Result<String> {
        require_role(actor, &["admin"], "manage principals")?;
        if !ROLES.contains(&role) {
            return Err(Error::Input(format!(
                "unknown role '{role}' (roles: {})",
                ROLES.join(", ")
            )));
        }
        check_name(name)?;
        let mut raw = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let token = format!("tgr_{}", hex::encode(raw));
        let p = Principal {
            name: name.into(),
            role: role.into(),
            token_sha256: Some(token_hash(&token)),
        };
        self.store.write(&mut |t| {
            t.put_principal(&p)?;
            audit::append(
                t,
                &actor.name,
                "principal",
                "",
                0,
                json!({"name": name, "role": role}),
            )?;
            Ok(())
        })?;
        Ok(token)
    }

    /// Registers a new version of `model` from `path`; returns it.
    pub fn add(
        &self,
        actor: &Actor,
        model: &str,
        path: &Path,
        inputs: &[PathBuf],
        evidence: &[EvidenceFile],
    ) -> Result<Version> {
        require_role(actor, &["trainer", "admin"], "register versions")?;
        check_name(model)?;
        let (root, files) = digest_path(path)?;
        let mut ins = Vec::new();
        for p in inputs {
            let (r, fs) = digest_path(p)?;
            let base = p.display().to_string();
            ins.push((base.clone(), r));
            for (n, d) in fs {
                ins.push((format!("{base}/{n}"), d));
            }
        }
        let ev: Vec<Evidence> = evidence
            .iter()
            .map(|e| e.load(&actor.name))
            .collect::<Result<_>>()?;
        let mut out = None;
        self.store.write(&mut |t| {
            let v = Version {
                model: model.into(),
                version: t.max_version(model)? + 1,
                path: path.display().to_string(),
                root: root.clone(),
                files: files.clone(),
                inputs: ins.clone(),
                stage: "none".into(),
                registered_by: actor.name.clone(),
                registered_at: crate::time::now(),
            };
            t.insert_version(&v)?;
            audit::append(
                t,
                &actor.name,
                "add",
                model,
                v.version,
                json!({"root": root, "files": files.len(), "inputs": ins.len(), "path": v.path}),
            )?;
            for e in &ev {
                t.insert_evidence(model, v.version, e)?;
                audit::append(
                    t,
                    &actor.name,
                    "evidence",
                    model,
                    v.version,
                    json!({"name": e.name, "sha256": e.sha256, "kind": e.hint}),
                )?;
            }
            out = Some(v);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Store("no version written".into()))
    }

    /// Attaches more evidence to a version.
    pub fn attach(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        files: &[EvidenceFile],
    ) -> Result<()> {
        require_role(
            actor,
            &["trainer", "security-approver", "admin"],
            "attach evidence",
        )?;
        let ev: Vec<Evidence> = files
            .iter()
            .map(|e| e.load(&actor.name))
            .collect::<Result<_>>()?;
        self.attach_loaded(actor, model, version, &ev)
    }

    /// Attaches evidence already read (an HTTP upload).
    pub fn attach_loaded(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        ev: &[Evidence],
    ) -> Result<()> {
        require_role(
            actor,
            &["trainer", "security-approver", "admin"],
            "attach evidence",
        )?;
        self.store.write(&mut |t| {
            get_version(t, model, version)?;
            for e in ev {
                t.insert_evidence(model, version, e)?;
                audit::append(
                    t,
                    &actor.name,
                    "evidence",
                    model,
                    version,
                    json!({"name": e.name, "sha256": e.sha256, "kind": e.hint}),
                )?;
            }
            Ok(())
        })
    }

    /// Evaluates `model@version` for `stage` without changing anything.
    pub fn evaluate(&self, model: &str, version: i64, stage: &str) -> Result<Evaluation> {
        let mut out = None;
        self.store.read(&mut |t| {
            let v = get_version(t, model, version)?;
            let ev = t.evidence(model, version)?;
            let ap = t.approvals(model, version)?;
            out = Some(evaluate(
                &self.policy,
                stage,
                &v,
                &ev,
                &ap,
                crate::time::now(),
            )?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Store("no evaluation".into()))
    }

    /// Records a production approval by a security-approver who did not register the version.
    pub fn approve(&self, actor: &Actor, model: &str, version: i64) -> Result<()> {
        require_role(actor, &["security-approver"], "approve for production")?;
        self.store.write(&mut |t| {
            let v = get_version(t, model, version)?;
            if v.registered_by == actor.name {
                return Err(Error::Forbidden(format!(
                    "{} registered {model}@{version} and cannot approve it (separation of duties)",
                    actor.name
                )));
            }
            t.insert_approval(
                model,
                version,
                &Approval {
                    approver: actor.name.clone(),
                    role: actor.role.clone(),
                    at: crate::time::now(),
                },
            )?;
            audit::append(t, &actor.name, "approve", model, version, json!({}))?;
            Ok(())
        })
    }

    /// Promotes to `stage` if the policy allows; returns the evaluation either way (refusals are
    /// audited too). A security-approver other than the registrant promoting to production
    /// approves by doing so.
    pub fn promote(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        stage: &str,
    ) -> Result<Evaluation> {
        self.policy.stage(stage)?;
        if stage == "production" {
            require_role(
                actor,
                &["security-approver", "admin"],
                "promote to production",
            )?;
        } else {
            require_role(
                actor,
                &["trainer", "security-approver", "admin"],
                "promote to staging",
            )?;
        }
        let mut out = None;
        self.store.write(&mut |t| {
            let v = get_version(t, model, version)?;
            if v.stage == "archived" {
                return Err(Error::Input(format!("{model}@{version} is archived")));
            }
            let mut approvals = t.approvals(model, version)?;
            let self_approves = stage == "production"
                && actor.role == "security-approver"
                && actor.name != v.registered_by
                && !approvals.iter().any(|a| a.approver == actor.name);
            if self_approves {
                approvals.push(Approval {
                    approver: actor.name.clone(),
                    role: actor.role.clone(),
                    at: crate::time::now(),
                });
            }
            let ev = t.evidence(model, version)?;
            let e = evaluate(&self.policy, stage, &v, &ev, &approvals, crate::time::now())?;
            let ids: Vec<&str> = e
                .report
                .findings
                .iter()
                .filter(|f| f.severity >= tunegate_core::Severity::High)
                .map(|f| f.id.as_str())
                .collect();
            if e.allowed() {
                if self_approves {
                    t.insert_approval(model, version, approvals.last().expect("pushed above"))?;
                    audit::append(t, &actor.name, "approve", model, version, json!({}))?;
                }
                if stage == "production" {
                    for other in t.versions(Some(model))? {
                        if other.stage == "production" && other.version != version {
                            t.set_stage(model, other.version, "archived")?;
                        }
                    }
                }
                t.set_stage(model, version, stage)?;
                audit::append(
                    t,
                    &actor.name,
                    "promote",
                    model,
                    version,
                    json!({"from": v.stage, "to": stage, "findings": ids}),
                )?;
            } else {
                audit::append(
                    t,
                    &actor.name,
                    "promote-refused",
                    model,
                    version,
                    json!({"from": v.stage, "to": stage, "blocking": ids}),
                )?;
            }
            out = Some(e);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Store("no evaluation".into()))
    }

    /// Puts `version`, which must have been in production before, back into production; the
    /// current production version goes back to staging.
    pub fn rollback(&self, actor: &Actor, model: &str, version: i64) -> Result<()> {
        require_role(actor, &["security-approver", "admin"], "roll back")?;
        self.store.write(&mut |t| {
            get_version(t, model, version)?;
            let was_prod = t.audit()?.iter().any(|a| {
                a.model == model
                    && a.version == version
                    && (a.action == "promote" || a.action == "rollback")
                    && serde_json::from_str::<serde_json::Value>(&a.detail)
                        .ok()
                        .and_then(|d| {
                            d.get("to")
                                .and_then(|s| s.as_str())
                                .map(|s| s == "production")
                        })
                        .unwrap_or(false)
            });
            if !was_prod {
                return Err(Error::Input(format!(
                    "{model}@{version} was never in production; promote it instead"
                )));
            }
            let mut from = Vec::new();
            for other in t.versions(Some(model))? {
                if other.stage == "production" && other.version != version {
                    t.set_stage(model, other.version, "staging")?;
                    from.push(other.version);
                }
            }
            t.set_stage(model, version, "production")?;
            audit::append(
                t,
                &actor.name,
                "rollback",
                model,
                version,
                json!({"to": "production", "replaced": from}),
            )?;
            Ok(())
        })
    }

    /// Moves a version one stage down (production → staging → none).
    pub fn demote(&self, actor: &Actor, model: &str, version: i64) -> Result<String> {
        require_role(actor, &["security-approver", "admin"], "demote")?;
        let mut to = String::new();
        self.store.write(&mut |t| {
            let v = get_version(t, model, version)?;
            to = match v.stage.as_str() {
                "production" => "staging".into(),
                "staging" => "none".into(),
                s => {
                    return Err(Error::Input(format!(
                        "{model}@{version} is in stage '{s}'; nothing to demote"
                    )))
                }
            };
            t.set_stage(model, version, &to)?;
            audit::append(
                t,
                &actor.name,
                "demote",
                model,
                version,
                json!({"from": v.stage, "to": to}),
            )?;
            Ok(())
        })?;
        Ok(to)
    }

    /// Archives a version (it can no longer be promoted).
    pub fn archive(&self, actor: &Actor, model: &str, version: i64) -> Result<()> {
        require_role(actor, &["security-approver", "admin"], "archive")?;
        self.store.write(&mut |t| {
            let v = get_version(t, model, version)?;
            t.set_stage(model, version, "archived")?;
            audit::append(
                t,
                &actor.name,
                "archive",
                model,
                version,
                json!({"from": v.stage}),
            )?;
            Ok(())
        })
    }

    /// Versions of one model or all.
    pub fn versions(&self, model: Option<&str>) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        self.store.read(&mut |t| {
            out = t.versions(model)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// One version with its evidence and approvals.
    pub fn version(
        &self,
        model: &str,
        version: i64,
    ) -> Result<(Version, Vec<Evidence>, Vec<Approval>)> {
        let mut out = None;
        self.store.read(&mut |t| {
            out = Some((
                get_version(t, model, version)?,
                t.evidence(model, version)?,
                t.approvals(model, version)?,
            ));
            Ok(())
        })?;
        out.ok_or_else(|| Error::Store("no version".into()))
    }

    /// Appends an audit entry for an action outside the store (an MLflow sync).
    pub fn record(&self, actor: &Actor, action: &str, detail: serde_json::Value) -> Result<()> {
        self.store.write(&mut |t| {
            audit::append(t, &actor.name, action, "", 0, detail.clone())?;
            Ok(())
        })
    }

    /// The audit log.
    pub fn audit(&self) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        self.store.read(&mut |t| {
            out = t.audit()?;
            Ok(())
        })?;
        Ok(out)
    }
}
