"""Cost of each pre-training objective per batch, against a t5-tiny training step and the seed's PMI-masking.

Measured side by side in one run: the collator (objective + tensors) for every objective at the recipe shape
(128 inputs, batch 64) and at 512 inputs; one t5-tiny training step (forward + backward + AdamW) at each shape;
and PMI-masking against the seed's per-row Python algorithm (bench/baselines/seed_pmi.py) on the same rows with
the same vocabulary (built from the same text by t5lab's PMI builder).

    python bench/objectives_speed.py --out bench/results/objectives_speed.json
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
from baselines.seed_pmi import SeedPmiCollator  # noqa: E402
from common import bench_tokenizer, corpus_lines, machine, median, timed  # noqa: E402

from t5lab.data.collators import PretrainingCollator  # noqa: E402
from t5lab.data.objectives import objective_for_tokenizer, parse_objective  # noqa: E402
from t5lab.data.pmi import build_pmi_vocab, write_pmi_vocab  # noqa: E402
from t5lab.data.tokenizer import add_mode_tokens  # noqa: E402
from t5lab.models.presets import build_model  # noqa: E402

OBJECTIVES = ["span_corruption", "iid_masking", "prefix_lm", "pmi_masking", "ul2"]


def step_seconds(model, batch: dict, repeats: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    return median(timed(step, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--step_repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/objectives_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    before = machine()
    lines = [line for line in corpus_lines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = bench_tokenizer(Path(tmp) / "tok")
        add_mode_tokens(tokenizer, ["[NLU]", "[NLG]", "[S2S]"])
        vocab_file = Path(tmp) / "pmi.txt"
        ngrams = build_pmi_vocab(lines, tokenizer, size=20_000, min_count=5)
        write_pmi_vocab(ngrams, vocab_file)
        stream = np.concatenate(
            [
                np.asarray(ids + [tokenizer.eos_token_id])
                for ids in tokenizer(lines, add_special_tokens=False)["input_ids"]
            ]
        )
        model = build_model(tokenizer, config_name="t5-tiny")
        results: dict = {}
        for input_length in (128, 512):
            batch_size = args.batch if input_length == 128 else 16
            shape = {}
            for name in OBJECTIVES:
                objective = objective_for_tokenizer(parse_objective(name), input_length, tokenizer, str(vocab_file))
                raw = objective.raw_length
                rows = [{"input_ids": stream[i * raw : (i + 1) * raw]} for i in range(batch_size)]
                collator = PretrainingCollator(objective)
                collator(rows)  # compile / load the cached kernel
                seconds = median(timed(lambda c=collator, r=rows: c(r), args.repeats * 5))
                shape[name] = {"batch_seconds": seconds, "tokens_per_second": batch_size * raw / seconds}
                if name == "span_corruption":
                    step = step_seconds(model, collator(rows), args.step_repeats)
                    shape["t5_tiny_step_seconds"] = step
            for name in OBJECTIVES:
                shape[name]["share_of_step"] = shape[name]["batch_seconds"] / shape["t5_tiny_step_seconds"]
            results[f"inputs_{input_length}_batch_{batch_size}"] = shape

        # PMI-masking against the seed's algorithm: the same 512-token rows, vocabulary and density
        objective = objective_for_tokenizer(parse_objective("pmi_masking"), 513, tokenizer, str(vocab_file))
        raw = objective.raw_length
        rows = np.stack([stream[i * raw : (i + 1) * raw] for i in range(args.batch)])
        seed = SeedPmiCollator(tokenizer, {n.text.lower() for n in ngrams}, density=0.15)
        collator = PretrainingCollator(objective)
        batch = [{"input_ids": r} for r in rows]
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # alternate A/B
            times.setdefault("ours", []).extend(timed(lambda: collator(batch), 3))
            times.setdefault("seed", []).extend(timed(lambda: seed(rows), 1))
        results["pmi_vs_seed"] = {
            "rows": args.batch,
            "raw_length": raw,
            "vocabulary_ngrams": len(ngrams),
            "ours_batch_seconds": median(times["ours"]),
            "seed_batch_seconds": median(times["seed"]),
            "speedup": median(times["seed"]) / median(times["ours"]),
        }
    out = {"machine_before": before, "machine_after": machine(), "settings": vars(args), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
