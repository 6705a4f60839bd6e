#!/usr/bin/env bash
# Runs taskgate's benchmarks and the PyTorch baseline (bench/torch_baseline.py) back to back on
# this machine, then prints `taskgate bench compare` tables (taskgate = A, PyTorch = B).
#
#   bench/run_all.sh [OUT_DIR]           (default: bench/results)
#
# Environment (all optional):
#   MODEL=minilm-l6 BATCH=16 SEQ=64   the training-step benchmark
#   FILTER=matmul                     only the kernel cases whose "name shape" contains this
#   SAMPLES=5 WARMUP=2                timed runs and excluded warm-up runs
#   TORCH_DEVICE=cpu|cuda             where PyTorch runs (cpu uses every core unless THREADS)
#   THREADS=N                         PyTorch's thread count
#   AUTOTUNE=1                        tune taskgate's matmuls first (cached per adapter)
# Needs Rust, a Vulkan/Metal/DX12 driver (Mesa's lavapipe without a GPU) and `pip install torch`.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench/results}
model=${MODEL:-minilm-l6}
batch=${BATCH:-16}
seq=${SEQ:-64}
samples=${SAMPLES:-5}
warmup=${WARMUP:-2}
torch_device=${TORCH_DEVICE:-cpu}

python3 -c "import torch" 2>/dev/null || {
    echo "bench/run_all.sh: PyTorch is missing; install it with: pip install torch" >&2
    exit 1
}
mkdir -p "$out"
cargo build --release --quiet
tg=target/release/taskgate

tg_flags=(--samples "$samples" --warmup "$warmup")
torch_flags=(--samples "$samples" --warmup "$warmup" --device "$torch_device")
[[ -n ${THREADS:-} ]] && torch_flags+=(--threads "$THREADS")
[[ -n ${AUTOTUNE:-} ]] && tg_flags+=(--autotune)
filter=()
[[ -n ${FILTER:-} ]] && filter=(--filter "$FILTER")

echo "== kernels: taskgate"
"$tg" bench kernels "${tg_flags[@]}" "${filter[@]}" --json "$out/taskgate-kernels.json"
echo "== kernels: PyTorch"
python3 bench/torch_baseline.py kernels "${torch_flags[@]}" "${filter[@]}" \
    --json "$out/torch-kernels.json"

train=(--model "$model" --batch "$batch" --seq "$seq")
echo "== training step: taskgate"
"$tg" bench train "${train[@]}" "${tg_flags[@]}" --profile --json "$out/taskgate-train.json"
echo "== training step: PyTorch"
python3 bench/torch_baseline.py train "${train[@]}" "${torch_flags[@]}" \
    --json "$out/torch-train.json"

echo
"$tg" bench compare "$out/taskgate-kernels.json" "$out/torch-kernels.json" \
    | tee "$out/compare-kernels.md"
echo
"$tg" bench compare "$out/taskgate-train.json" "$out/torch-train.json" \
    | tee "$out/compare-train.md"
