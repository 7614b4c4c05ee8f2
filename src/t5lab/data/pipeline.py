"""The pre-training data flow: sources -> mixture -> tokenize + pack (cached) -> train/validation splits."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from t5lab.data.corpus import AnyDataset, Source, _expand_files, load_source, mix, parse_rates, parse_sources, text_only
from t5lab.data.packing import cache_key, cached_packed, default_cache_dir, pack, split_packed

STREAMING_VALIDATION_DOCUMENTS = 2000  # held out from the head of a streamed corpus without a validation split


@dataclass(frozen=True)
class Corpus:
    """Where pre-training text comes from, how it is mixed, held out and cached (plain values; the command
    line's ``DataArguments.corpus()`` builds one)."""

    dataset_name: str | None = None
    dataset_config_name: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    text_column_name: str = "text"
    mixture_rates: str | None = None
    streaming: bool = False
    validation_split_percentage: float = 5.0
    max_eval_samples: int | None = 1000
    preprocessing_num_workers: int | None = None
    data_cache_dir: str | None = None
    overwrite_cache: bool = False


def _num_proc(corpus: Corpus) -> int:
    return corpus.preprocessing_num_workers or min(os.cpu_count() or 1, 8)


def _load_texts(sources: list[Source], corpus: Corpus, cache_dir: str | None, split: str = "train") -> list[AnyDataset]:
    parts = []
    for source in sources:
        dataset = load_source(source, split, cache_dir=cache_dir, streaming=corpus.streaming)
        if dataset is not None:
            parts.append(text_only(dataset, corpus.text_column_name, f"source '{source.name}'"))
    return parts


def corpus_texts(corpus: Corpus, seed: int, cache_dir: str | None = None, limit: int | None = 200_000) -> Iterator[str]:
    """Text rows of the training mixture (at most ``limit``; None: all), e.g. to train a tokenizer on."""
    sources = parse_sources(corpus.dataset_name, corpus.dataset_config_name, corpus.train_file)
    mixture = mix(_load_texts(sources, corpus, cache_dir), parse_rates(corpus.mixture_rates, len(sources)), seed)
    return (row["text"] for row in itertools.islice(iter(mixture), limit) if isinstance(row["text"], str))


def pretraining_datasets(
    corpus: Corpus, tokenizer: PreTrainedTokenizerBase, raw_length: int, seed: int, hub_cache_dir: str | None = None
) -> tuple[AnyDataset, AnyDataset | None]:
    """Packed train and validation datasets whose rows are ``raw_length`` token ids ('input_ids')."""
    sources = parse_sources(corpus.dataset_name, corpus.dataset_config_name, corpus.train_file)
    rates = parse_rates(corpus.mixture_rates, len(sources))
    validation_files = _expand_files(corpus.validation_file) if corpus.validation_file else ()
    if corpus.streaming:
        return _streaming_datasets(corpus, sources, rates, validation_files, tokenizer, raw_length, seed, hub_cache_dir)

    def build() -> DatasetDict:
        train = pack(
            mix(_load_texts(sources, corpus, hub_cache_dir), rates, seed), tokenizer, raw_length, _num_proc(corpus)
        )
        if validation_files:
            validation_source = [Source("files", corpus.validation_file, files=validation_files)]
            validation_parts = _load_texts(validation_source, corpus, hub_cache_dir)
        else:
            validation_parts = _load_texts([s for s in sources if s.kind == "hub"], corpus, hub_cache_dir, "validation")
        if validation_parts:
            validation = pack(mix(validation_parts, None, seed), tokenizer, raw_length, _num_proc(corpus))
            return DatasetDict(train=train, validation=validation)
        return split_packed(train, corpus.validation_split_percentage, seed)

    described = [s.describe() for s in sources] + [Source("files", "validation", files=validation_files).describe()]
    key = cache_key(
        described,
        tokenizer,
        raw_length,
        {
            "text_column": corpus.text_column_name,
            "rates": rates,
            "seed": seed,
            "validation_split_percentage": corpus.validation_split_percentage,
        },
    )
    cache_root = Path(corpus.data_cache_dir) if corpus.data_cache_dir else default_cache_dir()
    packed = cached_packed(key, build, cache_root, overwrite=corpus.overwrite_cache).with_format("numpy")
    validation = packed.get("validation")
    if validation is not None and corpus.max_eval_samples is not None and len(validation) > corpus.max_eval_samples:
        # Evenly spread over the held-out text, not its head: a file's first chunks are often one document's
        # front matter (a Gutenberg book's title page and contents), which would make every figure atypical.
        spread = np.linspace(0, len(validation) - 1, corpus.max_eval_samples).round().astype(int)
        validation = validation.select(spread.tolist())
    return packed["train"], validation


def _streaming_datasets(corpus, sources, rates, validation_files, tokenizer, raw_length, seed, hub_cache_dir):
    train_text = mix(_load_texts(sources, corpus, hub_cache_dir), rates, seed)
    if validation_files:
        validation_text = _load_texts(
            [Source("files", corpus.validation_file, files=validation_files)], corpus, hub_cache_dir
        )[0]
    else:
        parts = _load_texts([s for s in sources if s.kind == "hub"], corpus, hub_cache_dir, "validation")
        if parts:
            validation_text = mix(parts, None, seed)
        else:
            validation_text = train_text.take(STREAMING_VALIDATION_DOCUMENTS)
            train_text = train_text.skip(STREAMING_VALIDATION_DOCUMENTS)
    train = pack(train_text.shuffle(seed=seed, buffer_size=10_000), tokenizer, raw_length)
    validation = pack(validation_text, tokenizer, raw_length)
    if corpus.max_eval_samples is not None:
        # Evaluation needs a sized dataset: materialise the first chunks.
        rows = list(itertools.islice(iter(validation), corpus.max_eval_samples))
        validation = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows]}).with_format("numpy")
    return train.with_format("numpy"), validation
