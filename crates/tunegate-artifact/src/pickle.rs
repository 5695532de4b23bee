//! A pickle decoder and symbolic stack/memo machine for protocols 0-5.
//!
//! The machine follows CPython's C unpickler (`Modules/_pickle.c`), not `pickletools`:
//! - `FRAME` only checks that the declared bytes are present; opcodes are then read
//!   sequentially, so a frame that an opcode straddles is decoded the way the C unpickler runs
//!   it (and reported, because `pickletools` and the Python unpickler disagree).
//! - the memo is a map written by `PUT`/`BINPUT`/`LONG_BINPUT`/`MEMOIZE` (which uses the number of
//!   entries as its key) and read by `GET`/`BINGET`/`LONG_BINGET`; a missing key stops the stream.
//! - `MARK` sets a fence: popping below it is an underflow, and `POP` on a fence removes the mark.
//! - `STACK_GLOBAL` takes module and name from the stack, wherever they came from (memo, any
//!   string opcode), and requires both to be strings.
//! - after `STOP` the next bytes are decoded as another pickle, as legacy PyTorch files and
//!   stacked-pickle attacks require.
//!
//! Values are symbolic: strings (short ones kept, long ones only measured), integers, imported
//! globals, results of calls, and opaque data. Payload bytes are never copied: every length
//! field is checked against the bytes actually remaining before it is used.
use crate::checks;
use crate::policy::{self, Class};
use serde_json::json;
use std::collections::HashMap;
use std::rc::Rc;
use tunegate_core::{CheckInfo, Severity};

/// Bounds on the work one scan may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Opcodes per stream.
    pub max_ops: u64,
    /// Stack depth.
    pub max_stack: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Open marks (nesting).
    pub max_marks: usize,
    /// Pickle streams per buffer.
    pub max_streams: usize,
    /// Import records per buffer.
    pub max_imports: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops: 50_000_000,
            max_stack: 1_000_000,
            max_memo: 1_000_000,
            max_marks: 10_000,
            max_streams: 64,
            max_imports: 100_000,
        }
    }
}

/// How the buffer came to be decoded as a pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The container says it is a pickle (PROTO byte, `.pkl` member, npy object payload): every
    /// problem in the first stream is reported.
    Strict,
    /// Content sniffing only: a first stream that neither reaches `STOP` nor imports a plausible
    /// global is treated as "not a pickle" rather than as a broken one.
    Sniffed,
}

/// One thing the decoder found, before the container adds a location.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The check.
    pub check: CheckInfo,
    /// Severity (the check's default unless the evidence moved it).
    pub severity: Severity,
    /// What to tell a person.
    pub message: String,
    /// Machine-readable evidence (`module`, `name`, `opcode`, `offset`, ...).
    pub evidence: serde_json::Value,
}

/// An imported global and how the pickle used it.
#[derive(Debug, Clone)]
pub struct Import {
    /// Module as written in the pickle.
    pub module: String,
    /// Name as written (may be dotted).
    pub name: String,
    /// `GLOBAL`, `STACK_GLOBAL` or `INST`.
    pub opcode: &'static str,
    /// Byte offset of the opcode.
    pub offset: u64,
    /// 0-based stream index.
    pub stream: usize,
    /// Policy class.
    pub class: Class,
    /// Called by `REDUCE`, `OBJ` or `INST`.
    pub called: bool,
    /// Passed as an argument to a call.
    pub passed: bool,
    /// Instantiated (`NEWOBJ`, `copyreg._reconstructor`).
    pub instantiated: bool,
}

/// The result of decoding a buffer.
#[derive(Debug, Clone, Default)]
pub struct PickleScan {
    /// Findings, imports already turned into findings.
    pub hits: Vec<Hit>,
    /// Every import, in order.
    pub imports: Vec<Import>,
    /// Streams decoded (kept).
    pub streams: usize,
    /// `false` when sniffed content turned out not to be a pickle at all.
    pub is_pickle: bool,
    /// The integer left by the first stream's `STOP`, if it was one (legacy PyTorch magic).
    pub first_int: Option<i128>,
    /// Where decoding stopped (relative to the input start).
    pub end: u64,
}

/// The legacy PyTorch magic number (`torch.serialization.MAGIC_NUMBER`).
pub const TORCH_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

const MAX_STR: usize = 1024;
const MAX_TUPLE: usize = 256;

#[derive(Debug, Clone)]
enum Val {
    Str(Rc<str>),
    LongStr,
    Int(i128),
    Global(usize),
    Called(usize),
    Tuple(Rc<Vec<Val>>),
    Persistent,
    Other,
}

enum End {
    Stop,
    /// Offsets are absolute.
    Error {
        offset: u64,
        op: &'static str,
        message: String,
    },
    Limit {
        offset: u64,
        message: String,
    },
    /// The op at this window-local position needs bytes beyond the window.
    NeedMore {
        at: usize,
    },
}

/// Everything a stream's decoding carries from one input window to the next.
struct State {
    stream: usize,
    limits: Limits,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u64, Val>,
    imports: Vec<Import>,
    hits: Vec<Hit>,
    frame_end: Option<u64>,
    frame_reported: bool,
    result: Option<Val>,
    ops: u64,
}

/// The machine over one window of input: `data[0]` is at absolute offset `base`, and the input
/// ends at absolute offset `end_abs` (beyond the window when the input is streamed).
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    end_abs: u64,
    stream: usize,
    limits: Limits,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u64, Val>,
    imports: Vec<Import>,
    hits: Vec<Hit>,
    frame_end: Option<u64>,
    frame_reported: bool,
    result: Option<Val>,
    ops: u64,
}

fn op_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "?",
    }
}

/// True when `op` is a defined opcode of protocols 0-5.
pub fn is_opcode(op: u8) -> bool {
    op_name(op) != "?"
}

type Step = Result<(), End>;

/// `PyBytes_DecodeEscape` for the quoted `STRING` argument.
fn decode_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len().min(MAX_STR));
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c != b'\\' || i + 1 >= s.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = s[i + 1];
        i += 2;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                let mut k = 0;
                while k < 2 && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    v = v * 8 + (s[i] - b'0') as u32;
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let h = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => {
                        out.push(b'\\');
                        out.push(b'x');
                    }
                }
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    out
}

/// `raw-unicode-escape` decoding for the `UNICODE` argument.
fn decode_raw_unicode_escape(s: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(s.len().min(MAX_STR));
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'\\' && i + 1 < s.len() && (s[i + 1] == b'u' || s[i + 1] == b'U') {
            // An odd number of backslashes before `u` makes an escape.
            let mut n = 0;
            let mut j = i;
            while j > 0 && s[j - 1] == b'\\' {
                n += 1;
                j -= 1;
            }
            if n % 2 == 0 {
                let len = if s[i + 1] == b'u' { 4 } else { 8 };
                let hex = s.get(i + 2..i + 2 + len)?;
                let v = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                i += 2 + len;
                continue;
            }
        }
        out.push(c as char);
        i += 1;
    }
    Some(out)
}

fn str_val(s: &str) -> Val {
    if s.len() > MAX_STR {
        Val::LongStr
    } else {
        Val::Str(Rc::from(s))
    }
}

/// A protocol-0 decimal literal (INT, LONG): its value when it fits `i128`, an opaque value when
/// it is a longer run of digits and signs, `None` when it is not a number at all.
fn text_int(s: &str) -> Option<Val> {
    match s.parse::<i128>() {
        Ok(v) => Some(Val::Int(v)),
        Err(_)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') =>
        {
            Some(Val::Other)
        }
        Err(_) => None,
    }
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8], base: u64, end_abs: u64, st: State) -> Self {
        Machine {
            data,
            pos: 0,
            base,
            end_abs,
            stream: st.stream,
            limits: st.limits,
            stack: st.stack,
            marks: st.marks,
            memo: st.memo,
            imports: st.imports,
            hits: st.hits,
            frame_end: st.frame_end,
            frame_reported: st.frame_reported,
            result: st.result,
            ops: st.ops,
        }
    }

    fn into_state(self) -> State {
        State {
            stream: self.stream,
            limits: self.limits,
            stack: self.stack,
            marks: self.marks,
            memo: self.memo,
            imports: self.imports,
            hits: self.hits,
            frame_end: self.frame_end,
            frame_reported: self.frame_reported,
            result: self.result,
            ops: self.ops,
        }
    }

    fn abs(&self, local: usize) -> u64 {
        self.base + local as u64
    }

    fn err(&self, at: usize, message: impl Into<String>) -> End {
        End::Error {
            offset: self.abs(at),
            op: self.data.get(at).map_or("?", |b| op_name(*b)),
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize, op_at: usize) -> Result<&'a [u8], End> {
        let rem = self.data.len().saturating_sub(self.pos);
        if n > rem {
            let abs_rem = self.end_abs.saturating_sub(self.abs(self.pos));
            if n as u64 <= abs_rem {
                return Err(End::NeedMore { at: op_at });
            }
            return Err(self.err(
                op_at,
                format!(
                    "truncated: {} needs {n} bytes, {abs_rem} remain",
                    op_name(self.data[op_at])
                ),
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.check_frame(op_at, self.abs(self.pos + n));
        self.pos += n;
        Ok(s)
    }

    /// Skips a payload without reading it (it may lie beyond the window).
    fn skip(&mut self, n: usize, op_at: usize) -> Step {
        let abs_rem = self.end_abs.saturating_sub(self.abs(self.pos));
        if n as u64 > abs_rem {
            return Err(self.err(
                op_at,
                format!(
                    "truncated: {} needs {n} bytes, {abs_rem} remain",
                    op_name(self.data[op_at])
                ),
            ));
        }
        self.check_frame(op_at, self.abs(self.pos) + n as u64);
        self.pos += n;
        Ok(())
    }

    fn check_frame(&mut self, op_at: usize, end: u64) {
        let op_abs = self.abs(op_at);
        if let Some(fe) = self.frame_end {
            if op_abs < fe && end > fe && !self.frame_reported {
                self.frame_reported = true;
                self.hits.push(Hit {
                    check: checks::FRAME_DIVERGENCE,
                    severity: checks::FRAME_DIVERGENCE.severity,
                    message: format!(
                        "{} at offset {} reads past the end of its FRAME (offset {}): pickletools and the C unpickler disagree on what follows",
                        op_name(self.data[op_at]),
                        op_abs,
                        fe
                    ),
                    evidence: json!({"opcode": op_name(self.data[op_at]), "offset": op_abs, "frame_end": fe}),
                });
            }
        }
    }

    fn line(&mut self, op_at: usize) -> Result<&'a [u8], End> {
        match memchr::memchr(b'\n', self.data.get(self.pos..).unwrap_or(&[])) {
            Some(i) => {
                let s = &self.data[self.pos..self.pos + i];
                self.check_frame(op_at, self.abs(self.pos + i + 1));
                self.pos += i + 1;
                Ok(s)
            }
            None if self.abs(self.data.len()) < self.end_abs => Err(End::NeedMore { at: op_at }),
            None => Err(self.err(
                op_at,
                format!(
                    "truncated: {} line has no newline",
                    op_name(self.data[op_at])
                ),
            )),
        }
    }

    fn len_u32(&mut self, op_at: usize) -> Result<usize, End> {
        let b = self.take(4, op_at)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn len_u64(&mut self, op_at: usize) -> Result<usize, End> {
        let b = self.take(8, op_at)?;
        let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: Val, op_at: usize) -> Step {
        if self.stack.len() >= self.limits.max_stack {
            return Err(End::Limit {
                offset: self.abs(op_at),
                message: format!("stack deeper than {}", self.limits.max_stack),
            });
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, op_at: usize) -> Result<Val, End> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(
                op_at,
                format!("{}: unpickling stack underflow", op_name(self.data[op_at])),
            ));
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn top(&self, op_at: usize) -> Result<&Val, End> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(
                op_at,
                format!("{}: unpickling stack underflow", op_name(self.data[op_at])),
            ));
        }
        Ok(self.stack.last().expect("checked"))
    }

    fn pop_mark(&mut self, op_at: usize) -> Result<Vec<Val>, End> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err(
                op_at,
                format!("{}: could not find MARK", op_name(self.data[op_at])),
            ));
        };
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }

    fn import(
        &mut self,
        module: &str,
        name: &str,
        opcode: &'static str,
        op_at: usize,
    ) -> Result<Val, End> {
        if self.imports.len() >= self.limits.max_imports {
            return Err(End::Limit {
                offset: self.abs(op_at),
                message: format!("more than {} imports", self.limits.max_imports),
            });
        }
        let class = policy::classify(module, name);
        self.imports.push(Import {
            module: module.chars().take(MAX_STR).collect(),
            name: name.chars().take(MAX_STR).collect(),
            opcode,
            offset: self.base + op_at as u64,
            stream: self.stream,
            class,
            called: false,
            passed: false,
            instantiated: false,
        });
        Ok(Val::Global(self.imports.len() - 1))
    }

    fn mark_args(&mut self, v: &Val, depth: usize, instantiate: bool) {
        match v {
            Val::Global(i) => {
                if instantiate {
                    self.imports[*i].instantiated = true;
                } else {
                    self.imports[*i].passed = true;
                }
            }
            Val::Tuple(items) if depth < 3 => {
                for it in items.iter() {
                    self.mark_args(it, depth + 1, instantiate);
                }
            }
            _ => {}
        }
    }

    fn unresolved(&mut self, op_at: usize, message: String) {
        self.hits.push(Hit {
            check: checks::UNRESOLVED_CALLABLE,
            severity: checks::UNRESOLVED_CALLABLE.severity,
            message,
            evidence: json!({"opcode": op_name(self.data[op_at]), "offset": self.base + op_at as u64}),
        });
    }

    /// Applies a call of `callee` with `args`; returns the result value.
    fn call(
        &mut self,
        callee: &Val,
        args: &[Val],
        op_at: usize,
        instantiate: bool,
    ) -> Result<Val, End> {
        match callee {
            Val::Global(i) => {
                let i = *i;
                if instantiate {
                    self.imports[i].instantiated = true;
                } else {
                    self.imports[i].called = true;
                }
                let reconstructor = {
                    let imp = &self.imports[i];
                    policy::normalize_module(&imp.module) == "copyreg"
                        && imp.name == "_reconstructor"
                };
                for a in args {
                    self.mark_args(a, 0, reconstructor);
                }
                Ok(Val::Called(i))
            }
            Val::Called(i) => {
                let imp = &self.imports[*i];
                let msg = format!(
                    "{} calls the result of a call to {}.{}: a computed callable",
                    op_name(self.data[op_at]),
                    imp.module,
                    imp.name
                );
                for a in args {
                    self.mark_args(a, 0, false);
                }
                self.unresolved(op_at, msg);
                Ok(Val::Other)
            }
            Val::Str(_) | Val::LongStr | Val::Int(_) | Val::Tuple(_) => Err(self.err(
                op_at,
                format!("{}: callee is not callable", op_name(self.data[op_at])),
            )),
            Val::Persistent | Val::Other => {
                for a in args {
                    self.mark_args(a, 0, false);
                }
                self.unresolved(
                    op_at,
                    format!(
                        "{} calls a value the scanner cannot resolve to an import",
                        op_name(self.data[op_at])
                    ),
                );
                Ok(Val::Other)
            }
        }
    }

    fn tuple(items: Vec<Val>) -> Val {
        if items.len() <= MAX_TUPLE {
            Val::Tuple(Rc::new(items))
        } else {
            let kept: Vec<Val> = items
                .into_iter()
                .filter(|v| matches!(v, Val::Global(_) | Val::Called(_) | Val::Tuple(_)))
                .take(MAX_TUPLE)
                .collect();
            Val::Tuple(Rc::new(kept))
        }
    }

    fn memo_put(&mut self, key: u64, op_at: usize) -> Step {
        let v = self.top(op_at)?.clone();
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(End::Limit {
                offset: self.abs(op_at),
                message: format!("memo larger than {}", self.limits.max_memo),
            });
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, op_at: usize) -> Step {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v, op_at)
            }
            None => Err(self.err(op_at, format!("memo key {key} not found"))),
        }
    }

    fn text_global(&mut self, op_at: usize) -> Result<(String, String), End> {
        let m = self.line(op_at)?;
        let n = self.line(op_at)?;
        let (Ok(m), Ok(n)) = (std::str::from_utf8(m), std::str::from_utf8(n)) else {
            return Err(self.err(
                op_at,
                format!("{}: module or name is not UTF-8", op_name(self.data[op_at])),
            ));
        };
        Ok((m.to_string(), n.to_string()))
    }

    /// Runs one stream from `self.pos` until STOP or an error.
    fn run(&mut self) -> End {
        loop {
            if self.pos >= self.data.len() {
                if self.abs(self.pos) < self.end_abs {
                    return End::NeedMore { at: self.pos };
                }
                return self.err(self.pos, "truncated: no STOP opcode");
            }
            self.ops += 1;
            if self.ops > self.limits.max_ops {
                return End::Limit {
                    offset: self.abs(self.pos),
                    message: format!("more than {} opcodes", self.limits.max_ops),
                };
            }
            if let Some(fe) = self.frame_end {
                if self.abs(self.pos) >= fe {
                    self.frame_end = None;
                }
            }
            let at = self.pos;
            let op = self.data[at];
            self.pos += 1;
            if let Err(e) = self.step(op, at) {
                return e;
            }
            if op == b'.' {
                return End::Stop;
            }
        }
    }

    fn step(&mut self, op: u8, at: usize) -> Step {
        match op {
            b'(' => {
                if self.marks.len() >= self.limits.max_marks {
                    return Err(End::Limit {
                        offset: self.abs(at),
                        message: format!("more than {} nested MARKs", self.limits.max_marks),
                    });
                }
                self.marks.push(self.stack.len());
            }
            b'.' => {
                let v = self.pop(at)?;
                self.result = Some(v);
            }
            b'0' => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop(at)?;
                }
            }
            b'1' => {
                self.pop_mark(at)?;
            }
            b'2' => {
                let v = self.top(at)?.clone();
                self.push(v, at)?;
            }
            b'F' => {
                self.line(at)?;
                self.push(Val::Other, at)?;
            }
            b'I' => {
                let l = self.line(at)?;
                let s = std::str::from_utf8(l).unwrap_or("").trim();
                let v = match s {
                    "00" | "01" => Val::Other,
                    s => match text_int(s) {
                        Some(v) => v,
                        None => return Err(self.err(at, "INT: invalid literal")),
                    },
                };
                self.push(v, at)?;
            }
            b'J' => {
                let b = self.take(4, at)?;
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                self.push(Val::Int(v as i128), at)?;
            }
            b'K' => {
                let b = self.take(1, at)?;
                self.push(Val::Int(b[0] as i128), at)?;
            }
            b'M' => {
                let b = self.take(2, at)?;
                self.push(Val::Int(u16::from_le_bytes([b[0], b[1]]) as i128), at)?;
            }
            b'L' => {
                let l = self.line(at)?;
                let s = std::str::from_utf8(l).unwrap_or("").trim();
                let s = s.strip_suffix('L').unwrap_or(s);
                let Some(v) = text_int(s) else {
                    return Err(self.err(at, "LONG: invalid literal"));
                };
                self.push(v, at)?;
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    self.take(1, at)?[0] as usize
                } else {
                    let b = self.take(4, at)?;
                    let n = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    if n < 0 {
                        return Err(self.err(at, "LONG4: negative byte count"));
                    }
                    n as usize
                };
                let v = if n == 0 {
                    Val::Int(0)
                } else if n <= 16 {
                    let b = self.take(n, at)?;
                    let mut buf = if b[n - 1] & 0x80 != 0 {
                        [0xffu8; 16]
                    } else {
                        [0u8; 16]
                    };
                    buf[..n].copy_from_slice(b);
                    Val::Int(i128::from_le_bytes(buf))
                } else {
                    self.skip(n, at)?;
                    Val::Other
                };
                self.push(v, at)?;
            }
            b'N' | 0x88 | 0x89 | b'G' => {
                if op == b'G' {
                    self.take(8, at)?;
                }
                self.push(Val::Other, at)?;
            }
            b'P' => {
                self.line(at)?;
                self.push(Val::Persistent, at)?;
            }
            b'Q' => {
                self.pop(at)?;
                self.push(Val::Persistent, at)?;
            }
            b'R' => {
                let args = self.pop(at)?;
                let callee = self.pop(at)?;
                let args_v: Vec<Val> = match &args {
                    Val::Tuple(t) => t.as_ref().clone(),
                    other => vec![other.clone()],
                };
                let r = self.call(&callee, &args_v, at, false)?;
                self.push(r, at)?;
            }
            b'S' => {
                let l = self.line(at)?;
                let mut n = l.len();
                while n > 0 && l[n - 1] <= b' ' {
                    n -= 1;
                }
                let l = &l[..n];
                if n < 2 || l[0] != l[n - 1] || (l[0] != b'\'' && l[0] != b'"') {
                    return Err(self.err(at, "STRING: argument must be quoted"));
                }
                let inner = &l[1..n - 1];
                if inner.len() > MAX_STR * 4 {
                    self.push(Val::LongStr, at)?;
                } else {
                    let b = decode_escape(inner);
                    match std::str::from_utf8(&b) {
                        Ok(s) if s.is_ascii() => self.push(str_val(s), at)?,
                        _ => return Err(self.err(at, "STRING: not ASCII")),
                    }
                }
            }
            b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'T' => {
                        let b = self.take(4, at)?;
                        let n = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        if n < 0 {
                            return Err(self.err(at, "BINSTRING: negative length"));
                        }
                        n as usize
                    }
                    b'U' | b'C' => self.take(1, at)?[0] as usize,
                    b'B' => self.len_u32(at)?,
                    _ => self.len_u64(at)?,
                };
                let v = if (op == b'T' || op == b'U') && n <= MAX_STR {
                    // Strings of protocol 0-2 decode as ASCII into str by default.
                    match std::str::from_utf8(self.take(n, at)?) {
                        Ok(s) => Val::Str(Rc::from(s)),
                        Err(_) => Val::Other,
                    }
                } else {
                    self.skip(n, at)?;
                    if op == b'T' || op == b'U' {
                        Val::LongStr
                    } else {
                        Val::Other
                    }
                };
                self.push(v, at)?;
            }
            b'V' => {
                let l = self.line(at)?;
                if l.len() > MAX_STR * 8 {
                    self.push(Val::LongStr, at)?;
                } else {
                    match decode_raw_unicode_escape(l) {
                        Some(s) => self.push(str_val(&s), at)?,
                        None => return Err(self.err(at, "UNICODE: bad escape")),
                    }
                }
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => self.len_u32(at)?,
                    0x8c => self.take(1, at)?[0] as usize,
                    _ => self.len_u64(at)?,
                };
                if n > MAX_STR {
                    self.skip(n, at)?;
                    self.push(Val::LongStr, at)?;
                } else {
                    match std::str::from_utf8(self.take(n, at)?) {
                        Ok(s) => self.push(Val::Str(Rc::from(s)), at)?,
                        // surrogatepass accepts lone surrogates; other invalid bytes fail.
                        Err(_) => self.push(Val::Other, at)?,
                    }
                }
            }
            b'a' => {
                let v = self.pop(at)?;
                self.top(at)?;
                drop(v);
            }
            b'b' => {
                let _state = self.pop(at)?;
                let inst = self.top(at)?.clone();
                if let Val::Global(i) = inst {
                    let imp = self.imports[i].clone();
                    self.hits.push(Hit {
                        check: checks::GLOBAL_MUTATION,
                        severity: checks::GLOBAL_MUTATION.severity,
                        message: format!(
                            "BUILD writes state into the imported object {}.{} itself (attribute poisoning)",
                            imp.module, imp.name
                        ),
                        evidence: json!({"module": imp.module, "name": imp.name, "opcode": "BUILD", "offset": self.base + at as u64}),
                    });
                }
            }
            b'c' | b'i' => {
                let (m, n) = self.text_global(at)?;
                let opname = if op == b'c' { "GLOBAL" } else { "INST" };
                let g = self.import(&m, &n, opname, at)?;
                if op == b'c' {
                    self.push(g, at)?;
                } else {
                    let args = self.pop_mark(at)?;
                    let r = self.call(&g, &args, at, false)?;
                    self.push(r, at)?;
                }
            }
            b'd' | b'l' | 0x91 => {
                self.pop_mark(at)?;
                self.push(Val::Other, at)?;
            }
            b't' => {
                let items = self.pop_mark(at)?;
                self.push(Self::tuple(items), at)?;
            }
            b'}' | b']' | b')' | 0x8f => {
                let v = if op == b')' {
                    Val::Tuple(Rc::new(Vec::new()))
                } else {
                    Val::Other
                };
                self.push(v, at)?;
            }
            b'e' | b'u' | 0x90 => {
                self.pop_mark(at)?;
                self.top(at)?;
            }
            b's' => {
                self.pop(at)?;
                self.pop(at)?;
                self.top(at)?;
            }
            b'g' | b'p' => {
                let l = self.line(at)?;
                let s = std::str::from_utf8(l).unwrap_or("").trim();
                let Ok(key) = s.parse::<i64>() else {
                    return Err(self.err(at, format!("{}: invalid memo key", op_name(op))));
                };
                if key < 0 {
                    return Err(self.err(at, format!("{}: negative memo key", op_name(op))));
                }
                if op == b'g' {
                    self.memo_get(key as u64, at)?;
                } else {
                    self.memo_put(key as u64, at)?;
                }
            }
            b'h' | b'q' => {
                let k = self.take(1, at)?[0] as u64;
                if op == b'h' {
                    self.memo_get(k, at)?;
                } else {
                    self.memo_put(k, at)?;
                }
            }
            b'j' | b'r' => {
                let k = self.len_u32(at)? as u64;
                if op == b'j' {
                    self.memo_get(k, at)?;
                } else {
                    self.memo_put(k, at)?;
                }
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k, at)?;
            }
            b'o' => {
                let mut items = self.pop_mark(at)?;
                if items.is_empty() {
                    return Err(self.err(at, "OBJ: no class after MARK"));
                }
                let cls = items.remove(0);
                let r = self.call(&cls, &items, at, false)?;
                self.push(r, at)?;
            }
            0x81 => {
                let args = self.pop(at)?;
                let cls = self.pop(at)?;
                let a: Vec<Val> = match &args {
                    Val::Tuple(t) => t.as_ref().clone(),
                    other => vec![other.clone()],
                };
                let r = self.call(&cls, &a, at, true)?;
                self.push(r, at)?;
            }
            0x92 => {
                let kwargs = self.pop(at)?;
                let args = self.pop(at)?;
                let cls = self.pop(at)?;
                let mut a: Vec<Val> = match &args {
                    Val::Tuple(t) => t.as_ref().clone(),
                    other => vec![other.clone()],
                };
                a.push(kwargs);
                let r = self.call(&cls, &a, at, true)?;
                self.push(r, at)?;
            }
            0x80 => {
                let p = self.take(1, at)?[0];
                if p > 5 {
                    return Err(self.err(at, format!("unsupported pickle protocol {p}")));
                }
            }
            0x82..=0x84 => {
                let n = match op {
                    0x82 => 1,
                    0x83 => 2,
                    _ => 4,
                };
                let b = self.take(n, at)?;
                let mut code = [0u8; 4];
                code[..n].copy_from_slice(b);
                let code = u32::from_le_bytes(code);
                self.unresolved(
                    at,
                    format!("{} refers to copyreg extension code {code}, which cannot be resolved statically", op_name(op)),
                );
                return Err(self.err(
                    at,
                    format!("{}: unregistered extension code {code}", op_name(op)),
                ));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop(at)?);
                }
                items.reverse();
                self.push(Self::tuple(items), at)?;
            }
            0x93 => {
                let name = self.pop(at)?;
                let module = self.pop(at)?;
                match (&module, &name) {
                    (Val::Str(m), Val::Str(n)) => {
                        let (m, n) = (m.clone(), n.clone());
                        let g = self.import(&m, &n, "STACK_GLOBAL", at)?;
                        self.push(g, at)?;
                    }
                    (Val::LongStr, _) | (_, Val::LongStr) => {
                        self.unresolved(
                            at,
                            "STACK_GLOBAL with a module or name too long to resolve".into(),
                        );
                        return Err(self.err(at, "STACK_GLOBAL: operand too long"));
                    }
                    _ => return Err(self.err(at, "STACK_GLOBAL requires str operands")),
                }
            }
            0x95 => {
                let n = self.len_u64(at)? as u64;
                let rem = self.end_abs - self.abs(self.pos);
                if n > rem {
                    // The C unpickler stops here; the pure-Python one reads the short frame and
                    // goes on. Decode on, so whatever either would run is seen.
                    self.hits.push(Hit {
                        check: checks::MALFORMED,
                        severity: checks::MALFORMED.severity,
                        message: format!(
                            "FRAME at offset {} declares {n} bytes but only {rem} remain",
                            self.base + at as u64
                        ),
                        evidence: json!({"opcode": "FRAME", "offset": self.base + at as u64, "declared": n, "remaining": rem}),
                    });
                    self.frame_end = Some(self.end_abs);
                } else {
                    self.frame_end = Some(self.abs(self.pos) + n);
                }
            }
            0x97 | 0x98 => {
                if op == 0x97 {
                    // No out-of-band buffers are supplied by torch.load or numpy.load.
                    return Err(self.err(at, "NEXT_BUFFER without out-of-band buffers"));
                }
                self.top(at)?;
            }
            _ => return Err(self.err(at, format!("invalid opcode 0x{op:02x}"))),
        }
        Ok(())
    }
}

/// Input for the decoder, served in windows so a file never has to be read whole.
pub trait Windows {
    /// Total input length.
    fn total(&self) -> u64;
    /// The bytes from `at` to at most the end of the input (at least one byte when `at` is
    /// before the end, unless reading fails).
    fn window(&mut self, at: u64) -> std::io::Result<&[u8]>;
    /// Asks for bigger windows; false when they cannot grow.
    fn grow(&mut self) -> bool;
}

/// A whole buffer as one window.
pub struct SliceWindows<'a>(pub &'a [u8]);

impl Windows for SliceWindows<'_> {
    fn total(&self) -> u64 {
        self.0.len() as u64
    }
    fn window(&mut self, at: u64) -> std::io::Result<&[u8]> {
        Ok(self.0.get(at as usize..).unwrap_or(&[]))
    }
    fn grow(&mut self) -> bool {
        false
    }
}

/// A file read in windows of 64 KiB growing to `max` (16 MiB by default): memory stays bounded
/// whatever the file size, and payloads are skipped by offset, never read.
pub struct FileWindows {
    file: std::fs::File,
    total: u64,
    want: usize,
    max: usize,
    buf: Vec<u8>,
}

impl FileWindows {
    /// Opens `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let total = file.metadata()?.len();
        Ok(FileWindows {
            file,
            total,
            want: 64 << 10,
            max: 16 << 20,
            buf: Vec::new(),
        })
    }
}

impl Windows for FileWindows {
    fn total(&self) -> u64 {
        self.total
    }
    fn window(&mut self, at: u64) -> std::io::Result<&[u8]> {
        use std::os::unix::fs::FileExt;
        let n = (self.total.saturating_sub(at)).min(self.want as u64) as usize;
        self.buf.resize(n, 0);
        self.file.read_exact_at(&mut self.buf, at)?;
        Ok(&self.buf)
    }
    fn grow(&mut self) -> bool {
        if self.want >= self.max {
            return false;
        }
        self.want = (self.want * 2).min(self.max);
        true
    }
}

/// Decodes every pickle stream in `data` (`base` is added to reported offsets).
pub fn scan_pickle(data: &[u8], base: u64, mode: Mode, limits: &Limits) -> PickleScan {
    scan_windows(&mut SliceWindows(data), base, mode, limits)
}

/// Decodes every pickle stream served by `src` (`base` is added to reported offsets).
pub fn scan_windows(src: &mut dyn Windows, base: u64, mode: Mode, limits: &Limits) -> PickleScan {
    let mut out = PickleScan {
        is_pickle: true,
        ..Default::default()
    };
    let total = src.total();
    let mut imports: Vec<Import> = Vec::new();
    let mut pos = 0u64;
    let mut stream = 0usize;
    let mut max_streams = limits.max_streams;
    while pos < total && stream < max_streams {
        let head: [u8; 2] = match src.window(pos) {
            Ok(w) => [
                w.first().copied().unwrap_or(0),
                w.get(1).copied().unwrap_or(0xff),
            ],
            Err(_) => break,
        };
        let strict = if stream == 0 {
            mode == Mode::Strict
        } else {
            head[0] == 0x80 && head[1] <= 5
        };
        let mut st = State {
            stream,
            limits: *limits,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            imports: std::mem::take(&mut imports),
            hits: Vec::new(),
            frame_end: None,
            frame_reported: false,
            result: None,
            ops: 0,
        };
        let before = st.imports.len();
        let mut cur = pos;
        let (end, new_pos) = loop {
            let win = match src.window(cur) {
                Ok(w) => w,
                Err(e) => {
                    break (
                        End::Error {
                            offset: base + cur,
                            op: "?",
                            message: format!("read error: {e}"),
                        },
                        cur,
                    )
                }
            };
            let mut m = Machine::new(win, base + cur, base + total, st);
            let e = m.run();
            let local = m.pos;
            st = m.into_state();
            match e {
                End::NeedMore { at } => {
                    if at == 0 && !src.grow() {
                        break (
                            End::Limit {
                                offset: base + cur,
                                message:
                                    "an opcode argument longer than the 16 MiB decoding window"
                                        .into(),
                            },
                            cur,
                        );
                    }
                    cur += at as u64;
                }
                other => break (other, cur + local as u64),
            }
        };
        let plausible = st.imports[before..].iter().any(|i| {
            policy::is_dotted_identifier(&i.module) && policy::is_dotted_identifier(&i.name)
        });
        let stopped = matches!(end, End::Stop);
        let keep = strict || stopped || plausible;
        if !keep {
            st.imports.truncate(before);
            imports = st.imports;
            if stream == 0 {
                out.is_pickle = false;
            } else {
                out.hits.push(Hit {
                    check: checks::MALFORMED,
                    severity: Severity::Low,
                    message: format!(
                        "{} trailing bytes after the last pickle were not decoded (not a pickle)",
                        total - pos
                    ),
                    evidence: json!({"offset": base + pos}),
                });
            }
            break;
        }
        if stream == 0 && stopped {
            if let Some(Val::Int(v)) = &st.result {
                out.first_int = Some(*v);
            }
            // A legacy PyTorch file holds exactly five pickles, then raw storage bytes.
            if out.first_int == Some(TORCH_MAGIC) {
                max_streams = max_streams.min(5);
            }
        }
        out.hits.append(&mut st.hits);
        imports = st.imports;
        stream += 1;
        pos = new_pos;
        match end {
            End::Stop | End::NeedMore { .. } => {}
            End::Error {
                offset,
                op,
                message,
            } => {
                out.hits.push(Hit {
                    check: checks::MALFORMED,
                    severity: checks::MALFORMED.severity,
                    message: format!("pickle stream {stream} stops at offset {offset}: {message}"),
                    evidence: json!({"offset": offset, "opcode": op, "stream": stream - 1}),
                });
                break;
            }
            End::Limit { offset, message } => {
                out.hits.push(Hit {
                    check: checks::RESOURCE_LIMIT,
                    severity: checks::RESOURCE_LIMIT.severity,
                    message: format!(
                        "pickle stream {stream} exceeds a decoder bound at offset {offset}: {message}"
                    ),
                    evidence: json!({"offset": offset, "stream": stream - 1}),
                });
                break;
            }
        }
    }
    out.streams = stream;
    out.end = pos;
    for imp in &imports {
        if let Some(h) = import_hit(imp) {
            out.hits.push(h);
        }
    }
    out.imports = imports;
    out
}

fn import_hit(imp: &Import) -> Option<Hit> {
    let ev = json!({
        "module": imp.module,
        "name": imp.name,
        "opcode": imp.opcode,
        "offset": imp.offset,
        "stream": imp.stream,
        "called": imp.called,
    });
    let what = format!("{}.{}", imp.module, imp.name);
    let (check, sev, msg) = match imp.class {
        Class::Allowed => return None,
        Class::Dangerous(why) => (
            checks::DANGEROUS_GLOBAL,
            Severity::Critical,
            format!(
                "pickle imports {what} ({why}) via {} at offset {}",
                imp.opcode, imp.offset
            ),
        ),
        Class::Suspicious(why) => (
            checks::UNKNOWN_GLOBAL,
            Severity::High,
            format!(
                "pickle imports {what} ({why}), not on the allow-list, via {} at offset {}",
                imp.opcode, imp.offset
            ),
        ),
        Class::Unknown => {
            let sev = if imp.called || imp.passed {
                Severity::High
            } else if imp.module == "__main__"
                && policy::is_dotted_identifier(&imp.name)
                && !imp.name.contains('.')
            {
                // A class of the loading program itself: it only resolves to code the user
                // already runs, and it is instantiated, not called.
                Severity::Low
            } else {
                Severity::Medium
            };
            let how = if imp.called {
                "and calls it during load"
            } else if imp.passed {
                "and passes it to a call during load"
            } else if imp.instantiated {
                "and instantiates it"
            } else {
                "without calling it"
            };
            (
                checks::UNKNOWN_GLOBAL,
                sev,
                format!(
                    "pickle imports {what}, not on the allow-list, {how} ({} at offset {})",
                    imp.opcode, imp.offset
                ),
            )
        }
    };
    Some(Hit {
        check,
        severity: sev,
        message: msg,
        evidence: ev,
    })
}

/// True when `data` starts like a pickle with a protocol header.
pub fn has_proto_header(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0x80 && data[1] <= 5
}
