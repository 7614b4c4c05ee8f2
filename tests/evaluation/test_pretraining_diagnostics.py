"""Pre-training diagnostics: the real data path keeps inputs and targets aligned, and each figure means what it says."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from t5lab.config import DataArguments
from t5lab.data.collators import PretrainingCollator
from t5lab.data.objectives import objective_for_tokenizer, parse_objective
from t5lab.data.pipeline import pretraining_datasets
from t5lab.data.span_corruption import reconstruct
from t5lab.data.tokenizer import load_tokenizer, sentinel_ids
from t5lab.evaluation.pretraining import (
    PretrainingDiagnostics,
    collapse_statistics,
    dataset_unigram_log_probs,
    describe_encoder_gain,
    encoder_collapse,
)
from t5lab.models.presets import build_model


@pytest.fixture(scope="module")
def real_batch(wikitext_file, wiki_tokenizer_dir):
    """A collator batch from the real pre-training data path (file -> tokenize -> pack -> corrupt), with its chunks."""
    tokenizer = load_tokenizer(str(wiki_tokenizer_dir))
    sentinels = sentinel_ids(tokenizer)
    objective = objective_for_tokenizer(parse_objective("span_corruption"), 64, tokenizer)
    lengths = objective.lengths
    data_args = DataArguments(
        train_file=str(wikitext_file), input_length=64, max_eval_samples=64, preprocessing_num_workers=1
    )
    train, validation = pretraining_datasets(data_args.corpus(), tokenizer, lengths.raw_length, seed=3)
    collator = PretrainingCollator(objective, decoder_start_token_id=0, seed=3, epoch=1)
    rows = [validation[i] for i in range(16)]
    return tokenizer, sentinels, train, collator, rows, collator(rows)


def test_collated_targets_put_back_at_their_sentinels_restore_the_packed_chunk(real_batch):
    tokenizer, sentinels, _, collator, rows, batch = real_batch
    inputs, labels, decoder_inputs = (
        batch["input_ids"].numpy(),
        batch["labels"].numpy(),
        batch["decoder_input_ids"].numpy(),
    )
    assert inputs.shape == (16, collator.objective.lengths.input_length) and labels.shape == (
        16,
        collator.objective.lengths.target_length,
    )
    for row in range(len(rows)):
        np.testing.assert_array_equal(
            reconstruct(inputs[row], labels[row], sentinels, tokenizer.eos_token_id), rows[row]["input_ids"]
        )
    # the decoder reads the targets shifted right by one, behind the start token: teacher forcing on the same row
    assert (decoder_inputs[:, 0] == 0).all()
    np.testing.assert_array_equal(decoder_inputs[:, 1:], labels[:, :-1])
    # a misaligned pipeline (another row's targets) no longer restores the chunk
    assert not np.array_equal(
        reconstruct(inputs[0], labels[1], sentinels, tokenizer.eos_token_id), rows[0]["input_ids"]
    )


def _model(tokenizer, seed=0):
    torch.manual_seed(seed)
    return build_model(tokenizer, config_name="t5-tiny").eval()


def test_diagnostics_agree_with_the_models_own_loss(real_batch):
    tokenizer, sentinels, train, _, _, batch = real_batch
    model = _model(tokenizer)
    unigram = dataset_unigram_log_probs(train, model.config.vocab_size)
    diagnostics = PretrainingDiagnostics(int(sentinels.min()), tokenizer.eos_token_id, unigram)
    diagnostics.update(model, batch)
    metrics, sums = diagnostics.metrics(), diagnostics.sums
    with torch.no_grad():
        true_loss = model(**batch).loss.item()
        rolled = dict(batch, input_ids=batch["input_ids"].roll(1, 0), attention_mask=batch["attention_mask"].roll(1, 0))
        rolled_loss = model(**rolled).loss.item()
    # every row has the same number of targets, so per-token means equal the model's batch loss
    assert sums["loss"] / sums["tokens"] == pytest.approx(true_loss, rel=1e-5)
    assert metrics["encoder_gain"] == pytest.approx(rolled_loss - true_loss, abs=2e-4)
    # noise and sentinel classes split the labelled tokens; sentinels + EOS are one per span plus one
    spans = np.isin(batch["labels"].numpy(), sentinels).sum()
    assert sums["sentinel_tokens"] == spans + len(batch["labels"])
    assert sums["noise_tokens"] + sums["sentinel_tokens"] == sums["tokens"]
    weighted = (
        metrics["noise_loss"] * sums["noise_tokens"] + metrics["sentinel_loss"] * sums["sentinel_tokens"]
    ) / sums["tokens"]
    assert weighted == pytest.approx(true_loss, abs=1e-3)
    # the unigram reference, counted directly
    assert len(train) < 20_000  # small enough to be counted whole
    counts = np.bincount(np.concatenate(train[:]["input_ids"]), minlength=model.config.vocab_size) + 1.0
    labels = batch["labels"].numpy()
    noise = labels[(labels < sentinels.min()) & (labels != tokenizer.eos_token_id)]
    expected = -np.log(counts / counts.sum())[noise].mean()
    assert metrics["noise_unigram_loss"] == pytest.approx(expected, abs=1e-3)
    assert math.log(50) < metrics["noise_unigram_loss"] < math.log(model.config.vocab_size)


def test_a_decoder_cut_off_from_its_encoder_has_zero_gain(real_batch):
    tokenizer, sentinels, _, _, _, batch = real_batch
    model = _model(tokenizer, seed=1)
    with torch.no_grad():
        for block in model.decoder.block:
            block.layer[1].EncDecAttention.o.weight.zero_()  # cross-attention contributes nothing
    diagnostics = PretrainingDiagnostics(int(sentinels.min()), tokenizer.eos_token_id)
    diagnostics.update(model, batch)
    assert abs(diagnostics.metrics()["encoder_gain"]) < 1e-5
    assert "noise_unigram_loss" not in diagnostics.metrics()  # no reference given, none reported
    assert "does not use its encoder" in describe_encoder_gain(diagnostics.metrics()["encoder_gain"])
    assert "uses its encoder: +1.90" in describe_encoder_gain(1.9)


def test_collapse_statistics_separate_isotropic_from_collapsed_states(real_batch):
    generator = torch.Generator().manual_seed(0)
    isotropic = collapse_statistics(torch.randn(2000, 64, generator=generator))
    assert abs(isotropic["mean_token_cosine"]) < 0.02 and isotropic["effective_rank"] > 55
    direction = torch.randn(64, generator=generator)
    collapsed = collapse_statistics(direction + 0.05 * torch.randn(2000, 64, generator=generator))
    assert collapsed["mean_token_cosine"] > 0.99 and collapsed["effective_rank"] < 10
    tokenizer = real_batch[0]
    fresh = encoder_collapse(
        _model(tokenizer), tokenizer, ["The city was founded in 1850 by settlers .", "A second , longer line of text ."]
    )
    assert fresh["tokens"] > 10 and fresh["dimensions"] == 128 and fresh["mean_token_cosine"] < 0.5


@pytest.mark.slow
def test_pretraining_reports_the_diagnostics_and_inspect_compares_with_a_random_twin(
    tmp_path, wikitext_file, wiki_tokenizer_dir
):
    out = tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "t5lab",
            "pretrain",
            "--train_file",
            str(wikitext_file),
            "--tokenizer_name",
            str(wiki_tokenizer_dir),
            "--config_name",
            "t5-tiny",
            "--input_length",
            "64",
            "--per_device_train_batch_size",
            "16",
            "--max_steps",
            "40",
            "--learning_rate",
            "3e-3",
            "--eval_steps",
            "20",
            "--eval_on_start",
            "--max_eval_samples",
            "32",
            "--report_to",
            "none",
            "--output_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Encoder use on held-out text:" in run.stdout
    results = json.loads((out / "eval_results.json").read_text())
    for key in ("eval_encoder_gain", "eval_noise_loss", "eval_sentinel_loss", "eval_noise_unigram_loss"):
        assert key in results, key
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    gains = [h["eval_encoder_gain"] for h in history if "eval_encoder_gain" in h]
    assert len(gains) >= 3 and abs(gains[0]) < 0.05  # a random model gains nothing from its encoder
    # sentinels are learned first: their loss falls far below the hidden tokens' loss
    assert results["eval_sentinel_loss"] < results["eval_noise_loss"] - 1.0
    from PIL import Image

    assert Image.open(out / "loss_curve.png").size[0] > 1200  # two panels

    inspect = subprocess.run(
        [
            sys.executable,
            "-m",
            "t5lab",
            "inspect",
            str(out),
            "--train_file",
            str(wikitext_file),
            "--num_chunks",
            "32",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inspect.returncode == 0, inspect.stderr[-2000:]
    report = json.loads(inspect.stdout)
    model, twin = report["model"], report["random twin"]
    assert report["settings"]["input_length"] == 64  # read from the run's t5lab_config.yaml
    assert model["loss"] < twin["loss"] - 1.0
    assert abs(twin["encoder_gain"]) < 0.05
    assert model["noise_unigram_loss"] == pytest.approx(twin["noise_unigram_loss"])
    assert 0 < twin["mean_token_cosine"] < 0.5 and twin["effective_rank"] > 20
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "t5lab",
            "inspect",
            str(out / "checkpoint-40"),
            "--train_file",
            str(wikitext_file),
            "--num_chunks",
            "8",
            "--batch_size",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0 and "random twin" in table.stdout and "encoder gain" in table.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing-dir", "--train_file", "x.txt"], "is not a model directory"),
        ([".", "--num_chunks", "1", "--train_file", "x.txt"], "must be at least 2"),
        (["."], "the following arguments are required: --train_file"),
    ],
)
def test_inspect_bad_input_is_one_line(argv, message):
    run = subprocess.run([sys.executable, "-m", "t5lab", "inspect", *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
