"""BASELINE for benchmarks only: the seed project's PMI-masking, re-created from the seed analysis.

Not part of t5lab and never imported by it. Per row, in Python (as the seed's collator did):

- ids become SentencePiece pieces; a piece starts a word if it begins with "▁" or is a substring of
  ``string.punctuation``; ``</s>`` and ``<pad>`` split the row into segments;
- per segment, lower-cased words are joined by spaces and every n-word window (n = 5, 4, 3, 2) found in the
  vocabulary (a set of strings) is a candidate; candidates are shuffled and kept greedily when they do not
  overlap earlier picks; the other words are single units;
- all units are shuffled, stable-sorted by token count (longest first) and added while they fit the budget;
- the mask becomes sentinel inputs and targets (adjacent masked units share a sentinel).

Two of the seed's defects are NOT reproduced, so the comparison is on equal work: the budget here is
``round(density x real tokens)`` (the seed hard-coded density 0.5 and counted padding).
"""

from __future__ import annotations

import random
import string

import numpy as np


def _words(pieces: list[str], specials: set[str]) -> list[list[tuple[int, int]]]:
    """Segments of words, each word a (start, end) range of piece positions."""
    segments: list[list[tuple[int, int]]] = [[]]
    for i, piece in enumerate(pieces):
        if piece in specials:
            segments.append([])
            continue
        if not segments[-1] or piece.startswith("▁") or piece in string.punctuation:
            segments[-1].append((i, i + 1))
        else:
            start, _ = segments[-1][-1]
            segments[-1][-1] = (start, i + 1)
    return [s for s in segments if s]


def seed_pmi_mask(pieces: list[str], vocab: set[str], density: float, rng: random.Random) -> np.ndarray:
    """The seed's unit selection for one row of pieces; returns the noise mask."""
    mask = np.zeros(len(pieces), bool)
    units: list[tuple[int, int]] = []
    for words in _words(pieces, {"</s>", "<pad>"}):
        texts = ["".join(pieces[a:b]).replace("▁", "").lower() for a, b in words]
        candidates = [
            (w, w + n) for n in (5, 4, 3, 2) for w in range(len(words) - n + 1) if " ".join(texts[w : w + n]) in vocab
        ]
        rng.shuffle(candidates)
        taken = [False] * len(words)
        for first, last in candidates:
            if not any(taken[first:last]):
                taken[first:last] = [True] * (last - first)
                units.append((words[first][0], words[last - 1][1]))
        units += [words[w] for w in range(len(words)) if not taken[w]]
    rng.shuffle(units)
    units.sort(key=lambda u: u[0] - u[1])  # stable: longest first
    budget = max(1, round(len(pieces) * density))
    for start, end in units:
        if end - start <= budget:
            mask[start:end] = True
            budget -= end - start
    return mask


def sentinel_inputs_and_targets(ids: np.ndarray, mask: np.ndarray, sentinel_ids: np.ndarray, eos_id: int):
    """Adjacent masked positions share one sentinel: inputs keep the rest, targets list sentinel + span."""
    starts = mask & ~np.concatenate([[False], mask[:-1]])
    span_index = np.cumsum(starts) - 1
    inputs = np.where(starts, sentinel_ids[np.maximum(span_index, 0)], ids)[~mask | starts]
    start_positions = np.flatnonzero(starts[mask])
    targets = np.insert(ids[mask], start_positions, sentinel_ids[: len(start_positions)])
    return np.append(inputs, eos_id), np.append(targets, eos_id)


class SeedPmiCollator:
    """Per-row Python PMI-masking over a batch of id rows (the baseline timed by bench/objectives_speed.py)."""

    def __init__(self, tokenizer, vocab: set[str], density: float = 0.15, seed: int = 0) -> None:
        self.tokenizer, self.vocab, self.density = tokenizer, vocab, density
        self.sentinels = np.asarray(tokenizer.convert_tokens_to_ids([f"<extra_id_{k}>" for k in range(100)]))
        self.rng = random.Random(seed)

    def __call__(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for ids in rows:
            pieces = self.tokenizer.convert_ids_to_tokens(ids.tolist())
            mask = seed_pmi_mask(pieces, self.vocab, self.density, self.rng)
            out.append(sentinel_inputs_and_targets(ids, mask, self.sentinels, self.tokenizer.eos_token_id))
        return out
