//! Verification that fails closed and says why. Every failure is a [`VerifyFailure`] carrying
//! the check id ([`crate::checks`]) of its reason; input problems (unreadable files, bad keys)
//! are [`VerifyError::Input`] instead, so the CLI can tell "not verified" (exit 1) from "could
//! not try" (exit 2).
use crate::bundle::{Bundle, Material, ACCEPTED_MEDIA_TYPES};
use crate::checks;
use crate::dsse::{EnvelopeFailure, IN_TOTO_PAYLOAD_TYPE};
use crate::error::Error;
use crate::keys::{certificate_public_key, PublicKey};
use crate::manifest::{self, Manifest, ManifestProblem, Method, WalkError, WalkOptions};
use crate::statement::Statement;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tunegate_core::CheckInfo;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The check whose reason this is.
    pub check: CheckInfo,
    /// One line saying why.
    pub reason: String,
    /// Per-file details (changed, added, missing, renamed files).
    pub details: Vec<String>,
}

impl VerifyFailure {
    fn new(check: CheckInfo, reason: impl Into<String>) -> Self {
        VerifyFailure {
            check,
            reason: reason.into(),
            details: Vec::new(),
        }
    }
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.check.id, self.check.name, self.reason)
    }
}

/// A verification that could not be completed or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Unreadable input or bad arguments (exit 2).
    #[error(transparent)]
    Input(#[from] Error),
    /// The signature was checked and rejected (exit 1).
    #[error("{0}")]
    Failed(VerifyFailure),
}

impl From<VerifyFailure> for VerifyError {
    fn from(f: VerifyFailure) -> Self {
        VerifyError::Failed(f)
    }
}

/// What the verifier trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A public key: key bundles must name it (hint or embedded key), certificate bundles must
    /// carry it in their leaf certificate.
    Key(PublicKey),
    /// Accept the leaf certificate carried by a certificate or keyless bundle **without**
    /// verifying its chain, Fulcio identity or transparency-log entry (offline, explicit opt-in).
    BundledCertificateUnverified,
    /// Certificate-method bundles whose X.509 chain verifies to one of these trust anchors
    /// (DER CA certificates), see [`crate::chain`].
    Roots(Vec<Vec<u8>>),
}

/// A bundle whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedStatement {
    /// The signed statement (parsed from exactly the verified bytes).
    pub statement: Statement,
    /// Caveats the caller must show (e.g. chain not verified).
    pub notes: Vec<String>,
    /// Which key signed it (algorithm and hint).
    pub signer: String,
}

/// Checks a bundle's envelope against `trust` and returns the signed statement.
pub fn verify_bundle(bundle: &Bundle, trust: &Trust) -> Result<VerifiedStatement, VerifyFailure> {
    if !ACCEPTED_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
        return Err(VerifyFailure::new(
            checks::BUNDLE_MALFORMED,
            format!("unknown bundle media type '{}'", bundle.media_type),
        ));
    }
    let env = &bundle.dsse_envelope;
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(VerifyFailure::new(
            checks::PAYLOAD_TYPE,
            format!(
                "payload type '{}' is not {IN_TOTO_PAYLOAD_TYPE}",
                env.payload_type
            ),
        ));
    }
    let material = bundle
        .material()
        .map_err(|e| VerifyFailure::new(checks::BUNDLE_MALFORMED, e))?;
    let mut notes = Vec::new();
    let key = match (trust, &material) {
        (Trust::Key(k), Material::Key { hint, pem }) => {
            if let Some(h) = hint {
                if !h.eq_ignore_ascii_case(&k.hint()) {
                    return Err(VerifyFailure::new(
                        checks::KEY_MISMATCH,
                        format!("the bundle was signed by the key with hint {h}, not by the given key (hint {})", k.hint()),
                    ));
                }
            }
            if let Some(p) = pem {
                match PublicKey::from_pem(p) {
                    Ok(embedded) if &embedded == k => {}
                    Ok(_) => {
                        return Err(VerifyFailure::new(
                            checks::KEY_MISMATCH,
                            "the bundle embeds another public key than the given one",
                        ))
                    }
                    Err(e) => {
                        return Err(VerifyFailure::new(
                            checks::BUNDLE_MALFORMED,
                            format!("embedded public key: {e}"),
                        ))
                    }
                }
            }
            k.clone()
        }
        (Trust::Key(k), Material::Certificates { chain, .. }) => {
            let leaf = certificate_public_key(&chain[0]).map_err(|e| {
                VerifyFailure::new(checks::BUNDLE_MALFORMED, format!("leaf certificate: {e}"))
            })?;
            if &leaf != k {
                return Err(VerifyFailure::new(
                    checks::KEY_MISMATCH,
                    "the bundle's leaf certificate holds another key than the given one",
                ));
            }
            notes.push(format!(
                "{}: signer pinned by key (the leaf certificate's key is the given key); the certificate chain{} was not verified",
                checks::CHAIN_NOT_VERIFIED.id,
                if matches!(material, Material::Certificates { keyless: true, .. }) { " and transparency log" } else { "" }
            ));
            leaf
        }
        (Trust::BundledCertificateUnverified, Material::Certificates { chain, keyless }) => {
            let leaf = certificate_public_key(&chain[0]).map_err(|e| {
                VerifyFailure::new(checks::BUNDLE_MALFORMED, format!("leaf certificate: {e}"))
            })?;
            notes.push(format!(
                "{}: checked against the bundle's own leaf certificate only; its X.509 chain{} were NOT verified, so this proves integrity, not who signed",
                checks::CHAIN_NOT_VERIFIED.id,
                if *keyless { ", Fulcio identity and Rekor transparency-log entry" } else { "" }
            ));
            let ids = crate::keys::certificate_identities(&chain[0]);
            if !ids.is_empty() {
                notes.push(format!(
                    "leaf certificate names (unverified): {}",
                    ids.join(", ")
                ));
            }
            leaf
        }
        (Trust::Roots(anchors), Material::Certificates { chain, keyless }) => {
            let subject = crate::chain::verify_chain(chain, anchors).map_err(|e| {
                VerifyFailure::new(
                    checks::CHAIN_INVALID,
                    if *keyless {
                        format!("{e} (keyless Sigstore bundles need Fulcio's trust root and a Rekor check, which tunegate does not do offline)")
                    } else {
                        e
                    },
                )
            })?;
            notes.push(format!("certificate chain verified to a given trust anchor; signer '{subject}' (revocation not checked)"));
            certificate_public_key(&chain[0]).map_err(|e| {
                VerifyFailure::new(checks::BUNDLE_MALFORMED, format!("leaf certificate: {e}"))
            })?
        }
        (Trust::Roots(_), Material::Key { .. }) => {
            return Err(VerifyFailure::new(
                checks::KEY_MISMATCH,
                "the bundle is key-based and carries no certificate: verify it with --key",
            ))
        }
        (Trust::BundledCertificateUnverified, Material::Key { .. }) => {
            return Err(VerifyFailure::new(
                checks::KEY_MISMATCH,
                "the bundle is key-based and carries no certificate: verify it with --key",
            ))
        }
    };
    let payload = env.verify(&key, true).map_err(|e| match e {
        EnvelopeFailure::BadSignature => {
            VerifyFailure::new(checks::SIGNATURE_INVALID, e.to_string())
        }
        other => VerifyFailure::new(checks::BUNDLE_MALFORMED, other.to_string()),
    })?;
    let statement = Statement::from_payload(&payload)
        .map_err(|e| VerifyFailure::new(checks::STATEMENT_INVALID, e.to_string()))?;
    Ok(VerifiedStatement {
        statement,
        notes,
        signer: format!("{} key {}", key.algorithm().name(), key.hint()),
    })
}

/// Options for [`verify_model`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// What to trust.
    pub trust: Trust,
    /// Extra paths to leave out (absolute, or relative to the current directory or the model).
    pub ignore_paths: Vec<PathBuf>,
    /// Leave out the top-level git paths (default, like `model_signing`).
    pub ignore_git_paths: bool,
    /// Tolerate files the signature does not list.
    pub ignore_unsigned_files: bool,
}

/// A model whose signature and files verified.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    /// The signed manifest.
    pub manifest: Manifest,
    /// Files compared (signed resource paths).
    pub files_checked: Vec<String>,
    /// Caveats to show.
    pub notes: Vec<String>,
    /// Which key signed.
    pub signer: String,
}

/// Turns user-given ignore paths into paths relative to the model root; paths outside the root
/// are dropped (as `model_signing` does).
pub fn relative_ignores(root: &Path, paths: &[PathBuf]) -> Vec<String> {
    let Ok(root_c) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut out = Vec::new();
    for p in paths {
        // As given (absolute or from the current directory), else relative to the model when
        // that path exists there.
        let mut candidates = vec![if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        }];
        if p.is_relative() && root_c.join(p).exists() {
            candidates.push(root_c.join(p));
        }
        for c in candidates {
            let abs = std::fs::canonicalize(&c).unwrap_or_else(|_| lexical_normalize(&c));
            if let Ok(rel) = abs.strip_prefix(&root_c) {
                if let Some(s) = rel.to_str() {
                    if !s.is_empty() {
                        out.push(s.replace('\\', "/"));
                        break;
                    }
                }
            }
        }
    }
    out
}

fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn file_of(name: &str, method: Method) -> &str {
    match method {
        Method::Files => name,
        Method::Shards(_) => manifest::parse_shard_name(name)
            .map(|(p, _, _)| p)
            .unwrap_or(name),
    }
}

/// Compares a signed manifest with a freshly computed one; `Ok(files checked)` or the failure.
pub fn compare(
    signed: &Manifest,
    local: &Manifest,
    ignore_unsigned: bool,
) -> Result<Vec<String>, VerifyFailure> {
    let method = signed.serialization.method;
    let norm_alg = |a: &str| -> String {
        match method {
            Method::Shards(n) if a == signed.serialization.hash_type => format!("{a}-sharded-{n}"),
            _ => a.to_string(),
        }
    };
    type Group = Vec<(String, String, Vec<u8>)>;
    let group = |m: &Manifest| -> BTreeMap<String, Group> {
        let mut g: BTreeMap<String, Group> = BTreeMap::new();
        for r in &m.resources {
            g.entry(file_of(&r.name, method).to_string())
                .or_default()
                .push((r.name.clone(), norm_alg(&r.algorithm), r.digest.clone()));
        }
        for v in g.values_mut() {
            v.sort();
        }
        g
    };
    let s = group(signed);
    let l = group(local);
    let mut changed = Vec::new();
    let mut missing: Vec<&String> = Vec::new();
    let mut added: Vec<&String> = Vec::new();
    for (p, sv) in &s {
        match l.get(p) {
            None => missing.push(p),
            Some(lv) if lv != sv => changed.push(p.clone()),
            Some(_) => {}
        }
    }
    if !ignore_unsigned {
        added = l.keys().filter(|p| !s.contains_key(*p)).collect();
    }
    let digests = |g: &BTreeMap<String, Group>, p: &str| -> Vec<Vec<u8>> {
        g[p].iter().map(|x| x.2.clone()).collect()
    };
    let mut renamed = Vec::new();
    missing.retain(|m| {
        if let Some(pos) = added.iter().position(|a| digests(&l, a) == digests(&s, m)) {
            renamed.push(format!("'{m}' -> '{}'", added[pos]));
            added.remove(pos);
            false
        } else {
            true
        }
    });
    if changed.is_empty() && missing.is_empty() && added.is_empty() && renamed.is_empty() {
        return Ok(s.keys().cloned().collect());
    }
    let mut details = Vec::new();
    details.extend(changed.iter().map(|p| format!("changed: {p}")));
    details.extend(renamed.iter().map(|p| format!("renamed: {p}")));
    details.extend(missing.iter().map(|p| format!("missing: {p}")));
    details.extend(added.iter().map(|p| format!("added (not signed): {p}")));
    let (check, what) = if !changed.is_empty() {
        (
            checks::FILE_CHANGED,
            format!("{} signed file(s) changed", changed.len()),
        )
    } else if !renamed.is_empty() {
        (
            checks::FILE_RENAMED,
            format!("{} signed file(s) renamed", renamed.len()),
        )
    } else if !missing.is_empty() {
        (
            checks::FILE_MISSING,
            format!("{} signed file(s) missing", missing.len()),
        )
    } else {
        (
            checks::FILE_ADDED,
            format!("{} file(s) not covered by the signature", added.len()),
        )
    };
    let total = changed.len() + renamed.len() + missing.len() + added.len();
    let reason = if total > 1 && details.len() > 1 {
        format!("{what} ({total} differences in all; signed for another folder?)")
    } else {
        what
    };
    Err(VerifyFailure {
        check,
        reason,
        details,
    })
}

/// Verifies a model folder or file against a signature bundle.
pub fn verify_model(
    model: &Path,
    bundle_path: &Path,
    opts: &VerifyOptions,
) -> Result<VerifiedModel, VerifyError> {
    let bundle =
        Bundle::read(bundle_path)?.map_err(|e| VerifyFailure::new(checks::BUNDLE_MALFORMED, e))?;
    let vs = verify_bundle(&bundle, &opts.trust)?;
    let signed = Manifest::from_statement(&vs.statement).map_err(|p| match p {
        ManifestProblem::Escape(m) => VerifyFailure::new(checks::PATH_ESCAPE, m),
        ManifestProblem::Invalid(m)
        | ManifestProblem::Inconsistent(m)
        | ManifestProblem::Unsupported(m) => VerifyFailure::new(checks::STATEMENT_INVALID, m),
    })?;
    std::fs::symlink_metadata(model).map_err(|e| Error::io(model, e))?;
    let mut ignores = signed.serialization.ignore_paths.clone();
    let mut extra = opts.ignore_paths.clone();
    extra.push(bundle_path.to_path_buf());
    ignores.extend(relative_ignores(model, &extra));
    let walk = WalkOptions {
        method: signed.serialization.method,
        allow_symlinks: signed.serialization.allow_symlinks,
        ignore_paths: ignores,
        ignore_git_paths: opts.ignore_git_paths,
        // An unchanged folder yields as many resources as were signed; allow for added files.
        max_resources: signed.resources.len().saturating_add(100_000),
    };
    let mut local = manifest::build(model, &walk).map_err(|e| match e {
        WalkError::Input(e) => VerifyError::Input(e),
        WalkError::Symlink(m) | WalkError::Special(m) => {
            VerifyFailure::new(checks::SYMLINK, m).into()
        }
        WalkError::Escape(m) => VerifyFailure::new(checks::PATH_ESCAPE, m).into(),
        WalkError::TooMany(m) => VerifyFailure::new(
            checks::STATEMENT_INVALID,
            format!("{m}: the signature's serialization does not fit this folder"),
        )
        .into(),
    })?;
    // A single-file model named by its file name (OMS spec / Go port style) instead of ".".
    if let (1, 1) = (signed.resources.len(), local.resources.len()) {
        let sn = file_of(&signed.resources[0].name, signed.serialization.method);
        let ln = file_of(&local.resources[0].name, signed.serialization.method);
        if ln == "." && sn != "." && Some(sn) == model.file_name().and_then(|n| n.to_str()) {
            let r = &mut local.resources[0];
            r.name = format!("{sn}{}", &r.name[1..]);
        }
    }
    let files_checked = compare(&signed, &local, opts.ignore_unsigned_files)?;
    Ok(VerifiedModel {
        manifest: signed,
        files_checked,
        notes: vs.notes,
        signer: vs.signer,
    })
}

/// Verifies a signature over one file's **already read** bytes (a single-file model in the
/// `files` serialization, as `tunegate sign FILE` and `model_signing sign FILE` write it), so a
/// caller that goes on to parse those bytes checks exactly what it uses (no second read, no
/// window for a swap). `file_name` is the file's name, accepted as the resource name besides
/// `.`. Used for signed approved-model lists.
pub fn verify_file_bytes(
    file_name: &str,
    bytes: &[u8],
    bundle_path: &Path,
    trust: &Trust,
) -> Result<VerifiedModel, VerifyError> {
    use sha2::{Digest as _, Sha256};
    let bundle =
        Bundle::read(bundle_path)?.map_err(|e| VerifyFailure::new(checks::BUNDLE_MALFORMED, e))?;
    let vs = verify_bundle(&bundle, trust)?;
    let signed = Manifest::from_statement(&vs.statement).map_err(|p| match p {
        ManifestProblem::Escape(m) => VerifyFailure::new(checks::PATH_ESCAPE, m),
        ManifestProblem::Invalid(m)
        | ManifestProblem::Inconsistent(m)
        | ManifestProblem::Unsupported(m) => VerifyFailure::new(checks::STATEMENT_INVALID, m),
    })?;
    let [r] = signed.resources.as_slice() else {
        return Err(VerifyFailure::new(
            checks::FILE_ADDED,
            format!(
                "the signature covers {} files, not the single file {file_name}: signed for another artifact?",
                signed.resources.len()
            ),
        )
        .into());
    };
    if signed.serialization.method != Method::Files || r.algorithm != "sha256" {
        return Err(VerifyFailure::new(
            checks::STATEMENT_INVALID,
            format!(
                "the signature of {file_name} uses '{}' hashing; a single file needs the files serialization with sha256",
                r.algorithm
            ),
        )
        .into());
    }
    if r.name != "." && r.name != file_name {
        return Err(VerifyFailure::new(
            checks::FILE_RENAMED,
            format!("the signature is for '{}', not '{file_name}'", r.name),
        )
        .into());
    }
    if Sha256::digest(bytes).as_slice() != r.digest.as_slice() {
        return Err(VerifyFailure::new(
            checks::FILE_CHANGED,
            format!("{file_name} changed since it was signed"),
        )
        .into());
    }
    Ok(VerifiedModel {
        files_checked: vec![file_name.to_string()],
        manifest: signed,
        notes: vs.notes,
        signer: vs.signer,
    })
}

/// What [`verify_path`] verified.
#[derive(Debug, Clone)]
pub enum Verified {
    /// A model folder or file.
    Model(VerifiedModel),
    /// A signed gate report.
    Report {
        /// The scanned artifacts the report is about.
        subjects: Vec<crate::statement::ResourceDescriptor>,
        /// Caveats to show.
        notes: Vec<String>,
        /// Which key signed.
        signer: String,
    },
}

/// Verifies `path` against the bundle, whatever it signs: a model (OMS manifest) or a gate
/// report (then `path` is the report JSON file).
pub fn verify_path(
    path: &Path,
    bundle_path: &Path,
    opts: &VerifyOptions,
) -> Result<Verified, VerifyError> {
    let bundle =
        Bundle::read(bundle_path)?.map_err(|e| VerifyFailure::new(checks::BUNDLE_MALFORMED, e))?;
    let vs = verify_bundle(&bundle, &opts.trust)?;
    if vs.statement.predicate_type == crate::report::REPORT_PREDICATE_TYPE {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        crate::report::check_report(&vs.statement, &bytes)?;
        return Ok(Verified::Report {
            subjects: vs.statement.subject.clone(),
            notes: vs.notes,
            signer: vs.signer,
        });
    }
    verify_model(path, bundle_path, opts).map(Verified::Model)
}
