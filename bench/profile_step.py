"""Where a pre-training step's time goes: torch.profiler over a few t5lab training steps (CPU).

Prints the operators with the most self time and the share of time in matmuls (the part MFU counts).

    python bench/profile_step.py --preset t5-small --precision bf16 --out bench/results/profile_t5-small_bf16.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_tokenizer, corpus_lines, machine  # noqa: E402

MATMUL_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::matmul",
    "aten::linear",
    "mkldnn::_linear_pointwise",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="t5-small")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps, after one warm-up step")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from datasets import Dataset, disable_progress_bars

    from t5lab.data.collators import PretrainingCollator
    from t5lab.data.objectives import Denoiser, objective_for_tokenizer
    from t5lab.data.packing import pack
    from t5lab.models.presets import build_model

    disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = bench_tokenizer(Path(tmp) / "tok")
    objective = objective_for_tokenizer([Denoiser("span")], 512, tokenizer)
    lengths = objective.lengths
    packed = pack(Dataset.from_dict({"text": corpus_lines()}), tokenizer, lengths.raw_length).with_format("numpy")
    collator = PretrainingCollator(objective)
    model = build_model(tokenizer, config_name=args.preset)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # the Trainer's adamw_torch
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step(index: int) -> None:
        with torch.profiler.record_function("data"):
            batch = collator([packed[i] for i in range(index * args.batch, (index + 1) * args.batch)])
        with torch.profiler.record_function("forward"), autocast:
            loss = model(**batch).loss
        with torch.profiler.record_function("backward"):
            loss.backward()
        with torch.profiler.record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    step(0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for index in range(1, args.steps + 1):
            step(index)
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]
    phases = {e.key: e.cpu_time_total / total for e in events if e.key in ("data", "forward", "backward", "optimizer")}
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total
    result = {
        "machine": machine(),
        "settings": vars(args),
        "matmul_share": matmul,
        "phase_share": phases,
        "top_ops": [{"op": e.key, "self_share": e.self_cpu_time_total / total, "calls": e.count} for e in top],
    }
    print(f"matmul share of self time: {matmul:.1%}; phases: " + ", ".join(f"{k} {v:.1%}" for k, v in phases.items()))
    print("| op | self time share | calls |\n|---|---|---|")
    for row in result["top_ops"]:
        print(f"| {row['op']} | {row['self_share']:.1%} | {row['calls']} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
