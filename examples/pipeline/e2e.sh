#!/usr/bin/env bash
# The README's end-to-end example, run for real in a scratch folder: lock -> scan dataset ->
# scan base -> `tunegate run` a small training command -> sign reports -> add to the registry ->
# staging -> production refused until the missing evidence is attached -> production.
# Usage: examples/pipeline/e2e.sh [TUNEGATE_BINARY]   (.ci/run calls it after the tests)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TG="${1:-$ROOT/target/debug/tunegate}"
TG="$(cd "$(dirname "$TG")" && pwd)/$(basename "$TG")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export USER="${USER:-ci}"
tg() { "$TG" "$@"; }
expect() { # expect CODE CMD...: run CMD, fail unless it exits CODE
    local want=$1; shift
    set +e; "$@" >"$WORK/out.txt" 2>&1; local got=$?; set -e
    if [ "$got" -ne "$want" ]; then
        echo "e2e: expected exit $want, got $got: $*"; cat "$WORK/out.txt"; exit 1
    fi
}

git init -q . && git config user.email ci@example.invalid && git config user.name ci
mkdir -p data base
head -50 "$ROOT/examples/quickstart/data/train.jsonl" > data/train.jsonl
echo '{"model_type":"bert","hidden_size":8}' > base/config.json
git add -A && git commit -qm "pipeline inputs"

tg keygen -o scanner >/dev/null 2>&1
tg keygen -o release >/dev/null 2>&1
tg dataset lock data/train.jsonl -q
expect 0 tg dataset scan data/train.jsonl --format json -o dataset.json --quiet
expect 0 tg model scan base/ --format json -o base.json --quiet
expect 0 tg run --key release.pem --lock tunegate.lock --base base --out-dir adapter -- \
    sh -c 'mkdir -p adapter && echo "{\"r\": 8, \"lora_alpha\": 16}" > adapter/adapter_config.json'
expect 0 tg attest verify adapter.provenance.json --key release.pub --artifact adapter \
    --lock tunegate.lock --base base
expect 0 tg model scan adapter/ --format json -o scan.json --quiet
for r in dataset base scan; do tg sign-report $r.json --key scanner.pem -o $r.sig.json >/dev/null 2>&1; done

cat > tunegate.toml <<'TOML'
[registry]
store = "tunegate-registry.db"
[registry.keys]
scanner = "scanner.pub"
release = "release.pub"
[registry.signers]
signature = ["release"]
provenance = ["release"]
model = ["scanner"]
dataset = ["scanner"]
base = ["scanner"]
[registry.stages.staging]
require = ["model"]
[registry.stages.production]
require = ["dataset", "base", "provenance", "signature", "model"]
max_age_days = 30
max_severity = "medium"
TOML
tg registry principal "$USER" --role admin >/dev/null 2>&1
TINA=$(tg registry principal tina --role trainer 2>/dev/null)
SAM=$(tg registry principal sam --role security-approver 2>/dev/null)
export TUNEGATE_REGISTRY_TOKEN=$TINA
expect 0 tg registry add llama-lora adapter/ --input data/train.jsonl --input base/ \
    --evidence scan.sig.json --as tina
expect 0 tg registry promote llama-lora 1 --to staging --as tina
TUNEGATE_REGISTRY_TOKEN=$SAM expect 1 tg registry promote llama-lora 1 --to production --as sam
grep -q "R001" "$WORK/out.txt" || { echo "e2e: production refusal does not name R001"; cat "$WORK/out.txt"; exit 1; }
expect 0 tg registry evidence llama-lora 1 dataset.sig.json base=base.sig.json \
    adapter.provenance.json adapter.sig --as tina
TUNEGATE_REGISTRY_TOKEN=$SAM expect 0 tg registry promote llama-lora 1 --to production --as sam
expect 0 tg registry audit --verify
echo "e2e: lock -> scans -> run -> sign -> registry -> production: ok"
