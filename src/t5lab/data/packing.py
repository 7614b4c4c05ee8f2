"""Tokenize, concatenate and chunk a corpus into fixed-length rows, cached on disk.

Rows are ``raw_length`` token ids with no padding: documents are concatenated (as T5's
``reduce_concat_tokens``) and cut into chunks, so no compute is spent on padding. The cache key includes
the sources, the tokenizer and the chunk length, so changing any of them never reuses stale data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import PreTrainedTokenizerBase

from t5lab.data.corpus import AnyDataset
from t5lab.errors import DataError
from t5lab.log import logger

PACKING_VERSION = 2  # bump when the packing logic changes, to invalidate old caches
MAP_BATCH_SIZE = 1000


def default_cache_dir() -> Path:
    """``$T5LAB_CACHE`` or ``~/.cache/t5lab``."""
    return Path(os.environ.get("T5LAB_CACHE", Path.home() / ".cache" / "t5lab"))


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides the tokenizer's ids."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def chunking_function(tokenizer: PreTrainedTokenizerBase, raw_length: int) -> Callable[[dict], dict]:
    """A batched ``map`` function: text rows -> concatenated token ids cut into ``raw_length`` chunks.

    Lines are stripped (CRLF, surrounding blanks) and empty ones dropped. The tail shorter than a chunk at
    the end of each map batch is dropped: under one chunk per ``MAP_BATCH_SIZE`` documents.
    """

    def chunk(batch: dict[str, list]) -> dict[str, list]:
        texts = [t.strip() for t in batch["text"] if isinstance(t, str) and t.strip()]
        if not texts:
            return {"input_ids": []}
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int32)
        usable = (len(flat) // raw_length) * raw_length
        return {"input_ids": flat[:usable].reshape(-1, raw_length).tolist()}

    return chunk


def pack(
    dataset: AnyDataset, tokenizer: PreTrainedTokenizerBase, raw_length: int, num_proc: int | None = None
) -> AnyDataset:
    """Tokenize and chunk a dataset with a single 'text' column (map-style or streaming)."""
    kwargs: dict[str, Any] = {"batched": True, "batch_size": MAP_BATCH_SIZE, "remove_columns": ["text"]}
    if isinstance(dataset, Dataset):
        kwargs.update(
            num_proc=num_proc if num_proc and len(dataset) >= 20 * MAP_BATCH_SIZE else None,
            desc="Tokenizing and packing",
            load_from_cache_file=False,
        )
    return dataset.map(chunking_function(tokenizer, raw_length), **kwargs)


def cache_key(sources: list[dict], tokenizer: PreTrainedTokenizerBase, raw_length: int, extra: dict) -> str:
    """A key for a packed corpus: sources, tokenizer, chunk length and split settings."""
    payload = {
        "version": PACKING_VERSION,
        "sources": sources,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "raw_length": raw_length,
        **extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


CACHE_MANIFEST = "t5lab_manifest.json"


def _checksums(folder: Path) -> dict[str, list[int]]:
    """[size, CRC-32] of every file of a cache entry: zlib's CRC reads ~1 GB/s, a small cost next to loading."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CACHE_MANIFEST:
            crc = 0
            with path.open("rb") as f:
                while block := f.read(1 << 22):
                    crc = zlib.crc32(block, crc)
            sums[str(path.relative_to(folder))] = [path.stat().st_size, crc]
    return sums


def cache_problem(entry: Path) -> str | None:
    """Why a cache entry cannot be trusted (no manifest, a file missing, truncated or changed), or None."""
    try:
        expected = json.loads((entry / CACHE_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable manifest"
    actual = _checksums(entry)
    for name, (size, crc) in expected.items():
        if name not in actual:
            return f"{name} is missing"
        if actual[name][0] != size:
            return f"{name} has {actual[name][0]} bytes instead of {size}"
        if actual[name][1] != crc:
            return f"{name} has changed (checksum)"
    return None


def cached_packed(
    key: str, build: Callable[[], DatasetDict], cache_dir: Path | None = None, overwrite: bool = False
) -> DatasetDict:
    """Load a packed corpus from the cache, or build it and store it atomically (temp dir + manifest + rename).

    An entry whose files do not match its manifest (a disk error, a file edited or truncated) is rebuilt, with
    a notice; a build killed midway leaves only a hidden temp folder that nothing reads.
    """
    root = (cache_dir or default_cache_dir()) / "packed"
    target = root / key
    if target.is_dir() and not overwrite:
        problem = cache_problem(target)
        if problem is None:
            return load_from_disk(str(target))
        logger.warning(f"The cached corpus {target} is damaged ({problem}); rebuilding it.")
        shutil.rmtree(target, ignore_errors=True)
    packed = build()
    for split, ds in packed.items():
        if len(ds) == 0:
            raise DataError(
                f"the {split} data is shorter than one chunk after tokenization; add text or lower --input_length."
            )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}-"))
    packed.save_to_disk(str(tmp))
    (tmp / CACHE_MANIFEST).write_text(json.dumps(_checksums(tmp)), encoding="utf-8")
    if overwrite and target.exists():
        shutil.rmtree(target)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process (a parallel sweep trial) stored the same entry meanwhile: use theirs.
        shutil.rmtree(tmp, ignore_errors=True)
    return load_from_disk(str(target))


def split_packed(packed: Dataset, validation_percentage: float, seed: int) -> DatasetDict:
    """Hold out a share of the packed chunks for validation (at least one chunk when asked for any)."""
    if validation_percentage <= 0:
        return DatasetDict(train=packed)
    if len(packed) < 2:
        raise DataError(
            "the corpus yields fewer than two chunks, too few to hold out validation data; "
            "add text or lower --input_length."
        )
    n_val = max(1, int(round(len(packed) * validation_percentage / 100)))
    split = packed.train_test_split(test_size=n_val, seed=seed, shuffle=True)
    return DatasetDict(train=split["train"], validation=split["test"])
