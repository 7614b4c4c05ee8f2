"""Task examples for fine-tuning and evaluation: splits -> text-to-text rows -> tokens, and task mixtures.

Functions take plain values (task objects, paths, lengths), not the command line's dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset, interleave_datasets
from transformers import PreTrainedTokenizerBase

from t5lab.errors import ConfigError, DataError
from t5lab.tasks.readers import load_task_splits
from t5lab.tasks.registry import get_task
from t5lab.tasks.schema import Task

MIXING = ("proportional", "temperature")


def task_list(task: str, task_file: str | None = None, single_task_files: bool = False) -> list[Task]:
    """The tasks named by ``--task`` (comma-separated), looked up with the ``--task_file`` definitions too.

    ``single_task_files``: explicit train/validation/test files were given, which describe one task only.
    """
    task_files = [f.strip() for f in (task_file or "").split(",") if f.strip()]
    tasks = [get_task(name.strip(), task_files) for name in task.split(",") if name.strip()]
    if len(tasks) > 1 and single_task_files:
        raise ConfigError(
            "--train_file/--validation_file/--test_file describe one task; use --data_dir or task files for a mixture."
        )
    return tasks


def format_examples(task: Task, dataset: Dataset, source_prefix: str = "") -> Dataset:
    """Add ``inputs`` (after ``source_prefix``) and ``targets`` text columns (targets are None on unlabeled rows)."""

    def render(batch: dict[str, list]) -> dict[str, list]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        return {
            "inputs": [source_prefix + task.format_input(r) for r in rows],
            "targets": [task.format_target(r) for r in rows],
        }

    return dataset.map(render, batched=True)


def load_examples(
    task: Task,
    roles: tuple[str, ...],
    data_dir: str | None = None,
    data_files: dict[str, str] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    cache_dir: str | None = None,
    source_prefix: str = "",
) -> dict[str, Dataset]:
    """Formatted (inputs/targets) splits of ``task`` for the given roles, read once.

    A test split is optional when training, every other requested split is required; empty splits are errors.
    ``data_files`` (role -> file) override ``data_dir`` and the hub.
    """
    files = {role: path for role, path in (data_files or {}).items() if role in roles}
    if files:
        splits = load_task_splits(task, data_files=files, cache_dir=cache_dir)
    else:
        wanted = [name for role in roles for name in task.splits.names(role)]
        optional_test = "test" in roles and "train" in roles
        required = [name for name in wanted if not (optional_test and task.splits.role_of(name) == "test")]
        splits = load_task_splits(
            task, data_dir=data_dir, cache_dir=cache_dir, splits=wanted, optional=set(wanted) - set(required)
        )
    formatted = {}
    for name, dataset in splits.items():
        if len(dataset) == 0:
            raise DataError(f"task {task.name}: split '{name}' is empty.")
        limit = max_train_samples if task.splits.role_of(name) == "train" else max_eval_samples
        if limit is not None and len(dataset) > limit:
            dataset = dataset.select(range(limit))
        formatted[name] = format_examples(task, dataset, source_prefix)
    return formatted


def tokenize_examples(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_source_length: int, max_target_length: int
) -> Dataset:
    """input_ids/attention_mask, plus labels when every row has a target."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch["inputs"], max_length=max_source_length, truncation=True)
        if all(t is not None for t in batch["targets"]):
            encoded["labels"] = tokenizer(text_target=batch["targets"], max_length=max_target_length, truncation=True)[
                "input_ids"
            ]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)


@dataclass
class EvaluationSet:
    """One split of one task, tokenized, with the text kept for the predictions file."""

    task: Task
    split: str
    dataset: Dataset  # input_ids, attention_mask[, labels]
    inputs: list[str]
    targets: list[str | None]
    references: list[Any]
    groups: list[Any] | None

    @property
    def name(self) -> str:
        return f"{self.task.short_name}_{self.split}"


def evaluation_set(
    task: Task,
    split: str,
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
    max_target_length: int,
) -> EvaluationSet:
    """An :class:`EvaluationSet` from a formatted split."""
    references = list(dataset[task.label_column]) if task.kind != "text" else list(dataset["targets"])
    groups = list(dataset[task.group_column]) if task.group_column else None
    tokenized = tokenize_examples(dataset, tokenizer, max_source_length, max_target_length)
    return EvaluationSet(task, split, tokenized, list(dataset["inputs"]), list(dataset["targets"]), references, groups)


def mix_tasks(
    parts: list[Dataset], mixing: str = "proportional", cap: int = 2**19, temperature: float = 2.0, seed: int = 0
) -> Dataset:
    """One training set from several tasks' examples: examples-proportional (capped) or temperature mixing."""
    if len(parts) == 1:
        return parts[0]
    sizes = np.array([min(len(p), cap) for p in parts], dtype=float)
    if mixing == "temperature":
        sizes = sizes ** (1.0 / temperature)
    return interleave_datasets(
        parts, probabilities=(sizes / sizes.sum()).tolist(), seed=seed, stopping_strategy="all_exhausted"
    )
