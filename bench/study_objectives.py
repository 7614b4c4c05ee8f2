"""The objective ablation (T5 paper, Table 4 style): the same model, corpus, tokens and CPU budget per objective.

Each objective pre-trains the recipe's model (configs/cpu-1h.yaml unless told otherwise) on the same corpus with
the same tokenizer for the same number of corpus tokens (steps scaled by each objective's chunk length), then
every pre-trained model and a random twin are fine-tuned with identical budgets (the transfer study's
``finetune``: same flags, same learning rates) on SST-2, RTE and CoLA. Results are rewritten after every run
(``OUT/ablation.json``, ``OUT/ablation.md``, ``OUT/ablation.png``); rerunning the command skips finished runs.

    python bench/study_objectives.py --out runs/study-objectives
    python bench/study_objectives.py --steps 300 --tasks sst2 --seeds 1 --out runs/ablation-small   # a quick one

All pre-trainings run first (their encoder gains already compare the objectives), then the fine-tunings.

PMI-masking needs a vocabulary: ``--pmi_vocab FILE``, or one is built from the corpus with ``t5lab pmi build``.
Pre-training losses are not comparable across objectives (each predicts different targets); the encoder gain
and the downstream metrics are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from study_transfer import TASKS, finetune, init_cells, mean_cell, run_logged, t5lab

OBJECTIVES = ["span_corruption", "pmi_masking", "iid_masking", "prefix_lm", "ul2"]


def raw_length(objective: str, input_length: int) -> int:
    from t5lab.data.objectives import objective_lengths, parse_objective

    return objective_lengths(parse_objective(objective), input_length).raw_length


def pretrain(args: argparse.Namespace, out: Path, objective: str, steps: int, tokenizer: str) -> dict:
    """Pre-train one objective (resumed if interrupted); returns its record."""
    run_dir = out / "pretrain" / objective
    if not (run_dir / "all_results.json").is_file():
        command = t5lab(
            "pretrain",
            "--config",
            args.pretrain_config,
            "--train_file",
            args.corpus,
            "--validation_file",
            args.validation_file,
            "--tokenizer_name",
            tokenizer,
            "--objective",
            objective,
            *(["--pmi_vocab", str(args.pmi_vocab)] if objective == "pmi_masking" else []),
            "--max_steps",
            str(steps),
            "--save_steps",
            str(steps),
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--output_dir",
            str(run_dir),
        )
        run_logged(command, out / "pretrain.log", objective, run_dir)
    results = json.loads((run_dir / "all_results.json").read_text())
    seconds_file = run_dir / "seconds"
    return {
        "name": objective,
        "model": str(run_dir),
        "step": steps,
        "tokens": steps * args.batch * raw_length(objective, args.input_length),
        # wall-clock minutes of the command (else the Trainer's runtime): on a shared machine only a rough figure
        "minutes": round(
            float(seconds_file.read_text() if seconds_file.is_file() else results["train_runtime"]) / 60, 1
        ),
        "pretrain_eval_loss": results.get("eval_loss"),
        "eval_encoder_gain": results.get("eval_encoder_gain"),
        "eval_noise_loss": results.get("eval_noise_loss"),
        # UL2 fine-tunes with its NLU mode token before every input, as the UL2 paper does for classification
        "finetune_flags": ["--source_prefix", "[NLU] "] if objective == "ul2" else [],
    }


def write_report(out: Path, study: dict) -> None:
    """ablation.json, a markdown table (mean over seeds) and a bar chart per task."""
    (out / "ablation.json").write_text(json.dumps(study, indent=2))
    header = ["objective", "steps", "tokens", "minutes", "pt eval loss", "encoder gain", *study["settings"]["tasks"]]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    means: dict[str, dict[str, float]] = {}
    for init in study["inits"]:
        cells = init_cells(init)
        for task in study["settings"]["tasks"]:
            values = [r["value"] for r in study["results"] if r["init"] == init["name"] and r["task"] == task]
            cells.append(mean_cell(values))
            if values:
                means.setdefault(task, {})[init["name"]] = statistics.mean(values)
        rows.append("| " + " | ".join(cells) + " |")
    (out / "ablation.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows), flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = study["settings"]["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        values = means.get(task, {})
        names = [n for n in values if n != "random init"]
        ax.bar(names, [values[n] for n in names], color="tab:blue")
        if "random init" in values:
            ax.axhline(values["random init"], color="tab:red", linestyle="--", label="random init")
            ax.legend(fontsize=8)
        ax.set_title(task)
        ax.set_ylabel(TASKS[task][2].removeprefix("eval_"))
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "ablation.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("T5LAB_SHARED_DATA", "../shared/data")
    parser.add_argument("--objectives", nargs="+", default=OBJECTIVES)
    parser.add_argument("--pretrain_config", default="configs/cpu-1h.yaml")
    parser.add_argument("--corpus", default=f"{data}/corpus/gutenberg-10M/train.txt")
    parser.add_argument("--validation_file", default=f"{data}/corpus/gutenberg-10M/dev.txt")
    parser.add_argument("--tokenizer_name", help="shared tokenizer dir (default: trained once into OUT/tokenizer)")
    parser.add_argument("--pmi_vocab", help="PMI vocabulary (default: built from the corpus into OUT/pmi_vocab.txt)")
    parser.add_argument("--steps", type=int, default=1200, help="span corruption's steps; others match its tokens")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "rte", "cola"], choices=list(TASKS))
    parser.add_argument("--lr", type=float, default=3e-4, help="fine-tuning rate of pre-trained models")
    parser.add_argument("--random_lr", type=float, default=1e-3, help="fine-tuning rate of the random twin")
    parser.add_argument("--glue_dir", default=f"{data}/glue")
    parser.add_argument("--finetune_steps", type=int, default=300)
    parser.add_argument("--out", default="runs/study-objectives")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import yaml

    recipe = yaml.safe_load(Path(args.pretrain_config).read_text())
    args.input_length = recipe.get("input_length", 512)
    args.batch = recipe.get("per_device_train_batch_size", 8) * recipe.get("gradient_accumulation_steps", 1)
    tokenizer = args.tokenizer_name or str(out / "tokenizer")
    if not (Path(tokenizer) / "tokenizer.json").is_file():
        vocab = str(recipe.get("vocab_size", 8000))
        command = t5lab(
            "tokenizer", "train", "--train_file", args.corpus, "--vocab_size", vocab, "--output_dir", tokenizer
        )
        subprocess.run(command, check=True)
    if "pmi_masking" in args.objectives and not args.pmi_vocab:
        args.pmi_vocab = out / "pmi_vocab.txt"
        if not args.pmi_vocab.is_file():
            command = t5lab("pmi", "build", "--train_file", args.corpus, "--tokenizer_name", tokenizer)
            subprocess.run([*command, "--output", str(args.pmi_vocab)], check=True)

    twin = {
        "name": "random init",
        "model": None,
        "preset": recipe.get("config_name", "t5-tiny"),
        "tokenizer": tokenizer,
    }
    study = {
        "settings": {**{k: str(v) for k, v in vars(args).items()}, "tasks": args.tasks},
        "inits": [twin],
        "results": [],
    }
    span_raw = raw_length("span_corruption", args.input_length)

    # every pre-training first: the encoder gains compare objectives before any fine-tuning has run
    for objective in args.objectives:
        steps = round(args.steps * span_raw / raw_length(objective, args.input_length))
        study["inits"].append(pretrain(args, out, objective, steps, tokenizer))
        write_report(out, study)
    # task by task, so that a partial study already has complete columns
    for task in args.tasks:
        for seed in args.seeds:
            for init in study["inits"]:
                lr = args.random_lr if init["model"] is None else args.lr
                study["results"].append(finetune(args, out, init, task, seed, lr))
                write_report(out, study)


if __name__ == "__main__":
    sys.exit(main())
