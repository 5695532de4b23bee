//! `tunegate run -- <trainer command>` (attested training runs) and `tunegate attest verify`.
//!
//! `run` records the inputs (dataset lock, verified first; base-model digests; git state;
//! command line; environment; hyperparameters), runs the command directly (no shell) with its
//! output teed into log files, then records the outputs and writes, beside the output folder
//! `DIR`:
//! - `DIR.provenance.json`: a Sigstore bundle (the same key-method bundle `tunegate sign`
//!   writes) whose DSSE envelope holds an in-toto Statement v1 with a SLSA Provenance v1
//!   predicate ([`tunegate_sign::provenance`]);
//! - `DIR.sig`: the model-signing signature of `DIR` (what `tunegate sign DIR` writes);
//! - `DIR.logs/stdout.log`, `DIR.logs/stderr.log`: the byproducts.
//!
//! Exit codes of `run`: the trainer's status when it fails (its exit code, or 128+N when killed
//! by signal N), after the provenance recording the failure was written; 1 when the dataset
//! drifted from its lock and `--allow-drift` was not given (the command is not started); 2 for
//! usage or input errors (bad key, unreadable lock, command not found); 0 otherwise.
use crate::sign_cmd::{default_sig, read_passphrase};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tunegate_core::config::Config;
use tunegate_core::{Location, Report, Severity, Subject};
use tunegate_sign::checks;
use tunegate_sign::provenance::{
    self, BaseRecord, DatasetRecord, ExitRecord, FileDigest, GitRecord, LogRecord, Recorded,
    RunRecord,
};

/// Hyperparameter files bigger than this are refused (recorded by digest only they would be
/// useless; parsed whole they would be a memory hazard).
const MAX_HPARAMS_BYTES: u64 = 4 << 20;

/// `tunegate run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Private key that signs the provenance and the output folder (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Passphrase of an encrypted key: first line of FILE (else TUNEGATE_KEY_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The trainer's output folder: digested and signed after the command exits. Provenance,
    /// signature and logs are written beside it (DIR.provenance.json, DIR.sig, DIR.logs/).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Pipeline config (default: tunegate.toml when present): gives the dataset lock
    /// ([dataset] lock) and the base model ([model] path).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The dataset lock (default: from the config, else ./tunegate.lock when present). Verified
    /// before the command starts.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// The base model folder or file (default: [model] path of the config).
    #[arg(long, value_name = "PATH")]
    pub base: Option<PathBuf>,
    /// Hyperparameter file (JSON, YAML or TOML). Default: the file named by the trainer's own
    /// `--config`/`--config-file`/`--config_file`/`--hparams` argument, when it exists.
    #[arg(long, value_name = "FILE")]
    pub hparams: Option<PathBuf>,
    /// The container image digest the run uses (`sha256:<64 hex>`).
    #[arg(long, value_name = "DIGEST")]
    pub image_digest: Option<String>,
    /// Where to write the provenance bundle (default DIR.provenance.json, or
    /// tunegate-run.provenance.json without --out-dir).
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,
    /// Start even though the dataset differs from its lock (recorded; `attest verify` reports
    /// it as S047).
    #[arg(long)]
    pub allow_drift: bool,
    /// No chatter on stderr (the trainer's own output still passes through).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// The trainer command and its arguments, after `--`. Executed directly, not through a
    /// shell.
    #[arg(last = true, required = true, num_args = 1.., value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `tunegate attest verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttestVerifyArgs {
    /// The provenance bundle written by `tunegate run` (DIR.provenance.json).
    pub provenance: PathBuf,
    /// The trusted public key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The output folder the provenance is about.
    #[arg(long, value_name = "DIR")]
    pub artifact: PathBuf,
    /// The approved dataset lock: its file digests must equal the data the run recorded.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// The approved base model folder or file: its files must equal the recorded base.
    #[arg(long, value_name = "PATH", conflicts_with = "approved")]
    pub base: Option<PathBuf>,
    /// An approved-model list (`tunegate model approve`); with --model, the entry to compare.
    #[arg(long, value_name = "FILE")]
    pub approved: Option<PathBuf>,
    /// The approved-list entry id (needed when the list has several entries).
    #[arg(long, value_name = "ID", requires = "approved")]
    pub model: Option<String>,
}

pub(crate) fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    tunegate_core::lock::rfc3339_from_unix(secs)
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let s = default_sig(path);
    let s = s.to_string_lossy();
    PathBuf::from(format!("{}{suffix}", s.trim_end_matches(".sig")))
}

// ---------------------------------------------------------------------------------------------
// Inputs

fn load_config(explicit: Option<&Path>) -> Result<Option<Config>> {
    match explicit {
        Some(p) => Ok(Some(Config::load(p)?)),
        None if Path::new("tunegate.toml").is_file() => {
            Ok(Some(Config::load(Path::new("tunegate.toml"))?))
        }
        None => Ok(None),
    }
}

fn lock_path(a: &RunArgs, cfg: Option<&Config>) -> Option<PathBuf> {
    if let Some(l) = &a.lock {
        return Some(l.clone());
    }
    if let Some(c) = cfg {
        if let Some(d) = &c.dataset {
            return Some(
                c.resolve(
                    d.lock
                        .as_deref()
                        .unwrap_or(Path::new(tunegate_core::lock::FILE_NAME)),
                ),
            );
        }
    }
    let d = PathBuf::from(tunegate_core::lock::FILE_NAME);
    d.is_file().then_some(d)
}

pub(crate) fn record_dataset(path: &Path, allow_drift: bool) -> Result<DatasetRecord> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the dataset lock {} (create it with `tunegate dataset lock`)",
            path.display()
        )
    })?;
    let lock = tunegate_core::lock::Lockfile::load(path)?;
    let drift = tunegate_dataset::lock::verify(path, &tunegate_core::progress::NoProgress)?;
    Ok(DatasetRecord {
        lock_path: path.display().to_string(),
        lock_sha256: tunegate_core::digest::sha256_hex(&bytes),
        content_digest: lock.content_digest(),
        files: lock
            .files
            .iter()
            .map(|f| FileDigest {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
            })
            .collect(),
        drift: drift
            .iter()
            .map(|f| format!("{} {}: {}", f.id, f.check, f.message))
            .collect(),
        allow_drift,
    })
}

pub(crate) fn record_base(path: &Path) -> Result<BaseRecord> {
    let tree =
        tunegate_artifact::hash::hash_tree(path, &tunegate_artifact::hash::HashOptions::default())
            .with_context(|| format!("hashing the base model {}", path.display()))?;
    Ok(BaseRecord {
        path: path.display().to_string(),
        folder_digest: tree.folder_digest(),
        files: tree
            .files
            .iter()
            .map(|f| FileDigest {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
            })
            .collect(),
    })
}

/// The hyperparameter file named by the trainer's own arguments: the value of the first
/// `--config`, `--config-file`, `--config_file` or `--hparams` argument (`--flag VALUE` or
/// `--flag=VALUE`) that is an existing `.json`, `.yaml`, `.yml` or `.toml` file.
pub fn hparams_from_command(argv: &[String]) -> Option<PathBuf> {
    const FLAGS: [&str; 4] = ["--config", "--config-file", "--config_file", "--hparams"];
    let mut it = argv.iter().skip(1).peekable();
    while let Some(a) = it.next() {
        let value = if let Some((f, v)) = a.split_once('=') {
            FLAGS.contains(&f).then(|| v.to_string())
        } else if FLAGS.contains(&a.as_str()) {
            it.peek().map(|v| v.to_string())
        } else {
            None
        };
        if let Some(v) = value {
            let p = PathBuf::from(&v);
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ["json", "yaml", "yml", "toml"].contains(&ext.as_str()) && p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn yaml_to_json(n: &tunegate_infra::yaml::Node) -> Value {
    use tunegate_infra::yaml::Value as Y;
    match &n.value {
        Y::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), yaml_to_json(v)))
                .collect(),
        ),
        Y::Seq(s) => Value::Array(s.iter().map(yaml_to_json).collect()),
        Y::Scalar(t, false) => json!(t),
        Y::Scalar(t, true) => match t.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => Value::Null,
            "true" | "True" | "TRUE" => json!(true),
            "false" | "False" | "FALSE" => json!(false),
            _ => t
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| t.parse::<f64>().map(|f| json!(f)))
                .unwrap_or_else(|_| json!(t)),
        },
    }
}

/// Reads and parses a hyperparameter file into `{path, sha256, format, values}`.
pub fn read_hparams(path: &Path) -> Result<Value> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_HPARAMS_BYTES {
        bail!(
            "{}: {} bytes is larger than a hyperparameter file may be ({} MiB)",
            path.display(),
            meta.len(),
            MAX_HPARAMS_BYTES >> 20
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{}: hyperparameters are not UTF-8 text", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (format, values) = match ext.as_str() {
        "json" => (
            "json",
            serde_json::from_str::<Value>(text)
                .with_context(|| format!("{}: not valid JSON", path.display()))?,
        ),
        "toml" => (
            "toml",
            serde_json::to_value(
                toml::from_str::<toml::Value>(text)
                    .with_context(|| format!("{}: not valid TOML", path.display()))?,
            )?,
        ),
        "yaml" | "yml" => {
            let docs = tunegate_infra::yaml::parse_str(path, text)?;
            (
                "yaml",
                match docs.len() {
                    0 => Value::Null,
                    1 => yaml_to_json(&docs[0]),
                    _ => Value::Array(docs.iter().map(yaml_to_json).collect()),
                },
            )
        }
        other => bail!(
            "{}: unknown hyperparameter format '.{other}' (json, yaml, yml or toml)",
            path.display()
        ),
    };
    Ok(json!({
        "path": path.display().to_string(),
        "sha256": tunegate_core::digest::sha256_hex(&bytes),
        "format": format,
        "values": values,
    }))
}

/// Removes `user:password@` from a URL (remote URLs can carry tokens).
fn strip_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if let Some((_, host)) = auth.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_string()
}

/// Runs a read-only git query with repository-configured helpers (fsmonitor, hooks) disabled, so
/// that recording the state never executes code from the repository.
fn git(cwd: &Path, args: &[&str]) -> std::io::Result<Option<String>> {
    let out = Command::new("git")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
            "--no-optional-locks",
        ])
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string()))
}

/// Reads the commit from `.git/HEAD` without git (dirty state then unknown).
fn git_head_fallback(cwd: &Path) -> Option<String> {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        let dot = d.join(".git");
        let gitdir = if dot.is_dir() {
            Some(dot)
        } else if dot.is_file() {
            std::fs::read_to_string(&dot)
                .ok()
                .and_then(|t| t.strip_prefix("gitdir:").map(|s| d.join(s.trim())))
        } else {
            None
        };
        if let Some(g) = gitdir {
            let head = std::fs::read_to_string(g.join("HEAD")).ok()?;
            let head = head.trim();
            let hex = |s: &str| s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
            if hex(head) {
                return Some(head.to_string());
            }
            let r = head.strip_prefix("ref:")?.trim();
            if r.contains("..") {
                return None;
            }
            if let Ok(c) = std::fs::read_to_string(g.join(r)) {
                let c = c.trim();
                return hex(c).then(|| c.to_string());
            }
            let packed = std::fs::read_to_string(g.join("packed-refs")).ok()?;
            return packed.lines().find_map(|l| {
                let (sha, name) = l.split_once(' ')?;
                (name == r && hex(sha)).then(|| sha.to_string())
            });
        }
        dir = d.parent();
    }
    None
}

pub(crate) fn git_state(cwd: &Path) -> GitRecord {
    match git(cwd, &["rev-parse", "HEAD"]) {
        Ok(Some(commit)) => {
            let dirty = git(cwd, &["status", "--porcelain", "--untracked-files=normal"])
                .ok()
                .flatten()
                .map(|s| !s.is_empty());
            let uri = git(cwd, &["config", "--get", "remote.origin.url"])
                .ok()
                .flatten()
                .filter(|s| !s.is_empty())
                .map(|s| strip_userinfo(&s));
            GitRecord {
                commit: Some(commit),
                dirty,
                uri,
                how: "git rev-parse HEAD / git status --porcelain".into(),
            }
        }
        Ok(None) => GitRecord {
            how: "unknown: the working directory is not in a git repository (or git refused it)"
                .into(),
            ..Default::default()
        },
        Err(_) => {
            let commit = git_head_fallback(cwd);
            GitRecord {
                how: if commit.is_some() {
                    "read from .git/HEAD (git not found: dirty state unknown)".into()
                } else {
                    "unknown: git not found and no readable .git/HEAD".into()
                },
                commit,
                ..Default::default()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

fn first_line_with(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Runs a command with a deadline; `None` when absent, failing or too slow.
fn query(cmd: &str, args: &[&str], limit: Duration) -> std::result::Result<String, String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd} not available: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let mut s = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.by_ref().take(1 << 20).read_to_string(&mut s);
                }
                return if st.success() {
                    Ok(s)
                } else {
                    Err(format!("{cmd} exited with {st}"))
                };
            }
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd} did not answer within {}s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{cmd}: {e}")),
        }
    }
}

fn gpus() -> Value {
    match query(
        "nvidia-smi",
        &[
            "--query-gpu=name,driver_version,memory.total,uuid",
            "--format=csv,noheader",
        ],
        Duration::from_secs(20),
    ) {
        Ok(out) => Value::Array(
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let f: Vec<&str> = l.split(',').map(str::trim).collect();
                    json!({"name": f.first(), "driver": f.get(1), "memory": f.get(2), "uuid": f.get(3)})
                })
                .collect(),
        ),
        Err(why) => json!({"absent": why}),
    }
}

/// The packages installed in `$VIRTUAL_ENV`, as `name==version`, read from the site-packages
/// `*.dist-info/METADATA` files (what `pip freeze` lists) without running Python.
fn venv_packages(venv: &Path) -> Value {
    let mut pkgs = Vec::new();
    let lib = venv.join("lib");
    let Ok(rd) = std::fs::read_dir(&lib) else {
        return json!({"virtualEnv": venv.display().to_string(), "packages": null,
            "note": format!("{} is not readable", lib.display())});
    };
    for py in rd.flatten() {
        let sp = py.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&sp) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".dist-info") {
                continue;
            }
            let mut head = String::new();
            if let Ok(f) = std::fs::File::open(e.path().join("METADATA")) {
                let _ = f.take(64 << 10).read_to_string(&mut head);
            }
            if let (Some(n), Some(v)) = (
                first_line_with(&head, "Name"),
                first_line_with(&head, "Version"),
            ) {
                pkgs.push(format!("{n}=={v}"));
            }
        }
    }
    pkgs.sort_by_key(|p| p.to_ascii_lowercase());
    pkgs.dedup();
    json!({"virtualEnv": venv.display().to_string(), "packages": pkgs,
        "how": "site-packages *.dist-info/METADATA (pip freeze equivalent, not executed)"})
}

pub(crate) fn environment(image: Option<&str>) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let os_release = read("/etc/os-release");
    let distro = os_release.lines().find_map(|l| {
        l.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim_matches('"').to_string())
    });
    let cpuinfo = read("/proc/cpuinfo");
    let mem = first_line_with(&read("/proc/meminfo"), "MemTotal").and_then(|v| {
        v.trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    });
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel": (!kernel.is_empty()).then_some(kernel),
        "distribution": distro,
        "cpu": {
            "model": first_line_with(&cpuinfo, "model name"),
            "logicalCores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        },
        "memoryBytes": mem,
        "gpus": gpus(),
        "python": std::env::var_os("VIRTUAL_ENV").map(|v| venv_packages(Path::new(&v))),
        "containerImage": image,
        "tunegate": env!("CARGO_PKG_VERSION"),
    })
}

// ---------------------------------------------------------------------------------------------
// The child process

#[cfg(unix)]
mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};
    static CHILD_PGID: AtomicI32 = AtomicI32::new(0);
    const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    extern "C" fn forward(sig: libc::c_int) {
        let pg = CHILD_PGID.load(Ordering::SeqCst);
        if pg > 0 {
            // SAFETY: kill(2) is async-signal-safe; the target is the child's process group.
            unsafe {
                libc::kill(-pg, sig);
            }
        }
    }

    /// Forwards SIGINT/SIGTERM/SIGHUP to the child's process group until [`restore`].
    pub fn install(pgid: u32) {
        CHILD_PGID.store(pgid as i32, Ordering::SeqCst);
        for s in FORWARDED {
            // SAFETY: installs a handler that only calls an async-signal-safe function.
            unsafe {
                libc::signal(s, forward as *const () as libc::sighandler_t);
            }
        }
    }

    /// Restores the default dispositions.
    pub fn restore() {
        CHILD_PGID.store(0, Ordering::SeqCst);
        for s in FORWARDED {
            // SAFETY: resetting to the default disposition.
            unsafe {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}

fn tee(
    mut from: impl Read + Send + 'static,
    log: std::fs::File,
    to_stdout: bool,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        let mut log = std::io::BufWriter::new(log);
        let mut buf = vec![0u8; 64 << 10];
        let mut term_ok = true;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            log.write_all(&buf[..n])?;
            // A closed terminal must not stop the log (nor the child): keep draining.
            if term_ok {
                let r = if to_stdout {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&buf[..n]).and_then(|_| o.flush())
                } else {
                    let mut o = std::io::stderr().lock();
                    o.write_all(&buf[..n]).and_then(|_| o.flush())
                };
                term_ok = r.is_ok();
            }
        }
        log.flush()
    })
}

fn run_child(argv: &[String], logs: &Path) -> Result<ExitRecord> {
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let out_log = std::fs::File::create(logs.join("stdout.log"))
        .with_context(|| format!("creating {}", logs.join("stdout.log").display()))?;
    let err_log = std::fs::File::create(logs.join("stderr.log"))
        .with_context(|| format!("creating {}", logs.join("stderr.log").display()))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a terminal's Ctrl-C reaches it once (forwarded by us) and
        // a forwarded signal reaches its workers too.
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start the command '{}'", argv[0]))?;
    #[cfg(unix)]
    signals::install(child.id());
    let t_out = tee(child.stdout.take().expect("piped"), out_log, true);
    let t_err = tee(child.stderr.take().expect("piped"), err_log, false);
    let status = child.wait();
    #[cfg(unix)]
    signals::restore();
    let status = status.context("waiting for the command")?;
    for t in [t_out, t_err] {
        match t.join() {
            Ok(r) => r.context("writing the command's log")?,
            Err(_) => bail!("the log writer thread panicked"),
        }
    }
    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    };
    #[cfg(not(unix))]
    let signal = None;
    Ok(ExitRecord {
        code: status.code(),
        signal,
    })
}

// ---------------------------------------------------------------------------------------------
// run

/// Runs `tunegate run`; returns the exit code (see the module doc).
pub fn run(a: &RunArgs) -> Result<u8> {
    let say = |m: String| {
        if !a.quiet {
            eprintln!("tunegate: {m}");
        }
    };
    if let Some(d) = &a.image_digest {
        let ok = d.split_once(':').is_some_and(|(alg, h)| {
            alg == "sha256" && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            bail!("--image-digest '{d}' is not sha256:<64 hex digits>");
        }
    }
    let pw = read_passphrase(a.passphrase_file.as_deref())?;
    let key = tunegate_sign::keys::load_private_key(&a.key, pw.as_deref())?;
    let cfg = load_config(a.config.as_deref())?;

    // Inputs, before anything runs.
    let dataset = match lock_path(a, cfg.as_ref()) {
        Some(p) => Some(record_dataset(&p, a.allow_drift)?),
        None => {
            say("no dataset lock (give --lock or [dataset] in tunegate.toml): the provenance records no training data".into());
            None
        }
    };
    if let Some(d) = &dataset {
        if !d.drift.is_empty() {
            if !a.allow_drift {
                eprintln!(
                    "tunegate: the dataset differs from its lock {} ({} difference(s)); refusing to start the command (pass --allow-drift to run anyway, recorded in the provenance):",
                    d.lock_path,
                    d.drift.len()
                );
                for l in &d.drift {
                    eprintln!("  {l}");
                }
                return Ok(1);
            }
            say(format!(
                "WARNING: the dataset differs from its lock ({} difference(s)); running anyway (--allow-drift, recorded)",
                d.drift.len()
            ));
        } else {
            say(format!(
                "dataset lock {} verified ({} file(s))",
                d.lock_path,
                d.files.len()
            ));
        }
    }
    let base_path = a.base.clone().or_else(|| {
        cfg.as_ref().and_then(|c| {
            c.model
                .as_ref()
                .and_then(|m| m.path.as_ref())
                .map(|p| c.resolve(p))
        })
    });
    let base = base_path.as_deref().map(record_base).transpose()?;
    let hp_path = a
        .hparams
        .clone()
        .or_else(|| hparams_from_command(&a.command));
    let hparams = hp_path.as_deref().map(read_hparams).transpose()?;
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let git = git_state(&cwd);
    let env = environment(a.image_digest.as_deref());

    let (prov_path, logs_dir, output_name) = match &a.out_dir {
        Some(d) => (
            a.provenance
                .clone()
                .unwrap_or_else(|| with_suffix(d, ".provenance.json")),
            with_suffix(d, ".logs"),
            tunegate_sign::manifest::model_name(d),
        ),
        None => (
            a.provenance
                .clone()
                .unwrap_or_else(|| PathBuf::from("tunegate-run.provenance.json")),
            PathBuf::from("tunegate-run.logs"),
            "tunegate-run".to_string(),
        ),
    };

    if let Some(d) = &a.out_dir {
        if d.is_dir() {
            let canon =
                std::fs::canonicalize(d).with_context(|| format!("resolving {}", d.display()))?;
            for p in [&prov_path, &logs_dir] {
                let parent = p
                    .parent()
                    .filter(|x| !x.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if std::fs::canonicalize(parent).is_ok_and(|pp| pp.starts_with(&canon)) {
                    bail!(
                        "{} would be written inside the output folder {} (it would sign its own provenance); give an --out-dir below the current directory or another --provenance",
                        p.display(),
                        d.display()
                    );
                }
            }
            if std::fs::read_dir(d).is_ok_and(|mut r| r.next().is_some()) {
                say(format!(
                    "note: {} is not empty: files already there are covered by the provenance as outputs of this run",
                    d.display()
                ));
            }
        }
    }

    // The run.
    let started_on = now();
    say(format!("running {:?}", a.command));
    let exit = run_child(&a.command, &logs_dir)?;
    let finished_on = now();

    // Outputs.
    let mut logs = Vec::new();
    for n in ["stdout.log", "stderr.log"] {
        let p = logs_dir.join(n);
        let (sha256, size) = tunegate_core::digest::sha256_file(&p)?;
        logs.push(LogRecord {
            name: n.into(),
            uri: p.display().to_string(),
            sha256,
            size,
        });
    }
    let mut outputs = None;
    let mut sig_path = None;
    if let Some(d) = &a.out_dir {
        let has_files = d.is_dir()
            && !tunegate_sign::manifest::walk(d, &Default::default())
                .map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?
                .is_empty();
        if has_files {
            let (bundle, m) = tunegate_sign::sign::sign_model(
                d,
                &key,
                &tunegate_sign::manifest::WalkOptions::default(),
            )?;
            let sp = default_sig(d);
            std::fs::write(&sp, bundle.to_json())
                .with_context(|| format!("writing {}", sp.display()))?;
            sig_path = Some(sp);
            outputs = Some(m);
        } else {
            say(format!(
                "{} holds no files after the run: the provenance's subjects are the logs",
                d.display()
            ));
        }
    }
    let record = RunRecord {
        command: a.command.clone(),
        working_directory: cwd.display().to_string(),
        hparams,
        dataset,
        base,
        git,
        image_digest: a.image_digest.clone(),
        environment: env,
        invocation_id: provenance::new_invocation_id(),
        started_on,
        finished_on,
        exit,
        output_name,
        outputs,
        logs,
        tunegate_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let st = provenance::statement(&record);
    let bundle = tunegate_sign::sign::sign_statement(&st, &key)?;
    std::fs::write(&prov_path, bundle.to_json())
        .with_context(|| format!("writing {}", prov_path.display()))?;
    say(format!(
        "provenance ({} subject(s), {}) -> {}{}",
        st.subject.len(),
        if exit.success() {
            "run succeeded".to_string()
        } else {
            format!(
                "run FAILED: {}",
                match (exit.code, exit.signal) {
                    (_, Some(s)) => format!("signal {s}"),
                    (Some(c), None) => format!("exit {c}"),
                    _ => "unknown".into(),
                }
            )
        },
        prov_path.display(),
        sig_path
            .map(|s| format!(", signature -> {}", s.display()))
            .unwrap_or_default()
    ));
    Ok(match (exit.code, exit.signal) {
        (_, Some(s)) => (128 + s).clamp(1, 255) as u8,
        (Some(0), None) => 0,
        (Some(c), None) => match (c & 0xff) as u8 {
            0 => 1,
            c => c,
        },
        (None, None) => 1,
    })
}

// ---------------------------------------------------------------------------------------------
// attest verify

fn finding(check: &tunegate_core::CheckInfo, msg: String, at: &Path) -> tunegate_core::Finding {
    tunegate_core::Finding::new(check, msg, Location::file(at.display().to_string()))
}

/// Runs `tunegate attest verify` into a `provenance` gate report.
pub fn attest_verify(a: &AttestVerifyArgs, fail_on: Option<Severity>) -> Result<Report> {
    let key = tunegate_sign::keys::load_public_key(&a.key)?;
    let mut r = Report::new("provenance", fail_on.unwrap_or(Severity::High));
    let bytes = std::fs::read(&a.provenance)
        .with_context(|| format!("reading {}", a.provenance.display()))?;
    r.subjects.push(Subject::sha256(
        a.provenance.display().to_string(),
        tunegate_core::digest::sha256_hex(&bytes),
    ));
    let verified = tunegate_sign::bundle::Bundle::read(&a.provenance)?
        .map_err(|e| format!("{}: {e}", a.provenance.display()))
        .and_then(|b| {
            tunegate_sign::verify::verify_bundle(&b, &tunegate_sign::verify::Trust::Key(key))
                .map_err(|f| format!("{} ({} {})", f.reason, f.check.id, f.check.name))
        });
    let vs = match verified {
        Ok(v) => v,
        Err(why) => {
            r.findings.push(finding(
                &checks::PROV_SIGNATURE,
                format!("the provenance signature does not verify: {why}"),
                &a.provenance,
            ));
            r.finish();
            return Ok(r);
        }
    };
    let rec = match Recorded::from_statement(&vs.statement) {
        Ok(x) => x,
        Err(why) => {
            r.findings.push(finding(
                &checks::PROV_INVALID,
                format!(
                    "{}: not a tunegate run provenance: {why}",
                    a.provenance.display()
                ),
                &a.provenance,
            ));
            r.finish();
            return Ok(r);
        }
    };
    for o in &rec.outputs {
        r.subjects.push(Subject::sha256(
            a.artifact.join(&o.name).display().to_string(),
            o.digest.clone(),
        ));
    }
    r.findings
        .extend(provenance::check_outputs(&rec, &a.artifact)?);

    // Data.
    match &a.lock {
        Some(l) => {
            let lock = tunegate_core::lock::Lockfile::load(l)?;
            let reference: Vec<FileDigest> = lock
                .files
                .iter()
                .map(|f| FileDigest {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                })
                .collect();
            if rec.lock.is_none() {
                r.findings.push(finding(
                    &checks::PROV_LOCK_MISMATCH,
                    format!(
                        "the run recorded no dataset lock, so it cannot be shown to have trained on {}",
                        l.display()
                    ),
                    l,
                ));
            } else {
                let diff = provenance::diff_materials(&rec.dataset, &reference);
                if !diff.is_empty() {
                    r.findings.push(
                        finding(
                            &checks::PROV_LOCK_MISMATCH,
                            format!(
                                "the run's dataset differs from {} ({} difference(s)): {}",
                                l.display(),
                                diff.len(),
                                diff[0]
                            ),
                            l,
                        )
                        .evidence(json!({"differences": diff})),
                    );
                }
            }
        }
        None => r.findings.push(finding(
            &checks::PROV_UNCHECKED,
            format!(
                "dataset not checked: the run recorded {} data file(s); pass --lock to compare them with the approved lock",
                rec.dataset.len()
            ),
            &a.provenance,
        )),
    }

    // Base model.
    let base_ref: Option<(String, Vec<FileDigest>, Option<String>)> = if let Some(b) = &a.base {
        let t = record_base(b)?;
        Some((t.path, t.files, None))
    } else if let Some(ap) = &a.approved {
        let bytes = std::fs::read(ap).with_context(|| format!("reading {}", ap.display()))?;
        let list = tunegate_artifact::approved::parse(&ap.display().to_string(), &bytes)?;
        let entry = match &a.model {
            Some(id) => list
                .models
                .iter()
                .find(|m| &m.id == id)
                .with_context(|| format!("{}: no entry with id '{id}'", ap.display()))?,
            None if list.models.len() == 1 => &list.models[0],
            None => bail!(
                "{} has {} entries: name the base model's with --model",
                ap.display(),
                list.models.len()
            ),
        };
        let files = entry
            .files
            .as_ref()
            .map(|f| {
                f.iter()
                    .map(|(p, af)| FileDigest {
                        path: p.clone(),
                        sha256: af.sha256.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some((
            format!("{} entry '{}'", ap.display(), entry.id),
            files,
            entry.folder_digest.clone(),
        ))
    } else {
        None
    };
    match base_ref {
        None => r.findings.push(finding(
            &checks::PROV_UNCHECKED,
            format!(
                "base model not checked: the run recorded {} base file(s); pass --base or --approved to compare them",
                rec.base.len()
            ),
            &a.provenance,
        )),
        Some((name, files, folder)) => {
            let at = a.base.as_deref().or(a.approved.as_deref()).unwrap_or(&a.provenance);
            if rec.base.is_empty() && rec.base_folder.is_none() {
                r.findings.push(finding(
                    &checks::PROV_BASE_MISMATCH,
                    format!("the run recorded no base model, so it cannot be shown to start from {name}"),
                    at,
                ));
            } else {
                let mut diff = if files.is_empty() {
                    Vec::new()
                } else {
                    provenance::diff_materials(&rec.base, &files)
                };
                if let (Some(want), Some(got)) = (&folder, &rec.base_folder) {
                    if files.is_empty() && !want.eq_ignore_ascii_case(&got.digest) {
                        diff.push(format!(
                            "folder digest: run {}, approved {want}",
                            got.digest
                        ));
                    }
                }
                if !diff.is_empty() {
                    r.findings.push(
                        finding(
                            &checks::PROV_BASE_MISMATCH,
                            format!(
                                "the run's base model differs from {name} ({} difference(s)): {}",
                                diff.len(),
                                diff[0]
                            ),
                            at,
                        )
                        .evidence(json!({"differences": diff})),
                    );
                }
            }
        }
    }
    r.findings.extend(provenance::run_findings(
        &rec,
        &a.provenance.display().to_string(),
    ));
    for n in &vs.notes {
        eprintln!("tunegate: note: {n}");
    }
    r.summary.records = Some(rec.outputs.len() as u64);
    r.finish();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_from_remotes() {
        assert_eq!(
            strip_userinfo("https://user:ghp_secret@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            strip_userinfo("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
        assert_eq!(strip_userinfo("https://h/x@y"), "https://h/x@y");
    }

    #[test]
    fn hparams_are_found_in_the_trainer_arguments() {
        let d = tempfile::tempdir().unwrap();
        let y = d.path().join("hp.yaml");
        std::fs::write(&y, "lr: 1\n").unwrap();
        let ys = y.display().to_string();
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            hparams_from_command(&argv(&["python", "t.py", "--config", &ys])),
            Some(y.clone())
        );
        assert_eq!(
            hparams_from_command(&argv(&["python", "t.py", &format!("--config_file={ys}")])),
            Some(y.clone())
        );
        // Not an existing file of a known format: nothing is guessed.
        assert_eq!(
            hparams_from_command(&argv(&["python", "t.py", "--config", "missing.yaml"])),
            None
        );
        assert_eq!(
            hparams_from_command(&argv(&["python", "t.py", "--other", &ys])),
            None
        );
        let v = read_hparams(&y).unwrap();
        assert_eq!(v["values"]["lr"], 1);
        assert_eq!(v["format"], "yaml");
    }
}
