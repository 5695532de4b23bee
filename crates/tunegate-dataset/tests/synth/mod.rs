//! Shared by the dataset integration tests: a seeded generator of varied instruction records,
//! JSONL writing, and a scan through the real reader.
#![allow(dead_code)]
use std::collections::BTreeSet;
use std::path::Path;
use tunegate_core::progress::NoProgress;
use tunegate_core::Finding;
use tunegate_dataset::read::read_paths;
use tunegate_dataset::scan::{scan, ScanOptions};

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const NOUNS: &[&str] = &[
    "garden",
    "river",
    "engine",
    "library",
    "market",
    "bridge",
    "kitchen",
    "forest",
    "harbor",
    "museum",
    "station",
    "village",
    "castle",
    "desert",
    "island",
    "factory",
    "theater",
    "school",
    "orchard",
    "canyon",
    "glacier",
    "meadow",
    "tunnel",
    "lighthouse",
    "bakery",
    "stadium",
    "airport",
    "vineyard",
    "monastery",
    "workshop",
    "observatory",
    "greenhouse",
    "pier",
    "quarry",
];
pub const ADJS: &[&str] = &[
    "quiet", "old", "busy", "small", "famous", "hidden", "modern", "ancient", "crowded", "remote",
    "sunny", "foggy", "narrow", "wide", "colorful", "historic", "peaceful", "noisy", "elegant",
];
pub const VERBS: &[&str] = &[
    "Describe",
    "Write a short story about",
    "List three facts about",
    "Explain the history of",
    "Give tips for visiting",
    "Summarize a guide to",
    "Compose a poem about",
    "Plan a day at",
];
pub const FILL: &[&str] = &[
    "people", "morning", "light", "sound", "walls", "paths", "visitors", "stones", "water", "wind",
    "shadows", "colors", "music", "history", "trees", "roads", "windows", "evening",
];

pub fn sentence(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| rng.pick(FILL)).collect::<Vec<_>>().join(" ")
}

pub fn instruction(rng: &mut Rng) -> (String, String) {
    let (v, a, n) = (rng.pick(VERBS), rng.pick(ADJS), rng.pick(NOUNS));
    let out = format!(
        "The {a} {n} has {} and {}. {}",
        sentence(rng, 3),
        sentence(rng, 2),
        sentence(rng, 6)
    );
    (format!("{v} the {a} {n}."), out)
}

pub fn write_jsonl(dir: &Path, name: &str, lines: &[serde_json::Value]) -> std::path::PathBuf {
    let p = dir.join(name);
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

pub fn scan_file(p: &Path) -> Vec<Finding> {
    let ds = read_paths(&[p.to_path_buf()], None, &NoProgress).unwrap();
    scan(&ds, &ScanOptions::default(), &NoProgress)
        .unwrap()
        .findings
}

pub fn records_of(fs: &[Finding], id: &str) -> BTreeSet<u64> {
    fs.iter()
        .filter(|f| f.id == id)
        .filter_map(|f| f.location.record)
        .collect()
}
