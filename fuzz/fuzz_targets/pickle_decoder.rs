//! The pickle decoder (symbolic unpickler VM) on arbitrary bytes, in both modes and through
//! the windowed reader: never panics, stays within its limits, and reports an end inside the
//! input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_artifact::pickle::{scan_pickle, scan_windows, Limits, Mode, SliceWindows};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for mode in [Mode::Strict, Mode::Sniffed] {
        let r = scan_pickle(data, 0, mode, &limits);
        assert!(r.end <= data.len() as u64, "end {} past {}", r.end, data.len());
        assert!(r.imports.len() <= limits.max_imports);
        let w = scan_windows(&mut SliceWindows(data), 0, mode, &limits);
        assert!(w.end <= data.len() as u64);
    }
});
