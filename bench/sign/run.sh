#!/usr/bin/env bash
# Signing benchmark: `tunegate sign` vs `model_signing sign key` (OpenSSF, pinned) on the same
# inputs in one run, same P-256 key, warm page cache, median of RUNS runs each.
#
#   bench/sign/run.sh                 # 2 GB 4-shard folder + 100 KB adapter
#   SHARD_MB=50 bench/sign/run.sh     # smoke run (200 MB folder)
#
# Knobs: OUT=bench/out/sign  RUNS=5  SKIP_BUILD=1 (use target/release/tunegate)
#        CORES=2 (both tools pinned to this many cores with taskset when nproc is larger)
#        APPEND_RESULTS=1 (append the summary to bench/RESULTS.md)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-bench/out/sign}"
RUNS="${RUNS:-5}"
CORES="${CORES:-2}"
VENV=bench/out/.venv-sign
BIN=target/release/tunegate
say() { printf '== %s\n' "$*" >&2; }

if [ -z "${SKIP_BUILD:-}" ]; then
    say "cargo build --release -p tunegate"
    cargo build --release -q -p tunegate
fi
if [ ! -x "$VENV/bin/model_signing" ]; then
    say "venv with model-signing 1.1.1"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q model-signing==1.1.1 pyopenssl==26.4.0
fi
PIN=()
if [ "$(nproc)" -gt "$CORES" ] && command -v taskset >/dev/null; then
    PIN=(taskset -c "0-$((CORES - 1))")
fi

OUT="$OUT" bash bench/sign/gen.sh
KEY="$OUT/key"
[ -f "$KEY.pem" ] || "$BIN" keygen -o "$KEY" 2>/dev/null

now() { date +%s.%N; }
# time_median LABEL CMD...: runs CMD RUNS times (after one warm-up run), prints the median seconds.
time_median() {
    "${PIN[@]}" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@"; exit 1; }
    local ts=()
    for _ in $(seq "$RUNS"); do
        local a b
        a=$(now)
        "${PIN[@]}" "$@" >/dev/null 2>&1
        b=$(now)
        ts+=("$(echo "$b - $a" | bc -l)")
    done
    printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}

declare -A T
for target in folder adapter; do
    say "$target: tunegate sign"
    T[tg_$target]=$(time_median "$BIN" sign "$OUT/$target" --key "$KEY.pem" -o "$OUT/$target.tunegate.sig" -q)
    say "$target: model_signing sign key"
    T[ms_$target]=$(time_median "$VENV/bin/model_signing" sign key --private_key "$KEY.pem" --signature "$OUT/$target.model_signing.sig" "$OUT/$target")
    # Cross-check: each tool verifies the other's signature of this input.
    "$BIN" verify "$OUT/$target" --key "$KEY.pub" --signature "$OUT/$target.model_signing.sig" -q >&2
    "$VENV/bin/model_signing" verify key --public_key "$KEY.pub" --signature "$OUT/$target.tunegate.sig" "$OUT/$target" >&2
done

ratio() { echo "scale=1; $1 / $2" | bc -l; }
SUMMARY="$OUT/summary.md"
{
    echo "### Signing, $(date -u '+%Y-%m-%d %H:%M UTC') at $(git rev-parse --short HEAD)"
    echo
    echo "Command: \`bench/sign/run.sh\` (RUNS=$RUNS, median after one warm-up; ${PIN[*]:-no pinning})."
    echo "Machine: $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| input | tunegate s | model_signing 1.1.1 s | speed-up |"
    echo "|---|---:|---:|---:|"
    echo "| 2 GB folder, 4 shards (files method) | ${T[tg_folder]} | ${T[ms_folder]} | $(ratio "${T[ms_folder]}" "${T[tg_folder]}")x |"
    echo "| 100 KB adapter | ${T[tg_adapter]} | ${T[ms_adapter]} | $(ratio "${T[ms_adapter]}" "${T[tg_adapter]}")x |"
} > "$SUMMARY"
cat "$SUMMARY"
if [ -n "${APPEND_RESULTS:-}" ]; then
    { echo; cat "$SUMMARY"; } >> bench/RESULTS.md
fi
