//! Hand-written pickle, npy and zip builders for fixtures (no Python involved).
#![allow(dead_code)]

/// A pickle byte builder: one method per opcode.
#[derive(Default, Clone)]
pub struct P(pub Vec<u8>);

impl P {
    pub fn new() -> Self {
        P(Vec::new())
    }
    pub fn proto(mut self, n: u8) -> Self {
        self.0.extend([0x80, n]);
        self
    }
    pub fn op(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn global(mut self, m: &str, n: &str) -> Self {
        self.0.push(b'c');
        self.0.extend(format!("{m}\n{n}\n").bytes());
        self
    }
    pub fn inst(mut self, m: &str, n: &str) -> Self {
        self.0.push(b'i');
        self.0.extend(format!("{m}\n{n}\n").bytes());
        self
    }
    pub fn short_unicode(mut self, s: &str) -> Self {
        self.0.push(0x8c);
        self.0.push(s.len() as u8);
        self.0.extend(s.bytes());
        self
    }
    pub fn binunicode(mut self, s: &str) -> Self {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.bytes());
        self
    }
    pub fn unicode0(mut self, s: &str) -> Self {
        self.0.push(b'V');
        self.0.extend(s.bytes());
        self.0.push(b'\n');
        self
    }
    /// `STRING` with the literal written as-is between quotes (escapes allowed).
    pub fn string0(mut self, lit: &str) -> Self {
        self.0.push(b'S');
        self.0.push(b'\'');
        self.0.extend(lit.bytes());
        self.0.extend(b"'\n");
        self
    }
    pub fn short_binstring(mut self, s: &str) -> Self {
        self.0.push(b'U');
        self.0.push(s.len() as u8);
        self.0.extend(s.bytes());
        self
    }
    pub fn short_binbytes(mut self, b: &[u8]) -> Self {
        self.0.push(b'C');
        self.0.push(b.len() as u8);
        self.0.extend_from_slice(b);
        self
    }
    pub fn binbytes(mut self, b: &[u8]) -> Self {
        self.0.push(b'B');
        self.0.extend((b.len() as u32).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
    pub fn bytearray8(mut self, b: &[u8]) -> Self {
        self.0.push(0x96);
        self.0.extend((b.len() as u64).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
    pub fn binint1(mut self, v: u8) -> Self {
        self.0.extend([b'K', v]);
        self
    }
    pub fn binint(mut self, v: i32) -> Self {
        self.0.push(b'J');
        self.0.extend(v.to_le_bytes());
        self
    }
    pub fn int0(mut self, v: i64) -> Self {
        self.0.extend(format!("I{v}\n").bytes());
        self
    }
    pub fn long1(mut self, bytes: &[u8]) -> Self {
        self.0.extend([0x8a, bytes.len() as u8]);
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn binfloat(mut self, v: f64) -> Self {
        self.0.push(b'G');
        self.0.extend(v.to_be_bytes());
        self
    }
    pub fn memoize(self) -> Self {
        self.op(0x94)
    }
    pub fn binput(mut self, i: u8) -> Self {
        self.0.extend([b'q', i]);
        self
    }
    pub fn binget(mut self, i: u8) -> Self {
        self.0.extend([b'h', i]);
        self
    }
    pub fn long_binput(mut self, i: u32) -> Self {
        self.0.push(b'r');
        self.0.extend(i.to_le_bytes());
        self
    }
    pub fn long_binget(mut self, i: u32) -> Self {
        self.0.push(b'j');
        self.0.extend(i.to_le_bytes());
        self
    }
    pub fn put0(mut self, i: u32) -> Self {
        self.0.extend(format!("p{i}\n").bytes());
        self
    }
    pub fn get0(mut self, i: u32) -> Self {
        self.0.extend(format!("g{i}\n").bytes());
        self
    }
    pub fn frame(mut self, n: u64) -> Self {
        self.0.push(0x95);
        self.0.extend(n.to_le_bytes());
        self
    }
    pub fn mark(self) -> Self {
        self.op(b'(')
    }
    pub fn tuple(self) -> Self {
        self.op(b't')
    }
    pub fn tuple1(self) -> Self {
        self.op(0x85)
    }
    pub fn tuple2(self) -> Self {
        self.op(0x86)
    }
    pub fn tuple3(self) -> Self {
        self.op(0x87)
    }
    pub fn empty_tuple(self) -> Self {
        self.op(b')')
    }
    pub fn reduce(self) -> Self {
        self.op(b'R')
    }
    pub fn build(self) -> Self {
        self.op(b'b')
    }
    pub fn newobj(self) -> Self {
        self.op(0x81)
    }
    pub fn stack_global(self) -> Self {
        self.op(0x93)
    }
    pub fn pop(self) -> Self {
        self.op(b'0')
    }
    pub fn stop(self) -> Self {
        self.op(b'.')
    }
    pub fn bytes(self) -> Vec<u8> {
        self.0
    }
}

/// An `.npy` file (format 1.0) with `descr` and a payload.
pub fn npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.bytes());
    out.extend_from_slice(payload);
    out
}

/// One zip member for [`zip`].
pub struct Member<'a> {
    pub name: &'a str,
    /// Name written into the local header (defaults to `name`).
    pub local_name: Option<&'a str>,
    pub data: &'a [u8],
    pub flags: u16,
    pub deflate: bool,
    /// Overrides the declared uncompressed size.
    pub declared_size: Option<u32>,
}

impl<'a> Member<'a> {
    pub fn new(name: &'a str, data: &'a [u8]) -> Self {
        Member {
            name,
            local_name: None,
            data,
            flags: 0,
            deflate: false,
            declared_size: None,
        }
    }
}

/// A zip archive written by hand (CRC left 0: PyTorch ignores it, and so does the scanner).
pub fn zip(members: &[Member]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let body = if m.deflate {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(m.data).unwrap();
            e.finish().unwrap()
        } else {
            m.data.to_vec()
        };
        let method: u16 = if m.deflate { 8 } else { 0 };
        let usize_ = m.declared_size.unwrap_or(m.data.len() as u32);
        let off = out.len() as u32;
        let lname = m.local_name.unwrap_or(m.name);
        out.extend(b"PK\x03\x04");
        out.extend(20u16.to_le_bytes());
        out.extend(m.flags.to_le_bytes());
        out.extend(method.to_le_bytes());
        out.extend([0u8; 4]); // time, date
        out.extend(0u32.to_le_bytes()); // crc
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(usize_.to_le_bytes());
        out.extend((lname.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(lname.bytes());
        out.extend(&body);
        central.extend(b"PK\x01\x02");
        central.extend(20u16.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(m.flags.to_le_bytes());
        central.extend(method.to_le_bytes());
        central.extend([0u8; 4]);
        central.extend(0u32.to_le_bytes());
        central.extend((body.len() as u32).to_le_bytes());
        central.extend(usize_.to_le_bytes());
        central.extend((m.name.len() as u16).to_le_bytes());
        central.extend([0u8; 8]); // extra, comment, disk, internal attrs
        central.extend(0u32.to_le_bytes()); // external attrs
        central.extend(off.to_le_bytes());
        central.extend(m.name.bytes());
    }
    let cd_off = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06");
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_off.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A torch-state-dict-shaped pickle (protocol 2, as `torch.save` writes `data.pkl`): an
/// OrderedDict of two tensors rebuilt from persistent storages, with `_metadata`.
pub fn torch_state_dict() -> Vec<u8> {
    let tensor = |p: P, key: &str, memo: u8| {
        p.binunicode(key)
            .global("torch._utils", "_rebuild_tensor_v2")
            .binput(memo)
            .mark()
            .mark()
            .binunicode("storage")
            .global("torch", "FloatStorage")
            .binunicode("0")
            .binunicode("cpu")
            .binint1(4)
            .tuple()
            .op(b'Q') // BINPERSID
            .binint1(0)
            .binint1(2)
            .binint1(2)
            .tuple2()
            .binint1(2)
            .binint1(1)
            .tuple2()
            .op(0x89) // NEWFALSE
            .global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .tuple()
            .reduce()
    };
    let p = P::new()
        .proto(2)
        .global("collections", "OrderedDict")
        .binput(0)
        .empty_tuple()
        .reduce()
        .binput(1)
        .mark();
    let p = tensor(p, "layer.weight", 2);
    let p = tensor(p, "layer.bias", 3);
    p.op(b'u') // SETITEMS
        .op(b'}')
        .binunicode("_metadata")
        .binget(0)
        .empty_tuple()
        .reduce()
        .op(b's')
        .build()
        .stop()
        .bytes()
}

/// A numpy array pickled at protocol 2 (`_reconstruct`, `ndarray`, `dtype`, `_codecs.encode`).
pub fn numpy_array() -> Vec<u8> {
    P::new()
        .proto(2)
        .global("numpy.core.multiarray", "_reconstruct")
        .global("numpy", "ndarray")
        .binint1(0)
        .tuple1()
        .global("_codecs", "encode")
        .binunicode("b")
        .binunicode("latin1")
        .tuple2()
        .reduce()
        .tuple3()
        .reduce()
        .mark()
        .binint1(1)
        .binint1(3)
        .tuple1()
        .global("numpy", "dtype")
        .binunicode("f8")
        .binint1(0)
        .binint1(1)
        .tuple3()
        .reduce()
        .mark()
        .binint1(3)
        .binunicode("<")
        .op(b'N')
        .op(b'N')
        .op(b'N')
        .binint(-1)
        .binint(-1)
        .binint1(0)
        .tuple()
        .build()
        .op(0x89)
        .global("_codecs", "encode")
        .binunicode("\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}")
        .binunicode("latin1")
        .tuple2()
        .reduce()
        .tuple()
        .build()
        .stop()
        .bytes()
}
