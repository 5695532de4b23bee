#!/usr/bin/env python3
"""Seeded generator of an Alpaca-style instruction dataset with planted near-duplicate clusters.

    python3 bench/dataset/gen.py --records 1000000 --seed 7 --out bench/out/dataset

writes OUT/synth.jsonl ({"instruction","input","output"} per line) and OUT/truth.json.

Ordinary records: one of 14 template families (a fixed instruction opener, sometimes a fixed
output opener) filled with words drawn from a deterministic pseudo-word vocabulary with
Zipf-Mandelbrot frequencies (English function words at the top ranks, ~7 % of tokens carry
a trailing comma or period); instruction 8-20 words, input empty (40 %) or 5-40 words,
output 20-80 words. Template sharing makes records share a few 5-grams, far below
Jaccard 0.8.

Planted clusters: about --dup-rate (1 %) of the records, in clusters of 2-20 records placed at
random positions. Each cluster is a seed record (an ordinary record with >= 40 tokens) plus
copies: mostly mutated copies (1-3 word replace/insert/delete edits), and about 15 % copies
that differ only in case and whitespace. Every copy is verified with the exact normalizer of
tunegate (textnorm.py): exact 5-gram Jaccard to the seed >= 0.85 and to every other member
of its cluster >= 0.80 (mutations are retried until both hold), so each planted cluster is a
clique at tunegate's threshold and any correct clustering must put it in one cluster.

Only the standard library is used; 1,000,000 records take about 20-30 s on one core.
"""

import argparse
import array
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textnorm  # noqa: E402

FUNCTION_WORDS = (
    "the of and to a in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their can has more will if would "
    "no so what up about out into than them may its only other new some could these two time "
    "very when who first most also after should over such where through between because each "
    "how many then those under while both any must well made make like use used just our"
).split()

FAMILIES = [
    # (instruction opener, output opener or None)
    ("Summarize the following text about", "The text explains that"),
    ("Translate this sentence into", None),
    ("Write a short story about", "Once upon a time"),
    ("Explain in simple terms why", "In simple terms,"),
    ("Classify the sentiment of the review about", "The sentiment is"),
    ("Give three tips for", "Here are three tips:"),
    ("Rewrite the paragraph to sound more", None),
    ("What is the difference between", "The main difference is that"),
    ("Generate a list of ideas for", "Here is a list:"),
    ("Describe how to", "To do this, first"),
    ("Answer the question about", None),
    ("Compose a polite email to", "Dear team,"),
    ("Suggest a title for an article about", "A good title would be"),
    ("Identify the main argument in", None),
]

SYLL_ONSET = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
              "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr", ""]
SYLL_VOWEL = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
SYLL_CODA = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng"]

TABLE_BITS = 16  # word indices are 16-bit slices of os-independent seeded random bytes


def build_vocab(rng, size):
    seen = set(FUNCTION_WORDS)
    vocab = list(FUNCTION_WORDS)
    while len(vocab) < size:
        n = rng.choice((1, 1, 2, 2, 2, 2, 3, 3))
        w = "".join(rng.choice(SYLL_ONSET) + rng.choice(SYLL_VOWEL) + rng.choice(SYLL_CODA)
                    for _ in range(n))
        if len(w) >= 2 and w not in seen:
            seen.add(w)
            vocab.append(w)
    return vocab


def build_table(rng, vocab, s=1.05, q=2.7):
    """A 65,536-slot table in which word r fills slots in proportion to 1/(r+q)^s (>= 1 slot)."""
    size = 1 << TABLE_BITS
    weights = [1.0 / (r + q) ** s for r in range(len(vocab))]
    total = sum(weights)
    slots = [max(1, int(w / total * size)) for w in weights]
    excess = sum(slots) - size
    r = 0
    while excess != 0:  # take (or give) slots at the top ranks until the table is full
        step = 1 if excess > 0 else -1
        if slots[r] > 1 or step < 0:
            slots[r] -= step
            excess -= step
        r = (r + 1) % 50
    table = []
    for w, k in zip(vocab, slots):
        table.extend([w] * k)
    for i in range(len(table)):
        x = rng.random()
        if x < 0.06:
            table[i] += ","
        elif x < 0.10:
            table[i] += "."
    rng.shuffle(table)
    return table


class WordStream:
    """Zipf-distributed words at C speed: random bytes viewed as uint16 indices into the table."""

    BLOCK = 1 << 22

    def __init__(self, rng, table):
        self.rng = rng
        self.get = table.__getitem__
        self.mv = array.array("H")
        self.pos = 0

    def take(self, k):
        if self.pos + k > len(self.mv):
            self.mv = array.array("H")
            self.mv.frombytes(self.rng.randbytes(2 * self.BLOCK))
            if sys.byteorder != "little":  # same words on every platform
                self.mv.byteswap()
            self.pos = 0
        s = self.mv[self.pos:self.pos + k]
        self.pos += k
        return " ".join(map(self.get, s))


def cap(s):
    return s[:1].upper() + s[1:]


def ordinary(rng, ws):
    fam_instr, fam_out = FAMILIES[rng.randrange(len(FAMILIES))]
    n_open = fam_instr.count(" ") + 1
    li = rng.randint(8, 20)
    instr = fam_instr + " " + ws.take(max(1, li - n_open)).rstrip(",.") + ("?" if rng.random() < 0.3 else ".")
    x = rng.random()
    inp = "" if x < 0.4 else cap(ws.take(rng.randint(5, 40))).rstrip(",") + "."
    lo = rng.randint(20, 80)
    if fam_out is not None and rng.random() < 0.6:
        k = fam_out.count(" ") + 1
        out = fam_out + " " + ws.take(max(1, lo - k))
    else:
        out = cap(ws.take(lo))
    out = out.rstrip(",.") + "."
    return {"instruction": instr, "input": inp, "output": out}


FIELDS = ("instruction", "input", "output")
PLAIN = '{"instruction": "%s", "input": "%s", "output": "%s"}'


def mutate(rng, ws, seed_rec, n_edits):
    fields = {f: seed_rec[f].split(" ") if seed_rec[f] else [] for f in FIELDS}
    edits = []
    for _ in range(n_edits):
        lens = [len(fields[f]) for f in FIELDS]
        f = rng.choices(FIELDS, weights=lens)[0]
        toks = fields[f]
        op = rng.choice(("replace", "replace", "insert", "delete"))
        i = rng.randrange(len(toks))
        if op == "replace":
            toks[i] = ws.take(1)
        elif op == "insert":
            toks.insert(i, ws.take(1))
        elif len(toks) > 1:
            del toks[i]
        else:
            toks[i] = ws.take(1)
        edits.append(op)
    rec = {f: " ".join(fields[f]) for f in FIELDS}
    return rec, edits


def surface_variant(rng, seed_rec):
    """A copy that differs only in case and whitespace (normalizes to the seed's text)."""
    kind = rng.choice(("upper", "lower", "title", "spaces", "tabs-newlines", "trailing"))
    rec = dict(seed_rec)
    if kind == "upper":
        rec["instruction"] = rec["instruction"].upper()
    elif kind == "lower":
        rec = {f: v.lower() for f, v in rec.items()}
    elif kind == "title":
        rec["output"] = rec["output"].title()
    elif kind == "spaces":
        rec["output"] = rec["output"].replace(" ", "  ")
    elif kind == "tabs-newlines":
        rec["instruction"] = rec["instruction"].replace(" ", "\t", 2)
        rec["output"] = rec["output"].replace(" ", "\n", 3)
    else:
        rec = {f: ("  " + v + " \n") if v else v for f, v in rec.items()}
    return rec, kind


def size_weights(lo=2, hi=20, a=1.3):
    sizes = list(range(lo, hi + 1))
    return sizes, [s ** -a for s in sizes]


def plant(rng, ws, n_records, dup_rate, log):
    target = max(2, round(n_records * dup_rate))
    sizes, weights = size_weights()
    cluster_sizes = []
    total = 0
    while total < target:
        s = rng.choices(sizes, weights=weights)[0]
        s = min(s, max(2, target - total)) if target - total >= 2 else 2
        cluster_sizes.append(s)
        total += s
    total = min(total, n_records)
    positions = rng.sample(range(n_records), total)
    planted = {}
    clusters = []
    retries = 0
    fallbacks = 0
    p = 0
    for s in cluster_sizes:
        if p + s > len(positions):
            break
        pos = positions[p:p + s]
        p += s
        while True:
            seed_rec = ordinary(rng, ws)
            seed_sh = textnorm.record_shingles(seed_rec)
            if len(seed_sh) >= 36:  # >= 40 tokens
                break
        members = [(pos[0], seed_rec, seed_sh, "seed", 1.0)]
        for q in pos[1:]:
            if rng.random() < 0.15:
                rec, kind = surface_variant(rng, seed_rec)
                sh = textnorm.record_shingles(rec)
                assert sh == seed_sh, (kind, rec, seed_rec)
                members.append((q, rec, sh, kind, 1.0))
                continue
            n_edits = rng.choice((1, 1, 2, 2, 3))
            for attempt in range(60):
                rec, edits = mutate(rng, ws, seed_rec, n_edits)
                sh = textnorm.record_shingles(rec)
                j = textnorm.jaccard(sh, seed_sh)
                if sh != seed_sh and j >= 0.85 and all(textnorm.jaccard(sh, m[2]) >= 0.80 for m in members[1:]):
                    members.append((q, rec, sh, "mutated:" + "+".join(edits), j))
                    break
                retries += 1
                if attempt % 10 == 9 and n_edits > 1:
                    n_edits -= 1
            else:
                fallbacks += 1
                rec, kind = surface_variant(rng, seed_rec)
                sh = textnorm.record_shingles(rec)
                members.append((q, rec, sh, kind, 1.0))
        min_pair = min((textnorm.jaccard(a[2], b[2]) for i, a in enumerate(members) for b in members[i + 1:]),
                       default=1.0)
        assert min_pair >= 0.8
        for q, rec, _, _, _ in members:
            planted[q] = rec
        order = sorted(range(len(members)), key=lambda i: members[i][0])
        clusters.append({
            "members": [members[i][0] for i in order],
            "seed": members[0][0],
            "variants": [members[i][3] for i in order],
            "jaccard_to_seed": [round(members[i][4], 4) for i in order],
            "min_pairwise_jaccard": round(min_pair, 4),
        })
    log(f"planted {len(clusters)} clusters, {sum(len(c['members']) for c in clusters)} records "
        f"({retries} mutation retries, {fallbacks} fallbacks to case/whitespace copies)")
    clusters.sort(key=lambda c: c["members"][0])
    return planted, clusters


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dup-rate", type=float, default=0.01, help="fraction of records in planted clusters")
    ap.add_argument("--vocab", type=int, default=12_000)
    ap.add_argument("--out", default="bench/out/dataset")
    args = ap.parse_args()

    def log(msg):
        print(f"gen: {msg}", file=sys.stderr, flush=True)

    t0 = time.time()
    rng = random.Random(args.seed)
    vocab = build_vocab(rng, args.vocab)
    table = build_table(rng, vocab)
    ws = WordStream(rng, table)
    planted, clusters = plant(rng, ws, args.records, args.dup_rate, log)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "synth.jsonl")
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        buf = []
        for i in range(args.records):
            rec = planted.get(i)
            if rec is None:
                # ordinary records are plain ASCII without quotes or backslashes: format directly
                rec = ordinary(rng, ws)
                buf.append(PLAIN % (rec["instruction"], rec["input"], rec["output"]))
            else:
                buf.append(dumps(rec))
            if len(buf) >= 20000:
                buf.append("")
                fh.write("\n".join(buf))
                buf = []
        if buf:
            buf.append("")
            fh.write("\n".join(buf))

    truth = {
        "generator": "bench/dataset/gen.py",
        "seed": args.seed,
        "records": args.records,
        "dup_rate": args.dup_rate,
        "shingle": "word 5-grams of normalize(instruction\\ninput\\noutput) (bench/dataset/textnorm.py)",
        "guarantee": "every copy has exact Jaccard >= 0.85 to its seed and >= 0.80 to every cluster member",
        "planted_records": sum(len(c["members"]) for c in clusters),
        "clusters": clusters,
    }
    with open(os.path.join(args.out, "truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
        fh.write("\n")
    log(f"wrote {args.records} records to {path} ({os.path.getsize(path) / 1e6:.1f} MB) "
        f"in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
