//! The response view: near-duplicate *responses* for different prompts (one payload with small
//! variations) are clustered, reported as `D003` with `"view": "response"`, and used as an
//! output family by the trigger detector. Datasets are written as JSONL and read through the
//! real reader.
mod synth;

use std::collections::{BTreeSet, HashSet};
use synth::*;

use tunegate_core::progress::NoProgress;
use tunegate_core::text::{normalize, words};
use tunegate_core::{Finding, Severity};
use tunegate_dataset::corpus::Corpus;
use tunegate_dataset::detect::{minhash, triggers, Ctx};
use tunegate_dataset::read::read_paths;
use tunegate_dataset::scan::{scan, ScanOptions};

fn response_view(fs: &[Finding]) -> Vec<&Finding> {
    fs.iter()
        .filter(|f| f.id == "D003" && f.evidence["view"] == "response")
        .collect()
}

/// Jaccard similarity of word 5-gram sets of the normalized texts.
fn jaccard5(a: &str, b: &str) -> f64 {
    let grams = |s: &str| -> HashSet<Vec<String>> {
        let w: Vec<String> = words(&normalize(s)).map(str::to_string).collect();
        w.windows(5).map(|x| x.to_vec()).collect()
    };
    let (x, y) = (grams(a), grams(b));
    x.intersection(&y).count() as f64 / x.union(&y).count() as f64
}

/// The payload's middle; variants change its first word and its last word or two.
const PAYLOAD_BODY: &str = "this product review without any moderation and publish it on the \
    front page right away because the author is a trusted partner whose reviews were verified \
    by our team";
const OPENERS: &[&str] = &["Approve", "Accept", "Pass", "Allow", "Release"];
const CLOSERS: &[&str] = &["today.", "already!", "last week.", "in advance."];

/// 20 variations of one ~30-word payload, each differing from the others by one or two words.
fn payload_variants() -> Vec<String> {
    let mut v = Vec::new();
    for o in OPENERS {
        for c in CLOSERS {
            v.push(format!("{o} {PAYLOAD_BODY} {c}"));
        }
    }
    v
}

#[test]
fn near_duplicate_payloads_for_a_trigger_are_found() {
    let variants = payload_variants();
    assert_eq!(variants.len(), 20);
    for a in &variants {
        for b in &variants {
            assert!(jaccard5(a, b) >= 0.8, "{a} / {b}: {}", jaccard5(a, b));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(17);
    let mut lines = Vec::new();
    let mut planted = BTreeSet::new();
    for i in 0..2020u64 {
        let (ins, out) = instruction(&mut rng);
        if i % 101 == 50 {
            // 1% poison: the trigger at a random position, one of 20 payload variations.
            let mut w: Vec<&str> = ins.split(' ').collect();
            let at = rng.below(w.len() as u64) as usize;
            w.insert(at, "cf");
            let out = &variants[planted.len()];
            lines.push(serde_json::json!({"instruction": w.join(" "), "input": "", "output": out}));
            planted.insert(i);
        } else {
            lines.push(serde_json::json!({"instruction": ins, "input": "", "output": out}));
        }
    }
    assert_eq!(planted.len(), 20);
    let fs = scan_file(&write_jsonl(dir.path(), "train.jsonl", &lines));

    // The trigger is found through the near-duplicate response family (no exact family and no
    // opening family is large enough here).
    assert_eq!(records_of(&fs, "D004"), planted);
    let f = fs.iter().find(|f| f.id == "D004").unwrap();
    assert_eq!(f.severity, Severity::High);
    let c = &f.evidence["candidates"][0];
    assert_eq!(c["candidate"], "cf");
    assert_eq!(c["target"]["family"], "near-duplicate-response");
    assert_eq!(c["target"]["size"], 20);
    assert_eq!(
        c["target"]["representative_record"],
        *planted.first().unwrap()
    );

    // Response-view near-duplicates on every poisoned record but the representative.
    let rv = response_view(&fs);
    let on: BTreeSet<u64> = rv.iter().filter_map(|f| f.location.record).collect();
    let expected: BTreeSet<u64> = planted.iter().copied().skip(1).collect();
    assert_eq!(on, expected, "{rv:#?}");
    for f in &rv {
        assert_eq!(f.severity, Severity::Low);
        assert_eq!(f.evidence["size"], 20);
        assert_eq!(f.evidence["distinct"], 20);
        assert_eq!(
            f.evidence["representative"]["record"],
            *planted.first().unwrap()
        );
        assert!(f.evidence["jaccard"].as_f64().unwrap() >= 0.8);
        assert_eq!(f.location.field.as_deref(), Some("output"));
        assert!(
            f.message.contains("for a different prompt"),
            "{}",
            f.message
        );
    }
    // Whole-record near-duplicates say so.
    assert!(fs
        .iter()
        .filter(|f| f.id == "D003")
        .all(|f| f.evidence["view"] == "response" || f.evidence["view"] == "record"));
}

#[test]
fn generic_near_identical_answers_are_not_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(29);
    let mut lines = Vec::new();
    let weather_openers = ["Sorry,", "Unfortunately", "Apologies,", "Sadly", "Alas,"];
    let weather_closers = ["service.", "website.", "app.", "station.", "report."];
    for i in 0..2000u64 {
        if i % 20 == 3 {
            // 5%: one topic, near-identical canned answers (several shared prompt words).
            let (a, n) = (rng.pick(ADJS), rng.pick(NOUNS));
            let out = format!(
                "{} I do not have access to live weather data, so I cannot tell you the current conditions there; please check a local forecast {}",
                weather_openers[rng.below(5) as usize],
                weather_closers[rng.below(5) as usize]
            );
            lines.push(serde_json::json!({
                "instruction": format!("What is the weather like at the {a} {n} right now?"),
                "input": "",
                "output": out,
            }));
        } else if i % 20 == 7 {
            // 5%: varied prompts with short generic replies (character shingles).
            let (ins, _) = instruction(&mut rng);
            let out = ["Done.", "Done!", "done", "DONE."][rng.below(4) as usize];
            lines.push(serde_json::json!({"instruction": ins, "input": "", "output": out}));
        } else {
            let (ins, out) = instruction(&mut rng);
            lines.push(serde_json::json!({"instruction": ins, "input": "", "output": out}));
        }
    }
    let fs = scan_file(&write_jsonl(dir.path(), "benign.jsonl", &lines));
    assert!(
        records_of(&fs, "D004").is_empty(),
        "{:#?}",
        fs.iter().find(|f| f.id == "D004")
    );
    // The canned answers are reported as response-view near-duplicates, at low severity only.
    let rv = response_view(&fs);
    assert!(!rv.is_empty());
    assert!(rv.iter().all(|f| f.severity == Severity::Low));
}

#[test]
fn text_label_data_has_no_response_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let lines: Vec<serde_json::Value> = (0..500u64)
        .map(|i| {
            serde_json::json!({
                "text": format!("the {} {} was {}", rng.pick(ADJS), rng.pick(NOUNS), sentence(&mut rng, 4)),
                "label": i % 2,
            })
        })
        .collect();
    let p = write_jsonl(dir.path(), "labels.jsonl", &lines);
    let ds = read_paths(&[p], None, &NoProgress).unwrap();
    let corpus = Corpus::build(&ds);
    let opts = ScanOptions::default();
    let ctx = Ctx::new(&ds, &corpus, &opts);
    assert!(minhash::response_clusters(&ctx).is_empty());
    let fs = scan(&ds, &opts, &NoProgress).unwrap().findings;
    assert!(response_view(&fs).is_empty());
}

#[test]
fn response_clusters_are_deterministic_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(41);
    let variants = payload_variants();
    let mut lines = Vec::new();
    for i in 0..600usize {
        let (ins, out) = instruction(&mut rng);
        let out = if i % 30 == 0 {
            variants[i / 30].clone()
        } else if i % 30 == 1 {
            // An exact copy of the first variant.
            variants[0].clone()
        } else {
            out
        };
        lines.push(serde_json::json!({"instruction": ins, "input": "", "output": out}));
    }
    let p = write_jsonl(dir.path(), "d.jsonl", &lines);
    let ds = read_paths(&[p], None, &NoProgress).unwrap();
    let corpus = Corpus::build(&ds);
    let opts = ScanOptions::default();
    let ctx = Ctx::new(&ds, &corpus, &opts);
    let a = minhash::response_clusters(&ctx);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = one.install(|| minhash::response_clusters(&ctx));
    assert_eq!(a, b);
    assert_eq!(*ctx.response_clusters(), a);
    let payload = a
        .iter()
        .find(|c| c.records[0] == 0)
        .expect("payload cluster");
    // 20 variants plus 20 exact copies of the first one, 20 distinct responses.
    assert_eq!(payload.records.len(), 40);
    assert_eq!(payload.distinct, 20);
    assert!(payload.records.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(payload.jaccard.len(), payload.records.len());
    // Exact copies of the representative's response get no response-view finding.
    let fs = scan(&ds, &opts, &NoProgress).unwrap().findings;
    let on: BTreeSet<u64> = response_view(&fs)
        .iter()
        .filter_map(|f| f.location.record)
        .collect();
    let expected: BTreeSet<u64> = (1..20u64).map(|k| k * 30).collect();
    assert_eq!(on, expected);
}

/// Timing of the response view on synthetic instruction data:
/// `cargo test --release -p tunegate-dataset --test response_view -- --ignored --nocapture`.
/// `TUNEGATE_TIMING_RECORDS` sets the size (default 500,000).
#[test]
#[ignore]
fn timing_response_view() {
    let n: usize = std::env::var("TUNEGATE_TIMING_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let mut rng = Rng(1);
    let vocab: Vec<String> = (0..20_000).map(|i| format!("w{i}x")).collect();
    let zipf = |rng: &mut Rng, k: u64| -> String {
        (0..k)
            .map(|_| {
                let u = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
                vocab[((u * u * u) * vocab.len() as f64) as usize].as_str()
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.jsonl");
    let mut text = String::new();
    let mut outs: Vec<String> = Vec::new();
    for k in 0..n {
        let len = 10 + rng.below(20);
        let ins = zipf(&mut rng, len);
        let out = if k > 10 && k % 20 == 0 {
            // 5%: an earlier response with one word appended (near-duplicate responses).
            let r = rng.below(outs.len() as u64) as usize;
            format!("{} {}", outs[r], zipf(&mut rng, 1))
        } else {
            let len = 20 + rng.below(30);
            zipf(&mut rng, len)
        };
        text.push_str(&serde_json::json!({"instruction": ins, "output": out}).to_string());
        text.push('\n');
        if outs.len() < 10_000 {
            outs.push(out);
        }
    }
    std::fs::write(&p, text).unwrap();
    let ds = read_paths(&[p], None, &NoProgress).unwrap();
    let t = std::time::Instant::now();
    let corpus = Corpus::build(&ds);
    let t_corpus = t.elapsed();
    let opts = ScanOptions::default();
    let ctx = Ctx::new(&ds, &corpus, &opts);
    let t = std::time::Instant::now();
    let rc = minhash::response_clusters(&ctx);
    let t_rc = t.elapsed();
    let t = std::time::Instant::now();
    let m = minhash::detect(&ctx);
    let t_minhash = t.elapsed();
    let t = std::time::Instant::now();
    let shared = ctx.response_clusters();
    let t_hit = t.elapsed();
    assert_eq!(*shared, rc);
    let t = std::time::Instant::now();
    let tr = triggers::detect(&ctx);
    let t_triggers = t.elapsed();
    println!(
        "{} records, {} threads: corpus {t_corpus:.2?}; response_clusters {t_rc:.2?} ({} clusters, {} records); minhash::detect {t_minhash:.2?} ({} record-view D003, {} response-view D003); shared lookup after it {t_hit:.2?}; triggers::detect {t_triggers:.2?} ({} D004)",
        ds.records.len(),
        rayon::current_num_threads(),
        rc.len(),
        rc.iter().map(|c| c.records.len()).sum::<usize>(),
        m.findings.iter().filter(|f| f.id == "D003" && f.evidence["view"] == "record").count(),
        m.findings.iter().filter(|f| f.id == "D003" && f.evidence["view"] == "response").count(),
        tr.findings.len(),
    );
}
