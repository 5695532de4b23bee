//! `tunegate lint`: static analysis of pipeline source (Python, Jupyter notebooks, shell and
//! YAML) for the ways a training or serving pipeline loads untrusted code or pickles.
//!
//! Python is tokenized by [`tokenize`] (comments and string literals never match), import
//! aliases are resolved (`import torch as t`, `from pickle import load as l`), and every call
//! site is parsed into its callee and positional/keyword/`*`/`**` arguments. Rules then run on the
//! resolved callee name (`t.load` is `torch.load`) and the literal values of its keyword
//! arguments; findings use ids `M040`–`M052` of [`crate::checks`].
//!
//! **"On downloads" heuristic (same-file taint).** A file (or notebook) *fetches* when it calls
//! `hf_hub_download`, `snapshot_download`, `cached_download`, `urlretrieve`, `urlopen`,
//! `download_url_to_file`, `load_state_dict_from_url`, `requests`/`httpx` `get`/`post`/
//! `request`/`stream`, `wget.download` or `gdown.download`, holds a string literal that is a
//! `wget`/`curl` command, or (notebooks) runs `!wget`, `!curl`, `huggingface-cli download`,
//! `hf download` or `git clone` in a shell line. In a fetching file every deserialisation finding
//! (torch.load, pickle family, joblib, numpy allow_pickle, pandas read_pickle, unsafe YAML,
//! Keras safe_mode=False) is raised one severity step, and `exec`/`eval` of non-literal text goes
//! from low to high (critical when its argument calls a fetch function directly). No data flow
//! is tracked: the heuristic cannot tell whether the fetched file is the one loaded, and it
//! misses fetches in other modules.
//!
//! Notebooks: code cells share one import namespace (as in a kernel); findings name the cell
//! (`field` = `cells[N]`, 0-based over all cells) and `span` the char range within the cell's
//! source; the line within the cell is in the message and the evidence (`line`, `column`), not
//! in `location.line`, which would be read as a line of the `.ipynb` file. Lines starting with `!` and cell magics
//! `%%bash`/`%%sh`/`%%script`/`%%system` are read as shell; other `%` lines are ignored;
//! `%%writefile` bodies are linted as Python. For plain files `span` is the char range within the
//! whole file (so findings sort in file order) and the 1-based column is in the evidence.
//!
//! Bounded work: files over [`MAX_SOURCE`] bytes are not linted (an `M052` finding says so),
//! the tokenizer and the call parser are linear with no recursion, and at most
//! [`MAX_FINDINGS_PER_FILE`] findings are kept per file.
pub mod tokenize;

use crate::checks;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tokenize::{string_value, tokenize, Kind, Token};
use tunegate_core::{CheckInfo, Finding, Location, Report, Severity, Subject};

/// Files larger than this are not linted (an `M052` finding names them).
pub const MAX_SOURCE: u64 = 4 << 20;

/// At most this many findings are kept per file; the rest are counted in one `M052` finding.
pub const MAX_FINDINGS_PER_FILE: usize = 1000;

/// Call text kept as evidence, in chars.
const MAX_EVIDENCE_CHARS: usize = 200;

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Conventional module aliases assumed when a snippet uses them without importing them.
const CONVENTIONAL: &[(&str, &str)] = &[("np", "numpy"), ("pd", "pandas"), ("tf", "tensorflow")];

const PICKLE_MODULES: &[&str] = &[
    "pickle",
    "cPickle",
    "_pickle",
    "pickle5",
    "dill",
    "cloudpickle",
    "six.moves.cPickle",
];

/// A problem found before columns and char offsets are known.
struct Hit {
    check: &'static CheckInfo,
    severity: Severity,
    /// Byte range in the unit's source.
    start: usize,
    end: usize,
    line: u32,
    message: String,
    fix: &'static str,
    /// Extra evidence fields (merged into the finding's evidence object).
    extra: Value,
    /// Evidence fields quoted from the unit's source (key, byte range), collapsed only for the
    /// findings that are kept.
    quotes: Vec<(&'static str, usize, usize)>,
    /// Raised one step when the file fetches artifacts.
    raise_on_fetch: bool,
}

/// One piece of source: a file, or one notebook cell.
struct Unit {
    src: String,
    field: Option<String>,
    tokens: Vec<Token>,
    /// Shell lines found inside the unit (notebooks): hits and fetch markers.
    shell_hits: Vec<Hit>,
    shell_fetch_line: Option<u32>,
}

impl Unit {
    fn python(src: String, field: Option<String>) -> Self {
        let tokens = tokenize(&src);
        Unit {
            src,
            field,
            tokens,
            shell_hits: Vec::new(),
            shell_fetch_line: None,
        }
    }
    fn tok(&self, i: usize) -> &str {
        self.tokens[i].text(&self.src)
    }
    fn is_op(&self, i: usize, op: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == Kind::Op) && self.tok(i) == op
    }
    fn is_name(&self, i: usize) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == Kind::Name)
    }
}

#[derive(Debug)]
enum ArgKind {
    Positional,
    Star,
    DoubleStar,
    Keyword(String),
}

/// One argument: its kind and the token range of its value.
struct Arg {
    kind: ArgKind,
    start: usize,
    end: usize,
}

/// One parsed call site.
struct Call {
    /// The callee as written (`t.load`).
    written: String,
    /// The callee with its first component resolved through the imports (`torch.load`);
    /// prefixed with `.` when the callee is an attribute of an expression (`f().load`).
    resolved: String,
    /// First token of the callee.
    first: usize,
    /// The matching `)` of the call's `(` (or the token count when unclosed).
    close: usize,
    args: Vec<Arg>,
}

impl Call {
    fn kw(&self, name: &str) -> Option<&Arg> {
        self.args
            .iter()
            .find(|a| matches!(&a.kind, ArgKind::Keyword(k) if k == name))
    }
    fn positional(&self, n: usize) -> Option<&Arg> {
        self.args
            .iter()
            .filter(|a| matches!(a.kind, ArgKind::Positional))
            .nth(n)
    }
    fn has_double_star(&self) -> bool {
        self.args
            .iter()
            .any(|a| matches!(a.kind, ArgKind::DoubleStar))
    }
    fn last(&self) -> &str {
        self.resolved.rsplit('.').next().unwrap_or("")
    }
}

/// The literal value of an argument: `Some(true)` / `Some(false)` for a bare `True` / `False`.
fn literal_bool(u: &Unit, a: &Arg) -> Option<bool> {
    if a.end != a.start + 1 || !u.is_name(a.start) {
        return None;
    }
    match u.tok(a.start) {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

fn arg_text(u: &Unit, a: &Arg) -> String {
    if a.start >= a.end {
        return String::new();
    }
    let s = u.tokens[a.start].start as usize;
    let e = u.tokens[a.end - 1].end as usize;
    collapse(&u.src[s..e])
}

/// Whitespace runs become one space; cut to [`MAX_EVIDENCE_CHARS`].
fn collapse(s: &str) -> String {
    // Look at a bounded prefix only: a call spanning megabytes (nested or unclosed) must not
    // cost its whole length for every call inside it.
    let mut cut = s.len().min(8 * MAX_EVIDENCE_CHARS);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let s = &s[..cut];
    let mut out = String::new();
    for (n, w) in s.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(w);
        if out.len() > 4 * MAX_EVIDENCE_CHARS {
            break;
        }
    }
    if out.chars().count() > MAX_EVIDENCE_CHARS {
        out = out.chars().take(MAX_EVIDENCE_CHARS).collect::<String>() + "…";
    }
    out
}

/// Matching closer of every opening bracket (`u32::MAX` for other tokens; the token count for
/// an opener that is never closed). One pass with an explicit stack.
fn match_brackets(u: &Unit) -> Vec<u32> {
    let n = u.tokens.len();
    let mut close = vec![u32::MAX; n];
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..n {
        if u.tokens[i].kind != Kind::Op {
            continue;
        }
        match u.tok(i) {
            "(" | "[" | "{" => stack.push(i),
            ")" | "]" | "}" => {
                if let Some(o) = stack.pop() {
                    close[o] = i as u32;
                }
            }
            _ => {}
        }
    }
    for o in stack {
        close[o] = n as u32;
    }
    close
}

fn is_stmt_start(u: &Unit, i: usize) -> bool {
    i == 0 || u.tokens[i - 1].kind == Kind::Newline || u.is_op(i - 1, ";") || u.is_op(i - 1, ":")
}

/// Reads a dotted name starting at `i`; returns it and the index after it.
fn dotted(u: &Unit, mut i: usize) -> (String, usize) {
    let mut s = String::new();
    while i < u.tokens.len() {
        let dot = u.is_op(i, ".") || u.is_op(i, "...");
        if !(dot || u.is_name(i) && (s.is_empty() || s.ends_with('.'))) {
            break;
        }
        s.push_str(u.tok(i));
        i += 1;
    }
    (s, i)
}

/// Collects `import` / `from ... import` aliases into `aliases` (local name → dotted target).
fn collect_imports(u: &Unit, aliases: &mut HashMap<String, String>) {
    let n = u.tokens.len();
    let mut i = 0;
    while i < n {
        if !(u.is_name(i) && is_stmt_start(u, i)) {
            i += 1;
            continue;
        }
        match u.tok(i) {
            "import" => {
                // import a.b as c, d
                let mut j = i + 1;
                loop {
                    let (module, k) = dotted(u, j);
                    if module.is_empty() {
                        break;
                    }
                    j = k;
                    if u.is_name(j) && u.tok(j) == "as" && u.is_name(j + 1) {
                        aliases.insert(u.tok(j + 1).to_string(), module);
                        j += 2;
                    }
                    if u.is_op(j, ",") {
                        j += 1;
                    } else {
                        break;
                    }
                }
                i = j.max(i + 1);
            }
            "from" => {
                let (module, mut j) = dotted(u, i + 1);
                if !(u.is_name(j) && u.tok(j) == "import") {
                    i = j.max(i + 1);
                    continue;
                }
                j += 1;
                let paren = u.is_op(j, "(");
                if paren {
                    j += 1;
                }
                while u.is_name(j) {
                    let name = u.tok(j).to_string();
                    j += 1;
                    let local = if u.is_name(j) && u.tok(j) == "as" && u.is_name(j + 1) {
                        j += 2;
                        u.tok(j - 1).to_string()
                    } else {
                        name.clone()
                    };
                    let target = if module.ends_with('.') {
                        format!("{module}{name}")
                    } else {
                        format!("{module}.{name}")
                    };
                    aliases.insert(local, target);
                    if u.is_op(j, ",") {
                        j += 1;
                    } else {
                        break;
                    }
                }
                i = j;
            }
            _ => i += 1,
        }
    }
}

/// Visits every call site of the unit, in source order (one at a time: a file of millions of
/// calls never holds them all).
fn for_each_call(
    u: &Unit,
    close: &[u32],
    aliases: &HashMap<String, String>,
    mut visit: impl FnMut(Call),
) {
    let n = u.tokens.len();
    for p in 1..n {
        if !u.is_op(p, "(") || !u.is_name(p - 1) || KEYWORDS.contains(&u.tok(p - 1)) {
            continue;
        }
        let mut first = p - 1;
        let mut parts = vec![u.tok(first)];
        while first >= 2
            && u.is_op(first - 1, ".")
            && u.is_name(first - 2)
            && !KEYWORDS.contains(&u.tok(first - 2))
        {
            first -= 2;
            parts.push(u.tok(first));
        }
        parts.reverse();
        if first >= 1 && u.is_name(first - 1) && matches!(u.tok(first - 1), "def" | "class") {
            continue;
        }
        let rooted = !(first >= 1 && u.is_op(first - 1, "."));
        let written = parts.join(".");
        let resolved = if !rooted {
            format!(".{written}")
        } else if let Some(t) = aliases.get(parts[0]) {
            std::iter::once(t.as_str())
                .chain(parts[1..].iter().copied())
                .collect::<Vec<_>>()
                .join(".")
        } else if let Some((_, m)) = CONVENTIONAL.iter().find(|(a, _)| *a == parts[0]) {
            std::iter::once(*m)
                .chain(parts[1..].iter().copied())
                .collect::<Vec<_>>()
                .join(".")
        } else {
            written.clone()
        };
        let c = (close[p] as usize).min(n);
        // Split the arguments at top-level commas, jumping over nested brackets.
        let mut args = Vec::new();
        let mut a = p + 1;
        let mut j = p + 1;
        let push = |a: usize, b: usize, args: &mut Vec<Arg>| {
            if a >= b {
                return;
            }
            let kind = if u.is_op(a, "**") {
                ArgKind::DoubleStar
            } else if u.is_op(a, "*") {
                ArgKind::Star
            } else if u.is_name(a) && u.is_op(a + 1, "=") && a + 1 < b {
                ArgKind::Keyword(u.tok(a).to_string())
            } else {
                ArgKind::Positional
            };
            let start = match kind {
                ArgKind::DoubleStar | ArgKind::Star => a + 1,
                ArgKind::Keyword(_) => a + 2,
                ArgKind::Positional => a,
            };
            args.push(Arg {
                kind,
                start,
                end: b,
            });
        };
        while j < c {
            let cl = close[j];
            if cl != u32::MAX {
                j = (cl as usize).max(j) + 1;
                continue;
            }
            if u.is_op(j, ",") {
                push(a, j, &mut args);
                a = j + 1;
            }
            j += 1;
        }
        push(a, c.min(j), &mut args);
        visit(Call {
            written,
            resolved,
            first,
            close: c,
            args,
        });
    }
}

fn call_span(u: &Unit, call: &Call) -> (usize, usize) {
    let s = u.tokens[call.first].start as usize;
    let e = if call.close < u.tokens.len() {
        u.tokens[call.close].end as usize
    } else {
        u.src.len()
    };
    (s, e)
}

fn call_hit(
    u: &Unit,
    call: &Call,
    check: &'static CheckInfo,
    severity: Severity,
    message: String,
    fix: &'static str,
    raise_on_fetch: bool,
) -> Hit {
    let (start, end) = call_span(u, call);
    Hit {
        check,
        severity,
        start,
        end,
        line: u.tokens[call.first].line,
        message,
        fix,
        extra: json!({"callee": call.resolved}),
        quotes: vec![("call", start, end)],
        raise_on_fetch,
    }
}

const FETCH_LAST: &[&str] = &[
    "hf_hub_download",
    "snapshot_download",
    "cached_download",
    "urlretrieve",
    "urlopen",
    "download_url_to_file",
    "load_state_dict_from_url",
];

const FETCH_FULL: &[&str] = &[
    "requests.get",
    "requests.post",
    "requests.request",
    "requests.Session.get",
    "httpx.get",
    "httpx.post",
    "httpx.request",
    "httpx.stream",
    "wget.download",
    "gdown.download",
    "torch.utils.model_zoo.load_url",
];

fn is_fetch(call: &Call) -> bool {
    FETCH_LAST.contains(&call.last()) || FETCH_FULL.contains(&call.resolved.as_str())
}

/// A string literal that is a shell download command (`"wget"`, `"curl -L ..."`).
fn is_fetch_string(text: &str) -> bool {
    string_value(text).is_some_and(|v| {
        let v = v.trim_start();
        ["wget", "curl", "aria2c"]
            .iter()
            .any(|c| v == *c || v.strip_prefix(c).is_some_and(|r| r.starts_with(' ')))
    })
}

/// Applies the call rules to one call.
fn call_rules(u: &Unit, call: &Call, out: &mut Vec<Hit>) {
    let r = call.resolved.as_str();
    let last = call.last();
    // trust_remote_code=True on any call (from_pretrained, pipeline, load_dataset, dict(...)).
    if let Some(a) = call.kw("trust_remote_code") {
        if literal_bool(u, a) == Some(true) {
            let mut h = call_hit(
                u,
                call,
                &checks::LINT_TRUST_REMOTE_CODE,
                checks::LINT_TRUST_REMOTE_CODE.severity,
                format!(
                    "{}(trust_remote_code=True) runs Python code from the model or dataset repository on load",
                    call.written
                ),
                "set trust_remote_code=False; if the custom code is needed, review it, pin revision= to that commit, or vendor it",
                false,
            );
            let t = &u.tokens[a.start - 2];
            h.extra["argument_line"] = json!(t.line);
            out.push(h);
        }
    }
    let module = r.rsplit_once('.').map(|(m, _)| m).unwrap_or("");
    match r {
        "torch.load"
        | "torch.serialization.load"
        | "torch.hub.load_state_dict_from_url"
        | "torch.utils.model_zoo.load_url" => {
            let (sev, msg, fix) = match call.kw("weights_only").map(|a| (a, literal_bool(u, a))) {
                Some((_, Some(true))) => return,
                Some((_, Some(false))) => (
                    Severity::High,
                    format!("{}(weights_only=False) unpickles the checkpoint with the full unpickler: loading it can run arbitrary code", call.written),
                    "pass weights_only=True, or load safetensors weights",
                ),
                Some((a, None)) => (
                    Severity::Medium,
                    format!("{}(weights_only={}) may unpickle with the full unpickler, depending on a runtime value", call.written, arg_text(u, a)),
                    "pass the literal weights_only=True, or load safetensors weights",
                ),
                None => (
                    Severity::Medium,
                    format!(
                        "{} without weights_only=True{} unpickles with the full unpickler on torch < 2.6 (and wherever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set)",
                        call.written,
                        if call.has_double_star() { " (unless **kwargs sets it)" } else { "" }
                    ),
                    "pass weights_only=True, or load safetensors weights",
                ),
            };
            out.push(call_hit(
                u,
                call,
                &checks::LINT_TORCH_LOAD,
                sev,
                msg,
                fix,
                true,
            ));
        }
        "torch.hub.load" => out.push(call_hit(
            u,
            call,
            &checks::LINT_TORCH_HUB,
            checks::LINT_TORCH_HUB.severity,
            format!(
                "{} imports and runs hubconf.py from a GitHub repository",
                call.written
            ),
            "vendor the model code at a reviewed commit and load weights with torch.load(weights_only=True) or safetensors",
            false,
        )),
        "joblib.load" | "sklearn.externals.joblib.load" => out.push(call_hit(
            u,
            call,
            &checks::LINT_JOBLIB,
            checks::LINT_JOBLIB.severity,
            format!(
                "{} unpickles its input: loading a hostile file runs its code",
                call.written
            ),
            "load only files you produced; for models prefer skops.io or safetensors, and scan pickles with `tunegate model scan` first",
            true,
        )),
        "numpy.load"
            if call
                .kw("allow_pickle")
                .is_some_and(|a| literal_bool(u, a) == Some(true)) =>
        {
            out.push(call_hit(
                u,
                call,
                &checks::LINT_NUMPY_PICKLE,
                checks::LINT_NUMPY_PICKLE.severity,
                format!("{}(allow_pickle=True) unpickles object arrays", call.written),
                "drop allow_pickle=True (the default is False) and store arrays without object dtype",
                true,
            ));
        }
        "pandas.read_pickle" => out.push(call_hit(
            u,
            call,
            &checks::LINT_PANDAS_PICKLE,
            checks::LINT_PANDAS_PICKLE.severity,
            format!("{} unpickles its input", call.written),
            "store data frames as Parquet or CSV and read them with read_parquet/read_csv",
            true,
        )),
        "yaml.unsafe_load" | "yaml.unsafe_load_all" => out.push(call_hit(
            u,
            call,
            &checks::LINT_YAML,
            Severity::High,
            format!(
                "{} constructs arbitrary Python objects (!!python/object)",
                call.written
            ),
            "use yaml.safe_load",
            true,
        )),
        "yaml.full_load" | "yaml.full_load_all" => out.push(call_hit(
            u,
            call,
            &checks::LINT_YAML,
            Severity::Medium,
            format!(
                "{} uses FullLoader, which ran arbitrary code before PyYAML 5.4 (CVE-2020-14343)",
                call.written
            ),
            "use yaml.safe_load",
            true,
        )),
        "yaml.load" | "yaml.load_all" => {
            let loader = call.kw("Loader").or_else(|| call.positional(1));
            let name = loader.map(|a| arg_text(u, a));
            let tail = name
                .as_deref()
                .map(|n| n.rsplit('.').next().unwrap_or(n).to_string());
            let (sev, why) = match tail.as_deref() {
                Some("SafeLoader" | "CSafeLoader" | "BaseLoader" | "CBaseLoader") => return,
                Some("Loader" | "UnsafeLoader" | "CLoader" | "CUnsafeLoader") => (
                    Severity::High,
                    "with an unsafe loader constructs arbitrary Python objects",
                ),
                Some("FullLoader" | "CFullLoader") => (
                    Severity::Medium,
                    "with FullLoader ran arbitrary code before PyYAML 5.4",
                ),
                Some(_) => (Severity::Medium, "with a loader tunegate cannot resolve may construct arbitrary Python objects"),
                None => (
                    Severity::Medium,
                    "without Loader= is the unsafe loader on PyYAML < 5.1",
                ),
            };
            out.push(call_hit(
                u,
                call,
                &checks::LINT_YAML,
                sev,
                format!("{} {why}", call.written),
                "use yaml.safe_load, or pass Loader=yaml.SafeLoader",
                true,
            ));
        }
        _ if PICKLE_MODULES.contains(&module)
            && matches!(last, "load" | "loads" | "Unpickler" | "load_session") =>
        {
            out.push(call_hit(
                u,
                call,
                &checks::LINT_PICKLE,
                checks::LINT_PICKLE.severity,
                format!("{} unpickles its input: loading a hostile pickle runs its code", call.written),
                "never unpickle data you did not produce; use safetensors or JSON, and scan pickles with `tunegate model scan` first",
                true,
            ));
        }
        "exec" | "eval" | "builtins.exec" | "builtins.eval" => {
            let Some(a) = call.positional(0) else { return };
            if a.end == a.start + 1 && u.tokens[a.start].kind == Kind::Str {
                return;
            }
            // Only the argument's first tokens: nested exec(exec(...)) stays linear.
            let head = a.start..a.end.min(a.start + 64);
            let direct = head.clone().any(|i| {
                u.is_name(i)
                    && (FETCH_LAST.contains(&u.tok(i))
                        || matches!(u.tok(i), "requests" | "httpx")
                            && u.is_op(i + 1, ".")
                            && u.is_name(i + 2)
                            && matches!(u.tok(i + 2), "get" | "post" | "request" | "stream"))
            });
            let mut h = call_hit(
                u,
                call,
                &checks::LINT_EXEC,
                if direct {
                    Severity::Critical
                } else {
                    Severity::Low
                },
                format!(
                    "{}() runs text computed at run time{}",
                    call.written,
                    if direct { ", fetched from the network" } else { "" }
                ),
                "never exec or eval fetched text; ship the code with the pipeline",
                false,
            );
            if a.start < a.end {
                h.quotes.push((
                    "argument",
                    u.tokens[a.start].start as usize,
                    u.tokens[a.end - 1].end as usize,
                ));
            }
            out.push(h);
        }
        _ => {}
    }
    if last == "from_pretrained"
        && call
            .kw("use_safetensors")
            .is_some_and(|a| literal_bool(u, a) == Some(false))
    {
        out.push(call_hit(
            u,
            call,
            &checks::LINT_NO_SAFETENSORS,
            checks::LINT_NO_SAFETENSORS.severity,
            format!(
                "{}(use_safetensors=False) loads pickle weights (pytorch_model.bin) instead of safetensors",
                call.written
            ),
            "drop use_safetensors=False; publish and load safetensors weights",
            false,
        ));
    }
    if last == "load_model"
        && r.contains("keras")
        && call
            .kw("safe_mode")
            .is_some_and(|a| literal_bool(u, a) == Some(false))
    {
        out.push(call_hit(
            u,
            call,
            &checks::LINT_KERAS_UNSAFE,
            checks::LINT_KERAS_UNSAFE.severity,
            format!(
                "{}(safe_mode=False) deserialises Lambda layers, whose code runs on load",
                call.written
            ),
            "drop safe_mode=False and replace Lambda layers with registered custom layers",
            true,
        ));
    }
}

/// `{"trust_remote_code": True}` dict entries and `kw["trust_remote_code"] = True` assignments.
fn trust_remote_code_literals(u: &Unit, out: &mut Vec<Hit>) {
    let n = u.tokens.len();
    for i in 0..n {
        if u.tokens[i].kind != Kind::Str || string_value(u.tok(i)) != Some("trust_remote_code") {
            continue;
        }
        let value_at = if u.is_op(i + 1, ":") {
            i + 2
        } else if u.is_op(i + 1, "]") && u.is_op(i + 2, "=") {
            i + 3
        } else {
            continue;
        };
        if !(u.is_name(value_at) && u.tok(value_at) == "True") {
            continue;
        }
        let start = u.tokens[i].start as usize;
        let end = u.tokens[value_at].end as usize;
        out.push(Hit {
            check: &checks::LINT_TRUST_REMOTE_CODE,
            severity: checks::LINT_TRUST_REMOTE_CODE.severity,
            start,
            end,
            line: u.tokens[i].line,
            message: "trust_remote_code set to True in a dict or keyword mapping: the loader it reaches runs repository code".into(),
            fix: "set trust_remote_code=False; if the custom code is needed, review it, pin revision= to that commit, or vendor it",
            extra: json!({}),
            quotes: vec![("call", start, end)],
            raise_on_fetch: false,
        });
    }
}

/// Shell text (a `.sh` file, a notebook `!` line or `%%bash` cell): trust-remote-code flags and
/// download commands. `line` is the 1-based line of `text`'s first byte, `base` its byte offset.
fn shell_scan(text: &str, line: u32, base: usize, hits: &mut Vec<Hit>) -> Option<u32> {
    let mut fetch = None;
    let mut offset = 0;
    for (k, raw) in text.split_inclusive('\n').enumerate() {
        let this_line = line.saturating_add(k as u32);
        let start = base + offset;
        offset += raw.len();
        let code = raw.trim_end_matches(['\n', '\r']);
        let code = if code.trim_start().starts_with('#') {
            ""
        } else {
            code.split(" #").next().unwrap_or(code)
        };
        let words: Vec<&str> = code
            .split(|c: char| c.is_whitespace() || matches!(c, ';' | '|' | '&' | '!' | '(' | ')'))
            .filter(|w| !w.is_empty())
            .collect();
        let fetches = words
            .iter()
            .any(|w| matches!(*w, "wget" | "curl" | "aria2c"))
            || words.windows(2).any(|w| {
                matches!(
                    (w[0], w[1]),
                    ("huggingface-cli" | "hf", "download") | ("git", "clone")
                )
            });
        if fetches && fetch.is_none() {
            fetch = Some(this_line);
        }
        for pat in [
            "--trust-remote-code",
            "--trust_remote_code",
            "trust_remote_code=True",
        ] {
            let mut from = 0;
            while let Some(p) = code[from..].find(pat) {
                let at = from + p;
                from = at + pat.len();
                let rest = code[from..]
                    .trim_start_matches([' ', '='])
                    .to_ascii_lowercase();
                if pat.starts_with("--")
                    && (rest.starts_with("false")
                        || rest.starts_with('0')
                        || rest.starts_with("no"))
                    || code[from..].starts_with('-')
                    || code[from..].starts_with('_')
                {
                    continue;
                }
                if hits.len() > MAX_FINDINGS_PER_FILE {
                    // Enough to trip the per-file cap; stop growing memory on hostile input.
                    continue;
                }
                hits.push(Hit {
                    check: &checks::LINT_TRUST_REMOTE_CODE,
                    severity: checks::LINT_TRUST_REMOTE_CODE.severity,
                    start: start + at,
                    end: start + from,
                    line: this_line,
                    message: format!("{pat} makes the tool run Python code from the model repository"),
                    fix: "drop the flag; if the custom code is needed, review it and pin the model revision",
                    extra: json!({"call": collapse(code)}),
                    quotes: Vec::new(),
                    raise_on_fetch: false,
                });
            }
        }
    }
    fetch
}

fn yaml_scan(text: &str, hits: &mut Vec<Hit>) {
    let mut offset = 0;
    for (k, raw) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let code = raw.trim_end_matches(['\n', '\r']);
        if code.trim_start().starts_with('#') {
            continue;
        }
        let code = code.split(" #").next().unwrap_or(code);
        let Some(p) = code.find("trust_remote_code") else {
            continue;
        };
        let after = code[p + "trust_remote_code".len()..]
            .trim_start_matches(['"', '\''])
            .trim_start();
        let Some(v) = after.strip_prefix(':').or_else(|| after.strip_prefix('=')) else {
            continue;
        };
        let v = v.trim().trim_matches(['"', '\'', ',']).to_ascii_lowercase();
        if matches!(v.as_str(), "true" | "yes" | "on") && hits.len() <= MAX_FINDINGS_PER_FILE {
            hits.push(Hit {
                check: &checks::LINT_TRUST_REMOTE_CODE,
                severity: checks::LINT_TRUST_REMOTE_CODE.severity,
                start: start + p,
                end: start + code.len(),
                line: k as u32 + 1,
                message: "configuration sets trust_remote_code to true: the loader it feeds runs repository code".into(),
                fix: "set trust_remote_code: false; if the custom code is needed, review it and pin the model revision",
                extra: json!({"call": collapse(code.trim())}),
                quotes: Vec::new(),
                raise_on_fetch: false,
            });
        }
    }
}

/// Python analysis over units sharing one import namespace. Returns hits per unit and the line
/// of the first fetch (unit index, line), if any.
///
/// At most [`MAX_FINDINGS_PER_FILE`] hits are kept over all units; the number dropped is
/// returned too, so hostile input cannot grow memory with findings.
fn analyze(units: &[Unit]) -> (Vec<Vec<Hit>>, Option<(usize, u32)>, usize) {
    let mut aliases = HashMap::new();
    for u in units {
        collect_imports(u, &mut aliases);
    }
    let mut fetch: Option<(usize, u32)> = None;
    let mut all = Vec::with_capacity(units.len());
    let mut kept = 0usize;
    let mut dropped = 0usize;
    let mut enforce = |hits: &mut Vec<Hit>, from: usize, kept: &mut usize| {
        let new = hits.len() - from;
        let room = MAX_FINDINGS_PER_FILE.saturating_sub(*kept);
        if new > room {
            dropped += new - room;
            hits.truncate(from + room);
        }
        *kept += new.min(room);
    };
    for (ui, u) in units.iter().enumerate() {
        let close = match_brackets(u);
        let mut hits: Vec<Hit> = Vec::new();
        for_each_call(u, &close, &aliases, |call| {
            if fetch.is_none() && is_fetch(&call) {
                fetch = Some((ui, u.tokens[call.first].line));
            }
            let from = hits.len();
            call_rules(u, &call, &mut hits);
            enforce(&mut hits, from, &mut kept);
        });
        if fetch.is_none() {
            if let Some(t) = u
                .tokens
                .iter()
                .find(|t| t.kind == Kind::Str && is_fetch_string(t.text(&u.src)))
            {
                fetch = Some((ui, t.line));
            }
        }
        if fetch.is_none() {
            if let Some(l) = u.shell_fetch_line {
                fetch = Some((ui, l));
            }
        }
        let from = hits.len();
        trust_remote_code_literals(u, &mut hits);
        enforce(&mut hits, from, &mut kept);
        all.push(hits);
    }
    (all, fetch, dropped)
}

fn raise(s: Severity) -> Severity {
    match s {
        Severity::Info => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        _ => Severity::Critical,
    }
}

/// Char offset and 0-based char column of each byte position (sorted sweep, one pass).
fn char_positions(src: &str, bytes: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..bytes.len()).collect();
    order.sort_by_key(|&i| bytes[i]);
    let mut out = vec![(0, 0); bytes.len()];
    let mut k = 0usize;
    let mut line_start = 0usize;
    let mut next = 0;
    for (bi, ch) in src.char_indices() {
        while next < order.len() && bytes[order[next]] <= bi {
            out[order[next]] = (k, k - line_start);
            next += 1;
        }
        k += 1;
        if ch == '\n' || ch == '\r' {
            line_start = k;
        }
    }
    while next < order.len() {
        out[order[next]] = (k, k - line_start);
        next += 1;
    }
    out
}

/// Turns hits into findings for `file`, with char spans, columns and fetch grading.
fn finish_hits(
    file: &str,
    src: &str,
    field: Option<&str>,
    hits: Vec<Hit>,
    fetch: Option<(Option<&str>, u32)>,
    out: &mut Vec<Finding>,
) {
    let mut bytes = Vec::with_capacity(hits.len() * 2);
    for h in &hits {
        bytes.push(h.start.min(src.len()));
        bytes.push(h.end.min(src.len()));
    }
    let pos = char_positions(src, &bytes);
    for (n, h) in hits.into_iter().enumerate() {
        let (s, col) = pos[2 * n];
        let (e, _) = pos[2 * n + 1];
        let mut severity = h.severity;
        let mut ev = json!({
            "line": h.line,
            "column": col + 1,
            "fix": h.fix,
        });
        for (k, a, b) in &h.quotes {
            let (a, b) = ((*a).min(src.len()), (*b).min(src.len()));
            if src.is_char_boundary(a) && src.is_char_boundary(b) && a <= b {
                ev[*k] = json!(collapse(&src[a..b]));
            }
        }
        if let Value::Object(extra) = h.extra {
            for (k, v) in extra {
                ev[k] = v;
            }
        }
        let mut message = h.message;
        if let Some((ffield, fline)) = fetch {
            let at = match ffield {
                Some(f) => format!("{f} line {fline}"),
                None => format!("line {fline}"),
            };
            if h.raise_on_fetch {
                severity = raise(severity);
                message.push_str(&format!(
                    "; the same file downloads artifacts ({at}), so the input may be attacker-supplied"
                ));
                ev["fetch"] = json!(at);
            } else if h.check.id == checks::LINT_EXEC.id && severity < Severity::High {
                severity = Severity::High;
                message.push_str(&format!("; the same file downloads content ({at})"));
                ev["fetch"] = json!(at);
            }
        }
        let mut loc = Location::file(file).span(s, e);
        match field {
            // A cell's line is not a line of the .ipynb file: keep it out of `line` (SARIF
            // would point at the wrong line of the JSON) and name it in the message.
            Some(cell) => {
                message = format!("{cell} line {}: {message}", h.line);
                loc.field = Some(cell.to_string());
            }
            None => loc.line = Some(u64::from(h.line)),
        }
        message.push_str(&format!(" (fix: {})", h.fix));
        out.push(
            Finding::new(h.check, message, loc)
                .severity(severity)
                .evidence(ev),
        );
    }
}

fn undecodable(file: &str, why: String) -> Finding {
    Finding::new(
        &checks::LINT_UNPARSED,
        format!("{why}: not linted"),
        Location::file(file),
    )
}

/// Lints Python source named `file`.
pub fn lint_python(file: &str, src: &str) -> Vec<Finding> {
    let units = [Unit::python(src.to_string(), None)];
    let (mut hits, fetch, dropped) = analyze(&units);
    let mut out = Vec::new();
    finish_hits(
        file,
        src,
        None,
        hits.pop().unwrap_or_default(),
        fetch.map(|(_, l)| (None, l)),
        &mut out,
    );
    cap(file, out, dropped)
}

/// Lints a shell script named `file`: `--trust-remote-code` flags.
pub fn lint_shell(file: &str, src: &str) -> Vec<Finding> {
    let mut hits = Vec::new();
    shell_scan(src, 1, 0, &mut hits);
    let mut out = Vec::new();
    finish_hits(file, src, None, hits, None, &mut out);
    cap(file, out, 0)
}

/// Lints a YAML file named `file`: `trust_remote_code: true` settings.
pub fn lint_yaml(file: &str, src: &str) -> Vec<Finding> {
    let mut hits = Vec::new();
    yaml_scan(src, &mut hits);
    let mut out = Vec::new();
    finish_hits(file, src, None, hits, None, &mut out);
    cap(file, out, 0)
}

/// Turns a shell or magic line into a comment by replacing its leading `!` or `%` with `#`
/// (same bytes otherwise, so byte offsets into the cell stay valid).
fn comment_out(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    format!("{}#{}", &line[..indent], &line[indent + 1..])
}

/// One notebook code cell as a Python unit: shell lines and magics blanked, shell lines scanned.
fn cell_unit(src: String, field: String) -> Unit {
    let first = src.lines().next().unwrap_or("").trim_start();
    let mut shell_hits = Vec::new();
    if let Some(magic) = first.strip_prefix("%%") {
        let name = magic.split_whitespace().next().unwrap_or("");
        if matches!(name, "bash" | "sh" | "script" | "system") {
            let fetch = shell_scan(&src, 1, 0, &mut shell_hits);
            let mut u = Unit::python(String::new(), Some(field));
            u.src = src;
            u.shell_hits = shell_hits;
            u.shell_fetch_line = fetch;
            return u;
        }
    }
    let mut py = String::with_capacity(src.len());
    let mut fetch = None;
    let mut offset = 0;
    for (k, line) in src.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        let magic_head = k == 0 && t.starts_with("%%");
        if t.starts_with('!') || magic_head || t.starts_with('%') {
            if t.starts_with('!') {
                let f = shell_scan(line, k as u32 + 1, offset, &mut shell_hits);
                fetch = fetch.or(f);
            }
            py.push_str(&comment_out(line));
        } else {
            py.push_str(line);
        }
        offset += line.len();
    }
    let mut u = Unit::python(py, Some(field));
    u.shell_hits = shell_hits;
    u.shell_fetch_line = fetch;
    u
}

/// Lints a Jupyter notebook (nbformat 4 JSON) named `file`.
pub fn lint_notebook(file: &str, data: &[u8]) -> Vec<Finding> {
    let v: Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => {
            return vec![undecodable(
                file,
                format!("notebook is not valid JSON ({e})"),
            )]
        }
    };
    let Some(cells) = v.get("cells").and_then(Value::as_array) else {
        return vec![undecodable(
            file,
            "notebook has no `cells` array (not nbformat 4)".into(),
        )];
    };
    let mut units = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        if c.get("cell_type").and_then(Value::as_str) != Some("code") {
            continue;
        }
        let src = match c.get("source") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect(),
            _ => String::new(),
        };
        units.push(cell_unit(src, format!("cells[{i}]")));
    }
    let shell: Vec<Vec<Hit>> = units
        .iter_mut()
        .map(|u| std::mem::take(&mut u.shell_hits))
        .collect();
    let (hits, fetch, dropped) = analyze(&units);
    let fetch = fetch.map(|(ui, l)| (units[ui].field.as_deref(), l));
    let mut out = Vec::new();
    for ((u, mut h), s) in units.iter().zip(hits).zip(shell) {
        h.extend(s);
        finish_hits(file, &u.src, u.field.as_deref(), h, fetch, &mut out);
    }
    cap(file, out, dropped)
}

/// Puts a file's findings in source order (cell, then position) and applies the per-file cap.
fn cap(file: &str, mut out: Vec<Finding>, mut dropped: usize) -> Vec<Finding> {
    out.sort_by(|a, b| {
        (&a.location.field, a.location.span).cmp(&(&b.location.field, b.location.span))
    });
    if out.len() > MAX_FINDINGS_PER_FILE {
        dropped += out.len() - MAX_FINDINGS_PER_FILE;
        out.truncate(MAX_FINDINGS_PER_FILE);
    }
    if dropped > 0 {
        out.push(
            Finding::new(
                &checks::LINT_RESOURCE_LIMIT,
                format!("at least {dropped} more findings in this file were not reported (limit {MAX_FINDINGS_PER_FILE} per file)"),
                Location::file(file),
            )
            .evidence(json!({"dropped": dropped})),
        );
    }
    out
}

/// What kind of source a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Python (`.py`, `.pyw`, or a python shebang).
    Python,
    /// A Jupyter notebook (`.ipynb`).
    Notebook,
    /// A shell script (`.sh`, `.bash`, or a sh/bash shebang).
    Shell,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

/// The kind of `name` by extension, or by shebang (`head` = the file's first bytes).
pub fn source_kind(name: &str, head: &[u8]) -> Option<SourceKind> {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "py" | "pyw" => return Some(SourceKind::Python),
        "ipynb" => return Some(SourceKind::Notebook),
        "sh" | "bash" => return Some(SourceKind::Shell),
        "yaml" | "yml" => return Some(SourceKind::Yaml),
        _ => {}
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or(b"");
    if first.starts_with(b"#!") {
        let s = String::from_utf8_lossy(first);
        if s.contains("python") {
            return Some(SourceKind::Python);
        }
        if s.ends_with("sh") || s.contains("bash") || s.contains("/sh ") {
            return Some(SourceKind::Shell);
        }
    }
    None
}

/// Lints one in-memory file of the given kind. Non-UTF-8 text is an `M051` finding.
pub fn lint_bytes(file: &str, kind: SourceKind, data: &[u8]) -> Vec<Finding> {
    if kind == SourceKind::Notebook {
        return lint_notebook(file, data);
    }
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let src = match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(e) => {
            return vec![undecodable(
                file,
                format!(
                    "not valid UTF-8 (first bad byte at offset {}); re-encode the file as UTF-8",
                    e.valid_up_to()
                ),
            )]
        }
    };
    match kind {
        SourceKind::Python => lint_python(file, src),
        SourceKind::Shell => lint_shell(file, src),
        SourceKind::Yaml => lint_yaml(file, src),
        SourceKind::Notebook => unreachable!("handled above"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

const SKIP_DIRS: &[&str] = &["__pycache__", "node_modules", "site-packages"];

fn walk(path: &Path, top: bool, out: &mut Vec<(PathBuf, Option<SourceKind>)>) -> Result<()> {
    // Links named on the command line are followed; links met while walking only to files.
    let meta = if top {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(io(path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_dir() {
        if !top && (name.starts_with('.') || SKIP_DIRS.contains(&name.as_str())) {
            return Ok(());
        }
        let mut kids: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(path).map_err(io(path))? {
            kids.push(e.map_err(io(path))?.path());
        }
        kids.sort();
        for k in kids {
            walk(&k, false, out)?;
        }
    } else if top {
        // A file the user named: always linted; its kind is decided from its content.
        out.push((path.to_path_buf(), None));
    } else if meta.is_file() || std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        if let Some(k) = source_kind(&name, b"") {
            out.push((path.to_path_buf(), Some(k)));
        }
    }
    Ok(())
}

/// Lints files and folders into a `lint` gate report (threshold `high`). Folders are walked in
/// name order, skipping dot-folders, `__pycache__`, `node_modules` and `site-packages`, and
/// linting `.py`, `.pyw`, `.ipynb`, `.sh`, `.bash`, `.yaml` and `.yml` files. A file named on the
/// command line must be one of those (or have a python/sh shebang) or the run stops with
/// [`Error::Unsupported`]; an unreadable path stops it with [`Error::Io`] (exit 2). Non-UTF-8
/// or malformed content is an `M051` finding; files over [`MAX_SOURCE`] an `M052` finding.
pub fn lint_paths(paths: &[PathBuf]) -> Result<Report> {
    let mut files = Vec::new();
    for p in paths {
        walk(p, true, &mut files)?;
    }
    let mut report = Report::new("lint", Severity::High);
    for (path, kind) in &files {
        let name = path.display().to_string();
        let size = std::fs::metadata(path).map_err(io(path))?.len();
        let mut data = Vec::new();
        std::fs::File::open(path)
            .map_err(io(path))?
            .take(MAX_SOURCE + 1)
            .read_to_end(&mut data)
            .map_err(io(path))?;
        let kind = match kind {
            Some(k) => *k,
            None => source_kind(&name, &data[..data.len().min(256)]).ok_or_else(|| {
                Error::Unsupported {
                    path: path.clone(),
                    reason: "not a Python (.py), notebook (.ipynb), shell (.sh) or YAML (.yaml) file, and no python or sh shebang".into(),
                }
            })?,
        };
        let digest = if (data.len() as u64) > MAX_SOURCE || size > MAX_SOURCE {
            crate::scan::sha256_file(path)?
        } else {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(&data))
        };
        report.subjects.push(Subject::sha256(name.clone(), digest));
        if (data.len() as u64) > MAX_SOURCE {
            report.findings.push(
                Finding::new(
                    &checks::LINT_RESOURCE_LIMIT,
                    format!("file is larger than {MAX_SOURCE} bytes: not linted"),
                    Location::file(name.clone()),
                )
                .evidence(json!({"size": size, "limit": MAX_SOURCE})),
            );
            continue;
        }
        report.findings.extend(lint_bytes(&name, kind, &data));
    }
    report.summary.records = Some(files.len() as u64);
    report.finish();
    Ok(report)
}
