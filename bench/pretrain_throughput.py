"""Pre-training throughput of the presets on this machine: useful tokens/s in fp32 and bf16.

Runs `t5lab pretrain` for a few steps per configuration, alternating the configurations over repeats (the
machine is shared and noisy), and reports the median of the logged ``tokens_per_second`` after warm-up.

    python bench/pretrain_throughput.py --train_file ../shared/data/corpus/wikitext-2-raw/wiki.test.raw \
        --presets t5-tiny t5-small --repeats 2 --out bench/results/pretrain_throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from t5lab.cli import main as t5lab


def run_once(
    train_file: str, tokenizer_dir: str, preset: str, bf16: bool, steps: int, batch: int, input_length: int
) -> list[float]:
    with tempfile.TemporaryDirectory() as out:
        code = t5lab(
            [
                "pretrain",
                "--train_file",
                train_file,
                "--tokenizer_name",
                tokenizer_dir,
                "--config_name",
                preset,
                "--input_length",
                str(input_length),
                "--per_device_train_batch_size",
                str(batch),
                "--max_steps",
                str(steps),
                "--logging_steps",
                "5",
                "--bf16",
                str(bf16),
                "--report_to",
                "none",
                "--save_strategy",
                "no",
                "--validation_split_percentage",
                "0",
                "--output_dir",
                out,
                "--disable_tqdm",
                "true",
            ]
        )
        if code != 0:
            raise SystemExit(code)
        history = json.loads(Path(out, "trainer_state.json").read_text())["log_history"]
    return [h["tokens_per_second"] for h in history if "tokens_per_second" in h][1:]  # first window is warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_file", required=True)
    parser.add_argument("--presets", nargs="+", default=["t5-tiny", "t5-small"])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--input_length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="bench/results/pretrain_throughput.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tokenizer_dir:
        assert (
            t5lab(
                [
                    "tokenizer",
                    "train",
                    "--train_file",
                    args.train_file,
                    "--vocab_size",
                    "8000",
                    "--output_dir",
                    tokenizer_dir + "/t",
                ]
            )
            == 0
        )
        samples: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for preset in args.presets:
                for bf16 in (False, True):
                    key = f"{preset} {'bf16' if bf16 else 'fp32'}"
                    samples.setdefault(key, []).extend(
                        run_once(
                            args.train_file,
                            tokenizer_dir + "/t",
                            preset,
                            bf16,
                            args.steps,
                            args.batch,
                            args.input_length,
                        )
                    )
    results = {
        "machine": {
            "cpu_count": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "settings": vars(args),
        "tokens_per_second_median": {k: statistics.median(v) for k, v in samples.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("| configuration | tokens/s (median) |\n|---|---|")
    for key, value in results["tokens_per_second_median"].items():
        print(f"| {key} | {value:,.0f} |")


if __name__ == "__main__":
    main()
