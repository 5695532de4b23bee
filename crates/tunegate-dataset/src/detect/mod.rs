//! Detectors. Each module reads the [`Dataset`] and its [`Corpus`] and appends findings (and,
//! where a picture helps, charts). Detectors never fail: anything odd about a record is itself a
//! finding.
use crate::corpus::Corpus;
use crate::scan::ScanOptions;
use crate::Dataset;
use tunegate_core::{Chart, Finding};

pub mod dedup;
pub mod labels;
pub mod minhash;
pub mod mismatch;
pub mod nb;
pub mod outliers;
pub mod patterns;
pub mod preference;
pub mod stats;
pub mod triggers;
pub mod unicode;

/// What a detector returns.
#[derive(Debug, Default)]
pub struct Output {
    /// Findings, any order (the report sorts them).
    pub findings: Vec<Finding>,
    /// Charts for the HTML report.
    pub charts: Vec<Chart>,
}

impl Output {
    /// Appends another detector's output.
    pub fn extend(&mut self, other: Output) {
        self.findings.extend(other.findings);
        self.charts.extend(other.charts);
    }
}

/// Everything a detector may read.
pub struct Ctx<'a> {
    /// The records.
    pub ds: &'a Dataset,
    /// Their precomputed normalized tokens and hashes.
    pub corpus: &'a Corpus,
    /// Options.
    pub opts: &'a ScanOptions,
    /// Response-side near-duplicate clusters, computed once by whichever detector needs them
    /// first (near-duplicates reports them, triggers uses them as output families).
    response_clusters: std::sync::OnceLock<std::sync::Arc<Vec<minhash::ResponseCluster>>>,
}

impl<'a> Ctx<'a> {
    /// A context over `ds`, its corpus and options.
    pub fn new(ds: &'a Dataset, corpus: &'a Corpus, opts: &'a ScanOptions) -> Self {
        Ctx {
            ds,
            corpus,
            opts,
            response_clusters: std::sync::OnceLock::new(),
        }
    }

    /// The response-side near-duplicate clusters (computed on first use).
    pub fn response_clusters(&self) -> std::sync::Arc<Vec<minhash::ResponseCluster>> {
        self.response_clusters
            .get_or_init(|| std::sync::Arc::new(minhash::response_clusters(self)))
            .clone()
    }
}
