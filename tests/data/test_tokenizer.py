"""Trained tokenizers have T5's ids and survive a save/reload through AutoTokenizer."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from t5lab.data.tokenizer import save_tokenizer, sentinel_ids, train_tokenizer
from t5lab.errors import ConfigError


def test_trained_tokenizer_has_t5_ids(wiki_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(wiki_tokenizer_dir)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == len(tokenizer) - 1
    ids = sentinel_ids(tokenizer)
    assert len(ids) == 100
    assert ids.tolist() == list(range(len(tokenizer) - 1, len(tokenizer) - 101, -1))
    encoded = tokenizer("The valkyria <extra_id_0> chronicles")["input_ids"]
    assert encoded[-1] == 1 and ids[0] in encoded
    assert (wiki_tokenizer_dir / "spiece.model").is_file()


@pytest.mark.parametrize("num_sentinels", [10, 250])
def test_sentinel_count_is_configurable_and_reload_keeps_ids(tmp_path, wikitext_file, num_sentinels):
    lines = wikitext_file.read_text(encoding="utf-8").splitlines()[:3000]
    tokenizer = train_tokenizer(lines, vocab_size=1500, num_sentinels=num_sentinels)
    save_tokenizer(tokenizer, tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == len(tokenizer)
    assert sentinel_ids(reloaded).tolist() == sentinel_ids(tokenizer).tolist()
    assert len(sentinel_ids(reloaded)) == num_sentinels
    text = " = Robert Boulter = \r\nRobert Boulter is an English film , television and theatre actor ."
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.decode(reloaded(text)["input_ids"], skip_special_tokens=True).startswith("= Robert Boulter =")


def test_tokenizer_without_sentinels_is_rejected(wiki_tokenizer_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2, "hello": 3}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    plain = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    with pytest.raises(ConfigError, match="no <extra_id_N> sentinel"):
        sentinel_ids(plain)


def test_too_small_vocab_is_a_clear_error(wikitext_file):
    with pytest.raises(ConfigError, match="too few pieces"):
        train_tokenizer(["some text"], vocab_size=150, num_sentinels=100)


def test_rare_ascii_survives_a_round_trip(wiki_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(wiki_tokenizer_dir)
    for word in ("not_entailment", "not_equivalent", "x^2 {a} ~b|c"):
        ids = tokenizer(word)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == word
