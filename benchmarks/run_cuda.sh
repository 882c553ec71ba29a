#!/usr/bin/env bash
# The GPU checks and benchmarks, one stage per argument, from the repository root on a machine
# with CUDA (trueconv importable from src/, no install needed). Results go to $OUT (default
# benchmarks/cuda-out) and, for the fit, to src/trueconv/_cost_constants.json.
#
#   bash benchmarks/run_cuda.sh tests          # tests/test_cuda.py + the CPU suite on this torch
#   bash benchmarks/run_cuda.sh gpu-tests      # tests/test_cuda.py and the CUDA cases alone
#   bash benchmarks/run_cuda.sh cpu-suite      # the CPU suite on this torch alone
#   bash benchmarks/run_cuda.sh auto           # auto_vs_best.py --device cuda
#   bash benchmarks/run_cuda.sh images         # cuda_images.py: images vs cuDNN and CuPy
#   bash benchmarks/run_cuda.sh session        # gpu-tests, auto, images, cpu-suite in ~570 s
#
# A lent H200 gives a session 15 minutes in all (a start takes 1-2): 'session' fits one call
# of the device tool (timeout_s 590). Its image has no platformdirs (carry it as a wheel:
# benchmarks/RESULTS_CUDA.md) and no dask, zarr or soundfile (those tests skip).
#   bash benchmarks/run_cuda.sh half           # benchmarks/cuda_half_fft.py
#   bash benchmarks/run_cuda.sh calibrate      # fit_cost.py --device cuda --measure
#   bash benchmarks/run_cuda.sh bench [DTYPES] # the signal + NN grid on cuda -> RESULTS_CUDA.md
set -uo pipefail
OUT=${OUT:-benchmarks/cuda-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
stage=${1:-tests}
shift || true
case $stage in
tests)
    bash "$0" gpu-tests
    bash "$0" cpu-suite
    ;;
gpu-tests)
    nvidia-smi -L
    $PY -c "import torch, scipy, numpy; print('torch', torch.__version__, 'scipy', scipy.__version__, 'numpy', numpy.__version__)"
    $PY -m pytest tests/test_cuda.py tests/test_inputs.py -q -n 8 -p no:cacheprovider 2>&1 |
        tee "$OUT/pytest_cuda.txt" | tail -15
    ;;
cpu-suite)
    # the rest of the suite on this machine's torch (CPU tensors); modules whose optional
    # dependencies (dask, zarr, soundfile) are missing there skip. Verbose, so that a run
    # stopped by its limit still names the tests that failed (the summary comes last).
    timeout ${CPU_SUITE_S:-300} $PY -m pytest tests -v -n 14 -p no:cacheprovider -rfE \
        --ignore=tests/test_cuda.py --ignore=tests/test_inputs.py 2>&1 |
        tee "$OUT/pytest_cpu_suite.txt" | grep -E "FAILED|ERROR|passed|failed" | tail -40
    ;;
half)
    $PY benchmarks/cuda_half_fft.py 2>&1 | tee "$OUT/half_fft.md"
    ;;
calibrate)
    $PY benchmarks/fit_cost.py --device cuda --measure 2>&1 | tee "$OUT/calibrate.txt" | tail -12
    cp benchmarks/results/calibration-cuda.json src/trueconv/_cost_constants.json "$OUT/"
    ;;
bench)
    dtypes=${*:-float32 float64}
    $PY -m trueconv bench --device cuda --out "$OUT" --stem RESULTS_CUDA --budget 2 \
        --min-run-time 0.2 --dtypes $dtypes --quiet 2>&1 | tail -3
    grep -E "^\| .* \| (full|same) \|" "$OUT/RESULTS_CUDA.md" | head -80
    ;;
session)
    timeout 130 bash "$0" gpu-tests
    timeout 70 bash "$0" auto
    timeout 150 bash "$0" images
    CPU_SUITE_S=210 bash "$0" cpu-suite
    ;;
auto)
    $PY benchmarks/auto_vs_best.py --device cuda 2>&1 | tee "$OUT/auto_vs_best_cuda.md"
    ;;
images)
    $PY benchmarks/cuda_images.py --out "$OUT" 2>&1 | tee "$OUT/cuda_images.md"
    ;;
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
