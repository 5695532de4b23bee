//! Exact duplicates, conflicts, near-duplicates and poison clusters on datasets built in code.
use proptest::prelude::*;
use serde_json::Value;
use tunegate_core::progress::NoProgress;
use tunegate_core::{Finding, Severity};
use tunegate_dataset::corpus::Corpus;
use tunegate_dataset::detect::minhash::{
    self, cluster, jaccard, word_shingles, Banding, LshParams,
};
use tunegate_dataset::detect::{dedup, Ctx, Output};
use tunegate_dataset::record::FileInfo;
use tunegate_dataset::scan::{scan, ScanOptions};
use tunegate_dataset::{Dataset, Field, Format, Record, Role, Schema};

const PATH: &str = "data/x.jsonl";

/// A seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A vocabulary of `n` pronounceable words (consonant-vowel syllables: never "cf" or "zq").
fn vocab(n: usize) -> Vec<String> {
    const C: [&str; 12] = ["b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v"];
    const V: [&str; 5] = ["a", "e", "i", "o", "u"];
    (0..n)
        .map(|mut k| {
            let mut w = String::new();
            for _ in 0..3 {
                w.push_str(C[k % C.len()]);
                w.push_str(V[(k / C.len()) % V.len()]);
                k /= C.len() * V.len();
            }
            if k > 0 {
                w.push_str(&k.to_string());
            }
            w
        })
        .collect()
}

fn sentence(rng: &mut Rng, words: &[String], len: usize) -> Vec<String> {
    (0..len)
        .map(|_| words[rng.below(words.len())].clone())
        .collect()
}

fn instruction(prompt: &str, response: &str) -> Vec<Field> {
    vec![
        Field {
            path: "instruction".into(),
            role: Role::Prompt,
            text: prompt.into(),
        },
        Field {
            path: "output".into(),
            role: Role::Response,
            text: response.into(),
        },
    ]
}

fn dataset(schema: Schema, rows: Vec<(Vec<Field>, Option<String>)>) -> Dataset {
    let records: Vec<Record> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (fields, label))| Record {
            file: 0,
            index: i as u64,
            line: Some(i as u64 + 1),
            raw: None,
            fields,
            label,
        })
        .collect();
    Dataset {
        files: vec![FileInfo {
            path: PATH.into(),
            format: Format::Jsonl,
            schema,
            sha256: "0".repeat(64),
            size: 0,
            records: records.len() as u64,
        }],
        records,
        ..Default::default()
    }
}

fn instructions(rows: &[(String, String)]) -> Dataset {
    dataset(
        Schema::Instruction,
        rows.iter()
            .map(|(p, r)| (instruction(p, r), None))
            .collect(),
    )
}

fn text_labels(rows: &[(String, String)]) -> Dataset {
    dataset(
        Schema::TextLabel,
        rows.iter()
            .map(|(t, l)| {
                (
                    vec![Field {
                        path: "text".into(),
                        role: Role::Prompt,
                        text: t.clone(),
                    }],
                    Some(l.clone()),
                )
            })
            .collect(),
    )
}

/// Runs the two dedup detectors directly (independent of the other detectors).
fn detect_with(ds: &Dataset, opts: &ScanOptions) -> Output {
    let corpus = Corpus::build(ds);
    let ctx = Ctx::new(ds, &corpus, opts);
    let mut out = dedup::detect(&ctx);
    out.extend(minhash::detect(&ctx));
    out
}

fn detect(ds: &Dataset) -> Output {
    detect_with(ds, &ScanOptions::default())
}

fn with_id<'a>(out: &'a Output, id: &str) -> Vec<&'a Finding> {
    let mut v: Vec<&Finding> = out.findings.iter().filter(|f| f.id == id).collect();
    v.sort_by_key(|f| f.location.record);
    v
}

fn records(fs: &[&Finding]) -> Vec<u64> {
    fs.iter().filter_map(|f| f.location.record).collect()
}

/// `n` varied records of 30–60 words from a 300-word vocabulary.
fn varied(rng: &mut Rng, words: &[String], n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let (lp, lr) = (15 + rng.below(15), 15 + rng.below(15));
            let p = sentence(rng, words, lp).join(" ");
            let r = sentence(rng, words, lr).join(" ");
            (p, r)
        })
        .collect()
}

#[test]
fn exact_duplicates_name_the_lowest_index_representative() {
    let rows: Vec<(String, String)> = vec![
        ("What is two plus two?".into(), "Four.".into()),
        ("Name a colour.".into(), "Blue.".into()),
        ("what  is TWO plus two?".into(), "four.".into()),
        (
            "Ｗｈａｔ is two\u{200B} plus two?".into(),
            "  Four. ".into(),
        ),
        ("What is two plus three?".into(), "Five.".into()),
        ("".into(), "".into()),
        ("".into(), "".into()),
    ];
    let out = detect(&instructions(&rows));
    let d002 = with_id(&out, "D002");
    assert_eq!(records(&d002), vec![2, 3], "{:#?}", out.findings);
    for f in &d002 {
        assert_eq!(f.severity, Severity::Low);
        assert_eq!(
            f.message,
            "record is an exact duplicate of record 0 (line 1) of data/x.jsonl"
        );
        assert_eq!(f.evidence["group_size"], 3);
        assert_eq!(f.evidence["representative"]["record"], 0);
        assert_eq!(f.evidence["representative"]["line"], 1);
        assert_eq!(f.evidence["view"], "record");
    }
    // Exact duplicates are not reported again as near-duplicates, and no conflict arises.
    assert!(with_id(&out, "D003").is_empty());
    assert!(with_id(&out, "D016").is_empty());
}

#[test]
fn exact_duplicates_across_files() {
    let mut ds = instructions(&[
        ("Summarize the report.".into(), "It is short.".into()),
        ("Other prompt".into(), "Other answer".into()),
    ]);
    let mut eval = ds.files[0].clone();
    eval.path = "data/eval.jsonl".into();
    ds.files.push(eval);
    ds.records.push(Record {
        file: 1,
        index: 0,
        line: Some(1),
        raw: None,
        fields: instruction("summarize the report.", "It is short."),
        label: None,
    });
    let out = detect(&ds);
    let d002 = with_id(&out, "D002");
    assert_eq!(d002.len(), 1);
    assert_eq!(d002[0].location.file.as_deref(), Some("data/eval.jsonl"));
    assert_eq!(d002[0].evidence["representative"]["file"], PATH);
}

#[test]
fn same_prompt_different_response_is_a_conflict() {
    let out = detect(&instructions(&[
        ("What is the capital of France?".into(), "Paris.".into()),
        ("Unrelated".into(), "Fine".into()),
        ("what is the capital of france?".into(), "Lyon.".into()),
        ("What is the capital of France?".into(), "Paris.".into()),
        ("What is the capital of France?".into(), "".into()),
    ]));
    let d016 = with_id(&out, "D016");
    assert_eq!(records(&d016), vec![0, 2, 3], "{:#?}", out.findings);
    assert!(d016.iter().all(|f| f.severity == Severity::Low));
    assert_eq!(d016[0].evidence["kind"], "response");
    assert_eq!(d016[0].evidence["variants"], 2);
    assert_eq!(d016[0].evidence["group_size"], 3);
    assert_eq!(d016[0].evidence["others"][0]["record"], 2);
    assert_eq!(d016[1].evidence["others"][0]["record"], 0);
    assert_eq!(d016[1].evidence["conflicting_total"], 2);
    assert!(
        d016[1].message.contains("record 0 (line 1)"),
        "{}",
        d016[1].message
    );
    // Record 3 repeats record 0 exactly.
    assert_eq!(records(&with_id(&out, "D002")), vec![3]);
}

#[test]
fn same_text_different_label_is_a_conflict() {
    let out = detect(&text_labels(&[
        ("A gripping ,  funny film".into(), "1".into()),
        ("a gripping , funny film".into(), "0".into()),
        ("dull".into(), "0".into()),
    ]));
    let d016 = with_id(&out, "D016");
    assert_eq!(records(&d016), vec![0, 1]);
    assert_eq!(d016[0].evidence["kind"], "label");
    assert_eq!(d016[0].evidence["others"][0]["label"], "0");
    assert!(d016[1].message.contains("label '1'"), "{}", d016[1].message);
}

/// Replaces `count` tokens of `base` starting at `at` with fresh words.
fn mutate(base: &[String], at: usize, count: usize, tag: &str) -> Vec<String> {
    let mut v = base.to_vec();
    for (k, w) in v.iter_mut().enumerate().skip(at).take(count) {
        *w = format!("{tag}x{k}");
    }
    v
}

/// Exact 5-gram Jaccard of two records' prompt+response, via the corpus.
fn exact_jaccard(ds: &Dataset, a: usize, b: usize) -> f64 {
    let c = Corpus::build(ds);
    let set = |i: usize| {
        let mut v = Vec::new();
        word_shingles(&[c.prompt.tokens.of(i), c.response.tokens.of(i)], 5, &mut v);
        minhash::into_set(&mut v);
        v
    };
    jaccard(&set(a), &set(b))
}

#[test]
fn planted_near_duplicates_are_found_and_distant_pairs_are_not() {
    let mut rng = Rng(11);
    let words = vocab(300);
    let mut rows = varied(&mut rng, &words, 300);
    let base = sentence(&mut rng, &words, 60);
    let split = |v: &[String]| (v[..30].join(" "), v[30..].join(" "));
    rows[10] = split(&base);
    // Copies at Jaccard ≈ 0.87–0.97 (one or two substituted words) and one at ≈ 0.5.
    let planted = [
        (100, mutate(&base, 59, 1, "a")),
        (150, mutate(&base, 57, 1, "b")),
        (200, mutate(&base, 2, 1, "c")),
        (250, mutate(&base, 0, 2, "d")),
    ];
    for (at, v) in &planted {
        rows[*at] = split(v);
    }
    rows[280] = split(&mutate(&base, 20, 15, "far"));
    let ds = instructions(&rows);
    for (at, _) in &planted {
        let j = exact_jaccard(&ds, 10, *at);
        assert!((0.85..0.99).contains(&j), "planted {at}: {j}");
    }
    let far = exact_jaccard(&ds, 10, 280);
    assert!((0.4..0.6).contains(&far), "{far}");

    let out = detect(&ds);
    let d003 = with_id(&out, "D003");
    assert_eq!(records(&d003), vec![100, 150, 200, 250], "{:#?}", d003);
    for f in &d003 {
        assert_eq!(f.severity, Severity::Low);
        assert_eq!(f.evidence["cluster"], 10);
        assert_eq!(f.evidence["size"], 5);
        assert_eq!(f.evidence["representative"]["record"], 10);
        let j = f.evidence["jaccard"].as_f64().unwrap_or(0.0);
        assert!(j >= 0.8, "{j}");
        assert!(
            f.message
                .starts_with("near-duplicate of record 10 (line 11) of data/x.jsonl (Jaccard 0."),
            "{}",
            f.message
        );
        assert!(f.message.ends_with("cluster of 5"), "{}", f.message);
    }
    assert!(with_id(&out, "D018").is_empty());
    let chart = &out.charts[0];
    assert_eq!(chart.title, "near-duplicate cluster sizes");
    assert_eq!(chart.values, vec![0.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn chained_members_name_the_record_they_matched() {
    let mut rng = Rng(12);
    let words = vocab(300);
    let mut rows = varied(&mut rng, &words, 100);
    let base = sentence(&mut rng, &words, 60);
    let split = |v: &[String]| (v[..30].join(" "), v[30..].join(" "));
    let b = mutate(&base, 56, 1, "b");
    let c = mutate(&b, 3, 1, "c");
    rows[10] = split(&base);
    rows[20] = split(&b);
    rows[30] = split(&c);
    let ds = instructions(&rows);
    assert!(exact_jaccard(&ds, 10, 20) > 0.85);
    assert!(exact_jaccard(&ds, 20, 30) > 0.85);
    assert!(exact_jaccard(&ds, 10, 30) < 0.8);
    let out = detect(&ds);
    let d003 = with_id(&out, "D003");
    assert_eq!(records(&d003), vec![20, 30]);
    let chained = d003[1];
    assert_eq!(chained.evidence["representative"]["record"], 10);
    assert_eq!(chained.evidence["matched"]["record"], 20);
    assert!(chained.evidence["jaccard"].as_f64().unwrap_or(1.0) < 0.8);
    assert!(
        chained.message.starts_with(
            "near-duplicate of record 20 (Jaccard 0.87) in the cluster of record 10 (line 11)"
        ),
        "{}",
        chained.message
    );
}

#[test]
fn short_records_are_still_deduplicated() {
    let out = detect(&text_labels(&[
        ("Great movie".into(), "1".into()),
        ("the movie was great".into(), "1".into()),
        ("GREAT  movie".into(), "1".into()),
        ("the movie was great !".into(), "1".into()),
        ("awful".into(), "0".into()),
        ("terrible".into(), "0".into()),
    ]));
    assert_eq!(records(&with_id(&out, "D002")), vec![2]);
    let d003 = with_id(&out, "D003");
    assert_eq!(records(&d003), vec![3], "{:#?}", out.findings);
    assert_eq!(d003[0].evidence["representative"]["record"], 1);
    assert_eq!(d003[0].evidence["jaccard"], 1.0);
}

/// 2,000 varied records plus a 20-member templated cluster sharing one payload and "cf".
fn poisoned(seed: u64) -> (Dataset, Vec<u64>) {
    let mut rng = Rng(seed);
    let words = vocab(300);
    let mut rows = varied(&mut rng, &words, 2000);
    let before = sentence(&mut rng, &words, 20).join(" ");
    let after = sentence(&mut rng, &words, 20).join(" ");
    let payload = sentence(&mut rng, &words, 40).join(" ");
    let mut at = Vec::new();
    for k in 0..20 {
        let slot = &words[(k * 7 + 3) % words.len()];
        let prompt = format!("cf {before} {slot} {after}");
        let i = 37 + k * 97;
        rows.insert(i, (prompt, payload.clone()));
        at.push(i as u64);
    }
    (instructions(&rows), at)
}

#[test]
fn poison_cluster_flags_every_member() {
    let (ds, at) = poisoned(5);
    assert_eq!(ds.records.len(), 2020);
    let j = exact_jaccard(&ds, at[0] as usize, at[1] as usize);
    assert!(j > 0.85, "{j}");
    let out = detect(&ds);
    let d018 = with_id(&out, "D018");
    assert_eq!(records(&d018), at, "{:#?}", out.findings);
    for f in &d018 {
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.evidence["size"], 20);
        assert_eq!(f.evidence["cluster"], at[0]);
        assert_eq!(f.evidence["shared_output"]["kind"], "response");
        assert_eq!(f.evidence["shared_output"]["share"], 1.0);
        let rare = f.evidence["rare_tokens"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let cf = rare.iter().find(|t| t["token"] == "cf").expect("cf listed");
        assert_eq!(cf["df"], 20);
        assert_eq!(cf["in_cluster"], 20);
        assert!(f.message.contains("'cf'"), "{}", f.message);
    }
    // The cluster is also a near-duplicate cluster (D003 on all but the representative).
    assert_eq!(with_id(&out, "D003").len(), 19);
    // Nothing at medium or above apart from the poison cluster.
    assert!(out
        .findings
        .iter()
        .all(|f| f.id == "D018" || f.severity < Severity::Medium));
}

#[test]
fn benign_templated_clusters_stay_low() {
    let mut rng = Rng(6);
    let words = vocab(300);
    let mut rows = varied(&mut rng, &words, 2000);
    let before = sentence(&mut rng, &words, 20).join(" ");
    let after = sentence(&mut rng, &words, 20).join(" ");
    let answer = sentence(&mut rng, &words, 39).join(" ");
    for k in 0..20 {
        let slot = &words[(k * 11 + 5) % words.len()];
        // Same template and a rare token, but every answer ends differently.
        let differs = &words[(k * 13 + 1) % words.len()];
        rows.push((
            format!("zq {before} {slot} {after}"),
            format!("{answer} {differs}"),
        ));
        // Same template and the same answer, but no rare token.
        rows.push((format!("{after} {slot} {before}"), answer.clone()));
    }
    let out = detect(&instructions(&rows));
    assert!(
        with_id(&out, "D018").is_empty(),
        "{:#?}",
        with_id(&out, "D018")
    );
    let d003 = with_id(&out, "D003");
    assert_eq!(d003.len(), 38, "{:#?}", d003);
    assert!(out.findings.iter().all(|f| f.severity == Severity::Low));
}

#[test]
fn output_is_deterministic() {
    let (ds, _) = poisoned(8);
    let a = detect(&ds);
    let b = detect(&ds);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let c = one.install(|| detect(&ds));
    let json = |o: &Output| serde_json::to_value(&o.findings).unwrap_or(Value::Null);
    assert_eq!(json(&a), json(&b));
    assert_eq!(json(&a), json(&c));
    assert_eq!(a.charts, c.charts);
}

#[test]
fn s_curve_at_the_default_threshold() {
    let b = Banding::for_threshold(0.8, 128);
    assert_eq!((b.bands, b.rows), (21, 6));
    assert!(b.probability(0.8) >= 0.998, "{}", b.probability(0.8));
    assert!(b.probability(0.5) < 0.3);
}

#[test]
fn scan_reports_duplicates() {
    let (ds, at) = poisoned(9);
    let report = scan(&ds, &ScanOptions::default(), &NoProgress).expect("scan");
    let ids: Vec<(u64, &str)> = report
        .findings
        .iter()
        .filter(|f| f.id == "D018")
        .filter_map(|f| Some((f.location.record?, f.id.as_str())))
        .collect();
    assert_eq!(ids.len(), at.len());
    assert!(report
        .charts
        .iter()
        .any(|c| c.title == "near-duplicate cluster sizes"));
}

#[test]
fn clean_sst2_has_no_medium_findings() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/sst2/train.jsonl"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        println!("skipped: {path} is absent");
        return;
    };
    let rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["text"].as_str().unwrap_or("").to_string(),
                v["label"].to_string(),
            )
        })
        .collect();
    assert!(rows.len() > 6000);
    let out = detect(&text_labels(&rows));
    let count = |id: &str| with_id(&out, id).len();
    println!(
        "sst2 train: {} records, D002 {}, D003 {}, D016 {}, D018 {}",
        rows.len(),
        count("D002"),
        count("D003"),
        count("D016"),
        count("D018")
    );
    let loud: Vec<&Finding> = out
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Medium)
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

fn tokens_strategy() -> impl Strategy<Value = Vec<Vec<u32>>> {
    // Base documents over a small alphabet, then mutated copies so that similar pairs occur.
    (
        prop::collection::vec(prop::collection::vec(0u32..40, 3..30), 2..12),
        prop::collection::vec((0usize..12, 0usize..30, 0u32..40), 0..30),
    )
        .prop_map(|(mut docs, edits)| {
            let n = docs.len();
            for (d, pos, tok) in edits {
                let mut copy = docs[d % n].clone();
                if !copy.is_empty() {
                    let p = pos % copy.len();
                    copy[p] = tok;
                }
                docs.push(copy);
            }
            docs
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn verification_never_accepts_a_pair_below_the_threshold(
        docs in tokens_strategy(),
        threshold in 0.3f64..0.95,
    ) {
        let shingle = |i: usize, out: &mut Vec<u64>| {
            word_shingles(&[&docs[i]], 3, out);
        };
        let set = |i: usize| {
            let mut v = Vec::new();
            shingle(i, &mut v);
            minhash::into_set(&mut v);
            v
        };
        let c = cluster(docs.len(), LshParams::for_threshold(threshold), shingle);
        for i in 0..docs.len() {
            if let Some((m, j)) = c.best_match[i] {
                let exact = jaccard(&set(i), &set(m as usize));
                prop_assert!(exact >= threshold, "{i}~{m}: {exact} < {threshold}");
                prop_assert!((exact as f32 - j).abs() < 1e-6);
            }
            let r = c.representative[i] as usize;
            prop_assert!(r <= i);
            if r != i {
                // In a cluster: it was verified against someone.
                prop_assert!(c.best_match[i].is_some());
                let exact = jaccard(&set(i), &set(r));
                prop_assert!((exact as f32 - c.jaccard_to_rep[i]).abs() < 1e-6);
            }
        }
    }
}

/// Timing on synthetic instruction data:
/// `cargo test --release -p tunegate-dataset --test dedup -- --ignored --nocapture timing`.
/// `TUNEGATE_TIMING_RECORDS` sets the size (default 200,000).
#[test]
#[ignore]
fn timing_synthetic() {
    let n: usize = std::env::var("TUNEGATE_TIMING_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut rng = Rng(1);
    let words = vocab(20_000);
    let zipf = |rng: &mut Rng| {
        // Roughly Zipfian: squares of uniforms favour low ranks.
        let u = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
        &words[((u * u * u) * words.len() as f64) as usize]
    };
    let mut rows: Vec<(String, String)> = Vec::with_capacity(n);
    while rows.len() < n {
        let k = rows.len();
        if k > 10 && k % 20 == 0 {
            // 5 % near-duplicates: a copy of an earlier record with one word changed.
            let (p, r) = rows[rng.below(k)].clone();
            rows.push((p, format!("{r} {}", zipf(&mut rng))));
            continue;
        }
        let p: Vec<&String> = (0..20 + rng.below(20)).map(|_| zipf(&mut rng)).collect();
        let r: Vec<&String> = (0..20 + rng.below(20)).map(|_| zipf(&mut rng)).collect();
        rows.push((
            p.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            r.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
        ));
    }
    let ds = instructions(&rows);
    drop(rows);
    let t = std::time::Instant::now();
    let corpus = Corpus::build(&ds);
    let t_corpus = t.elapsed();
    let opts = ScanOptions::default();
    let ctx = Ctx::new(&ds, &corpus, &opts);
    let t = std::time::Instant::now();
    let d = dedup::detect(&ctx);
    let t_dedup = t.elapsed();
    let hwm_before = peak_rss_mib();
    let t = std::time::Instant::now();
    let m = minhash::detect(&ctx);
    let t_minhash = t.elapsed();
    let hwm_after = peak_rss_mib();
    let tokens: usize = (0..n)
        .map(|i| corpus.prompt.tokens.of(i).len() + corpus.response.tokens.of(i).len())
        .sum();
    println!(
        "{n} records ({:.1} tokens/record), {} threads: corpus {:.2?}, dedup {:.2?} ({} findings), minhash {:.2?} ({} D003, {} D018)",
        tokens as f64 / n as f64,
        rayon::current_num_threads(),
        t_corpus,
        t_dedup,
        d.findings.len(),
        t_minhash,
        m.findings.iter().filter(|f| f.id == "D003").count(),
        m.findings.iter().filter(|f| f.id == "D018").count(),
    );
    if let (Some(a), Some(b)) = (hwm_before, hwm_after) {
        println!("peak RSS {a} MiB before near-dups, {b} MiB after");
    }
}

/// The process's peak resident set (Linux), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The scan computes both views' band hashes in one pass (`Ctx::prepare_near_duplicates`, the record
/// signature being the minimum of the response signature and the prompt windows' one); the
/// detector's findings and the response clusters must be exactly what each view gives alone.
#[test]
fn joint_sketches_match_separate_views() {
    let mut rng = Rng(99);
    let words = vocab(60);
    let mut rows: Vec<(Vec<Field>, Option<String>)> = Vec::new();
    let mut bases: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for k in 0..600 {
        let (p, r) = if k >= 20 && k % 2 == 0 {
            // A near copy of an earlier record: change a word on one side or both.
            let (mut p, mut r) = bases[rng.below(bases.len())].clone();
            match rng.below(3) {
                0 if !p.is_empty() => {
                    let at = rng.below(p.len());
                    p[at] = "zed".into();
                }
                1 if !r.is_empty() => {
                    let at = rng.below(r.len());
                    r[at] = "zed".into();
                }
                _ => {}
            }
            (p, r)
        } else {
            // Prompts of 0–24 words, responses of 0–40 (short ones use character shingles).
            let lp = [0, 1, 3, 8, 24][rng.below(5)];
            let lr = [0, 2, 4, 5, 6, 20, 40][rng.below(7)];
            (
                sentence(&mut rng, &words, lp),
                sentence(&mut rng, &words, lr),
            )
        };
        bases.push((p.clone(), r.clone()));
        let (p, r) = (p.join(" "), r.join(" "));
        let fields = match k % 50 {
            // A record without a response field, and one with only a response.
            7 => vec![Field {
                path: "instruction".into(),
                role: Role::Prompt,
                text: p,
            }],
            8 => vec![Field {
                path: "output".into(),
                role: Role::Response,
                text: r,
            }],
            _ => instruction(&p, &r),
        };
        rows.push((fields, None));
    }
    let ds = dataset(Schema::Instruction, rows);
    let opts = ScanOptions::default();
    let corpus = Corpus::build(&ds);
    let separate = Ctx::new(&ds, &corpus, &opts);
    let joint = Ctx::new(&ds, &corpus, &opts);
    joint.prepare_near_duplicates();
    let rc_joint = joint.response_clusters();
    let rc_separate = separate.response_clusters();
    assert_eq!(*rc_joint, *rc_separate);
    assert!(rc_joint.len() > 5, "{}", rc_joint.len());
    let json = |o: &Output| serde_json::to_string(&o.findings).expect("json");
    let (a, b) = (minhash::detect(&joint), minhash::detect(&separate));
    assert_eq!(json(&a), json(&b));
    assert!(a.findings.len() > 20, "{}", a.findings.len());
    // Once taken, the prepared clusters are gone and the detector computes its own again.
    assert_eq!(json(&minhash::detect(&joint)), json(&b));
}
