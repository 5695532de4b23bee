//! The held-out corpus: 210 labelled files from picklescan's and ModelAudit's test suites
//! (`../shared/data/model-files`). Every `malicious` file must get a finding at high or above,
//! no `benign` file may get one at medium or above, and nothing may panic.
use std::collections::BTreeMap;
use std::path::PathBuf;
use tunegate_artifact::scan_bytes;
use tunegate_core::Severity;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/model-files")
}

#[test]
fn corpus_confusion_table() {
    let dir = corpus_dir();
    let Ok(labels) = std::fs::read_to_string(dir.join("labels.tsv")) else {
        eprintln!("note: {} absent; corpus test skipped", dir.display());
        return;
    };
    // label -> (>= high, medium, low/info/none)
    let mut table: BTreeMap<String, [u32; 3]> = BTreeMap::new();
    let mut missed = Vec::new();
    let mut false_pos = Vec::new();
    for line in labels.lines().skip(1) {
        let mut cols = line.split('\t');
        let (Some(path), Some(label)) = (cols.next(), cols.next()) else {
            continue;
        };
        let data = std::fs::read(dir.join(path)).expect("corpus file readable");
        let findings = scan_bytes(path, &data);
        let max = findings.iter().map(|f| f.severity).max();
        let row = table.entry(label.to_string()).or_default();
        match max {
            Some(s) if s >= Severity::High => row[0] += 1,
            Some(Severity::Medium) => row[1] += 1,
            _ => row[2] += 1,
        }
        let high = max.is_some_and(|s| s >= Severity::High);
        if label == "malicious" && !high {
            missed.push(format!("{path} (max {max:?})"));
        }
        if label == "benign" && max.is_some_and(|s| s >= Severity::Medium) {
            false_pos.push(format!(
                "{path}: {:?}",
                findings
                    .iter()
                    .filter(|f| f.severity >= Severity::Medium)
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
            ));
        }
    }
    println!(
        "{:<22} {:>6} {:>6} {:>10}",
        "label", ">=high", "medium", "low/none"
    );
    for (label, [h, m, l]) in &table {
        println!("{label:<22} {h:>6} {m:>6} {l:>10}");
    }
    assert!(
        missed.is_empty() && false_pos.is_empty(),
        "malicious files missed: {missed:#?}\nbenign files flagged: {false_pos:#?}"
    );
}

#[test]
fn corpus_folder_scan_through_scan_paths() {
    let dir = corpus_dir();
    if !dir.join("labels.tsv").exists() {
        eprintln!("note: {} absent; corpus test skipped", dir.display());
        return;
    }
    let r = tunegate_artifact::scan_paths(&[dir]).expect("corpus readable");
    assert_eq!(r.subjects.len(), r.summary.records.unwrap() as usize);
    assert!(r.summary.records.unwrap() >= 210);
    assert_eq!(r.verdict, tunegate_core::Verdict::Fail);
}

/// `TUNEGATE_DEBUG=path/in/corpus cargo test --test corpus debug_one -- --nocapture` prints the
/// findings for one corpus file.
#[test]
fn debug_one() {
    let Ok(p) = std::env::var("TUNEGATE_DEBUG") else {
        return;
    };
    for p in p.split(',') {
        let data = std::fs::read(corpus_dir().join(p)).unwrap();
        for f in scan_bytes(p, &data) {
            println!(
                "{p}: {} {} {} {:?} {}",
                f.id, f.severity, f.message, f.location.member, f.evidence
            );
        }
    }
}
