//! `tunegate deps check`: Python dependency hygiene for the fine-tuning environment.
//!
//! Reads requirements files (with `-r`/`-c` includes relative to the including file, `\`
//! continuations, `--hash`, environment markers, extras), `pip freeze` output, `uv.lock` and
//! `poetry.lock` into one list of [`Dep`]s, then checks pins (I021), hashes (I022), direct URL
//! and VCS installs (I023), index overrides (I024), the shipped known-compromised list (I025),
//! OSV advisories (I026) and ML packages whose loaders execute code (I027).
use crate::checks::*;
use crate::osv::{compromised, find_compromised, Advisory};
use crate::pep440::{normalize_name, Version};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// Deepest `-r` include chain.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// One dependency as a file states it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dep {
    /// The file it is stated in.
    pub file: String,
    /// 1-based line where the statement starts.
    pub line: u64,
    /// Normalised name (empty when a bare URL names none).
    pub name: String,
    /// The pinned version, when pinned to exactly one.
    pub version: Option<String>,
    /// The specifier as written (`>=1.2,<2`), empty when none.
    pub spec: String,
    /// sha256 hashes.
    pub hashes: Vec<String>,
    /// Direct URL, VCS or path source.
    pub url: Option<String>,
    /// A non-default index or registry the lockfile records for it.
    pub index: Option<String>,
}

/// An option line found while reading (index override and the like).
#[derive(Debug, Clone, PartialEq)]
pub struct OptionLine {
    /// File.
    pub file: String,
    /// Line.
    pub line: u64,
    /// `--extra-index-url`.
    pub option: String,
    /// Its value.
    pub value: String,
}

/// Everything read from dependency files.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Dependencies.
    pub deps: Vec<Dep>,
    /// Index-affecting options.
    pub options: Vec<OptionLine>,
    /// Files read (includes followed), for the report's subjects.
    pub files: Vec<PathBuf>,
}

const DEFAULT_INDEXES: &[&str] = &["https://pypi.org/simple", "https://pypi.org/simple/"];

/// Reads one dependency file, choosing the format by name (`uv.lock`, `poetry.lock`, anything
/// else as a requirements / pip-freeze file).
pub fn read(path: &Path, out: &mut Parsed) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name {
        "uv.lock" => read_uv(path, out),
        "poetry.lock" => read_poetry(path, out),
        _ => read_requirements(path, out, 0, &mut Vec::new()),
    }
}

fn logical_lines(text: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0u64;
    for (i, raw) in text.lines().enumerate() {
        if cur.is_empty() {
            start = i as u64 + 1;
        }
        // Comments: `#` at the start or after whitespace.
        let mut line = raw;
        let b = raw.as_bytes();
        for (j, &c) in b.iter().enumerate() {
            if c == b'#' && (j == 0 || b[j - 1].is_ascii_whitespace()) {
                line = &raw[..j];
                break;
            }
        }
        if let Some(l) = line.trim_end().strip_suffix('\\') {
            cur.push_str(l);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        if !cur.trim().is_empty() {
            out.push((start, cur.trim().to_string()));
        }
        cur.clear();
    }
    if !cur.trim().is_empty() {
        out.push((start, cur.trim().to_string()));
    }
    out
}

fn split_opt(line: &str) -> (String, String) {
    // `--opt=value`, `--opt value`, `-r value`, `-rvalue`.
    if let Some((o, v)) = line.split_once('=') {
        if !o.contains(' ') && o.starts_with("--") {
            return (o.to_string(), v.trim().to_string());
        }
    }
    match line.split_once(char::is_whitespace) {
        Some((o, v)) => (o.to_string(), v.trim().to_string()),
        None if line.len() > 2 && line.is_char_boundary(2) && !line.starts_with("--") => {
            (line[..2].to_string(), line[2..].trim().to_string())
        }
        None => (line.to_string(), String::new()),
    }
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    [
        "http://", "https://", "file:", "git+", "hg+", "svn+", "bzr+", "git://", "ssh://",
    ]
    .iter()
    .any(|p| l.starts_with(p))
        || s.starts_with("./")
        || s.starts_with("../")
        || s.starts_with('/')
        || l.ends_with(".whl")
        || l.ends_with(".tar.gz")
        || l.ends_with(".zip")
}

/// Parses one requirement line (options already stripped of `--hash`).
fn parse_requirement(file: &str, line: u64, text: &str, hashes: Vec<String>) -> Result<Dep> {
    let (req, _marker) = match text.split_once(';') {
        Some((r, m)) if !r.contains("://") || r.contains(" @ ") => (r.trim(), Some(m.trim())),
        _ => (text.trim(), None),
    };
    let mut dep = Dep {
        file: file.to_string(),
        line,
        name: String::new(),
        version: None,
        spec: String::new(),
        hashes,
        url: None,
        index: None,
    };
    if is_url(req) {
        dep.url = Some(req.to_string());
        if let Some(egg) = req.split("#egg=").nth(1) {
            dep.name = normalize_name(egg.split('&').next().unwrap_or(""));
        }
        return Ok(dep);
    }
    if let Some((n, u)) = req.split_once(" @ ").or_else(|| {
        req.split_once('@')
            .filter(|(_, u)| u.trim_start().contains(':') || u.trim_start().starts_with('.'))
    }) {
        dep.name = normalize_name(n.split('[').next().unwrap_or(n));
        dep.url = Some(u.trim().to_string());
        return Ok(dep);
    }
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    let name = &req[..end];
    if name.is_empty() {
        return Err(Error::parse(
            file,
            line,
            format!("cannot read requirement '{text}'"),
        ));
    }
    dep.name = normalize_name(name);
    let mut rest = req[end..].trim();
    if rest.starts_with('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| Error::parse(file, line, format!("unclosed extras in '{text}'")))?;
        rest = rest[close + 1..].trim();
    }
    let rest = rest.trim_start_matches('(').trim_end_matches(')').trim();
    dep.spec = rest.split_whitespace().collect::<Vec<_>>().join("");
    if !dep.spec.is_empty() {
        let ok_chars = dep
            .spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=<>!~,.*+-_".contains(&b));
        if !ok_chars || !dep.spec.starts_with(['=', '<', '>', '!', '~']) {
            return Err(Error::parse(
                file,
                line,
                format!("cannot read version specifier '{rest}' of {name}"),
            ));
        }
    }
    let clauses: Vec<&str> = dep.spec.split(',').filter(|c| !c.is_empty()).collect();
    if clauses.len() == 1 {
        let c = clauses[0];
        let v = c.strip_prefix("===").or_else(|| c.strip_prefix("=="));
        if let Some(v) = v.filter(|v| !v.contains('*')) {
            dep.version = Some(v.to_string());
        }
    }
    Ok(dep)
}

fn read_requirements(
    path: &Path,
    out: &mut Parsed,
    depth: usize,
    stack: &mut Vec<PathBuf>,
) -> Result<()> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(Error::parse(
            path,
            0,
            format!("-r includes nested deeper than {MAX_INCLUDE_DEPTH}"),
        ));
    }
    let canon = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    if stack.contains(&canon) {
        return Err(Error::parse(path, 0, "-r include cycle"));
    }
    stack.push(canon);
    let text = crate::error::read_text(path)?;
    out.files.push(path.to_path_buf());
    let file = path.display().to_string();
    for (line, l) in logical_lines(&text) {
        if l.starts_with('-') && !l.starts_with("--hash") {
            let (opt, val) = split_opt(&l);
            match opt.as_str() {
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    let inc = path.parent().unwrap_or(Path::new(".")).join(&val);
                    if is_url(&val) && !val.starts_with('.') && !val.starts_with('/') {
                        out.options.push(OptionLine {
                            file: file.clone(),
                            line,
                            option: opt,
                            value: val,
                        });
                        continue;
                    }
                    read_requirements(&inc, out, depth + 1, stack)?;
                }
                "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links"
                | "--trusted-host" => {
                    out.options.push(OptionLine {
                        file: file.clone(),
                        line,
                        option: opt,
                        value: val,
                    });
                }
                "-e" | "--editable" => {
                    let mut d = parse_requirement(&file, line, &val, Vec::new())?;
                    if d.url.is_none() {
                        d.url = Some(val.clone());
                    }
                    out.deps.push(d);
                }
                "--no-index" | "--require-hashes" | "--pre" | "--prefer-binary" | "--no-binary"
                | "--only-binary" | "--use-feature" | "--config-settings" | "--global-option" => {}
                other => {
                    return Err(Error::parse(
                        path,
                        line,
                        format!("unknown option '{other}'"),
                    ));
                }
            }
            continue;
        }
        // Requirement with per-requirement options (`--hash=sha256:...`).
        let mut hashes = Vec::new();
        let mut req = String::new();
        let mut toks = l.split_whitespace().peekable();
        while let Some(t) = toks.next() {
            if let Some(h) = t
                .strip_prefix("--hash=")
                .or_else(|| (t == "--hash").then(|| toks.next().unwrap_or("")))
            {
                match h.split_once(':') {
                    Some(("sha256", hex)) if !hex.is_empty() => hashes.push(hex.to_string()),
                    Some((algo, hex)) if !algo.is_empty() && !hex.is_empty() => {
                        hashes.push(h.to_string())
                    }
                    _ => {
                        return Err(Error::parse(
                            path,
                            line,
                            format!("--hash '{h}' is not algorithm:hex"),
                        ))
                    }
                }
            } else if t.starts_with("--") {
                // Other per-requirement options (--config-settings) carry no pin or source.
            } else {
                if !req.is_empty() {
                    req.push(' ');
                }
                req.push_str(t);
            }
        }
        out.deps.push(parse_requirement(&file, line, &req, hashes)?);
    }
    stack.pop();
    Ok(())
}

fn package_lines(text: &str) -> Vec<u64> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[package]]")
        .map(|(i, _)| i as u64 + 2)
        .collect()
}

fn read_uv(path: &Path, out: &mut Parsed) -> Result<()> {
    let text = crate::error::read_text(path)?;
    out.files.push(path.to_path_buf());
    let v: toml::Value =
        toml::from_str(&text).map_err(|e| Error::parse(path, 0, format!("not TOML: {e}")))?;
    let lines = package_lines(&text);
    let file = path.display().to_string();
    for (i, p) in v
        .get("package")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let line = lines.get(i).copied().unwrap_or(0);
        let name = p
            .get("name")
            .and_then(|x| x.as_str())
            .ok_or_else(|| Error::parse(path, line, "[[package]] without name"))?;
        let version = p.get("version").and_then(|x| x.as_str()).map(String::from);
        let src = p.get("source").and_then(|x| x.as_table());
        let mut dep = Dep {
            file: file.clone(),
            line,
            name: normalize_name(name),
            version: version.clone(),
            spec: version
                .as_ref()
                .map(|v| format!("=={v}"))
                .unwrap_or_default(),
            hashes: Vec::new(),
            url: None,
            index: None,
        };
        if let Some(src) = src {
            if let Some(r) = src.get("registry").and_then(|x| x.as_str()) {
                if !DEFAULT_INDEXES.contains(&r) {
                    dep.index = Some(r.to_string());
                }
            } else if src.contains_key("editable") || src.contains_key("virtual") {
                let p = src
                    .get("editable")
                    .or_else(|| src.get("virtual"))
                    .and_then(|x| x.as_str())
                    .unwrap_or("");
                if p == "." {
                    continue; // the project itself
                }
                dep.url = Some(format!("path {p}"));
            } else {
                for k in ["git", "url", "path", "directory"] {
                    if let Some(u) = src.get(k).and_then(|x| x.as_str()) {
                        dep.url = Some(if k == "git" {
                            format!("git+{u}")
                        } else {
                            u.to_string()
                        });
                        break;
                    }
                }
            }
        }
        let mut push_hash = |t: Option<&toml::Value>| {
            if let Some(h) = t.and_then(|t| t.get("hash")).and_then(|h| h.as_str()) {
                dep.hashes.push(h.trim_start_matches("sha256:").to_string());
            }
        };
        push_hash(p.get("sdist"));
        for w in p
            .get("wheels")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            push_hash(Some(w));
        }
        out.deps.push(dep);
    }
    Ok(())
}

fn read_poetry(path: &Path, out: &mut Parsed) -> Result<()> {
    let text = crate::error::read_text(path)?;
    out.files.push(path.to_path_buf());
    let v: toml::Value =
        toml::from_str(&text).map_err(|e| Error::parse(path, 0, format!("not TOML: {e}")))?;
    let lines = package_lines(&text);
    let file = path.display().to_string();
    let meta_files = v
        .get("metadata")
        .and_then(|m| m.get("files"))
        .and_then(|f| f.as_table());
    for (i, p) in v
        .get("package")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let line = lines.get(i).copied().unwrap_or(0);
        let name = p
            .get("name")
            .and_then(|x| x.as_str())
            .ok_or_else(|| Error::parse(path, line, "[[package]] without name"))?;
        let version = p.get("version").and_then(|x| x.as_str()).map(String::from);
        let mut dep = Dep {
            file: file.clone(),
            line,
            name: normalize_name(name),
            version: version.clone(),
            spec: version
                .as_ref()
                .map(|v| format!("=={v}"))
                .unwrap_or_default(),
            hashes: Vec::new(),
            url: None,
            index: None,
        };
        if let Some(src) = p.get("source").and_then(|x| x.as_table()) {
            let ty = src.get("type").and_then(|x| x.as_str()).unwrap_or("");
            let url = src.get("url").and_then(|x| x.as_str()).unwrap_or("");
            match ty {
                "legacy" => dep.index = Some(url.to_string()),
                "git" => dep.url = Some(format!("git+{url}")),
                _ => dep.url = Some(format!("{ty} {url}")),
            }
        }
        let files = p.get("files").and_then(|x| x.as_array()).or_else(|| {
            meta_files
                .and_then(|m| m.get(name))
                .and_then(|x| x.as_array())
        });
        for f in files.into_iter().flatten() {
            if let Some(h) = f.get("hash").and_then(|h| h.as_str()) {
                dep.hashes.push(h.trim_start_matches("sha256:").to_string());
            }
        }
        out.deps.push(dep);
    }
    Ok(())
}

/// ML packages whose loading APIs execute code from the loaded file, with the call to prefer.
pub const CODE_LOADERS: &[(&str, &str)] = &[
    ("torch", "torch.load unpickles: pass weights_only=True (the default from PyTorch 2.6) or load safetensors"),
    ("transformers", "from_pretrained(trust_remote_code=True) runs repository code and .bin weights are pickles: keep trust_remote_code=False and pass use_safetensors=True"),
    ("diffusers", "pipelines can pull custom code and pickle weights: pass use_safetensors=True and no custom_pipeline from untrusted repositories"),
    ("sentence-transformers", "models may need trust_remote_code: keep it False and load safetensors"),
    ("datasets", "load_dataset with a loading script runs it: pass trust_remote_code=False and prefer Parquet/JSONL data"),
    ("joblib", "joblib.load unpickles: never load untrusted files; use skops.io or safetensors for models"),
    ("dill", "dill.load unpickles arbitrary code: never load untrusted files"),
    ("cloudpickle", "cloudpickle.load unpickles arbitrary code: never load untrusted files"),
    ("numpy", "numpy.load(allow_pickle=True) unpickles object arrays: keep allow_pickle=False"),
    ("pandas", "pandas.read_pickle unpickles: read Parquet or CSV instead"),
    ("scikit-learn", "models are saved with pickle/joblib: load with skops.io.load and a trusted-types list"),
    ("keras", "load_model runs Lambda layers: keep safe_mode=True (Keras 3) and avoid legacy H5 models from untrusted sources"),
    ("tensorflow", "SavedModels and Keras H5 files can carry code (Lambda layers, PyFunc): load only trusted models, with safe_mode=True"),
    ("tf-keras", "load_model runs Lambda layers: pass safe_mode=True and avoid untrusted H5 models"),
    ("mlflow", "mlflow.pyfunc.load_model unpickles the model's Python object: load only registry-verified models"),
];

/// Checks parsed dependencies.
pub fn check_parsed(p: &Parsed, advisories: &[Advisory]) -> Vec<Finding> {
    let mut out = Vec::new();
    let bad = compromised();
    let loc = |d: &Dep| {
        let mut l = Location::file(&d.file).field(if d.name.is_empty() {
            "requirement".to_string()
        } else {
            d.name.clone()
        });
        l.line = Some(d.line);
        l
    };
    for o in &p.options {
        let default = matches!(o.option.as_str(), "-i" | "--index-url")
            && DEFAULT_INDEXES
                .iter()
                .any(|d| d.trim_end_matches('/') == o.value.trim_end_matches('/'));
        if default {
            continue;
        }
        let what = match o.option.as_str() {
            "--extra-index-url" => "adds a second index: pip takes the highest version from either, so a public package with an internal name wins (dependency confusion)",
            "-i" | "--index-url" => "replaces the package index: every package comes from it",
            "-f" | "--find-links" => "adds a place to find packages outside the index",
            "--trusted-host" => "turns off TLS verification for a host",
            _ => "includes requirements from a URL",
        };
        let mut l = Location::file(&o.file).field(o.option.clone());
        l.line = Some(o.line);
        out.push(
            Finding::new(
                &DEP_INDEX_OVERRIDE,
                format!("{} {} {what}", o.option, o.value),
                l,
            )
            .evidence(serde_json::json!({"option": o.option, "value": o.value})),
        );
    }
    for d in &p.deps {
        let label = if d.name.is_empty() {
            d.url.clone().unwrap_or_default()
        } else {
            d.name.clone()
        };
        if let Some(u) = &d.url {
            out.push(Finding::new(&DEP_DIRECT_URL, format!("{label} is installed from {u}: no index, version pin or (for VCS/paths) hash can vouch for it"), loc(d)));
        } else if d.version.is_none() {
            out.push(Finding::new(&DEP_UNPINNED, format!("{label} is not pinned to one version ('{}'): each install may resolve to a different, possibly malicious, release", if d.spec.is_empty() { "no specifier" } else { &d.spec }), loc(d)));
        }
        if let Some(ix) = &d.index {
            out.push(Finding::new(
                &DEP_INDEX_OVERRIDE,
                format!("{label} comes from the non-default index {ix}"),
                loc(d),
            ));
        }
        if d.hashes.is_empty() && !d.url.as_deref().is_some_and(|u| u.starts_with("path ")) {
            out.push(Finding::new(
                &DEP_NO_HASH,
                format!(
                    "{label} has no hash: a changed or substituted file would install silently"
                ),
                loc(d),
            ));
        }
        if let Some(c) = find_compromised(&bad, &d.name, d.version.as_deref()) {
            let vs = if c.versions.iter().any(|v| v == "*") {
                "every release".to_string()
            } else {
                c.versions.join(", ")
            };
            out.push(
                Finding::new(
                    &DEP_COMPROMISED,
                    format!(
                        "{}{} is a known-compromised release ({vs}): {}",
                        d.name,
                        d.version
                            .as_deref()
                            .map(|v| format!("=={v}"))
                            .unwrap_or_default(),
                        c.summary
                    ),
                    loc(d),
                )
                .evidence(serde_json::json!({"source": c.source})),
            );
        } else if d.version.is_none() && !d.name.is_empty() {
            // An unpinned requirement that admits a compromised release.
            for c in bad.iter().filter(|c| normalize_name(&c.name) == d.name) {
                let admitted: Vec<&String> = c
                    .versions
                    .iter()
                    .filter(|v| spec_admits(&d.spec, v))
                    .collect();
                if !admitted.is_empty() {
                    out.push(
                        Finding::new(
                            &DEP_COMPROMISED,
                            format!(
                                "{} '{}' admits known-compromised release(s) {}: {}",
                                d.name,
                                d.spec,
                                admitted
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                c.summary
                            ),
                            loc(d),
                        )
                        .severity(Severity::High)
                        .evidence(serde_json::json!({"source": c.source})),
                    );
                    break;
                }
            }
        }
        if let Some(v) = &d.version {
            for a in advisories {
                if a.affected
                    .iter()
                    .any(|af| af.name == d.name && af.matches(v))
                {
                    let alias = if a.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", a.aliases.join(", "))
                    };
                    out.push(
                        Finding::new(
                            &DEP_ADVISORY,
                            format!(
                                "{}=={v} is affected by {}{alias}: {}",
                                d.name, a.id, a.summary
                            ),
                            loc(d),
                        )
                        .severity(a.severity.max(Severity::Low))
                        .evidence(serde_json::json!({"advisory": a.id, "file": a.file})),
                    );
                }
            }
        }
        if let Some((_, safe)) = CODE_LOADERS.iter().find(|(n, _)| *n == d.name) {
            out.push(Finding::new(
                &DEP_CODE_LOADING,
                format!("{}: {safe}", d.name),
                loc(d),
            ));
        }
    }
    out
}

/// True when specifier `spec` (`>=8.3,<9`, empty = any) admits version `v` (`*` = some release).
pub fn spec_admits(spec: &str, v: &str) -> bool {
    if v == "*" {
        return true;
    }
    let Some(ver) = Version::parse(v) else {
        return false;
    };
    spec.split(',').filter(|c| !c.is_empty()).all(|c| {
        let (op, rhs) = ["~=", "==", "!=", "<=", ">=", "<", ">", "==="]
            .iter()
            .filter(|op| c.starts_with(**op))
            .max_by_key(|op| op.len())
            .map(|op| (*op, &c[op.len()..]))
            .unwrap_or(("==", c));
        if let Some(prefix) = rhs.strip_suffix(".*") {
            let pre = Version::parse(prefix);
            let m = pre.is_some_and(|p| ver.release.starts_with(&p.release));
            return if op == "!=" { !m } else { m };
        }
        let Some(r) = Version::parse(rhs) else {
            return true;
        };
        match op {
            "==" | "===" => ver == r,
            "!=" => ver != r,
            "<=" => ver <= r,
            ">=" => ver >= r,
            "<" => ver < r,
            ">" => ver > r,
            "~=" => {
                let mut up = r.release.clone();
                if up.len() >= 2 {
                    up.pop();
                }
                if let Some(l) = up.last_mut() {
                    *l += 1;
                }
                ver >= r && ver.release.as_slice() < up.as_slice()
            }
            _ => true,
        }
    })
}

/// Checks dependency files and returns the `deps` gate report.
pub fn check(files: &[PathBuf], advisory_files: &[PathBuf], fail_on: Severity) -> Result<Report> {
    let mut p = Parsed::default();
    for f in files {
        read(f, &mut p)?;
    }
    let mut adv = Vec::new();
    for a in advisory_files {
        adv.extend(crate::osv::load_advisories(a)?);
    }
    let mut rep = Report::new("deps", fail_on);
    for f in p.files.iter().chain(advisory_files) {
        if f.is_file() {
            let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            rep.subjects.push(Subject::sha256(
                f.display().to_string(),
                tunegate_core::digest::sha256_hex(&bytes),
            ));
        }
    }
    rep.summary.records = Some(p.deps.len() as u64);
    rep.findings = check_parsed(&p, &adv);
    rep.finish();
    Ok(rep)
}
