"""Quality per compute: does our pre-training help? SST-2 dev accuracy against pre-training minutes.

One pre-training run (``t5lab pretrain``) is snapshotted at wall-clock budgets (minutes of training, counted
from the moment the Trainer starts, after tokenizer training and packing), or, with ``--budget_steps``, at
step counts (for a shared machine, where wall-clock minutes measure the neighbours' load; the minutes each
snapshot took are recorded either way). Each snapshot and a randomly
initialised twin (same preset, same tokenizer) is then fine-tuned on GLUE SST-2 with the same steps, batch,
learning rate and seeds, and evaluated on the full dev set by generation. Results are rewritten after every
fine-tuning run, so an interrupted study still leaves a table:

    python bench/study_pretrain_vs_scratch.py --out runs/study                     # the issue's 15/30/60 min
    python bench/study_pretrain_vs_scratch.py --budget_steps 500 1000 2000 --seeds 1 2 --out runs/study-steps

Writes ``OUT/study.json``, ``OUT/study.md`` (mean and per-seed accuracy per budget) and ``OUT/study.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTED_MARKER = "Pre-training "  # printed by the recipe right before trainer.train()
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spiece.model",
)


def t5lab_command() -> list[str]:
    return [sys.executable, "-m", "t5lab"]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint that is complete (the Trainer writes trainer_state.json last)."""
    done = [p for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def snapshot(checkpoint: Path, target: Path) -> None:
    """Copy the model and tokenizer files of a checkpoint (not its optimizer state) to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, target / name)


def pretrain_with_snapshots(args: argparse.Namespace, out: Path) -> list[dict]:
    """Run one pre-training and copy its latest checkpoint at each budget; returns one record per budget."""
    run_dir = out / "pretrain"
    by_steps = bool(args.budget_steps)
    budgets = sorted(args.budget_steps or args.budgets)
    command = t5lab_command() + [
        "pretrain",
        "--config",
        args.pretrain_config,
        "--dataset_name",
        "",
        "--train_file",
        args.corpus,
        "--config_name",
        args.preset,
        "--max_steps",
        str(budgets[-1] if by_steps else 10_000_000),
        "--lr_scheduler_type",
        "constant_with_warmup",
        "--save_steps",
        str(math.gcd(*budgets) if by_steps else args.save_steps),
        "--save_total_limit",
        str(len(budgets) + 1 if by_steps else 3),
        "--eval_strategy",
        "no",
        "--eval_on_start",
        "false",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--overwrite_output_dir",
        "true",
        "--output_dir",
        str(run_dir),
    ]
    log = open(out / "pretrain.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, text=True)
    started = threading.Event()
    start_time: list[float] = []

    def watch_stderr() -> None:
        for line in process.stderr:
            log.write(line)
            log.flush()
            if STARTED_MARKER in line and not started.is_set():
                start_time.append(time.time())
                started.set()

    threading.Thread(target=watch_stderr, daemon=True).start()
    while not started.wait(5):
        if process.poll() is not None:
            raise SystemExit(
                f"pre-training exited with code {process.returncode} before training; see {out / 'pretrain.log'}"
            )
    t0 = start_time[0]
    records = []
    try:
        for budget in budgets:
            if by_steps:
                while (
                    not (run_dir / f"checkpoint-{budget:g}" / "trainer_state.json").is_file() and process.poll() is None
                ):
                    time.sleep(5)
            else:
                time.sleep(max(0.0, t0 + budget * 60 - time.time()))
            if process.poll() is not None:
                raise SystemExit(f"pre-training exited with code {process.returncode}; see {out / 'pretrain.log'}")
            checkpoint = run_dir / f"checkpoint-{budget:g}" if by_steps else latest_checkpoint(run_dir)
            while checkpoint is None:  # slower than one checkpoint per budget: take the first one
                if process.poll() is not None:
                    raise SystemExit(f"pre-training exited with code {process.returncode}; see {out / 'pretrain.log'}")
                time.sleep(5)
                checkpoint = latest_checkpoint(run_dir)
            target = out / f"pretrained-{budget:g}{'steps' if by_steps else 'min'}"
            snapshot(checkpoint, target)
            state = json.loads((checkpoint / "trainer_state.json").read_text())
            losses = [h["loss"] for h in state["log_history"] if "loss" in h]
            records.append(
                {
                    "budget": budget,
                    "budget_unit": "steps" if by_steps else "minutes",
                    "model": str(target),
                    "step": state["global_step"],
                    "trained_minutes": round(((checkpoint / "trainer_state.json").stat().st_mtime - t0) / 60, 2),
                    "train_loss": losses[-1] if losses else None,
                }
            )
            print(
                f"snapshot at {budget:g} {'steps' if by_steps else 'min'}: step {state['global_step']}, "
                f"loss {records[-1]['train_loss']}",
                flush=True,
            )
    finally:
        if not by_steps:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    return records


def finetune(args: argparse.Namespace, out: Path, name: str, model_args: list[str], seed: int) -> float:
    """Fine-tune on SST-2 and return dev accuracy (generation, full dev set)."""
    run_dir = out / "finetune" / f"{name}-seed{seed}"
    command = t5lab_command() + [
        "finetune",
        "--task",
        "glue/sst2",
        "--data_dir",
        args.glue_dir,
        *model_args,
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
        str(args.finetune_lr),
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
    ]
    with open(out / "finetune.log", "a") as log:
        log.write(f"\n### {name} seed {seed}\n")
        log.flush()
        subprocess.run(command, stdout=log, stderr=log, check=True)
    accuracy = json.loads((run_dir / "eval_results.json").read_text())["eval_accuracy"]
    shutil.rmtree(run_dir / "predictions", ignore_errors=True)
    return accuracy


def write_report(out: Path, study: dict) -> None:
    """study.json, a markdown table and a plot of dev accuracy against pre-training minutes."""
    (out / "study.json").write_text(json.dumps(study, indent=2))
    rows = [
        "| pre-training | steps | trained min | final train loss | SST-2 dev acc. (mean) | per seed |",
        "|---|---|---|---|---|---|",
    ]
    points = []
    for entry in study["inits"]:
        accs = [r["accuracy"] for r in study["results"] if r["init"] == entry["name"]]
        if not accs:
            continue
        mean = statistics.mean(accs)
        points.append((entry["step"] if study["settings"]["budget_steps"] else entry["trained_minutes"], mean, accs))
        loss = f"{entry['train_loss']:.2f}" if entry.get("train_loss") is not None else "-"
        rows.append(
            f"| {entry['name']} | {entry['step']} | {entry['trained_minutes']} | {loss} | {mean:.3f} | "
            + ", ".join(f"{a:.3f}" for a in accs)
            + " |"
        )
    (out / "study.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows), flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for minutes, _mean, accs in points:
        ax.scatter([minutes] * len(accs), accs, color="tab:blue", alpha=0.4, s=12)
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="tab:blue", label="mean over seeds")
    ax.set_xlabel(f"pre-training {'steps' if study['settings']['budget_steps'] else 'minutes'} (0 = random init)")
    ax.set_ylabel("SST-2 dev accuracy")
    ax.set_title(f"{study['settings']['preset']}, {study['settings']['finetune_steps']} fine-tuning steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "study.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("T5LAB_SHARED_DATA", "../shared/data")
    parser.add_argument(
        "--budgets", type=float, nargs="+", default=[15, 30, 60], help="pre-training minutes to snapshot"
    )
    parser.add_argument("--budget_steps", type=int, nargs="+", help="snapshot at these steps instead of minutes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--preset", default="t5-tiny")
    parser.add_argument(
        "--pretrain_config", default="configs/quickstart.yaml", help="pre-training recipe (tokenizer, lengths, lr)"
    )
    parser.add_argument(
        "--corpus", default=f"{data}/corpus/wikitext-2-raw/wiki.test.raw,{data}/corpus/tinyshakespeare/input.txt"
    )
    parser.add_argument("--glue_dir", default=f"{data}/glue")
    parser.add_argument("--save_steps", type=int, default=25, help="checkpoint interval: the snapshot resolution")
    parser.add_argument("--finetune_steps", type=int, default=300)
    parser.add_argument("--finetune_lr", type=float, default=1e-3)
    parser.add_argument("--out", default="runs/study-pretrain-vs-scratch")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune.log").unlink(missing_ok=True)
    snapshots = pretrain_with_snapshots(args, out)
    inits = [
        {
            "name": "scratch",
            "budget": 0,
            "trained_minutes": 0,
            "step": 0,
            "train_loss": None,
            "model_args": ["--config_name", args.preset, "--tokenizer_name", str(out / "pretrain")],
        }
    ]
    unit = "steps" if args.budget_steps else "min"
    inits += [
        dict(s, name=f"{s['budget']:g} {unit}", model_args=["--model_name_or_path", s["model"]]) for s in snapshots
    ]
    study = {"settings": {k: v for k, v in vars(args).items()}, "inits": inits, "results": []}
    for seed in args.seeds:  # seed-major: every budget has a result before any gets a second seed
        for entry in inits:
            started = time.time()
            accuracy = finetune(args, out, entry["name"].replace(" ", ""), entry["model_args"], seed)
            study["results"].append(
                {
                    "init": entry["name"],
                    "seed": seed,
                    "accuracy": accuracy,
                    "finetune_seconds": round(time.time() - started, 1),
                }
            )
            write_report(out, study)


if __name__ == "__main__":
    main()
