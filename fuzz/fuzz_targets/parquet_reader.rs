//! Parquet reader on arbitrary bytes: errors, never panics out of the reader.
//!
//! The `parquet` decoder may panic on hostile input; the reader catches that and reports an
//! unreadable file. libFuzzer's panic hook would abort on any panic, caught or not, so this
//! target installs a quiet hook: a panic that escapes the reader still aborts (libfuzzer-sys
//! aborts when the closure unwinds), while one the reader handles does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;
use tunegate_dataset::read::{self, ReadOptions};
use tunegate_dataset::Format;

static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let opts = ReadOptions::default();
    if let Ok(fd) = read::read_bytes("f.parquet", data, Format::Parquet, &opts) {
        assert!(fd
            .records
            .iter()
            .all(|r| r.raw.is_none() && r.line.is_none()));
    }
    let _ = read::fingerprint_bytes("f.parquet", data, Format::Parquet, &opts, 1000);
});
