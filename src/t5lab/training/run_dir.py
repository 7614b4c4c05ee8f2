"""Run records and output directories: the effective config (secrets redacted), refusing to mix runs, and the
checkpoint to resume from."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from t5lab.data import pmi
from t5lab.errors import ConfigError
from t5lab.training.checkpointing import (
    check_explicit_checkpoint,
    discard_staging,
    find_resumable_checkpoint,
    staging_root,
)
from t5lab.training.dir_lock import LOCK_FILE, hold_output_dir, release_output_dir

# Fields whose value is derived from others; recording them would pin a stale value on reuse.
_DERIVED_TRAINING_FIELDS = {"logging_dir", "local_rank"}
# t5lab's own fields of the Trainer's arguments: always recorded, default or not.
_T5LAB_TRAINING_FIELDS = {"output_dir", "overwrite_output_dir", "report_to", "plot_loss", "on_nonfinite"}


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


# What a run writes before its first checkpoint (besides CONFIG_FILE): forgotten when such a run is replaced.
_UNSTARTED_RUN_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spiece.model",
    "added_tokens.json",
    "run_info.json",
    "metrics.jsonl",
    "runs",
    pmi.VOCAB_FILE,
)


def _reached_a_checkpoint(path: Path) -> bool:
    """Whether the run in ``path`` saved anything worth keeping: a checkpoint (even half-written) or a model."""
    return (
        any(path.glob("checkpoint-*"))
        or staging_root(path).exists()
        or (path / "model.safetensors").exists()
        or (path / "trainer_state.json").exists()
    )


def _forget_unstarted_run(path: Path, is_main_process: bool) -> None:
    if not is_main_process:
        return
    for name in (CONFIG_FILE, *_UNSTARTED_RUN_FILES):
        target = path / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


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
    incomplete are skipped and reported on stderr (one line). A directory whose run failed before its first
    checkpoint is taken over by the new run, whatever its settings. Anything else is refused unless
    ``overwrite`` is set, in which case the old checkpoints are removed and the run starts afresh.
    """
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output_dir {path} is a file; give a directory.")
    if not is_main_process:
        return _check_output_dir(path, config, overwrite, resume_from_checkpoint, is_main_process)
    created = [p for p in (path, path / LOCK_FILE) if not p.exists()]
    hold_output_dir(path)  # before looking: two commands started together cannot both take the directory
    try:
        return _check_output_dir(path, config, overwrite, resume_from_checkpoint, is_main_process)
    except ConfigError:
        release_output_dir(path)  # a refused command leaves the directory as it found it
        for made in reversed(created):
            made.unlink() if made.is_file() else made.rmdir()
        raise


def _check_output_dir(
    path: Path, config: dict[str, Any], overwrite: bool, resume_from_checkpoint: str | None, is_main_process: bool
) -> str | None:
    existing = path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir())
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
        if differing and not _reached_a_checkpoint(path):
            # A run that failed before its first checkpoint (a typo, a missing file) must not block its fix: what
            # it left (its record, a tokenizer trained for its settings, logs) is dropped and the new run starts.
            _forget_unstarted_run(path, is_main_process)
            differing = []
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
        _forget_unstarted_run(path, is_main_process)  # a tokenizer or PMI vocabulary built for the old run
    if resume_from_checkpoint:
        check_explicit_checkpoint(resume_from_checkpoint)
        resume = resume_from_checkpoint
    if is_main_process:
        path.mkdir(parents=True, exist_ok=True)
        save_config(config, path / CONFIG_FILE)
    return resume


def effective_config(instances: Sequence[Any]) -> dict[str, Any]:
    """The run's settings: every t5lab field, plus the Trainer fields that differ from their defaults."""
    config: dict[str, Any] = {}
    for instance in instances:
        # the Trainer's arguments (t5lab.training.arguments), recognised without importing them (and torch)
        is_training_arguments = hasattr(instance, "t5lab_optim")
        for f in dataclasses.fields(instance):
            if not f.init or f.name.startswith("_"):
                continue
            value = getattr(instance, f.name)
            value = getattr(value, "value", value)  # enums
            if is_training_arguments and f.name not in _T5LAB_TRAINING_FIELDS:
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                if value == getattr(default, "value", default) or f.name in _DERIVED_TRAINING_FIELDS:
                    continue
            if isinstance(value, (str, int, float, bool, type(None), list, dict)):
                config[f.name] = value
        if is_training_arguments:
            config["optim"] = instance.t5lab_optim
            if instance.t5lab_deepspeed:
                config["deepspeed"] = instance.t5lab_deepspeed
    return config


_SECRET_KEY = re.compile(r"(^|_)(token|secret|password|api_key)$")


def redact(settings: dict[str, Any]) -> dict[str, Any]:
    """Replace values of token-like keys so saved configs never hold secrets."""
    return {k: ("<redacted>" if _SECRET_KEY.search(k) and v else v) for k, v in settings.items()}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with the values of token-like flags (``--hub_token X``, ``--hub_token=X``) replaced."""
    redacted, hide_next = [], False
    for arg in argv:
        name, has_value, _ = arg.lstrip("-").partition("=")
        if hide_next:
            redacted.append("<redacted>")
        elif arg.startswith("--") and has_value and _SECRET_KEY.search(name.replace("-", "_")):
            redacted.append(f"--{name}=<redacted>")
        else:
            redacted.append(arg)
        hide_next = (
            not hide_next
            and arg.startswith("--")
            and not has_value
            and bool(_SECRET_KEY.search(name.replace("-", "_")))
        )
    return redacted


def config_yaml(settings: dict[str, Any]) -> str:
    """The run's effective settings as YAML, secrets redacted (reusable with --config)."""
    clean = {k: (v.value if hasattr(v, "value") else v) for k, v in redact(settings).items()}
    return yaml.safe_dump(clean, sort_keys=True)


def save_config(settings: dict[str, Any], path: str | Path) -> None:
    """Write the run's effective settings as YAML (reusable with --config)."""
    Path(path).write_text(config_yaml(settings), encoding="utf-8")
