#!/usr/bin/env python3
"""Runs tunegate, picklescan, modelscan and ModelAudit over the 210 labelled corpus files
(`/work/shared/data/model-files`, `labels.tsv`) and prints caught / missed / false positives per
label as Markdown, then every file on which the tools disagree.

    python3 bench/model-scan/corpus.py --tunegate target/release/tunegate \
        --picklescan bench/.venv-model-peers/bin/picklescan \
        --modelscan bench/.venv-modelscan/bin/modelscan \
        --modelaudit bench/.venv-model-peers/bin/modelaudit [--corpus DIR] [--out DIR]

Each file is scanned on its own (one process per file and tool, 2 at a time, 300 s limit each),
except ModelAudit, which takes all 210 paths in one process (its start-up is ~3 s); its issues
are assigned to files by their `location` (the file path, optionally followed by `:member` or
` (pos N)`).

"Flagged" per tool -- what would stop a pipeline that gates on the tool's own verdict:
- tunegate `model scan FILE --no-digest --format json`: a finding at high or above (the model
  gate's default `--fail-on`; exit 1).
- picklescan `-p FILE`: at least one "dangerous import" (exit 1). Its "suspicious" globals do not
  fail a scan without `--strict`; they are counted separately.
- modelscan `scan -p FILE -r json`: at least one issue of any severity (exit 1).
- ModelAudit `scan PATHS --format json`: at least one issue at severity warning or critical
  (info/debug issues are notes).
Errors: a tool exit status other than 0/1 (for modelscan also 3, "nothing scanned", is counted as
not scanned), a timeout, or an unparseable report. An erroring file is not flagged, except that
picklescan's "dangerous import" lines count even when it then exits 2 on a parse error.

Rows: malicious files are caught (flagged) or missed; benign and benign-edge files that are
flagged are false positives; for the labels without a required verdict (edge, suspicious,
inert-suspicious, suspicious-metadata) the cell is the number flagged.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

TOOLS = ["tunegate", "picklescan", "modelscan", "ModelAudit"]


def run(cmd, timeout=300):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return "timeout", ""


def tunegate(binary, path, tmp):
    out = os.path.join(tmp, "tg-" + str(abs(hash(path))) + ".json")
    rc, text = run([binary, "model", "scan", path, "--no-digest", "--format", "json", "--quiet", "--output", out])
    if rc not in (0, 1):
        return {"flagged": False, "error": f"exit {rc}: {text.strip()[-200:]}", "why": ""}
    with open(out) as f:
        rep = json.load(f)
    os.unlink(out)
    high = [f for f in rep["findings"] if f["severity"] in ("high", "critical")]
    top = max(rep["findings"], key=lambda f: ["info", "low", "medium", "high", "critical"].index(f["severity"]), default=None)
    why = f"{top['id']} {top['severity']}: {top['message'][:90]}" if top else "no finding"
    return {"flagged": bool(high), "error": None, "why": why}


def picklescan(binary, path, tmp):
    rc, text = run([binary, "-p", path])
    dangerous = re.findall(r": dangerous import '([^']*)' FOUND", text)
    susp = re.search(r"Suspicious globals: (\d+)", text)
    scanned = re.search(r"Scanned files: (\d+)", text)
    err = None
    if rc not in (0, 1):
        err = f"exit {rc}: {text.strip().splitlines()[-1][:200] if text.strip() else ''}"
    why = ", ".join(d.replace(" ", ".") for d in dangerous[:3])
    if susp and int(susp.group(1)):
        why += f"{'; ' if why else ''}{susp.group(1)} suspicious"
    if scanned and scanned.group(1) == "0":
        why += "not scanned"
    # A parse error after a dangerous import still reports it (exit 2): that counts as flagged.
    return {"flagged": bool(dangerous), "error": err, "why": why or "clean",
            "suspicious": int(susp.group(1)) if susp else 0}


def modelscan(binary, path, tmp):
    out = os.path.join(tmp, "ms-" + str(abs(hash(path))) + ".json")
    if os.path.exists(out):
        os.unlink(out)
    rc, text = run([binary, "scan", "-p", path, "-r", "json", "-o", out])
    try:
        with open(out) as f:
            rep = json.load(f)
        os.unlink(out)
    except (OSError, ValueError):
        rep = None
    if rc == 3 or (rep and not rep.get("summary", {}).get("scanned", {}).get("total_scanned") and not rep.get("issues")):
        return {"flagged": False, "error": None, "why": "not scanned (skipped)"}
    if rc not in (0, 1) or rep is None:
        errs = rep.get("errors", []) if rep else []
        msg = errs[0].get("description", "") if errs else (text.strip().splitlines() or [""])[-1]
        return {"flagged": False, "error": f"exit {rc}: {msg[:200]}", "why": ""}
    issues = rep.get("issues", [])
    why = ", ".join(f"{i.get('module')}.{i.get('operator')} {i.get('severity')}" for i in issues[:3]) or "clean"
    return {"flagged": bool(issues), "error": None, "why": why}


def modelaudit(binary, paths, outdir):
    """One process for all paths (its JSON report kept as `modelaudit.json`); returns
    ({path: result}, exit status, issues that name no corpus file)."""
    out = os.path.join(outdir, "modelaudit.json")
    rc, text = run([binary, "scan", *paths, "--format", "json", "--output", out], timeout=3600)
    res = {p: {"flagged": False, "error": None, "why": "clean", "issues": []} for p in paths}
    try:
        with open(out) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        for p in paths:
            res[p]["error"] = f"exit {rc}: no report"
        return res, rc, 0
    by_len = sorted(paths, key=len, reverse=True)
    unassigned = 0
    for i in rep.get("issues", []):
        loc = i.get("location") or ""
        owner = next((p for p in by_len if loc == p or loc.startswith(p + ":") or loc.startswith(p + " ")), None)
        if owner is None:
            unassigned += 1
            print(f"ModelAudit issue naming no corpus file: {i.get('severity')} {loc!r}: {i.get('message', '')[:120]}", file=sys.stderr)
            continue
        res[owner]["issues"].append(i)
    for p, r in res.items():
        bad = [i for i in r["issues"] if i.get("severity") in ("warning", "critical")]
        r["flagged"] = bool(bad)
        if bad:
            r["why"] = "; ".join(f"{i['severity']}: {i['message'][:70]}" for i in bad[:2])
        elif r["issues"]:
            r["why"] = f"{len(r['issues'])} info/debug"
        del r["issues"]
    return res, rc, unassigned


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/work/shared/data/model-files")
    ap.add_argument("--tunegate", default="target/release/tunegate")
    ap.add_argument("--picklescan", default="bench/.venv-model-peers/bin/picklescan")
    ap.add_argument("--modelscan", default="bench/.venv-modelscan/bin/modelscan")
    ap.add_argument("--modelaudit", default="bench/.venv-model-peers/bin/modelaudit")
    ap.add_argument("--out", default="bench/out/model-scan/corpus")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault("PROMPTFOO_DISABLE_TELEMETRY", "1")
    os.makedirs(a.out, exist_ok=True)

    rows = []
    with open(os.path.join(a.corpus, "labels.tsv")) as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 2:
                rows.append((cols[0], cols[1], cols[2] if len(cols) > 2 else ""))
    paths = [os.path.abspath(os.path.join(a.corpus, r[0])) for r in rows]

    results = {t: {} for t in TOOLS}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn, binary in (("tunegate", tunegate, a.tunegate), ("picklescan", picklescan, a.picklescan),
                                 ("modelscan", modelscan, a.modelscan)):
            print(f"== {name} over {len(paths)} files", file=sys.stderr)
            with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
                for p, r in zip(paths, ex.map(lambda p: fn(binary, p, tmp), paths)):
                    results[name][p] = r
        print(f"== ModelAudit over {len(paths)} files (one process)", file=sys.stderr)
        results["ModelAudit"], ma_rc, unassigned = modelaudit(a.modelaudit, paths, a.out)

    with open(os.path.join(a.out, "per-file.json"), "w") as f:
        json.dump([{"path": r[0], "label": r[1], **{t: results[t][p] for t in TOOLS}} for r, p in zip(rows, paths)], f, indent=1)

    labels = collections.Counter(r[1] for r in rows)
    order = ["malicious", "benign", "benign-edge", "edge", "suspicious", "inert-suspicious", "suspicious-metadata"]
    order += sorted(set(labels) - set(order))
    print("| label | files | " + " | ".join(TOOLS) + " |")
    print("|---|---:|" + "---:|" * len(TOOLS))
    for label in order:
        if label not in labels:
            continue
        cells = []
        for t in TOOLS:
            flagged = sum(1 for r, p in zip(rows, paths) if r[1] == label and results[t][p]["flagged"])
            errors = sum(1 for r, p in zip(rows, paths) if r[1] == label and results[t][p]["error"])
            if label == "malicious":
                cell = f"{flagged} caught / {labels[label] - flagged} missed"
            elif label.startswith("benign"):
                cell = f"{flagged} FP"
            else:
                cell = f"{flagged} flagged"
            if errors:
                cell += f" ({errors} err)"
            cells.append(cell)
        print(f"| {label} | {labels[label]} | " + " | ".join(cells) + " |")
    print()
    notes = []
    for t in TOOLS:
        err = sum(1 for p in paths if results[t][p]["error"])
        skipped = sum(1 for p in paths if "not scanned" in results[t][p]["why"])
        notes.append(f"{t}: {err} error(s), {skipped} not scanned")
    sus = sum(1 for r, p in zip(rows, paths) if r[1] == "malicious" and not results["picklescan"][p]["flagged"]
              and results["picklescan"][p].get("suspicious"))
    print("Errors (not flagged unless the tool still reported a dangerous import): " + "; ".join(notes) + ". "
          f"picklescan rated {sus} of its missed malicious files 'suspicious' (exit 0 without --strict). "
          f"ModelAudit exit {ma_rc}; issues it reported that name no corpus file: {unassigned}.")
    print()
    print("Per-file disagreements (✓ flagged, · not flagged, E error; tunegate's top finding, then each peer's reason):")
    print()
    print("| file | label | tg | ps | ms | MA | notes |")
    print("|---|---|:-:|:-:|:-:|:-:|---|")
    n = 0
    for r, p in zip(rows, paths):
        marks = []
        for t in TOOLS:
            x = results[t][p]
            marks.append("E" if x["error"] else ("✓" if x["flagged"] else "·"))
        if len(set(marks)) == 1:
            continue
        n += 1
        why = f"tg: {results['tunegate'][p]['why']}"
        for t, short in (("picklescan", "ps"), ("modelscan", "ms"), ("ModelAudit", "MA")):
            x = results[t][p]
            why += f"; {short}: {x['error'] or x['why']}"
        why = why.replace("|", "\\|").replace("\n", " ")
        print(f"| {r[0]} | {r[1]} | " + " | ".join(marks) + f" | {why[:300]} |")
    print()
    print(f"{n} of {len(rows)} files with disagreements.")


if __name__ == "__main__":
    main()
