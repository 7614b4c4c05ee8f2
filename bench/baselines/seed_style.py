"""BASELINE for benchmarks only: a re-implementation of the seed project's pre-training data path.

Not part of t5lab and never imported by it. It reproduces the approach described in the seed analysis
("Span corruption" and data sections) so that t5lab's pipeline can be timed against it on the same machine:

- each line of the corpus is one row, tokenized and padded (or truncated) to 512 tokens: no packing;
- the collator draws one T5 ``random_spans_noise_mask`` per row over the full padded length with per-row
  numpy calls and the global numpy RNG, rolls it by a random offset, then unmasks pad and EOS positions;
- span k starts with sentinel ``vocab_size - 1 - k`` (``<extra_id_0>`` first), continuations are -1, and
  inputs/targets are compacted by a stable sort and gather; both stay at the padded length;
- as in the seed, a row whose rolled mask starts with noise gets targets whose sentinels are one span off
  the inputs' (targets number the kept spans, which then come second);
- targets are padded to a fixed length with -100, decoder inputs are the labels shifted right, and the
  tokenizer's attention mask is passed through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def random_spans_noise_mask(length: int, noise_density: float, mean_noise_span_length: float = 3.0) -> np.ndarray:
    """T5's numpy noise mask for one row of ``length`` positions (global RNG), rolled by a random offset."""
    num_noise_tokens = min(max(int(np.round(length * noise_density)), 1), length - 1)
    num_noise_spans = max(int(np.round(num_noise_tokens / mean_noise_span_length)), 1)
    num_nonnoise_tokens = length - num_noise_tokens

    def random_segmentation(num_items: int, num_segments: int) -> np.ndarray:
        mask_indices = np.arange(num_items - 1) < (num_segments - 1)
        np.random.shuffle(mask_indices)
        first_in_segment = np.pad(mask_indices, [[1, 0]])
        segment_id = np.cumsum(first_in_segment)
        _, segment_length = np.unique(segment_id, return_counts=True)
        return segment_length

    noise_span_lengths = random_segmentation(num_noise_tokens, num_noise_spans)
    nonnoise_span_lengths = random_segmentation(num_nonnoise_tokens, num_noise_spans)
    interleaved = np.reshape(np.stack([nonnoise_span_lengths, noise_span_lengths], axis=1), [num_noise_spans * 2])
    span_starts = np.cumsum(interleaved)[:-1]
    span_start_indicator = np.zeros((length,), dtype=np.int8)
    span_start_indicator[span_starts] = True
    span_num = np.cumsum(span_start_indicator)
    is_noise = np.equal(span_num % 2, 1)
    return np.roll(is_noise, np.random.randint(0, length))


@dataclass
class SeedStyleCollator:
    """The seed's span-corruption collator (see the module docstring), for rows padded to ``input_length``."""

    vocab_size: int  # sentinels count down from vocab_size - 1 (<extra_id_0>)
    pad_token_id: int = 0
    eos_token_id: int = 1
    noise_density: float = 0.15
    input_length: int = 512
    target_length: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        np.random.seed(self.seed)  # the seed seeds the global RNG once, in the collator

    def _sentinel_ids(self, mask: np.ndarray) -> np.ndarray:
        start = mask & ~np.roll(mask, 1, axis=-1)
        start[:, 0] = mask[:, 0]
        span_number = np.cumsum(start, axis=-1)
        ids = np.where(start, self.vocab_size - span_number, 0)
        return np.where(mask & ~start, -1, ids)

    def _compact(self, input_ids: np.ndarray, sentinel_ids: np.ndarray, length: int, fill: int) -> np.ndarray:
        full = np.where(sentinel_ids != 0, sentinel_ids, input_ids)
        removed = full < 0
        order = np.argsort(removed, axis=-1, kind="stable")  # kept positions first, in order
        compact = np.take_along_axis(full, order, axis=-1)
        compact[np.take_along_axis(removed, order, axis=-1)] = fill
        if compact.shape[1] >= length:
            return compact[:, :length]
        return np.pad(compact, ((0, 0), (0, length - compact.shape[1])), constant_values=fill)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        input_ids = np.stack([np.asarray(e["input_ids"], dtype=np.int64) for e in examples])
        attention_mask = np.stack([np.asarray(e["attention_mask"], dtype=np.int64) for e in examples])
        batch, length = input_ids.shape
        mask = np.stack([random_spans_noise_mask(length, self.noise_density) for _ in range(batch)])
        mask &= (input_ids != self.pad_token_id) & (input_ids != self.eos_token_id)
        inputs = self._compact(input_ids, self._sentinel_ids(mask), self.input_length, self.pad_token_id)
        labels = self._compact(
            input_ids,
            self._sentinel_ids(~mask & (input_ids != self.pad_token_id)),
            self.target_length,
            self.pad_token_id,
        )
        # ~mask marks kept tokens, which the targets drop; pad positions were excluded above and become fill.
        labels = np.where(labels == self.pad_token_id, -100, labels)
        decoder_input_ids = np.zeros_like(labels)
        decoder_input_ids[:, 1:] = np.where(labels[:, :-1] == -100, self.pad_token_id, labels[:, :-1])
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(attention_mask[:, : self.input_length]),
            "labels": torch.from_numpy(labels),
            "decoder_input_ids": torch.from_numpy(decoder_input_ids),
        }


def tokenize_lines(tokenizer, lines: list[str], max_length: int = 512, batch_size: int = 8):
    """Each non-empty line one row, padded/truncated to ``max_length`` (``datasets.map`` with the batch size)."""
    from datasets import Dataset

    dataset = Dataset.from_dict({"text": [line for line in lines if line.strip()]})
    return dataset.map(
        lambda batch: tokenizer(batch["text"], padding="max_length", truncation=True, max_length=max_length),
        batched=True,
        batch_size=batch_size,
        remove_columns=["text"],
    )
