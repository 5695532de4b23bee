//! The `tunegate lint` Python tokenizer and rules on arbitrary text: never panics, tokens are
//! in bounds, on char boundaries and in order, and every linter front end (Python, notebook,
//! shell, YAML) survives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_artifact::lint::{self, tokenize::tokenize, SourceKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        let mut last = 0u32;
        for t in tokenize(src) {
            assert!(t.start >= last && t.start <= t.end && t.end as usize <= src.len());
            assert!(src.is_char_boundary(t.start as usize) && src.is_char_boundary(t.end as usize));
            last = t.end;
        }
    }
    for kind in [
        SourceKind::Python,
        SourceKind::Notebook,
        SourceKind::Shell,
        SourceKind::Yaml,
    ] {
        for f in lint::lint_bytes("f", kind, data) {
            if let Some([s, e]) = f.location.span {
                assert!(s <= e);
            }
        }
    }
});
