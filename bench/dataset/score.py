#!/usr/bin/env python3
"""Scores near-duplicate results against the planted clusters and prints a Markdown table.

    python3 bench/dataset/score.py --truth truth.json --data synth.jsonl \
        [--tunegate report.json --tunegate-time tg.time] \
        [--datasketch ds.json --datasketch-time ds.time] [--json-out summary.json]

Time files hold `/usr/bin/time -f '%e %M'` output: wall seconds and peak RSS in KB.

Reported clusters: union-find over the reported edges. tunegate: every finding whose check is
`dataset.near-duplicate` or `dataset.poison-cluster` links `location.record` to
`evidence.cluster` (its cluster's representative record), every `dataset.exact-duplicate`
links `location.record` to `evidence.representative.record`. datasketch: its candidate pairs,
raw (LSH only) and verified (exact Jaccard >= 0.8), scored as two rows.

- cluster recall: a planted cluster counts as recovered when all its members are in one
  reported cluster (extra members do not matter);
- pair recall: over all pairs inside planted clusters, the share that share a reported cluster;
- edge precision: over the reported edges (tunegate: record -> `evidence.matched.record` when
  the finding names one, else record -> representative; datasketch: candidate pairs), the share whose exact 5-gram Jaccard, recomputed here with textnorm.py,
  is >= 0.8 -- independent of what was planted;
- extra records: records in a reported cluster that belong to no planted cluster.

When a tool ran on a prefix of the file (datasketch `--limit`), it is scored on the planted
clusters restricted to that prefix (clusters with >= 2 members inside it).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textnorm  # noqa: E402

NEAR = {"dataset.near-duplicate", "dataset.poison-cluster"}
EXACT = {"dataset.exact-duplicate"}


class UF:
    def __init__(self):
        self.p = {}

    def find(self, x):
        p = self.p
        root = x
        while p.get(root, root) != root:
            root = p[root]
        while p.get(x, x) != root:
            p[x], x = root, p[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


def as_index(v):
    """A record index from an int, a numeric string, or a dict with `record`/`index`."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if isinstance(v, dict):
        for k in ("record", "index", "representative", "id"):
            if k in v:
                r = as_index(v[k])
                if r is not None:
                    return r
    return None


def tunegate_edges(report):
    findings = report.get("findings", []) if isinstance(report, dict) else []
    edges, links, counts, unparsed = [], [], {}, 0
    verified_by_match = set()
    for f in findings:
        check = f.get("check") or f.get("id")
        if check not in NEAR and check not in EXACT:
            continue
        counts[check] = counts.get(check, 0) + 1
        rec = as_index((f.get("location") or {}).get("record"))
        ev = f.get("evidence") or {}
        if check in NEAR:
            rep = as_index(ev.get("cluster"))
            if rep is None:
                rep = as_index(ev.get("representative"))
        else:
            rep = as_index(ev.get("representative"))
            if rep is None:
                rep = as_index(ev.get("cluster"))
        if rec is None or rep is None:
            unparsed += 1
            continue
        if rec != rep:
            edges.append((min(rec, rep), max(rec, rep)))
        # near-dups joined through a chain name their verified neighbour in `matched`
        mt = as_index(ev.get("matched"))
        if mt is not None and mt != rec:
            links.append((min(rec, mt), max(rec, mt)))
            verified_by_match.add((min(rec, rep), max(rec, rep)))
        # a finding may also list its cluster's members
        for key in ("members", "records"):
            for m in ev.get(key) or []:
                mi = as_index(m)
                if mi is not None and mi != rep:
                    edges.append((min(mi, rep), max(mi, rep)))
    # precision is judged on the edge tunegate verified: record -> matched when it names one,
    # else record -> representative; clusters use both.
    precision_edges = sorted((set(edges) - verified_by_match) | set(links))
    return sorted(set(edges) | set(links)), precision_edges, counts, unparsed


def read_time(path):
    if not path or not os.path.exists(path):
        return None, None
    toks = open(path).read().split()
    # /usr/bin/time may prefix "Command exited with non-zero status N"; the last two tokens are ours
    try:
        return float(toks[-2]), int(toks[-1]) / 1024.0
    except (ValueError, IndexError):
        return None, None


def load_sets(data, need):
    sets = {}
    if not need:
        return sets
    hi = max(need)
    with open(data, "rb") as fh:
        for i, line in enumerate(fh):
            if i > hi:
                break
            if i in need:
                sets[i] = textnorm.record_shingles(json.loads(line))
    return sets


def score(name, edges, pedges, truth_clusters, limit, sets, threshold):
    uf = UF()
    for a, b in edges:
        uf.union(a, b)
    planted = [[m for m in c["members"] if limit is None or m < limit] for c in truth_clusters]
    planted = [c for c in planted if len(c) >= 2]
    planted_members = {m for c in planted for m in c}
    rec_clusters = sum(1 for c in planted if len({uf.find(m) for m in c}) == 1)
    pairs = hit = 0
    for c in planted:
        for i, a in enumerate(c):
            ra = uf.find(a)
            for b in c[i + 1:]:
                pairs += 1
                hit += ra == uf.find(b)
    good = sum(1 for a, b in pedges if textnorm.jaccard(sets[a], sets[b]) >= threshold)
    clustered = set(uf.p) | {uf.find(x) for x in uf.p}
    return {
        "name": name,
        "planted_clusters": len(planted),
        "recovered_clusters": rec_clusters,
        "cluster_recall": rec_clusters / len(planted) if planted else None,
        "planted_pairs": pairs,
        "pair_recall": hit / pairs if pairs else None,
        "reported_edges": len(pedges),
        "edge_precision": good / len(pedges) if pedges else None,
        "clustered_records": len(clustered),
        "extra_records": len(clustered - planted_members),
    }


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--truth", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--tunegate")
    ap.add_argument("--tunegate-time")
    ap.add_argument("--datasketch")
    ap.add_argument("--datasketch-time")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--json-out")
    args = ap.parse_args()

    truth = json.load(open(args.truth))
    n_total = truth["records"]
    rows, notes = [], []
    edge_sets = []

    if args.tunegate:
        try:
            report = json.load(open(args.tunegate))
        except (OSError, ValueError) as e:
            report = None
            notes.append(f"tunegate report unreadable: {e}")
        if report is not None:
            edges, pedges, counts, unparsed = tunegate_edges(report)
            wall, rss = read_time(args.tunegate_time)
            edge_sets.append(("tunegate (verified)", edges, None, wall, rss, n_total, pedges))
            notes.append("tunegate findings: " + (", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none")
                         + (f"; {unparsed} findings without a record/representative index" if unparsed else ""))
    if args.datasketch:
        ds = json.load(open(args.datasketch))
        wall, rss = read_time(args.datasketch_time)
        limit = ds.get("limit")
        n = ds["records"]
        raw = [(a, b) for a, b, *_ in ds["raw_pairs"]]
        ver = [(a, b) for a, b in ds["verified_pairs"]]
        label = f"datasketch {ds.get('version') or ''} ({ds['params']['hashfunc']})".replace("  ", " ")
        edge_sets.append((label + " raw LSH", raw, limit, wall, rss, n, raw))
        edge_sets.append((label + " verified", ver, limit, wall, rss, n, ver))
        if limit is not None and n < n_total:
            notes.append(f"datasketch ran on a SUBSAMPLE: the first {n:,} of {n_total:,} records "
                         f"(--limit {limit}); its recall is over the planted clusters inside that prefix, "
                         "and throughput is compared in records/s")

    need = {x for es in edge_sets for p in es[6] for x in p}
    sets = load_sets(args.data, need)

    results = []
    for name, edges, limit, wall, rss, n, pedges in edge_sets:
        r = score(name, edges, pedges, truth["clusters"], limit, sets, args.threshold)
        r.update({"records": n, "wall_s": wall, "peak_rss_mb": rss,
                  "records_per_s": (n / wall) if wall else None})
        results.append(r)

    tg = next((r for r in results if r["name"].startswith("tunegate")), None)
    print(f"| tool | records | wall s | records/s | peak RSS MB | cluster recall | pair recall | "
          f"edge precision (J>={args.threshold}) | reported edges | extra records | tunegate speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = None
        if tg and r is not tg and tg["records_per_s"] and r["records_per_s"]:
            ratio = tg["records_per_s"] / r["records_per_s"]
        rows.append(r)
        print(f"| {r['name']} | {r['records']:,} | {fmt(r['wall_s'], '.1f')} | {fmt(r['records_per_s'], ',.0f')} | "
              f"{fmt(r['peak_rss_mb'], ',.0f')} | {fmt(r['cluster_recall'], '.4f')} "
              f"({r['recovered_clusters']}/{r['planted_clusters']}) | {fmt(r['pair_recall'], '.4f')} | "
              f"{fmt(r['edge_precision'], '.4f')} | {r['reported_edges']:,} | {r['extra_records']:,} | "
              f"{'—' if ratio is None else f'{ratio:.1f}×'} |")
    for n in notes:
        print(f"\nNote: {n}")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"results": results, "notes": notes}, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
