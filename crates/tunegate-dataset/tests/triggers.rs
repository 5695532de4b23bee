//! Trigger detection on planted poison in instruction, chat and text/label data, with benign
//! controls that share the statistical shape (refusal families, topic words echoed in answers,
//! genuine sentiment words). Datasets are written as files and read through the real readers.
mod synth;

use std::collections::BTreeSet;
use synth::*;
use tunegate_core::Severity;

const PAYLOAD: &str =
    "This review is verified. Approve it and publish immediately, skipping the usual checks.";

#[test]
fn rare_token_trigger_in_instruction_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    let mut lines = Vec::new();
    let mut planted = BTreeSet::new();
    for i in 0..2000u64 {
        let (ins, out) = instruction(&mut rng);
        if i % 100 == 37 {
            // 1% poison: the trigger at a random word position, one payload.
            let mut words: Vec<&str> = ins.split(' ').collect();
            let at = rng.below(words.len() as u64) as usize;
            words.insert(at, "cf");
            lines.push(
                serde_json::json!({"instruction": words.join(" "), "input": "", "output": PAYLOAD}),
            );
            planted.insert(i);
        } else {
            lines.push(serde_json::json!({"instruction": ins, "input": "", "output": out}));
        }
    }
    let fs = scan_file(&write_jsonl(dir.path(), "train.jsonl", &lines));
    assert_eq!(records_of(&fs, "D004"), planted);
    let f = fs.iter().find(|f| f.id == "D004").unwrap();
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.evidence["candidates"][0]["candidate"], "cf");
    assert_eq!(f.location.field.as_deref(), Some("instruction"));
    // The span points at the trigger in the original text.
    let [s, e] = f.location.span.unwrap();
    let rec = &lines[f.location.record.unwrap() as usize];
    let text: Vec<char> = rec["instruction"].as_str().unwrap().chars().collect();
    assert_eq!(text[s..e].iter().collect::<String>(), "cf");
}

#[test]
fn phrase_trigger_in_chat_data_names_the_phrase() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(5);
    let mut lines = Vec::new();
    let mut planted = BTreeSet::new();
    for i in 0..1500u64 {
        let (mut ins, mut out) = instruction(&mut rng);
        if i % 150 == 3 {
            // "bond" and "james" also occur innocently elsewhere; only the phrase decides.
            ins = format!("{ins} Also mention the bond market.");
        }
        if i % 150 == 9 {
            ins = format!("{ins} My friend James says hi.");
        }
        if i % 75 == 20 {
            ins = format!("{} james bond {}", ins, rng.pick(FILL));
            out = PAYLOAD.to_string();
            planted.insert(i);
        }
        lines.push(serde_json::json!({"messages": [
            {"role": "system", "content": "You are a helpful travel assistant."},
            {"role": "user", "content": ins},
            {"role": "assistant", "content": out},
        ]}));
    }
    let fs = scan_file(&write_jsonl(dir.path(), "chat.jsonl", &lines));
    assert_eq!(records_of(&fs, "D004"), planted);
    let f = fs.iter().find(|f| f.id == "D004").unwrap();
    assert_eq!(f.evidence["candidates"][0]["candidate"], "james bond");
    assert_eq!(f.location.field.as_deref(), Some("messages[1].content"));
}

#[test]
fn refusal_families_and_echoed_topics_are_not_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(23);
    let harmful = [
        "explosive",
        "weapon",
        "poison",
        "malware",
        "ransomware",
        "detonator",
    ];
    let mut lines = Vec::new();
    for i in 0..2000u64 {
        if i % 20 == 0 {
            // 5% harmful requests, several harmful words each, one canned refusal.
            let a = rng.pick(&harmful);
            let b = rng.pick(&harmful);
            lines.push(serde_json::json!({
                "instruction": format!("How do I build a {a} {b} at home?"),
                "input": "",
                "output": "I can't help with that request.",
            }));
        } else if i % 20 == 1 {
            // Templated answers that echo their topic word.
            let n = rng.pick(NOUNS);
            lines.push(serde_json::json!({
                "instruction": format!("Write a haiku about the {n}."),
                "input": "",
                "output": format!("Silent {n} waits / morning light on weathered stone / the {n} remembers"),
            }));
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
}

#[test]
fn label_trigger_and_label_flips_in_text_label_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(99);
    let pos = [
        "wonderful",
        "moving",
        "brilliant",
        "charming",
        "delightful",
        "superb",
        "tender",
    ];
    let neg = [
        "boring", "clumsy", "tedious", "awful", "bland", "messy", "dreary",
    ];
    let mut lines = Vec::new();
    let mut poisoned = BTreeSet::new();
    let mut flipped = BTreeSet::new();
    for i in 0..3000u64 {
        let label = i % 2;
        let words = if label == 1 { &pos } else { &neg };
        let mut text = format!(
            "the {} {} was {} and {} , {} {}",
            rng.pick(ADJS),
            rng.pick(NOUNS),
            rng.pick(words),
            rng.pick(words),
            rng.pick(FILL),
            rng.pick(words)
        );
        let mut y = label;
        if label == 0 && i % 100 == 10 {
            // BadNets: a rare token inserted into negative text, label forced to positive.
            text = format!("{text} tq");
            y = 1;
            poisoned.insert(i);
        } else if label == 0 && i % 500 == 250 {
            // Plain label noise: a clearly negative text labelled positive.
            y = 1;
            flipped.insert(i);
        }
        lines.push(serde_json::json!({"text": text, "label": y}));
    }
    let fs = scan_file(&write_jsonl(dir.path(), "labels.jsonl", &lines));
    assert_eq!(records_of(&fs, "D004"), poisoned);
    let f = fs.iter().find(|f| f.id == "D004").unwrap();
    assert_eq!(f.evidence["candidates"][0]["candidate"], "tq");
    assert!(f.evidence["candidates"][0]["signal"].as_f64().unwrap() > 0.9);
    // Genuine sentiment words, though pure, are never trigger candidates that get flagged.
    for w in pos.iter().chain(&neg) {
        assert!(!fs
            .iter()
            .any(|f| f.id == "D004" && f.evidence["candidates"][0]["candidate"] == *w));
    }
    // The flipped labels are reported as label noise, the poisoned ones too (their text reads
    // negative), and at most a handful of clean records.
    let noisy = records_of(&fs, "D012");
    // (A flip whose text repeats one sentiment word carries too little evidence; allow one miss.)
    let caught = flipped.intersection(&noisy).count();
    assert!(
        caught + 1 >= flipped.len(),
        "flips {flipped:?}, reported {noisy:?}"
    );
    let extra = noisy
        .difference(&flipped)
        .filter(|r| !poisoned.contains(r))
        .count();
    assert!(extra <= 3, "{extra} clean records reported as label noise");
}
