"""T5 span corruption, exact and vectorized (pure numpy, no I/O).

Follows T5's ``random_spans_noise_mask`` and ``noise_span_to_unique_sentinel``: a raw chunk of
``raw_length`` tokens is split into alternating non-noise/noise spans (starting with non-noise); each noise
span becomes one sentinel in the inputs, and the targets list each sentinel followed by the span it hides.
Because every row of a packed batch has the same length, the number of noise tokens and spans is the same
for every row, so inputs and targets come out at exactly ``input_length`` and ``target_length``: no padding,
no truncation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from t5lab.errors import ConfigError


@dataclass(frozen=True)
class CorruptionLengths:
    """The lengths that make span corruption exact for a given input length."""

    raw_length: int  # tokens taken from the corpus per example (before EOS)
    input_length: int  # encoder tokens: non-noise + one sentinel per span + EOS
    target_length: int  # decoder tokens: noise + one sentinel per span + EOS
    num_noise_tokens: int
    num_noise_spans: int


def _noise_counts(raw_length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    num_noise_tokens = int(round(raw_length * noise_density))
    num_noise_tokens = min(max(num_noise_tokens, 1), raw_length - 1)
    num_noise_spans = max(int(round(num_noise_tokens / mean_noise_span_length)), 1)
    return num_noise_tokens, num_noise_spans


def lengths_for_raw_length(raw_length: int, noise_density: float, mean_noise_span_length: float) -> CorruptionLengths:
    """Input and target lengths (EOS included) produced by corrupting ``raw_length`` tokens."""
    num_noise_tokens, num_noise_spans = _noise_counts(raw_length, noise_density, mean_noise_span_length)
    num_nonnoise_tokens = raw_length - num_noise_tokens
    return CorruptionLengths(
        raw_length=raw_length,
        input_length=num_nonnoise_tokens + num_noise_spans + 1,
        target_length=num_noise_tokens + num_noise_spans + 1,
        num_noise_tokens=num_noise_tokens,
        num_noise_spans=num_noise_spans,
    )


def compute_lengths(
    input_length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0, num_sentinels: int = 100
) -> CorruptionLengths:
    """The longest raw chunk whose corrupted inputs fit ``input_length`` (T5's ``random_spans_helper``).

    For 512 inputs, density 0.15 and mean span 3 this is 568 raw tokens -> 512 inputs, 114 targets.
    Raises :class:`ConfigError` for settings that cannot work.
    """
    if not 0.0 < noise_density < 1.0:
        raise ConfigError(f"noise_density must be strictly between 0 and 1, got {noise_density}.")
    if mean_noise_span_length < 1.0:
        raise ConfigError(f"mean_noise_span_length must be at least 1, got {mean_noise_span_length}.")
    raw_length = 2
    if lengths_for_raw_length(raw_length, noise_density, mean_noise_span_length).input_length > input_length:
        raise ConfigError(
            f"input_length {input_length} is too small for span corruption "
            f"(noise_density {noise_density}, mean span {mean_noise_span_length}); use at least 8."
        )
    while lengths_for_raw_length(raw_length + 1, noise_density, mean_noise_span_length).input_length <= input_length:
        raw_length += 1
    lengths = lengths_for_raw_length(raw_length, noise_density, mean_noise_span_length)
    if lengths.num_noise_spans > num_sentinels:
        raise ConfigError(
            f"input_length {input_length} with noise_density {noise_density} and mean span "
            f"{mean_noise_span_length} needs {lengths.num_noise_spans} sentinels but the tokenizer has "
            f"{num_sentinels}; lower input_length or noise_density, or raise mean_noise_span_length."
        )
    if lengths.input_length < 4 or lengths.num_noise_tokens < 1:
        raise ConfigError(f"input_length {input_length} is too small for span corruption; use at least 8.")
    return lengths


def _random_segmentation(rng: np.random.Generator, batch: int, num_items: int, num_segments: int) -> np.ndarray:
    """For each row, split ``num_items`` into ``num_segments`` random positive parts (shape [batch, segments])."""
    if num_segments == 1:
        return np.full((batch, 1), num_items, dtype=np.int64)
    # Choose num_segments - 1 distinct cut points among the num_items - 1 gaps, independently per row.
    cuts = np.argpartition(rng.random((batch, num_items - 1)), num_segments - 2, axis=1)[:, : num_segments - 1] + 1
    cuts.sort(axis=1)
    edges = np.concatenate(
        [np.zeros((batch, 1), np.int64), cuts, np.full((batch, 1), num_items, np.int64)], axis=1
    )
    return np.diff(edges, axis=1)


def random_spans_noise_mask(rng: np.random.Generator, batch: int, lengths: CorruptionLengths) -> np.ndarray:
    """Boolean [batch, raw_length] mask; True marks noise. Rows start with a non-noise span."""
    length, noise, spans = lengths.raw_length, lengths.num_noise_tokens, lengths.num_noise_spans
    noise_span_lengths = _random_segmentation(rng, batch, noise, spans)
    nonnoise_span_lengths = _random_segmentation(rng, batch, length - noise, spans)
    interleaved = np.stack([nonnoise_span_lengths, noise_span_lengths], axis=2).reshape(batch, 2 * spans)
    span_starts = np.cumsum(interleaved, axis=1)[:, :-1]
    start_indicator = np.zeros((batch, length), dtype=np.int64)
    np.put_along_axis(start_indicator, span_starts, 1, axis=1)
    span_number = np.cumsum(start_indicator, axis=1)
    return (span_number % 2) == 1


def _to_sentinels(tokens: np.ndarray, mask: np.ndarray, sentinel_ids: np.ndarray, eos_id: int) -> np.ndarray:
    """Replace each masked span by one sentinel (numbered left to right), drop the rest of it, append EOS."""
    previous = np.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    span_start = mask & ~previous
    span_index = np.cumsum(span_start, axis=1) - 1
    with_sentinels = np.where(span_start, sentinel_ids[np.clip(span_index, 0, None)], tokens)
    keep = ~mask | span_start
    kept = with_sentinels[keep].reshape(tokens.shape[0], -1)  # same count per row by construction
    eos = np.full((tokens.shape[0], 1), eos_id, dtype=tokens.dtype)
    return np.concatenate([kept, eos], axis=1)


def corrupt_spans(
    tokens: np.ndarray, lengths: CorruptionLengths, sentinel_ids: np.ndarray, eos_id: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Span-corrupt a [batch, raw_length] array of token ids.

    Returns ``(inputs, targets)`` of shapes [batch, input_length] and [batch, target_length].
    ``sentinel_ids[k]`` is the id of ``<extra_id_k>``.
    """
    if tokens.ndim != 2 or tokens.shape[1] != lengths.raw_length:
        raise ValueError(f"expected tokens of shape [batch, {lengths.raw_length}], got {tokens.shape}")
    mask = random_spans_noise_mask(rng, tokens.shape[0], lengths)
    inputs = _to_sentinels(tokens, mask, sentinel_ids, eos_id)
    targets = _to_sentinels(tokens, ~mask, sentinel_ids, eos_id)
    return inputs, targets


def reconstruct(inputs: np.ndarray, targets: np.ndarray, sentinel_ids: np.ndarray, eos_id: int) -> np.ndarray:
    """Invert :func:`corrupt_spans` for one row: put each target span back at its sentinel (for tests/debugging)."""
    sentinel_set = {int(s): k for k, s in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets.tolist():
        if token == eos_id:
            break
        if token in sentinel_set:
            current = sentinel_set[token]
            spans[current] = []
        elif current is not None:
            spans[current].append(token)
    restored: list[int] = []
    for token in inputs.tolist():
        if token == eos_id:
            break
        restored.extend(spans.get(sentinel_set[token], []) if token in sentinel_set else [token])
    return np.asarray(restored, dtype=inputs.dtype)
