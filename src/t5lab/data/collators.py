"""Batches for pre-training: packed chunks -> span-corrupted encoder inputs and decoder targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq

from t5lab.data.span_corruption import CorruptionLengths, corrupt_spans


@dataclass
class SpanCorruptionCollator:
    """Corrupt a batch of packed chunks (each ``lengths.raw_length`` ids) into fixed-length T5 examples.

    Each row's noise is a function of (seed, epoch, the row's tokens): deterministic for a seed, different
    across epochs, and independent of batching, so gradient accumulation, data-parallel processes and
    resumed runs see exactly the noise an uninterrupted single-process run would.
    """

    lengths: CorruptionLengths
    sentinel_ids: np.ndarray
    eos_token_id: int
    decoder_start_token_id: int = 0
    seed: int = 0
    epoch: int = 0

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # every row is one packed chunk of the same length; concatenate is twice as fast as np.stack here
        tokens = np.concatenate([e["input_ids"] for e in examples]).reshape(len(examples), -1)
        inputs, targets = corrupt_spans(
            tokens, self.lengths, self.sentinel_ids, self.eos_token_id, self.seed, self.epoch
        )
        decoder_input_ids = np.empty_like(targets)
        decoder_input_ids[:, 0] = self.decoder_start_token_id
        decoder_input_ids[:, 1:] = targets[:, :-1]
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.ones(inputs.shape, dtype=torch.long),
            "labels": torch.from_numpy(targets),
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
