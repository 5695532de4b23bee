//! Entry points: scan files and folders into a `model` gate report.
use crate::checks;
use crate::container::{self, scan_buffer, Ctx};
use crate::pickle::{self, Limits, Mode};
use crate::{Error, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// Zips and pickles larger than this are read on demand (zip members by offset, pickles in
/// windows that skip payloads), so memory stays bounded whatever the file size.
pub const STREAM_OVER: u64 = 64 << 20;

/// Other files are read whole up to this size, and only this far beyond it.
pub const MAX_WHOLE: u64 = 256 << 20;

/// Scans one in-memory file named `file` and returns its findings.
pub fn scan_bytes(file: &str, data: &[u8]) -> Vec<Finding> {
    let mut ctx = Ctx::new(file);
    scan_buffer(&mut ctx, data, file, None, 0);
    ctx.findings
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        let mut kids: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        kids.sort();
        for k in kids {
            walk(&k, out)?;
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.file_type().is_symlink() {
        // Follow links to files; never follow links to folders (loops).
        if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            out.push(path.to_path_buf());
        }
    }
    Ok(())
}

/// Streams a file through SHA-256 (lowercase hex).
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Scans one file on disk in bounded memory: safetensors headers only, zips on demand (central
/// directory and code-bearing members), pickles over [`STREAM_OVER`] in windows, other files
/// whole (or their first [`MAX_WHOLE`] bytes).
pub fn scan_file(path: &Path, name: &str) -> Result<Vec<Finding>> {
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut head = Vec::with_capacity(16);
    (&mut f).take(16).read_to_end(&mut head).map_err(io(path))?;
    let mut ctx = Ctx::new(name);
    let is_st = name.to_ascii_lowercase().ends_with(".safetensors")
        || (head.len() > 9
            && head[8] == b'{'
            && u64::from_le_bytes(head[..8].try_into().expect("8")) <= size - 8);
    if is_st && size >= 8 {
        let n = u64::from_le_bytes(head[..8].try_into().expect("8"));
        let want = 8 + n.min(crate::formats::SAFETENSORS_MAX_HEADER).min(size - 8);
        let mut buf = Vec::new();
        std::fs::File::open(path)
            .map_err(io(path))?
            .take(want)
            .read_to_end(&mut buf)
            .map_err(io(path))?;
        match container::safetensors_header(&buf, size) {
            Err(msg) => ctx.findings.push(
                Finding::new(&checks::SAFETENSORS_HEADER, msg, Location::file(name))
                    .severity(Severity::High),
            ),
            Ok((h, data_len)) => container::safetensors_findings(&mut ctx, h, data_len, None),
        }
        return Ok(ctx.findings);
    }
    // Zips of any size are read on demand: central directory and the members that can hold
    // code, never the tensor storages (scan_buffer would route these same bytes to the same
    // walker, after reading them all).
    let zip_magic = head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06");
    if zip_magic || (size > STREAM_OVER && head.starts_with(b"PK")) {
        let src = container::FileSource::new(path).map_err(io(path))?;
        container::scan_zip_source(&mut ctx, &src, None, 0);
        return Ok(ctx.findings);
    }
    let proto = pickle::has_proto_header(&head);
    let lower = name.to_ascii_lowercase();
    let pickle_ext = [
        ".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt", ".dat",
    ]
    .iter()
    .any(|e| lower.ends_with(e));
    if size > STREAM_OVER && (proto || pickle_ext) {
        let mut src = pickle::FileWindows::open(path).map_err(io(path))?;
        let mode = if proto { Mode::Strict } else { Mode::Sniffed };
        let r = pickle::scan_windows(&mut src, 0, mode, &Limits::default());
        if r.is_pickle {
            for h in r.hits {
                ctx.add_hit(None, h);
            }
            return Ok(ctx.findings);
        }
    }
    // Sized up front: growing by doubling would copy the bytes read so far at every step.
    let mut data = Vec::with_capacity(size.min(MAX_WHOLE) as usize);
    std::fs::File::open(path)
        .map_err(io(path))?
        .take(MAX_WHOLE)
        .read_to_end(&mut data)
        .map_err(io(path))?;
    scan_buffer(&mut ctx, &data, name, None, 0);
    if size > MAX_WHOLE {
        ctx.findings.push(
            Finding::new(
                &checks::RESOURCE_LIMIT,
                format!("file is {size} bytes; only the first {MAX_WHOLE} were scanned"),
                Location::file(name),
            )
            .severity(Severity::Medium)
            .evidence(json!({"size": size, "scanned": MAX_WHOLE})),
        );
    }
    Ok(ctx.findings)
}

fn is_pickle_weights(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".bin", ".pt", ".pth", ".ckpt", ".pkl"]
        .iter()
        .any(|e| n.ends_with(e))
}

/// Folders holding both safetensors and pickle weights: which one transformers loads.
fn twins(files: &[PathBuf]) -> Vec<Finding> {
    let mut by_dir: BTreeMap<PathBuf, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for f in files {
        let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let e = by_dir.entry(dir).or_default();
        if name.to_ascii_lowercase().ends_with(".safetensors") {
            e.0.push(name);
        } else if is_pickle_weights(&name) && !name.starts_with("training_args") {
            e.1.push(name);
        }
    }
    let mut out = Vec::new();
    for (dir, (st, pk)) in by_dir {
        if st.is_empty() || pk.is_empty() {
            continue;
        }
        let loc = Location::file(dir.display().to_string());
        out.push(
            Finding::new(
                &checks::WEIGHTS_TWIN,
                format!(
                    "folder holds safetensors ({}) and pickle weights ({}): transformers loads the safetensors files when present (use_safetensors unset); torch.load on the pickle files still runs their pickles",
                    st.join(", "),
                    pk.join(", ")
                ),
                loc,
            )
            .evidence(json!({"safetensors": st, "pickle": pk, "loaded": "safetensors"})),
        );
    }
    out
}

/// How [`scan_paths_with`] treats the files besides scanning them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// Record each file's sha256 in its report subject (the default). Hashing reads every byte
    /// of every file, tensor payloads included; without it a scan reads only what it inspects
    /// (pickle opcodes, zip directories and pickle members, safetensors headers) and the
    /// subjects carry names with no digest.
    pub digest: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { digest: true }
    }
}

/// Scans files and folders (walked recursively, in name order) into a `model` report with one
/// sha256 subject per file. An unreadable path is an error (exit 2); hostile content is a
/// finding.
pub fn scan_paths(paths: &[PathBuf]) -> Result<Report> {
    scan_paths_with(paths, &ScanOptions::default())
}

/// [`scan_paths`] with options: `digest: false` leaves the subjects without digests and skips
/// the full read of each file that hashing needs.
pub fn scan_paths_with(paths: &[PathBuf], opts: &ScanOptions) -> Result<Report> {
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files)?;
    }
    let mut report = Report::new("model", Severity::High);
    for f in &files {
        let name = f.display().to_string();
        report.subjects.push(if opts.digest {
            Subject::sha256(name.clone(), sha256_file(f)?)
        } else {
            Subject {
                name: name.clone(),
                digest: BTreeMap::new(),
            }
        });
        report.findings.extend(scan_file(f, &name)?);
    }
    report.findings.extend(twins(&files));
    report.summary.records = Some(files.len() as u64);
    report.finish();
    Ok(report)
}
