//! The zip reader (PyTorch checkpoints, .npz, .keras) on arbitrary bytes, through the in-memory
//! source and through the whole-buffer dispatcher: never panics, bounded work on bombs, and
//! every finding names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_artifact::container::{scan_zip_source, Ctx, SliceSource};
use tunegate_artifact::scan_bytes;

fuzz_target!(|data: &[u8]| {
    let mut ctx = Ctx::new("f.zip");
    scan_zip_source(&mut ctx, &SliceSource(data), None, 0);
    for f in &ctx.findings {
        assert_eq!(f.location.file.as_deref(), Some("f.zip"));
    }
    // The same bytes as a checkpoint name: the dispatcher sniffs zip, pickle, npy, tar, ...
    let _ = scan_bytes("model.pt", data);
});
