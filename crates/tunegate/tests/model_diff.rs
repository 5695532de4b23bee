//! `tunegate model fingerprint` and `tunegate model diff` end to end, on tiny safetensors models
//! written by the tests themselves (8-byte little-endian header length, JSON header, data).
use assert_cmd::Command;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One tensor to write: name, dtype, shape, raw little-endian bytes.
#[derive(Clone)]
struct T {
    name: String,
    dtype: &'static str,
    shape: Vec<u64>,
    data: Vec<u8>,
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn read_f32(d: &[u8]) -> Vec<f32> {
    d.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Writes a safetensors file with tensors laid out in the given order.
fn write_st(path: &Path, tensors: &[T]) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0u64;
    let mut data = Vec::new();
    for t in tensors {
        let end = off + t.data.len() as u64;
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [off, end]}),
        );
        data.extend_from_slice(&t.data);
        off = end;
    }
    let h = serde_json::to_vec(&Value::Object(header)).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// Deterministic pseudo-random numbers in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

const EMBED: &str = "model.embed_tokens.weight";

/// An embedding [1000, 16], three layers of (q_proj [16,16], up_proj [32,16], layernorm [16])
/// and a final norm: 11 tensors.
fn base_model() -> Vec<T> {
    model_with_layers(3)
}

fn model_with_layers(layers: usize) -> Vec<T> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut v = vec![T {
        name: EMBED.into(),
        dtype: "F32",
        shape: vec![1000, 16],
        data: f32s(&r.vec(16_000, 0.05)),
    }];
    for l in 0..layers {
        for (kind, shape) in [
            ("self_attn.q_proj.weight", vec![16u64, 16]),
            ("mlp.up_proj.weight", vec![32, 16]),
            ("input_layernorm.weight", vec![16]),
        ] {
            let n: u64 = shape.iter().product();
            v.push(T {
                name: format!("model.layers.{l}.{kind}"),
                dtype: "F32",
                shape,
                data: f32s(&r.vec(n as usize, 0.2)),
            });
        }
    }
    v.push(T {
        name: "model.norm.weight".into(),
        dtype: "F32",
        shape: vec![16],
        data: f32s(&[1.0; 16]),
    });
    v
}

/// The model with rows 17, 211 and 900 of the embedding rewritten.
fn edit_rows(model: &[T]) -> Vec<T> {
    let mut m = model.to_vec();
    let mut e = read_f32(&m[0].data);
    for row in [17usize, 211, 900] {
        for j in 0..16 {
            e[row * 16 + j] = 0.9 - j as f32 * 0.01;
        }
    }
    m[0].data = f32s(&e);
    m
}

/// Every element of every tensor moved by about 1% of the tensor's scale.
fn fine_tune(model: &[T]) -> Vec<T> {
    let mut r = Rng(42);
    model
        .iter()
        .map(|t| {
            let v = read_f32(&t.data);
            let scale = v.iter().map(|x| x.abs()).sum::<f32>() / v.len() as f32;
            let v: Vec<f32> = v.iter().map(|x| x + r.next() * 0.02 * scale).collect();
            T {
                data: f32s(&v),
                ..t.clone()
            }
        })
        .collect()
}

fn tg() -> Command {
    Command::cargo_bin("tunegate").unwrap()
}

struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

fn diff(path: &Path, reference: &Path, extra: &[&str]) -> Run {
    let out = tg()
        .args(["model", "diff"])
        .arg(path)
        .arg("--reference")
        .arg(reference)
        .args(["--format", "json", "-q"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Run {
        code: out.status.code().unwrap(),
        report,
        stderr,
    }
}

fn findings(r: &Value) -> Vec<Value> {
    r["findings"].as_array().cloned().unwrap_or_default()
}

fn ids(r: &Value) -> Vec<String> {
    findings(r)
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn setup(models: &[(&str, Vec<T>)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = models
        .iter()
        .map(|(name, m)| {
            let p = dir.path().join(name);
            write_st(&p, m);
            p
        })
        .collect();
    (dir, paths)
}

#[test]
fn a_copy_reports_nothing() {
    let base = base_model();
    let (_d, p) = setup(&[
        ("ref.safetensors", base.clone()),
        ("copy.safetensors", base),
    ]);
    let r = diff(&p[1], &p[0], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(findings(&r.report), Vec::<Value>::new());
    assert_eq!(r.report["verdict"], "pass");
    // Even claimed identical, a copy passes.
    assert_eq!(diff(&p[1], &p[0], &["--identical"]).code, 0);
}

#[test]
fn three_edited_embedding_rows_are_found_exactly() {
    let base = base_model();
    let (_d, p) = setup(&[
        ("ref.safetensors", base.clone()),
        ("edited.safetensors", edit_rows(&base)),
    ]);
    let r = diff(&p[1], &p[0], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let fs = findings(&r.report);
    let flagged: Vec<&Value> = fs.iter().filter(|f| f["severity"] != "info").collect();
    assert_eq!(flagged.len(), 1, "{fs:#?}");
    let f = flagged[0];
    assert_eq!(f["id"], "M031");
    assert_eq!(f["severity"], "high");
    assert_eq!(f["location"]["tensor"], EMBED);
    assert_eq!(f["evidence"]["changed"], json!([17, 211, 900]));
    assert_eq!(f["evidence"]["measured"], true);
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.starts_with("3 of 1000 rows of model.embed_tokens.weight changed: rows 17, 211, 900"),
        "{msg}"
    );
    // The summary says one of eleven tensors changed.
    let s = fs.iter().find(|f| f["id"] == "M035").unwrap();
    assert_eq!(s["evidence"]["changed"], 1);
    assert_eq!(s["evidence"]["matched"], 11);
}

#[test]
fn a_full_fine_tune_is_only_summarised() {
    let base = base_model();
    let (_d, p) = setup(&[
        ("ref.safetensors", base.clone()),
        ("ft.safetensors", fine_tune(&base)),
    ]);
    let r = diff(&p[1], &p[0], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ids(&r.report), vec!["M035"], "{:#?}", r.report["findings"]);
    let s = &findings(&r.report)[0];
    assert_eq!(s["severity"], "info");
    assert_eq!(s["evidence"]["changed"], 11);
    let med = s["evidence"]["median_relative_change"].as_f64().unwrap();
    assert!(med > 1e-3 && med < 0.05, "{med}");
    // The same model claimed identical fails.
    let r = diff(&p[1], &p[0], &["--identical"]);
    assert_eq!(r.code, 1);
    assert!(ids(&r.report).contains(&"M036".to_string()));
}

#[test]
fn edited_rows_hidden_in_a_full_fine_tune_are_found() {
    let base = base_model();
    let (_d, p) = setup(&[
        ("ref.safetensors", base.clone()),
        ("ft-edited.safetensors", edit_rows(&fine_tune(&base))),
    ]);
    let r = diff(&p[1], &p[0], &[]);
    // Medium: fine-tunes also move some tokens hard, so the gate passes at the default threshold.
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fs = findings(&r.report);
    let hot: Vec<&Value> = fs.iter().filter(|f| f["id"] == "M037").collect();
    assert_eq!(hot.len(), 1, "{fs:#?}");
    assert_eq!(hot[0]["severity"], "medium");
    assert_eq!(hot[0]["location"]["tensor"], EMBED);
    assert_eq!(hot[0]["evidence"]["rows"], json!([17, 211, 900]));
    assert_eq!(hot[0]["evidence"]["changed_rows"], 1000);
    // The rewritten rows also make the embedding the tensor-level outlier; nothing else is flagged.
    assert_eq!(ids(&r.report), vec!["M033", "M035", "M037"], "{fs:#?}");
    let m033 = fs.iter().find(|f| f["id"] == "M033").unwrap();
    assert_eq!(m033["location"]["tensor"], EMBED);
    assert_eq!(diff(&p[1], &p[0], &["--fail-on", "medium"]).code, 1);
}

#[test]
fn a_merged_lora_on_every_layer_is_not_a_targeted_edit() {
    // 12 layers: 38 tensors. A rank-1 update to every layer's q_proj moves every row of 12
    // tensors: a family of tensors, not a targeted edit.
    let base = model_with_layers(12);
    let mut m = base.clone();
    let mut r = Rng(7);
    for t in m.iter_mut().filter(|t| t.name.ends_with("q_proj.weight")) {
        let (u, v) = (r.vec(16, 0.1), r.vec(16, 0.1));
        let w: Vec<f32> = read_f32(&t.data)
            .iter()
            .enumerate()
            .map(|(k, x)| x + u[k / 16] * v[k % 16])
            .collect();
        t.data = f32s(&w);
    }
    let (_d, p) = setup(&[("ref.safetensors", base.clone()), ("lora.safetensors", m)]);
    let r = diff(&p[1], &p[0], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ids(&r.report), vec!["M035"], "{:#?}", r.report["findings"]);
    assert_eq!(findings(&r.report)[0]["evidence"]["changed"], 12);
    // One q_proj rewritten in the same model is.
    let mut one = base.clone();
    let i = one
        .iter()
        .position(|t| t.name == "model.layers.7.self_attn.q_proj.weight")
        .unwrap();
    one[i].data = f32s(&Rng(99).vec(256, 0.3));
    let (_d2, p2) = setup(&[("ref.safetensors", base), ("one.safetensors", one)]);
    let r = diff(&p2[1], &p2[0], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(ids(&r.report), vec!["M032", "M035"]);
}

#[test]
fn one_rewritten_tensor_in_an_otherwise_identical_model_is_flagged() {
    let base = base_model();
    let mut m = base.clone();
    let i = m
        .iter()
        .position(|t| t.name == "model.layers.1.mlp.up_proj.weight")
        .unwrap();
    let v: Vec<f32> = read_f32(&m[i].data).iter().map(|x| -x).collect();
    m[i].data = f32s(&v);
    let (_d, p) = setup(&[("ref.safetensors", base), ("m.safetensors", m)]);
    let r = diff(&p[1], &p[0], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let flagged: Vec<Value> = findings(&r.report)
        .into_iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:#?}");
    assert_eq!(flagged[0]["id"], "M032");
    assert_eq!(
        flagged[0]["location"]["tensor"],
        "model.layers.1.mlp.up_proj.weight"
    );
    // -x against x: ‖a−b‖/‖b‖ = 2.
    let rel = flagged[0]["evidence"]["relative_change"].as_f64().unwrap();
    assert!((rel - 2.0).abs() < 1e-9, "{rel}");
}

#[test]
fn fingerprint_round_trips_and_localises_rows() {
    let base = base_model();
    let (d, p) = setup(&[
        ("ref.safetensors", base.clone()),
        ("copy.safetensors", base.clone()),
        ("edited.safetensors", edit_rows(&base)),
    ]);
    let fp = d.path().join("fp.json");
    tg().args(["model", "fingerprint"])
        .arg(&p[0])
        .arg("-o")
        .arg(&fp)
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&fp).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema"], "tunegate.fingerprint/v1");
    assert_eq!(v["tensors"].as_object().unwrap().len(), 11);
    assert_eq!(v["files"][0]["name"], "ref.safetensors");
    let e = &v["tensors"][EMBED];
    assert_eq!(e["shape"], json!([1000, 16]));
    assert_eq!(e["numel"], 16000);
    assert_eq!(e["rows"]["rows"], 1000);
    assert_eq!(e["rows"]["rows_per_hash"], 1);
    assert_eq!(e["rows"]["hashes"].as_str().unwrap().len(), 8000);
    assert!(v["tensors"]["model.norm.weight"].get("rows").is_none());
    // Deterministic: the same input gives the same bytes (stdout form).
    let again = tg()
        .args(["model", "fingerprint"])
        .arg(&p[0])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
    // A copy against the fingerprint: nothing.
    let r = diff(&p[1], &fp, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(findings(&r.report), Vec::<Value>::new());
    // The edited model against the fingerprint: the embedding, and exactly those rows.
    let r = diff(&p[2], &fp, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let flagged: Vec<Value> = findings(&r.report)
        .into_iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:#?}");
    assert_eq!(flagged[0]["id"], "M031");
    assert_eq!(flagged[0]["location"]["tensor"], EMBED);
    assert_eq!(flagged[0]["evidence"]["changed"], json!([17, 211, 900]));
    assert_eq!(flagged[0]["evidence"]["measured"], false);
    // The fingerprint file is a subject of the report.
    let subjects: Vec<String> = r.report["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(subjects.contains(&fp.display().to_string()), "{subjects:?}");
}

fn bf16(x: f32) -> [u8; 2] {
    let b = x.to_bits();
    assert_eq!(b & 0xffff, 0, "{x} is not exact in bf16");
    ((b >> 16) as u16).to_le_bytes()
}

#[test]
fn half_precision_stats_match_hand_computed_values() {
    // 1, -2, 0.5, 3 are exact in f16 and bf16.
    let vals = [1.0f32, -2.0, 0.5, 3.0];
    let f16: Vec<u8> = [0x3c00u16, 0xc000, 0x3800, 0x4200]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    let bf: Vec<u8> = vals.iter().flat_map(|x| bf16(*x)).collect();
    let mut nanv = f16.clone();
    nanv[2..4].copy_from_slice(&0x7e00u16.to_le_bytes()); // f16 NaN
    nanv[4..6].copy_from_slice(&0xfc00u16.to_le_bytes()); // f16 -inf
    let m = vec![
        T {
            name: "a.f16".into(),
            dtype: "F16",
            shape: vec![2, 2],
            data: f16,
        },
        T {
            name: "b.bf16".into(),
            dtype: "BF16",
            shape: vec![4],
            data: bf,
        },
        T {
            name: "c.nan".into(),
            dtype: "F16",
            shape: vec![4],
            data: nanv,
        },
        T {
            name: "d.i8".into(),
            dtype: "I8",
            shape: vec![3],
            data: vec![0xff, 2, 5],
        },
    ];
    let (_d, p) = setup(&[("h.safetensors", m)]);
    let out = tg()
        .args(["model", "fingerprint", "-q"])
        .arg(&p[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let std = (14.25f64 / 4.0 - 0.625 * 0.625).sqrt();
    for name in ["a.f16", "b.bf16"] {
        let t = &v["tensors"][name];
        let g = |k: &str| t[k].as_f64().unwrap();
        assert!((g("mean") - 0.625).abs() < 1e-12, "{name} {t}");
        assert!((g("std") - std).abs() < 1e-12, "{name} {t}");
        assert_eq!(g("min"), -2.0);
        assert_eq!(g("max"), 3.0);
        assert!((g("l2") - 14.25f64.sqrt()).abs() < 1e-12);
        // Sorted -2, 0.5, 1, 3: the median interpolates to 0.75.
        assert_eq!(t["quantiles"][3].as_f64().unwrap(), 0.75);
        assert_eq!(t["nan"], 0);
        assert_eq!(t["inf"], 0);
    }
    assert_eq!(v["tensors"]["a.f16"]["rows"]["rows"], 2);
    let c = &v["tensors"]["c.nan"];
    assert_eq!((c["nan"].as_u64(), c["inf"].as_u64()), (Some(1), Some(1)));
    assert_eq!(c["mean"].as_f64(), Some(2.0)); // (1 + 3) / 2
    let i = &v["tensors"]["d.i8"];
    assert_eq!(i["min"].as_f64(), Some(-1.0));
    assert_eq!(i["mean"].as_f64(), Some(2.0));
    // Non-finite values are a finding of diff, even against an identical copy.
    let r = diff(&p[0], &p[0], &[]);
    assert_eq!(r.code, 1);
    let f = findings(&r.report);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["id"], "M034");
    assert_eq!(f[0]["location"]["tensor"], "c.nan");
}

#[test]
fn sharded_folder_with_index_matches_the_single_file() {
    let base = base_model();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single.safetensors");
    write_st(&single, &base);
    let sharded = dir.path().join("sharded");
    std::fs::create_dir(&sharded).unwrap();
    let (a, b) = base.split_at(5);
    let names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    write_st(&sharded.join(names[0]), a);
    write_st(&sharded.join(names[1]), b);
    let mut wm = serde_json::Map::new();
    for t in a {
        wm.insert(t.name.clone(), json!(names[0]));
    }
    for t in b {
        wm.insert(t.name.clone(), json!(names[1]));
    }
    let index = sharded.join("model.safetensors.index.json");
    std::fs::write(
        &index,
        serde_json::to_vec(&json!({"metadata": {}, "weight_map": wm})).unwrap(),
    )
    .unwrap();
    let r = diff(&sharded, &single, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(findings(&r.report), Vec::<Value>::new());
    assert_eq!(r.report["subjects"].as_array().unwrap().len(), 3);
    // An index that places a tensor in the wrong shard is an input error naming it.
    wm.insert(EMBED.into(), json!(names[1]));
    std::fs::write(
        &index,
        serde_json::to_vec(&json!({"weight_map": wm})).unwrap(),
    )
    .unwrap();
    let r = diff(&sharded, &single, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("model.safetensors.index.json"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(EMBED), "{}", r.stderr);
    // A shard name that leaves the folder is refused.
    wm.insert(EMBED.into(), json!("../single.safetensors"));
    std::fs::write(
        &index,
        serde_json::to_vec(&json!({"weight_map": wm})).unwrap(),
    )
    .unwrap();
    assert_eq!(diff(&sharded, &single, &[]).code, 2);
}

#[test]
fn added_removed_and_reshaped_tensors_are_reported() {
    let base = base_model();
    let mut m = base.clone();
    m.retain(|t| t.name != "model.norm.weight");
    m.push(T {
        name: "extra.bias".into(),
        dtype: "F32",
        shape: vec![2],
        data: f32s(&[0.0, 0.0]),
    });
    // Same bytes, other dtype; same bytes, other shape.
    m[1].dtype = "I32";
    m[2].shape = vec![16, 32];
    let (_d, p) = setup(&[("ref.safetensors", base), ("m.safetensors", m)]);
    let r = diff(&p[1], &p[0], &[]);
    // Medium by default: the gate passes at --fail-on high, fails at medium.
    assert_eq!(r.code, 0, "{}", r.stderr);
    let changes: Vec<(String, String)> = findings(&r.report)
        .iter()
        .filter(|f| f["id"] == "M030")
        .map(|f| {
            (
                f["location"]["tensor"].as_str().unwrap().to_string(),
                f["evidence"]["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(changes.contains(&("extra.bias".into(), "added".into())));
    assert!(changes.contains(&("model.norm.weight".into(), "removed".into())));
    for t in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
    ] {
        assert!(
            changes.contains(&(t.into(), "dtype-or-shape".into())),
            "{t}"
        );
    }
    assert_eq!(diff(&p[1], &p[0], &["--fail-on", "medium"]).code, 1);
    assert_eq!(diff(&p[1], &p[0], &["--identical"]).code, 1);
}

#[test]
fn html_report_has_a_layer_heatmap() {
    let base = base_model();
    let (d, p) = setup(&[
        ("ref.safetensors", base.clone()),
        ("edited.safetensors", edit_rows(&base)),
    ]);
    let html = d.path().join("r.html");
    tg().args(["model", "diff"])
        .arg(&p[1])
        .arg("--reference")
        .arg(&p[0])
        .args(["--format", "html", "-q", "-o"])
        .arg(&html)
        .assert()
        .code(1);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-chart=\"weight-change-heatmap\""));
    // Rows: (no layer) and three layers; the embedding cell is coloured, unchanged cells grey.
    for row in ["(no layer)", "model.layers.0", "model.layers.2"] {
        assert!(page.contains(&format!(">{row}</text>")), "{row}");
    }
    assert!(page.contains("(no layer) · model.embed_tokens.weight: "));
    assert!(page.contains("model.layers.1 · mlp.up_proj.weight: unchanged"));
    // The JSON report round-trips through `report render`.
    let json_path = d.path().join("r.json");
    tg().args(["model", "diff"])
        .arg(&p[1])
        .arg("--reference")
        .arg(&p[0])
        .args(["--format", "json", "-q", "-o"])
        .arg(&json_path)
        .assert()
        .code(1);
    tg().args(["report", "render"])
        .arg(&json_path)
        .args(["--format", "html", "-q"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("weight-change-heatmap"));
}

#[test]
fn malformed_safetensors_exit_2_naming_file_and_tensor() {
    let base = base_model();
    let (d, p) = setup(&[("ref.safetensors", base)]);
    // Offsets past the end of the data section.
    let bad = d.path().join("bad.safetensors");
    let h = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"v":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#;
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h);
    b.extend_from_slice(&[0u8; 16]);
    std::fs::write(&bad, &b).unwrap();
    for args in [
        vec!["model", "fingerprint"],
        vec!["model", "diff", "--reference", p[0].to_str().unwrap()],
    ] {
        let out = tg().args(&args).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.safetensors"), "{err}");
        assert!(err.contains("tensor 'v'"), "{err}");
    }
    // A header length past the end of the file.
    std::fs::write(&bad, [0xff, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']).unwrap();
    let out = tg()
        .args(["model", "fingerprint"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.safetensors"));
    // An unsupported dtype names the tensor.
    let h = br#"{"z":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#;
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h);
    b.extend_from_slice(&[0u8; 8]);
    std::fs::write(&bad, &b).unwrap();
    let out = tg()
        .args(["model", "fingerprint"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tensor 'z'"));
    // A reference fingerprint with another schema.
    let fp = d.path().join("fp.json");
    std::fs::write(&fp, br#"{"schema":"other/v9"}"#).unwrap();
    let r = diff(&p[0], &fp, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("tunegate.fingerprint/v1"), "{}", r.stderr);
    // A missing path.
    assert_eq!(diff(&d.path().join("nope"), &p[0], &[]).code, 2);
}
