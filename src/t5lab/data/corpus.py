"""Text sources for pre-training: hub datasets (optionally streamed), local files, a bundled corpus, mixtures."""

from __future__ import annotations

import ast
import glob
import os
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import Dataset, IterableDataset

from t5lab.data.hub import check_hub_reachable, is_offline
from t5lab.errors import ConfigError, DataError

AnyDataset = Dataset | IterableDataset

# Loaders for local files, by extension.
FILE_BUILDERS = {
    ".txt": "text",
    ".raw": "text",
    ".text": "text",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
}
BUNDLED_PREFIX = "t5lab:"


def _stdlib_docstrings() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skipped = {"test", "tests", "site-packages", "dist-packages", "idlelib", "lib2to3", "turtledemo"}
    for path in sorted(root.rglob("*.py")):
        if skipped & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docstring = ast.get_docstring(node)
                if docstring:
                    yield docstring


def _paragraphs(texts: Iterable[str]) -> list[str]:
    return [p.strip() for text in texts for p in text.split("\n\n") if len(p.split()) >= 3]


def python_docs_paragraphs() -> tuple[list[str], list[str]]:
    """Paragraphs of the language reference topics of ``pydoc_data``, and of the standard library's docstrings."""
    from pydoc_data.topics import topics

    return _paragraphs(topics.values()), _paragraphs(_stdlib_docstrings())


def _python_docs() -> Dataset:
    """English prose that ships with every CPython: the reference topics of ``pydoc_data`` and the
    docstrings of the standard library (about 300k words), so the quickstart needs no network or data files.
    """
    reference, docstrings = python_docs_paragraphs()
    return Dataset.from_dict({"text": reference + docstrings})


BUNDLED_CORPORA = {"python-docs": _python_docs}


@dataclass(frozen=True)
class Source:
    """One corpus of a mixture: a hub dataset, a bundled corpus, or a group of local files."""

    kind: str  # "hub", "bundled" or "files"
    name: str  # hub id, bundled name, or the file pattern as given
    config: str | None = None
    files: tuple[str, ...] = ()

    def describe(self) -> dict:
        """What identifies this source's content (used in cache keys)."""
        if self.kind == "files":
            return {"files": [(f, os.path.getsize(f), int(os.path.getmtime(f))) for f in self.files]}
        if self.kind == "bundled":
            return {"kind": self.kind, "name": self.name, "python": sys.version}
        return {"kind": self.kind, "name": self.name, "config": self.config}


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _expand_files(pattern: str) -> tuple[str, ...]:
    files = sorted(glob.glob(os.path.expanduser(pattern))) if glob.has_magic(pattern) else [pattern]
    if not files:
        raise DataError(f"no file matches '{pattern}'.")
    for f in files:
        path = Path(f)
        if path.is_dir():
            raise DataError(f"data file {f} is a directory; give a file, or a glob such as '{f}/*.txt'.")
        if not path.is_file():
            raise DataError(f"data file {f} does not exist.")
        if path.suffix.lower() not in FILE_BUILDERS:
            raise DataError(f"data file {f} has an unsupported type; use one of {', '.join(sorted(FILE_BUILDERS))}.")
        if path.stat().st_size == 0:
            raise DataError(f"data file {f} is empty.")
        if not os.access(f, os.R_OK):
            raise DataError(f"data file {f} is not readable.")
    if len({Path(f).suffix.lower() for f in files}) > 1:
        raise DataError(f"files matching '{pattern}' mix several formats; give each format as its own entry.")
    return tuple(files)


def parse_sources(dataset_name: str | None, dataset_config_name: str | None, train_file: str | None) -> list[Source]:
    """Sources in mixture order: ``dataset_name`` entries, then ``train_file`` entries."""
    names, configs = _split_list(dataset_name), _split_list(dataset_config_name)
    if configs and len(configs) != len(names):
        raise ConfigError(f"--dataset_config_name has {len(configs)} entries but --dataset_name has {len(names)}.")
    sources = []
    for i, name in enumerate(names):
        if name.startswith(BUNDLED_PREFIX):
            bundled = name[len(BUNDLED_PREFIX) :]
            if bundled not in BUNDLED_CORPORA:
                raise ConfigError(
                    f"unknown bundled corpus '{name}'; "
                    f"available: {', '.join(BUNDLED_PREFIX + b for b in BUNDLED_CORPORA)}."
                )
            sources.append(Source("bundled", bundled))
        else:
            sources.append(Source("hub", name, configs[i] if configs else None))
    sources += [Source("files", entry, files=_expand_files(entry)) for entry in _split_list(train_file)]
    if not sources:
        raise ConfigError("no training data: give --dataset_name or --train_file.")
    return sources


def _load_files(files: tuple[str, ...], cache_dir: str | None, streaming: bool) -> AnyDataset:
    suffix = Path(files[0]).suffix.lower()
    builder = FILE_BUILDERS[suffix]
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    try:
        return datasets.load_dataset(
            builder, data_files=list(files), split="train", cache_dir=cache_dir, streaming=streaming, **kwargs
        )
    except Exception as exc:  # the builders wrap the real cause (decode error, parse error) in their own types
        cause = _root_cause(exc)
        if isinstance(cause, UnicodeDecodeError):
            raise DataError(f"{', '.join(files)} is not UTF-8 text ({cause.reason} at byte {cause.start}).") from None
        raise DataError(
            f"cannot read {', '.join(files)}: {str(cause).splitlines()[0] if str(cause) else type(cause).__name__}"
        ) from None


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc


def _hub_unavailable(name: str, exc: Exception) -> DataError:
    if is_offline(for_datasets=True):
        return DataError(
            f"hub dataset '{name}' requested but the hub is offline (HF_HUB_OFFLINE is set); "
            "use --train_file with local files, or unset HF_HUB_OFFLINE where the network is available."
        )
    return DataError(f"cannot load hub dataset '{name}': {str(exc).splitlines()[0]}")


def load_source(source: Source, split: str, cache_dir: str | None = None, streaming: bool = False) -> AnyDataset | None:
    """Load one split of a source; ``None`` when the source has no such split (e.g. no 'validation')."""
    if source.kind == "files":
        return _load_files(source.files, cache_dir, streaming) if split == "train" else None
    if source.kind == "bundled":
        return BUNDLED_CORPORA[source.name]() if split == "train" else None
    if is_offline(for_datasets=True):
        raise _hub_unavailable(source.name, RuntimeError("offline"))
    check_hub_reachable(f"hub dataset '{source.name}'")
    try:
        return datasets.load_dataset(source.name, source.config, split=split, streaming=streaming, cache_dir=cache_dir)
    except ValueError as exc:
        if "split" in str(exc).lower() and split != "train":
            return None
        raise _hub_unavailable(source.name, exc) from None
    except Exception as exc:
        raise _hub_unavailable(source.name, exc) from None


def text_only(dataset: AnyDataset, text_column: str, where: str) -> AnyDataset:
    """Keep only the text column (renamed to 'text'); a missing column is an error listing the ones present."""
    columns = dataset.column_names
    if columns is not None and text_column not in columns:
        raise DataError(f"{where} has no column '{text_column}'; its columns are {columns}. Set --text_column_name.")
    dataset = dataset.select_columns([text_column])
    return dataset.rename_column(text_column, "text") if text_column != "text" else dataset


def parse_rates(mixture_rates: str | None, num_sources: int) -> list[float] | None:
    """Normalised sampling rates, or None when not given."""
    if not mixture_rates:
        return None
    try:
        rates = [float(r) for r in _split_list(mixture_rates)]
    except ValueError:
        raise ConfigError(f"--mixture_rates must be comma-separated numbers, got '{mixture_rates}'.") from None
    if len(rates) != num_sources:
        raise ConfigError(f"--mixture_rates has {len(rates)} entries for {num_sources} sources.")
    if any(r < 0 for r in rates) or sum(rates) <= 0:
        raise ConfigError("--mixture_rates must be non-negative and not all zero.")
    return [r / sum(rates) for r in rates]


def mix(parts: list[AnyDataset], rates: list[float] | None, seed: int) -> AnyDataset:
    """One dataset from several: sampled at ``rates``, or concatenated (map-style) / alternated (streaming)."""
    if len(parts) == 1:
        return parts[0]
    if rates is None and all(isinstance(p, Dataset) for p in parts):
        return datasets.concatenate_datasets(parts)
    return datasets.interleave_datasets(parts, probabilities=rates, seed=seed, stopping_strategy="all_exhausted")
