#!/usr/bin/env bash
# Build the CUDA flavour of tunegate (`--features cuda`) on a machine with no CUDA toolkit and no
# GPU, from NVIDIA's CUDA 13.0 wheels on PyPI, then compress it for carrying to the GPU machine.
#
#   scripts/build-cuda.sh            # -> target/release/tunegate and dist/tunegate-cuda.xz
#   TUNEGATE_CUDA_DIR=/path scripts/build-cuda.sh   # where the toolchain is unpacked (cached)
#
# How it works: candle's kernel build needs nvcc (from the wheels) and a compute capability
# (sm_90: H100/H200; set CUDA_COMPUTE_CAP for other GPUs). cudarc links the driver, cuBLAS,
# cuRAND and NVRTC dynamically, so at link time we give it stub libraries with the right
# sonames; the real ones come from the GPU machine (its driver and its PyTorch venv) at run
# time. A CUDA binary does not start where those libraries are missing: CI tests the CPU build.
# Run it there with scripts/run-on-gpu.sh. First build: about 18 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${TUNEGATE_CUDA_DIR:-$HOME/.cache/tunegate-cuda}
R=$D/cudax/nvidia/cu13
cargo fetch --locked

if [ ! -x "$R/bin/nvcc" ]; then
  echo "== fetching the CUDA 13.0 build toolchain from PyPI into $D"
  mkdir -p "$D/wheels"
  python3 -m pip download -q --no-deps -d "$D/wheels" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 \
    nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85
  rm -rf "$D/cudax" && mkdir -p "$D/cudax"
  for w in "$D"/wheels/*.whl; do python3 -m zipfile -e "$w" "$D/cudax"; done
  chmod +x "$R"/bin/* "$R"/nvvm/bin/*
  mkdir -p "$R/targets" && ln -sfn .. "$R/targets/x86_64-linux" # nvcc.profile's include path
  ln -sfn lib "$R/lib64"
  ln -sfn libcudart.so.13 "$R/lib/libcudart.so"
fi

if [ ! -e "$R/lib/stubs/libcuda.so" ]; then
  echo "== link-time stubs from cudarc's bindings"
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src | sort -V | tail -1)
  mkdir -p "$R/lib/stubs"
  stub() { # name bindings-module soname
    grep -ohP '^pub unsafe fn \K\w+' "$src/$2/sys/mod.rs" | sort -u |
      sed 's/.*/void &(void){}/' >"$R/lib/stubs/$1.c"
    gcc -shared -fPIC -o "$R/lib/stubs/lib$1.so" -Wl,-soname,"$3" "$R/lib/stubs/$1.c"
  }
  stub cuda driver libcuda.so.1
  stub nvrtc nvrtc libnvrtc.so.13
  stub curand curand libcurand.so.10
  stub cublas cublas libcublas.so.13
  stub cublasLt cublaslt libcublasLt.so.13
fi

export CUDA_ROOT=$R CUDA_HOME=$R PATH=$R/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=13000 # cudarc supports up to 13.4; pin to the wheels' 13.0
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-2}
echo "== cargo build --release --features cuda (sm_$CUDA_COMPUTE_CAP)"
cargo build --release --locked -p tunegate --features cuda
mkdir -p dist
xz -9 -T2 -c target/release/tunegate >dist/tunegate-cuda.xz
ls -l dist/tunegate-cuda.xz
