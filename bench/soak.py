"""Long-run soak: is memory flat over thousands of steps, and does a 200-trial sweep account for every trial?

1. ``t5lab pretrain`` (t5-tiny, 64-token inputs) for ``--steps`` steps (default 3,000) with evaluation and a
   checkpoint every 250 steps; the process's RSS is sampled every second from /proc and matched to the step
   logged at that time. Reported: peak RSS, RSS at each evaluation, and the slope after warm-up (MB per 1,000
   steps, least squares after a warm-up of min(500, steps / 3)); target: flat within 5% of the post-warm-up level.
2. ``t5lab sweep`` of ``--trials`` (200) trials of a fake objective (tests/sweeps/fake_train.py, milliseconds per
   trial) with 4 workers on one SQLite study: every trial must end COMPLETE, none lost or duplicated, and no
   "database is locked" anywhere in the output.

    python bench/soak.py --out bench/results/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def last_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def soak_pretraining(work: Path, steps: int) -> dict:
    out = work / "pretrain"
    command = [
        sys.executable,
        "-m",
        "t5lab",
        "pretrain",
        "--train_file",
        str(DATA / "corpus/wikitext-2-raw/wiki.test.raw"),
    ]
    command += ["--tokenizer_name", "train", "--vocab_size", "2000", "--config_name", "t5-tiny", "--input_length", "64"]
    command += ["--per_device_train_batch_size", "8", "--max_steps", str(steps), "--eval_steps", "250"]
    command += ["--save_steps", "250", "--save_total_limit", "2", "--max_eval_samples", "64", "--logging_steps", "50"]
    command += ["--learning_rate", "1e-3", "--report_to", "none", "--disable_tqdm", "true", "--output_dir", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", T5LAB_CACHE=str(work / "cache"))
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    samples = []  # (seconds, step, rss MB)
    while process.poll() is None:
        rss = rss_mb(process.pid)
        if rss is not None:
            samples.append((time.time() - started, last_step(out / "metrics.jsonl"), rss))
        time.sleep(1.0)
    stderr = process.stderr.read()
    if process.returncode != 0:
        raise SystemExit(f"pre-training failed:\n{stderr[-3000:]}")
    steps_arr = np.array([s[1] for s in samples], dtype=float)
    rss_arr = np.array([s[2] for s in samples])
    warmup = min(500, steps // 3)
    late = steps_arr >= warmup
    slope = float(np.polyfit(steps_arr[late], rss_arr[late], 1)[0] * 1000) if late.sum() > 2 else None
    level = float(np.median(rss_arr[late])) if late.any() else None
    at_evaluations = {}
    for step in range(250, steps + 1, 250):
        near = [rss for _, s, rss in samples if step <= s < step + 50]
        if near:
            at_evaluations[step] = round(max(near), 1)
    settled = [v for k, v in at_evaluations.items() if k >= warmup]
    spread = (max(settled) - min(settled)) / level * 100 if settled else 0.0
    return {
        "steps": steps,
        "minutes": round((time.time() - started) / 60, 1),
        "peak_rss_mb": round(float(rss_arr.max()), 1),
        "rss_mb_after_warmup_median": round(level, 1),
        "slope_mb_per_1000_steps": round(slope, 2),
        "slope_percent_per_1000_steps": round(slope / level * 100, 2),
        "rss_mb_at_evaluations": at_evaluations,
        "spread_percent_after_warmup": round(spread, 2),
        "flat_within_5_percent": abs(slope * steps / 1000) < 0.05 * level and spread < 5,
        "samples": len(samples),
    }


def soak_sweep(work: Path, trials: int, workers: int) -> dict:
    sweep = {
        "name": "soak",
        "program": str(REPO / "tests" / "sweeps" / "fake_train.py"),
        "method": "random",
        "metric": {"name": "eval/score", "goal": "maximize"},
        "parameters": {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}, "evals": {"value": 2}},
    }
    sweep_file = work / "soak.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    out = work / "sweep"
    command = [sys.executable, "-m", "t5lab", "sweep", str(sweep_file), "--trials", str(trials)]
    command += ["--workers", str(workers), "--output_dir", str(out)]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    import optuna

    study = optuna.load_study(study_name="soak", storage=f"sqlite:///{out / 'optuna.db'}")
    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    output = result.stdout + result.stderr
    logs = "".join(p.read_text(errors="replace") for p in (out / "soak").glob("*.log"))
    return {
        "trials": trials,
        "workers": workers,
        "exit_code": result.returncode,
        "minutes": round((time.time() - started) / 60, 1),
        "states": states,
        "distinct_trial_dirs": len({t.user_attrs.get("output_dir") for t in study.trials}),
        "database_is_locked": "database is locked" in output + logs,
        "every_trial_accounted_for": states == {"COMPLETE": trials},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", default="bench/results/soak.json")
    args = parser.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = soak_sweep(Path(tmp), args.trials, args.workers)
        print(json.dumps({"sweep": sweep}, indent=1), flush=True)
        pretraining = soak_pretraining(Path(tmp), args.steps)
    results = {"machine_before": before, "machine_after": machine(), "pretraining": pretraining, "sweep": sweep}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps({"pretraining": pretraining, "sweep": sweep}, indent=2))


if __name__ == "__main__":
    main()
