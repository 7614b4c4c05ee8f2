#!/usr/bin/env bash
# t5-base pre-training speed on one GPU in bf16 (568 raw tokens -> 512 inputs / 114 targets, batch 128),
# with and without torch.compile: useful tokens/s, MFU against the bf16 matmul peak measured on the same GPU,
# peak GPU memory. Compare with nanoT5: 0.56 s/step at batch 128 x 568 tokens on an A100, ~31% MFU.
# NOT RUN YET: no GPU was available when the CPU figures in docs/benchmarks.md were measured.
#   bash bench/gpu_t5_base.sh [OUT_JSON]
set -euo pipefail
OUT=${1:-bench/results/gpu_t5_base.json}
python bench/train_throughput.py --suite gpu --steps 30 --warmup 10 --repeats 1 --out "$OUT"
