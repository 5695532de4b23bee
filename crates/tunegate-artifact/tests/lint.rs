//! `tunegate lint` rules on realistic pipeline snippets: positives with their ids, lines,
//! columns and severities, and the tricky negatives (mentions in comments and docstrings, safe
//! keyword values, safe YAML loaders).
use tunegate_artifact::lint::{self, SourceKind};
use tunegate_core::{Finding, Severity};

fn ids(f: &[Finding]) -> Vec<(&str, u64)> {
    f.iter()
        .map(|f| (f.id.as_str(), f.location.line.unwrap_or(0)))
        .collect()
}

fn py(src: &str) -> Vec<Finding> {
    lint::lint_python("train.py", src)
}

#[test]
fn trust_remote_code_in_keywords_dicts_and_subscripts() {
    let src = r#"from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(
    "org/model",
    trust_remote_code=True,
)
tok = AutoTokenizer.from_pretrained("org/model", trust_remote_code=False)
kwargs = {"trust_remote_code": True, "revision": "main"}
AutoModelForCausalLM.from_pretrained("org/model", **{'trust_remote_code': True})
cfg["trust_remote_code"] = True
ds = load_dataset("org/ds", trust_remote_code=flag)
"#;
    let f = py(src);
    assert_eq!(
        ids(&f),
        [("M040", 2), ("M040", 7), ("M040", 8), ("M040", 9)],
        "{f:#?}"
    );
    assert_eq!(f[0].severity, Severity::High);
    assert_eq!(f[0].evidence["column"], 9);
    assert_eq!(
        f[0].evidence["call"],
        "AutoModelForCausalLM.from_pretrained( \"org/model\", trust_remote_code=True, )"
    );
    assert!(f[0].message.contains("fix:"));
    // The span is the call's char range in the file.
    let [s, e] = f[0].location.span.unwrap();
    let chars: String = src.chars().skip(s).take(e - s).collect();
    assert!(chars.starts_with("AutoModelForCausalLM.from_pretrained(") && chars.ends_with(')'));
}

#[test]
fn torch_load_grades_weights_only_and_resolves_aliases() {
    let src = r#"import torch as t
from torch import load as tload
sd = t.load("ckpt.pt")
sd = t.load("ckpt.pt", weights_only=True)
sd = tload("ckpt.pt", map_location="cpu", weights_only=False)
sd = t.load(p, weights_only=args.safe)
sd = self.torch.load(p)  # an attribute of something else: not torch
"#;
    let f = py(src);
    assert_eq!(ids(&f), [("M041", 3), ("M041", 5), ("M041", 6)], "{f:#?}");
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[1].severity, Severity::High);
    assert_eq!(f[1].evidence["callee"], "torch.load");
    assert!(f[1].message.contains("weights_only=True"));
}

#[test]
fn the_pickle_family_joblib_numpy_pandas() {
    let src = r#"import pickle, dill
import cloudpickle as cp
from joblib import load
import numpy as np
import pandas
with open(p, "rb") as fh:
    a = pickle.load(fh)
b = dill.loads(blob)
c = cp.load(fh)
d = load("model.joblib")
e = np.load("x.npy", allow_pickle=True)
g = np.load("x.npy")
h = np.load("x.npy", allow_pickle=False)
i = pandas.read_pickle("df.pkl")
j = pickle.dumps(obj)
k = json.load(fh)
"#;
    let f = py(src);
    assert_eq!(
        ids(&f),
        [
            ("M042", 7),
            ("M042", 8),
            ("M042", 9),
            ("M043", 10),
            ("M044", 11),
            ("M045", 14)
        ],
        "{f:#?}"
    );
    assert!(f.iter().all(|f| f.severity == Severity::High));
}

#[test]
fn yaml_loaders() {
    let src = r#"import yaml
from yaml import SafeLoader
a = yaml.load(fh)
b = yaml.load(fh, Loader=yaml.SafeLoader)
c = yaml.load(fh, SafeLoader)
d = yaml.load(fh, Loader=yaml.Loader)
e = yaml.safe_load(fh)
f = yaml.unsafe_load(fh)
g = yaml.full_load(fh)
"#;
    let f = py(src);
    assert_eq!(
        ids(&f),
        [("M046", 3), ("M046", 6), ("M046", 8), ("M046", 9)],
        "{f:#?}"
    );
    let sev: Vec<_> = f.iter().map(|f| f.severity).collect();
    assert_eq!(
        sev,
        [
            Severity::Medium,
            Severity::High,
            Severity::High,
            Severity::Medium
        ]
    );
}

#[test]
fn hub_safetensors_keras_and_exec() {
    let src = r#"import torch
import tensorflow as tf
m = torch.hub.load("someone/repo", "model")
m = AutoModel.from_pretrained("org/m", use_safetensors=False)
m = AutoModel.from_pretrained("org/m", use_safetensors=True)
k = tf.keras.models.load_model("m.keras", safe_mode=False)
k = tf.keras.models.load_model("m.keras")
exec("print(1)")
eval(expr)
model.eval()
def eval(x):
    return x
"#;
    let f = py(src);
    assert_eq!(
        ids(&f),
        [("M047", 3), ("M048", 4), ("M049", 6), ("M050", 9)],
        "{f:#?}"
    );
    // No download in this file: eval of a variable is only low.
    assert_eq!(f[3].severity, Severity::Low);
}

#[test]
fn downloads_raise_severity() {
    let src = r#"from huggingface_hub import hf_hub_download
import torch, pickle, requests
path = hf_hub_download("org/repo", "model.bin")
sd = torch.load(path)
obj = pickle.load(open(path, "rb"))
eval(text)
exec(requests.get(url).text)
m = AutoModel.from_pretrained("org/m", trust_remote_code=True)
"#;
    let f = py(src);
    assert_eq!(
        ids(&f),
        [
            ("M041", 4),
            ("M042", 5),
            ("M050", 6),
            ("M050", 7),
            ("M040", 8)
        ],
        "{f:#?}"
    );
    let sev: Vec<_> = f.iter().map(|f| f.severity).collect();
    assert_eq!(
        sev,
        [
            Severity::High,
            Severity::Critical,
            Severity::High,
            Severity::Critical,
            Severity::High
        ]
    );
    assert_eq!(f[0].evidence["fetch"], "line 3");
    assert!(f[0].message.contains("downloads artifacts (line 3)"));
}

#[test]
fn wget_strings_count_as_downloads() {
    let src = "import os, joblib\nos.system(\"wget https://x/model.joblib\")\nm = joblib.load('model.joblib')\n";
    let f = py(src);
    assert_eq!(ids(&f), [("M043", 3)]);
    assert_eq!(f[0].severity, Severity::Critical);
}

#[test]
fn comments_docstrings_and_strings_never_match() {
    let src = r#""""Loads checkpoints.

Never call torch.load(path) or pickle.load(f) here; trust_remote_code=True is banned.
"""
import torch
# model = torch.load(path)
# AutoModel.from_pretrained(x, trust_remote_code=True)
msg = "use torch.load(p, weights_only=False) at your own risk"
help = f"pickle.load({name}) is unsafe {torch.__version__!r}"
sd = torch.load(path, weights_only=True)
x = yaml.safe_load(fh)
AutoModel.from_pretrained("x", trust_remote_code=False)
"""also not code: joblib.load('m')"""
"#;
    let f = py(src);
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn multi_line_calls_report_their_first_line_and_unicode_columns() {
    let src = "x = 'é'; y = torch.load(\n    p\n)\n";
    let f = py(src);
    assert_eq!(ids(&f), [("M041", 1)]);
    // Columns count chars, not bytes.
    assert_eq!(f[0].evidence["column"], 14);
    assert_eq!(f[0].location.span, Some([13, 32]));
}

#[test]
fn notebooks_share_imports_across_cells_and_read_shell_lines() {
    let nb = serde_json::json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["torch.load(p)\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
             "source": ["import torch as T\n", "!wget https://example.com/m.pt\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 2,
             "source": "%matplotlib inline\nsd = T.load('m.pt')\n!python serve.py --trust-remote-code\n"},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 3,
             "source": "%%bash\nvllm serve org/m --trust-remote-code\n"}
        ]
    });
    let data = serde_json::to_vec(&nb).unwrap();
    let f = lint::lint_bytes("nb.ipynb", SourceKind::Notebook, &data);
    let got: Vec<_> = f
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.location.field.as_deref().unwrap(),
                f.evidence["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("M041", "cells[2]", 2),
            ("M040", "cells[2]", 3),
            ("M040", "cells[3]", 2)
        ],
        "{f:#?}"
    );
    assert_eq!(f[0].location.line, None);
    assert!(
        f[0].message.starts_with("cells[2] line 2: T.load"),
        "{}",
        f[0].message
    );
    // The !wget line in cell 1 makes it a fetching notebook.
    assert_eq!(f[0].severity, Severity::High);
    assert_eq!(f[0].evidence["fetch"], "cells[1] line 2");
}

#[test]
fn shell_and_yaml() {
    let sh = "#!/bin/sh\n# --trust-remote-code is banned\nvllm serve m --trust-remote-code\npython x.py --trust_remote_code false\nlm_eval --model_args pretrained=m,trust_remote_code=True\n";
    let f = lint::lint_bytes("serve.sh", SourceKind::Shell, sh.as_bytes());
    assert_eq!(ids(&f), [("M040", 3), ("M040", 5)], "{f:#?}");
    let y = "model:\n  name: org/m\n  trust_remote_code: true  # needed\n  # trust_remote_code: true\nother:\n  trust_remote_code: false\n";
    let f = lint::lint_bytes("cfg.yaml", SourceKind::Yaml, y.as_bytes());
    assert_eq!(ids(&f), [("M040", 3)], "{f:#?}");
    assert_eq!(f[0].evidence["column"], 3);
}

#[test]
fn undecodable_input_is_a_finding_not_silence() {
    let f = lint::lint_bytes("latin.py", SourceKind::Python, b"x = '\xe9'\n");
    assert_eq!(ids(&f), [("M051", 0)]);
    assert!(f[0].message.contains("UTF-8"), "{}", f[0].message);
    let f = lint::lint_bytes("nb.ipynb", SourceKind::Notebook, b"{\"cells\": [");
    assert_eq!(ids(&f), [("M051", 0)]);
    let f = lint::lint_bytes("nb.ipynb", SourceKind::Notebook, b"{\"worksheets\": []}");
    assert_eq!(ids(&f), [("M051", 0)]);
}

#[test]
fn hostile_nesting_and_unclosed_brackets_stay_bounded() {
    // 50k nested calls: linear work, no recursion, no panic.
    let n = 50_000;
    let src = format!("{}x{}", "f(".repeat(n), ")".repeat(n));
    assert!(py(&src).is_empty());
    let src = format!("torch.load({}", "(".repeat(n));
    assert_eq!(ids(&py(&src)), [("M041", 1)]);
    // Nested exec(exec(...)): each call looks at a bounded prefix of its argument (this was
    // quadratic), and the findings stop at the per-file cap instead of growing memory.
    let src = format!("{}x{}", "exec(".repeat(n), ")".repeat(n));
    let f = py(&src);
    assert_eq!(f.len(), lint::MAX_FINDINGS_PER_FILE + 1);
    assert_eq!(
        f.last().unwrap().evidence["dropped"],
        n - lint::MAX_FINDINGS_PER_FILE
    );
    let yaml = "trust_remote_code: true\n".repeat(5000);
    let f = lint::lint_bytes("c.yaml", SourceKind::Yaml, yaml.as_bytes());
    assert_eq!(f.len(), lint::MAX_FINDINGS_PER_FILE + 1);
    assert_eq!(f.last().unwrap().id, "M052");
    // A notebook nested deeper than serde_json's limit is a finding.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let f = lint::lint_bytes("nb.ipynb", SourceKind::Notebook, deep.as_bytes());
    assert_eq!(ids(&f), [("M051", 0)]);
}

#[test]
fn findings_per_file_are_capped() {
    let src = "import pickle\n".to_string()
        + &"pickle.loads(b)\n".repeat(lint::MAX_FINDINGS_PER_FILE + 5);
    let f = py(&src);
    assert_eq!(f.len(), lint::MAX_FINDINGS_PER_FILE + 1);
    assert_eq!(f.last().unwrap().id, "M052");
    assert_eq!(f.last().unwrap().evidence["dropped"], 5);
}
