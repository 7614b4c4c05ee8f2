"""The PMI n-gram vocabulary of PMI-masking (Levine et al., ICLR 2021, "PMI-Masking: Principled Masking of
Correlated Spans"): word n-grams of a corpus ranked by how much more often they occur than their parts would
by chance, written and read in the plain format of the paper's public release (one n-gram per line).

Words are the tokenizer's: a SentencePiece token whose piece starts with "▁" (U+2581) begins a word, and the
word runs to the next such token. Special tokens (``<unk>``, sentinels, ...) end a word and never belong to
one, so text holding an unknown character takes no part in any n-gram. Counting is exact and vectorized
(numpy, no per-token Python): each word's token ids are hashed to 64 bits and mapped to a word id, the
corpus is kept as one array of word ids (4 bytes a word), and n-grams of word ids are hashed and counted
with sorting, one length at a time, in chunks merged as they come.
"""

from __future__ import annotations

import itertools
import logging
import os
import resource
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from t5lab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

WORD_START = "\u2581"
MAX_N = 5  # the longest n-grams the paper scores, and that PMI-masking matches
DEFAULT_SIZE = 100_000  # the paper's vocabulary size for its corpora
DEFAULT_MIN_COUNT = 10
_SEPARATOR = np.uint32(0xFFFFFFFF)  # in the word-id corpus: a line end or a special token, never inside an n-gram
_BATCH_LINES = 20_000
_BATCH_CHARS = 4_000_000
_COUNT_CHUNK = 1 << 22  # n-gram positions hashed and sorted at a time

# SplitMix64's finalizer (Steele et al. 2014), as in span_corruption.py, here on whole numpy arrays.
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TOKEN_SALT = np.uint64(0x2545F4914F6CDD1D)


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class PmiNgram:
    """One entry of a PMI vocabulary: its words joined by single spaces, its length in words, its count in the
    corpus and its PMI_n score (natural log)."""

    text: str
    n: int
    count: int
    pmi: float


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    added = getattr(tokenizer, "added_tokens_decoder", {})
    return sorted(set(tokenizer.all_special_ids) | {i for i, token in added.items() if token.special})


def _piece_starts(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    starts = np.fromiter((isinstance(p, str) and p.startswith(WORD_START) for p in pieces), bool, len(pieces))
    if not starts.any():
        raise ConfigError(
            f"the tokenizer has no token starting with '{WORD_START}' (U+2581), so it does not mark word starts; "
            "PMI-masking needs a SentencePiece tokenizer such as T5's."
        )
    return starts


def word_start_table(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """A bool per token id (``len(tokenizer)`` of them): True where the token begins a word.

    A word begins at a SentencePiece piece starting with "▁" (U+2581) and runs up to the next True token.
    Special tokens (``<pad>``, ``</s>``, ``<unk>``, ``<extra_id_N>``, added special tokens) are True as well:
    each ends the word before it and is a unit of its own, never part of a word. PMI-masking's kernel finds
    words (and so PMI n-grams) in packed token rows with this table.
    """
    table = _piece_starts(tokenizer)
    table[_special_ids(tokenizer)] = True
    return table


def check_build_arguments(min_count: int, max_n: int, size: int = 1) -> None:
    """Raise a one-line :class:`ConfigError` for a vocabulary size, minimum count or n-gram length out of range."""
    if size < 1:
        raise ConfigError(f"--size must be at least 1, got {size}.")
    if min_count < 1:
        raise ConfigError(f"--min_count must be at least 1, got {min_count}.")
    if not 2 <= max_n <= MAX_N:
        raise ConfigError(f"--max_n must be between 2 and {MAX_N}, got {max_n}.")


def _ragged_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices of the concatenated ranges [start, start + length)."""
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offsets)


def _batches(texts: Iterable[str]) -> Iterator[list[str]]:
    """Non-blank lines of the texts in batches: n-grams never cross a line, so each is tokenized on its own."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        for line in text.splitlines():
            if not line or line.isspace():
                continue
            batch.append(line)
            chars += len(line)
            if len(batch) >= _BATCH_LINES or chars >= _BATCH_CHARS:
                yield batch
                batch, chars = [], 0
    if batch:
        yield batch


class _WordIds:
    """Word hash -> dense word id, with each word's token ids (for decoding) kept once."""

    def __init__(self) -> None:
        self.hashes = np.empty(0, np.uint64)  # sorted
        self.ids = np.empty(0, np.uint32)  # aligned with hashes
        self.token_chunks: list[np.ndarray] = []
        self.length_chunks: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.hashes)

    def lookup(self, hashes: np.ndarray, tokens: np.ndarray, word_pos: np.ndarray, word_len: np.ndarray) -> np.ndarray:
        """Ids of ``hashes`` (one per word of a batch), new words getting the next ids."""
        unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        where = np.searchsorted(self.hashes, unique)
        known = where < len(self.hashes)
        known[known] = self.hashes[where[known]] == unique[known]
        ids = np.empty(len(unique), np.uint32)
        ids[known] = self.ids[where[known]]
        new = ~known
        if new.any():
            if len(self) + int(new.sum()) >= int(_SEPARATOR):
                raise ConfigError("the corpus has more than 4 billion distinct words; give a smaller corpus.")
            ids[new] = np.arange(len(self), len(self) + int(new.sum()), dtype=np.uint32)
            self.hashes = np.insert(self.hashes, where[new], unique[new])
            self.ids = np.insert(self.ids, where[new], ids[new])
            # ids are handed out in order of the sorted new hashes, so the token chunks follow id order
            self.token_chunks.append(tokens[_ragged_index(word_pos[first[new]], word_len[first[new]])])
            self.length_chunks.append(word_len[first[new]])
        return ids[inverse.ravel()]

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """All words' token ids concatenated in id order, and each word's offset into them (one more at the end)."""
        lengths = np.concatenate(self.length_chunks) if self.length_chunks else np.empty(0, np.int64)
        flat = np.concatenate(self.token_chunks) if self.token_chunks else np.empty(0, np.int64)
        return flat, np.concatenate([[0], np.cumsum(lengths)])


def _word_corpus(
    texts: Iterable[str], tokenizer: PreTrainedTokenizerBase, piece_starts: np.ndarray, specials: np.ndarray
) -> tuple[np.ndarray, _WordIds, int]:
    """The corpus as word ids with a separator after each line and in place of special tokens; the word ids; the
    number of lines."""
    unit_starts = piece_starts | specials
    words = _WordIds()
    parts: list[np.ndarray] = []
    lines = 0
    for batch in _batches(texts):
        lines += len(batch)
        encoded = tokenizer(batch, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        tokens = np.fromiter(itertools.chain.from_iterable(encoded), np.int64, int(lengths.sum()))
        if not len(tokens):
            continue
        line_starts = (np.cumsum(lengths) - lengths)[lengths > 0]
        starts = unit_starts[tokens]
        starts[line_starts] = True  # a line opening without "▁" (rare) opens a unit that is no word: see below
        word_pos = np.flatnonzero(starts)
        word_len = np.diff(np.append(word_pos, len(tokens)))
        first = tokens[word_pos]
        is_word = piece_starts[first] & ~specials[first]
        # A hash of (token, place in word) per token, summed over the word: order matters, and two different
        # words share a hash with probability 2^-64.
        place = np.arange(len(tokens)) - np.repeat(word_pos, word_len)
        token_keys = _mix(tokens.astype(np.uint64) * _GOLDEN + place.astype(np.uint64) * _TOKEN_SALT)
        hashes = _mix(np.add.reduceat(token_keys, word_pos))
        ids = np.full(len(word_pos), _SEPARATOR, np.uint32)
        ids[is_word] = words.lookup(hashes[is_word], tokens, word_pos[is_word], word_len[is_word])
        # Each line's words, then a separator.
        line_of_word = np.searchsorted(line_starts, word_pos, side="right") - 1
        out = np.full(len(word_pos) + len(line_starts), _SEPARATOR, np.uint32)
        out[np.arange(len(word_pos)) + line_of_word] = ids
        parts.append(out)
    corpus = np.concatenate(parts) if parts else np.empty(0, np.uint32)
    return corpus, words, lines


def _ngram_hashes(word_keys: np.ndarray, columns: Sequence[np.ndarray]) -> np.ndarray:
    """One hash per row of the n-gram whose word ids are ``columns[0][i], columns[1][i], ...``."""
    h = word_keys[columns[0]]
    for column in columns[1:]:
        h = _mix(h * _GOLDEN + word_keys[column])
    return h


def _merge_counts(
    hashes: np.ndarray, counts: np.ndarray, more: np.ndarray, more_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    merged, inverse = np.unique(np.concatenate([hashes, more]), return_inverse=True)
    return merged, np.bincount(inverse.ravel(), np.concatenate([counts, more_counts]), len(merged)).astype(np.int64)


class NgramCounts:
    """Exact counts of the word n-grams of a corpus (lines never joined), kept for those that can be scored.

    An n-gram with a count of at least ``min_count`` has all its sub-n-grams at least as frequent, so each
    length is counted only where both (n-1)-grams inside are frequent (the Apriori principle): exact, with far
    fewer distinct n-grams held than counting every one. Public figures: ``words`` and (non-blank) ``lines`` read,
    ``positions[n - 1]`` (places an n-gram fits in a line, the denominator of p for length n) and
    ``frequent[n - 1]`` (distinct n-grams with a count of at least ``min_count``).
    """

    def __init__(self, texts: Iterable[str], tokenizer: PreTrainedTokenizerBase, max_n: int, min_count: int) -> None:
        check_build_arguments(min_count, max_n)
        piece_starts = _piece_starts(tokenizer)
        specials = np.zeros(len(piece_starts), bool)
        specials[_special_ids(tokenizer)] = True
        corpus, words, self.lines = _word_corpus(texts, tokenizer, piece_starts, specials)
        self.max_n, self.min_count = max_n, min_count
        self._corpus = corpus
        valid = corpus != _SEPARATOR
        self.words = int(valid.sum())
        self._unigram_counts = np.bincount(corpus[valid], minlength=len(words)).astype(np.int64)
        self._word_texts = self._decode_frequent_words(tokenizer, words)
        self._word_keys = _mix(np.arange(len(words), dtype=np.uint64) + _TOKEN_SALT)
        # Tables of the frequent n-grams, n >= 2: sorted hashes, counts, a position where each occurs.
        self._tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        positions = [self.words]
        usable = np.zeros(len(words) + 1, bool)  # the extra last entry stands for the separator
        usable[list(self._word_texts)] = True
        frequent = usable[np.where(valid, corpus, len(words))]
        for n in range(2, max_n + 1):
            valid = valid[:-1] & (corpus[n - 1 :] != _SEPARATOR)
            positions.append(int(valid.sum()))
            frequent = self._count_length(n, frequent[:-1] & frequent[1:])
        self.positions = tuple(positions)
        self.frequent = (len(self._word_texts), *(len(self._tables[n][0]) for n in range(2, max_n + 1)))

    def _decode_frequent_words(self, tokenizer: PreTrainedTokenizerBase, words: _WordIds) -> dict[int, str]:
        """Decoded text of each word frequent enough to be in an n-gram. A word that decodes to nothing (a lone
        "▁" piece before an unknown character) or to text holding a space cannot be one word of the plain format,
        so it is left out of n-grams."""
        ids = np.flatnonzero(self._unigram_counts >= self.min_count)
        flat, offsets = words.tokens()
        texts = tokenizer.batch_decode(
            [flat[offsets[i] : offsets[i + 1]].tolist() for i in ids], clean_up_tokenization_spaces=False
        )
        return {int(i): text for i, text in zip(ids, texts) if text and text.split() == [text]}

    def _count_length(self, n: int, candidates: np.ndarray) -> np.ndarray:
        """Count the n-grams starting at ``candidates`` (bool per position); keep those reaching ``min_count``;
        return where they occur (bool per position)."""
        starts = np.flatnonzero(candidates)
        hashes, counts = np.empty(0, np.uint64), np.empty(0, np.int64)
        for chunk in range(0, len(starts), _COUNT_CHUNK):
            part = self._hashes_at(starts[chunk : chunk + _COUNT_CHUNK], n)
            more, more_counts = np.unique(part, return_counts=True)
            hashes, counts = _merge_counts(hashes, counts, more, more_counts)
        # Pruned only now that every occurrence is counted, so the counts kept are exact.
        keep = counts >= self.min_count
        hashes, counts = hashes[keep], counts[keep]
        frequent = np.zeros(len(candidates), bool)
        found_hashes, found_at = [np.empty(0, np.uint64)], [np.empty(0, np.int64)]
        for chunk in range(0, len(starts), _COUNT_CHUNK):
            at = starts[chunk : chunk + _COUNT_CHUNK]
            part = self._hashes_at(at, n)
            where = np.minimum(np.searchsorted(hashes, part), max(len(hashes) - 1, 0))
            hit = hashes[where] == part if len(hashes) else np.zeros(len(part), bool)
            frequent[at[hit]] = True
            unique, first = np.unique(part[hit], return_index=True)
            found_hashes.append(unique)
            found_at.append(at[hit][first])
        # A stable sort keeps chunks in corpus order: the first position of each n-gram is where it first occurs.
        _, first = np.unique(np.concatenate(found_hashes), return_index=True)
        self._tables[n] = (hashes, counts, np.concatenate(found_at)[first])
        return frequent

    def _hashes_at(self, starts: np.ndarray, n: int) -> np.ndarray:
        return _ngram_hashes(self._word_keys, [self._corpus[starts + k] for k in range(n)])

    def _log_p(self, words: np.ndarray) -> np.ndarray:
        """log p of the n-gram in each row of ``words`` (word ids; every one frequent)."""
        n = words.shape[1]
        if n == 1:
            counts = self._unigram_counts[words[:, 0]]
        else:
            hashes, table_counts, _ = self._tables[n]
            counts = table_counts[np.searchsorted(hashes, _ngram_hashes(self._word_keys, list(words.T)))]
        return np.log(counts) - np.log(self.positions[n - 1])

    def top(self, size: int) -> list[PmiNgram]:
        """The ``size`` n-grams (n >= 2) of highest PMI_n, best first; ties go to the more frequent."""
        check_build_arguments(self.min_count, self.max_n, size)
        scored: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # per n: n, first positions, counts, PMI
        for n, (_, counts, at) in self._tables.items():
            if not len(counts):
                continue
            words = self._corpus[at[:, None] + np.arange(n)].astype(np.int64)
            log_p = {(a, k): self._log_p(words[:, a : a + k]) for k in range(1, n) for a in range(n - k + 1)}
            whole = np.log(counts) - np.log(self.positions[n - 1])
            # Levine et al. (ICLR 2021), section 3, equation 3:
            #   PMI_n(w1..wn) = min over segmentations s of w1..wn into 2 or more contiguous parts of
            #                   log( p(w1..wn) / prod_{part in s} p(part) )
            # The min is over all 2^(n-1) - 1 segmentations: a collocation must beat every split, so an n-gram
            # made of a strong (n-1)-gram plus an unrelated word scores low.
            pmi = np.full(len(counts), np.inf)
            for cuts in itertools.product((False, True), repeat=n - 1):
                if not any(cuts):
                    continue
                bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), n]
                parts = sum(log_p[(a, b - a)] for a, b in itertools.pairwise(bounds))
                pmi = np.minimum(pmi, whole - parts)
            scored.append((n, at, counts, pmi))
        if not scored:
            return []
        lengths = np.concatenate([np.full(len(at), n) for n, at, _, _ in scored])
        first = np.concatenate([at for _, at, _, _ in scored])
        counts = np.concatenate([c for _, _, c, _ in scored])
        pmi = np.concatenate([p for _, _, _, p in scored])
        # Scores equal but for rounding (the same ratio of counts) are ties, which go to the more frequent, then to
        # the shorter n-gram, then to the one seen first: the same corpus always gives the same file.
        order = np.lexsort((first, lengths, -counts, -np.round(pmi, 9)))[:size]
        return [
            PmiNgram(
                " ".join(self._word_texts[w] for w in self._corpus[first[i] : first[i] + lengths[i]].tolist()),
                int(lengths[i]),
                int(counts[i]),
                float(pmi[i]),
            )
            for i in order
        ]


# --pmi_vocab build: t5lab pretrain builds the vocabulary from its corpus and keeps it in the run dir as this file
BUILD = "build"
VOCAB_FILE = "pmi_vocab.txt"
MISSING_VOCAB = f"pmi_masking needs --pmi_vocab FILE (`t5lab pmi build` writes one) or --pmi_vocab {BUILD}."


def build_pmi_vocab(
    texts: Iterable[str],
    tokenizer: PreTrainedTokenizerBase,
    size: int = DEFAULT_SIZE,
    min_count: int = DEFAULT_MIN_COUNT,
    max_n: int = MAX_N,
) -> list[PmiNgram]:
    """The PMI vocabulary of a corpus: its ``size`` word n-grams (2 <= n <= ``max_n``, seen at least
    ``min_count`` times, never across a line) of highest PMI_n (Levine et al., ICLR 2021, equation 3), best first.

    Texts are split into lines and tokenized in batches (no special tokens); words are the tokenizer's (see
    :func:`word_start_table`). p(x) is the count of x over the number of places an n-gram of its length fits.
    """
    check_build_arguments(min_count, max_n, size)
    return NgramCounts(texts, tokenizer, max_n, min_count).top(size)


def top_ngrams(counts: NgramCounts, size: int, remedy: str) -> list[PmiNgram]:
    """The ``size`` n-grams of highest PMI; a DataError saying ``remedy`` when the corpus has none to offer."""
    ngrams = counts.top(size)
    if not ngrams:
        raise DataError(
            f"no n-gram of 2 to {counts.max_n} words occurs {counts.min_count} times in the {counts.words:,} words "
            f"read; {remedy}"
        )
    return ngrams


def write_pmi_vocab(ngrams: Iterable[PmiNgram], path: str | Path) -> None:
    """Write the plain format of the public PMI-masking release: one n-gram per line, best first, nothing else.

    Written to a temporary file beside ``path`` and renamed, so a killed build never leaves half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="\n") as out:
            out.writelines(f"{ngram.text}\n" for ngram in ngrams)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise ConfigError(f"PMI vocabulary {path} does not exist.")
    if not path.is_file():
        raise ConfigError(f"PMI vocabulary {path} is not a file.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read PMI vocabulary {path}: {exc.strerror or exc}.") from None
    if not data.strip():
        raise ConfigError(f"PMI vocabulary {path} is empty; build one with `t5lab pmi build`.")
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ConfigError(f"PMI vocabulary {path} is not a text file: line {line} holds a NUL byte.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"PMI vocabulary {path} is not UTF-8 text at line {line} ({exc.reason}).") from None
    return text.splitlines()


def load_pmi_vocab(path: str | Path, tokenizer: PreTrainedTokenizerBase) -> list[np.ndarray]:
    """The n-grams of a plain-format PMI vocabulary (``t5lab pmi build``'s or the public release's) as token ids.

    Each line is tokenized as the model sees it in running text: every word starts with "▁", so "new york"
    gives the ids it has inside a sentence. Blank lines are ignored; a line of one word or of more than
    ``MAX_N``, or one whose tokens hold a special token (``<unk>`` for a character the tokenizer lacks) or split
    into another number of words, is skipped and counted in a warning. Returns one int64 array per n-gram, in
    file order. A missing, empty, binary or non-UTF-8 file, or one without a usable line, is a one-line
    :class:`ConfigError` naming the file (and the line).
    """
    path = Path(path)
    lines = _read_lines(path)
    kept: list[tuple[int, str, int]] = []  # line number, text, words
    skipped: list[int] = []  # line numbers
    for number, line in enumerate(lines, 1):
        words = line.split()
        if 2 <= len(words) <= MAX_N:
            kept.append((number, " ".join(words), len(words)))
        elif words:
            skipped.append(number)
    starts = word_start_table(tokenizer)
    specials = np.zeros(len(starts), bool)
    specials[_special_ids(tokenizer)] = True
    encoded = tokenizer([text for _, text, _ in kept], add_special_tokens=False)["input_ids"] if kept else []
    ngrams = []
    for (number, _, num_words), ids in zip(kept, encoded):
        ids = np.asarray(ids, np.int64)
        if len(ids) and not specials[ids].any() and int(starts[ids].sum()) == num_words and starts[ids[0]]:
            ngrams.append(ids)
        else:
            skipped.append(number)
    if not ngrams:
        raise ConfigError(
            f"PMI vocabulary {path} has no usable line: each needs 2 to {MAX_N} words the tokenizer knows "
            f"(line {min(skipped, default=1)} is not)."
        )
    if skipped:
        logger.warning(
            "PMI vocabulary %s: skipped %d of %d n-grams (one word, more than %d, or characters the tokenizer "
            "lacks; the first at line %d).",
            path,
            len(skipped),
            len(skipped) + len(ngrams),
            MAX_N,
            min(skipped),
        )
    return ngrams


def build_summary(counts: NgramCounts, ngrams: Sequence[PmiNgram], seconds: float, top: int = 10) -> str:
    """What a build found, for the command's output: n-grams per length, the best ``top``, time and peak memory."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    per_length = [sum(1 for g in ngrams if g.n == n) for n in range(2, counts.max_n + 1)]
    frequent = ", ".join(f"{n}: {f:,}" for n, f in enumerate(counts.frequent[1:], 2))
    lines = [
        f"{len(ngrams):,} n-grams by length: " + ", ".join(f"{n}: {c:,}" for n, c in enumerate(per_length, 2)),
        f"from {counts.words:,} words in {counts.lines:,} lines "
        f"(n-grams seen at least {counts.min_count} times: {frequent})",
        f"top {min(top, len(ngrams))}:",
        f"  {'PMI':>7} {'count':>9}  n-gram",
        *(f"  {g.pmi:7.3f} {g.count:9,}  {g.text}" for g in ngrams[:top]),
        f"built in {seconds / 60:.1f} min, peak RSS {peak_mb:,.0f} MB",
    ]
    return "\n".join(lines)
