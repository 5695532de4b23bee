//! Property tests: the decoder and container readers never panic, whatever the bytes.
use proptest::prelude::*;
use tunegate_artifact::pickle::{scan_pickle, Limits, Mode};
use tunegate_artifact::scan_bytes;

/// Opcodes of protocols 0-5, to make random streams that get past the first byte.
const OPS: &[u8] = b"(.012FIJKLMNPQRSTUVXabcd}eghijl]opqrst)uGBC\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98";

fn opcode_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::sample::select(OPS.to_vec()),
            prop::collection::vec(any::<u8>(), 0..6),
        ),
        0..200,
    )
    .prop_map(|parts| {
        let mut out = vec![0x80, 4];
        for (op, arg) in parts {
            out.push(op);
            out.extend(arg);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = scan_bytes("x.pkl", &data);
        let _ = scan_bytes("x", &data);
        let _ = scan_pickle(&data, 0, Mode::Strict, &Limits::default());
    }

    #[test]
    fn opcode_soup_never_panics(data in opcode_soup()) {
        let r = scan_pickle(&data, 0, Mode::Strict, &Limits::default());
        prop_assert!(r.end <= data.len() as u64);
        let _ = scan_bytes("x.pkl", &data);
    }

    #[test]
    fn headers_with_random_tails_never_panic(
        kind in 0usize..4,
        tail in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let head: &[u8] = match kind {
            0 => b"PK\x03\x04",
            1 => b"\x93NUMPY\x01\x00",
            2 => b"\x80\x05\x95",
            _ => b"7z\xbc\xaf\x27\x1c",
        };
        let mut data = head.to_vec();
        data.extend(tail);
        let _ = scan_bytes("x.npz", &data);
    }

    #[test]
    fn tight_limits_never_panic(data in opcode_soup()) {
        let limits = Limits { max_ops: 10, max_stack: 4, max_memo: 2, max_marks: 2, max_streams: 2, max_imports: 1 };
        let _ = scan_pickle(&data, 0, Mode::Sniffed, &limits);
    }
}

#[test]
fn zip_with_random_central_directory_never_panics() {
    // A valid end record pointing at garbage.
    let mut data = b"PK\x03\x04".to_vec();
    data.extend([0xffu8; 64]);
    data.extend(
        b"PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00",
    );
    let fs = scan_bytes("x.zip", &data);
    assert!(!fs.is_empty());
}

mod common;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A valid zip with random bytes overwritten anywhere (headers, central directory, data).
    #[test]
    fn mutated_zip_never_panics(
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        deflate in any::<bool>(),
    ) {
        let pkl = common::torch_state_dict();
        let mut m = common::Member::new("archive/data.pkl", &pkl);
        m.deflate = deflate;
        let mut data = common::zip(&[m, common::Member::new("archive/version", b"3\n")]);
        for (i, b) in muts {
            let i = i.index(data.len());
            data[i] = b;
        }
        let _ = scan_bytes("x.pt", &data);
    }

    /// A valid npy header with random bytes overwritten.
    #[test]
    fn mutated_npy_never_panics(
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut data = common::npy("|O", "(1,)", &common::numpy_array());
        for (i, b) in muts {
            let i = i.index(data.len());
            data[i] = b;
        }
        let _ = scan_bytes("x.npy", &data);
    }
}

/// Serves a buffer in tiny windows that grow on demand, as `FileWindows` serves a file.
struct Chunks<'a> {
    data: &'a [u8],
    want: usize,
}

impl tunegate_artifact::pickle::Windows for Chunks<'_> {
    fn total(&self) -> u64 {
        self.data.len() as u64
    }
    fn window(&mut self, at: u64) -> std::io::Result<&[u8]> {
        let a = (at as usize).min(self.data.len());
        Ok(&self.data[a..(a + self.want).min(self.data.len())])
    }
    fn grow(&mut self) -> bool {
        if self.want >= self.data.len() {
            return false;
        }
        self.want *= 2;
        true
    }
}

fn summary(r: &tunegate_artifact::pickle::PickleScan) -> Vec<String> {
    let mut v: Vec<String> = r
        .hits
        .iter()
        .map(|h| format!("{} {} {} {}", h.check.id, h.severity, h.message, h.evidence))
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Windowed decoding finds exactly what whole-buffer decoding finds.
    #[test]
    fn windowed_decoding_matches_whole_buffer(data in opcode_soup(), want in 1usize..9) {
        let whole = scan_pickle(&data, 0, Mode::Strict, &Limits::default());
        let mut src = Chunks { data: &data, want };
        let win = tunegate_artifact::pickle::scan_windows(&mut src, 0, Mode::Strict, &Limits::default());
        prop_assert_eq!(summary(&whole), summary(&win));
        prop_assert_eq!(whole.end, win.end);
        prop_assert_eq!(whole.streams, win.streams);
    }
}

#[test]
fn windowed_decoding_of_fixtures_matches() {
    let mut cases = vec![common::torch_state_dict(), common::numpy_array()];
    let mut evil = common::P::new().proto(2).op(b']').stop().bytes();
    evil.extend(
        common::P::new()
            .proto(4)
            .frame(3)
            .binbytes(&[0u8; 5000])
            .pop()
            .short_unicode("os")
            .short_unicode("system")
            .stack_global()
            .stop()
            .bytes(),
    );
    cases.push(evil);
    for data in cases {
        let whole = scan_pickle(&data, 0, Mode::Strict, &Limits::default());
        let mut src = Chunks {
            data: &data,
            want: 4,
        };
        let win =
            tunegate_artifact::pickle::scan_windows(&mut src, 0, Mode::Strict, &Limits::default());
        assert_eq!(summary(&whole), summary(&win));
    }
}

/// Python-ish text: quotes, prefixes, brackets, escapes, comments and the names the rules
/// look for, so random mixes reach the string, f-string and call-parsing paths.
fn pythonish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "'",
        "\"",
        "'''",
        "\"\"\"",
        "f'",
        "rb\"",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "\\",
        "\n",
        "\r",
        "#",
        " ",
        ",",
        "=",
        "**",
        ":",
        ".",
        "torch",
        "load",
        "pickle",
        "True",
        "import",
        "from",
        "as",
        "weights_only",
        "trust_remote_code",
        "exec",
        "é",
        "0x1e-",
        "!wget",
        "%%bash",
    ]);
    prop::collection::vec(atoms, 0..120).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lint_never_panics_and_spans_stay_in_the_text(src in pythonish()) {
        use tunegate_artifact::lint::{self, SourceKind};
        let chars = src.chars().count();
        for kind in [SourceKind::Python, SourceKind::Shell, SourceKind::Yaml] {
            for f in lint::lint_bytes("f", kind, src.as_bytes()) {
                if let Some([s, e]) = f.location.span {
                    prop_assert!(s <= e && e <= chars);
                }
            }
        }
        let nb = serde_json::json!({"cells": [{"cell_type": "code", "source": src}]});
        let _ = lint::lint_bytes("f.ipynb", SourceKind::Notebook, nb.to_string().as_bytes());
    }
}
