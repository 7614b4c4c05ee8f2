"""Attention kernels on the real model: sdpa (the default) and eager give the same losses and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t5lab.cli import main
from t5lab.data.collators import PretrainingCollator
from t5lab.data.objectives import objective_for_tokenizer, parse_objective
from t5lab.data.tokenizer import load_tokenizer
from t5lab.models.presets import build_model


@pytest.fixture(scope="module")
def batch_and_tokenizer(wikitext_file, wiki_tokenizer_dir):
    tokenizer = load_tokenizer(str(wiki_tokenizer_dir))
    objective = objective_for_tokenizer(parse_objective("span_corruption"), 128, tokenizer)
    lines = [line for line in wikitext_file.read_text(encoding="utf-8").splitlines() if line.strip()][:400]
    stream = np.concatenate([np.asarray(ids + [tokenizer.eos_token_id]) for ids in tokenizer(lines)["input_ids"]])
    rows = [{"input_ids": stream[i * objective.raw_length : (i + 1) * objective.raw_length]} for i in range(4)]
    return PretrainingCollator(objective)(rows), tokenizer


def loss_and_gradients(tokenizer, batch, implementation, bf16=False):
    torch.manual_seed(0)
    model = build_model(tokenizer, config_name="t5-mini", attn_implementation=implementation)
    assert model.config._attn_implementation == implementation
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bf16, tolerance", [(False, 1e-4), (True, 3e-2)])
def test_sdpa_and_eager_attention_agree_on_loss_and_every_gradient(batch_and_tokenizer, bf16, tolerance):
    batch, tokenizer = batch_and_tokenizer
    eager_loss, eager_grads = loss_and_gradients(tokenizer, batch, "eager", bf16)
    sdpa_loss, sdpa_grads = loss_and_gradients(tokenizer, batch, "sdpa", bf16)
    assert sdpa_loss == pytest.approx(eager_loss, rel=tolerance / 10)
    assert eager_grads.keys() == sdpa_grads.keys()
    for name, gradient in eager_grads.items():
        scale = gradient.abs().max().item() + 1e-12
        assert (sdpa_grads[name] - gradient).abs().max().item() <= tolerance * scale, name


def test_flex_attention_cannot_train_on_cpu_and_says_so(tmp_path, wikitext_file, wiki_tokenizer_dir, capsys):
    argv = ["pretrain", "--train_file", str(wikitext_file), "--tokenizer_name", str(wiki_tokenizer_dir)]
    argv += ["--attn_implementation", "flex_attention", "--max_steps", "1", "--output_dir", str(tmp_path / "out")]
    if torch.cuda.is_available():
        pytest.skip("a GPU trains with flex attention")
    assert main(argv) == 2
    assert "flex_attention cannot train on CPU" in capsys.readouterr().err
    assert main(["pretrain", "--attn_implementation", "flash", "--output_dir", str(tmp_path / "x")]) == 2
