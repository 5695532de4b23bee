#!/usr/bin/env python3
"""Runs tunegate, picklescan and modelscan on the three generated inputs, times them, checks what
each reported, and prints a Markdown table with medians and tunegate's speed-up.

    python3 bench/model-scan/harness.py --out bench/out/model-scan --tunegate target/release/tunegate \
        --picklescan bench/.venv-model-peers/bin/picklescan --modelscan bench/.venv-modelscan/bin/modelscan \
        [--repeat 3] [--pin "taskset -c 0-1"] [--json-out summary.json]

Measurement: each run is one process under GNU time (`/usr/bin/time -f %M`: the tool's own peak
RSS in KB); wall time is `time.perf_counter()` around it, i.e. `/usr/bin/time -f %e` at
microsecond instead of 10 ms resolution. Before every run the input is read once to
/dev/null so every tool starts with the same warm page cache. Every (input, tool) pair runs
`--repeat` times, interleaved (a, b, c for each tool, then the next repetition); the table shows
the median, with min-max.

Tools and what counts as "reported":
- tunegate `model scan PATH --no-digest --format json` (scan only, like the peers) and
  `tunegate model scan PATH --format json` (default: also the sha256 subject of every file):
  a file is flagged when it has a finding at high or above; the report must list every file.
- picklescan `-p PATH`: a file is flagged when a `dangerous import` line names it (exit 1);
  "Scanned files: N" is the count it reports.
- modelscan `scan -p PATH -r json -o FILE`: a file is flagged when an issue's `source` names it
  (any severity); scanned files from `summary.scanned.scanned_files`, errors from `errors`.

Expected: (a) `posix.system` after the last payload of legacy.pkl is flagged; (b) checkpoint.pt
is not flagged; (c) exactly training_args.bin and rng_state_7.pth are flagged.
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

PLANTED_C = {"training_args.bin", "rng_state_7.pth"}


def warm(path):
    """Reads every file under `path` once so the page cache is warm for the next run."""
    paths = []
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            paths += [os.path.join(root, f) for f in files]
    else:
        paths = [path]
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass


def measure(cmd, stdout_path):
    """Wall seconds, peak RSS in KB and exit code of one run of `cmd`.

    Peak RSS comes from GNU time (`/usr/bin/time -f %M`), not from `os.wait4` here: a child
    forked from this Python process starts with the harness's own resident pages counted in its
    `ru_maxrss`, GNU time's child does not. Wall time is taken here around the whole `time`
    process (its fork and exec add well under a millisecond)."""
    rss_path = stdout_path + ".rss"
    with open(stdout_path, "wb") as out:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_path] + cmd, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
    with open(rss_path) as f:
        lines = [ln for ln in f.read().split("\n") if ln.strip()]
    # GNU time writes "Command exited with non-zero status N" before the format line.
    return wall, int(lines[-1]), p.returncode


def rel(name, root):
    """A reported file name relative to the scanned input (a folder), or its base name (a file).
    Tools print absolute paths (picklescan), paths as given (tunegate) or paths relative to the
    input with `:member` for zip members (modelscan)."""
    if not os.path.isdir(root):
        return os.path.basename(root)
    if os.path.isabs(name):
        return os.path.relpath(name, os.path.abspath(root))
    prefix = root.rstrip("/") + "/"
    if name.startswith(prefix):
        return name[len(prefix):]
    return name.split(":", 1)[0]


def parse_tunegate(report_path, root):
    with open(report_path) as f:
        rep = json.load(f)
    flagged = {}
    for fd in rep.get("findings", []):
        if fd.get("severity") in ("high", "critical"):
            loc = fd.get("location", {}).get("file", "")
            flagged.setdefault(rel(loc, root), []).append(f"{fd['id']} {fd.get('evidence', {}).get('module', '')}.{fd.get('evidence', {}).get('name', '')}".rstrip("."))
    return {"scanned": len(rep.get("subjects", [])), "flagged": flagged, "errors": 0, "verdict": rep.get("verdict")}


def parse_picklescan(text, root):
    flagged = {}
    for m in re.finditer(r"^(.*?): dangerous import '([^']*)' FOUND", text, re.M):
        flagged.setdefault(rel(m.group(1), root), []).append(m.group(2).replace(" ", "."))
    scanned = re.search(r"Scanned files: (\d+)", text)
    errors = len(re.findall(r"^ERROR", text, re.M))
    return {"scanned": int(scanned.group(1)) if scanned else None, "flagged": flagged, "errors": errors}


def parse_modelscan(json_path, root):
    try:
        with open(json_path) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return {"scanned": None, "flagged": {}, "errors": 1}
    flagged = {}
    for i in rep.get("issues", []):
        src = i.get("source", "")
        flagged.setdefault(rel(src, root), []).append(f"{i.get('module')}.{i.get('operator')} {i.get('severity')}")
    scanned = rep.get("summary", {}).get("scanned", {}).get("total_scanned")
    return {"scanned": scanned, "flagged": flagged, "errors": len(rep.get("errors", []))}


def verdict(key, res):
    """Whether a tool reported what the input holds, in words."""
    flagged = set(res["flagged"])
    if key == "a":
        ok = bool(flagged)
        return ok, "caught posix.system" if ok else "MISSED posix.system"
    if key == "b":
        ok = not flagged
        return ok, "clean" if ok else f"FLAGGED {sorted(flagged)}"
    names = {os.path.basename(f) for f in flagged}
    caught = PLANTED_C & names
    fps = sorted(f for f in flagged if os.path.basename(f) not in PLANTED_C)
    ok = caught == PLANTED_C and not fps
    text = f"caught {len(caught)}/2"
    missed = sorted(PLANTED_C - names)
    if missed:
        text += " (missed " + ", ".join(missed) + ")"
    if fps:
        text += f", {len(fps)} false positive(s): " + ", ".join(fps)
    return ok, text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/model-scan")
    ap.add_argument("--tunegate", default="target/release/tunegate")
    ap.add_argument("--picklescan", default="bench/.venv-model-peers/bin/picklescan")
    ap.add_argument("--modelscan", default="bench/.venv-modelscan/bin/modelscan")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pin", default="", help="command prefix for every tool, e.g. 'taskset -c 0-1'")
    ap.add_argument("--only", default="abc", help="inputs to run, e.g. 'ab'")
    ap.add_argument("--json-out")
    a = ap.parse_args()

    with open(os.path.join(a.out, "inputs.json")) as f:
        inputs = json.load(f)["inputs"]
    runs = os.path.join(a.out, "runs")
    os.makedirs(runs, exist_ok=True)
    pin = shlex.split(a.pin)

    def tools(key, path):
        rj = os.path.join(runs, f"{key}-tunegate.json")
        rj2 = os.path.join(runs, f"{key}-tunegate-digest.json")
        mj = os.path.join(runs, f"{key}-modelscan.json")
        return [
            ("tunegate --no-digest", [a.tunegate, "model", "scan", path, "--no-digest", "--format", "json", "--quiet", "--output", rj],
             lambda text: parse_tunegate(rj, path)),
            ("tunegate (sha256 subjects)", [a.tunegate, "model", "scan", path, "--format", "json", "--quiet", "--output", rj2],
             lambda text: parse_tunegate(rj2, path)),
            ("picklescan", [a.picklescan, "-p", path], lambda text: parse_picklescan(text, path)),
            ("modelscan", [a.modelscan, "scan", "-p", path, "-r", "json", "-o", mj], lambda text: parse_modelscan(mj, path)),
        ]

    results = {}
    for rep in range(a.repeat):
        for tool_i in range(4):
            for key in a.only:
                path = inputs[key]["path"]
                name, cmd, parse = tools(key, path)[tool_i]
                warm(path)
                log = os.path.join(runs, f"{key}-{tool_i}-{rep}.out")
                wall, rss, rc = measure(pin + cmd, log)
                with open(log, errors="replace") as f:
                    text = f.read()
                res = parse(text)
                r = results.setdefault((key, name), {"walls": [], "rss": [], "rc": set(), "res": res, "cmd": cmd})
                r["walls"].append(wall)
                r["rss"].append(rss)
                r["rc"].add(rc)
                print(f"== run {rep + 1}/{a.repeat} ({key}) {name}: {wall:.3f} s, {rss / 1024:.0f} MB, exit {rc}", file=sys.stderr)

    desc = {
        "a": f"(a) legacy pickle, {inputs['a']['bytes'] / 1e9:.2f} GB",
        "b": f"(b) PyTorch zip, {inputs['b']['bytes'] / 1e9:.2f} GB",
        "c": f"(c) HF folder, {inputs['c']['files']} files, {inputs['c']['bytes'] / 1e6:.0f} MB",
    }
    print("| input | tool | wall s, median (min–max) | peak RSS MB | exit | files scanned | reported | time ÷ tunegate --no-digest |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    summary = []
    all_ok = True
    for key in a.only:
        tg = statistics.median(results[(key, "tunegate --no-digest")]["walls"])
        for tool_i in range(4):
            name = tools(key, "")[tool_i][0]
            r = results[(key, name)]
            med = statistics.median(r["walls"])
            ok, text = verdict(key, r["res"])
            all_ok &= ok or not name.startswith("tunegate")
            speed = "—" if name == "tunegate --no-digest" else f"{med / tg:.1f}×"
            rss = max(r["rss"]) / 1024
            print(f"| {desc[key]} | {name} | {med:.3f} ({min(r['walls']):.3f}–{max(r['walls']):.3f}) | {rss:.0f} | "
                  f"{'/'.join(str(c) for c in sorted(r['rc']))} | {r['res']['scanned']} | {text}"
                  f"{' (' + str(r['res']['errors']) + ' errors)' if r['res']['errors'] else ''} | {speed} |")
            summary.append({"input": key, "tool": name, "walls": r["walls"], "median_s": med, "peak_rss_kb": max(r["rss"]),
                            "exit": sorted(r["rc"]), "scanned": r["res"]["scanned"], "flagged": r["res"]["flagged"],
                            "errors": r["res"]["errors"], "ok": ok, "reported": text, "cmd": r["cmd"]})
    if "a" in a.only:
        tg = next(s for s in summary if s["input"] == "a" and s["tool"] == "tunegate --no-digest")
        ps = next(s for s in summary if s["input"] == "a" and s["tool"] == "picklescan")
        ms = next(s for s in summary if s["input"] == "a" and s["tool"] == "modelscan")
        print()
        print(f"Target (a): ≥ 20× both peers and ≤ 64 MB: {ps['median_s'] / tg['median_s']:.0f}× picklescan, "
              f"{ms['median_s'] / tg['median_s']:.0f}× modelscan, {tg['peak_rss_kb'] / 1024:.0f} MB peak "
              f"→ {'met' if min(ps['median_s'], ms['median_s']) / tg['median_s'] >= 20 and tg['peak_rss_kb'] <= 65536 else 'NOT met'}.")
    if "b" in a.only:
        tg = next(s for s in summary if s["input"] == "b" and s["tool"] == "tunegate --no-digest")
        ps = next(s for s in summary if s["input"] == "b" and s["tool"] == "picklescan")
        print(f"Target (b): match picklescan ({ps['median_s']:.3f} s): tunegate {tg['median_s']:.3f} s "
              f"→ {'met' if tg['median_s'] <= ps['median_s'] else 'NOT met'}.")
    if not all_ok:
        print("\n**tunegate did not report what the inputs hold (see 'reported').**")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(summary, f, indent=2)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
