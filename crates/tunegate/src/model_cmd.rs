//! `tunegate model scan`, `verify` and `approve`: the base-model gate's commands. Rendering, `--fail-on` and exit
//! codes come from the shared report flags; this module only turns arguments into a report.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use tunegate_artifact::hash::HashOptions;
use tunegate_core::{Finding, Location, Report, Severity};

/// Every model check (`M###`), for `tunegate checks`.
pub const CHECKS: &[tunegate_core::CheckInfo] = tunegate_artifact::CHECKS;

/// Arguments of `tunegate model scan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelScanArgs {
    /// Model files or folders (Hugging Face layout); folders are walked recursively.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Do not hash the files: report subjects carry names only. Hashing reads every byte (tensor
    /// payloads included); without it the scan reads only pickle opcodes, zip directories and
    /// pickle members, and safetensors headers.
    #[arg(long)]
    pub no_digest: bool,
}

/// Scans the paths into a `model` gate report (threshold `high`; the caller may re-evaluate it
/// with `Report::with_fail_on`). An unreadable path is an error (exit 2).
pub fn scan(args: &ModelScanArgs) -> Result<Report> {
    let opts = tunegate_artifact::ScanOptions {
        digest: !args.no_digest,
    };
    Ok(tunegate_artifact::scan_paths_with(&args.paths, &opts)?)
}

/// Arguments of `tunegate model fingerprint`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelFingerprintArgs {
    /// A .safetensors file, a model.safetensors.index.json, or a folder holding either.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Write the fingerprint (tunegate.fingerprint/v1 JSON) to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// No chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `tunegate model diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelDiffArgs {
    /// The model: a .safetensors file, an index, or a folder.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The reference: weights (file, index or folder) or a fingerprint written by
    /// `tunegate model fingerprint` (a .json file).
    #[arg(long, value_name = "REF")]
    pub reference: PathBuf,
    /// The model is claimed identical to the reference: any difference fails the gate.
    #[arg(long)]
    pub identical: bool,
}

/// Fingerprints a model and writes the JSON; returns 0. NaN and infinite values are reported on
/// stderr (they are findings of `model diff`).
pub fn fingerprint(args: &ModelFingerprintArgs) -> Result<u8> {
    let progress: Box<dyn tunegate_core::progress::Progress> = if args.quiet {
        Box::new(tunegate_core::progress::NoProgress)
    } else {
        crate::output::ReportArgs::bar()
    };
    let fp = tunegate_artifact::weights::fingerprint(&args.path, progress.as_ref())?;
    drop(progress);
    let text = serde_json::to_string_pretty(&fp)? + "\n";
    crate::output::write_out(args.output.as_deref(), &text)?;
    if !args.quiet {
        for (name, t) in &fp.tensors {
            if t.nan + t.inf > 0 {
                eprintln!(
                    "tunegate: warning: tensor '{name}' ({}) holds {} NaN and {} infinite values",
                    t.file, t.nan, t.inf
                );
            }
        }
        if let Some(o) = &args.output {
            eprintln!(
                "tunegate: fingerprint of {} tensors in {} file(s) written to {}",
                fp.tensors.len(),
                fp.files.len(),
                o.display()
            );
        }
    }
    Ok(0)
}

/// Diffs a model against its reference into a `model` gate report (threshold `high`).
pub fn diff(
    args: &ModelDiffArgs,
    progress: &dyn tunegate_core::progress::Progress,
) -> Result<Report> {
    let opts = tunegate_artifact::weights::DiffOptions {
        identical: args.identical,
    };
    Ok(tunegate_artifact::weights::diff(
        &args.path,
        &args.reference,
        &opts,
        progress,
    )?)
}

/// The model gate's telemetry in Prometheus text format (for `--metrics-file`).
pub fn metrics(report: &Report) -> String {
    crate::output::gate_metrics(
        "tunegate_model",
        "",
        Some(("files_scanned", "Model files scanned by the last run.")),
        report,
    )
}

/// Arguments of `tunegate model verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelVerifyArgs {
    /// The model: a single file or a Hugging Face folder.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The approved-model list (TOML; see `tunegate model approve`).
    #[arg(long, value_name = "FILE")]
    pub approved: PathBuf,
    /// Compare with this entry (its id) instead of choosing one by digests.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// Public key (PEM) that must have signed the approved list: its detached signature is
    /// checked on the exact bytes that are then parsed, and the gate fails closed (M028) when
    /// it does not verify. Sign the list with `tunegate sign approved.toml --key signing.pem`.
    #[arg(long, value_name = "PUB.pem")]
    pub key: Option<PathBuf>,
    /// The list's signature bundle (default: the list's path + `.sig`); needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub signature: Option<PathBuf>,
}

/// Arguments of `tunegate model approve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelApproveArgs {
    /// The model: a single file or a Hugging Face folder.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Model id to record (`org/name`).
    #[arg(long, value_name = "ORG/NAME")]
    pub id: String,
    /// Upstream revision (commit or tag) to record.
    #[arg(long, value_name = "R")]
    pub revision: Option<String>,
    /// The approved-model list to create or update.
    #[arg(long, value_name = "FILE")]
    pub approved: PathBuf,
    /// No chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Reads the approved-model list's bytes once, checks their signature when `--key` is given
/// (on these exact bytes), and parses them; nothing re-reads the file afterwards. `Err` is an
/// input error (exit 2); `Ok(Err(report))` is a signature that does not verify, as a failing
/// report naming why.
fn load_approved(
    args: &ModelVerifyArgs,
) -> Result<std::result::Result<(tunegate_artifact::approved::ApprovedList, Vec<Finding>), Report>>
{
    use tunegate_sign::verify::{verify_file_bytes, Trust, VerifyError};
    let path = &args.approved;
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading {shown}"))?;
    let mut notes = Vec::new();
    if let Some(key) = &args.key {
        let public = tunegate_sign::keys::load_public_key(key)?;
        let sig = args
            .signature
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{shown}.sig")));
        if !sig.exists() {
            bail!(
                "{}: no such signature file for {shown} (sign the list with `tunegate sign {shown} --key KEY`, or give --signature)",
                sig.display()
            );
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&shown)
            .to_string();
        match verify_file_bytes(&name, &bytes, &sig, &Trust::Key(public)) {
            Ok(v) => notes.push(
                Finding::new(
                    &tunegate_artifact::checks::APPROVED_SIGNATURE_OK,
                    format!(
                        "{shown}: signature {} verified ({})",
                        sig.display(),
                        v.signer
                    ),
                    Location::file(shown.clone()),
                )
                .evidence(
                    serde_json::json!({"signature": sig.display().to_string(), "signer": v.signer}),
                ),
            ),
            Err(VerifyError::Input(e)) => return Err(e.into()),
            Err(VerifyError::Failed(f)) => {
                let mut r = Report::new("model", Severity::High);
                r.subjects.push(tunegate_core::Subject::sha256(
                    shown.clone(),
                    tunegate_core::digest::sha256_hex(&bytes),
                ));
                r.findings.push(
                    Finding::new(
                        &tunegate_artifact::checks::APPROVED_SIGNATURE_INVALID,
                        format!(
                            "{shown}: signature {} does not verify ({}: {}); the list is not trusted and {} was not compared",
                            sig.display(),
                            f.check.id,
                            f.reason,
                            args.path.display()
                        ),
                        Location::file(shown.clone()),
                    )
                    .evidence(serde_json::json!({
                        "signature": sig.display().to_string(),
                        "check": f.check.id,
                        "reason": f.reason,
                        "details": f.details,
                    })),
                );
                r.finish();
                return Ok(Err(r));
            }
        }
    }
    let list = tunegate_artifact::approved::parse(&shown, &bytes)?;
    Ok(Ok((list, notes)))
}

/// Verifies the model against the approved list into a `model` gate report (threshold `high`).
/// An unreadable path, a malformed list or an unknown `--model` is an error (exit 2).
pub fn verify(
    args: &ModelVerifyArgs,
    progress: &dyn tunegate_core::progress::Progress,
) -> Result<Report> {
    let (list, notes) = match load_approved(args)? {
        Ok(x) => x,
        Err(failed) => return Ok(failed),
    };
    let mut report = tunegate_artifact::approved::verify(
        &list,
        &args.approved.display().to_string(),
        &args.path,
        args.model.as_deref(),
        &HashOptions::default(),
        progress,
    )?;
    if !notes.is_empty() {
        report.findings.extend(notes);
        report.finish();
    }
    Ok(report)
}

/// Hashes the model and writes or updates its entry in the approved list (atomically: a
/// temporary file beside it, then a rename). Returns exit code 0.
pub fn approve(args: &ModelApproveArgs) -> Result<u8> {
    use tunegate_artifact::approved::{ApprovedList, ApprovedModel};
    let name = args.approved.display().to_string();
    if std::fs::metadata(&args.path)
        .with_context(|| format!("reading {}", args.path.display()))?
        .is_dir()
    {
        let root = std::fs::canonicalize(&args.path)
            .with_context(|| format!("reading {}", args.path.display()))?;
        let parent = match args.approved.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(dir) = std::fs::canonicalize(&parent) {
            if dir.starts_with(&root) {
                bail!(
                    "{name} lies inside the model folder {}; keep the approved list outside it (it would be an unexpected file of the model)",
                    args.path.display()
                );
            }
        }
    }
    let progress: Box<dyn tunegate_core::progress::Progress> = if args.quiet {
        Box::new(tunegate_core::progress::NoProgress)
    } else {
        crate::output::ReportArgs::bar()
    };
    let tree = tunegate_artifact::hash::hash_tree_with(
        &args.path,
        &HashOptions::default(),
        progress.as_ref(),
    )?;
    drop(progress);
    let entry = ApprovedModel::from_tree(&name, &args.id, args.revision.as_deref(), &tree)?;
    let mut list = if args.approved.exists() {
        let bytes = std::fs::read(&args.approved).with_context(|| format!("reading {name}"))?;
        tunegate_artifact::approved::parse(&name, &bytes)?
    } else {
        ApprovedList::default()
    };
    let sig = PathBuf::from(format!("{name}.sig"));
    if sig.exists() && !args.quiet {
        eprintln!(
            "tunegate: note: {name} changes, so its signature {} no longer verifies: re-sign it with `tunegate sign {name} --key KEY`",
            sig.display()
        );
    }
    let replaced = list.upsert(entry);
    let text = list.to_toml();
    let tmp = args.approved.with_file_name(format!(
        ".{}.tmp-{}",
        args.approved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.approved).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {name}")
    })?;
    if !args.quiet {
        eprintln!(
            "tunegate: {} {} ({} file(s), folder sha256:{}) in {name}",
            if replaced { "updated" } else { "approved" },
            args.id,
            tree.files.len(),
            tree.folder_digest()
        );
        for ig in &tree.ignored {
            eprintln!("tunegate: skipped {ig}/ (not model content)");
        }
    }
    Ok(0)
}
