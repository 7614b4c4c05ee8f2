"""The Trainer used by every recipe: the stock Seq2SeqTrainer plus a tokens/s figure in its logs."""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import Seq2SeqTrainer, TrainerCallback


class T5LabTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that logs ``tokens_per_second``: non-pad input + target tokens, all processes."""

    def __init__(self, *args: Any, optimizer_cls_and_kwargs: tuple | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Seq2SeqTrainer does not forward this Trainer argument; the Trainer reads it in create_optimizer.
        self.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs
        self._tokens_since_log: torch.Tensor | int = 0
        self._last_log_time = time.perf_counter()

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Kept as a tensor: converting here would force a device sync every step.
        self._tokens_since_log = self._tokens_since_log + inputs["attention_mask"].sum() + (inputs["labels"] != -100).sum()
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            now = time.perf_counter()
            tokens = float(self._tokens_since_log) * self.args.world_size
            logs["tokens_per_second"] = round(tokens / max(now - self._last_log_time, 1e-9), 1)
            self._tokens_since_log, self._last_log_time = 0, now
        super().log(logs, start_time)


class EpochToCollator(TrainerCallback):
    """Tell a collator the epoch before each pass, so its randomness differs across epochs."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)
