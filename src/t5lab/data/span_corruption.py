"""T5 span corruption, exact and vectorized (pure numpy, no I/O).

Follows T5's ``random_spans_noise_mask`` and ``noise_span_to_unique_sentinel``: a raw chunk of
``raw_length`` tokens is split into alternating non-noise/noise spans (starting with non-noise); each noise
span becomes one sentinel in the inputs, and the targets list each sentinel followed by the span it hides.
Because every row of a packed batch has the same length, the number of noise tokens and spans is the same
for every row, so inputs and targets come out at exactly ``input_length`` and ``target_length``: no padding,
no truncation.

Randomness is counter-based: each row's noise is a hash of (seed, epoch, the row's tokens). A row is
corrupted the same way whatever batch, process, accumulation split or resumed run it lands in, and
differently in each epoch; and all rows are still drawn in one vectorized pass.
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
    # Every noise span needs a non-noise span before it (T5 alternates them, starting with non-noise).
    num_noise_spans = min(num_noise_spans, raw_length - num_noise_tokens)
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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, elementwise on uint64 (wrapping arithmetic): a fast counter-based hash."""
    with np.errstate(over="ignore"):  # wrapping is the point; numpy warns only for scalars
        z = x + _GOLDEN
        if z.ndim == 0:
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))
        # In place on one temporary: the hash runs over every token of a batch, allocation dominates.
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        return z


def row_keys(tokens: np.ndarray, seed: int, epoch: int = 0) -> np.ndarray:
    """One uint64 key per row from (seed, epoch, the row's token ids), computed without a per-row loop."""
    with np.errstate(over="ignore"):
        positions = np.arange(tokens.shape[1], dtype=np.uint64) * _GOLDEN
    content = np.bitwise_xor.reduce(_splitmix64(tokens.astype(np.uint64) + positions), axis=1)
    salt = _splitmix64(np.uint64(seed % 2**32) << np.uint64(32) | np.uint64(epoch % 2**32))
    return _splitmix64(content ^ salt)


def _random_bits(keys: np.ndarray, count: int, stream: int) -> np.ndarray:
    """[rows, count] random uint64 values, a deterministic function of each row's key."""
    counters = np.arange(count, dtype=np.uint64) + np.uint64(stream << 40)
    return _splitmix64(keys[:, None] ^ _splitmix64(counters)[None, :])


def _random_segmentation(keys: np.ndarray, num_items: int, num_segments: int, stream: int) -> np.ndarray:
    """For each row, split ``num_items`` into ``num_segments`` random positive parts (shape [rows, segments])."""
    batch = keys.shape[0]
    if num_segments == 1:
        return np.full((batch, 1), num_items, dtype=np.int64)
    # Choose num_segments - 1 distinct cut points among the num_items - 1 gaps, independently per row.
    scores = _random_bits(keys, num_items - 1, stream)
    cuts = np.argpartition(scores, num_segments - 2, axis=1)[:, : num_segments - 1] + 1
    cuts.sort(axis=1)
    edges = np.concatenate(
        [np.zeros((batch, 1), np.int64), cuts, np.full((batch, 1), num_items, np.int64)], axis=1
    )
    return np.diff(edges, axis=1)


def random_spans_noise_mask(keys: np.ndarray, lengths: CorruptionLengths) -> np.ndarray:
    """Boolean [rows, raw_length] mask, one row per key; True marks noise. Rows start with a non-noise span."""
    batch = keys.shape[0]
    length, noise, spans = lengths.raw_length, lengths.num_noise_tokens, lengths.num_noise_spans
    noise_span_lengths = _random_segmentation(keys, noise, spans, stream=1)
    nonnoise_span_lengths = _random_segmentation(keys, length - noise, spans, stream=2)
    interleaved = np.stack([nonnoise_span_lengths, noise_span_lengths], axis=2).reshape(batch, 2 * spans)
    span_starts = np.cumsum(interleaved, axis=1)[:, :-1]
    start_indicator = np.zeros((batch, length), dtype=np.uint8)
    np.put_along_axis(start_indicator, span_starts, 1, axis=1)
    # Noise spans are the odd-numbered ones: the running parity of span starts, in bytes.
    return np.bitwise_xor.accumulate(start_indicator, axis=1).view(bool)


def _to_sentinels(tokens: np.ndarray, mask: np.ndarray, sentinel_ids: np.ndarray, eos_id: int) -> np.ndarray:
    """Replace each masked span by one sentinel (numbered left to right), drop the rest of it, append EOS."""
    previous = np.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    span_start = mask & ~previous
    # Every row has the same number of spans, so the k-th start of each row (row-major order) gets sentinel k.
    starts = np.flatnonzero(span_start)
    with_sentinels = tokens.copy()
    with_sentinels.flat[starts] = np.tile(sentinel_ids[: starts.size // tokens.shape[0]], tokens.shape[0])
    keep = ~mask | span_start
    kept = with_sentinels[keep].reshape(tokens.shape[0], -1)  # same count per row by construction
    eos = np.full((tokens.shape[0], 1), eos_id, dtype=tokens.dtype)
    return np.concatenate([kept, eos], axis=1)


def corrupt_spans(
    tokens: np.ndarray, lengths: CorruptionLengths, sentinel_ids: np.ndarray, eos_id: int, seed: int = 0, epoch: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Span-corrupt a [batch, raw_length] array of token ids.

    Returns ``(inputs, targets)`` of shapes [batch, input_length] and [batch, target_length].
    ``sentinel_ids[k]`` is the id of ``<extra_id_k>``. Each row's noise depends on (seed, epoch, its tokens).
    """
    if tokens.ndim != 2 or tokens.shape[1] != lengths.raw_length:
        raise ValueError(f"expected tokens of shape [batch, {lengths.raw_length}], got {tokens.shape}")
    mask = random_spans_noise_mask(row_keys(tokens, seed, epoch), lengths)
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
