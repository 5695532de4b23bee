//! Lock and verify: a fresh lock verifies clean; a changed byte names its record range (`D020`);
//! a deleted file is `D021`; a file added to a locked directory is `D022`; verify writes nothing;
//! re-locking keeps lineage history.
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tunegate_core::lock::Lockfile;
use tunegate_core::progress::NoProgress;
use tunegate_core::Severity;
use tunegate_dataset::lock::{self, LineageInput, LockOptions};

fn jsonl(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("{{\"instruction\": \"question {i:05}\", \"output\": \"answer {i:05}\"}}\n")
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Two-column prompt/completion Parquet with one row group per entry of `groups`.
fn write_parquet(path: &Path, groups: &[Vec<(&str, &str)>]) {
    let schema = Arc::new(
        parse_message_type("message m { REQUIRED BYTE_ARRAY prompt (UTF8); REQUIRED BYTE_ARRAY completion (UTF8); }")
            .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().build());
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    for rows in groups {
        let mut rg = w.next_row_group().unwrap();
        let mut k = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            let vals: Vec<ByteArray> = rows
                .iter()
                .map(|(p, c)| ByteArray::from(if k == 0 { *p } else { *c }.as_bytes().to_vec()))
                .collect();
            col.typed::<ByteArrayType>()
                .write_batch(&vals, None, None)
                .unwrap();
            col.close().unwrap();
            k += 1;
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

/// A dataset directory with JSONL (3000 records), CSV and Parquet files, and a lock beside it.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write(&data.join("train.jsonl"), jsonl(3000).as_bytes());
    write(
        &data.join("extra/labels.csv"),
        b"text,label\r\ngood,1\r\nbad,0\r\n",
    );
    write_parquet(
        &data.join("pc.parquet"),
        &[vec![("p0", "c0"), ("p1", "c1")], vec![("p2", "c2")]],
    );
    let lock_path = dir.path().join("tunegate.lock");
    (dir, data, lock_path)
}

fn ids(findings: &[tunegate_core::Finding]) -> Vec<(&str, &str)> {
    findings
        .iter()
        .map(|f| (f.id.as_str(), f.location.file.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn lock_then_verify_passes() {
    let (dir, data, lock_path) = setup();
    let lineage = LineageInput {
        source: Some("s3://bucket/train".into()),
        approved_by: Some("alice".into()),
        note: None,
    };
    let l = lock::lock(
        std::slice::from_ref(&data),
        None,
        lineage,
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(l.roots, vec!["data".to_string()]);
    let paths: Vec<&str> = l.files.iter().map(|f| &*f.path).collect();
    assert_eq!(
        paths,
        vec![
            "data/extra/labels.csv",
            "data/pc.parquet",
            "data/train.jsonl"
        ]
    );
    let train = l.file("data/train.jsonl").unwrap();
    assert_eq!(train.records, Some(3000));
    assert_eq!(train.schema.as_deref(), Some("instruction"));
    assert_eq!(train.chunk_records, Some(1000));
    assert_eq!(train.chunks.len(), 3);
    assert_eq!(train.chunks[2].lines, Some([2001, 3000]));
    let pq = l.file("data/pc.parquet").unwrap();
    assert_eq!(
        (pq.records, pq.chunk_records, pq.chunks.len()),
        (Some(3), None, 2)
    );
    assert_eq!(l.file("data/extra/labels.csv").unwrap().records, Some(2));
    assert_eq!(l.lineage.source.as_deref(), Some("s3://bucket/train"));
    assert!(
        l.lineage.created.ends_with('Z') && l.lineage.created.len() == 20,
        "{}",
        l.lineage.created
    );
    assert!(l.lineage.history.is_empty() && l.lineage.changes.is_none());
    // The file on disk is what was returned.
    assert_eq!(Lockfile::load(&lock_path).unwrap(), l);
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    let report = lock::verify_report(&lock_path, Severity::High, &NoProgress).unwrap();
    assert_eq!(report.verdict, tunegate_core::Verdict::Pass);
    assert_eq!(report.subjects.len(), 3);
    drop(dir);
}

#[test]
fn a_changed_byte_names_its_record_range() {
    let (_dir, data, lock_path) = setup();
    lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    let train = data.join("train.jsonl");
    let text = std::fs::read_to_string(&train).unwrap();
    let changed = text.replace("answer 01500", "answer 0150X");
    assert_ne!(text, changed);
    std::fs::write(&train, changed).unwrap();
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.id, "D020");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.location.file.as_deref(), Some(train.to_str().unwrap()));
    assert!(
        f.message
            .contains("records 1000–1999 (lines 1001–2000) changed"),
        "{}",
        f.message
    );
    assert_eq!(f.evidence["changed_chunks"].as_array().unwrap().len(), 1);
    assert_eq!(f.evidence["changed_chunks"][0]["first"], 1000);
    assert_ne!(f.evidence["old_sha256"], f.evidence["new_sha256"]);

    // Appending records names the added range and the new count.
    let mut more = std::fs::read(&train).unwrap();
    more.extend_from_slice(b"{\"instruction\": \"new\", \"output\": \"poison\"}\n");
    std::fs::write(&train, more).unwrap();
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    let m = &findings[0].message;
    assert!(
        m.contains("records 1000–1999 (lines 1001–2000) changed"),
        "{m}"
    );
    assert!(m.contains("record 3000 added"), "{m}");
    assert!(m.contains("3001 records now, 3000 locked"), "{m}");
}

#[test]
fn a_changed_parquet_row_group_is_named() {
    let (_dir, data, lock_path) = setup();
    lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    write_parquet(
        &data.join("pc.parquet"),
        &[vec![("p0", "c0"), ("p1", "c1")], vec![("p2", "cX")]],
    );
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].message.contains(": row 2 changed"),
        "{}",
        findings[0].message
    );
    // A file that no longer parses still gets a D020 naming it.
    std::fs::write(data.join("pc.parquet"), b"garbage").unwrap();
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    assert!(
        findings[0].message.contains("no longer reads as parquet"),
        "{}",
        findings[0].message
    );
}

#[test]
fn missing_and_added_files() {
    let (_dir, data, lock_path) = setup();
    lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    std::fs::remove_file(data.join("extra/labels.csv")).unwrap();
    write(
        &data.join("extra/poison.jsonl"),
        b"{\"instruction\": \"x\", \"output\": \"y\"}\n",
    );
    write(&data.join(".cache.jsonl"), b"ignored: hidden\n");
    write(&data.join("notes.md"), b"ignored: not a dataset file\n");
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    let csv = data.join("extra/labels.csv");
    let poison = data.join("extra/poison.jsonl");
    assert_eq!(
        ids(&findings),
        vec![
            ("D021", csv.to_str().unwrap()),
            ("D022", poison.to_str().unwrap())
        ]
    );
    assert!(findings[0].message.contains("is missing"));
    assert!(
        findings[1].message.contains("locked directory 'data'"),
        "{}",
        findings[1].message
    );
}

#[test]
fn files_locked_by_name_do_not_watch_their_directory() {
    let (_dir, data, lock_path) = setup();
    let l = lock::lock(
        &[data.join("train.jsonl")],
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    assert!(l.roots.is_empty());
    write(
        &data.join("other.jsonl"),
        b"{\"instruction\": \"x\", \"output\": \"y\"}\n",
    );
    assert!(lock::verify(&lock_path, &NoProgress).unwrap().is_empty());
}

#[test]
fn verify_writes_nothing() {
    let (dir, data, lock_path) = setup();
    lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    std::fs::write(data.join("train.jsonl"), jsonl(10)).unwrap();
    let snapshot = |root: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let m = std::fs::metadata(&p).unwrap();
                    out.push((p.clone(), std::fs::read(&p).unwrap(), m.modified().unwrap()));
                }
            }
        }
        out.sort();
        out
    };
    let before = snapshot(dir.path());
    let findings = lock::verify(&lock_path, &NoProgress).unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn relocking_keeps_lineage_history() {
    let (_dir, data, lock_path) = setup();
    let first = lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput {
            source: Some("hf://org/ds@v1".into()),
            approved_by: Some("alice".into()),
            note: Some("initial".into()),
        },
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    std::fs::write(data.join("train.jsonl"), jsonl(2999)).unwrap();
    write(
        &data.join("new.jsonl"),
        b"{\"instruction\": \"x\", \"output\": \"y\"}\n",
    );
    let second = lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput {
            approved_by: Some("bob".into()),
            ..Default::default()
        },
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        second.lineage.source.as_deref(),
        Some("hf://org/ds@v1"),
        "source carries over"
    );
    assert_eq!(second.lineage.approved_by.as_deref(), Some("bob"));
    assert_eq!(second.lineage.note, None, "notes do not carry over");
    let changes = second.lineage.changes.as_ref().unwrap();
    assert_eq!(changes.added, vec!["data/new.jsonl".to_string()]);
    assert_eq!(changes.changed, vec!["data/train.jsonl".to_string()]);
    assert!(changes.removed.is_empty());
    assert_eq!(second.lineage.history.len(), 1);
    let h = &second.lineage.history[0];
    assert_eq!(h.digest, first.content_digest());
    assert_eq!(h.approved_by.as_deref(), Some("alice"));
    assert_eq!((h.files, h.records), (3, 3005));
    assert_ne!(second.lineage.digest, first.lineage.digest);
    // A third lock appends again.
    let third = lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(third.lineage.history.len(), 2);
    assert!(third.lineage.changes.as_ref().unwrap().is_empty());
    // A corrupt previous lock is an error, not silently replaced.
    std::fs::write(&lock_path, "version = 1\n[[file]]\npath = 3\n").unwrap();
    let e = lock::lock(
        &[data],
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("tunegate.lock"), "{e}");
}

#[test]
fn lock_paths_are_relative_to_the_lock() {
    let (dir, data, _) = setup();
    let lock_path = dir.path().join("locks/sub/ds.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let opts = LockOptions {
        chunk_records: 500,
        ..Default::default()
    };
    let l = lock::lock_with(
        std::slice::from_ref(&data),
        &opts,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(l.roots, vec!["../../data".to_string()]);
    assert!(l.files.iter().all(|f| f.path.starts_with("../../data/")));
    assert_eq!(l.file("../../data/train.jsonl").unwrap().chunks.len(), 6);
    assert!(lock::verify(&lock_path, &NoProgress).unwrap().is_empty());
    // Moving data and lock together keeps the lock valid.
    let moved = tempfile::tempdir().unwrap();
    let root = moved.path().join("x");
    std::fs::rename(dir.path(), &root).unwrap();
    assert!(lock::verify(&root.join("locks/sub/ds.lock"), &NoProgress)
        .unwrap()
        .is_empty());
    std::fs::rename(&root, dir.path()).unwrap();
}
