"""Output directories: refuse to mix runs, and find the checkpoint to resume from."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from t5lab.config import save_config
from t5lab.errors import ConfigError
from t5lab.training.checkpointing import (
    check_explicit_checkpoint,
    discard_staging,
    find_resumable_checkpoint,
    staging_root,
)

CONFIG_FILE = "t5lab_config.yaml"
# Settings that may change when a run is continued: how long, how often, where to report.
RESUMABLE_CHANGES = {
    "max_steps",
    "num_train_epochs",
    "save_steps",
    "eval_steps",
    "logging_steps",
    "save_total_limit",
    "report_to",
    "run_name",
    "resume_from_checkpoint",
    "overwrite_output_dir",
    "dataloader_num_workers",
    "preprocessing_num_workers",
    "plot_loss",
    "data_cache_dir",
    "overwrite_cache",
    "cache_dir",
    "logging_dir",
    "on_nonfinite",
    "eval_strategy",
}


def prepare_output_dir(
    output_dir: str,
    config: dict[str, Any],
    overwrite: bool,
    resume_from_checkpoint: str | None,
    is_main_process: bool = True,
) -> str | None:
    """Check ``output_dir`` against this run and record the config; return the checkpoint to resume from.

    An empty or new directory starts a run. A directory holding the same run (same config but for
    :data:`RESUMABLE_CHANGES`) resumes from its latest complete checkpoint; checkpoints a killed run left
    incomplete are skipped and reported on stderr (one line). Anything else is refused unless ``overwrite``
    is set, in which case the old checkpoints are removed and the run starts afresh.
    """
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output_dir {path} is a file; give a directory.")
    existing = path.is_dir() and any(path.iterdir())
    resume = None
    if existing and not overwrite:
        saved_file = path / CONFIG_FILE
        if not saved_file.is_file():
            raise ConfigError(
                f"--output_dir {path} is not empty and holds no t5lab run; "
                "choose another directory or pass --overwrite_output_dir."
            )
        saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
        differing = sorted(
            k for k in set(saved) | set(config) if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k)
        )
        if differing:
            raise ConfigError(
                f"--output_dir {path} holds a different run (settings differ: {', '.join(differing)}); "
                "choose another directory or pass --overwrite_output_dir."
            )
        resume, skipped = find_resumable_checkpoint(path)
        if is_main_process:
            skipped += [f"{name} (half-written, removed)" for name in discard_staging(path)]
            if skipped:
                print(
                    f"Skipping incomplete checkpoints: {'; '.join(skipped)}; resuming from {resume or 'scratch'}.",
                    file=sys.stderr,
                )
    elif existing and overwrite and is_main_process:
        for checkpoint in [*path.glob("checkpoint-*"), staging_root(path)]:
            shutil.rmtree(checkpoint, ignore_errors=True)
    if resume_from_checkpoint:
        check_explicit_checkpoint(resume_from_checkpoint)
        resume = resume_from_checkpoint
    if is_main_process:
        path.mkdir(parents=True, exist_ok=True)
        save_config(config, path / CONFIG_FILE)
    return resume
