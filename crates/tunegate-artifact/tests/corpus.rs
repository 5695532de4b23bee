//! The held-out corpus: 210 labelled files from picklescan's and ModelAudit's test suites
//! (`../shared/data/model-files`). Every `malicious` file must get a finding at high or above,
//! no `benign` file may get one at medium or above, and nothing may panic.
use std::collections::BTreeMap;
use std::path::PathBuf;
use tunegate_artifact::scan_bytes;
use tunegate_core::Severity;

/// `$TUNEGATE_MODEL_CORPUS`, else `shared/data/model-files` next to the checkout (a main
/// checkout at `/work/main`) or one level further up (a worktree at `/work/wt/<name>`).
fn corpus_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TUNEGATE_MODEL_CORPUS") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let near = manifest.join("../../../shared/data/model-files");
    let far = manifest.join("../../../../shared/data/model-files");
    if !near.join("labels.tsv").exists() && far.join("labels.tsv").exists() {
        far
    } else {
        near
    }
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

/// Zips on disk are walked through positioned reads (`scan_file`), zips in memory (and zip
/// members) from the buffer (`scan_bytes`): both must give the same findings for every corpus
/// zip, PyTorch checkpoints and hand-made archive tricks included.
#[test]
fn corpus_zips_on_disk_match_in_memory_scans() {
    let dir = corpus_dir();
    let Ok(labels) = std::fs::read_to_string(dir.join("labels.tsv")) else {
        eprintln!("note: {} absent; corpus test skipped", dir.display());
        return;
    };
    let mut zips = 0;
    for line in labels.lines().skip(1) {
        let Some(path) = line.split('\t').next() else {
            continue;
        };
        let data = std::fs::read(dir.join(path)).expect("corpus file readable");
        if !(data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")) {
            continue;
        }
        zips += 1;
        let on_disk = tunegate_artifact::scan::scan_file(&dir.join(path), path).unwrap();
        let in_memory = scan_bytes(path, &data);
        assert_eq!(on_disk, in_memory, "{path}");
    }
    assert!(zips >= 15, "only {zips} zips in the corpus");
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
