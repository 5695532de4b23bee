//! The dataset scan: read → corpus → detectors → report.
use crate::corpus::Corpus;
use crate::detect::{self, Ctx, Output};
use crate::{Dataset, Result};
use rayon::prelude::*;
use std::path::PathBuf;
use tunegate_core::progress::Progress;
use tunegate_core::text::patterns::PatternSet;
use tunegate_core::{Report, Severity, Subject};

/// Options for a scan. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Findings at or above this fail the gate.
    pub fail_on: Severity,
    /// Jaccard threshold for near-duplicates (word 5-gram sets).
    pub near_dup_threshold: f64,
    /// Minimum records containing a token before it can be a trigger candidate.
    pub trigger_min_count: usize,
    /// Maximum share of records containing a token for it to count as rare.
    pub trigger_max_df: f64,
    /// Suspicious-content patterns (builtin plus user additions).
    pub patterns: PatternSet,
    /// Check ids or names to skip.
    pub disabled: Vec<String>,
    /// Modified z-score above which a length is an outlier.
    pub outlier_z: f64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            fail_on: Severity::High,
            near_dup_threshold: 0.8,
            trigger_min_count: 5,
            trigger_max_df: 0.02,
            patterns: PatternSet::builtin(),
            disabled: Vec::new(),
            outlier_z: 3.5,
        }
    }
}

impl ScanOptions {
    fn enabled(&self, f: &tunegate_core::Finding) -> bool {
        !self.disabled.iter().any(|d| d == &f.id || d == &f.check)
    }
}

/// Runs every detector over `ds` and returns the report (verdict computed). With the
/// environment variable `TUNEGATE_TIMINGS` set, each stage's wall time goes to stderr.
pub fn scan(ds: &Dataset, opts: &ScanOptions, progress: &dyn Progress) -> Result<Report> {
    let timings = std::env::var_os("TUNEGATE_TIMINGS").is_some();
    let t0 = std::time::Instant::now();
    progress.start("indexing", 0);
    let corpus = Corpus::build(ds);
    progress.finish();
    if timings {
        eprintln!("timing: corpus {:.2?} {}", t0.elapsed(), mem());
    }
    let ctx = Ctx::new(ds, &corpus, opts);
    // Two detectors read the response-side clusters. Computing them here, before the detectors
    // run as parallel tasks, keeps a task from blocking a pool thread on the other's
    // initialisation (which would leave the clustering one thread to run on); the record view is
    // clustered beside them, and both views' band hashes are freed before the detectors run.
    let t = std::time::Instant::now();
    ctx.prepare_near_duplicates();
    if timings {
        eprintln!(
            "timing: near-duplicate clusters {:.2?} {}",
            t.elapsed(),
            mem()
        );
    }
    type Det = fn(&Ctx) -> Output;
    let detectors: [(&str, Det); 9] = [
        ("duplicates", detect::dedup::detect),
        ("near-dups", detect::minhash::detect),
        ("triggers", detect::triggers::detect),
        ("unicode", detect::unicode::detect),
        ("outliers", detect::outliers::detect),
        ("mismatch", detect::mismatch::detect),
        ("patterns", detect::patterns::detect),
        ("labels", detect::labels::detect),
        ("preference", detect::preference::detect),
    ];
    // Detectors are independent: running them as parallel tasks lets one detector's sequential
    // stretches (sorting, union-find, grouping) overlap another's parallel work. `collect` keeps
    // their order, so the report does not depend on scheduling.
    progress.start("detectors", detectors.len() as u64);
    let t = std::time::Instant::now();
    let outputs: Vec<Output> = detectors
        .par_iter()
        .map(|(name, d)| {
            let t = std::time::Instant::now();
            let o = d(&ctx);
            progress.advance(1);
            if timings {
                eprintln!("timing: {name} {:.2?} {}", t.elapsed(), mem());
            }
            o
        })
        .collect();
    progress.finish();
    if timings {
        eprintln!("timing: detectors {:.2?} {}", t.elapsed(), mem());
    }
    let mut out = Output::default();
    for o in outputs {
        out.extend(o);
    }

    let mut report = Report::new("dataset", opts.fail_on);
    for f in &ds.files {
        report.subjects.push(Subject::sha256(&f.path, &f.sha256));
    }
    report.summary.records = Some(ds.files.iter().map(|f| f.records).sum());
    report.findings.extend(ds.malformed.iter().cloned());
    report.findings.extend(out.findings);
    report.findings.retain(|f| opts.enabled(f));
    report.charts = out.charts;
    report.finish();
    Ok(report)
}

/// Current and peak resident memory, for `TUNEGATE_TIMINGS` (Linux; empty elsewhere).
pub fn mem() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb / 1024)
            .unwrap_or(0)
    };
    format!("(rss {} MB, peak {} MB)", get("VmRSS:"), get("VmHWM:"))
}

/// Writes the records of `ds` that have no finding at or above `report.fail_on` to `out`,
/// byte for byte as they were in their file (one output file; inputs must share one format).
pub fn write_clean(ds: &Dataset, report: &Report, out: &PathBuf) -> Result<u64> {
    use std::collections::HashSet;
    use std::io::{Read, Seek, SeekFrom, Write};
    let bad: HashSet<(&str, u64)> = report
        .findings
        .iter()
        .filter(|f| f.severity >= report.fail_on)
        .filter_map(|f| Some((f.location.file.as_deref()?, f.location.record?)))
        .collect();
    let formats: HashSet<_> = ds.files.iter().map(|f| f.format).collect();
    if formats.len() > 1 || formats.contains(&crate::Format::Parquet) {
        return Err(crate::Error::Usage(
            "--write-clean copies records byte for byte and supports one JSONL or CSV format per run (Parquet rows have no byte form)".into(),
        ));
    }
    let file = std::fs::File::create(out).map_err(|e| crate::Error::io(out, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut kept = 0u64;
    let mut header: Option<Vec<u8>> = None;
    let mut ends_with_newline = true;
    for (fi, info) in ds.files.iter().enumerate() {
        let mut src =
            std::fs::File::open(&info.path).map_err(|e| crate::Error::io(&info.path, e))?;
        let mut raws: Vec<(u64, (u64, u64))> = ds
            .records
            .iter()
            .filter(|r| r.file as usize == fi)
            .filter_map(|r| Some((r.index, r.raw?)))
            .chain(
                ds.malformed_raw
                    .iter()
                    .filter(|m| m.0 as usize == fi)
                    .map(|m| (m.1, m.2)),
            )
            .collect();
        raws.sort_unstable();
        if info.format == crate::Format::Csv {
            // The header is everything before the first record, malformed ones included; it is
            // written once and every later file must carry the same header.
            let first = raws.iter().map(|r| r.1 .0).min().unwrap_or(info.size);
            let mut head = vec![0u8; first as usize];
            src.read_exact(&mut head)
                .map_err(|e| crate::Error::io(&info.path, e))?;
            match &header {
                None => {
                    w.write_all(&head).map_err(|e| crate::Error::io(out, e))?;
                    ends_with_newline = head.last().is_none_or(|&b| b == b'\n');
                    header = Some(head);
                }
                Some(h) if *h == head => {}
                Some(_) => {
                    return Err(crate::Error::Usage(format!(
                        "--write-clean: {} has a different CSV header from {}; write each file separately",
                        info.path, ds.files[0].path
                    )))
                }
            }
        }
        for (index, (start, end)) in raws {
            if bad.contains(&(info.path.as_str(), index)) {
                continue;
            }
            let mut buf = vec![0u8; (end - start) as usize];
            src.seek(SeekFrom::Start(start))
                .and_then(|_| src.read_exact(&mut buf))
                .map_err(|e| crate::Error::io(&info.path, e))?;
            // A file whose last line has no newline must not run into the next record.
            if !ends_with_newline {
                w.write_all(b"\n").map_err(|e| crate::Error::io(out, e))?;
            }
            w.write_all(&buf).map_err(|e| crate::Error::io(out, e))?;
            ends_with_newline = buf.last().is_none_or(|&b| b == b'\n');
            kept += 1;
        }
    }
    w.flush().map_err(|e| crate::Error::io(out, e))?;
    Ok(kept)
}
