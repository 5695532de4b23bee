#!/usr/bin/env bash
# Near-duplicate benchmark: tunegate's full dataset scan vs a datasketch MinHashLSH script on
# one generated 1,000,000-record instruction dataset with planted near-duplicate clusters.
#
#   bench/dataset/run.sh                      # N=1,000,000 (the headline run)
#   N=20000 bench/dataset/run.sh              # smoke run
#   PEER_LIMIT=200000 bench/dataset/run.sh    # datasketch on the first 200k records only
#
# Environment knobs:
#   N=1000000          records to generate           SEED=7        generator seed
#   OUT=bench/out/dataset                            output folder (data, reports, summary.md)
#   PEER_LIMIT=        datasketch on a prefix subsample of this many records (default: all)
#   PEER_HASH=builtin  datasketch hashfunc: builtin (Python's hash, fastest) or sha1 (its default)
#   SKIP_BUILD=1       use the existing target/release/tunegate
#   SKIP_TUNEGATE=1 / SKIP_PEER=1                     run one side only
#   CORES=2            tunegate is pinned to this many cores with taskset when nproc is larger
#   APPEND_RESULTS=1   append the summary to bench/RESULTS.md
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE=bench/dataset
N="${N:-1000000}"
SEED="${SEED:-7}"
OUT="${OUT:-bench/out/dataset}"
PEER_HASH="${PEER_HASH:-builtin}"
PEER_LIMIT="${PEER_LIMIT:-}"
CORES="${CORES:-2}"
VENV=bench/.venv-peers
DATASKETCH_VERSION=2.0.0
NUMPY_VERSION=2.4.6
BIN=target/release/tunegate
mkdir -p "$OUT"

say() { printf '== %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    say "installing GNU time"
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

if [ -z "${SKIP_TUNEGATE:-}" ] && [ -z "${SKIP_BUILD:-}" ]; then
    say "cargo build --release -p tunegate"
    cargo build --release -p tunegate
fi

if [ -z "${SKIP_PEER:-}" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    echo '*' > "$VENV/.gitignore"   # keep the venv out of git whatever the top-level .gitignore says
    if ! "$VENV/bin/python" -c "import datasketch, numpy, sys; sys.exit(datasketch.__version__ != '$DATASKETCH_VERSION')" 2>/dev/null; then
        say "pip install datasketch==$DATASKETCH_VERSION numpy==$NUMPY_VERSION"
        "$VENV/bin/pip" install -q "datasketch==$DATASKETCH_VERSION" "numpy==$NUMPY_VERSION"
    fi
fi

# --- data --------------------------------------------------------------------------------
if python3 -c "import json,sys; t=json.load(open('$OUT/truth.json')); sys.exit(not (t['records']==$N and t['seed']==$SEED))" 2>/dev/null \
   && [ -s "$OUT/synth.jsonl" ]; then
    say "reusing $OUT/synth.jsonl (N=$N, seed=$SEED)"
else
    say "generating N=$N records into $OUT"
    /usr/bin/time -f '%e %M' -o "$OUT/gen.time" python3 "$HERE/gen.py" --records "$N" --seed "$SEED" --out "$OUT"
    say "generated in $(cut -d' ' -f1 "$OUT/gen.time") s"
fi
DATA="$OUT/synth.jsonl"

# --- machine facts -----------------------------------------------------------------------
FACTS="$OUT/machine.txt"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rustc: $(rustc --version 2>/dev/null || echo n/a)"
    if [ -x "$BIN" ]; then echo "tunegate: $("$BIN" --version 2>/dev/null || echo unknown)"; fi
    echo "python: $(python3 --version 2>&1)"
    if [ -x "$VENV/bin/python" ]; then
        echo "peer venv: $("$VENV/bin/python" --version 2>&1), $("$VENV/bin/pip" freeze 2>/dev/null | grep -Ei '^(datasketch|numpy|scipy)==' | tr '\n' ' ')"
    fi
    echo "data: $DATA, $(wc -l < "$DATA") records, $(du -m "$DATA" | cut -f1) MB"
} > "$FACTS"
cat "$FACTS" >&2

PIN=()
if [ "$(nproc)" -gt "$CORES" ] && command -v taskset >/dev/null; then
    PIN=(taskset -c "0-$((CORES - 1))")
fi

# --- tunegate ----------------------------------------------------------------------------
TG_ARGS=()
if [ -z "${SKIP_TUNEGATE:-}" ]; then
    if [ ! -x "$BIN" ]; then
        say "ERROR: $BIN not built; skipping tunegate"
    elif ! "$BIN" dataset scan --help >/dev/null 2>&1; then
        say "ERROR: $BIN has no 'dataset scan' yet; skipping tunegate"
    else
        rm -f "$OUT/tunegate.json"
        say "tunegate dataset scan ${PIN[*]:+(pinned: ${PIN[*]})}"
        set +e
        "${PIN[@]}" /usr/bin/time -f '%e %M' -o "$OUT/tunegate.time" \
            "$BIN" dataset scan "$DATA" --format json --quiet --output "$OUT/tunegate.json" \
            2> "$OUT/tunegate.stderr"
        rc=$?
        set -e
        say "tunegate exit $rc (1 = gate failed on findings, expected here), $(cat "$OUT/tunegate.time")"
        if [ "$rc" -ge 2 ] || [ ! -s "$OUT/tunegate.json" ]; then
            say "ERROR: tunegate failed (exit $rc):"; tail -20 "$OUT/tunegate.stderr" >&2
        else
            TG_ARGS=(--tunegate "$OUT/tunegate.json" --tunegate-time "$OUT/tunegate.time")
        fi
    fi
fi

# --- datasketch --------------------------------------------------------------------------
DS_ARGS=()
if [ -z "${SKIP_PEER:-}" ]; then
    say "datasketch peer (hashfunc=$PEER_HASH${PEER_LIMIT:+, first $PEER_LIMIT records only})"
    PYTHONHASHSEED=0 /usr/bin/time -f '%e %M' -o "$OUT/datasketch.time" \
        "$VENV/bin/python" "$HERE/peer_datasketch.py" "$DATA" --output "$OUT/datasketch.json" \
        --hashfunc "$PEER_HASH" ${PEER_LIMIT:+--limit "$PEER_LIMIT"}
    say "datasketch $(cat "$OUT/datasketch.time")"
    DS_ARGS=(--datasketch "$OUT/datasketch.json" --datasketch-time "$OUT/datasketch.time")
fi

# --- score -------------------------------------------------------------------------------
SUMMARY="$OUT/summary.md"
{
    echo "### Near-duplicate scan, N=$N (bench/dataset/run.sh)"
    echo
    echo '```'
    cat "$FACTS"
    echo '```'
    echo
    python3 "$HERE/score.py" --truth "$OUT/truth.json" --data "$DATA" "${TG_ARGS[@]}" "${DS_ARGS[@]}" \
        --json-out "$OUT/summary.json"
    echo
    echo "Wall time and peak RSS from \`/usr/bin/time -f '%e %M'\` around each whole process (tunegate: the full"
    echo "\`dataset scan\`, all detectors; datasketch: read + normalize + shingle + MinHash + LSH insert + query +"
    echo "exact-Jaccard verification). Raw and verified datasketch rows share one process and so one time."
} > "$SUMMARY"
cat "$SUMMARY"

if [ -n "${APPEND_RESULTS:-}" ]; then
    [ -f bench/RESULTS.md ] || printf '# Benchmark results\n' > bench/RESULTS.md
    { echo; cat "$SUMMARY"; } >> bench/RESULTS.md
    say "appended to bench/RESULTS.md"
fi
