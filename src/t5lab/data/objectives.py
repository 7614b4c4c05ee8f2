"""Pre-training objectives: what a packed chunk becomes (encoder inputs, decoder targets), in one compiled pass.

An objective is a mixture of denoisers; a single objective is a mixture of one. Each row draws its denoiser and
its noise from its own counter-based stream (a hash of seed, epoch and the row's tokens, as span corruption
does), so batching, gradient accumulation, processes and resumed runs never change what a row becomes.

Denoisers (``kind``):

- ``span``: T5 span corruption (``data/span_corruption.py``): fixed numbers of noise tokens and spans.
- ``iid``: T5's "BERT-style" i.i.d. masking with corrupted spans replaced (Raffel et al. 2020, section 3.3):
  exactly round(density x length) tokens chosen uniformly without replacement, so every token is noise with
  probability ``noise_density``; consecutive noise tokens share one sentinel.
- ``prefix``: prefix LM: the encoder reads the chunk's first part, the decoder writes the rest; the
  continuation has k tokens, k uniform in 1 .. 2m - 1 with m = round(density x length) (mean m).
- ``pmi``: PMI-masking (Levine et al. 2021): whole units are masked, a unit being a word n-gram of the PMI
  vocabulary (longest match, left to right) or else a single word (words begin at SentencePiece's "▁"); units
  are drawn in random order and masked while they fit the budget of round(density x length) tokens; adjacent
  masked units share one sentinel.

Shapes are fixed per objective: one raw chunk length for every denoiser, and inputs/targets padded to the
largest length any denoiser can produce from it (labels -100 on padding). Plain span corruption needs no
padding: 568 raw tokens -> 512 inputs / 114 targets, exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from transformers import PreTrainedTokenizerBase

from t5lab.data.pmi import MISSING_VOCAB
from t5lab.data.span_corruption import (
    _GOLDEN,
    _mix,
    _noise_counts,
    _position_keys,
    _row_key,
    _salt,
    _split_row,
    _write_corrupted,
    lengths_for_raw_length,
)
from t5lab.data.tokenizer import sentinel_ids
from t5lab.errors import ConfigError

SPAN, IID, PREFIX, PMI = 0, 1, 2, 3
KINDS = {"span": SPAN, "iid": IID, "prefix": PREFIX, "pmi": PMI}
# Objective names users type -> denoiser kind.
OBJECTIVES = {"span_corruption": "span", "iid_masking": "iid", "prefix_lm": "prefix", "pmi_masking": "pmi"}
MODE_TOKENS = ("[NLU]", "[NLG]", "[S2S]")
MAX_NGRAM_WORDS = 5


@dataclass(frozen=True)
class Denoiser:
    """One way to corrupt a chunk, and its share of the rows."""

    kind: str  # span | iid | prefix | pmi
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0  # span only
    mode_token: str | None = None  # prepended to the encoder input (UL2's [NLU], [NLG], [S2S])
    weight: float = 1.0

    @property
    def name(self) -> str:
        """The objective's name as users write it: span_corruption, iid_masking, prefix_lm or pmi_masking."""
        return {v: k for k, v in OBJECTIVES.items()}[self.kind]

    def describe(self) -> str:
        span = f", mean span {self.mean_noise_span_length:g}" if self.kind == "span" else ""
        mode = f", mode {self.mode_token}" if self.mode_token else ""
        return f"{self.name} (density {self.noise_density:g}{span}{mode})"


# UL2's mixture of denoisers (Tay et al. 2022, "Unifying Language Learning Paradigms", Table 1 / section 3.1.2):
# R = regular span corruption, X = extreme (long spans and/or high density), S = sequential (prefix LM, whose
# target is about a quarter of the sequence); the seven denoisers are sampled with equal probability.
UL2 = (
    Denoiser("span", 0.15, 3.0, "[NLU]"),
    Denoiser("span", 0.15, 8.0, "[NLU]"),
    Denoiser("span", 0.5, 3.0, "[NLG]"),
    Denoiser("span", 0.5, 8.0, "[NLG]"),
    Denoiser("span", 0.15, 64.0, "[NLG]"),
    Denoiser("span", 0.5, 64.0, "[NLG]"),
    Denoiser("prefix", 0.25, 3.0, "[S2S]"),
)
PRESETS = {"ul2": UL2}
_DENOISER_KEYS = {"objective", "noise_density", "mean_noise_span_length", "mode_token", "weight"}


def _named(name: str, weight: float, noise_density: float, mean_noise_span_length: float) -> list[Denoiser]:
    if name in PRESETS:
        total = sum(d.weight for d in PRESETS[name])
        return [Denoiser(**{**d.__dict__, "weight": weight * d.weight / total}) for d in PRESETS[name]]
    if name not in OBJECTIVES:
        known = ", ".join([*OBJECTIVES, *PRESETS])
        raise ConfigError(f"unknown objective '{name}'; choose from {known}, or a mixture such as 'a:0.5,b:0.5'.")
    return [Denoiser(OBJECTIVES[name], noise_density, mean_noise_span_length, None, weight)]


def _weight(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"objective weight of {where} must be a positive number, got {value!r}.")
    return float(value)


def _from_mapping(entry: Mapping, noise_density: float, mean_noise_span_length: float) -> list[Denoiser]:
    unknown = set(entry) - _DENOISER_KEYS
    if unknown or "objective" not in entry:
        raise ConfigError(
            f"an objective entry needs 'objective' and may have {', '.join(sorted(_DENOISER_KEYS - {'objective'}))}; "
            f"got {', '.join(map(str, entry))}."
        )
    name = entry["objective"]
    weight = _weight(entry.get("weight", 1.0), str(name))
    if name in PRESETS:
        return _named(str(name), weight, noise_density, mean_noise_span_length)
    (base,) = _named(str(name), weight, noise_density, mean_noise_span_length)
    try:
        density = float(entry.get("noise_density", base.noise_density))
        span = float(entry.get("mean_noise_span_length", base.mean_noise_span_length))
    except (TypeError, ValueError):
        raise ConfigError(f"noise_density and mean_noise_span_length of objective '{name}' must be numbers.") from None
    mode = entry.get("mode_token")
    if mode is not None and (not isinstance(mode, str) or not mode.strip()):
        raise ConfigError(f"mode_token of objective '{name}' must be a non-empty string.")
    return [Denoiser(base.kind, density, span, mode, weight)]


def parse_objective(
    spec: str, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[Denoiser, ...]:
    """The denoisers of an objective as users write it (flag or YAML), weights normalised to 1.

    ``spec`` is a name (``span_corruption``, ``iid_masking``, ``prefix_lm``, ``pmi_masking``, ``ul2``), a
    mixture ``name:weight,name:weight``, or JSON (what a YAML config's mapping or list becomes): a mapping
    ``{name: weight}``, a list of names (equal weights) or a list of entries
    ``{objective, noise_density, mean_noise_span_length, mode_token, weight}``. Plain names take
    ``noise_density`` and ``mean_noise_span_length`` from their flags.
    """
    spec = spec.strip()
    denoisers: list[Denoiser] = []
    if spec.startswith(("{", "[")):
        try:
            value = json.loads(spec)
        except json.JSONDecodeError:
            raise ConfigError(f"--objective is not valid JSON: {spec[:60]}") from None
        entries = list(value.items()) if isinstance(value, dict) else list(value)
        for entry in entries:
            if isinstance(entry, tuple):
                denoisers += _named(
                    str(entry[0]), _weight(entry[1], str(entry[0])), noise_density, mean_noise_span_length
                )
            elif isinstance(entry, str):
                denoisers += _named(entry, 1.0, noise_density, mean_noise_span_length)
            elif isinstance(entry, dict):
                denoisers += _from_mapping(entry, noise_density, mean_noise_span_length)
            else:
                raise ConfigError(f"cannot read objective entry {entry!r}; use a name or a mapping.")
    else:
        for part in spec.split(","):
            name, _, weight = part.strip().partition(":")
            try:
                value = float(weight) if weight else 1.0
            except ValueError:
                raise ConfigError(f"objective weight of '{name}' must be a number, got '{weight}'.") from None
            denoisers += _named(name.strip(), _weight(value, name.strip()), noise_density, mean_noise_span_length)
    if not denoisers:
        raise ConfigError("--objective is empty; use e.g. span_corruption.")
    for d in denoisers:
        if not 0.0 < d.noise_density < 1.0:
            raise ConfigError(f"noise_density of {d.describe()} must be strictly between 0 and 1.")
        if d.mean_noise_span_length < 1.0:
            raise ConfigError(f"mean_noise_span_length of {d.describe()} must be at least 1.")
    total = sum(d.weight for d in denoisers)
    return tuple(Denoiser(**{**d.__dict__, "weight": d.weight / total}) for d in denoisers)


def mode_tokens(denoisers: Sequence[Denoiser]) -> list[str]:
    """The mode tokens the denoisers prepend, in first-use order (they must be in the tokenizer)."""
    return list(dict.fromkeys(d.mode_token for d in denoisers if d.mode_token))


@dataclass(frozen=True)
class ObjectiveLengths:
    """Chunk length taken from the corpus and the batch shapes it yields."""

    raw_length: int  # corpus tokens per example (before EOS)
    input_length: int  # encoder tokens, EOS included (rows shorter than this are padded)
    target_length: int  # decoder tokens, EOS included (padding labelled -100)
    max_sentinels: int  # sentinels the worst-case row needs


def _worst_case(d: Denoiser, raw_length: int) -> tuple[int, int, int]:
    """(inputs, targets, sentinels) of the longest row ``d`` can make from ``raw_length`` tokens."""
    mode = 1 if d.mode_token else 0
    if d.kind == "span":
        lengths = lengths_for_raw_length(raw_length, d.noise_density, d.mean_noise_span_length)
        return lengths.input_length + mode, lengths.target_length, lengths.num_noise_spans
    noise, _ = _noise_counts(raw_length, d.noise_density, 1.0)
    if d.kind == "prefix":
        return raw_length + mode, _max_continuation(raw_length, noise) + 1, 0
    # iid / pmi: m <= noise tokens in s runs; s <= m and s <= raw - m + 1, so inputs (raw - m + s + 1) <= raw + 1
    # and targets (m + s + 1) <= noise + min(noise, (raw + 1) // 2) + 1.
    spans = min(noise, (raw_length + 1) // 2)
    return raw_length + 1 + mode, noise + spans + 1, spans


def _max_continuation(raw_length: int, noise: int) -> int:
    return min(2 * noise - 1, raw_length - 1)


def objective_lengths(denoisers: Sequence[Denoiser], input_length: int, num_sentinels: int = 100) -> ObjectiveLengths:
    """The longest raw chunk whose every corruption fits ``input_length`` encoder tokens (T5's
    ``random_spans_helper`` for a mixture). For plain span corruption at 512 this is 568 -> 512 / 114."""
    if input_length < 8:
        raise ConfigError(f"--input_length must be at least 8, got {input_length}.")

    def fits(raw: int) -> bool:
        return all(_worst_case(d, raw)[0] <= input_length for d in denoisers)

    raw_length = 2
    if not fits(raw_length):
        raise ConfigError(f"input_length {input_length} is too small for the objective; use at least 8.")
    while fits(raw_length + 1):
        raw_length += 1
    cases = [_worst_case(d, raw_length) for d in denoisers]
    for d, (_, _, sentinels) in zip(denoisers, cases):
        if sentinels > num_sentinels:
            raise ConfigError(
                f"{d.describe()} at input_length {input_length} needs up to {sentinels} sentinels but the tokenizer "
                f"has {num_sentinels}; lower input_length or noise_density, or raise mean_noise_span_length."
            )
    return ObjectiveLengths(
        raw_length=raw_length,
        input_length=max(c[0] for c in cases),
        target_length=max(c[1] for c in cases),
        max_sentinels=max(c[2] for c in cases),
    )


@dataclass(frozen=True)
class Objective:
    """An objective ready to apply: its denoisers as the compiled kernel's arrays, plus token ids."""

    denoisers: tuple[Denoiser, ...]
    lengths: ObjectiveLengths
    kinds: np.ndarray  # int64 per denoiser
    num_noise: np.ndarray  # noise tokens (span, iid, pmi) or mean continuation (prefix)
    num_spans: np.ndarray  # span only
    max_continuation: np.ndarray  # prefix only
    mode_ids: np.ndarray  # -1: no mode token
    thresholds: np.ndarray  # uint64 cumulative weights on 40 bits: row draws below thresholds[k] use denoiser k
    sentinel_ids: np.ndarray
    eos_id: int
    pad_id: int
    unit_starts: np.ndarray  # bool per vocabulary id: the token begins a PMI unit (a word, or a special token)
    ngram_hashes: np.ndarray  # sorted uint64 hashes of the PMI vocabulary's token sequences

    @property
    def raw_length(self) -> int:
        return self.lengths.raw_length


def build_objective(
    denoisers: Sequence[Denoiser],
    input_length: int,
    sentinel_ids: np.ndarray,
    eos_id: int,
    pad_id: int,
    mode_token_ids: Mapping[str, int] | None = None,
    word_starts: np.ndarray | None = None,
    pmi_ngrams: Sequence[np.ndarray] = (),
) -> Objective:
    """Lengths and kernel arrays for ``denoisers``. PMI-masking needs ``word_starts`` (bool per token id, True
    where a token begins a word or is special) and the PMI vocabulary's n-grams as token-id sequences."""
    denoisers = tuple(denoisers)
    lengths = objective_lengths(denoisers, input_length, len(sentinel_ids))
    raw = lengths.raw_length
    mode_token_ids = mode_token_ids or {}
    missing = [m for m in mode_tokens(denoisers) if m not in mode_token_ids]
    if missing:
        raise ConfigError(f"the tokenizer lacks the mode token(s) {', '.join(missing)} of the objective.")
    if any(d.kind == "pmi" for d in denoisers) and (word_starts is None or not len(pmi_ngrams)):
        raise ConfigError(MISSING_VOCAB)
    num_noise, num_spans, continuation = [], [], []
    for d in denoisers:
        noise, spans = _noise_counts(raw, d.noise_density, d.mean_noise_span_length if d.kind == "span" else 1.0)
        num_noise.append(noise)
        num_spans.append(spans if d.kind == "span" else 0)
        continuation.append(_max_continuation(raw, noise) if d.kind == "prefix" else 0)
    cumulative = np.cumsum([d.weight for d in denoisers])
    thresholds = np.minimum(np.round(cumulative / cumulative[-1] * 2.0**40), 2.0**40).astype(np.uint64)
    vocab = len(word_starts) if word_starts is not None else 1
    return Objective(
        denoisers=denoisers,
        lengths=lengths,
        kinds=np.asarray([KINDS[d.kind] for d in denoisers], np.int64),
        num_noise=np.asarray(num_noise, np.int64),
        num_spans=np.asarray(num_spans, np.int64),
        max_continuation=np.asarray(continuation, np.int64),
        mode_ids=np.asarray([mode_token_ids[d.mode_token] if d.mode_token else -1 for d in denoisers], np.int64),
        thresholds=thresholds,
        sentinel_ids=np.asarray(sentinel_ids, np.int64),
        eos_id=int(eos_id),
        pad_id=int(pad_id),
        unit_starts=np.asarray(word_starts, bool) if word_starts is not None else np.zeros(vocab, bool),
        ngram_hashes=np.unique(np.asarray([sequence_hash(np.asarray(g, np.int64)) for g in pmi_ngrams], np.uint64)),
    )


# Salts that separate a row's draws for the denoiser choice, the prefix split and the masks from its span draws.
_CHOICE = np.uint64(0x5DEECE66D2545F49)
_PREFIX = np.uint64(0x2545F4914F6CDD1D)
_UNITS = np.uint64(0x9FB21C651E98DF25)
_DRAW_SHIFT = np.uint64(24)  # 40-bit uniform draws, as in span corruption


@njit(cache=True)
def sequence_hash(tokens: np.ndarray) -> np.uint64:
    """64-bit hash of a token-id sequence; extended token by token while a row is scanned for n-grams."""
    h = np.uint64(0)
    for t in tokens:
        h = _extend_hash(h, t)
    return h


@njit(inline="always")
def _extend_hash(h: np.uint64, token) -> np.uint64:
    return _mix(h ^ (np.uint64(token) + np.uint64(1)) * _GOLDEN)


@njit(inline="always")
def _choose(key, thresholds) -> int:
    """The row's denoiser; a single denoiser draws nothing, so plain span corruption keeps its numbers."""
    d = 0
    if thresholds.shape[0] > 1:
        u = _mix(key ^ _CHOICE) >> _DRAW_SHIFT
        while d < thresholds.shape[0] - 1 and u >= thresholds[d]:
            d += 1
    return d


@njit(inline="always")
def _select_iid(key, raw_length, num_noise, mask) -> None:
    """Exactly ``num_noise`` positions uniformly without replacement (Knuth's selection sampling)."""
    needed = num_noise
    for i in range(raw_length):
        draw = _mix(key + np.uint64(i + 1) * _GOLDEN) >> _DRAW_SHIFT
        take = needed > 0 and draw * np.uint64(raw_length - i) < np.uint64(needed) << np.uint64(40)
        mask[i] = take
        if take:
            needed -= 1


@njit(inline="always")
def _select_pmi(row, key, num_noise, unit_starts, ngram_hashes, mask, unit_begin, unit_end, order_keys) -> None:
    """Mask whole units (PMI n-grams, longest match first, else words) in random order within the budget."""
    raw_length = row.shape[0]
    units = 0
    i = 0
    while i < raw_length:
        # the word ends after position i: up to MAX_NGRAM_WORDS of them
        end = i + 1
        while end < raw_length and not unit_starts[row[end]]:
            end += 1
        unit_stop = end
        if unit_starts[row[i]] and ngram_hashes.shape[0] > 0:
            h = np.uint64(0)
            for p in range(i, end):
                h = _extend_hash(h, row[p])
            words = 1
            while words < MAX_NGRAM_WORDS and end < raw_length:
                next_end = end + 1
                while next_end < raw_length and not unit_starts[row[next_end]]:
                    next_end += 1
                for p in range(end, next_end):
                    h = _extend_hash(h, row[p])
                end = next_end
                words += 1
                found = np.searchsorted(ngram_hashes, h)
                if found < ngram_hashes.shape[0] and ngram_hashes[found] == h:
                    unit_stop = end  # the longest n-gram of the vocabulary starting here wins
        unit_begin[units] = i
        unit_end[units] = unit_stop
        order_keys[units] = _mix((key ^ _UNITS) + np.uint64(units + 1) * _GOLDEN)
        units += 1
        i = unit_stop
    mask[:] = False
    budget = num_noise
    for u in np.argsort(order_keys[:units]):
        size = unit_end[u] - unit_begin[u]
        if size <= budget:
            mask[unit_begin[u] : unit_end[u]] = True
            budget -= size
            if budget == 0:
                break


@njit(inline="always")
def _runs(mask, nonnoise_lengths, noise_lengths) -> int:
    """Alternating (non-noise, noise) run lengths of ``mask``; returns the number of noise runs."""
    spans = 0
    i = 0
    n = mask.shape[0]
    while i < n:
        start = i
        while i < n and not mask[i]:
            i += 1
        if i == n:
            break
        nonnoise_lengths[spans] = i - start
        start = i
        while i < n and mask[i]:
            i += 1
        noise_lengths[spans] = i - start
        spans += 1
    return spans


@njit(cache=True, nogil=True)
def _objective_kernel(
    tokens,
    kinds,
    num_noise,
    num_spans,
    max_continuation,
    mode_ids,
    thresholds,
    seed,
    epoch,
    sentinel_ids,
    eos_id,
    unit_starts,
    ngram_hashes,
    inputs,
    targets,
    input_lengths,
    target_lengths,
):
    raw_length = tokens.shape[1]
    salt, position_keys = _salt(seed, epoch), _position_keys(raw_length)
    noise_lengths = np.empty(raw_length + 1, np.int64)
    nonnoise_lengths = np.empty(raw_length + 1, np.int64)
    draws = np.empty(raw_length + 1, np.uint64)
    mask = np.zeros(raw_length, np.bool_)
    unit_begin = np.empty(raw_length, np.int64)
    unit_end = np.empty(raw_length, np.int64)
    order_keys = np.empty(raw_length, np.uint64)
    for r in range(tokens.shape[0]):
        row = tokens[r]
        key = _row_key(row, position_keys, salt)
        d = _choose(key, thresholds)
        start = 0
        if mode_ids[d] >= 0:
            inputs[r, 0] = mode_ids[d]
            start = 1
        kind = kinds[d]
        if kind == 2:  # prefix LM
            continuation = 1 + np.int64(((_mix(key ^ _PREFIX) >> _DRAW_SHIFT) * np.uint64(max_continuation[d])) >> 40)
            split = raw_length - continuation
            for p in range(split):
                inputs[r, start + p] = row[p]
            inputs[r, start + split] = eos_id
            for p in range(continuation):
                targets[r, p] = row[split + p]
            targets[r, continuation] = eos_id
            input_lengths[r] = start + split + 1
            target_lengths[r] = continuation + 1
            continue
        if kind == 0:
            spans = num_spans[d]
            _split_row(row, num_noise[d], spans, salt, position_keys, draws, nonnoise_lengths, noise_lengths)
        else:
            if kind == 1:
                _select_iid(key, raw_length, num_noise[d], mask)
            else:
                _select_pmi(row, key, num_noise[d], unit_starts, ngram_hashes, mask, unit_begin, unit_end, order_keys)
            spans = _runs(mask, nonnoise_lengths, noise_lengths)
        written_inputs, written_targets = _write_corrupted(
            row, nonnoise_lengths, noise_lengths, spans, sentinel_ids, eos_id, inputs[r], targets[r], start
        )
        input_lengths[r] = written_inputs
        target_lengths[r] = written_targets


def apply_objective(
    tokens: np.ndarray, objective: Objective, seed: int = 0, epoch: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt a [batch, raw_length] array of token ids with ``objective``.

    Returns int64 ``(inputs, targets, input_lengths, target_lengths)``: inputs [batch, input_length] and
    targets [batch, target_length], padded with the pad id after each row's length (EOS included).
    """
    if tokens.ndim != 2 or tokens.shape[1] != objective.raw_length:
        raise ValueError(f"expected tokens of shape [batch, {objective.raw_length}], got {tokens.shape}")
    if tokens.dtype.kind not in "iu":
        raise ValueError(f"expected integer token ids, got {tokens.dtype}")
    tokens = np.ascontiguousarray(tokens)
    batch = tokens.shape[0]
    inputs = np.full((batch, objective.lengths.input_length), objective.pad_id, dtype=np.int64)
    targets = np.full((batch, objective.lengths.target_length), objective.pad_id, dtype=np.int64)
    input_lengths = np.empty(batch, np.int64)
    target_lengths = np.empty(batch, np.int64)
    _objective_kernel(
        tokens,
        objective.kinds,
        objective.num_noise,
        objective.num_spans,
        objective.max_continuation,
        objective.mode_ids,
        objective.thresholds,
        seed,
        epoch,
        objective.sentinel_ids,
        objective.eos_id,
        objective.unit_starts,
        objective.ngram_hashes,
        inputs,
        targets,
        input_lengths,
        target_lengths,
    )
    return inputs, targets, input_lengths, target_lengths


def denoiser_of_rows(tokens: np.ndarray, objective: Objective, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """Which denoiser each row gets (for tests and reports): the same draw the kernel makes."""
    return _choices(np.ascontiguousarray(tokens), objective.thresholds, seed, epoch)


@njit(cache=True)
def _choices(tokens, thresholds, seed, epoch):
    salt, position_keys = _salt(seed, epoch), _position_keys(tokens.shape[1])
    out = np.zeros(tokens.shape[0], np.int64)
    for r in range(tokens.shape[0]):
        out[r] = _choose(_row_key(tokens[r], position_keys, salt), thresholds)
    return out


def objective_for_tokenizer(
    denoisers: Sequence[Denoiser], input_length: int, tokenizer: PreTrainedTokenizerBase, pmi_vocab: str | None = None
) -> Objective:
    """:func:`build_objective` with the ids of ``tokenizer`` (sentinels, EOS, pad, mode tokens, word starts)
    and, for PMI-masking, the n-grams of ``pmi_vocab`` tokenized as they appear in running text."""
    vocab = tokenizer.get_vocab()
    word_starts, ngrams = None, []
    if any(d.kind == "pmi" for d in denoisers):
        from t5lab.data.pmi import load_pmi_vocab, word_start_table

        if not pmi_vocab:
            raise ConfigError(MISSING_VOCAB)
        word_starts = word_start_table(tokenizer)
        word_starts[tokenizer.all_special_ids] = True  # a special token (EOS between documents) is a unit of its own
        ngrams = load_pmi_vocab(pmi_vocab, tokenizer)
    return build_objective(
        denoisers,
        input_length,
        sentinel_ids(tokenizer),
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        {token: vocab[token] for token in mode_tokens(denoisers) if token in vocab},
        word_starts,
        ngrams,
    )
