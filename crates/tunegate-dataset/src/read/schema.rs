//! Schema detection from field names, and the mapping of one JSON-shaped record (a JSONL line,
//! a CSV row, a Parquet row) onto role-tagged [`Field`]s.
use crate::{Field, Role, Schema};
use serde_json::{Map, Value};

/// Detects the schema from a record's field names; `None` when nothing matches.
///
/// Order matters: preference data also has a prompt, and chat data may carry a `text` column.
pub(crate) fn detect<'a>(keys: impl IntoIterator<Item = &'a str> + Clone) -> Option<Schema> {
    let has = |k: &str| keys.clone().into_iter().any(|x| x == k);
    if has("chosen") && has("rejected") {
        Some(Schema::Preference)
    } else if has("messages") || has("conversations") {
        Some(Schema::Chat)
    } else if has("instruction") && (has("output") || has("response")) {
        Some(Schema::Instruction)
    } else if has("prompt") && (has("completion") || has("response")) {
        Some(Schema::PromptCompletion)
    } else if (has("text") || has("sentence") || has("content")) && has("label") {
        Some(Schema::TextLabel)
    } else {
        None
    }
}

/// What each schema needs, for error messages.
pub(crate) const EXPECTED: &str = "instruction (instruction, output|response[, input]), \
chat (messages of role/content, or conversations of from/value), \
prompt-completion (prompt, completion|response), \
preference (chosen, rejected[, prompt]), \
text-label (text|sentence|content, label)";

/// The message for a file whose fields match no schema.
pub(crate) fn no_schema_message(what: &str, keys: &[String]) -> String {
    let found = if keys.is_empty() {
        "none".to_string()
    } else {
        keys.join(", ")
    };
    format!(
        "no known dataset schema matches the {what} [{found}]; expected {EXPECTED}; \
         force one with --schema instruction|chat|prompt-completion|preference|text-label"
    )
}

/// The columns `schema` cannot do without, as alternatives (any one of each group). Used to
/// reject a CSV header or Parquet schema up front instead of flagging every row.
pub(crate) fn missing_columns(schema: Schema, columns: &[String]) -> Option<String> {
    let groups: &[&[&str]] = match schema {
        Schema::Instruction => &[&["instruction"], &["output", "response"]],
        Schema::Chat => &[&["messages", "conversations"]],
        Schema::PromptCompletion => &[&["prompt"], &["completion", "response"]],
        Schema::Preference => &[&["chosen"], &["rejected"]],
        Schema::TextLabel => &[&["text", "sentence", "content"], &["label"]],
    };
    let missing: Vec<String> = groups
        .iter()
        .filter(|g| !g.iter().any(|k| columns.iter().any(|c| c == k)))
        .map(|g| g.join("|"))
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "schema {schema} needs column(s) {} but the file has [{}]",
            missing.join(", "),
            columns.join(", ")
        ))
    }
}

/// A record mapped onto fields.
#[derive(Debug, Default)]
pub(crate) struct Mapped {
    pub fields: Vec<Field>,
    pub label: Option<String>,
    pub id: Option<String>,
}

/// Why a record does not fit its schema: a sentence and, where one field is to blame, its path.
#[derive(Debug)]
pub(crate) struct Bad {
    pub reason: String,
    pub field: Option<String>,
}

fn bad(reason: impl Into<String>, field: Option<&str>) -> Bad {
    Bad {
        reason: reason.into(),
        field: field.map(str::to_string),
    }
}

/// Maps `obj` onto `schema`. With `json_in_strings`, a string where a message list may stand is
/// parsed as JSON when it looks like a list (CSV and Parquet store nested data that way).
///
/// Text fields are moved out of `obj` (left empty), not copied: a record keeps its texts for
/// the whole scan, and copying a million of them was a large share of the read.
pub(crate) fn map(
    obj: &mut Map<String, Value>,
    schema: Schema,
    json_in_strings: bool,
) -> Result<Mapped, Bad> {
    let mut m = Mapped {
        id: obj.get("id").and_then(scalar_text),
        ..Default::default()
    };
    let cx = Cx { json_in_strings };
    match schema {
        Schema::Instruction => {
            cx.optional_text(obj, "system", Role::System, &mut m.fields)?;
            cx.required_text(obj, &["instruction"], Role::Prompt, &mut m.fields)?;
            if let Some(v) = obj.get_mut("input") {
                if let Some(t) = take_text(v, "input")? {
                    if !t.is_empty() {
                        m.fields.push(field("input", Role::Prompt, t));
                    }
                }
            }
            cx.required_text(obj, &["output", "response"], Role::Response, &mut m.fields)?;
        }
        Schema::Chat => {
            cx.optional_text(obj, "system", Role::System, &mut m.fields)?;
            let key = if obj.contains_key("messages") {
                "messages"
            } else {
                "conversations"
            };
            let v = obj
                .get(key)
                .ok_or_else(|| bad("missing field 'messages' (or 'conversations')", None))?;
            let list = cx.message_list(v, key)?.ok_or_else(|| {
                bad(
                    format!("field '{key}' is not a list of messages"),
                    Some(key),
                )
            })?;
            for msg in &list {
                m.fields
                    .push(field(msg.path.clone(), msg.role, msg.text.clone()));
            }
            if m.fields.is_empty() {
                return Err(bad(
                    format!("field '{key}' has no messages with text"),
                    Some(key),
                ));
            }
        }
        Schema::PromptCompletion => {
            cx.side(obj, &["prompt"], Side::Prompt, &mut m.fields)?;
            cx.side(
                obj,
                &["completion", "response"],
                Side::Response,
                &mut m.fields,
            )?;
        }
        Schema::Preference => preference(&cx, obj, &mut m.fields)?,
        Schema::TextLabel => {
            cx.required_text(
                obj,
                &["text", "sentence", "content"],
                Role::Prompt,
                &mut m.fields,
            )?;
            let v = obj
                .get("label")
                .ok_or_else(|| bad("missing field 'label'", None))?;
            m.label = Some(label_text(v)?);
        }
    }
    // A record keeps its fields for the whole scan: drop the spare capacity pushing left (a
    // `Vec` grows to four fields at its first push).
    m.fields.shrink_to_fit();
    Ok(m)
}

struct Cx {
    json_in_strings: bool,
}

/// Which side of a prompt/response pair a text-or-messages value is on.
#[derive(Clone, Copy)]
enum Side {
    Prompt,
    Response,
    Rejected,
}

/// One message of a message list.
#[derive(Debug, Clone)]
struct Msg {
    path: String,
    role: Role,
    /// The role as written, for comparing two lists.
    raw_role: String,
    text: String,
}

impl Cx {
    fn optional_text(
        &self,
        obj: &mut Map<String, Value>,
        key: &'static str,
        role: Role,
        out: &mut Vec<Field>,
    ) -> Result<(), Bad> {
        if let Some(v) = obj.get_mut(key) {
            if let Some(t) = take_text(v, key)? {
                out.push(field(key, role, t));
            }
        }
        Ok(())
    }

    fn required_text(
        &self,
        obj: &mut Map<String, Value>,
        keys: &[&'static str],
        role: Role,
        out: &mut Vec<Field>,
    ) -> Result<(), Bad> {
        let (key, v) = first_present_mut(obj, keys)?;
        match take_text(v, key)? {
            Some(t) => {
                out.push(field(key, role, t));
                Ok(())
            }
            None => Err(bad(format!("field '{key}' is null"), Some(key))),
        }
    }

    /// A required value that is text or a message list, on `side`.
    fn side(
        &self,
        obj: &Map<String, Value>,
        keys: &[&'static str],
        side: Side,
        out: &mut Vec<Field>,
    ) -> Result<(), Bad> {
        let (key, v) = first_present(obj, keys)?;
        if let Some(list) = self.message_list(v, key)? {
            for msg in list {
                out.push(field(msg.path, side_role(side, msg.role), msg.text));
            }
            return Ok(());
        }
        match text(v, key)? {
            Some(t) => {
                out.push(field(key, side_role(side, Role::Prompt), t));
                Ok(())
            }
            None => Err(bad(format!("field '{key}' is null"), Some(key))),
        }
    }

    /// `v` as a message list, `None` when it is not a list (a string that does not parse as one
    /// counts as text). A list whose items are not messages is an error.
    fn message_list(&self, v: &Value, key: &str) -> Result<Option<Vec<Msg>>, Bad> {
        let parsed;
        let items = match v {
            Value::Array(a) => a,
            Value::String(s) if self.json_in_strings && s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Value>(s) {
                    Ok(Value::Array(a)) => {
                        parsed = a;
                        &parsed
                    }
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let here = format!("{key}[{i}]");
            let Value::Object(o) = item else {
                return Err(bad(format!("{here} is not a message object"), Some(&here)));
            };
            let (role_key, content_key) =
                if o.contains_key("from") || (!o.contains_key("role") && o.contains_key("value")) {
                    ("from", "value")
                } else {
                    ("role", "content")
                };
            let raw_role = match o.get(role_key) {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    let p = format!("{here}.{role_key}");
                    return Err(bad(format!("{p} is missing or not text"), Some(&p)));
                }
            };
            let role = role_of(&raw_role).ok_or_else(|| {
                let p = format!("{here}.{role_key}");
                bad(
                    format!("{p} has unknown role '{raw_role}' (expected user/human, assistant/gpt, system or tool)"),
                    Some(&p),
                )
            })?;
            let cpath = format!("{here}.{content_key}");
            let content = o.get(content_key).or_else(|| {
                o.get(if content_key == "value" {
                    "content"
                } else {
                    "value"
                })
            });
            match content {
                None | Some(Value::Null) => {}
                Some(Value::Array(parts)) => {
                    // Content parts: [{"type": "text", "text": "..."}, {"type": "image_url", ...}].
                    for (j, part) in parts.iter().enumerate() {
                        let ppath = format!("{cpath}[{j}]");
                        match part {
                            Value::String(s) => out.push(Msg {
                                path: ppath,
                                role,
                                raw_role: raw_role.clone(),
                                text: s.clone(),
                            }),
                            Value::Object(po) => {
                                if let Some(t) = po.get("text") {
                                    let tpath = format!("{ppath}.text");
                                    if let Some(t) = text(t, &tpath)? {
                                        out.push(Msg {
                                            path: tpath,
                                            role,
                                            raw_role: raw_role.clone(),
                                            text: t,
                                        });
                                    }
                                }
                            }
                            _ => {
                                return Err(bad(
                                    format!("{ppath} is not a content part"),
                                    Some(&ppath),
                                ))
                            }
                        }
                    }
                }
                Some(c) => {
                    if let Some(t) = text(c, &cpath)? {
                        out.push(Msg {
                            path: cpath,
                            role,
                            raw_role: raw_role.clone(),
                            text: t,
                        });
                    }
                }
            }
        }
        Ok(Some(out))
    }
}

/// The role a message takes on `side`: system stays system; on the prompt side everything else
/// is prompt; a completion is all response; the rejected side is all rejected.
fn side_role(side: Side, msg_role: Role) -> Role {
    match (side, msg_role) {
        (_, Role::System) => Role::System,
        (Side::Prompt, _) => Role::Prompt,
        (Side::Response, _) => Role::Response,
        (Side::Rejected, _) => Role::Rejected,
    }
}

/// Preference pairs: `prompt` (optional), `chosen` and `rejected`, each text or a message list.
/// With two message lists and no `prompt`, the messages both lists share from the start are the
/// prompt (at most all but the last of the shorter list, so an identical pair still has sides).
fn preference(cx: &Cx, obj: &Map<String, Value>, out: &mut Vec<Field>) -> Result<(), Bad> {
    let has_prompt = obj.get("prompt").is_some_and(|v| !v.is_null());
    if has_prompt {
        cx.side(obj, &["prompt"], Side::Prompt, out)?;
    }
    let chosen_v = obj
        .get("chosen")
        .ok_or_else(|| bad("missing field 'chosen'", None))?;
    let rejected_v = obj
        .get("rejected")
        .ok_or_else(|| bad("missing field 'rejected'", None))?;
    let chosen = cx.message_list(chosen_v, "chosen")?;
    let rejected = cx.message_list(rejected_v, "rejected")?;
    let shared = match (&chosen, &rejected) {
        (Some(c), Some(r)) if !has_prompt => {
            let limit = c.len().min(r.len()).saturating_sub(1);
            c.iter()
                .zip(r.iter())
                .take(limit)
                .take_while(|(a, b)| a.raw_role == b.raw_role && a.text == b.text)
                .count()
        }
        _ => 0,
    };
    match chosen {
        Some(list) => {
            for (i, msg) in list.into_iter().enumerate() {
                let role = if i < shared || msg.role != Role::Response {
                    side_role(Side::Prompt, msg.role)
                } else {
                    Role::Response
                };
                out.push(field(msg.path, role, msg.text));
            }
        }
        None => match text(chosen_v, "chosen")? {
            Some(t) => out.push(field("chosen", Role::Response, t)),
            None => return Err(bad("field 'chosen' is null", Some("chosen"))),
        },
    }
    match rejected {
        Some(list) => {
            for msg in list.into_iter().skip(shared) {
                let role = side_role(Side::Rejected, msg.role);
                out.push(field(msg.path, role, msg.text));
            }
        }
        None => match text(rejected_v, "rejected")? {
            Some(t) => out.push(field("rejected", Role::Rejected, t)),
            None => return Err(bad("field 'rejected' is null", Some("rejected"))),
        },
    }
    Ok(())
}

/// user/human → prompt, assistant/gpt → response, system → system, tool output → prompt.
fn role_of(raw: &str) -> Option<Role> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "user" | "human" | "prompter" | "tool" | "function" | "ipython" | "observation"
        | "environment" => Some(Role::Prompt),
        "assistant" | "gpt" | "bot" | "model" | "chatgpt" | "bing" => Some(Role::Response),
        "system" | "developer" => Some(Role::System),
        _ => None,
    }
}

fn first_present<'a, 'k>(
    obj: &'a Map<String, Value>,
    keys: &[&'k str],
) -> Result<(&'k str, &'a Value), Bad> {
    keys.iter()
        .find_map(|k| obj.get(*k).map(|v| (*k, v)))
        .ok_or_else(|| missing(keys))
}

/// [`first_present`] for a value to take text out of.
fn first_present_mut<'a, 'k>(
    obj: &'a mut Map<String, Value>,
    keys: &[&'k str],
) -> Result<(&'k str, &'a mut Value), Bad> {
    let key = keys.iter().copied().find(|k| obj.contains_key(*k));
    key.and_then(|k| obj.get_mut(k).map(|v| (k, v)))
        .ok_or_else(|| missing(keys))
}

fn missing(keys: &[&str]) -> Bad {
    let names: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    bad(format!("missing field {}", names.join(" or ")), None)
}

/// Text of a scalar: strings as they are, numbers and booleans as JSON writes them, null as
/// `None`; lists and objects are an error.
fn text(v: &Value, path: &str) -> Result<Option<String>, Bad> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) => Err(bad(
            format!("field '{path}' is a list, expected text"),
            Some(path),
        )),
        Value::Object(_) => Err(bad(
            format!("field '{path}' is an object, expected text"),
            Some(path),
        )),
    }
}

/// [`text`], moving a string out of `v` instead of copying it.
fn take_text(v: &mut Value, path: &str) -> Result<Option<String>, Bad> {
    match v {
        Value::String(s) => Ok(Some(std::mem::take(s))),
        other => text(other, path),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A label's text: a scalar, or a list of scalars joined by commas (multi-label).
fn label_text(v: &Value) -> Result<String, Bad> {
    match v {
        Value::Null => Err(bad("field 'label' is null", Some("label"))),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            parts.map(|p| p.join(",")).ok_or_else(|| {
                bad(
                    "field 'label' is a list of non-scalar values",
                    Some("label"),
                )
            })
        }
        Value::Object(_) => Err(bad(
            "field 'label' is an object, expected a number, text or boolean",
            Some("label"),
        )),
        other => Ok(scalar_text(other).unwrap_or_default()),
    }
}

fn field(path: impl Into<std::borrow::Cow<'static, str>>, role: Role, text: String) -> Field {
    Field {
        path: path.into(),
        role,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    fn roles(m: &Mapped) -> Vec<(String, Role, String)> {
        m.fields
            .iter()
            .map(|f| (f.path.to_string(), f.role, f.text.clone()))
            .collect()
    }

    #[test]
    fn detects_each_schema() {
        assert_eq!(
            detect(["instruction", "input", "output"]),
            Some(Schema::Instruction)
        );
        assert_eq!(
            detect(["instruction", "response"]),
            Some(Schema::Instruction)
        );
        assert_eq!(detect(["messages"]), Some(Schema::Chat));
        assert_eq!(detect(["conversations", "id"]), Some(Schema::Chat));
        assert_eq!(
            detect(["prompt", "completion"]),
            Some(Schema::PromptCompletion)
        );
        assert_eq!(
            detect(["prompt", "chosen", "rejected"]),
            Some(Schema::Preference)
        );
        assert_eq!(detect(["sentence", "label"]), Some(Schema::TextLabel));
        assert_eq!(detect(["foo", "bar"]), None);
    }

    #[test]
    fn sharegpt_roles_and_paths() {
        let mut o = obj(json!({"conversations": [
            {"from": "system", "value": "be nice"},
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello"}]}));
        let m = map(&mut o, Schema::Chat, false).unwrap();
        assert_eq!(
            roles(&m),
            vec![
                (
                    "conversations[0].value".into(),
                    Role::System,
                    "be nice".into()
                ),
                ("conversations[1].value".into(), Role::Prompt, "hi".into()),
                (
                    "conversations[2].value".into(),
                    Role::Response,
                    "hello".into()
                ),
            ]
        );
    }

    #[test]
    fn preference_shared_prefix_is_prompt() {
        let mut o = obj(json!({
            "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}));
        let m = map(&mut o, Schema::Preference, false).unwrap();
        assert_eq!(
            roles(&m),
            vec![
                ("chosen[0].content".into(), Role::Prompt, "q".into()),
                ("chosen[1].content".into(), Role::Response, "good".into()),
                ("rejected[1].content".into(), Role::Rejected, "bad".into()),
            ]
        );
        // Identical pairs keep both sides.
        let mut o = obj(json!({
            "chosen": [{"role": "assistant", "content": "same"}],
            "rejected": [{"role": "assistant", "content": "same"}]}));
        let m = map(&mut o, Schema::Preference, false).unwrap();
        assert!(m.fields.iter().any(|f| f.role == Role::Response));
        assert!(m.fields.iter().any(|f| f.role == Role::Rejected));
    }

    #[test]
    fn reasons_name_the_field() {
        let mut o = obj(json!({"instruction": "x"}));
        let e = map(&mut o, Schema::Instruction, false).unwrap_err();
        assert!(e.reason.contains("'output' or 'response'"), "{}", e.reason);
        let mut o = obj(json!({"messages": [{"role": "wizard", "content": "x"}]}));
        let e = map(&mut o, Schema::Chat, false).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("messages[0].role"));
        let mut o = obj(json!({"text": "x", "label": null}));
        assert!(map(&mut o, Schema::TextLabel, false).is_err());
        let mut o = obj(json!({"text": "x", "label": true}));
        assert_eq!(
            map(&mut o, Schema::TextLabel, false)
                .unwrap()
                .label
                .as_deref(),
            Some("true")
        );
    }

    #[test]
    fn json_strings_in_csv_cells() {
        let mut o = obj(json!({"messages": "[{\"role\": \"user\", \"content\": \"hi\"}]"}));
        assert!(map(&mut o.clone(), Schema::Chat, false).is_err());
        let m = map(&mut o, Schema::Chat, true).unwrap();
        assert_eq!(m.fields[0].path, "messages[0].content");
    }
}
