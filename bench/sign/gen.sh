#!/usr/bin/env bash
# Generates the signing benchmark inputs under OUT (default bench/out/sign):
#   folder/   a 2 GB checkpoint in 4 shards (model-0000N-of-00004.safetensors, 500 MB of random
#             bytes each) plus config.json, tokenizer.json, generation_config.json
#   adapter/  a 100 KB LoRA adapter (adapter_model.safetensors) plus adapter_config.json
# Random bytes (not zeros) so no filesystem or page-cache trick makes hashing cheaper.
set -euo pipefail
OUT="${OUT:-bench/out/sign}"
SHARD_MB="${SHARD_MB:-500}"
mkdir -p "$OUT/folder" "$OUT/adapter"
for i in 1 2 3 4; do
    f="$OUT/folder/model-0000$i-of-00004.safetensors"
    if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" -ne $((SHARD_MB * 1000 * 1000)) ]; then
        head -c $((SHARD_MB * 1000 * 1000)) /dev/urandom > "$f"
    fi
done
printf '{"architectures": ["LlamaForCausalLM"], "hidden_size": 2048}\n' > "$OUT/folder/config.json"
printf '{"version": "1.0", "model": {"type": "BPE"}}\n' > "$OUT/folder/tokenizer.json"
printf '{"do_sample": true}\n' > "$OUT/folder/generation_config.json"
[ -f "$OUT/adapter/adapter_model.safetensors" ] || head -c 100000 /dev/urandom > "$OUT/adapter/adapter_model.safetensors"
printf '{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}\n' > "$OUT/adapter/adapter_config.json"
du -sh "$OUT/folder" "$OUT/adapter" >&2
