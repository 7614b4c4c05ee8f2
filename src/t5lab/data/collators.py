"""Batches: packed chunks -> encoder inputs and decoder targets of an objective (pre-training); padded task rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq

from t5lab.data.objectives import Objective, apply_objective


@dataclass
class PretrainingCollator:
    """Turn a batch of packed chunks (each ``objective.raw_length`` ids) into T5 examples with ``objective``.

    Each row's denoiser and noise are a function of (seed, epoch, the row's tokens): deterministic for a seed,
    different across epochs, and independent of batching, so gradient accumulation, data-parallel processes
    and resumed runs see exactly what an uninterrupted single-process run would. Rows shorter than the batch
    (mixtures, i.i.d. and PMI masking, prefix LM) are padded: attention mask 0, labels -100.
    """

    objective: Objective
    decoder_start_token_id: int = 0
    seed: int = 0
    epoch: int = 0

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # every row is one packed chunk of the same length; concatenate is twice as fast as np.stack here
        tokens = np.concatenate([e["input_ids"] for e in examples]).reshape(len(examples), -1)
        inputs, targets, input_lengths, target_lengths = apply_objective(tokens, self.objective, self.seed, self.epoch)
        decoder_input_ids = np.empty_like(targets)
        decoder_input_ids[:, 0] = self.decoder_start_token_id
        decoder_input_ids[:, 1:] = targets[:, :-1]
        labels = np.where(np.arange(targets.shape[1]) < target_lengths[:, None], targets, -100)
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy((np.arange(inputs.shape[1]) < input_lengths[:, None]).astype(np.int64)),
            "labels": torch.from_numpy(labels),
            "decoder_input_ids": torch.from_numpy(decoder_input_ids),
        }


class FinetuneCollator(DataCollatorForSeq2Seq):
    """Pads inputs and labels (with -100); batches of unlabeled rows carry no ``labels`` key at all.

    The stock collator returns ``labels=None`` for them, which Seq2SeqTrainer takes for labels present.
    """

    def __call__(self, features, return_tensors=None):
        batch = super().__call__(features, return_tensors)
        if batch.get("labels") is None:
            batch.pop("labels", None)
        return batch
