#!/usr/bin/env bash
# Model-scan benchmark: tunegate `model scan` vs picklescan and modelscan, same inputs, one run:
#   (a) a 1 GiB legacy (non-zip) pickle of 1 MiB byte payloads with a call planted after them,
#   (b) a 2 GiB PyTorch zip checkpoint (benign),
#   (c) a Hugging Face-style folder of 50 mixed files with two planted pickles.
#
#   bench/model-scan/run.sh                          # the headline run (3 repetitions, medians)
#   LEGACY_MB=16 ZIP_MB=64 OUT=/tmp/ms bench/model-scan/run.sh   # smoke run
#   bench/model-scan/run.sh corpus                   # the 210-file corpus table (corpus.py), all four tools
#
# Environment knobs:
#   LEGACY_MB=1024  ZIP_MB=2048   input sizes          OUT=bench/out/model-scan   outputs
#   REPEAT=3        runs per (input, tool), interleaved; the table shows medians
#   SKIP_BUILD=1    use the existing target/release/tunegate
#   CORES=2         every tool is pinned to this many cores with taskset when nproc is larger
#   APPEND_RESULTS=1  append the summary to bench/RESULTS.md
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE=bench/model-scan
OUT="${OUT:-bench/out/model-scan}"
LEGACY_MB="${LEGACY_MB:-1024}"
ZIP_MB="${ZIP_MB:-2048}"
REPEAT="${REPEAT:-3}"
CORES="${CORES:-2}"
BIN=target/release/tunegate
# picklescan and ModelAudit share one venv; modelscan gets its own because ModelAudit 0.2.54
# needs numpy >= 2.4.3 on Python 3.11 while modelscan 0.8.8's .npy path calls
# numpy.lib.format._check_version, which numpy 2.x no longer has (every .npy file then ends
# as a modelscan error).
PEERS=bench/.venv-model-peers
MSCAN=bench/.venv-modelscan
PICKLESCAN_VERSION=1.0.5
MODELAUDIT_VERSION=0.2.54
MODELSCAN_VERSION=0.8.8
MODELSCAN_NUMPY=1.26.4
export PROMPTFOO_DISABLE_TELEMETRY=1 # ModelAudit: no telemetry
mkdir -p "$OUT"

say() { printf '== %s\n' "$*" >&2; }

venv() { # venv DIR CHECK-PYTHON PIP-ARGS...
    local dir=$1 check=$2
    shift 2
    [ -x "$dir/bin/python" ] || { say "creating $dir"; python3 -m venv "$dir"; }
    echo '*' > "$dir/.gitignore"   # keep the venv out of git whatever the top-level .gitignore says
    if ! "$dir/bin/python" -c "$check" 2>/dev/null; then
        say "pip install $*"
        "$dir/bin/pip" install -q "$@"
    fi
}

# --- tools -------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    say "installing GNU time"
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
if [ -z "${SKIP_BUILD:-}" ]; then
    say "cargo build --release -p tunegate"
    cargo build --release -p tunegate
fi
venv "$PEERS" "import importlib.metadata as m, sys; sys.exit(m.version('picklescan') != '$PICKLESCAN_VERSION' or m.version('modelaudit') != '$MODELAUDIT_VERSION')" \
    "picklescan==$PICKLESCAN_VERSION" "modelaudit==$MODELAUDIT_VERSION"
venv "$MSCAN" "import importlib.metadata as m, sys; sys.exit(m.version('modelscan') != '$MODELSCAN_VERSION' or m.version('numpy') != '$MODELSCAN_NUMPY')" \
    "modelscan==$MODELSCAN_VERSION" "numpy==$MODELSCAN_NUMPY"

PIN=()
if [ "$(nproc)" -gt "$CORES" ] && command -v taskset >/dev/null; then
    PIN=(taskset -c "0-$((CORES - 1))")
fi

# --- machine facts -----------------------------------------------------------------------
facts() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
    echo "nproc: $(nproc)${PIN[*]:+ (tools pinned: ${PIN[*]})}"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "tunegate: $("$BIN" --version 2>/dev/null || echo unknown)"
    echo "python: $(python3 --version 2>&1)"
    echo "peers: $("$PEERS/bin/pip" freeze 2>/dev/null | grep -Ei '^(picklescan|modelaudit|modelaudit-picklescan|numpy)==' | tr '\n' ' ')| $("$MSCAN/bin/pip" freeze 2>/dev/null | grep -Ei '^(modelscan|numpy)==' | tr '\n' ' ')"
}

if [ "${1:-}" = corpus ]; then
    FACTS="$OUT/corpus-machine.txt"
    facts > "$FACTS"
    cat "$FACTS" >&2
    SUMMARY="$OUT/corpus-summary.md"
    python3 "$HERE/corpus.py" --tunegate "$BIN" --picklescan "$PEERS/bin/picklescan" \
        --modelscan "$MSCAN/bin/modelscan" --modelaudit "$PEERS/bin/modelaudit" \
        --out "$OUT/corpus" > "$SUMMARY"
    cat "$SUMMARY"
    exit 0
fi

# --- data --------------------------------------------------------------------------------
say "inputs (LEGACY_MB=$LEGACY_MB, ZIP_MB=$ZIP_MB) in $OUT"
python3 "$HERE/gen.py" --out "$OUT" --legacy-mb "$LEGACY_MB" --zip-mb "$ZIP_MB"

FACTS="$OUT/machine.txt"
facts > "$FACTS"
cat "$FACTS" >&2

# --- runs and table ----------------------------------------------------------------------
SUMMARY="$OUT/summary.md"
set +e
python3 "$HERE/harness.py" --out "$OUT" --tunegate "$BIN" --picklescan "$PEERS/bin/picklescan" \
    --modelscan "$MSCAN/bin/modelscan" --repeat "$REPEAT" ${PIN[*]:+--pin "${PIN[*]}"} \
    --json-out "$OUT/summary.json" > "$OUT/table.md"
rc=$?
set -e
{
    echo "### Model scan, (a) ${LEGACY_MB} MiB legacy pickle, (b) ${ZIP_MB} MiB PyTorch zip, (c) 50-file folder (bench/model-scan/run.sh)"
    echo
    echo '```'
    cat "$FACTS"
    echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo '```'
    echo
    cat "$OUT/table.md"
    echo
    echo "Each cell: $REPEAT runs per (input, tool), interleaved, page cache warmed before every run; wall"
    echo "time around one process, peak RSS from GNU time's %M. Last column: the tool's median ÷ tunegate --no-digest's median (tunegate's speed-up over that tool)."
} > "$SUMMARY"
cat "$SUMMARY"

if [ -n "${APPEND_RESULTS:-}" ]; then
    { echo; cat "$SUMMARY"; } >> bench/RESULTS.md
    say "appended to bench/RESULTS.md"
fi
exit "$rc"
