"""Span corruption is T5-exact: lengths, counts, sentinel order, reconstruction, determinism."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from transformers import AutoTokenizer

from t5lab.data.span_corruption import (
    compute_lengths,
    corrupt_spans,
    lengths_for_raw_length,
    reconstruct,
)
from t5lab.data.tokenizer import sentinel_ids
from t5lab.errors import ConfigError

EOS = 1


def test_t5_default_lengths():
    lengths = compute_lengths(512, 0.15, 3.0)
    assert (lengths.raw_length, lengths.input_length, lengths.target_length) == (568, 512, 114)
    assert (lengths.num_noise_tokens, lengths.num_noise_spans) == (85, 28)


@pytest.mark.parametrize(
    "input_length, density, span",
    [(512, 0.15, 3.0), (128, 0.15, 3.0), (64, 0.3, 2.0), (256, 0.5, 1.0), (1024, 0.15, 8.0), (16, 0.15, 3.0)],
)
def test_lengths_are_the_longest_raw_chunk_that_fits(input_length, density, span):
    lengths = compute_lengths(input_length, density, span, num_sentinels=1000)
    assert lengths.input_length <= input_length
    assert lengths_for_raw_length(lengths.raw_length + 1, density, span).input_length > input_length


@pytest.fixture(scope="module")
def wiki_chunks(wiki_tokenizer_dir, wikitext_file):
    tokenizer = AutoTokenizer.from_pretrained(wiki_tokenizer_dir)
    ids = tokenizer(wikitext_file.read_text(encoding="utf-8")[:200_000], add_special_tokens=False)["input_ids"]
    return tokenizer, np.asarray(ids, dtype=np.int64)


@pytest.mark.parametrize(
    "input_length, density, span", [(512, 0.15, 3.0), (128, 0.15, 3.0), (96, 0.3, 2.5), (64, 0.5, 1.0)]
)
def test_corruption_on_real_text(wiki_chunks, input_length, density, span):
    tokenizer, ids = wiki_chunks
    sentinels = sentinel_ids(tokenizer)
    lengths = compute_lengths(input_length, density, span, len(sentinels))
    rows = len(ids) // lengths.raw_length
    tokens = ids[: rows * lengths.raw_length].reshape(rows, lengths.raw_length)[:48]
    inputs, targets = corrupt_spans(tokens, lengths, sentinels, EOS, seed=7)

    # exact: nothing padded or truncated (for a few settings the largest fit is one token short, as in T5)
    assert inputs.shape == (len(tokens), lengths.input_length)
    assert input_length - 1 <= lengths.input_length <= input_length
    assert targets.shape == (len(tokens), lengths.target_length)
    assert (inputs[:, -1] == EOS).all() and (targets[:, -1] == EOS).all()
    sentinel_set = set(sentinels.tolist())
    for row in range(len(tokens)):
        in_sentinels = [t for t in inputs[row] if t in sentinel_set]
        out_sentinels = [t for t in targets[row] if t in sentinel_set]
        expected = sentinels[: lengths.num_noise_spans].tolist()  # <extra_id_0>, <extra_id_1>, ... in span order
        assert in_sentinels == expected and out_sentinels == expected
        noise_tokens = len(targets[row]) - 1 - len(out_sentinels)
        assert noise_tokens == lengths.num_noise_tokens
        assert (reconstruct(inputs[row], targets[row], sentinels, EOS) == tokens[row]).all()
    assert tokenizer.convert_ids_to_tokens(int(sentinels[0])) == "<extra_id_0>"


def span_lengths(tokens: np.ndarray, lengths, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (non-noise, noise) span lengths of each row, read back from corrupt_spans' own outputs."""
    sentinels = np.arange(10**6 + 99, 10**6 - 1, -1)  # above every token id of these tests
    inputs, targets = corrupt_spans(tokens, lengths, sentinels, EOS, seed=seed)
    is_sentinel_in, is_sentinel_out = inputs >= 10**6, targets >= 10**6
    # non-noise span k: the tokens before sentinel k in the inputs; noise span k: the tokens after it in the targets
    in_positions = np.nonzero(is_sentinel_in)[1].reshape(len(tokens), -1)
    out_positions = np.nonzero(is_sentinel_out)[1].reshape(len(tokens), -1)
    nonnoise = np.diff(np.concatenate([np.full((len(tokens), 1), -1), in_positions], axis=1), axis=1) - 1
    ends = np.concatenate([out_positions[:, 1:], np.full((len(tokens), 1), targets.shape[1] - 1)], axis=1)
    noise = ends - out_positions - 1
    return nonnoise, noise


def test_span_counts_and_lengths():
    lengths = compute_lengths(512)
    nonnoise, noise = span_lengths(np.arange(64 * 568).reshape(64, 568), lengths, seed=0)
    assert nonnoise.shape == noise.shape == (64, lengths.num_noise_spans)
    assert (noise.sum(axis=1) == lengths.num_noise_tokens).all()
    assert (nonnoise.sum(axis=1) == lengths.raw_length - lengths.num_noise_tokens).all()
    assert (noise >= 1).all() and (nonnoise >= 1).all()  # T5 starts with a non-noise span; no empty span
    # span lengths average to the requested mean
    assert lengths.num_noise_tokens / lengths.num_noise_spans == pytest.approx(3.0, rel=0.05)


def test_spans_are_a_uniform_random_split():
    # T5 splits the noise tokens into spans uniformly over all compositions: the length of any one span then
    # follows P(l) = C(N - l - 1, S - 2) / C(N - 1, S - 1). Chi-square against it over 4,000 rows of real-size chunks.
    from scipy.stats import chisquare

    lengths = compute_lengths(512)
    tokens = np.random.default_rng(0).integers(3, 32000, (4000, lengths.raw_length))
    nonnoise, noise = span_lengths(tokens, lengths, seed=1)
    for observed, total in (
        (noise, lengths.num_noise_tokens),
        (nonnoise, lengths.raw_length - lengths.num_noise_tokens),
    ):
        spans = lengths.num_noise_spans
        expected = np.array(
            [comb(total - size - 1, spans - 2) / comb(total - 1, spans - 1) for size in range(1, total - spans + 2)]
        )
        for column in (0, spans // 2, spans - 1):  # first, middle and last span are all distributed alike
            counts = np.bincount(observed[:, column] - 1, minlength=len(expected))
            keep = expected * len(observed) >= 5  # pool the sparse tail
            f_observed = np.append(counts[keep], counts[~keep].sum())
            f_expected = np.append(expected[keep], expected[~keep].sum()) * len(observed)
            assert chisquare(f_observed, f_expected).pvalue > 1e-3, (total, column)


def test_randomness_is_per_row_deterministic_and_varies_by_epoch_and_seed():
    lengths = compute_lengths(128)
    sentinels = np.arange(999, 899, -1)
    tokens = np.random.default_rng(0).integers(3, 800, (16, lengths.raw_length))
    inputs, _ = corrupt_spans(tokens, lengths, sentinels, EOS, seed=3, epoch=0)
    again, _ = corrupt_spans(tokens, lengths, sentinels, EOS, seed=3, epoch=0)
    assert (inputs == again).all()
    # batching does not matter: a row is corrupted the same in any batch (accumulation, DDP, resume)
    half, _ = corrupt_spans(tokens[8:], lengths, sentinels, EOS, seed=3, epoch=0)
    assert (half == inputs[8:]).all()
    other_epoch, _ = corrupt_spans(tokens, lengths, sentinels, EOS, seed=3, epoch=1)
    other_seed, _ = corrupt_spans(tokens, lengths, sentinels, EOS, seed=4, epoch=0)
    assert (other_epoch != inputs).any(axis=1).all()
    assert (other_seed != inputs).any(axis=1).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_length=512, noise_density=0.0), "strictly between 0 and 1"),
        (dict(input_length=512, noise_density=1.0), "strictly between 0 and 1"),
        (dict(input_length=512, mean_noise_span_length=0.5), "at least 1"),
        (dict(input_length=2), "too small"),
        (dict(input_length=2048, num_sentinels=100), "needs 114 sentinels"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        compute_lengths(**kwargs)
