//! Parquet reader on arbitrary bytes: errors, never panics out of the reader (the decoder's own
//! panics are caught and reported as an unreadable file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_dataset::read::{self, ReadOptions};
use tunegate_dataset::Format;

fuzz_target!(|data: &[u8]| {
    let opts = ReadOptions::default();
    if let Ok(fd) = read::read_bytes("f.parquet", data, Format::Parquet, &opts) {
        assert!(fd
            .records
            .iter()
            .all(|r| r.raw.is_none() && r.line.is_none()));
    }
    let _ = read::fingerprint_bytes("f.parquet", data, Format::Parquet, &opts, 1000);
});
