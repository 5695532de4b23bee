//! Incremental parsing of OpenAI-shaped responses: SSE streams (`data:` lines, blank-line
//! delimited, `[DONE]`) and whole JSON bodies, into per-choice text. Bounded: line length,
//! choice count and total text.
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Why a response could not be (fully) inspected.
pub type Reason = &'static str;

/// Per-choice text gathered from a response.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    /// choice index -> text (content, reasoning content, tool-call arguments and legacy text).
    pub choices: BTreeMap<usize, String>,
    /// Set when parsing stopped; the text above is what was read before.
    pub failed: Option<Reason>,
    /// Whether an in-stream error object was seen.
    pub upstream_error: bool,
    /// Total chars collected.
    chars: usize,
    /// Choices whose text grew since the last `take_grown` (sorted on take).
    grown: Vec<usize>,
}

impl Collected {
    fn add(&mut self, idx: usize, s: &str, max_choices: usize, max_chars: usize) {
        if s.is_empty() || self.failed.is_some() {
            return;
        }
        if idx >= max_choices {
            self.failed = Some("too-many-choices");
            return;
        }
        self.chars += s.len();
        if self.chars > max_chars {
            self.failed = Some("response-too-large");
            return;
        }
        self.choices.entry(idx).or_default().push_str(s);
        if !self.grown.contains(&idx) {
            self.grown.push(idx);
        }
    }

    /// Reads one chunk or body from its JSON text: a typed, borrowing parse of the common
    /// shape, and the general [`Collected::absorb`] over a `Value` for anything else (other
    /// types, content-part arrays, duplicate keys). `None` when the text is not JSON.
    pub fn absorb_json(
        &mut self,
        text: &str,
        max_choices: usize,
        max_chars: usize,
    ) -> Option<bool> {
        if let Ok(c) = serde_json::from_str::<Obj<FastChunk>>(text) {
            return Some(self.absorb_fast(&c, max_choices, max_chars));
        }
        let v: Value = serde_json::from_str(text).ok()?;
        Some(self.absorb(&v, max_choices, max_chars))
    }

    /// [`Collected::absorb`] for the typed shape; same order of additions.
    fn absorb_fast(&mut self, v: &FastChunk, max_choices: usize, max_chars: usize) -> bool {
        if v.error.0 {
            self.upstream_error = true;
            return true;
        }
        let Some(choices) = &v.choices else {
            return v.usage.0;
        };
        for (pos, c) in choices.iter().enumerate() {
            let idx = c
                .index
                .map_or(pos, |i| usize::try_from(i).unwrap_or(usize::MAX));
            for m in [&c.delta, &c.message].into_iter().flatten() {
                for s in [&m.reasoning_content, &m.content, &m.refusal]
                    .into_iter()
                    .flatten()
                {
                    self.add(idx, s, max_choices, max_chars);
                }
                for t in m.tool_calls.iter().flatten() {
                    if let Some(s) = t.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        self.add(idx, s, max_choices, max_chars);
                    }
                }
            }
            if let Some(s) = &c.text {
                self.add(idx, s, max_choices, max_chars);
            }
        }
        true
    }

    /// The choices whose text grew since the last call, ascending.
    fn take_grown(&mut self) -> Vec<usize> {
        let mut g = std::mem::take(&mut self.grown);
        g.sort_unstable();
        g
    }

    /// Reads one chat or completions object (a chunk or a whole body). Returns false on an
    /// unknown shape.
    pub fn absorb(&mut self, v: &Value, max_choices: usize, max_chars: usize) -> bool {
        if v.get("error").is_some() {
            self.upstream_error = true;
            return true;
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            // A usage-only chunk has an empty or missing choices list next to "usage".
            return v.get("usage").is_some();
        };
        for (pos, c) in choices.iter().enumerate() {
            let idx = c
                .get("index")
                .and_then(Value::as_u64)
                .map_or(pos, |i| usize::try_from(i).unwrap_or(usize::MAX));
            for part in ["delta", "message"] {
                if let Some(m) = c.get(part) {
                    for key in ["reasoning_content", "content", "refusal"] {
                        match m.get(key) {
                            Some(Value::String(s)) => self.add(idx, s, max_choices, max_chars),
                            Some(Value::Array(parts)) => {
                                for p in parts {
                                    if let Some(s) = p.get("text").and_then(Value::as_str) {
                                        self.add(idx, s, max_choices, max_chars);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                        for t in calls {
                            if let Some(s) =
                                t.pointer("/function/arguments").and_then(Value::as_str)
                            {
                                self.add(idx, s, max_choices, max_chars);
                            }
                        }
                    }
                }
            }
            if let Some(s) = c.get("text").and_then(Value::as_str) {
                self.add(idx, s, max_choices, max_chars);
            }
        }
        true
    }
}

/// A key that is present (any value, `null` included), as `Value::get(..).is_some()` sees it.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// A JSON object only: derived struct parsers also take arrays (fields by position), which
/// `Value::get` never reads.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<T> std::ops::Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The common chunk shape; any other type makes the parse fail and the `Value` path decide.
#[derive(Deserialize)]
struct FastChunk<'a> {
    #[serde(default)]
    error: Present,
    #[serde(default)]
    usage: Present,
    #[serde(default, borrow)]
    choices: Option<Vec<Obj<FastChoice<'a>>>>,
}

#[derive(Deserialize)]
struct FastChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<Obj<FastMessage<'a>>>,
    #[serde(default, borrow)]
    message: Option<Obj<FastMessage<'a>>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FastMessage<'a> {
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<Obj<FastToolCall<'a>>>>,
}

#[derive(Deserialize)]
struct FastToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<Obj<FastFunction<'a>>>,
}

#[derive(Deserialize)]
struct FastFunction<'a> {
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// An incremental SSE parser that also tells where complete events end in the raw bytes.
#[derive(Debug)]
pub struct SseParser {
    pending: Vec<u8>,
    scan_from: usize,
    data: String,
    /// Set once `data: [DONE]` was read.
    pub done: bool,
    max_line: usize,
    max_choices: usize,
    max_chars: usize,
    /// The text so far.
    pub collected: Collected,
    /// Choices whose text grew in the last `feed`.
    pub touched: Vec<usize>,
}

impl SseParser {
    /// A parser with the given bounds.
    pub fn new(max_line: usize, max_choices: usize, max_chars: usize) -> Self {
        SseParser {
            pending: Vec::new(),
            scan_from: 0,
            data: String::new(),
            done: false,
            max_line,
            max_choices,
            max_chars,
            collected: Collected::default(),
            touched: Vec::new(),
        }
    }

    /// Feeds raw bytes; returns the raw bytes of the events completed by them (byte-identical
    /// to the input, in order). After a failure every later byte is returned at once.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.feed_to(chunk, true)
    }

    /// [`SseParser::feed`] for a caller that relays the bytes itself (audit mode): the same
    /// parsing, without copying the completed events out.
    pub fn scan(&mut self, chunk: &[u8]) {
        self.feed_to(chunk, false);
    }

    fn feed_to(&mut self, chunk: &[u8], keep: bool) -> Vec<u8> {
        self.touched.clear();
        if self.collected.failed.is_some() {
            let mut out = std::mem::take(&mut self.pending);
            if keep {
                out.extend_from_slice(chunk);
            }
            return out;
        }
        self.pending.extend_from_slice(chunk);
        let mut event_end = 0;
        let mut line_start = self.line_start();
        while let Some(nl) = self.pending[self.scan_from..]
            .iter()
            .position(|b| *b == b'\n')
        {
            let end = self.scan_from + nl;
            let mut line = &self.pending[line_start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.len() > self.max_line {
                self.collected.failed = Some("sse-line-too-long");
                break;
            }
            self.scan_from = end + 1;
            line_start = self.scan_from;
            if line.is_empty() {
                self.dispatch();
                event_end = self.scan_from;
                if self.collected.failed.is_some() {
                    break;
                }
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        if !self.data.is_empty() {
                            self.data.push('\n');
                        }
                        self.data.push_str(s);
                        if self.data.len() > self.max_line {
                            self.collected.failed = Some("sse-event-too-long");
                            break;
                        }
                    }
                    Err(_) => {
                        self.collected.failed = Some("sse-not-utf8");
                        break;
                    }
                }
            }
            // event:, id:, retry: and comments carry no text.
        }
        if self.collected.failed.is_some() {
            self.scan_from = 0;
            return std::mem::take(&mut self.pending);
        }
        if self.pending.len() - line_start > self.max_line {
            self.collected.failed = Some("sse-line-too-long");
            self.scan_from = 0;
            return std::mem::take(&mut self.pending);
        }
        let out: Vec<u8> = if keep {
            self.pending.drain(..event_end).collect()
        } else {
            self.pending.drain(..event_end);
            Vec::new()
        };
        self.scan_from -= event_end;
        out
    }

    /// Start of the current (unterminated) line in `pending`.
    fn line_start(&self) -> usize {
        self.scan_from
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        self.collected.grown.clear();
        match self
            .collected
            .absorb_json(&data, self.max_choices, self.max_chars)
        {
            Some(true) => {}
            Some(false) => self.collected.failed = Some("unknown-shape"),
            None => self.collected.failed = Some("sse-unparsable"),
        }
        for k in self.collected.take_grown() {
            if !self.touched.contains(&k) {
                self.touched.push(k);
            }
        }
        self.data = data;
        self.data.clear();
    }

    /// Bytes held back (an unterminated last event); returned at end of stream.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.scan_from = 0;
        std::mem::take(&mut self.pending)
    }
}

/// Parses a whole (non-streaming) JSON body.
pub fn parse_body(body: &[u8], max_choices: usize, max_chars: usize) -> Collected {
    let mut c = Collected::default();
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            if !c.absorb(&v, max_choices, max_chars) || v.get("choices").is_none() {
                c.failed = Some("unknown-shape");
            }
        }
        Err(_) => c.failed = Some("response-not-json"),
    }
    c
}

/// The prompt text of a chat or completions request: message contents (strings or text parts)
/// or the `prompt` string(s), joined by newlines.
pub fn prompt_text(req: &Value) -> String {
    let mut out = String::new();
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    };
    if let Some(msgs) = req.get("messages").and_then(Value::as_array) {
        for m in msgs {
            match m.get("content") {
                Some(Value::String(s)) => push(s),
                Some(Value::Array(parts)) => {
                    for p in parts {
                        if let Some(s) = p.get("text").and_then(Value::as_str) {
                            push(s);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    match req.get("prompt") {
        Some(Value::String(s)) => push(s),
        Some(Value::Array(a)) => {
            for p in a {
                if let Some(s) = p.as_str() {
                    push(s);
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_back_byte_identical() {
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n: keepalive\n\ndata: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";
        for split in 1..stream.len() {
            let mut p = SseParser::new(1 << 16, 4, 1 << 20);
            let mut out = p.feed(&stream[..split]);
            out.extend(p.feed(&stream[split..]));
            out.extend(p.take_rest());
            assert_eq!(out, stream.to_vec(), "split at {split}");
            assert!(p.done);
            assert_eq!(p.collected.choices[&0], "Hel");
            assert_eq!(p.collected.choices[&1], "lo");
            assert!(p.collected.failed.is_none());
            // `scan` parses the same without handing bytes back.
            let mut q = SseParser::new(1 << 16, 4, 1 << 20);
            q.scan(&stream[..split]);
            q.scan(&stream[split..]);
            assert!(q.done);
            assert_eq!(q.collected.choices, p.collected.choices);
        }
    }

    #[test]
    fn long_lines_and_bad_json_fail_without_losing_bytes() {
        let mut p = SseParser::new(16, 4, 1 << 20);
        let chunk = vec![b'x'; 100];
        let out = p.feed(&chunk);
        assert_eq!(out.len(), 100);
        assert_eq!(p.collected.failed, Some("sse-line-too-long"));
        let mut p = SseParser::new(1 << 10, 4, 1 << 20);
        let out = p.feed(b"data: {nope\n\nrest");
        assert_eq!(out, b"data: {nope\n\nrest".to_vec());
        assert_eq!(p.collected.failed, Some("sse-unparsable"));
    }

    #[test]
    fn typed_fast_path_reads_what_the_value_path_reads() {
        let shapes = [
            r#"{"choices":[{"index":0,"delta":{"content":"a\"b","reasoning_content":"r","refusal":"no"}}]}"#,
            r#"{"choices":[{"delta":{"content":"x"}},{"delta":{"content":"y"}}]}"#,
            r#"{"choices":[{"index":2,"message":{"content":"m","tool_calls":[{"function":{"arguments":"{}"}},{"function":null},{}]}}]}"#,
            r#"{"choices":[{"index":1,"text":"legacy"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"total_tokens":3}}"#,
            r#"{"usage":{"total_tokens":3}}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"hidden"}}]}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"object":"list"}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"part"}]}}]}"#,
            r#"{"choices":[{"index":-1,"delta":{"content":"neg"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"one"}}],"choices":[{"index":1,"delta":{"content":"two"}}]}"#,
            r#"{"choices":[{"index":0,"delta":"not an object","text":7}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":null,"tool_calls":[{"function":{"arguments":5}}]}}]}"#,
            r#"{"choices":{"0":{"text":"map"}}}"#,
            r#"[1,2]"#,
            r#"{"choices":[{"index":9,"delta":{"content":"over"}}]}"#,
        ];
        for text in shapes {
            let mut fast = Collected::default();
            let got = fast.absorb_json(text, 4, 1 << 20);
            let mut slow = Collected::default();
            let v: Value = serde_json::from_str(text).unwrap();
            let want = slow.absorb(&v, 4, 1 << 20);
            assert_eq!(got, Some(want), "{text}");
            assert_eq!(fast.choices, slow.choices, "{text}");
            assert_eq!(fast.failed, slow.failed, "{text}");
            assert_eq!(fast.upstream_error, slow.upstream_error, "{text}");
        }
        assert_eq!(Collected::default().absorb_json("{nope", 4, 100), None);
    }

    #[test]
    fn touched_lists_each_grown_choice_once_per_feed() {
        let mut p = SseParser::new(1 << 16, 4, 1 << 20);
        p.feed(b"data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"}},{\"index\":0,\"delta\":{\"content\":\"c\"}}]}\n\n");
        let mut t = p.touched.clone();
        t.sort_unstable();
        assert_eq!(t, vec![0, 1]);
        p.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}\n\n");
        assert!(p.touched.is_empty());
    }

    #[test]
    fn choices_beyond_the_bound_fail() {
        let c = parse_body(
            br#"{"choices":[{"index":99,"message":{"content":"x"}}]}"#,
            4,
            100,
        );
        assert_eq!(c.failed, Some("too-many-choices"));
        let c = parse_body(br#"{"object":"list"}"#, 4, 100);
        assert_eq!(c.failed, Some("unknown-shape"));
    }
}
