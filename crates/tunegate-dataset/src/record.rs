//! Typed records.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// File formats the readers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Guesses the format from the file extension (`.jsonl`, `.ndjson`, `.json`, `.csv`, `.tsv`,
    /// `.parquet`).
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "csv" | "tsv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// The shape of a record, detected from field names or forced with `--schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schema {
    /// `instruction` / `input` / `output` (Alpaca).
    Instruction,
    /// `messages` with role/content, or ShareGPT `conversations` with from/value.
    Chat,
    /// `prompt` / `completion`.
    PromptCompletion,
    /// `text` / `label` (classification).
    TextLabel,
    /// `prompt` / `chosen` / `rejected` (DPO-style); chosen/rejected as strings or message lists.
    Preference,
}

impl Schema {
    /// All schemas.
    pub const ALL: [Schema; 5] = [
        Schema::Instruction,
        Schema::Chat,
        Schema::PromptCompletion,
        Schema::TextLabel,
        Schema::Preference,
    ];
    /// Kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Schema::Instruction => "instruction",
            Schema::Chat => "chat",
            Schema::PromptCompletion => "prompt-completion",
            Schema::TextLabel => "text-label",
            Schema::Preference => "preference",
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Schema {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schema::ALL
            .into_iter()
            .find(|x| x.as_str() == s || (s == "text" && *x == Schema::TextLabel))
            .ok_or_else(|| {
                format!(
                    "unknown schema '{s}' (expected instruction, chat, prompt-completion, text-label or preference)"
                )
            })
    }
}

/// What a field is for. Detectors work on roles, not on field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// What the model is asked (instruction, input, user turns, prompt, classification text).
    Prompt,
    /// What the model learns to say (output, assistant turns, completion, chosen).
    Response,
    /// The rejected side of a preference pair.
    Rejected,
    /// A system prompt.
    System,
}

/// One text field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column name or JSON path (`messages[2].content`, `chosen[1].content`). Borrowed for
    /// the fixed field names of a schema, so a million records do not hold a million copies
    /// of `"instruction"`.
    pub path: std::borrow::Cow<'static, str>,
    /// What it is for.
    pub role: Role,
    /// The text as it is in the file.
    pub text: String,
}

/// One record, in read order.
///
/// Invariant: `index` is the 0-based position of the record in its file counting every record
/// the reader saw, malformed ones included, so indices match what a user counts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Index into [`Dataset::files`].
    pub file: u32,
    /// 0-based index in its file.
    pub index: u64,
    /// 1-based first line (JSONL, CSV).
    pub line: Option<u64>,
    /// Byte range of the raw record in its file (JSONL line, CSV row), for `--write-clean`.
    pub raw: Option<(u64, u64)>,
    /// Text fields with roles, in document order.
    pub fields: Vec<Field>,
    /// Classification label (text/label data), as text.
    pub label: Option<String>,
}

impl Record {
    /// The text of all fields with `role`, joined by a newline.
    pub fn text_of(&self, role: Role) -> String {
        let mut out = String::new();
        for f in self.fields.iter().filter(|f| f.role == role) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&f.text);
        }
        out
    }
    /// True when the record has at least one field with `role`.
    pub fn has(&self, role: Role) -> bool {
        self.fields.iter().any(|f| f.role == role)
    }
}

/// A file as read.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Path as the user gave it.
    pub path: String,
    /// Format.
    pub format: Format,
    /// Detected or forced schema.
    pub schema: Schema,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Records seen (malformed included).
    pub records: u64,
}

/// Everything read from one or more files.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The files, in the order given.
    pub files: Vec<FileInfo>,
    /// Well-formed records of all files, file by file, in read order.
    pub records: Vec<Record>,
    /// Malformed records as `D001` findings (line and reason), in read order.
    pub malformed: Vec<tunegate_core::Finding>,
    /// Raw byte ranges of malformed records as (file, index, (start, end)), so `--write-clean`
    /// keeps them when their finding is below the threshold: nothing is lost silently.
    pub malformed_raw: Vec<(u32, u64, (u64, u64))>,
}

impl Dataset {
    /// The path of `record`'s file.
    pub fn path_of(&self, record: &Record) -> &str {
        &self.files[record.file as usize].path
    }
    /// A report location for `record`.
    pub fn location(&self, record: &Record) -> tunegate_core::Location {
        tunegate_core::Location::file(self.path_of(record)).record(record.index, record.line)
    }
    /// The schema of `record`'s file.
    pub fn schema_of(&self, record: &Record) -> Schema {
        self.files[record.file as usize].schema
    }
}
