#!/usr/bin/env bash
# On the GPU machine: put the CUDA 13 user-space libraries of the local PyTorch install on the
# library path, unpack the carried binary (scripts/build-cuda.sh made it) and run it.
#   scripts/run-on-gpu.sh dist/tunegate-cuda.xz train --config train.toml --device cuda
set -euo pipefail
bin=$1
shift
roots="$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true) /usr/local/cuda /usr/lib/x86_64-linux-gnu"
libdirs=$(find $roots -maxdepth 6 \( -name 'libcublas.so.13' -o -name 'libcurand.so.10' -o -name 'libcudart.so.13' \) 2>/dev/null |
  xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
exe=${TMPDIR:-/tmp}/$(basename "$bin" .xz)
xz -dc "$bin" >"$exe"
chmod +x "$exe"
if ldd "$exe" | grep -q "not found"; then
  echo "missing CUDA libraries:" >&2
  ldd "$exe" | grep "not found" >&2
  exit 2
fi
exec "$exe" "$@"
