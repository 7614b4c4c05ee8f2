"""``python -m t5lab`` with faults injected into the Trainer, for the reliability tests; never used in real runs.

Usage: ``python tests/reliability/faulty_t5lab.py ARGS...`` takes the arguments of ``t5lab``. Tests that run the
CLI in their own process call :func:`inject_faults` with ``monkeypatch.setattr`` instead. The faults are chosen
by environment variables, read while the run goes:

* ``T5LAB_FAULT_NONFINITE_STEPS=3,5``: the loss of those optimizer steps (1-based) is multiplied by NaN.
* ``T5LAB_FAULT_SAVE_ENOSPC=N``: the N-th checkpoint save of the process fails with ENOSPC after the model
  weights are written.
* ``T5LAB_FAULT_SAVE_DELAY=SECONDS``: a sleep after a checkpoint's files are written and before it is
  committed, so a test can kill a run mid-save.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Any

import t5lab.training.trainer as trainer_module
from t5lab.cli import main
from t5lab.training.trainer import T5LabTrainer


def _nonfinite_steps() -> set[int]:
    return {int(s) for s in os.environ.get("T5LAB_FAULT_NONFINITE_STEPS", "").split(",") if s.strip()}


def inject_faults(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Wrap the Trainer's loss, save and commit so that they fail as the ``T5LAB_FAULT_*`` variables ask;
    ``setattr_`` does the patching (``monkeypatch.setattr`` undoes it after a test)."""
    compute_loss = T5LabTrainer.compute_loss
    save_checkpoint = T5LabTrainer._save_checkpoint
    save_optimizer_and_scheduler = T5LabTrainer._save_optimizer_and_scheduler
    commit_checkpoint = trainer_module.commit_checkpoint

    def poisoned_compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        if model.training and self.state.global_step + 1 in _nonfinite_steps():
            poison = float("nan")  # a NaN loss, hence NaN gradients
            result = (result[0] * poison, *result[1:]) if return_outputs else result * poison
        return result

    def counted_save_checkpoint(self, model, trial) -> None:
        self._fault_saves = getattr(self, "_fault_saves", 0) + 1
        save_checkpoint(self, model, trial)

    def full_disk_save_optimizer_and_scheduler(self, output_dir: str) -> None:
        # The Trainer saves the optimizer after the weights, so the weights are on disk when this fails.
        if os.environ.get("T5LAB_FAULT_SAVE_ENOSPC") == str(getattr(self, "_fault_saves", 0)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(output_dir, "optimizer.pt"))
        save_optimizer_and_scheduler(self, output_dir)

    def slow_commit_checkpoint(staged, final) -> None:
        if delay := os.environ.get("T5LAB_FAULT_SAVE_DELAY"):
            time.sleep(float(delay))
        commit_checkpoint(staged, final)

    setattr_(T5LabTrainer, "compute_loss", poisoned_compute_loss)
    setattr_(T5LabTrainer, "_save_checkpoint", counted_save_checkpoint)
    setattr_(T5LabTrainer, "_save_optimizer_and_scheduler", full_disk_save_optimizer_and_scheduler)
    setattr_(trainer_module, "commit_checkpoint", slow_commit_checkpoint)


if __name__ == "__main__":
    inject_faults()
    raise SystemExit(main())
