//! Containers: sniff content, then walk PyTorch zip checkpoints, npz, legacy tar, npy headers and
//! raw pickles the way the loaders do.
//!
//! Member content is sniffed rather than trusted by name; zip CRCs and flag bits are ignored as
//! PyTorch's reader ignores them (and reported, since Python's `zipfile` refuses them); every
//! declared length is checked against the bytes present, and decompression has a per-member
//! and a total budget.
use crate::checks;
use crate::formats;
use crate::pickle::{self, Hit, Limits, Mode};
use serde_json::json;
use std::borrow::Cow;
use std::io::Read;
use tunegate_core::{Finding, Location, Severity};

/// Bounds on container work.
#[derive(Debug, Clone, Copy)]
pub struct ContainerLimits {
    /// Largest decompressed member.
    pub max_member: u64,
    /// Total decompressed bytes per top-level file.
    pub max_total: u64,
    /// Declared ratio (uncompressed / compressed) above which a large member is a bomb.
    pub bomb_ratio: u64,
    /// Nested archive depth.
    pub max_depth: usize,
    /// Members per archive.
    pub max_entries: usize,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        ContainerLimits {
            max_member: 1 << 30,
            max_total: 4 << 30,
            bomb_ratio: 200,
            max_depth: 4,
            max_entries: 200_000,
        }
    }
}

/// Extensions of formats this gate does not inspect (data or text, never unpickled).
const NOT_PICKLE_EXT: &[&str] = &[
    "json",
    "txt",
    "md",
    "csv",
    "tsv",
    "yaml",
    "yml",
    "py",
    "j2",
    "jinja",
    "jinja2",
    "template",
    "toml",
    "safetensors",
    "h5",
    "hdf5",
    "pb",
    "onnx",
    "gguf",
    "ggml",
    "tflite",
    "msgpack",
    "png",
    "jpg",
    "jpeg",
    "gif",
    "html",
    "xml",
    "cfg",
    "ini",
    "model",
    "vocab",
    "tiktoken",
    "proto",
];

/// Scanning state for one top-level file.
pub struct Ctx {
    /// The file as the user named it.
    pub file: String,
    /// Findings so far.
    pub findings: Vec<Finding>,
    /// Pickle bounds.
    pub limits: Limits,
    /// Container bounds.
    pub climits: ContainerLimits,
    decompressed: u64,
}

impl Ctx {
    /// A fresh context for `file`.
    pub fn new(file: impl Into<String>) -> Self {
        Ctx {
            file: file.into(),
            findings: Vec::new(),
            limits: Limits::default(),
            climits: ContainerLimits::default(),
            decompressed: 0,
        }
    }

    fn loc(&self, member: Option<&str>) -> Location {
        let mut l = Location::file(self.file.clone());
        l.member = member.map(str::to_string);
        l
    }

    /// Records a decoder hit at `member`.
    pub fn add_hit(&mut self, member: Option<&str>, h: Hit) {
        let loc = self.loc(member);
        self.findings.push(
            Finding::new(&h.check, h.message, loc)
                .severity(h.severity)
                .evidence(h.evidence),
        );
    }

    fn add(
        &mut self,
        check: &tunegate_core::CheckInfo,
        sev: Severity,
        member: Option<&str>,
        msg: String,
        ev: serde_json::Value,
    ) {
        let loc = self.loc(member);
        self.findings
            .push(Finding::new(check, msg, loc).severity(sev).evidence(ev));
    }
}

fn ext_of(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((_, e)) => e.to_ascii_lowercase(),
        None => String::new(),
    }
}

fn is_pickle_name(name: &str) -> bool {
    matches!(ext_of(name).as_str(), "pkl" | "pickle")
}

/// `archive/data/123`: raw tensor storage that PyTorch reads as bytes, never unpickles.
fn is_torch_storage(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() >= 2
        && parts[parts.len() - 2] == "data"
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

const SEVEN_Z: &[u8] = &[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c];

/// Scans one buffer (a file or an archive member) by sniffing its content.
pub fn scan_buffer(ctx: &mut Ctx, data: &[u8], name: &str, member: Option<&str>, depth: usize) {
    if data.starts_with(SEVEN_Z) {
        ctx.add(
            &checks::UNSCANNABLE,
            checks::UNSCANNABLE.severity,
            member,
            "7z archive: tunegate cannot look inside it, and loaders or users may unpack and unpickle its members".into(),
            json!({"format": "7z"}),
        );
        return;
    }
    if data.starts_with(b"\x93NUMPY") {
        scan_npy(ctx, data, member);
        return;
    }
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        scan_zip(ctx, data, member, depth);
        return;
    }
    if pickle::has_proto_header(data) || (member.is_some() && is_pickle_name(name)) {
        scan_pickle_into(ctx, data, 0, member, Mode::Strict);
        return;
    }
    if data.len() >= 512 && &data[257..262] == b"ustar" {
        scan_tar(ctx, data, member, depth);
        return;
    }
    if plausible_zip(data) {
        scan_zip(ctx, data, member, depth);
        return;
    }
    let ext = ext_of(name);
    if scan_other_format(ctx, data, &ext, member) {
        return;
    }
    if NOT_PICKLE_EXT.contains(&ext.as_str()) || data.is_empty() {
        if member.is_none() {
            ctx.add(
                &checks::NOT_SCANNED,
                Severity::Info,
                member,
                format!("format '{ext}' is not inspected by the model gate yet"),
                json!({"extension": ext}),
            );
        }
        return;
    }
    let mode = if member.is_none() && is_pickle_name(name) {
        Mode::Strict
    } else {
        Mode::Sniffed
    };
    if !scan_pickle_into(ctx, data, 0, member, mode) && member.is_none() {
        ctx.add(
            &checks::NOT_SCANNED,
            Severity::Info,
            member,
            "content not recognised as a pickle, zip, tar, npy or 7z file; not inspected".into(),
            json!({"extension": ext}),
        );
    }
}

/// Decodes `data` as pickle streams and records findings; returns whether it was a pickle.
fn scan_pickle_into(
    ctx: &mut Ctx,
    data: &[u8],
    base: u64,
    member: Option<&str>,
    mode: Mode,
) -> bool {
    let r = pickle::scan_pickle(data, base, mode, &ctx.limits);
    if !r.is_pickle {
        return false;
    }
    for h in r.hits {
        ctx.add_hit(member, h);
    }
    true
}

/// Checks one `.npy` file (magic already seen): header bounds, object dtype, and the embedded
/// pickle of an object array. Public for the fuzz targets; [`scan_buffer`] calls it.
pub fn scan_npy(ctx: &mut Ctx, data: &[u8], member: Option<&str>) {
    let malformed = |ctx: &mut Ctx, msg: &str| {
        ctx.add(
            &checks::MALFORMED,
            Severity::Medium,
            member,
            format!("npy: {msg}"),
            json!({}),
        )
    };
    if data.len() < 10 {
        return malformed(ctx, "truncated header");
    }
    let major = data[6];
    let (hlen, start) = if major == 1 {
        (u16::from_le_bytes([data[8], data[9]]) as usize, 10)
    } else if data.len() >= 12 {
        (
            u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize,
            12,
        )
    } else {
        return malformed(ctx, "truncated header");
    };
    if hlen > data.len() - start {
        return malformed(ctx, "header length exceeds the file");
    }
    let header = String::from_utf8_lossy(&data[start..start + hlen]);
    let descr = header
        .split_once("descr")
        .map(|(_, r)| {
            let end = r
                .find("'fortran_order'")
                .or_else(|| r.find("'shape'"))
                .unwrap_or(r.len());
            &r[..end]
        })
        .unwrap_or("");
    let object = [
        "'|O'", "'O'", "'<O'", "'>O'", "'=O'", "'|O8'", "'O8'", "\"|O\"", "'object'",
    ]
    .iter()
    .any(|p| descr.contains(p));
    if object {
        ctx.add(
            &checks::NUMPY_OBJECT,
            checks::NUMPY_OBJECT.severity,
            member,
            "npy array with object dtype: numpy.load(allow_pickle=True) unpickles its content; the embedded pickle is scanned".into(),
            json!({"descr": descr.trim().trim_start_matches(['\'', ':', ' ']).chars().take(80).collect::<String>()}),
        );
        let off = start + hlen;
        scan_pickle_into(ctx, &data[off..], off as u64, member, Mode::Strict);
    }
}

/// An end-of-central-directory record whose directory really starts with a central header
/// (possibly after prepended bytes): a zip with junk in front, not random bytes that happen to
/// contain the signature.
fn plausible_zip(data: &[u8]) -> bool {
    let Some(e) = find_eocd(data) else {
        return false;
    };
    let (Some(size), Some(off)) = (u32le(data, e + 12), u32le(data, e + 16)) else {
        return false;
    };
    let start = (e as u64).saturating_sub(size);
    let at = |p: u64| {
        usize::try_from(p)
            .ok()
            .and_then(|p| data.get(p..p.checked_add(4)?))
            == Some(b"PK\x01\x02")
    };
    at(off) || at(start)
}

fn find_eocd(data: &[u8]) -> Option<usize> {
    if data.len() < 22 {
        return None;
    }
    let lo = data.len().saturating_sub(22 + 65535);
    let hay = &data[lo..data.len() - 18];
    memchr::memmem::rfind(hay, b"PK\x05\x06").map(|i| lo + i)
}

/// Random access to archive bytes: a buffer in memory or a file read on demand, so a
/// multi-gigabyte checkpoint is scanned by reading its central directory and pickle members only.
pub trait Source {
    /// Total length.
    fn size(&self) -> u64;
    /// `len` bytes at `off`, or `None` when out of range or unreadable.
    fn get(&self, off: u64, len: u64) -> Option<Cow<'_, [u8]>>;
}

/// An in-memory buffer.
pub struct SliceSource<'a>(pub &'a [u8]);

impl Source for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn get(&self, off: u64, len: u64) -> Option<Cow<'_, [u8]>> {
        let a = usize::try_from(off).ok()?;
        let b = a.checked_add(usize::try_from(len).ok()?)?;
        self.0.get(a..b).map(Cow::Borrowed)
    }
}

/// A file read with positioned reads.
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    /// Opens `path`.
    pub fn new(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.len
    }
    fn get(&self, off: u64, len: u64) -> Option<Cow<'_, [u8]>> {
        use std::os::unix::fs::FileExt;
        if off.checked_add(len)? > self.len || len > 4 << 30 {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        self.file.read_exact_at(&mut buf, off).ok()?;
        Some(Cow::Owned(buf))
    }
}

fn u16le(d: &[u8], at: usize) -> Option<u64> {
    d.get(at..at.checked_add(2)?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
}
fn u32le(d: &[u8], at: usize) -> Option<u64> {
    d.get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
}
fn u64le(d: &[u8], at: usize) -> Option<u64> {
    d.get(at..at.checked_add(8)?)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
}

fn traversal(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || name.contains('\\')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split('/').any(|p| p == "..")
}

struct Entry {
    name: String,
    flags: u64,
    method: u64,
    csize: u64,
    usize_: u64,
    offset: u64,
}

fn scan_zip(ctx: &mut Ctx, data: &[u8], outer: Option<&str>, depth: usize) {
    scan_zip_source(ctx, &SliceSource(data), outer, depth)
}

/// Walks a zip archive read from `src` (central directory first, then each member that can hold
/// a pickle, an array, a config or a nested archive; raw tensor storages are never read).
pub fn scan_zip_source(ctx: &mut Ctx, src: &dyn Source, outer: Option<&str>, depth: usize) {
    let prefix = outer.map(|o| format!("{o}!")).unwrap_or_default();
    if depth >= ctx.climits.max_depth {
        ctx.add(
            &checks::ARCHIVE_SUSPICIOUS,
            Severity::Medium,
            outer,
            format!(
                "archives nested deeper than {}; inner archive not scanned",
                ctx.climits.max_depth
            ),
            json!({}),
        );
        return;
    }
    let bad = |ctx: &mut Ctx, msg: String| {
        ctx.add(
            &checks::ARCHIVE_SUSPICIOUS,
            Severity::High,
            outer,
            msg,
            json!({}),
        )
    };
    let total = src.size();
    let tail_start = total.saturating_sub(22 + 65535);
    let tail = src.get(tail_start, total - tail_start).unwrap_or_default();
    let Some(eocd_rel) = find_eocd(&tail) else {
        return bad(
            ctx,
            "zip without an end-of-central-directory record (truncated or hand-made); not scanned"
                .into(),
        );
    };
    let eocd = tail_start + eocd_rel as u64;
    let mut count = u16le(&tail, eocd_rel + 10).unwrap_or(0);
    let mut cd_size = u32le(&tail, eocd_rel + 12).unwrap_or(0);
    let mut cd_off = u32le(&tail, eocd_rel + 16).unwrap_or(0);
    let mut eocd_start = eocd;
    if (count == 0xffff || cd_off == 0xffff_ffff || cd_size == 0xffff_ffff) && eocd >= 20 {
        let loc = src.get(eocd - 20, 20).unwrap_or_default();
        if loc.starts_with(b"PK\x06\x07") {
            if let Some(z) = u64le(&loc, 8) {
                if let Some(rec) = src.get(z, 56) {
                    if rec.starts_with(b"PK\x06\x06") {
                        count = u64le(&rec, 32).unwrap_or(count);
                        cd_size = u64le(&rec, 40).unwrap_or(cd_size);
                        cd_off = u64le(&rec, 48).unwrap_or(cd_off);
                        eocd_start = z;
                    }
                }
            }
        }
    }
    // Bytes prepended to the archive shift every offset (as Python's zipfile and miniz allow).
    // Try the recorded offsets first (zip64 records may sit between the central directory and
    // the end record).
    let delta = if src.get(cd_off, 4).as_deref() == Some(b"PK\x01\x02") {
        0
    } else {
        eocd_start.saturating_sub(cd_off.saturating_add(cd_size))
    };
    let cd_start = cd_off.saturating_add(delta);
    let cd_len = eocd_start.saturating_sub(cd_start);
    if cd_len > 256 << 20 {
        return bad(
            ctx,
            format!("central directory of {cd_len} bytes is implausibly large; not scanned"),
        );
    }
    let Some(cd) = src.get(cd_start, cd_len) else {
        return bad(
            ctx,
            format!("central directory at offset {cd_start} lies outside the archive"),
        );
    };
    let data: &[u8] = &cd;
    let mut p = 0usize;
    let mut entries = Vec::new();
    for _ in 0..count.min(ctx.climits.max_entries as u64) {
        if data.get(p..p.saturating_add(4)) != Some(b"PK\x01\x02") {
            bad(
                ctx,
                format!(
                    "central directory entry at offset {} is missing or corrupt",
                    cd_start + p as u64
                ),
            );
            break;
        }
        let (
            Some(flags),
            Some(method),
            Some(mut csize),
            Some(mut usize_),
            Some(nlen),
            Some(elen),
            Some(clen),
            Some(mut offset),
        ) = (
            u16le(data, p + 8),
            u16le(data, p + 10),
            u32le(data, p + 20),
            u32le(data, p + 24),
            u16le(data, p + 28),
            u16le(data, p + 30),
            u16le(data, p + 32),
            u32le(data, p + 42),
        )
        else {
            bad(ctx, "truncated central directory".into());
            break;
        };
        let (nlen, elen, clen) = (nlen as usize, elen as usize, clen as usize);
        let Some(name) = data.get(p.saturating_add(46)..p.saturating_add(46 + nlen)) else {
            bad(ctx, "truncated central directory".into());
            break;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if let Some(extra) = data.get(p + 46 + nlen..p + 46 + nlen + elen) {
            let mut q = 0;
            while q + 4 <= extra.len() {
                let id = u16le(extra, q).unwrap_or(0);
                let sz = u16le(extra, q + 2).unwrap_or(0) as usize;
                if id == 1 {
                    let mut r = q + 4;
                    for field in [&mut usize_, &mut csize, &mut offset] {
                        if *field == 0xffff_ffff {
                            if let Some(v) = u64le(extra, r) {
                                *field = v;
                            }
                            r += 8;
                        }
                    }
                }
                q += 4 + sz;
            }
        }
        entries.push(Entry {
            name,
            flags,
            method,
            csize,
            usize_,
            offset,
        });
        p += 46 + nlen + elen + clen;
    }
    if count as usize > ctx.climits.max_entries {
        bad(
            ctx,
            format!(
                "{count} members: more than {} scanned",
                ctx.climits.max_entries
            ),
        );
    }
    for e in entries {
        let member = format!("{prefix}{}", e.name);
        let m = Some(member.as_str());
        if traversal(&e.name) {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::High,
                m,
                format!(
                    "member name '{}' escapes the extraction folder (path traversal)",
                    e.name
                ),
                json!({"member": e.name}),
            );
        }
        let lh = e.offset.saturating_add(delta);
        let Some(lhb) = src.get(lh, 30) else {
            bad(
                ctx,
                format!("member '{}': local header missing at offset {lh}", e.name),
            );
            continue;
        };
        if !lhb.starts_with(b"PK\x03\x04") {
            bad(
                ctx,
                format!("member '{}': local header missing at offset {lh}", e.name),
            );
            continue;
        }
        let (Some(lnlen), Some(lelen)) = (u16le(&lhb, 26), u16le(&lhb, 28)) else {
            bad(ctx, format!("member '{}': truncated local header", e.name));
            continue;
        };
        let lname = src
            .get(lh.saturating_add(30), lnlen)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if lname != e.name {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::High,
                m,
                format!(
                    "local header names '{lname}' but the central directory names '{}': tools disagree on what this member is",
                    e.name
                ),
                json!({"local_name": lname, "central_name": e.name}),
            );
        }
        let odd_flags = e.flags & 0x61;
        let start = lh.saturating_add(30 + lnlen + lelen);
        if start.saturating_add(e.csize) > total {
            bad(
                ctx,
                format!("member '{}': data runs past the end of the archive", e.name),
            );
            continue;
        }
        if e.method == 8
            && e.csize > 0
            && e.usize_ / e.csize.max(1) > ctx.climits.bomb_ratio
            && e.usize_ > 64 << 20
        {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::High,
                m,
                format!(
                    "member declares {} bytes from {} compressed (ratio > {}): decompression bomb",
                    e.usize_, e.csize, ctx.climits.bomb_ratio
                ),
                json!({"compressed": e.csize, "uncompressed": e.usize_}),
            );
            continue;
        }
        // Only pickles, npy, nested archives and sniffable members need their bytes; raw tensor
        // storages are read by PyTorch as bytes and never unpickled.
        if is_torch_storage(&e.name) && !is_pickle_name(&e.name) {
            continue;
        }
        if e.method == 0 && e.csize > ctx.climits.max_member {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::Medium,
                m,
                format!(
                    "member '{}' is larger than {} bytes; not scanned",
                    e.name, ctx.climits.max_member
                ),
                json!({"size": e.csize}),
            );
            continue;
        }
        let Some(raw) = src.get(start, e.csize) else {
            bad(ctx, format!("member '{}': data cannot be read", e.name));
            continue;
        };
        let raw: &[u8] = &raw;
        let owned;
        let content: &[u8] = match e.method {
            0 => raw,
            8 => {
                let budget = ctx
                    .climits
                    .max_member
                    .min(ctx.climits.max_total.saturating_sub(ctx.decompressed));
                // Inflate no further than the central directory's declared size: a member that
                // understates it (to slip past the ratio check above) would otherwise cost up to
                // the whole budget in memory. Loaders extract the declared size and fail on more.
                let limit = budget.min(e.usize_);
                let mut out = Vec::new();
                let mut dec = flate2::read::DeflateDecoder::new(raw).take(limit + 1);
                if let Err(err) = dec.read_to_end(&mut out) {
                    if odd_flags & 1 == 0 {
                        ctx.add(
                            &checks::ARCHIVE_SUSPICIOUS,
                            Severity::Medium,
                            m,
                            format!(
                                "member '{}' cannot be inflated ({err}); not scanned",
                                e.name
                            ),
                            json!({}),
                        );
                        continue;
                    }
                }
                if out.len() as u64 > limit && limit == e.usize_ && e.usize_ < budget {
                    ctx.add(
                        &checks::ARCHIVE_SUSPICIOUS,
                        Severity::High,
                        m,
                        format!("member '{}' inflates past its declared size of {} bytes (a lying header, or a bomb hiding from the ratio check); not scanned", e.name, e.usize_),
                        json!({"declared": e.usize_}),
                    );
                    continue;
                }
                if out.len() as u64 > budget {
                    ctx.add(
                        &checks::ARCHIVE_SUSPICIOUS,
                        Severity::High,
                        m,
                        format!("member '{}' inflates past the decompression budget ({budget} bytes); not scanned", e.name),
                        json!({"budget": budget}),
                    );
                    continue;
                }
                ctx.decompressed += out.len() as u64;
                owned = out;
                &owned
            }
            other => {
                ctx.add(
                    &checks::ARCHIVE_SUSPICIOUS,
                    Severity::Medium,
                    m,
                    format!("member '{}' uses compression method {other}, which tunegate cannot read; not scanned", e.name),
                    json!({"method": other}),
                );
                continue;
            }
        };
        let looks_known = content.starts_with(b"\x93NUMPY")
            || content.starts_with(b"PK")
            || pickle::has_proto_header(content)
            || content.starts_with(SEVEN_Z);
        if odd_flags != 0 {
            // PyTorch ignores these bits and reads the bytes as they are, so the member is
            // always scanned as plain data as well.
            let what = if odd_flags & 1 != 0 && !looks_known {
                "sets the encryption flag and its bytes are not recognisable as plain data: it may be encrypted and cannot be fully scanned"
            } else {
                "sets encryption/patch flag bits that Python's zipfile refuses but PyTorch ignores; scanned as plain data"
            };
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::Medium,
                m,
                format!("member '{}' {what}", e.name),
                json!({"flags": e.flags}),
            );
        }
        scan_buffer(ctx, content, &e.name, m, depth + 1);
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256 (GNU) size
        let mut v: u64 = 0;
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(*b as u64)?;
        }
        return Some(v);
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn scan_tar(ctx: &mut Ctx, data: &[u8], outer: Option<&str>, depth: usize) {
    let prefix = outer.map(|o| format!("{o}!")).unwrap_or_default();
    let mut off = 0usize;
    let mut n = 0usize;
    while off + 512 <= data.len() && n < ctx.climits.max_entries {
        let h = &data[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        n += 1;
        let cstr = |b: &[u8]| {
            String::from_utf8_lossy(&b[..b.iter().position(|c| *c == 0).unwrap_or(b.len())])
                .into_owned()
        };
        let mut name = cstr(&h[0..100]);
        let pre = cstr(&h[345..500]);
        if &h[257..262] == b"ustar" && !pre.is_empty() {
            name = format!("{pre}/{name}");
        }
        let Some(size) = octal(&h[124..136]) else {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::High,
                outer,
                format!("tar header at {off} has an invalid size"),
                json!({}),
            );
            return;
        };
        let kind = h[156];
        let start = off + 512;
        let member = format!("{prefix}{name}");
        if traversal(&name) {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::High,
                Some(&member),
                format!("member name '{name}' escapes the extraction folder (path traversal)"),
                json!({"member": name}),
            );
        }
        let Some(body) =
            data.get(start..start.saturating_add(usize::try_from(size).unwrap_or(usize::MAX)))
        else {
            ctx.add(
                &checks::ARCHIVE_SUSPICIOUS,
                Severity::High,
                Some(&member),
                format!("tar member '{name}' runs past the end of the file"),
                json!({}),
            );
            return;
        };
        if kind == b'0' || kind == 0 {
            scan_buffer(ctx, body, &name, Some(&member), depth + 1);
        }
        off = start + (size as usize).div_ceil(512) * 512;
    }
}

/// Text is inspected up to this many bytes.
const MAX_TEXT: usize = 64 << 20;

fn template_finding(ctx: &mut Ctx, template: &[u8], member: Option<&str>, source: &str) {
    let t = String::from_utf8_lossy(&template[..template.len().min(MAX_TEXT)]);
    if let Some(why) = formats::template_risk(&t) {
        ctx.add(
            &checks::TEMPLATE_INJECTION,
            checks::TEMPLATE_INJECTION.severity,
            member,
            format!("{source} uses {why}: a Jinja sandbox refuses this, an unsandboxed renderer runs it"),
            json!({"source": source, "pattern": why}),
        );
    }
}

/// Chat templates, Keras configs, GGUF metadata and TensorFlow graphs; returns true when the
/// buffer was one of these (inspected, whether or not anything was found).
fn scan_other_format(ctx: &mut Ctx, data: &[u8], ext: &str, member: Option<&str>) -> bool {
    if data.starts_with(b"GGUF") {
        match formats::gguf_chat_template(data) {
            Some(t) => template_finding(ctx, t, member, "GGUF tokenizer.chat_template"),
            None if member.is_none() => ctx.add(
                &checks::NOT_SCANNED,
                Severity::Info,
                member,
                "GGUF file without a chat template; tensors and other metadata are not inspected yet".into(),
                json!({"format": "gguf"}),
            ),
            None => {}
        }
        return true;
    }
    if data.starts_with(b"\x89HDF\r\n\x1a\n") || ext == "h5" || ext == "hdf5" {
        if formats::keras_lambda(data) {
            ctx.add(
                &checks::KERAS_LAMBDA,
                checks::KERAS_LAMBDA.severity,
                member,
                "Keras model config declares a Lambda layer: its code runs when the model loads"
                    .into(),
                json!({"format": "h5"}),
            );
        }
        return true;
    }
    if ext == "safetensors" || looks_like_safetensors(data) {
        scan_safetensors(ctx, data, member);
        return true;
    }
    match ext {
        "py" => {
            if member.is_none() {
                ctx.add(
                    &checks::REMOTE_CODE,
                    checks::REMOTE_CODE.severity,
                    member,
                    "Python source beside the weights: transformers imports it when a config names it and trust_remote_code=True".into(),
                    json!({"kind": "python-file"}),
                );
            }
            true
        }
        "pb" => {
            let ops = formats::tf_unsafe_ops(data);
            if !ops.is_empty() {
                ctx.add(
                    &checks::TF_UNSAFE_OP,
                    checks::TF_UNSAFE_OP.severity,
                    member,
                    format!(
                        "TensorFlow graph uses {}: ops that run Python or touch files",
                        ops.join(", ")
                    ),
                    json!({"ops": ops}),
                );
            }
            true
        }
        "json" | "yaml" | "yml" => {
            let text = &data[..data.len().min(MAX_TEXT)];
            if formats::keras_lambda(text) {
                ctx.add(
                    &checks::KERAS_LAMBDA,
                    checks::KERAS_LAMBDA.severity,
                    member,
                    "Keras model config declares a Lambda layer: its code runs when the model loads".into(),
                    json!({"format": ext}),
                );
            }
            if ext == "json" {
                for (entry, cross) in formats::remote_code_entries(text) {
                    let (sev, why) = if cross {
                        (Severity::High, "pulls code from another repository (repo--module.Class) when loaded with trust_remote_code=True")
                    } else {
                        (
                            Severity::Medium,
                            "needs trust_remote_code=True and runs this repository's Python code",
                        )
                    };
                    ctx.add(
                        &checks::REMOTE_CODE,
                        sev,
                        member,
                        format!("config entry '{entry}' {why}"),
                        json!({"entry": entry, "cross_repo": cross}),
                    );
                }
            }
            if memchr::memmem::find(text, b"template").is_some() {
                template_finding(ctx, text, member, "chat template");
            }
            true
        }
        "j2" | "jinja" | "jinja2" | "template" => {
            template_finding(ctx, data, member, "Jinja template");
            true
        }
        _ => false,
    }
}

/// An 8-byte little-endian header length that fits the buffer, followed by `{`.
pub fn looks_like_safetensors(data: &[u8]) -> bool {
    data.len() > 9
        && data[8] == b'{'
        && u64::from_le_bytes(data[..8].try_into().expect("8")) <= (data.len() as u64 - 8)
}

/// Validates a safetensors buffer: the header and, from the buffer's length, the data section.
pub fn scan_safetensors(ctx: &mut Ctx, data: &[u8], member: Option<&str>) {
    let total = data.len() as u64;
    let header = safetensors_header(data, total);
    match header {
        Err(msg) => ctx.add(
            &checks::SAFETENSORS_HEADER,
            Severity::High,
            member,
            msg,
            json!({}),
        ),
        Ok((h, data_len)) => safetensors_findings(ctx, h, data_len, member),
    }
}

/// The header slice and data-section length of a safetensors file of `total` bytes whose first
/// bytes are `data` (at least the header).
pub fn safetensors_header(data: &[u8], total: u64) -> Result<(&[u8], u64), String> {
    if data.len() < 8 {
        return Err("safetensors file shorter than its 8-byte header length".into());
    }
    let n = u64::from_le_bytes(data[..8].try_into().expect("8"));
    if n > formats::SAFETENSORS_MAX_HEADER {
        return Err(format!(
            "safetensors header length {n} exceeds the loader's {} byte limit",
            formats::SAFETENSORS_MAX_HEADER
        ));
    }
    if n > total - 8 || 8 + n as usize > data.len() {
        return Err(format!(
            "safetensors header length {n} runs past the end of the file"
        ));
    }
    Ok((&data[8..8 + n as usize], total - 8 - n))
}

/// Records the problems of a safetensors header.
pub fn safetensors_findings(ctx: &mut Ctx, header: &[u8], data_len: u64, member: Option<&str>) {
    for (sev, msg) in formats::safetensors_problems(header, data_len) {
        ctx.add(
            &checks::SAFETENSORS_HEADER,
            sev,
            member,
            format!("safetensors: {msg}"),
            json!({}),
        );
    }
}
