"""Pre-training objectives on real text: exact reconstruction, densities, units, mixtures, determinism, errors."""

from __future__ import annotations

import collections
import json
import math

import numpy as np
import pytest
from scipy import stats

from t5lab.config import DataArguments, ModelArguments, parse_arguments
from t5lab.data.objectives import (
    MAX_NGRAM_WORDS,
    UL2,
    Denoiser,
    apply_objective,
    build_objective,
    denoiser_of_rows,
    objective_lengths,
    parse_objective,
)
from t5lab.data.span_corruption import compute_lengths, corrupt_spans, reconstruct
from t5lab.data.tokenizer import add_mode_tokens, load_tokenizer, sentinel_ids
from t5lab.errors import ConfigError

MODES = ("[NLU]", "[NLG]", "[S2S]")


@pytest.fixture(scope="module")
def tokenizer(wiki_tokenizer_dir):
    tokenizer = load_tokenizer(str(wiki_tokenizer_dir))
    add_mode_tokens(tokenizer, list(MODES))
    return tokenizer


@pytest.fixture(scope="module")
def stream(tokenizer, wikitext_file) -> np.ndarray:
    """WikiText-2 as one token stream, documents separated by EOS (as packing makes it)."""
    lines = [line for line in wikitext_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = tokenizer(lines[:3000], add_special_tokens=False)["input_ids"]
    return np.concatenate([np.asarray(row + [tokenizer.eos_token_id]) for row in ids])


def chunks(stream: np.ndarray, raw_length: int, rows: int) -> np.ndarray:
    return stream[: rows * raw_length].reshape(rows, raw_length)


def objective(tokenizer, denoisers, input_length=128, **kwargs):
    vocab = tokenizer.get_vocab()
    return build_objective(
        denoisers,
        input_length,
        sentinel_ids(tokenizer),
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        {m: vocab[m] for m in MODES},
        **kwargs,
    )


def restore(tokenizer, obj, inputs, targets, input_length, target_length, row):
    """The chunk a row's inputs and targets encode (mode token dropped), read back without the kernel."""
    inputs, targets = inputs[:input_length], targets[:target_length]
    assert inputs[-1] == tokenizer.eos_token_id and targets[-1] == tokenizer.eos_token_id
    if obj.mode_ids[row] >= 0:
        assert inputs[0] == obj.mode_ids[row]
        inputs = inputs[1:]
    if obj.kinds[row] == 2:  # prefix LM: prefix then continuation
        return np.concatenate([inputs[:-1], targets[:-1]])
    return reconstruct(inputs, targets, obj.sentinel_ids, tokenizer.eos_token_id)


def noise_mask(inputs, targets, input_length, target_length, obj) -> np.ndarray:
    """Which chunk positions a row hid, read back from its sentinels (plain Python)."""
    sentinels = set(obj.sentinel_ids.tolist())
    span_lengths: dict[int, int] = {}
    for token in targets[: target_length - 1].tolist():
        if token in sentinels:
            current = token
            span_lengths[current] = 0
        else:
            span_lengths[current] += 1
    mask: list[bool] = []
    for token in inputs[: input_length - 1].tolist():
        mask += [True] * span_lengths[token] if token in sentinels else [False]
    return np.asarray(mask)


def test_span_corruption_keeps_its_exact_numbers(tokenizer, stream):
    obj = objective(tokenizer, parse_objective("span_corruption"), 512)
    expected = compute_lengths(512, 0.15, 3.0, len(obj.sentinel_ids))
    assert (obj.lengths.raw_length, obj.lengths.input_length, obj.lengths.target_length) == (568, 512, 114)
    tokens = chunks(stream, 568, 32)
    inputs, targets, input_lengths, target_lengths = apply_objective(tokens, obj, seed=3, epoch=2)
    reference_inputs, reference_targets = corrupt_spans(tokens, expected, obj.sentinel_ids, obj.eos_id, 3, 2)
    assert np.array_equal(inputs, reference_inputs) and np.array_equal(targets, reference_targets)
    assert (input_lengths == 512).all() and (target_lengths == 114).all()  # no padding at all


@pytest.mark.parametrize(
    "spec", ["iid_masking", "prefix_lm", "ul2", "span_corruption:0.3,iid_masking:0.3,prefix_lm:0.4"]
)
@pytest.mark.parametrize("input_length", [64, 128, 512])
def test_every_row_restores_its_chunk_and_fits_the_fixed_shapes(tokenizer, stream, spec, input_length):
    obj = objective(tokenizer, parse_objective(spec), input_length)
    tokens = chunks(stream, obj.raw_length, 96)
    inputs, targets, input_lengths, target_lengths = apply_objective(tokens, obj, seed=1)
    assert inputs.shape == (96, obj.lengths.input_length) and targets.shape == (96, obj.lengths.target_length)
    assert obj.lengths.input_length <= input_length
    chosen = denoiser_of_rows(tokens, obj, seed=1)
    for r in range(96):
        d = chosen[r]
        row_obj = type(obj)(**{**obj.__dict__, "kinds": obj.kinds[[d]], "mode_ids": obj.mode_ids[[d]]})
        restored = restore(tokenizer, row_obj, inputs[r], targets[r], input_lengths[r], target_lengths[r], 0)
        assert np.array_equal(restored, tokens[r]), (spec, r)
        assert (inputs[r, input_lengths[r] :] == tokenizer.pad_token_id).all()


def test_iid_masking_hides_exactly_its_budget_with_every_position_equally_likely(tokenizer, stream):
    obj = objective(tokenizer, parse_objective("iid_masking", noise_density=0.2), 128)
    raw = obj.raw_length
    tokens = np.stack([stream[i : i + raw] for i in range(0, 4000 * 37, 37)])  # overlapping windows: many rows
    inputs, targets, input_lengths, target_lengths = apply_objective(tokens, obj, seed=5)
    noise = round(raw * 0.2)
    hidden = target_lengths - 1 - np.isin(targets, obj.sentinel_ids).sum(axis=1)
    assert (hidden == noise).all()
    # where the noise falls: every position equally often
    counts = sum(
        noise_mask(inputs[r], targets[r], input_lengths[r], target_lengths[r], obj) for r in range(len(tokens))
    )
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over positions
    assert abs(counts.sum() / (len(tokens) * raw) - noise / raw) < 1e-9
    # runs merge: fewer sentinels than hidden tokens on average, as adjacent picks share one
    sentinels = np.isin(targets, obj.sentinel_ids).sum(axis=1)
    expected_runs = noise * (1 - (noise - 1) / (raw - 1))  # E[runs] of a uniform subset
    assert abs(sentinels.mean() - expected_runs) < 0.05 * expected_runs


def test_prefix_lm_continuations_are_uniform_with_the_requested_mean(tokenizer, stream):
    obj = objective(tokenizer, parse_objective("prefix_lm", noise_density=0.25), 128)
    raw = obj.raw_length
    tokens = np.stack([stream[i : i + raw] for i in range(0, 3000 * 41, 41)])
    _, _, input_lengths, target_lengths = apply_objective(tokens, obj, seed=2)
    continuation = target_lengths - 1
    m = round(raw * 0.25)
    assert continuation.min() >= 1 and continuation.max() <= 2 * m - 1
    assert (input_lengths - 1 + continuation == raw).all()
    histogram = np.bincount(continuation, minlength=2 * m)[1:]
    assert stats.chisquare(histogram).pvalue > 1e-3
    assert abs(continuation.mean() - m) < 0.05 * m


def test_mixture_weights_draws_and_determinism(tokenizer, stream):
    denoisers = parse_objective("span_corruption:0.5,iid_masking:0.2,prefix_lm:0.3")
    obj = objective(tokenizer, denoisers, 128)
    raw = obj.raw_length
    tokens = np.stack([stream[i : i + raw] for i in range(0, 6000 * 23, 23)])
    chosen = denoiser_of_rows(tokens, obj, seed=9)
    counts = np.bincount(chosen, minlength=3)
    assert stats.chisquare(counts, np.asarray([0.5, 0.2, 0.3]) * len(tokens)).pvalue > 1e-3
    # a row's corruption depends only on (seed, epoch, its tokens): not on its batch or its place in it
    inputs, targets, _, _ = apply_objective(tokens[:64], obj, seed=9)
    order = np.random.default_rng(0).permutation(64)
    shuffled_inputs, shuffled_targets, _, _ = apply_objective(tokens[:64][order], obj, seed=9)
    assert np.array_equal(shuffled_inputs, inputs[order]) and np.array_equal(shuffled_targets, targets[order])
    half, _, _, _ = apply_objective(tokens[32:64], obj, seed=9)
    assert np.array_equal(half, inputs[32:64])
    other_epoch, _, _, _ = apply_objective(tokens[:64], obj, seed=9, epoch=1)
    assert not np.array_equal(other_epoch, inputs)
    assert (denoiser_of_rows(tokens[:64], obj, seed=9, epoch=1) != chosen[:64]).any()


def test_ul2_rows_carry_their_mode_token_and_their_denoisers_density(tokenizer, stream):
    assert len(UL2) == 7 and {d.mode_token for d in UL2} == set(MODES)
    obj = objective(tokenizer, parse_objective("ul2"), 512)
    tokens = np.stack([stream[i : i + obj.raw_length] for i in range(0, 1400 * 53, 53)])
    inputs, targets, _, target_lengths = apply_objective(tokens, obj, seed=4)
    chosen = denoiser_of_rows(tokens, obj, seed=4)
    assert set(chosen) == set(range(7))
    for d, denoiser in enumerate(UL2):
        rows = chosen == d
        assert (inputs[rows, 0] == obj.mode_ids[d]).all()
        hidden = target_lengths[rows] - 1 - np.isin(targets[rows], obj.sentinel_ids).sum(axis=1)
        if denoiser.kind == "span":
            assert (hidden == round(obj.raw_length * denoiser.noise_density)).all(), denoiser
            spans = np.isin(targets[rows], obj.sentinel_ids).sum(axis=1)
            assert (spans == max(round(hidden[0] / denoiser.mean_noise_span_length), 1)).all()
        else:
            assert abs(hidden.mean() / obj.raw_length - 0.25) < 0.03


def _units(row: np.ndarray, starts: np.ndarray, ngrams: set[tuple[int, ...]]) -> list[tuple[int, int]]:
    """Reference segmentation (plain Python): at each word, the longest vocabulary n-gram, else the word."""
    words, i = [], 0
    while i < len(row):
        j = i + 1
        while j < len(row) and not starts[row[j]]:
            j += 1
        words.append((i, j))
        i = j
    units, w = [], 0
    while w < len(words):
        best = w
        if starts[row[words[w][0]]]:
            for n in range(2, MAX_NGRAM_WORDS + 1):
                if w + n <= len(words) and tuple(row[words[w][0] : words[w + n - 1][1]]) in ngrams:
                    best = w + n - 1
        units.append((words[w][0], words[best][1]))
        w = best + 1
    return units


def test_pmi_masking_masks_whole_units_within_the_budget(tokenizer, stream, wikitext_file):
    starts = np.asarray([t.startswith("▁") for t in tokenizer.convert_ids_to_tokens(range(len(tokenizer)))])
    starts[tokenizer.all_special_ids] = True
    # a vocabulary of frequent word bigrams and trigrams of the same text (the product computes PMI; here any
    # set of n-grams tests the masking)
    words = wikitext_file.read_text(encoding="utf-8").split()[:60000]
    grams = collections.Counter(tuple(words[i : i + n]) for n in (2, 3) for i in range(len(words) - n))
    vocab_ngrams = [
        np.asarray(tokenizer(" " + " ".join(g), add_special_tokens=False)["input_ids"])
        for g, c in grams.most_common(400)
        if c >= 5 and all(w.isalpha() for w in g)
    ]
    ngram_set = {tuple(g.tolist()) for g in vocab_ngrams}
    obj = objective(tokenizer, parse_objective("pmi_masking", 0.15), 128, word_starts=starts, pmi_ngrams=vocab_ngrams)
    tokens = np.stack([stream[i : i + obj.raw_length] for i in range(0, 800 * 97, 97)])
    inputs, targets, input_lengths, target_lengths = apply_objective(tokens, obj, seed=6)
    budget = round(obj.raw_length * 0.15)
    masked_multiword = 0
    hidden_counts = []
    for r in range(len(tokens)):
        row = tokens[r]
        assert np.array_equal(
            reconstruct(inputs[r][: input_lengths[r]], targets[r][: target_lengths[r]], obj.sentinel_ids, obj.eos_id),
            row,
        )
        mask = noise_mask(inputs[r], targets[r], input_lengths[r], target_lengths[r], obj)
        hidden_counts.append(mask.sum())
        for begin, end in _units(row, starts, ngram_set):
            assert mask[begin:end].all() or not mask[begin:end].any(), (r, begin, end)  # never split
            masked_multiword += bool(mask[begin:end].all() and tuple(row[begin:end]) in ngram_set)
    assert max(hidden_counts) <= budget and np.mean(hidden_counts) > 0.97 * budget
    assert masked_multiword > 50  # the vocabulary's n-grams are masked as units, not only single words


def test_parse_objective_forms_and_one_line_errors():
    assert parse_objective("iid_masking", 0.3) == (Denoiser("iid", 0.3, 3.0, None, 1.0),)
    mixture = parse_objective("span_corruption:1,prefix_lm:3")
    assert [d.kind for d in mixture] == ["span", "prefix"] and [d.weight for d in mixture] == [0.25, 0.75]
    assert parse_objective(json.dumps({"span_corruption": 1, "prefix_lm": 3})) == mixture
    assert [d.kind for d in parse_objective(json.dumps(["iid_masking", "prefix_lm"]))] == ["iid", "prefix"]
    custom = parse_objective(
        json.dumps(
            [
                {
                    "objective": "span_corruption",
                    "noise_density": 0.5,
                    "mean_noise_span_length": 32,
                    "mode_token": "[NLG]",
                    "weight": 2,
                },
                {"objective": "ul2", "weight": 2},
            ]
        )
    )
    assert len(custom) == 8 and custom[0] == Denoiser("span", 0.5, 32.0, "[NLG]", custom[0].weight)
    assert math.isclose(custom[0].weight, 0.5)
    assert math.isclose(sum(d.weight for d in custom[1:]), 0.5)
    for bad, message in [
        ("bert", "unknown objective 'bert'"),
        ("span_corruption:-1", "must be a positive number"),
        ("span_corruption:x", "must be a number"),
        ('{"prefix_lm": "a lot"}', "must be a positive number"),
        ('[{"objective": "iid_masking", "density": 0.3}]', "needs 'objective'"),
        ('[{"objective": "iid_masking", "noise_density": 1.5}]', "strictly between 0 and 1"),
        ("{not json", "not valid JSON"),
    ]:
        with pytest.raises(ConfigError, match=message) as error:
            parse_objective(bad)
        assert "\n" not in str(error.value)


def test_too_few_sentinels_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"iid_masking .* needs up to 77 sentinels but the tokenizer has 20"):
        objective_lengths(parse_objective("iid_masking"), 512, num_sentinels=20)
    with pytest.raises(ConfigError, match="mode token"):
        build_objective(parse_objective("ul2"), 128, np.arange(100, 200), 1, 0, {})
    with pytest.raises(ConfigError, match="--pmi_vocab"):
        build_objective(parse_objective("pmi_masking"), 128, np.arange(100, 200), 1, 0)


def test_objective_from_yaml_config_and_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "objective:\n  - {objective: span_corruption, noise_density: 0.5, mean_noise_span_length: 8, weight: 1}\n"
        "  - {objective: prefix_lm, mode_token: '[S2S]', weight: 1}\n"
    )
    _, data = parse_arguments((ModelArguments, DataArguments), ["--config", str(config)], "t", "t")
    assert [(d.kind, d.noise_density, d.mode_token) for d in data.denoisers()] == [
        ("span", 0.5, None),
        ("prefix", 0.15, "[S2S]"),
    ]
    config.write_text("objective: {span_corruption: 0.5, iid_masking: 0.5}\n")
    _, data = parse_arguments((ModelArguments, DataArguments), ["--config", str(config)], "t", "t")
    assert [d.kind for d in data.denoisers()] == ["span", "iid"]
    _, data = parse_arguments((ModelArguments, DataArguments), ["--objective", "ul2"], "t", "t")
    assert len(data.denoisers()) == 7
    with pytest.raises(ConfigError, match="needs --pmi_vocab"):
        parse_arguments((ModelArguments, DataArguments), ["--objective", "pmi_masking"], "t", "t")
