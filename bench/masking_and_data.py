"""Span-corruption collator and tokenize+pack throughput: t5lab against the seed-style baseline.

A and B alternate within one run (the machine is shared and noisy); figures are medians over repeats.

    python bench/masking_and_data.py --out bench/results/masking_and_data.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines.seed_style import SeedStyleCollator, tokenize_lines  # noqa: E402
from common import bench_tokenizer, corpus_lines, machine, median, timed  # noqa: E402

from t5lab.data.collators import PretrainingCollator  # noqa: E402
from t5lab.data.objectives import Denoiser, objective_for_tokenizer  # noqa: E402
from t5lab.data.packing import pack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="bench/results/masking_and_data.json")
    args = parser.parse_args()
    before = machine()
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = bench_tokenizer(Path(tmp) / "tok")
        lines = corpus_lines()
        objective = objective_for_tokenizer([Denoiser("span")], 512, tokenizer)
        lengths = objective.lengths
        packed = pack(Dataset.from_dict({"text": lines}), tokenizer, lengths.raw_length).with_format("numpy")
        seed_rows = tokenize_lines(tokenizer, lines, 512, batch_size=8)
        ours = PretrainingCollator(objective)
        seed = SeedStyleCollator(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
        )
        our_batch = [packed[i] for i in range(args.batch)]
        # Best case for the baseline: full 512-token rows (packed text), so no positions are padding.
        full_rows = [{"input_ids": r["input_ids"][:512], "attention_mask": np.ones(512, np.int64)} for r in our_batch]
        line_batch = [seed_rows[i] for i in range(args.batch)]
        text = Dataset.from_dict({"text": lines})
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # alternate A/B
            # The first call after the baseline finds caches cold (the baseline streams MBs through them).
            calls = timed(lambda: ours(our_batch), 5)
            times.setdefault("ours_first_call", []).append(calls[0])
            times.setdefault("ours", []).extend(calls)
            times.setdefault("seed_full_rows", []).extend(timed(lambda: seed(full_rows), 1))
            times.setdefault("seed_corpus_lines", []).extend(timed(lambda: seed(line_batch), 1))
        for _ in range(max(2, args.repeats // 3)):
            times.setdefault("pack_ours", []).extend(timed(lambda: pack(text, tokenizer, lengths.raw_length), 1))
            times.setdefault("tokenize_seed", []).extend(
                timed(lambda: tokenize_lines(tokenizer, lines, 512, batch_size=8), 1)
            )
        corpus_tokens = sum(
            len(r) for r in tokenizer([line for line in lines if line.strip()], add_special_tokens=False)["input_ids"]
        )

    positions = {
        "ours": args.batch * lengths.raw_length,
        "ours_first_call": args.batch * lengths.raw_length,
        "seed_full_rows": args.batch * 512,
        "seed_corpus_lines": args.batch * 512,
    }
    masking = {
        k: {"batch_seconds_median": median(times[k]), "positions_per_second": positions[k] / median(times[k])}
        for k in positions
    }
    masking["speedup_vs_seed_full_rows"] = (
        masking["ours"]["positions_per_second"] / masking["seed_full_rows"]["positions_per_second"]
    )
    masking["speedup_vs_seed_corpus_lines"] = (
        masking["ours"]["positions_per_second"] / masking["seed_corpus_lines"]["positions_per_second"]
    )
    masking["first_call_speedup_vs_seed_full_rows"] = (
        masking["ours_first_call"]["positions_per_second"] / masking["seed_full_rows"]["positions_per_second"]
    )
    data = {
        "corpus_tokens": corpus_tokens,
        "ours_pack_tokens_per_second": corpus_tokens / median(times["pack_ours"]),
        "seed_tokenize_pad512_tokens_per_second": corpus_tokens / median(times["tokenize_seed"]),
        "seed_rows": len(seed_rows),
        "seed_padding_share": 1 - corpus_tokens / (len(seed_rows) * 512),
        "ours_rows": len(packed),
    }
    results = {
        "machine_before": before,
        "machine_after": machine(),
        "settings": vars(args),
        "masking": masking,
        "tokenize_and_pack": data,
        "raw_seconds": times,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps({"masking": masking, "tokenize_and_pack": data}, indent=2))


if __name__ == "__main__":
    main()
