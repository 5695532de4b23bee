//! The safetensors header parser on arbitrary bytes: length prefix bounds, JSON, dtypes,
//! shapes and offsets. Never panics; a header it accepts lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_artifact::container::{safetensors_header, scan_safetensors, Ctx};
use tunegate_artifact::formats::safetensors_problems;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, data_len)) = safetensors_header(data, data.len() as u64) {
        assert_eq!(8 + header.len() as u64 + data_len, data.len() as u64);
        let _ = safetensors_problems(header, data_len);
        // The same header claiming a much larger file (the on-disk path reads headers only).
        let _ = safetensors_problems(header, data_len.saturating_add(u64::from(u32::MAX)));
    }
    let mut ctx = Ctx::new("m.safetensors");
    scan_safetensors(&mut ctx, data, None);
});
