//! JSON Lines reader on arbitrary bytes: never panics; raw ranges stay inside the input and
//! are contiguous over records; the lock's fingerprint counts the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_dataset::read::{self, ReadOptions};
use tunegate_dataset::{Format, Schema};

fuzz_target!(|data: &[u8]| {
    // Detection on (may refuse the file, never panics).
    let _ = read::read_bytes("f.jsonl", data, Format::Jsonl, &ReadOptions::default());
    let _ = read::read_bytes("f.json", data, Format::Jsonl, &ReadOptions::default());
    // Forced schema and a small record limit: always reads.
    let opts = ReadOptions {
        schema: Some(Schema::Chat),
        max_record_bytes: 256,
    };
    let Ok(fd) = read::read_bytes("f.jsonl", data, Format::Jsonl, &opts) else {
        panic!("a forced schema always reads");
    };
    let mut ranges: Vec<(u64, (u64, u64))> = fd
        .records
        .iter()
        .filter_map(|r| Some((r.index, r.raw?)))
        .chain(fd.malformed_raw.iter().map(|m| (m.1, m.2)))
        .collect();
    ranges.sort_unstable();
    assert_eq!(ranges.len() as u64, fd.info.records);
    for (i, (index, (a, b))) in ranges.iter().enumerate() {
        assert_eq!(*index, i as u64);
        assert!(a < b && *b <= data.len() as u64);
    }
    let fp =
        read::fingerprint_bytes("f.jsonl", data, Format::Jsonl, &opts, 3).expect("fingerprint");
    assert_eq!(fp.records, fd.info.records);
    assert_eq!(fp.sha256, fd.info.sha256);
});
