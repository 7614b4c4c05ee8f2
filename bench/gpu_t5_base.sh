#!/usr/bin/env bash
# t5-base pre-training speed on one GPU (568 raw tokens -> 512 inputs / 114 targets, batch 128, nanoT5's recipe):
# sdpa, eager and flex_attention, torch.compile on and off, bf16 autocast and bf16 weights with stochastic
# rounding; then fine-tuning throughput (t5lab/docsource, inputs up to 512 tokens padded per batch), compile off
# and on. Prints s/step, useful tokens/s and MFU against the bf16 matmul peak measured on the same GPU
# (FLOPs counted by FlopCounterMode on the first batch, before training: counting inside a compiled step made
# torch.compile fall back to eager), and peak GPU memory. nanoT5: 0.56 s/step on an A100, ~31% MFU; the
# goal: >= 45% MFU on one H200. About 8-10 minutes for the seven configurations, not timed: four of them compile
# from an empty cache (on this CPU that took 2-3.5 minutes for t5-tiny/t5-small; see docs/benchmarks.md).
# NOT RUN YET: no GPU was lent to the sessions that measured docs/benchmarks.md.
#   bash bench/gpu_t5_base.sh [OUT_JSON]
set -euo pipefail
OUT=${1:-bench/results/gpu_t5_base.json}
pip install -q -e '.[bench]' 2>/dev/null || echo "torchao not installed: the adamw_sr configuration will fail alone"
python bench/train_throughput.py --suite gpu --steps 30 --warmup 10 --repeats 1 --timeout 240 --out "$OUT"
python - "$OUT" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1]))["summary"]:
    if "error" in row:
        print(f"{row['spec']}: {row['error']}")
    else:
        print(f"{row['spec']}: {row['step_seconds']:.3f} s/step, {row['useful_tokens_per_second']:,.0f} tok/s, MFU {row['mfu']:.1%}")
PY
