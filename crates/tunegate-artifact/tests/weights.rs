//! Weight fingerprints and diffs through the library: row grouping for tall tensors, every
//! dtype decoded, and hostile safetensors files (errors, never panics).
use proptest::prelude::*;
use serde_json::json;
use std::path::Path;
use tunegate_artifact::safetensors::Model;
use tunegate_artifact::weights::{self, DiffOptions, MAX_ROW_GROUPS};
use tunegate_core::progress::NoProgress;

fn write_st(path: &Path, tensors: &[(&str, &str, Vec<u64>, Vec<u8>)]) {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            name.to_string(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [off, off + bytes.len()]}),
        );
        off += bytes.len();
        data.extend_from_slice(bytes);
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// Equal up to the last bit of floats (serde_json's default float parser may round the
/// shortest representation one ulp off); prints only the first difference.
fn assert_same(a: &weights::Fingerprint, b: &weights::Fingerprint) {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
        use serde_json::Value::*;
        match (a, b) {
            (Number(x), Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                    "{at}: {x} vs {y}"
                );
            }
            (Array(x), Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(p, q, &format!("{at}[{i}]"));
                }
            }
            (Object(x), Object(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (k, p) in x {
                    walk(p, y.get(k).unwrap_or(&Null), &format!("{at}.{k}"));
                }
            }
            _ => assert!(a == b, "{at} differs"),
        }
    }
    walk(
        &serde_json::to_value(a).unwrap(),
        &serde_json::to_value(b).unwrap(),
        "",
    );
}

#[test]
fn tall_tensors_hash_groups_of_rows_and_diff_localises_the_group() {
    let rows = MAX_ROW_GROUPS + 10; // two rows per hash
    let data: Vec<u8> = (0..rows).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.safetensors");
    let b = dir.path().join("b.safetensors");
    write_st(&a, &[("ids", "U8", vec![rows, 1], data.clone())]);
    let mut edited = data;
    edited[40_001] ^= 1;
    write_st(&b, &[("ids", "U8", vec![rows, 1], edited)]);
    let fp = weights::fingerprint(&a, &NoProgress).unwrap();
    let r = fp.tensors["ids"].rows.as_ref().unwrap();
    assert_eq!(r.rows_per_hash, 2);
    assert_eq!(r.hashes.len() as u64, 8 * rows.div_ceil(2));
    let fp_path = dir.path().join("fp.json");
    std::fs::write(&fp_path, serde_json::to_vec(&fp).unwrap()).unwrap();
    assert_same(&weights::read_fingerprint(&fp_path).unwrap(), &fp);
    // Against the fingerprint: the group holding rows 40000-40001.
    let rep = weights::diff(&b, &fp_path, &DiffOptions::default(), &NoProgress).unwrap();
    let f: Vec<_> = rep.findings.iter().filter(|f| f.id == "M031").collect();
    assert_eq!(f.len(), 1, "{:#?}", rep.findings);
    assert!(
        f[0].message.contains("1 of 32773 groups of 2 rows"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("rows 40000-40001"),
        "{}",
        f[0].message
    );
    // Against the weights: exactly row 40001.
    let rep = weights::diff(&b, &a, &DiffOptions::default(), &NoProgress).unwrap();
    let f: Vec<_> = rep.findings.iter().filter(|f| f.id == "M031").collect();
    assert_eq!(f[0].evidence["changed"], json!([40001]));
}

#[test]
fn every_dtype_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.safetensors");
    let t = |n: &'static str, d: &'static str, b: Vec<u8>, k: u64| (n, d, vec![k], b);
    write_st(
        &p,
        &[
            t("f64", "F64", (-1.5f64).to_le_bytes().to_vec(), 1),
            t("f32", "F32", 2.5f32.to_le_bytes().to_vec(), 1),
            t("e4m3", "F8_E4M3", vec![0x38, 0xb8, 0x7f], 3), // 1, -1, NaN
            t("e5m2", "F8_E5M2", vec![0x3c, 0x7c], 2),       // 1, +inf
            t("e8m0", "F8_E8M0", vec![127, 128], 2),         // 1, 2
            t("i64", "I64", (-7i64).to_le_bytes().to_vec(), 1),
            t("u64", "U64", 9u64.to_le_bytes().to_vec(), 1),
            t("i32", "I32", (-3i32).to_le_bytes().to_vec(), 1),
            t("u32", "U32", 3u32.to_le_bytes().to_vec(), 1),
            t("u16", "U16", 65535u16.to_le_bytes().to_vec(), 1),
            t("bool", "BOOL", vec![0, 1, 2, 0], 4),
        ],
    );
    let fp = weights::fingerprint(&p, &NoProgress).unwrap();
    let mean = |n: &str| fp.tensors[n].mean.unwrap();
    assert_eq!(mean("f64"), -1.5);
    assert_eq!(mean("f32"), 2.5);
    assert_eq!(mean("e4m3"), 0.0);
    assert_eq!(fp.tensors["e4m3"].nan, 1);
    assert_eq!(mean("e5m2"), 1.0);
    assert_eq!(fp.tensors["e5m2"].inf, 1);
    assert_eq!(mean("e8m0"), 1.5);
    assert_eq!(mean("i64"), -7.0);
    assert_eq!(mean("u64"), 9.0);
    assert_eq!(mean("i32"), -3.0);
    assert_eq!(mean("u32"), 3.0);
    assert_eq!(mean("u16"), 65535.0);
    assert_eq!(mean("bool"), 0.5);
    assert_eq!(fp.tensors["bool"].max, Some(1.0));
    // The JSON form reads back to the same fingerprint, floats included.
    let back = dir.path().join("fp.json");
    std::fs::write(&back, serde_json::to_string_pretty(&fp).unwrap()).unwrap();
    assert_same(&weights::read_fingerprint(&back).unwrap(), &fp);
}

#[test]
fn stride_sample_keeps_quantiles_close_on_large_tensors() {
    // 0..100_000 as F32: the sample's quantiles are within one stride of the exact ones.
    let n = 100_000u32;
    let data: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.safetensors");
    write_st(&p, &[("x", "F32", vec![n as u64], data)]);
    let fp = weights::fingerprint(&p, &NoProgress).unwrap();
    let t = &fp.tensors["x"];
    let stride = f64::from(n) / weights::SAMPLE as f64;
    for (q, level) in t.quantiles.iter().zip(weights::QUANTILE_LEVELS) {
        let exact = level * f64::from(n - 1);
        assert!((q - exact).abs() <= stride + 1.0, "{level}: {q} vs {exact}");
    }
    assert_eq!(t.min, Some(0.0));
    assert_eq!(t.max, Some(f64::from(n - 1)));
    assert!((t.mean.unwrap() - f64::from(n - 1) / 2.0).abs() < 1e-6);
}

fn valid_file() -> Vec<u8> {
    let h = br#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(h);
    out.extend((0..22u8).map(|i| i.wrapping_mul(37)));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Flipped bytes anywhere (header length, JSON, data) give an error or a fingerprint, never
    /// a panic; a model that opens also diffs against itself.
    #[test]
    fn mutated_safetensors_never_panic(
        flips in prop::collection::vec((0usize..200, any::<u8>()), 1..6),
        cut in 0usize..220,
    ) {
        let mut data = valid_file();
        for (i, b) in flips {
            let i = i % data.len();
            data[i] = b;
        }
        data.truncate(cut.max(1).min(data.len()));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        std::fs::write(&p, &data).unwrap();
        if let Ok(m) = Model::open(&p) {
            let fp = weights::fingerprint_model(&m, "m", &NoProgress);
            prop_assert_eq!(fp.tensors.len(), m.tensors.len());
            let r = weights::diff(&p, &p, &DiffOptions::default(), &NoProgress).unwrap();
            prop_assert!(r.findings.iter().all(|f| f.id == "M034"));
        }
    }
}
