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
    /// The record view's clusters from [`Ctx::prepare_near_duplicates`], taken by the
    /// near-duplicate detector.
    record_view: std::sync::Mutex<Option<minhash::Clustered>>,
}

impl<'a> Ctx<'a> {
    /// A context over `ds`, its corpus and options.
    pub fn new(ds: &'a Dataset, corpus: &'a Corpus, opts: &'a ScanOptions) -> Self {
        Ctx {
            ds,
            corpus,
            opts,
            response_clusters: std::sync::OnceLock::new(),
            record_view: std::sync::Mutex::new(None),
        }
    }

    /// Clusters both near-duplicate views ahead of the detectors: the record-view and
    /// response-view band hashes are computed in one parallel pass over shared shingles
    /// ([`minhash::sketches`]), then the two views are clustered side by side (each band loop
    /// is mostly sequential, so two of them keep two cores busy) and their band hashes freed
    /// before the other detectors allocate. Without it, [`Ctx::response_clusters`] and the
    /// near-duplicate detector each compute their own view.
    pub fn prepare_near_duplicates(&self) {
        let threshold = minhash::clamp_threshold(self.opts.near_dup_threshold);
        let minhash::Sketches { record, response } = minhash::sketches(self, threshold);
        let (responses, records) = rayon::join(
            || {
                let view =
                    response.map(|s| minhash::cluster_view(self, minhash::View::Response, Some(s)));
                minhash::response_clusters_of(view.flatten())
            },
            || minhash::cluster_view(self, minhash::View::Record, Some(record)),
        );
        // Only the first computation counts (a caller may have asked for the clusters before).
        let _ = self.response_clusters.set(std::sync::Arc::new(responses));
        *self.record_view.lock().unwrap_or_else(|e| e.into_inner()) = records;
    }

    /// Takes the record view clustered by [`Ctx::prepare_near_duplicates`], if any is left.
    pub(crate) fn take_record_view(&self) -> Option<minhash::Clustered> {
        self.record_view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The response-side near-duplicate clusters (computed on first use).
    pub fn response_clusters(&self) -> std::sync::Arc<Vec<minhash::ResponseCluster>> {
        self.response_clusters
            .get_or_init(|| std::sync::Arc::new(minhash::response_clusters(self)))
            .clone()
    }
}
