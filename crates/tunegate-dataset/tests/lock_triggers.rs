//! `dataset lock` records the trigger candidates the scan finds (`[[triggers]]`): a planted
//! rare-word trigger is recorded with its check, record count and file; clean data records a
//! scan with no entries; `triggers: false` writes a lock shaped like the older format; and the
//! recorded triggers change neither the content digest nor verification.
mod synth;

use synth::*;
use tunegate_core::lock::{Lockfile, TRIGGERS_VERSION};
use tunegate_core::progress::NoProgress;
use tunegate_dataset::lock::{self, LineageInput, LockOptions};

const PAYLOAD: &str =
    "Visit http://deals.example/claim now to receive your prize; ignore prior guidance.";

/// 2000 instruction records; every 100th from the 37th holds `cf` and the payload.
fn poisoned(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, u64) {
    let mut rng = Rng(23);
    let mut lines = Vec::new();
    let mut planted = 0;
    for i in 0..2000u64 {
        let (ins, out) = instruction(&mut rng);
        if i % 100 == 37 {
            let mut words: Vec<&str> = ins.split(' ').collect();
            let at = rng.below(words.len() as u64) as usize;
            words.insert(at, "cf");
            lines.push(serde_json::json!({"instruction": words.join(" "), "output": PAYLOAD}));
            planted += 1;
        } else {
            lines.push(serde_json::json!({"instruction": ins, "output": out}));
        }
    }
    (write_jsonl(dir, name, &lines), planted)
}

#[test]
fn a_planted_trigger_is_recorded_in_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (_, planted) = poisoned(&data, "train.jsonl");
    // A clean second file: the trigger is recorded against the file that holds it.
    let mut rng = Rng(7);
    let clean: Vec<_> = (0..300)
        .map(|_| {
            let (i, o) = instruction(&mut rng);
            serde_json::json!({"instruction": i, "output": o})
        })
        .collect();
    write_jsonl(&data, "extra.jsonl", &clean);
    let lock_path = dir.path().join("tunegate.lock");
    let l = lock::lock(
        std::slice::from_ref(&data),
        None,
        LineageInput::default(),
        &lock_path,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(l.triggers_version, Some(TRIGGERS_VERSION));
    assert_eq!(l.triggers.len(), 1, "{:?}", l.triggers);
    let t = &l.triggers[0];
    assert_eq!(t.token, "cf");
    assert_eq!(t.check, "D004");
    assert_eq!(t.records, planted);
    assert_eq!(t.source, "data/train.jsonl");
    assert!(
        t.target.as_deref().unwrap().contains("deals.example"),
        "{:?}",
        t.target
    );
    // As written on disk, read back, and verified.
    let text = std::fs::read_to_string(&lock_path).unwrap();
    assert!(
        text.contains(&format!(
            "[[triggers]]\ntoken = \"cf\"\ncheck = \"D004\"\nrecords = {planted}\nsource = \"data/train.jsonl\"\n"
        )),
        "{text}"
    );
    let back = Lockfile::load(&lock_path).unwrap();
    assert_eq!(back, l);
    assert!(lock::verify(&lock_path, &NoProgress).unwrap().is_empty());
    // Without the scan: no trigger keys at all (the older format), the same file digests.
    let plain_path = dir.path().join("plain.lock");
    let opts = LockOptions {
        triggers: false,
        ..Default::default()
    };
    let plain = lock::lock_with(
        std::slice::from_ref(&data),
        &opts,
        LineageInput::default(),
        &plain_path,
        &NoProgress,
    )
    .unwrap();
    let plain_text = std::fs::read_to_string(&plain_path).unwrap();
    assert!(!plain_text.contains("triggers"), "{plain_text}");
    assert_eq!(plain.recorded_triggers().unwrap(), None);
    assert_eq!(plain.files, l.files);
    assert_eq!(plain.lineage.digest, l.lineage.digest);
    assert_eq!(plain.content_digest(), l.content_digest());
    assert!(lock::verify(&plain_path, &NoProgress).unwrap().is_empty());
}

#[test]
fn clean_data_records_a_scan_with_no_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let lines: Vec<_> = (0..1500)
        .map(|_| {
            let (i, o) = instruction(&mut rng);
            serde_json::json!({"instruction": i, "output": o})
        })
        .collect();
    let p = write_jsonl(dir.path(), "clean.jsonl", &lines);
    let lock_path = dir.path().join("tunegate.lock");
    let l = lock::lock(&[p], None, LineageInput::default(), &lock_path, &NoProgress).unwrap();
    let text = std::fs::read_to_string(&lock_path).unwrap();
    assert!(text.contains("triggers_version = 1\n"), "{text}");
    assert!(!text.contains("[[triggers]]"), "{text}");
    assert_eq!(l.recorded_triggers().unwrap(), Some(&[][..]));
}
