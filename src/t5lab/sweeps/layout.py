"""Where a sweep lives: its output root, storage URL, study folder, and each worker's environment.

A leaf module shared by the runner, the report and the W&B backend.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from t5lab.sweeps.wandb_yaml import SweepSpec

DEFAULT_OUTPUT_DIR = Path("runs/sweeps")


def locations(
    spec: SweepSpec | None, output_dir: str | None, storage: str | None, study: str | None
) -> tuple[Path, str, str | None]:
    """The sweep's output root, storage URL and study name, from the flags, else the sweep file, else defaults.

    A sweep file's ``output_dir`` parameter (a constant) is its output root.
    """
    root = Path(output_dir or (spec.fixed.get("output_dir") if spec else None) or DEFAULT_OUTPUT_DIR)
    url = storage or f"sqlite:///{(root / 'optuna.db').resolve()}"
    return root, url, study or (spec.name if spec else None)


def study_folder(root: Path, study_name: str) -> Path:
    """Where a study's trials write: ``ROOT/STUDY`` (the name made safe for a path)."""
    return root / (re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name).strip("-") or "sweep")


def worker_environments(workers: int) -> list[dict[str, str]]:
    """Each worker's environment: its own GPU when there are GPUs, else a share of the CPU threads."""
    if workers == 1:
        return [dict(os.environ)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    environments = []
    for index in range(workers):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        else:  # K trainings on the same cores: without this each takes all of them and they thrash
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        environments.append(env)
    return environments
