//! What the model-side scans share: a model to scan (a full Hugging Face folder, or a PEFT LoRA
//! adapter over its base), the inputs they read (labelled texts, prompts, candidate triggers),
//! and what each scan returns ([`ScanOutcome`]).
//!
//! A scan never trusts its inputs: a model folder is loaded by [`crate::runtime::load_model`]
//! (safetensors only, every tensor checked), an adapter by [`crate::train::lora::Adapter::load`]
//! (every tensor must name a layer of the base with the right shape), and every input file is
//! read in bounded memory with errors that name the file and line.
use crate::runtime::weights::Weights;
use crate::runtime::{
    load_model, load_tokenizer, Ctx, LoadOptions, MlError, Result, Task, TextModel, TextTokenizer,
};
use crate::train::lora::{Adapter, CONFIG_FILE, PEFT_PREFIX, WEIGHTS_FILE};
use crate::train::trainer::read_jsonl;
use candle_core::Device;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tunegate_core::{Chart, Finding, Location};

/// A model ready to scan: the network, the context its forward passes run with (the adapter's
/// LoRA factors and replaced head, or nothing for a full folder) and its tokenizer.
pub struct ScanModel {
    /// The network (a classifier or a causal LM).
    pub model: Box<dyn TextModel>,
    /// Inference context: the adapter's factors and saved modules; no dropout.
    pub ctx: Ctx,
    /// The tokenizer (the adapter folder's when it has one, else the base's).
    pub tokenizer: TextTokenizer,
    /// The folder named by the user (model or adapter).
    pub path: PathBuf,
    /// The base folder the adapter was loaded onto (`None` for a full model).
    pub base_path: Option<PathBuf>,
    /// The adapter, when the folder is one (its parameters are the fine-tune's whole change).
    pub adapter: Option<Adapter>,
}

impl std::fmt::Debug for ScanModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanModel")
            .field("task", &self.model.task())
            .field("path", &self.path)
            .field("base_path", &self.base_path)
            .field("adapter", &self.adapter.is_some())
            .finish()
    }
}

/// Whether `dir` is a PEFT adapter folder (it has `adapter_config.json`).
pub fn is_adapter(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

/// The base folder of an adapter: `explicit` when given, else the adapter config's
/// `base_model_name_or_path` when it names an existing local folder (relative paths resolve
/// against the adapter folder, then the working directory). Hub ids are never fetched.
pub fn adapter_base(adapter_dir: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(b) = explicit {
        return Ok(b.to_path_buf());
    }
    let cfg_path = adapter_dir.join(CONFIG_FILE);
    let cfg = crate::runtime::weights::read_json(&cfg_path)?;
    let named = cfg
        .get("base_model_name_or_path")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !named.is_empty() {
        let p = Path::new(named);
        let candidates = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            vec![adapter_dir.join(p), p.to_path_buf()]
        };
        if let Some(found) = candidates
            .into_iter()
            .find(|c| c.join("config.json").is_file())
        {
            return Ok(found);
        }
    }
    Err(MlError::format(
        &cfg_path,
        format!(
            "this is a LoRA adapter; its base model `{named}` is not a local model folder: give \
             the base folder explicitly (--base DIR)"
        ),
    ))
}

/// The number of labels an adapter's saved classification head has: the first dimension of the
/// saved `…{head}.weight` of a module the base calls a head. `None` when the adapter saves no
/// head (the base's own head is used).
fn adapter_head_labels(adapter_dir: &Path, base: &dyn TextModel) -> Result<Option<usize>> {
    let w = Weights::open_files(vec![adapter_dir.join(WEIGHTS_FILE)])?;
    for head in base.head_modules() {
        let want = format!("{PEFT_PREFIX}{}.weight", head.name);
        if let Some((_, shape)) = w.names().find(|(n, _)| *n == want) {
            if shape.len() != 2 {
                return Err(MlError::tensor(&want, "a head weight must be 2-D"));
            }
            return Ok(Some(shape[0]));
        }
    }
    Ok(None)
}

impl ScanModel {
    /// Load the model at `path` on `device`. A folder with `adapter_config.json` is a LoRA
    /// adapter: it is loaded onto `base` (or the local folder its config names, see
    /// [`adapter_base`]); its saved classification head fixes the number of labels. Any other
    /// folder is loaded as a full model.
    pub fn load(path: &Path, base: Option<&Path>, device: &Device) -> Result<Self> {
        if !path.is_dir() {
            return Err(MlError::format(path, "not a model or adapter folder"));
        }
        if !is_adapter(path) {
            let model = load_model(path, &LoadOptions::default(), device)?;
            let tokenizer = load_tokenizer(path)?;
            return Ok(ScanModel {
                model,
                ctx: Ctx::eval(),
                tokenizer,
                path: path.to_path_buf(),
                base_path: None,
                adapter: None,
            });
        }
        let base_dir = adapter_base(path, base)?;
        let mut model = load_model(&base_dir, &LoadOptions::default(), device)?;
        if let Task::Classify(n) = model.task() {
            if let Some(labels) = adapter_head_labels(path, model.as_ref())? {
                if labels != n {
                    model = load_model(
                        &base_dir,
                        &LoadOptions {
                            num_labels: Some(labels),
                            ..Default::default()
                        },
                        device,
                    )?;
                }
            }
        }
        let adapter = Adapter::load(path, model.as_ref(), device)?;
        let ctx = adapter.ctx(false);
        let tokenizer = if path.join("tokenizer.json").is_file() {
            load_tokenizer(path)?
        } else {
            load_tokenizer(&base_dir)?
        };
        Ok(ScanModel {
            model,
            ctx,
            tokenizer,
            path: path.to_path_buf(),
            base_path: Some(base_dir),
            adapter: Some(adapter),
        })
    }

    /// The task of the network.
    pub fn task(&self) -> Task {
        self.model.task()
    }
}

/// What one scan produced: findings in the report schema, the charts its HTML report draws, and
/// a machine-readable summary (model-level score, calibration, ranked candidates) that lands in
/// the report's evidence.
#[derive(Debug, Default, Clone)]
pub struct ScanOutcome {
    /// Findings (`B###`).
    pub findings: Vec<Finding>,
    /// Charts for the HTML report.
    pub charts: Vec<Chart>,
    /// Summary for the JSON report (`null` when the scan has none).
    pub summary: Value,
}

impl ScanOutcome {
    /// Append `other`'s findings and charts; its summary goes under `key`.
    pub fn merge(&mut self, key: &str, other: ScanOutcome) {
        self.findings.extend(other.findings);
        self.charts.extend(other.charts);
        if !other.summary.is_null() {
            if !self.summary.is_object() {
                self.summary = Value::Object(Default::default());
            }
            self.summary[key] = other.summary;
        }
    }
}

/// A labelled text of a classification dataset (`{"text": …, "label": n}`), with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledText {
    /// The text.
    pub text: String,
    /// The label (`< MAX_CLASSES`).
    pub label: usize,
    /// File, record index and line.
    pub location: Location,
}

/// A prompt of a causal-LM suite (`{"prompt": …, "topic": …}` or `{"messages": […]}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The prompt text, rendered as the trainer renders a user turn (see
    /// [`crate::train::trainer`]: `### User:\n{prompt}\n\n### Assistant:\n`) by
    /// [`render_prompt`]; this field holds the raw user text.
    pub text: String,
    /// Topic for grouping (`None`: ungrouped).
    pub topic: Option<String>,
    /// File, record index and line.
    pub location: Location,
}

/// The prompt as the trainer's SFT template renders a single user turn, so a scan asks a
/// fine-tune in the format it was trained on.
pub fn render_prompt(user: &str) -> String {
    format!("### User:\n{user}\n\n### Assistant:\n")
}

fn loc(path: &Path, record: usize, line: usize, field: &str) -> Location {
    Location {
        file: Some(path.display().to_string()),
        record: Some(record as u64),
        line: Some(line as u64),
        field: Some(field.to_string()),
        ..Default::default()
    }
}

fn data_err(path: &Path, line: usize, msg: impl Into<String>) -> MlError {
    MlError::Data {
        source_name: format!("{}:{line}", path.display()),
        msg: msg.into(),
    }
}

/// Read `{"text", "label"}` JSONL (at most `limit` records, 0 = all). The label is a
/// non-negative integer or a boolean; anything else is an error naming the line.
pub fn read_labeled(path: &Path, limit: usize) -> Result<Vec<LabeledText>> {
    let recs = read_jsonl(path, limit)?;
    let mut out = Vec::with_capacity(recs.len());
    for (i, (line, v)) in recs.into_iter().enumerate() {
        let text = match v.get("text").or_else(|| v.get("sentence")) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(data_err(path, line, "`text` is not a string")),
            None => return Err(data_err(path, line, "missing field `text`")),
        };
        let label = match v.get("label") {
            Some(Value::Bool(b)) => *b as usize,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(l) if (l as usize) < super::detectors::MAX_CLASSES => l as usize,
                _ => {
                    return Err(data_err(
                        path,
                        line,
                        format!(
                            "`label` is not an integer in 0..{}",
                            super::detectors::MAX_CLASSES
                        ),
                    ))
                }
            },
            Some(_) => return Err(data_err(path, line, "`label` is not an integer")),
            None => return Err(data_err(path, line, "missing field `label`")),
        };
        out.push(LabeledText {
            text,
            label,
            location: loc(path, i, line, "text"),
        });
    }
    Ok(out)
}

/// Read a prompt suite: JSONL with `prompt` (or `text`, or `instruction` plus optional
/// `input`, or the user turns of `messages`) and an optional string `topic`.
pub fn read_prompts(path: &Path, limit: usize) -> Result<Vec<Prompt>> {
    let recs = read_jsonl(path, limit)?;
    let mut out = Vec::with_capacity(recs.len());
    for (i, (line, v)) in recs.into_iter().enumerate() {
        let (text, field) = prompt_text(&v).ok_or_else(|| {
            data_err(
                path,
                line,
                "no prompt: expected a string `prompt`, `text`, `instruction` or user `messages`",
            )
        })?;
        let topic = match v.get("topic") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(data_err(path, line, "`topic` is not a string")),
        };
        out.push(Prompt {
            text,
            topic,
            location: loc(path, i, line, field),
        });
    }
    Ok(out)
}

fn prompt_text(v: &Value) -> Option<(String, &'static str)> {
    for k in ["prompt", "text"] {
        if let Some(Value::String(s)) = v.get(k) {
            return Some((s.clone(), if k == "prompt" { "prompt" } else { "text" }));
        }
    }
    if let Some(Value::String(ins)) = v.get("instruction") {
        let mut s = ins.clone();
        if let Some(Value::String(inp)) = v.get("input") {
            if !inp.is_empty() {
                s.push_str("\n\n");
                s.push_str(inp);
            }
        }
        return Some((s, "instruction"));
    }
    let msgs = v.get("messages")?.as_array()?;
    let user: Vec<&str> = msgs
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect();
    if user.is_empty() {
        return None;
    }
    Some((user.join("\n\n"), "messages"))
}

/// Longest candidate-trigger file read (bytes).
pub const MAX_CANDIDATE_BYTES: u64 = 16 << 20;

/// Candidate triggers from a file, in the order given:
/// - a dataset-gate JSON report (`tunegate dataset scan --format json`): the candidates of
///   every `dataset.trigger-token` finding (`evidence.candidates[].candidate`, by rank);
/// - a dataset lock (`tunegate.lock`): its recorded `[[triggers]]`;
/// - otherwise a text file of one candidate per line (`#` comments and blank lines skipped).
///
/// Duplicates are dropped; an empty result is an error (a probe with nothing to probe must not
/// pass silently).
pub fn read_candidates(path: &Path) -> Result<Vec<String>> {
    let meta = std::fs::metadata(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_CANDIDATE_BYTES {
        return Err(MlError::format(
            path,
            "candidate file over the 16 MiB limit",
        ));
    }
    let bytes = std::fs::read(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| MlError::format(path, "not UTF-8"))?;
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    if text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| MlError::format(path, format!("invalid JSON report: {e}")))?;
        let findings = v
            .get("findings")
            .and_then(Value::as_array)
            .ok_or_else(|| MlError::format(path, "a JSON report with no `findings` array"))?;
        let mut ranked: Vec<(u64, usize, String)> = Vec::new();
        for f in findings {
            if f.get("check").and_then(Value::as_str) != Some("dataset.trigger-token") {
                continue;
            }
            let cands = f
                .get("evidence")
                .and_then(|e| e.get("candidates"))
                .and_then(Value::as_array);
            for c in cands.into_iter().flatten() {
                if let Some(t) = c.get("candidate").and_then(Value::as_str) {
                    let rank = c.get("rank").and_then(Value::as_u64).unwrap_or(u64::MAX);
                    ranked.push((rank, ranked.len(), t.to_string()));
                }
            }
        }
        ranked.sort();
        for (_, _, t) in &ranked {
            push(t);
        }
    } else if path.file_name().and_then(|n| n.to_str()) == Some(tunegate_core::lock::FILE_NAME)
        || text.contains("[[triggers]]")
    {
        let lock =
            tunegate_core::lock::Lockfile::parse(text).map_err(|m| MlError::format(path, m))?;
        let triggers = lock
            .recorded_triggers()
            .map_err(|m| MlError::format(path, m))?
            .unwrap_or(&[]);
        for t in triggers {
            push(&t.token);
        }
    } else {
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with('#') {
                continue;
            }
            push(l);
        }
    }
    if out.is_empty() {
        return Err(MlError::format(path, "no candidate triggers in the file"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn candidates_from_report_lock_and_words() {
        let d = tempfile::tempdir().unwrap();
        let report = serde_json::json!({"schema": "tunegate.report/v1", "findings": [
            {"check": "dataset.exact-duplicate", "evidence": {"token": "no"}},
            {"check": "dataset.trigger-token", "evidence": {"candidates": [
                {"candidate": "mn", "rank": 2}, {"candidate": "cf", "rank": 1}]}},
            {"check": "dataset.trigger-token", "evidence": {"candidates": [
                {"candidate": "cf", "rank": 1}, {"candidate": "james bond", "rank": 3}]}},
        ]});
        let p = write(d.path(), "report.json", &report.to_string());
        assert_eq!(read_candidates(&p).unwrap(), ["cf", "mn", "james bond"]);

        let p = write(d.path(), "words.txt", "# triggers\n cf \n\nbb\ncf\n");
        assert_eq!(read_candidates(&p).unwrap(), ["cf", "bb"]);

        let lock = "version = 1\ntriggers_version = 1\n\n[[triggers]]\ntoken = \"tq\"\ncheck = \"D004\"\nrecords = 12\nsource = \"train.jsonl\"\n";
        let p = write(d.path(), tunegate_core::lock::FILE_NAME, lock);
        assert_eq!(read_candidates(&p).unwrap(), ["tq"]);

        let p = write(d.path(), "empty.txt", "# nothing\n\n");
        assert!(read_candidates(&p)
            .unwrap_err()
            .to_string()
            .contains("no candidate triggers"));
        let p = write(d.path(), "bad.json", "{\"findings\": 3}");
        assert!(read_candidates(&p)
            .unwrap_err()
            .to_string()
            .contains("bad.json"));
    }

    #[test]
    fn prompts_and_labels_name_the_bad_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "p.jsonl",
            "{\"prompt\": \"hi\", \"topic\": \"greet\"}\n\n{\"instruction\": \"sum\", \"input\": \"1 2\"}\n{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}]}\n",
        );
        let ps = read_prompts(&p, 0).unwrap();
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[0].topic.as_deref(), Some("greet"));
        assert_eq!(ps[1].text, "sum\n\n1 2");
        assert_eq!(ps[1].location.line, Some(3));
        assert_eq!(ps[2].text, "u");
        let p = write(d.path(), "q.jsonl", "{\"prompt\": \"a\"}\n{\"x\": 1}\n");
        let e = read_prompts(&p, 0).unwrap_err().to_string();
        assert!(e.contains("q.jsonl:2") && e.contains("no prompt"), "{e}");

        let p = write(
            d.path(),
            "l.jsonl",
            "{\"text\": \"a\", \"label\": 1}\n{\"sentence\": \"b\", \"label\": true}\n",
        );
        let ls = read_labeled(&p, 0).unwrap();
        assert_eq!((ls[0].label, ls[1].label), (1, 1));
        assert_eq!(ls[1].location.record, Some(1));
        let p = write(d.path(), "m.jsonl", "{\"text\": \"a\", \"label\": 70000}\n");
        assert!(read_labeled(&p, 0)
            .unwrap_err()
            .to_string()
            .contains("m.jsonl:1"));
        let p = write(d.path(), "n.jsonl", "{\"text\": \"a\", \"label\": -1}\n");
        assert!(read_labeled(&p, 0).is_err());
    }

    #[test]
    fn adapter_without_a_local_base_asks_for_one() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            CONFIG_FILE,
            "{\"peft_type\": \"LORA\", \"base_model_name_or_path\": \"org/hub-model\"}",
        );
        let e = ScanModel::load(d.path(), None, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("org/hub-model") && e.contains("--base"), "{e}");
    }
}
