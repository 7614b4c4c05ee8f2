"""Does pre-training transfer? GLUE dev metrics of pre-training snapshots against a random twin.

One pre-training run (a recipe such as configs/cpu-1h.yaml on Project Gutenberg) is checkpointed at step
budgets. While it trains, on the second core, every snapshot and a randomly initialised twin (same preset,
same tokenizer) are fine-tuned with identical budgets on SST-2, a 1,000-example SST-2 subset, RTE and CoLA
(full dev sets, generation). The fine-tuning learning rate is tuned per init with the same search for each:
every candidate rate on SST-2 with the first ``--tuning_seeds`` seeds (2), the rate with the best mean then used for
every other run of that init. One tuning seed is not enough: a random twin's seed-1 run at 1e-3 scored 0.687 in one
session and 0.649 in another (another CPU, other rounding), and picked the rate that was worse on average. Results are
rewritten after every fine-tuning run (``OUT/study.json``, ``OUT/study.md``, ``OUT/study.png``), so an
interrupted study still leaves a table; rerunning the same command skips finished runs and resumes the
pre-training.

    python bench/study_transfer.py --out runs/study-transfer
    python bench/study_transfer.py --pretrain_dir runs/gutenberg-1h --out runs/study-transfer   # an existing run
    python bench/study_transfer.py --report runs/study-transfer/study.json --lrs 3e-4 --out runs/at-3e-4  # a new view

``--report`` writes the table and plot of an existing study.json again, with the ``--lrs`` and ``--seeds`` given
(for instance every init at one rate, or runs of several sessions merged into one file), and fine-tunes nothing.

Each snapshot records its step, tokens seen, minutes since the run started (data preparation included) and
the pre-training evaluation at that step (loss, encoder gain, hidden-token loss).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

# name -> (task, extra finetune flags, metric key in eval_results.json)
TASKS = {
    "sst2": ("glue/sst2", [], "eval_accuracy"),
    "sst2-1k": ("glue/sst2", ["--max_train_samples", "1000"], "eval_accuracy"),
    "rte": ("glue/rte", [], "eval_accuracy"),
    "cola": ("glue/cola", [], "eval_mcc"),
}
TUNING_TASK = "sst2"
DEFAULT_SEEDS = [1, 2]
DEFAULT_LRS = [3e-4, 1e-3]


def t5lab(*args: str) -> list[str]:
    return [sys.executable, "-m", "t5lab", *args]


def run_logged(command: list[str], log_file: Path, title: str, run_dir: Path) -> None:
    """Run a t5lab command on one thread, its output appended to ``log_file``; its duration goes to
    ``run_dir/seconds``."""
    started = time.time()
    with open(log_file, "a") as log:
        log.write(f"\n### {title}\n")
        log.flush()
        subprocess.run(command, stdout=log, stderr=log, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    (run_dir / "seconds").write_text(f"{time.time() - started:.1f}\n")


def run_settings(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "t5lab_config.yaml").read_text())


def snapshot_record(run_dir: Path, step: int) -> dict | None:
    """Figures of checkpoint-STEP once it is complete (the Trainer writes trainer_state.json last)."""
    checkpoint = run_dir / f"checkpoint-{step}"
    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        return None
    settings = run_settings(run_dir)
    history = json.loads(state_file.read_text())["log_history"]
    evals = [h for h in history if "eval_loss" in h and h["step"] <= step]
    last_eval = evals[-1] if evals else {}
    from t5lab.data.objectives import objective_lengths, parse_objective

    denoisers = parse_objective(
        settings.get("objective", "span_corruption"),
        settings.get("noise_density", 0.15),
        settings.get("mean_noise_span_length", 3.0),
    )
    raw_length = objective_lengths(denoisers, settings.get("input_length", 512)).raw_length
    batch = settings.get("per_device_train_batch_size", 8) * settings.get("gradient_accumulation_steps", 1)
    return {
        "name": f"{step} steps",
        "model": str(checkpoint),
        "step": step,
        "tokens": step * batch * raw_length,
        "minutes": round((state_file.stat().st_mtime - (run_dir / "t5lab_config.yaml").stat().st_mtime) / 60, 1),
        "pretrain_eval_loss": last_eval.get("eval_loss"),
        "eval_encoder_gain": last_eval.get("eval_encoder_gain"),
        "eval_noise_loss": last_eval.get("eval_noise_loss"),
        "eval_noise_unigram_loss": last_eval.get("eval_noise_unigram_loss"),
        "eval_step": last_eval.get("step"),
    }


def finetune(args: argparse.Namespace, out: Path, init: dict, task_name: str, seed: int, lr: float) -> dict:
    """Fine-tune one init on one task; returns the result record (reused when the run already finished)."""
    task, extra, metric = TASKS[task_name]
    name = f"{init['name'].replace(' ', '')}-{task_name}-seed{seed}-lr{lr:g}"
    run_dir = out / "finetune" / name
    results_file = run_dir / "eval_results.json"
    if not results_file.is_file():
        model_args = (
            ["--model_name_or_path", init["model"]]
            if init["model"]
            else ["--config_name", init["preset"], "--tokenizer_name", init["tokenizer"]]
        )
        command = t5lab(
            "finetune",
            "--task",
            task,
            "--data_dir",
            args.glue_dir,
            *model_args,
            *extra,
            *init.get("finetune_flags", []),
            "--max_steps",
            str(args.finetune_steps),
            "--per_device_train_batch_size",
            "32",
            "--per_device_eval_batch_size",
            "64",
            "--max_source_length",
            "128",
            "--max_target_length",
            "8",
            "--learning_rate",
            str(lr),
            "--lr_scheduler_type",
            "constant_with_warmup",
            "--warmup_steps",
            "50",
            "--save_strategy",
            "no",
            "--logging_steps",
            "50",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--seed",
            str(seed),
            "--overwrite_output_dir",
            "true",
            "--output_dir",
            str(run_dir),
        )
        run_logged(command, out / "finetune.log", name, run_dir)
        shutil.rmtree(run_dir / "predictions", ignore_errors=True)
    value = json.loads(results_file.read_text())[metric]
    seconds = float((run_dir / "seconds").read_text()) if (run_dir / "seconds").is_file() else None
    return {
        "init": init["name"],
        "task": task_name,
        "seed": seed,
        "lr": lr,
        "metric": metric.removeprefix("eval_"),
        "value": value,
        "seconds": seconds,
    }


def best_lr(results: list[dict], init: str, lrs: list[float], seeds: list[int]) -> float | None:
    """The rate with the best mean SST-2 result over the tuning ``seeds`` for ``init``, once every tuning run ran."""
    scores: dict[float, list[float]] = {lr: [] for lr in lrs}
    for r in results:
        if r["init"] == init and r["task"] == TUNING_TASK and r["seed"] in seeds and r["lr"] in scores:
            scores[r["lr"]].append(r["value"])
    if any(len(values) < len(seeds) for values in scores.values()):
        return None
    return max(lrs, key=lambda lr: statistics.mean(scores[lr]))


def tuning_seeds(settings: dict) -> list[int]:
    """The seeds every candidate rate runs with (studies written before --tuning_seeds tuned on seed 1)."""
    return sorted(settings["seeds"])[: settings.get("tuning_seeds", 1)]


def init_cells(init: dict) -> list[str]:
    """Table cells that describe an init: name, step, tokens, minutes, pre-training eval loss, encoder gain."""
    return [
        init["name"],
        str(init.get("step", 0)),
        f"{init.get('tokens', 0) / 1e6:.1f}M",
        str(init.get("minutes") or 0),
        f"{init['pretrain_eval_loss']:.2f}" if init.get("pretrain_eval_loss") else "-",
        f"{init['eval_encoder_gain']:+.2f}" if init.get("eval_encoder_gain") is not None else "-",
    ]


def mean_cell(values: list[float]) -> str:
    """Mean over seeds, then each seed's value."""
    return f"{statistics.mean(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})" if values else "-"


def write_report(out: Path, study: dict) -> None:
    """study.json, a markdown table (mean over seeds at each init's tuned rate) and a plot per task."""
    (out / "study.json").write_text(json.dumps(study, indent=2))
    results, inits = study["results"], study["inits"]
    header = ["init", "step", "tokens", "minutes", "pt eval loss", "encoder gain", "tuned lr"] + list(TASKS)
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    points: dict[str, list] = {t: [] for t in TASKS}
    seeds = study["settings"]["seeds"]
    for init in inits:
        lr = best_lr(results, init["name"], study["settings"]["lrs"], tuning_seeds(study["settings"]))
        cells = [*init_cells(init), f"{lr:g}" if lr else "-"]
        for task in TASKS:
            values = [
                r["value"]
                for r in results
                if r["init"] == init["name"] and r["task"] == task and r["lr"] == lr and r["seed"] in seeds
            ]
            cells.append(mean_cell(values))
            if values:
                points[task].append((init.get("minutes", 0), statistics.mean(values), init["model"] is None))
        rows.append("| " + " | ".join(cells) + " |")
    (out / "study.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows), flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = {task: task_points for task, task_points in points.items() if task_points} or points
    fig, axes = plt.subplots(1, len(drawn), figsize=(4 * len(drawn), 3.5), squeeze=False)
    for ax, (task, task_points) in zip(axes[0], drawn.items()):
        pretrained = sorted((m, v) for m, v, twin in task_points if not twin)
        for _, value, twin in task_points:
            if twin:
                ax.axhline(value, color="tab:red", linestyle="--", label="random init (twin)")
        if pretrained:
            ax.plot(*zip(*pretrained), "o-", color="tab:blue", label="pre-trained")
        ax.set_xlabel("pre-training minutes (1 core)")
        ax.set_ylabel(TASKS[task][2].removeprefix("eval_"))
        ax.set_title(task)
        ax.grid(alpha=0.3)
        if task_points:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "study.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("T5LAB_SHARED_DATA", "../shared/data")
    parser.add_argument("--pretrain_config", default="configs/cpu-1h.yaml")
    parser.add_argument("--corpus", default=f"{data}/corpus/gutenberg-10M/train.txt")
    parser.add_argument("--validation_file", default=f"{data}/corpus/gutenberg-10M/dev.txt")
    parser.add_argument(
        "--pretrain_dir", help="use this (finished or running) pre-training run instead of starting one"
    )
    parser.add_argument("--budget_steps", type=int, nargs="+", default=[400, 800, 1200])
    parser.add_argument("--seeds", type=int, nargs="+", help=f"fine-tuning seeds (default: {DEFAULT_SEEDS})")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--lrs", type=float, nargs="+", help=f"fine-tuning rates per init (default: {DEFAULT_LRS})")
    parser.add_argument(
        "--tuning_seeds", type=int, default=2, help="every rate runs with this many seeds; the best mean is kept"
    )
    parser.add_argument("--glue_dir", default=f"{data}/glue")
    parser.add_argument("--finetune_steps", type=int, default=300)
    parser.add_argument("--out", default="runs/study-transfer")
    parser.add_argument("--report", type=Path, help="only write the table and plot of this study.json to --out")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        study = json.loads(args.report.read_text())
        asked = {"lrs": args.lrs, "seeds": args.seeds}
        study["settings"].update({option: values for option, values in asked.items() if values})
        write_report(out, study)
        return
    args.seeds = args.seeds or DEFAULT_SEEDS
    args.lrs = args.lrs or DEFAULT_LRS

    pretraining = None
    run_dir = Path(args.pretrain_dir) if args.pretrain_dir else out / "pretrain"
    if not args.pretrain_dir:
        budgets = sorted(args.budget_steps)
        command = t5lab(
            "pretrain",
            "--config",
            args.pretrain_config,
            "--train_file",
            args.corpus,
            "--validation_file",
            args.validation_file,
            "--max_steps",
            str(budgets[-1]),
            "--save_steps",
            str(math.gcd(*budgets)),
            "--save_total_limit",
            str(budgets[-1] // math.gcd(*budgets) + 1),
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--output_dir",
            str(run_dir),
        )
        pretraining = subprocess.Popen(
            command,
            stdout=open(out / "pretrain.log", "a"),
            stderr=subprocess.STDOUT,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
    while not (run_dir / "t5lab_config.yaml").is_file():
        time.sleep(5)
    settings = run_settings(run_dir)
    tokenizer = settings.get("tokenizer_name")
    if tokenizer in (None, "train"):
        tokenizer = str(run_dir)
        while not (run_dir / "tokenizer.json").is_file():
            time.sleep(5)
    twin = {
        "name": "random init",
        "model": None,
        "preset": settings.get("config_name", "t5-tiny"),
        "tokenizer": tokenizer,
        "step": 0,
        "tokens": 0,
        "minutes": 0,
    }
    study = {"settings": dict(vars(args), pretrain_run=settings), "inits": [twin], "results": []}
    seeds = sorted(args.seeds)
    done: set[tuple] = set()

    def jobs() -> list[tuple]:
        """Runnable fine-tunings, most informative first: tuning runs, then tasks and seeds at the tuned rate."""
        ready = []
        tuning = tuning_seeds(study["settings"])
        for init in study["inits"]:
            lr = best_lr(study["results"], init["name"], args.lrs, tuning)
            ready += [(0, init["name"], TUNING_TASK, seed, rate) for rate in args.lrs for seed in tuning]
            if lr is not None:
                ready += [
                    (1 + i, init["name"], task, seed, lr)
                    for i, seed in enumerate(seeds)
                    for task in args.tasks
                    if not (task == TUNING_TASK and seed in tuning)
                ]
        order = {init["name"]: index for index, init in enumerate(study["inits"])}
        return sorted((j for j in ready if j[1:] not in done), key=lambda j: (j[0], order[j[1]]))

    while True:
        for step in sorted(args.budget_steps):
            if all(i.get("step") != step for i in study["inits"]):
                record = snapshot_record(run_dir, step)
                if record:
                    study["inits"].append(record)
                    print(f"snapshot: {record}", flush=True)
        pending = jobs()
        finished_pretraining = all(any(i.get("step") == s for i in study["inits"]) for s in args.budget_steps)
        if not pending:
            if finished_pretraining or (pretraining is not None and pretraining.poll() is not None):
                break
            time.sleep(10)
            continue
        _, init_name, task, seed, lr = pending[0]
        init = next(i for i in study["inits"] if i["name"] == init_name)
        study["results"].append(finetune(args, out, init, task, seed, lr))
        done.add((init_name, task, seed, lr))
        write_report(out, study)
    if pretraining is not None:
        pretraining.wait()
    write_report(out, study)


if __name__ == "__main__":
    main()
