//! The `.npy` header parser (and the embedded pickle of object arrays) on arbitrary bytes
//! behind a NumPy magic: never panics; length fields past the end are findings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_artifact::container::{scan_npy, Ctx};

fuzz_target!(|data: &[u8]| {
    let mut buf = b"\x93NUMPY".to_vec();
    buf.extend_from_slice(data);
    let mut ctx = Ctx::new("a.npy");
    scan_npy(&mut ctx, &buf, None);
    let _ = tunegate_artifact::scan_bytes("a.npz", &buf);
});
