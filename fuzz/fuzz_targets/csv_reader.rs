//! CSV and TSV readers on arbitrary bytes: never panic; record ranges are contiguous and end
//! at the end of the input; the lock's fingerprint counts the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_dataset::read::{self, ReadOptions};
use tunegate_dataset::Format;

fuzz_target!(|data: &[u8]| {
    let opts = ReadOptions {
        schema: None,
        max_record_bytes: 4096,
    };
    for name in ["f.csv", "f.tsv"] {
        let Ok(fd) = read::read_bytes(name, data, Format::Csv, &opts) else {
            continue;
        };
        let mut ranges: Vec<(u64, (u64, u64))> = fd
            .records
            .iter()
            .filter_map(|r| Some((r.index, r.raw?)))
            .chain(fd.malformed_raw.iter().map(|m| (m.1, m.2)))
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 .1, w[1].1 .0, "ranges are contiguous");
        }
        if let Some((_, (_, end))) = ranges.last() {
            assert_eq!(*end, data.len() as u64);
        }
        let fp = read::fingerprint_bytes(name, data, Format::Csv, &opts, 2).expect("fingerprint");
        assert_eq!(fp.records, fd.info.records);
    }
});
