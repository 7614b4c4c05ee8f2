"""What every run records, with or without a tracker: its effective config, its environment, its metrics.

:class:`TrackingCallback` writes two files into the output dir:

* ``run_info.json``: the command line, the effective config and the environment (package versions, devices,
  world size), rewritten each time the run starts or resumes;
* ``metrics.jsonl``: every log of the Trainer (losses, learning rate, evaluations), one JSON line each with
  its step, cut back to the checkpoint when a run resumes.

It also sends the config and environment to the trackers of ``--report_to`` (W&B and trackio: the run's
config; MLflow: an artifact; TensorBoard: a text summary); the Trainer's integrations log the metrics. W&B's
project is ``$WANDB_PROJECT`` (default ``t5lab``) and its run name ``--run_name``.

``t5lab runs DIR`` (in :mod:`t5lab.cli`) lists the runs under a folder from these files, and sweeps read
``metrics.jsonl`` (:func:`log_history`) while a trial runs.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

import t5lab
from t5lab.evaluation.naming import EVAL_PREFIX, strip_eval_prefix
from t5lab.training.run_dir import CONFIG_FILE, redact, redact_argv

RUN_INFO_FILE = "run_info.json"
METRICS_FILE = "metrics.jsonl"
PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "tokenizers",
    "optuna",
    "deepspeed",
    "wandb",
    "mlflow",
    "trackio",
)
# Keys of eval results that describe speed, not quality.
_SPEED_KEYS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def environment(world_size: int = 1) -> dict[str, Any]:
    """Versions, devices and host: what a result needs to be reproduced or compared."""
    versions = {"t5lab": t5lab.__version__}  # also when run from a source tree, not installed
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if torch.cuda.is_available():
        devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        accelerator = {"cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported()}
    else:
        devices = ["mps"] if torch.backends.mps.is_available() else ["cpu"]
        accelerator = {}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": versions,
        "devices": devices,
        **accelerator,
        "cpu_count": os.cpu_count(),
        "world_size": world_size,
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            continue
    return rows


def log_history(output_dir: str | Path) -> list[dict[str, Any]]:
    """The Trainer's logs so far: ``metrics.jsonl``, else the newest ``trainer_state.json`` (final or checkpoint)."""
    output_dir = Path(output_dir)
    if (output_dir / METRICS_FILE).is_file():
        return _read_jsonl(output_dir / METRICS_FILE)
    state_dir = output_dir if (output_dir / "trainer_state.json").is_file() else None
    if state_dir is None and output_dir.is_dir():
        checkpoint = get_last_checkpoint(str(output_dir))
        state_dir = Path(checkpoint) if checkpoint else None
    if state_dir is None:
        return []
    try:
        return json.loads((state_dir / "trainer_state.json").read_text(encoding="utf-8")).get("log_history", [])
    except (OSError, json.JSONDecodeError):  # being saved right now
        return []


def _send_to_trackers(record: dict[str, Any], args: Any) -> None:
    report_to = args.report_to or []
    for name in ("wandb", "trackio"):  # both keep a run config with the same update call
        module = sys.modules.get(name)
        if name in report_to and module is not None and getattr(module, "config", None) is not None:
            module.config.update({"t5lab": record}, allow_val_change=True)
    if "mlflow" in report_to and "mlflow" in sys.modules and sys.modules["mlflow"].active_run():
        sys.modules["mlflow"].log_dict(record, "t5lab_run_info.json")
    if "tensorboard" in report_to:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(Path(args.output_dir) / "runs" / "t5lab")) as writer:
            writer.add_text("t5lab/run_info", f"```\n{json.dumps(record, indent=2, default=str)}\n```")


class TrackingCallback(TrainerCallback):
    """Record the run's config, environment and logs in the output dir and in the chosen trackers."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        # The Trainer's W&B integration reads this when training starts; its own default is "huggingface".
        os.environ.setdefault("WANDB_PROJECT", "t5lab")

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        output_dir = Path(args.output_dir)
        record = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": redact_argv(sys.argv),
            "config": redact(self.config),
            "environment": environment(args.world_size),
        }
        (output_dir / RUN_INFO_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        metrics = output_dir / METRICS_FILE
        if metrics.is_file():  # a resumed run logs again from its checkpoint's step; a new one from scratch
            kept = (
                [row for row in _read_jsonl(metrics) if row.get("step", 0) <= state.global_step]
                if state.global_step
                else []
            )
            metrics.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        _send_to_trackers(record, args)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
            with (Path(args.output_dir) / METRICS_FILE).open("a", encoding="utf-8") as out:
                out.write(json.dumps(row, default=float) + "\n")


# --- t5lab runs -------------------------------------------------------------------------------------------


def find_runs(root: str | Path) -> list[Path]:
    """Output dirs under ``root`` (itself included): folders holding a t5lab config or a Trainer state."""
    root = Path(root)
    markers = (CONFIG_FILE, "trainer_state.json", METRICS_FILE)
    found = {path.parent for marker in markers for path in root.rglob(marker)}
    return sorted(p for p in found if not p.name.startswith("checkpoint-"))


def run_summary(path: Path) -> dict[str, Any]:
    """What ``t5lab runs`` shows of one run: what it trained, how far, how it ends, its eval metrics."""
    config = {}
    if (path / CONFIG_FILE).is_file():
        config = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    history = log_history(path)
    if (path / "eval_results.json").is_file():
        results, status = json.loads((path / "eval_results.json").read_text(encoding="utf-8")), "finished"
    else:
        evaluations = [row for row in history if any(key.startswith(f"{EVAL_PREFIX}_") for key in row)]
        results = evaluations[-1] if evaluations else {}
        latest = max((p.stat().st_mtime for p in path.iterdir()), default=0.0)
        status = "running" if time.time() - latest < 120 else "stopped"
    metrics = {
        strip_eval_prefix(key): value
        for key, value in results.items()
        if key.startswith(f"{EVAL_PREFIX}_") and not key.endswith(_SPEED_KEYS) and isinstance(value, (int, float))
    }
    return {
        "run": path,
        "task": config.get("task") or ("pretrain" if "input_length" in config else "-"),
        "model": config.get("model_name_or_path") or config.get("config_name") or "-",
        "steps": max((row.get("step", 0) for row in history), default=0),
        "status": status,
        "metrics": metrics,
    }
