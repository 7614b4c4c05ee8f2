"""Attention kernels for T5 on this CPU: eager vs sdpa (vs flex_attention where it can run), fwd+bwd step time.

One thread, t5-tiny (batch 64, 128 inputs) and t5-small (batch 8, 512 inputs / 114 targets), fp32 and bf16
autocast; the kernels alternate within the run (A/B/A/B) and each figure is a median over repeats, so the
ratios hold on a shared machine. flex_attention is tried too: torch has no CPU backward for it, which the
results record instead of a time.

    python bench/attention.py --out bench/results/attention.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_tokenizer, corpus_lines, machine, median, timed  # noqa: E402

from t5lab.data.collators import PretrainingCollator  # noqa: E402
from t5lab.data.objectives import Denoiser, objective_for_tokenizer  # noqa: E402
from t5lab.models.presets import build_model  # noqa: E402

SHAPES = {"t5-tiny": (128, 64), "t5-small": (512, 8)}
KERNELS = ("eager", "sdpa", "flex_attention")


def step(model, batch: dict, precision: str) -> None:
    """One forward and backward pass (no optimizer: the kernels differ only there)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", default="bench/results/attention.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    before = machine()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = bench_tokenizer(Path(tmp) / "tok")
        lines = [line for line in corpus_lines() if line.strip()]
        stream = np.concatenate([np.asarray(ids + [1]) for ids in tokenizer(lines[:3000])["input_ids"]])
        for preset, (input_length, batch_size) in SHAPES.items():
            objective = objective_for_tokenizer([Denoiser("span")], input_length, tokenizer)
            raw = objective.raw_length
            batch = PretrainingCollator(objective)(
                [{"input_ids": stream[i * raw : (i + 1) * raw]} for i in range(batch_size)]
            )
            for precision in ("fp32", "bf16"):
                models, times, errors = {}, {}, {}
                for kernel in KERNELS:
                    torch.manual_seed(0)
                    models[kernel] = build_model(
                        tokenizer, config_name=preset, attn_implementation=kernel, for_training=False
                    )

                for _ in range(args.repeats):  # alternate the kernels
                    for kernel, model in models.items():
                        if kernel in errors:
                            continue
                        try:
                            times.setdefault(kernel, []).extend(
                                timed(lambda m=model, b=batch, p=precision: step(m, b, p), 1)
                            )
                        except Exception as error:  # noqa: BLE001 - a kernel that cannot run here is a result
                            errors[kernel] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                figures = {kernel: {"step_seconds": median(t)} for kernel, t in times.items()}
                for kernel in figures:
                    figures[kernel]["speed_vs_eager"] = (
                        figures["eager"]["step_seconds"] / figures[kernel]["step_seconds"]
                    )
                figures.update({kernel: {"error": message} for kernel, message in errors.items()})
                results[f"{preset} {precision} batch {batch_size}x{input_length}"] = figures
                print(preset, precision, json.dumps(figures), flush=True)
    out = {"machine_before": before, "machine_after": machine(), "torch": torch.__version__, "results": results}
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
