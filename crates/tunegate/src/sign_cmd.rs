//! `tunegate keygen | sign | verify | sign-report`: OpenSSF model-signing compatible signatures
//! for model folders, single files and gate reports. Exit codes: 0 verified/signed, 1
//! verification failed (the reason and its `S###` check id are printed), 2 usage or input error.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tunegate_sign::keys::{self, KeyAlgorithm, PrivateKey, Signer};
use tunegate_sign::manifest::{Method, WalkOptions};
use tunegate_sign::verify::{self, Trust, Verified, VerifyError, VerifyOptions};

/// Every signing check (`S###`), for `tunegate checks`.
pub const CHECKS: &[tunegate_core::CheckInfo] = tunegate_sign::CHECKS;

/// `tunegate keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Output prefix: writes PREFIX.pem (private) and PREFIX.pub (public).
    #[arg(long, short = 'o', default_value = "signing")]
    pub output: PathBuf,
    /// p256 (default; model_signing-compatible), p384, p521, or ed25519 (tunegate only).
    #[arg(long, default_value = "p256")]
    pub algorithm: String,
    /// Encrypt the private key with the passphrase on the first line of FILE (otherwise the
    /// TUNEGATE_KEY_PASSPHRASE environment variable, when set, encrypts it).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Flags shared by `sign` and `verify` that select files.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// Leave a path out (relative to the current directory or the model); repeatable. Recorded
    /// in the signature.
    #[arg(long, value_name = "PATH")]
    pub ignore_paths: Vec<PathBuf>,
    /// Also cover the top-level .git, .gitattributes, .github and .gitignore.
    #[arg(long)]
    pub no_ignore_git_paths: bool,
}

/// `tunegate sign`.
#[derive(Debug, Clone, clap::Args)]
pub struct SignArgs {
    /// The model folder or single file to sign.
    pub path: PathBuf,
    /// Private key (PEM: PKCS#8, encrypted PKCS#8 or SEC1).
    #[arg(long)]
    pub key: PathBuf,
    /// Where to write the signature bundle (default PATH.sig).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Hash symlinked files through the link instead of refusing them.
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Use the `shards` serialization with this shard size in bytes (default: `files`, what
    /// the model_signing CLI writes and reads).
    #[arg(long, value_name = "BYTES")]
    pub shard_size: Option<u64>,
    /// Passphrase of an encrypted key: first line of FILE (else TUNEGATE_KEY_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// No chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `tunegate verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The model folder or file (or the report JSON of a signed report).
    pub path: PathBuf,
    /// The trusted public key (PEM; a certificate's key works too).
    #[arg(long, required_unless_present_any = ["trust_bundled_certificate", "certificate_chain"])]
    pub key: Option<PathBuf>,
    /// For certificate-method bundles: trusted CA certificate(s), PEM; repeatable. The bundle's
    /// chain must verify to one of them (offline; revocation is not checked).
    #[arg(long, value_name = "PEM", conflicts_with = "key")]
    pub certificate_chain: Vec<PathBuf>,
    /// The signature bundle (default PATH.sig).
    #[arg(long)]
    pub signature: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Tolerate files the signature does not cover.
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    /// For certificate/keyless bundles without a pinned key: check the signature with the
    /// bundle's own leaf certificate. The X.509 chain, Fulcio identity and transparency log are
    /// NOT verified (offline); this proves integrity, not the signer.
    #[arg(long, conflicts_with_all = ["key", "certificate_chain"])]
    pub trust_bundled_certificate: bool,
    /// Print only the verdict line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `tunegate sign-report`.
#[derive(Debug, Clone, clap::Args)]
pub struct SignReportArgs {
    /// A report written with `--format json`.
    pub report: PathBuf,
    /// Private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Where to write the signature bundle (default REPORT.sig).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Passphrase of an encrypted key: first line of FILE (else TUNEGATE_KEY_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

pub(crate) fn read_passphrase(file: Option<&Path>) -> Result<Option<Vec<u8>>> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let line = t.lines().next().unwrap_or("");
        if line.is_empty() {
            bail!("{}: the passphrase file's first line is empty", f.display());
        }
        return Ok(Some(line.as_bytes().to_vec()));
    }
    Ok(std::env::var(keys::PASSPHRASE_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::into_bytes))
}

pub(crate) fn default_sig(path: &Path) -> PathBuf {
    let s = path.as_os_str().to_string_lossy();
    let s = s.trim_end_matches('/');
    let s = if s.is_empty() || s == "." {
        "model".to_string()
    } else {
        s.to_string()
    };
    PathBuf::from(format!("{s}.sig"))
}

fn write_new(path: &Path, text: &str, force: bool, private: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists (pass --force to overwrite)", path.display());
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = private;
    use std::io::Write;
    o.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `keygen`.
pub fn keygen(a: &KeygenArgs) -> Result<u8> {
    let alg = KeyAlgorithm::parse(&a.algorithm).with_context(|| {
        format!(
            "unknown key algorithm '{}' (p256, p384, p521 or ed25519)",
            a.algorithm
        )
    })?;
    let pw = read_passphrase(a.passphrase_file.as_deref())?;
    let k = PrivateKey::generate(alg);
    let priv_path = a.output.with_extension("pem");
    let pub_path = a.output.with_extension("pub");
    write_new(&priv_path, &k.to_pem(pw.as_deref())?, a.force, true)?;
    write_new(&pub_path, &k.public_key().to_pem(), a.force, false)?;
    eprintln!(
        "tunegate: {} key pair written: {} ({}), {}",
        alg.name(),
        priv_path.display(),
        if pw.is_some() {
            "encrypted PKCS#8"
        } else {
            "unencrypted PKCS#8"
        },
        pub_path.display()
    );
    if !alg.oms_compatible() {
        eprintln!("tunegate: note: Ed25519 signatures verify with tunegate only; model_signing accepts ECDSA keys");
    }
    Ok(0)
}

/// Runs `sign`.
pub fn sign(a: &SignArgs) -> Result<u8> {
    let pw = read_passphrase(a.passphrase_file.as_deref())?;
    let key = keys::load_private_key(&a.key, pw.as_deref())?;
    let out = a.output.clone().unwrap_or_else(|| default_sig(&a.path));
    let mut ignores = a.select.ignore_paths.clone();
    ignores.push(out.clone());
    let opts = WalkOptions {
        method: match a.shard_size {
            None => Method::Files,
            Some(0) => bail!("--shard-size must be positive"),
            Some(n) => Method::Shards(n),
        },
        allow_symlinks: a.allow_symlinks,
        ignore_paths: verify::relative_ignores(&a.path, &ignores),
        ignore_git_paths: !a.select.no_ignore_git_paths,
        max_resources: usize::MAX,
    };
    let start = std::time::Instant::now();
    let (bundle, manifest) = tunegate_sign::sign::sign_model(&a.path, &key, &opts)?;
    std::fs::write(&out, bundle.to_json()).with_context(|| format!("writing {}", out.display()))?;
    if !a.quiet {
        eprintln!(
            "tunegate: signed {} ({} resource(s), {} method, root sha256:{}) in {:.2}s -> {}",
            a.path.display(),
            manifest.resources.len(),
            match manifest.serialization.method {
                Method::Files => "files".to_string(),
                Method::Shards(n) => format!("shards of {n} bytes"),
            },
            manifest.root_hex(),
            start.elapsed().as_secs_f64(),
            out.display()
        );
        if !key.algorithm().oms_compatible() {
            eprintln!("tunegate: note: Ed25519 signatures verify with tunegate only; model_signing accepts ECDSA keys");
        }
    }
    Ok(0)
}

/// Runs `verify`.
pub fn verify(a: &VerifyArgs) -> Result<u8> {
    let trust = match &a.key {
        Some(k) => Trust::Key(keys::load_public_key(k)?),
        None if !a.certificate_chain.is_empty() => {
            let mut anchors = Vec::new();
            for p in &a.certificate_chain {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                anchors.extend(
                    keys::pem_certificates(&text).with_context(|| p.display().to_string())?,
                );
            }
            Trust::Roots(anchors)
        }
        None => Trust::BundledCertificateUnverified,
    };
    let sig = a.signature.clone().unwrap_or_else(|| default_sig(&a.path));
    if !sig.exists() {
        bail!(
            "{}: no such signature file (give --signature)",
            sig.display()
        );
    }
    let opts = VerifyOptions {
        trust,
        ignore_paths: a.select.ignore_paths.clone(),
        ignore_git_paths: !a.select.no_ignore_git_paths,
        ignore_unsigned_files: a.ignore_unsigned_files,
    };
    match verify::verify_path(&a.path, &sig, &opts) {
        Ok(v) => {
            let (notes, signer) = match &v {
                Verified::Model(m) => (&m.notes, &m.signer),
                Verified::Report { notes, signer, .. } => (notes, signer),
            };
            for n in notes {
                eprintln!("tunegate: note: {n}");
            }
            match &v {
                Verified::Model(m) => {
                    println!(
                        "verified: {} ({} file(s), root sha256:{}, signed by {signer})",
                        a.path.display(),
                        m.files_checked.len(),
                        m.manifest.root_hex()
                    );
                    if !a.quiet {
                        for f in &m.files_checked {
                            println!("  ok  {f}");
                        }
                    }
                }
                Verified::Report { subjects, .. } => {
                    println!(
                        "verified: signed report {} (signed by {signer})",
                        a.path.display()
                    );
                    if !a.quiet {
                        for s in subjects {
                            let d: Vec<String> =
                                s.digest.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                            println!("  subject  {}  {}", s.name, d.join(" "));
                        }
                    }
                }
            }
            Ok(0)
        }
        Err(VerifyError::Failed(f)) => {
            println!(
                "verification FAILED: {} ({}): {}",
                f.check.id, f.check.name, f.reason
            );
            for d in &f.details {
                println!("  {d}");
            }
            Ok(1)
        }
        Err(VerifyError::Input(e)) => Err(e.into()),
    }
}

/// Runs `sign-report`.
pub fn sign_report(a: &SignReportArgs) -> Result<u8> {
    let pw = read_passphrase(a.passphrase_file.as_deref())?;
    let key = keys::load_private_key(&a.key, pw.as_deref())?;
    let bytes =
        std::fs::read(&a.report).with_context(|| format!("reading {}", a.report.display()))?;
    let name = a
        .report
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report.json");
    let st = tunegate_sign::report::report_statement(name, &bytes)?;
    let bundle = tunegate_sign::sign::sign_statement(&st, &key)?;
    let out = a.output.clone().unwrap_or_else(|| default_sig(&a.report));
    std::fs::write(&out, bundle.to_json()).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "tunegate: signed report {} ({} subject(s)) -> {}",
        a.report.display(),
        st.subject.len(),
        out.display()
    );
    Ok(0)
}
