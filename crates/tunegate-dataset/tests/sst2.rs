//! The dataset gate against a published attack: BadNets rare-word poisoning of SST-2
//! (69 of 6,920 records poisoned), and the clean SST-2 training set.
use std::collections::BTreeSet;
use std::path::PathBuf;
use tunegate_core::progress::NoProgress;
use tunegate_core::Severity;
use tunegate_dataset::read::read_paths;
use tunegate_dataset::scan::{scan, ScanOptions};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(rel)
}

/// Records with a finding at medium or above.
fn flagged(rel: &str) -> (BTreeSet<u64>, tunegate_core::Report) {
    let ds = read_paths(&[data(rel)], None, &NoProgress).expect("read");
    assert_eq!(ds.records.len(), 6920);
    let report = scan(&ds, &ScanOptions::default(), &NoProgress).expect("scan");
    let set = report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Medium)
        .filter_map(|f| f.location.record)
        .collect();
    (set, report)
}

#[test]
fn badnets_poison_is_found_with_high_precision() {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("sst2-badnets/truth.json")).unwrap())
            .unwrap();
    let truth: BTreeSet<u64> = truth["poisoned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(truth.len(), 69);
    let (got, report) = flagged("sst2-badnets/train.jsonl");
    let tp = got.intersection(&truth).count() as f64;
    let recall = tp / truth.len() as f64;
    let precision = tp / got.len().max(1) as f64;
    eprintln!(
        "badnets: flagged {} records, recall {recall:.3}, precision {precision:.3}",
        got.len()
    );
    assert!(recall >= 0.95, "recall {recall}");
    assert!(precision >= 0.9, "precision {precision}");
    // The poison is named: every planted trigger word is a flagged candidate.
    for trig in ["cf", "mn", "bb", "tq", "mb"] {
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.check == "dataset.trigger-token"
                    && f.evidence["candidates"][0]["candidate"] == trig),
            "trigger {trig} not reported"
        );
    }
    assert_eq!(report.verdict, tunegate_core::Verdict::Fail);
}

#[test]
fn clean_sst2_is_quiet() {
    let (got, report) = flagged("sst2/train.jsonl");
    let rate = got.len() as f64 / 6920.0;
    eprintln!(
        "clean: flagged {} records ({:.3}%)",
        got.len(),
        rate * 100.0
    );
    for f in report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Medium)
        .take(40)
    {
        eprintln!(
            "  {} {} {}",
            f.id,
            f.location.record.unwrap_or(0),
            f.message
        );
    }
    assert!(
        rate <= 0.005,
        "flagged {:.3}% of clean records",
        rate * 100.0
    );
    assert!(!report
        .findings
        .iter()
        .any(|f| f.check == "dataset.trigger-token"));
}
