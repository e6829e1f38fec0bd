#!/usr/bin/env bash
# The CUDA checks of xp-train, in one run on a machine with an NVIDIA GPU and no Rust (the
# `device` tool's machine). Build here first, then carry the binary:
#
#   cargo build --release -p xtask --features cuda
#   mkdir -p devbin && cp target/release/xtask devbin/ && strip devbin/xtask   # devbin/ is ignored
#   run: bash xtask/device/cuda-check.sh     carry: ["devbin"]     timeout_s: 540
#
# It trains each model for one epoch on CUDA (printing the device it chose), checks that
# `device = "cuda"` trains where a GPU is usable, and runs `bench train` (CPU and CUDA tokens/s and
# the step's time split). Logs go to $OUT (when set) for the closing note.
set -uo pipefail
out=${OUT:-/tmp/xp-cuda-out}
mkdir -p "$out"
bin=${XP_BIN:-devbin/xtask}
# The binary finds the repository (fixtures, default config) where it was built.
built_at=/work/main
if [ "$(realpath "$PWD")" != "$built_at" ]; then
    mkdir -p "$(dirname "$built_at")" && ln -sfn "$PWD" "$built_at"
fi
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
status=0
for model in autoregressive vae gnn diffusion; do
    echo "== train $model on cuda"
    "$bin" train --set device=cuda --set model.model_type=$model --set training.epochs=1 \
        --set training.sample_size=64 --set data.max_length=60 --set output_dir=/tmp/xp-cuda 2>&1 |
        tee "$out/train-$model.log" || status=1
done
echo "== sample on cuda"
run=$(ls -d /tmp/xp-cuda/*/ | tail -1)
"$bin" sample "$run" -n 2048 --device cuda -o "$out/sampled.txt" 2>&1 | tee "$out/sample.log" || status=1
echo "== bench train"
XP_BENCH_TRAIN_SKIP_DEFAULT=1 XP_BENCH_TRAIN_ROWS=4000 "$bin" bench train 2>&1 |
    tee "$out/bench-train.log" || status=1
exit $status
