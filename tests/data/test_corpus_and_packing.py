"""Corpora load from every supported format, pack into exact chunks, and cache by content."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from t5lab.config import DataArguments
from t5lab.data.corpus import parse_rates, parse_sources
from t5lab.data.pipeline import pretraining_datasets
from t5lab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tokenizer(wiki_tokenizer_dir):
    return AutoTokenizer.from_pretrained(wiki_tokenizer_dir)


@pytest.fixture()
def wiki_lines(wikitext_file):
    return wikitext_file.read_text(encoding="utf-8").splitlines()[:1500]


def _write(path, lines, fmt):
    if fmt == "txt":
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps({"text": line}) for line in lines) + "\n", encoding="utf-8")
    elif fmt == "csv":
        pd.DataFrame({"text": lines}).to_csv(path, index=False)
    elif fmt == "parquet":
        pd.DataFrame({"text": lines}).to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "csv", "parquet"])
def test_every_format_packs_into_exact_chunks(tmp_path, tokenizer, wiki_lines, fmt):
    path = _write(tmp_path / f"corpus.{fmt}", wiki_lines, fmt)
    args = DataArguments(train_file=str(path), validation_split_percentage=10, max_eval_samples=None)
    train, validation = pretraining_datasets(args.corpus(), tokenizer, raw_length=141, seed=0)
    rows = np.stack(train["input_ids"])
    assert rows.shape[1] == 141 and len(train) > 10 and len(validation) >= 1
    assert tokenizer.pad_token_id not in rows and tokenizer.eos_token_id not in rows  # packed, not padded
    assert "\r" not in tokenizer.decode(rows[0])
    # concatenate-and-chunk keeps nearly every token: only the tail of each 1,000-document map batch is dropped
    total = sum(
        len(ids)
        for ids in tokenizer([doc.strip() for doc in wiki_lines if doc.strip()], add_special_tokens=False)["input_ids"]
    )
    assert total - 2 * 141 < (len(train) + len(validation)) * 141 <= total


def test_cache_is_reused_and_keyed_by_tokenizer_and_length(tmp_path, tokenizer, wiki_lines, wikitext_file, monkeypatch):
    monkeypatch.setenv("T5LAB_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path / "c.txt", wiki_lines, "txt")
    args = DataArguments(train_file=str(path))
    first, _ = pretraining_datasets(args.corpus(), tokenizer, raw_length=141, seed=0)

    def entries():
        return sorted(p.name for p in (tmp_path / "cache" / "packed").iterdir() if not p.name.startswith("."))

    assert len(entries()) == 1
    again, _ = pretraining_datasets(args.corpus(), tokenizer, raw_length=141, seed=0)
    assert len(entries()) == 1 and again.cache_files[0]["filename"] == first.cache_files[0]["filename"]
    pretraining_datasets(args.corpus(), tokenizer, raw_length=100, seed=0)
    assert len(entries()) == 2  # a new length never reuses old chunks
    from t5lab.data.tokenizer import train_tokenizer

    other = train_tokenizer(wiki_lines, vocab_size=1200, num_sentinels=100)
    pretraining_datasets(args.corpus(), other, raw_length=141, seed=0)
    assert len(entries()) == 3  # nor does a new tokenizer


def test_mixture_rates_and_globs(tmp_path, tokenizer, wiki_lines, shared_data):
    (tmp_path / "a").mkdir()
    for i in range(3):
        _write(tmp_path / "a" / f"part{i}.txt", wiki_lines[i * 400 : (i + 1) * 400], "txt")
    shakespeare = shared_data / "corpus" / "tinyshakespeare" / "input.txt"
    sources = parse_sources(None, None, f"{tmp_path}/a/*.txt,{shakespeare}")
    assert [len(s.files) for s in sources] == [3, 1]
    args = DataArguments(train_file=f"{tmp_path}/a/*.txt,{shakespeare}", mixture_rates="1,1")
    train, _ = pretraining_datasets(args.corpus(), tokenizer, raw_length=141, seed=0)
    assert len(train) > 20
    assert parse_rates("3,1", 2) == [0.75, 0.25]
    with pytest.raises(ConfigError, match="2 entries for 3 sources"):
        parse_rates("1,1", 3)


def test_separate_validation_file(tmp_path, tokenizer, wiki_lines):
    train_path = _write(tmp_path / "train.txt", wiki_lines[:1000], "txt")
    val_path = _write(tmp_path / "val.txt", wiki_lines[1000:], "txt")
    train, validation = pretraining_datasets(
        DataArguments(train_file=str(train_path), validation_file=str(val_path)).corpus(), tokenizer, 141, 0
    )
    decoded = tokenizer.decode(np.asarray(validation[0]["input_ids"]))
    assert decoded[:40] in " ".join(line.strip() for line in wiki_lines[1000:])
    # --max_eval_samples takes chunks spread over the whole held-out file, not its head
    _, everything = pretraining_datasets(
        DataArguments(train_file=str(train_path), validation_file=str(val_path), max_eval_samples=None).corpus(),
        tokenizer,
        141,
        0,
    )
    _, few = pretraining_datasets(
        DataArguments(train_file=str(train_path), validation_file=str(val_path), max_eval_samples=4).corpus(),
        tokenizer,
        141,
        0,
    )
    rows = [list(everything[i]["input_ids"]) for i in range(len(everything))]
    picked = [rows.index(list(few[i]["input_ids"])) for i in range(4)]
    assert len(everything) > 20 and picked[0] == 0 and picked[-1] == len(rows) - 1 and picked == sorted(picked)


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (None, {}, "does not exist"),
        (b"", {}, "is empty"),
        (b"\xff\xfe bad bytes \xff\n" * 50, {}, "not UTF-8"),
        (b'{"body": "hello"}\n', {"suffix": ".jsonl"}, "has no column 'text'"),
        (b"short text\n", {}, "shorter than one chunk"),
    ],
)
def test_bad_corpora_are_clear_errors(tmp_path, tokenizer, content, kwargs, message):
    path = tmp_path / ("data" + kwargs.get("suffix", ".txt"))
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        pretraining_datasets(
            DataArguments(train_file=str(path), validation_split_percentage=0).corpus(), tokenizer, 141, 0
        )


def test_hub_dataset_while_offline_fails_at_once(tokenizer, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="offline"):
        pretraining_datasets(
            DataArguments(dataset_name="allenai/c4", dataset_config_name="en", streaming=True).corpus(),
            tokenizer,
            141,
            0,
        )


def test_bundled_corpus_is_real_english():
    from t5lab.data.corpus import BUNDLED_CORPORA

    texts = BUNDLED_CORPORA["python-docs"]()["text"]
    words = sum(len(t.split()) for t in texts)
    assert words > 200_000
    assert sum(" the " in t for t in texts) > len(texts) / 3


def test_streaming_packs_on_the_fly(tmp_path, tokenizer, wikitext_file):
    # the first 2,000 documents of a stream without a validation split are held out for validation
    path = _write(tmp_path / "stream.jsonl", wikitext_file.read_text(encoding="utf-8").splitlines(), "jsonl")
    args = DataArguments(train_file=str(path), streaming=True, max_eval_samples=5)
    train, validation = pretraining_datasets(args.corpus(), tokenizer, raw_length=141, seed=0)
    rows = [r["input_ids"] for _, r in zip(range(20), train)]
    assert len(rows) == 20 and all(len(r) == 141 for r in rows)
    assert len(validation) == 5  # held out from the head of the stream, materialised for evaluation
    assert not (tmp_path / "cache").exists()
