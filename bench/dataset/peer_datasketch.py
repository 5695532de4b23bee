#!/usr/bin/env python3
"""Near-duplicate peer: datasketch MinHash + MinHashLSH with tunegate's shingles and banding.

    bench/.venv-peers/bin/python bench/dataset/peer_datasketch.py synth.jsonl --output ds.json [--limit N]

Same normalizer, tokenizer and word 5-gram shingles as tunegate (textnorm.py), over the
whole record (instruction + input + output). MinHash(num_perm=128) per record through
`MinHash.generator` (the documented bulk path: one initialised MinHash copied per record,
`update_batch` over the record's shingles; default hash sha1_hash32, or `--hashfunc
builtin`, Python's own bytes hash truncated to 32 bits, as the fastest custom hash the
stdlib offers), `MinHashLSH(num_perm=128, params=(16, 8))`, inserted through
`insertion_session` with `check_duplication=False`, then every record queried.

Candidate pairs (i < j) are written raw and after exact-Jaccard verification (>= the
threshold, shingle sets recomputed for the candidate records only, as tunegate verifies),
with union-find clusters of both. Records with no shingle are skipped. `--limit N` reads
only the first N records (a prefix subsample for a slow peer).
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textnorm  # noqa: E402

import datasketch  # noqa: E402
from datasketch import MinHash, MinHashLSH  # noqa: E402


def builtin_hash32(b):
    return hash(b) & 0xFFFFFFFF


def read_records(path, limit):
    with open(path, "rb") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            yield i, json.loads(line)


def clusters_of(n_hint, pairs):
    parent = {}

    def find(x):
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    groups = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    for r in list(groups):
        if r not in groups[r]:
            groups[r].append(r)
    return sorted(sorted(g) for g in groups.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("--output", required=True)
    ap.add_argument("--limit", type=int, default=None, help="only the first N records")
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--bands", type=int, default=16)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=0.8, help="exact-Jaccard verification threshold")
    ap.add_argument("--hashfunc", choices=("sha1", "builtin"), default="sha1")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    assert args.bands * args.rows == args.num_perm

    def log(msg):
        print(f"peer_datasketch: {msg}", file=sys.stderr, flush=True)

    timings = {}
    t_start = time.perf_counter()

    # 1. read + normalize + shingle, MinHash per record (streamed through MinHash.generator)
    keys = []
    skipped = 0

    def shingle_batches():
        nonlocal skipped
        for i, rec in read_records(args.input, args.limit):
            sh = textnorm.record_shingles(rec)
            if not sh:
                skipped += 1
                continue
            keys.append(i)
            yield list(map(str.encode, sh))

    kwargs = {"num_perm": args.num_perm, "seed": args.seed}
    if args.hashfunc == "builtin":
        kwargs["hashfunc"] = builtin_hash32
    minhashes = list(MinHash.generator(shingle_batches(), **kwargs))
    n = len(keys) + skipped
    timings["read_shingle_minhash_s"] = time.perf_counter() - t_start
    log(f"{n} records, {len(minhashes)} MinHashes in {timings['read_shingle_minhash_s']:.1f} s")

    # 2. index
    t = time.perf_counter()
    lsh = MinHashLSH(num_perm=args.num_perm, params=(args.bands, args.rows))
    with lsh.insertion_session() as session:
        for k, m in zip(keys, minhashes):
            session.insert(k, m, check_duplication=False)
    timings["lsh_insert_s"] = time.perf_counter() - t

    # 3. query every record
    t = time.perf_counter()
    raw = set()
    for k, m in zip(keys, minhashes):
        for o in lsh.query(m):
            if o != k:
                raw.add((k, o) if k < o else (o, k))
    timings["lsh_query_s"] = time.perf_counter() - t
    log(f"{len(raw)} raw candidate pairs; insert {timings['lsh_insert_s']:.1f} s, query {timings['lsh_query_s']:.1f} s")

    # 4. verify candidates by exact Jaccard on recomputed shingle sets
    t = time.perf_counter()
    need = {x for p in raw for x in p}
    sets = {}
    for i, rec in read_records(args.input, args.limit):
        if i in need:
            sets[i] = textnorm.record_shingles(rec)
    verified = []
    jac = {}
    for a, b in sorted(raw):
        j = textnorm.jaccard(sets[a], sets[b])
        jac[(a, b)] = j
        if j >= args.threshold:
            verified.append((a, b))
    timings["verify_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log(f"{len(verified)} verified pairs (J >= {args.threshold}); total {timings['total_s']:.1f} s, peak RSS {peak_mb:.0f} MB")

    out = {
        "tool": "datasketch",
        "version": datasketch.__version__ if hasattr(datasketch, "__version__") else None,
        "python": sys.version.split()[0],
        "input": args.input,
        "records": n,
        "limit": args.limit,
        "skipped_empty": skipped,
        "params": {"num_perm": args.num_perm, "bands": args.bands, "rows": args.rows, "shingle": textnorm.SHINGLE,
                   "threshold": args.threshold, "hashfunc": args.hashfunc, "seed": args.seed},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "peak_rss_mb": round(peak_mb, 1),
        "raw_pairs": [[a, b, round(jac[(a, b)], 4)] for a, b in sorted(raw)],
        "verified_pairs": [[a, b] for a, b in verified],
        "raw_clusters": clusters_of(n, sorted(raw)),
        "verified_clusters": clusters_of(n, verified),
    }
    with open(args.output, "w") as fh:
        json.dump(out, fh)
        fh.write("\n")


if __name__ == "__main__":
    main()
