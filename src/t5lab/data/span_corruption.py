"""T5 span corruption, exact and compiled (numpy arrays in and out, no I/O).

Follows T5's ``random_spans_noise_mask`` and ``noise_span_to_unique_sentinel``: a raw chunk of
``raw_length`` tokens is split into alternating non-noise/noise spans (starting with non-noise); each noise
span becomes one sentinel in the inputs, and the targets list each sentinel followed by the span it hides.
Because every row of a packed batch has the same length, the number of noise tokens and spans is the same
for every row, so inputs and targets come out at exactly ``input_length`` and ``target_length``: no padding,
no truncation.

Randomness is counter-based: each row's noise is drawn from a hash of (seed, epoch, the row's tokens). A row
is corrupted the same way whatever batch, process, accumulation split or resumed run it lands in, and
differently in each epoch. The per-row work (hash, two random splits, writing inputs and targets) is one
compiled pass (numba): no per-row Python, no sort, no intermediate mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

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


# SplitMix64 (Steele et al. 2014): a counter-based generator, so any row's numbers can be drawn without a stream.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Uniform draws of 40 bits: times a count of gaps below 2^24, the products fit in 64 bits.
_DRAW_BITS = 40
_MAX_RAW_LENGTH = 2**24


@njit(inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _row_key(row: np.ndarray, position_keys: np.ndarray, salt: np.uint64) -> np.uint64:
    # A position-weighted sum (wrapping) of the tokens: one multiply-add per token, which vectorizes.
    content = np.uint64(0)
    for i in range(row.shape[0]):
        content += (np.uint64(row[i]) + np.uint64(1)) * position_keys[i]
    return _mix(content ^ salt)


@njit(inline="always")
def _segment(key: np.uint64, stream: int, items: int, segments: int, draws: np.ndarray, out: np.ndarray) -> None:
    """Split ``items`` into ``segments`` random positive parts, uniformly over all such splits.

    Selection sampling (Knuth's Algorithm S) picks the segments - 1 cut points among the items - 1 gaps in one
    ordered pass: gap g is taken with probability (cuts still needed) / (gaps left). The draws are made first,
    in a branch-free loop the compiler vectorizes.
    """
    for gap in range(1, items):
        draws[gap] = _mix(key + np.uint64(stream + gap) * _GOLDEN) >> np.uint64(64 - _DRAW_BITS)
    needed = segments - 1
    previous_cut = 0
    part = 0
    for gap in range(1, items):
        # draw / 2^40 < needed / gaps left, in exact integer arithmetic (no float conversion on the critical path)
        if draws[gap] * np.uint64(items - gap) < np.uint64(needed) << np.uint64(_DRAW_BITS):
            out[part] = gap - previous_cut
            previous_cut = gap
            part += 1
            needed -= 1
    out[part] = items - previous_cut


@njit(inline="always")
def _position_keys(length: int) -> np.ndarray:
    keys = np.empty(length, dtype=np.uint64)
    for i in range(length):
        keys[i] = _mix(np.uint64(i) * _GOLDEN + _GOLDEN) | np.uint64(1)  # odd: every token value moves the sum
    return keys


@njit(inline="always")
def _salt(seed: int, epoch: int) -> np.uint64:
    return _mix((np.uint64(seed % 2**32) << np.uint64(32)) | np.uint64(epoch % 2**32))


@njit(inline="always")
def _split_row(row, num_noise, num_spans, salt, position_keys, draws, nonnoise_lengths, noise_lengths) -> None:
    """One row's random split into non-noise and noise spans, each from its own stream of the row's key."""
    key = _row_key(row, position_keys, salt)
    _segment(key, 0, num_noise, num_spans, draws, noise_lengths)
    _segment(key, num_noise, row.shape[0] - num_noise, num_spans, draws, nonnoise_lengths)


@njit(inline="always")
def _write_corrupted(row, nonnoise_lengths, noise_lengths, num_spans, sentinel_ids, eos_id, inputs, targets, start):
    """Write one row's inputs (from position ``start``) and targets given its alternating span lengths.

    Span k is non-noise ``nonnoise_lengths[k]`` then noise ``noise_lengths[k]`` (T5's order); tokens after the
    last noise span stay in the inputs. Each noise span becomes sentinel k in the inputs, and sentinel k followed
    by the span in the targets. Returns the lengths written, EOS included.
    """
    source = 0
    written_inputs = start
    written_targets = 0
    for span in range(num_spans):
        for _ in range(nonnoise_lengths[span]):
            inputs[written_inputs] = row[source]
            written_inputs += 1
            source += 1
        inputs[written_inputs] = sentinel_ids[span]
        targets[written_targets] = sentinel_ids[span]
        written_inputs += 1
        written_targets += 1
        for _ in range(noise_lengths[span]):
            targets[written_targets] = row[source]
            written_targets += 1
            source += 1
    for _ in range(row.shape[0] - source):
        inputs[written_inputs] = row[source]
        written_inputs += 1
        source += 1
    inputs[written_inputs] = eos_id
    targets[written_targets] = eos_id
    return written_inputs + 1, written_targets + 1


@njit(cache=True, nogil=True)
def _corrupt_kernel(tokens, num_noise, num_spans, seed, epoch, sentinel_ids, eos_id, inputs, targets):
    salt, position_keys = _salt(seed, epoch), _position_keys(tokens.shape[1])
    noise_lengths = np.empty(num_spans, np.int64)
    nonnoise_lengths = np.empty(num_spans, np.int64)
    draws = np.empty(tokens.shape[1], np.uint64)
    for r in range(tokens.shape[0]):
        _split_row(tokens[r], num_noise, num_spans, salt, position_keys, draws, nonnoise_lengths, noise_lengths)
        _write_corrupted(
            tokens[r], nonnoise_lengths, noise_lengths, num_spans, sentinel_ids, eos_id, inputs[r], targets[r], 0
        )


def _checked_tokens(tokens: np.ndarray, lengths: CorruptionLengths) -> np.ndarray:
    if tokens.ndim != 2 or tokens.shape[1] != lengths.raw_length:
        raise ValueError(f"expected tokens of shape [batch, {lengths.raw_length}], got {tokens.shape}")
    if lengths.raw_length >= _MAX_RAW_LENGTH:
        raise ValueError(
            f"rows of {lengths.raw_length} tokens are too long for span corruption (at most {_MAX_RAW_LENGTH - 1})"
        )
    if tokens.dtype.kind not in "iu":
        raise ValueError(f"expected integer token ids, got {tokens.dtype}")
    return np.ascontiguousarray(tokens)  # any integer width: the kernel is compiled per dtype, no copy


def corrupt_spans(
    tokens: np.ndarray, lengths: CorruptionLengths, sentinel_ids: np.ndarray, eos_id: int, seed: int = 0, epoch: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Span-corrupt a [batch, raw_length] array of token ids.

    Returns int64 ``(inputs, targets)`` of shapes [batch, input_length] and [batch, target_length].
    ``sentinel_ids[k]`` is the id of ``<extra_id_k>``. Each row's noise depends on (seed, epoch, its tokens).
    """
    tokens = _checked_tokens(tokens, lengths)
    inputs = np.empty((tokens.shape[0], lengths.input_length), dtype=np.int64)
    targets = np.empty((tokens.shape[0], lengths.target_length), dtype=np.int64)
    _corrupt_kernel(
        tokens,
        lengths.num_noise_tokens,
        lengths.num_noise_spans,
        seed,
        epoch,
        np.asarray(sentinel_ids, dtype=np.int64),
        eos_id,
        inputs,
        targets,
    )
    return inputs, targets


def reconstruct(inputs: np.ndarray, targets: np.ndarray, sentinel_ids: np.ndarray, eos_id: int) -> np.ndarray:
    """Invert a sentinel objective for one row: put each target span back at its sentinel (tests, debugging).

    A row ends at its last EOS (padding and -100 labels may follow; a row without EOS is whole); earlier EOS
    tokens are corpus tokens, the separators between packed documents.
    """
    sentinel_set = {int(s): k for k, s in enumerate(sentinel_ids)}

    def content(row: np.ndarray) -> list[int]:
        tokens = row.tolist()
        return tokens[: len(tokens) - 1 - tokens[::-1].index(eos_id)] if eos_id in tokens else tokens

    spans: dict[int, list[int]] = {}
    current = None
    for token in content(targets):
        if token in sentinel_set:
            current = sentinel_set[token]
            spans[current] = []
        elif current is not None:
            spans[current].append(token)
    restored: list[int] = []
    for token in content(inputs):
        restored.extend(spans.get(sentinel_set[token], []) if token in sentinel_set else [token])
    return np.asarray(restored, dtype=inputs.dtype)
