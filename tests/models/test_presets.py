"""Presets are T5 v1.1 (untied output layer) and start at a sane loss."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

from t5lab.errors import ConfigError
from t5lab.models.presets import PRESETS, build_model


@pytest.fixture(scope="module")
def tokenizer(wiki_tokenizer_dir):
    return AutoTokenizer.from_pretrained(wiki_tokenizer_dir)


@pytest.mark.parametrize("preset", ["t5-tiny", "t5-mini", "t5-small"])
def test_first_loss_is_near_log_vocab(tokenizer, preset):
    torch.manual_seed(0)
    model = build_model(tokenizer, config_name=preset)
    inputs = torch.randint(3, len(tokenizer) - 100, (4, 64))
    labels = torch.randint(3, len(tokenizer) - 100, (4, 16))
    loss = model(input_ids=inputs, labels=labels).loss.item()
    assert abs(loss - math.log(model.config.vocab_size)) < 1.0, loss  # nanoT5/HF init gives ~60-100 here


def test_preset_is_v1_1_and_round_trips(tokenizer, tmp_path):
    model = build_model(tokenizer, config_name="t5-tiny")
    assert model.config.feed_forward_proj == "gated-gelu" and model.config.dropout_rate == 0.0
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert model.encoder.embed_tokens.weight.data_ptr() == model.shared.weight.data_ptr()
    assert model.config.vocab_size % 128 == 0 and model.config.vocab_size >= len(tokenizer)
    model.save_pretrained(tmp_path)
    reloaded = T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight)
    assert reloaded.lm_head.weight.data_ptr() != reloaded.shared.weight.data_ptr()
    inputs = torch.randint(3, 1000, (2, 16))
    with torch.no_grad():
        assert torch.allclose(
            model(input_ids=inputs, labels=inputs).loss, reloaded(input_ids=inputs, labels=inputs).loss
        )


def test_preset_sizes_grow():
    sizes = [PRESETS[name]["d_model"] for name in ("t5-tiny", "t5-mini", "t5-small", "t5-base", "t5-large")]
    assert sizes == sorted(sizes)


def test_unknown_preset_is_a_clear_error(tokenizer):
    with pytest.raises(ConfigError, match="unknown preset or config 't5-huge'"):
        build_model(tokenizer, config_name="t5-huge")
