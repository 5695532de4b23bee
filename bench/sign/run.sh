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

# time_median CMD...: runs CMD RUNS times (after one warm-up run); prints "WALL CPU", the median
# wall seconds (date, ns) and the median user+system CPU seconds (GNU time, 10 ms steps) (CPU time stays meaningful when other
# processes compete for the cores; wall time does not).
time_median() {
    "${PIN[@]}" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@"; exit 1; }
    local walls=() cpus=() tf
    tf=$(mktemp)
    for _ in $(seq "$RUNS"); do
        local a b
        a=$(date +%s.%N)
        /usr/bin/time -f '%U %S' -o "$tf" "${PIN[@]}" "$@" >/dev/null 2>&1
        b=$(date +%s.%N)
        read -r u s < "$tf"
        walls+=("$(echo "$b - $a" | bc -l)")
        cpus+=("$(echo "$u + $s" | bc -l)")
    done
    rm -f "$tf"
    med() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
    echo "$(printf '%s\n' "${walls[@]}" | med) $(printf '%s\n' "${cpus[@]}" | med)"
}

declare -A T
for target in folder adapter; do
    say "$target: tunegate sign"
    read -r T[tg_$target] T[tgc_$target] < <(time_median "$BIN" sign "$OUT/$target" --key "$KEY.pem" -o "$OUT/$target.tunegate.sig" -q)
    say "$target: model_signing sign key"
    read -r T[ms_$target] T[msc_$target] < <(time_median "$VENV/bin/model_signing" sign key --private_key "$KEY.pem" --signature "$OUT/$target.model_signing.sig" "$OUT/$target")
    # Cross-check: each tool verifies the other's signature of this input.
    "$BIN" verify "$OUT/$target" --key "$KEY.pub" --signature "$OUT/$target.model_signing.sig" -q >&2
    "$VENV/bin/model_signing" verify key --public_key "$KEY.pub" --signature "$OUT/$target.tunegate.sig" "$OUT/$target" >&2
done

ratio() { if [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then echo "$(echo "scale=1; $1 / $2" | bc -l)x"; else echo "n/a (below timer resolution)"; fi; }
SUMMARY="$OUT/summary.md"
{
    echo "### Signing, $(date -u '+%Y-%m-%d %H:%M UTC') at $(git rev-parse --short HEAD)"
    echo
    echo "Command: \`bench/sign/run.sh\` (RUNS=$RUNS, median after one warm-up; ${PIN[*]:-no pinning})."
    echo "Machine: $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| input | tunegate wall s | model_signing 1.1.1 wall s | wall speed-up | tunegate CPU s | model_signing CPU s | CPU ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    echo "| 2 GB folder, 4 shards (files method) | ${T[tg_folder]} | ${T[ms_folder]} | $(ratio "${T[ms_folder]}" "${T[tg_folder]}") | ${T[tgc_folder]} | ${T[msc_folder]} | $(ratio "${T[msc_folder]}" "${T[tgc_folder]}") |"
    echo "| 100 KB adapter | ${T[tg_adapter]} | ${T[ms_adapter]} | $(ratio "${T[ms_adapter]}" "${T[tg_adapter]}") | ${T[tgc_adapter]} | ${T[msc_adapter]} | $(ratio "${T[msc_adapter]}" "${T[tgc_adapter]}") |"
} > "$SUMMARY"
cat "$SUMMARY"
if [ -n "${APPEND_RESULTS:-}" ]; then
    { echo; cat "$SUMMARY"; } >> bench/RESULTS.md
fi
