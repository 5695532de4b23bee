#!/usr/bin/env bash
# bench/monitor: proxy overhead (1/16/256 concurrent streams, direct vs proxied, one run) and
# detection throughput of the pattern engine vs LLM Guard's regex-based scanners (same corpus).
#   bench/monitor/run.sh            # RUNS=3 repeats of the overhead table; SECONDS_PER_CELL=3;
#                                   # then RUNS repeats paced at RATE=5000 req/s
# The last two columns are CPU µs per request of the stub and of the monitor (from /proc).
# LLM Guard peer: needs bench/.venv-llmguard (see bench/RESULTS.md for how it was made); skipped
# with a note when absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_CELL:-3}
mkdir -p bench/out
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p tunegate-monitor --example monitor_bench
BIN=target/release/examples/monitor_bench
echo "machine: $(nproc) cores, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in ${MODES:-audit stream}; do
  for i in $(seq 1 "$RUNS"); do
    echo "== mode $mode run $i (load $(cut -d' ' -f1 /proc/loadavg))"
    "$BIN" --seconds "$SECS" --mode "$mode" --corpus bench/out/monitor-corpus.jsonl
  done
done
# The target's operating point: paced at RATE requests/s (open loop while the proxy keeps up).
for mode in ${MODES:-audit stream}; do
  for i in $(seq 1 "$RUNS"); do
    echo "== mode $mode paced at ${RATE:-5000} req/s, run $i (load $(cut -d' ' -f1 /proc/loadavg))"
    "$BIN" --seconds "$SECS" --mode "$mode" --rate "${RATE:-5000}" --corpus bench/out/monitor-corpus.jsonl
  done
done
if [ -x bench/.venv-llmguard/bin/python ]; then
  echo "== LLM Guard 0.3.16 peer (same corpus)"
  bench/.venv-llmguard/bin/python bench/monitor/llmguard_peer.py bench/out/monitor-corpus.jsonl
else
  echo "== LLM Guard peer skipped: no bench/.venv-llmguard"
fi
