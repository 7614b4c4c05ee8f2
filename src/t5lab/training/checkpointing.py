"""Checkpoints that survive kills, preemption, divergence and full disks.

* **Atomic checkpoints**: the Trainer writes each checkpoint into ``OUTPUT_DIR/.incomplete/checkpoint-N``;
  when every file is written, a manifest (:data:`MANIFEST`: each file and its size) is written last, the
  files are flushed to disk, and the folder is renamed to ``OUTPUT_DIR/checkpoint-N``. A kill at any moment
  leaves either the previous checkpoints alone or a complete new one. Resume
  (:func:`find_resumable_checkpoint`) only picks a checkpoint whose manifest matches its files and reports
  the ones it skips.
* **Preemption**: :class:`PreemptionHandler` turns SIGTERM/SIGUSR1 into a flag; the Trainer saves a
  checkpoint at the next optimizer step and stops with :class:`Preempted` (exit code 75, on which the
  SLURM templates requeue the job). Worst case: one training step plus one save after the signal.
* **Non-finite steps**: a NaN/inf loss or gradient norm stops the run with :class:`NonFiniteError` naming
  the step and the last good checkpoint, or, with ``--on_nonfinite skip``, the update is dropped and counted.
* **Failed saves** (disk full, permissions): :class:`CheckpointWriteError`; the partial checkpoint is
  removed and the previous ones are untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from t5lab.errors import INTERRUPTED_EXIT_CODE, PREEMPTED_EXIT_CODE, ConfigError, UserError

MANIFEST = "t5lab_checkpoint.json"
STAGING_DIR = ".incomplete"
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# Architecture settings that must agree between a checkpoint and the model it is loaded into.
_ARCHITECTURE_KEYS = (
    "model_type",
    "d_model",
    "d_ff",
    "d_kv",
    "num_heads",
    "num_layers",
    "num_decoder_layers",
    "vocab_size",
    "feed_forward_proj",
)
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


class Preempted(UserError):
    """The run saved a checkpoint and stopped on a preemption signal or Ctrl-C; rerunning resumes it."""

    exit_code = PREEMPTED_EXIT_CODE

    def __init__(self, message: str, signal_name: str | None = None) -> None:
        super().__init__(message)
        if signal_name == "SIGINT":
            self.exit_code = INTERRUPTED_EXIT_CODE  # a shell's convention for Ctrl-C, not "requeue me"


class NonFiniteError(UserError):
    """The loss or gradient norm became NaN/inf and ``--on_nonfinite`` is ``stop``."""

    exit_code = 3


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, permissions); the previous ones are intact."""

    exit_code = 4


def staging_root(output_dir: str | os.PathLike) -> Path:
    """Where checkpoints are written before they are complete."""
    return Path(output_dir) / STAGING_DIR


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a ``checkpoint-N`` folder, or None for any other name."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def commit_checkpoint(staged: Path, final: Path) -> None:
    """Flush ``staged`` to disk, write its manifest last, and rename it to ``final`` in one step.

    The rename is atomic on POSIX filesystems, so ``final`` never exists half-written. An existing ``final``
    (a step saved again after a resume) is moved aside first and removed once the new one is in place.
    """
    files = {}
    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
        _fsync(path)
        files[str(path.relative_to(staged))] = path.stat().st_size
    manifest = staged / MANIFEST
    manifest.write_text(json.dumps({"step": checkpoint_step(final), "files": files}, indent=1) + "\n", encoding="utf-8")
    _fsync(manifest)
    _fsync(staged)
    replaced = None
    if final.exists():
        replaced = staged.parent / f"{final.name}.replaced"
        shutil.rmtree(replaced, ignore_errors=True)
        final.rename(replaced)
    staged.rename(final)
    _fsync(final.parent)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    try:
        staged.parent.rmdir()  # the staging folder only exists while a save is in progress
    except OSError:
        pass  # another process's save is still in it


def checkpoint_problem(checkpoint: str | os.PathLike) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (no manifest, missing or truncated files), or None if it can."""
    checkpoint = Path(checkpoint)
    manifest = checkpoint / MANIFEST
    if not manifest.is_file():
        return "no completion manifest (the save was interrupted)"
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable completion manifest"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} expected"
    return None


def find_resumable_checkpoint(output_dir: str | os.PathLike) -> tuple[str | None, list[str]]:
    """The newest complete checkpoint in ``output_dir`` and one note per newer checkpoint it skipped."""
    output_dir = Path(output_dir)
    candidates = sorted(
        ((checkpoint_step(p), p) for p in output_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None),
        reverse=True,
    )
    skipped = []
    for _, path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path), skipped
        skipped.append(f"{path.name}: {problem}")
    return None, skipped


def discard_staging(output_dir: str | os.PathLike) -> list[str]:
    """Remove checkpoints left half-written by a killed run; returns their names."""
    root = staging_root(output_dir)
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir())
    shutil.rmtree(root, ignore_errors=True)
    return names


def check_explicit_checkpoint(checkpoint: str) -> None:
    """Refuse a ``--resume_from_checkpoint`` that is not a directory or was not completely written."""
    path = Path(checkpoint)
    if not path.is_dir():
        raise ConfigError(f"--resume_from_checkpoint {checkpoint} is not a directory.")
    if (path / MANIFEST).is_file():
        problem = checkpoint_problem(path)
    else:  # a checkpoint written by another tool: it needs at least the Trainer's state and the weights
        needed = ("trainer_state.json", "model.safetensors")
        missing = [name for name in needed if not (path / name).is_file()]
        problem = f"{', '.join(missing)} missing" if missing else None
    if problem:
        raise ConfigError(
            f"--resume_from_checkpoint {checkpoint} is incomplete ({problem}); give a complete checkpoint."
        )


def check_checkpoint_matches_model(checkpoint: str, model_config: Any) -> None:
    """Refuse to resume ``checkpoint`` into a model of another size or vocabulary, before anything loads."""
    config_file = Path(checkpoint) / "config.json"
    if not config_file.is_file():
        return
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    differing = [
        f"{key} {saved[key]} vs {getattr(model_config, key)}"
        for key in _ARCHITECTURE_KEYS
        if key in saved and hasattr(model_config, key) and saved[key] != getattr(model_config, key)
    ]
    if differing:
        raise ConfigError(
            f"checkpoint {checkpoint} is of another model ({'; '.join(differing)} here); "
            "resume with the same --config_name/--model_name_or_path and tokenizer, or start a new --output_dir."
        )


class PreemptionHandler:
    """Record SIGTERM/SIGUSR1 instead of dying, so the run can checkpoint at the next step and exit.

    Ctrl-C (SIGINT) does the same, with exit code 130; a second Ctrl-C aborts at once (KeyboardInterrupt), which
    leaves the last complete checkpoint intact because checkpoints are written to a staging folder first.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self.signal_name == "SIGINT":
            raise KeyboardInterrupt
        self.signal_name = "SIGINT"
        print(
            "Ctrl-C: saving a checkpoint at the end of this step, then stopping (Ctrl-C again to abort).",
            file=sys.stderr,
        )

    def install(self) -> None:
        """Take over the preemption signals and Ctrl-C (main thread only, which is where the Trainer runs)."""
        for signum in PREEMPTION_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._interrupt)

    def restore(self) -> None:
        """Give the signals back to their previous handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
