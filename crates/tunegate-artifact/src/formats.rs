//! Non-pickle formats with code-execution paths: chat templates (tokenizer configs, GGUF
//! metadata, Jinja files), Keras Lambda layers (H5 and `.keras` configs) and TensorFlow ops
//! that run Python or touch files. These are byte-level checks on bounded text, not full
//! parsers: a hit is a finding, no hit means only that these patterns are absent.
use memchr::memmem;

/// What a chat template reaches for that a Jinja sandbox would refuse, if anything.
pub fn template_risk(t: &str) -> Option<String> {
    let b = t.as_bytes();
    // Dunder names: `__class__`, `__globals__`, `__import__`, ...
    for i in memmem::find_iter(b, b"__") {
        let rest = &b[i + 2..];
        let n = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let word = &rest[..n];
        if word.len() >= 3 && word.ends_with(b"__") && word[0].is_ascii_alphabetic() {
            return Some(format!(
                "dunder attribute __{}",
                String::from_utf8_lossy(word)
            ));
        }
    }
    let lower = t.to_ascii_lowercase();
    for esc in ["\\x5f", "\\u005f", "\\137", "\\u0000005f"] {
        if lower.contains(esc) {
            return Some(format!(
                "escaped underscore '{esc}' (hides a private attribute)"
            ));
        }
    }
    let squeezed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.contains("|attr(") {
        return Some("the attr() filter (attribute access by computed name)".into());
    }
    for bad in [
        ".mro(",
        "func_globals",
        "f_globals",
        "gi_frame",
        "cr_frame",
        "im_func",
    ] {
        if squeezed.contains(bad) {
            return Some(format!("sandbox-refused attribute '{bad}'"));
        }
    }
    None
}

/// The value of `tokenizer.chat_template` in a GGUF header, if present and well formed.
pub fn gguf_chat_template(data: &[u8]) -> Option<&[u8]> {
    let key = b"tokenizer.chat_template";
    let limit = data.len().min(256 << 20);
    let i = memmem::find(&data[..limit], key)?;
    let p = i + key.len();
    let ty = u32::from_le_bytes(data.get(p..p + 4)?.try_into().ok()?);
    if ty != 8 {
        return None;
    }
    let len = u64::from_le_bytes(data.get(p + 4..p + 12)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    data.get(p + 12..(p + 12).checked_add(len)?)
}

/// True when a Keras config (JSON text, possibly inside an H5 attribute) declares a Lambda layer.
pub fn keras_lambda(data: &[u8]) -> bool {
    for i in memmem::find_iter(data, b"\"class_name\"") {
        let rest = &data[i + 12..data.len().min(i + 12 + 64)];
        let rest: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|c| c.is_ascii_whitespace() || *c == b':')
            .collect();
        if rest.starts_with(b"\"Lambda\"") {
            return true;
        }
    }
    false
}

/// TensorFlow `NodeDef.op` values (protobuf field 2, length-delimited) that run Python or touch
/// files, with whether they run Python.
pub fn tf_unsafe_ops(data: &[u8]) -> Vec<&'static str> {
    const OPS: &[&str] = &[
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "ShellExecute",
    ];
    let mut out = Vec::new();
    for op in OPS {
        let mut pat = vec![0x12u8, op.len() as u8];
        pat.extend(op.as_bytes());
        if memmem::find(data, &pat).is_some() {
            out.push(*op);
        }
    }
    out
}

/// Largest safetensors header the reference loader accepts (100 MB).
pub const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

fn dtype_bits(d: &str) -> Option<u64> {
    Some(match d {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

/// One problem in a safetensors header: severity, message.
pub type HeaderProblem = (tunegate_core::Severity, String);

/// Validates a safetensors header (the JSON after the 8-byte length) against the size of the
/// data section that follows it.
pub fn safetensors_problems(header: &[u8], data_len: u64) -> Vec<HeaderProblem> {
    use tunegate_core::Severity::{High, Medium};
    let mut out = Vec::new();
    let v: serde_json::Value = match serde_json::from_slice(header) {
        Ok(v) => v,
        Err(e) => return vec![(High, format!("header is not valid JSON: {e}"))],
    };
    let Some(obj) = v.as_object() else {
        return vec![(High, "header is not a JSON object".into())];
    };
    let mut ranges: Vec<(u64, u64, String)> = Vec::new();
    for (name, t) in obj {
        if name == "__metadata__" {
            match t.as_object() {
                Some(m) if m.values().all(|x| x.is_string()) => {}
                _ => out.push((
                    Medium,
                    "__metadata__ is not a map of strings to strings".into(),
                )),
            }
            continue;
        }
        let dtype = t.get("dtype").and_then(|d| d.as_str());
        let shape: Option<Vec<u64>> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect());
        let offs: Option<Vec<u64>> = t
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect());
        let (Some(dtype), Some(shape), Some(offs)) = (dtype, shape, offs) else {
            out.push((
                High,
                format!("tensor '{name}' lacks a dtype, shape or data_offsets"),
            ));
            continue;
        };
        if offs.len() != 2 || offs[0] > offs[1] {
            out.push((
                High,
                format!("tensor '{name}' has invalid data_offsets {offs:?}"),
            ));
            continue;
        }
        let (b, e) = (offs[0], offs[1]);
        if e > data_len {
            out.push((
                High,
                format!("tensor '{name}' ends at {e}, past the {data_len}-byte data section"),
            ));
        }
        match dtype_bits(dtype) {
            None => out.push((
                Medium,
                format!("tensor '{name}' has unknown dtype '{dtype}'"),
            )),
            Some(bits) => {
                let n = shape
                    .iter()
                    .try_fold(1u64, |acc, d| acc.checked_mul(*d))
                    .and_then(|n| n.checked_mul(bits));
                match n {
                    Some(nbits) if nbits.div_ceil(8) == e - b => {}
                    _ => out.push((
                        High,
                        format!(
                            "tensor '{name}': dtype {dtype} and shape {shape:?} disagree with its {} bytes",
                            e - b
                        ),
                    )),
                }
            }
        }
        ranges.push((b, e, name.clone()));
    }
    ranges.sort();
    let mut end = 0u64;
    for (b, e, name) in &ranges {
        if *b < end {
            out.push((
                High,
                format!("tensor '{name}' overlaps the previous tensor"),
            ));
        } else if *b > end {
            out.push((
                Medium,
                format!("{} unaccounted bytes before tensor '{name}'", b - end),
            ));
        }
        end = end.max(*e);
    }
    if end < data_len {
        out.push((
            Medium,
            format!(
                "{} bytes after the last tensor are not described by the header",
                data_len - end
            ),
        ));
    }
    out
}

/// `auto_map` / `custom_pipelines` entries of a config: (entry, cross-repo).
pub fn remote_code_entries(json: &[u8]) -> Vec<(String, bool)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut s = Vec::new();
    if let Some(m) = v.get("auto_map") {
        strings(m, &mut s);
    }
    let auto = s.len();
    if let Some(serde_json::Value::Object(p)) = v.get("custom_pipelines") {
        for task in p.values() {
            if let Some(i) = task.get("impl") {
                strings(i, &mut s);
            }
        }
    }
    for (i, e) in s.into_iter().enumerate() {
        let key = if i < auto {
            "auto_map"
        } else {
            "custom_pipelines"
        };
        let cross = e.contains("--");
        out.push((format!("{key}: {e}"), cross));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn templates() {
        assert!(template_risk("{{ ().__class__.__base__ }}").is_some());
        assert!(template_risk(r"{{ x['\x5f\x5fglobals\x5f\x5f'] }}").is_some());
        assert!(template_risk("{{ x | attr('y') }}").is_some());
        assert!(template_risk(
            "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] }}{% endfor %}"
        )
        .is_none());
        assert!(template_risk("{{ bos_token }}{{ my_var__x }}").is_none());
    }
    #[test]
    fn gguf() {
        let mut d = b"GGUF....tokenizer.chat_template".to_vec();
        d.extend(8u32.to_le_bytes());
        d.extend(5u64.to_le_bytes());
        d.extend(b"{{x}}");
        assert_eq!(gguf_chat_template(&d), Some(&b"{{x}}"[..]));
        d.truncate(d.len() - 1);
        assert_eq!(gguf_chat_template(&d), None);
    }
    #[test]
    fn keras_and_tf() {
        assert!(keras_lambda(br#"{"class_name": "Lambda", "config": {}}"#));
        assert!(!keras_lambda(br#"{"class_name": "Dense"}"#));
        assert_eq!(
            tf_unsafe_ops(b"\x12\x05Const\x12\x06PyFunc"),
            vec!["PyFunc"]
        );
        assert!(tf_unsafe_ops(b"\x12\x05Const").is_empty());
    }
}
