"""A task's predictions scored: parse each generation and map labels with the task, then call the metrics.

This is the bridge between tasks and metrics (as in seqio, metric functions never see a task): the task owns
its postprocessing (:meth:`~t5lab.tasks.schema.Task.parse`, label words to ids), :mod:`t5lab.evaluation.metrics`
owns the arithmetic.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from t5lab.errors import DataError
from t5lab.evaluation.metrics import INVALID_LABEL, INVALID_RATE, INVALID_REGRESSION_VALUE, METRICS, score
from t5lab.tasks.schema import Task


def _reference_ids(task: Task, references: Sequence[Any]) -> list[int]:
    ids = []
    for reference in references:
        try:
            label_id = task.label_to_id(reference)
        except ValueError as exc:
            raise DataError(f"reference of task {task.name}: {exc}") from None
        if label_id == INVALID_LABEL:
            raise DataError(f"task {task.name}: a reference is unlabeled (-1); score only labeled splits.")
        ids.append(label_id)
    return ids


def _reference_values(task: Task, references: Sequence[Any]) -> list[float]:
    try:
        values = [task.value_to_float(reference) for reference in references]
    except ValueError as exc:
        raise DataError(f"reference of task {task.name}: {exc}") from None
    if any(np.isnan(values)):
        raise DataError(f"task {task.name}: a reference is unlabeled (NaN); score only labeled splits.")
    return values


def compute_metrics(
    task: Task, predictions: Sequence[str], references: Sequence[Any], groups: Sequence[Hashable] | None = None
) -> dict[str, float]:
    """Parse generated strings with ``task`` and return all of its metrics plus ``invalid_rate``.

    ``references`` are label ids or label words (classification), numbers (regression), or target strings, each
    optionally a list of acceptable strings (text). ``groups`` (e.g. MultiRC question ids) is needed by
    group-level metrics.
    """
    if len(predictions) != len(references):
        raise DataError(f"task {task.name}: {len(predictions)} predictions but {len(references)} references.")
    if not predictions:
        raise DataError(f"task {task.name}: no predictions to score.")
    if groups is not None and len(groups) != len(predictions):
        raise DataError(f"task {task.name}: {len(groups)} groups but {len(predictions)} predictions.")
    if groups is None and any(METRICS[m].grouped for m in task.metrics if m in METRICS):
        raise DataError(f"task {task.name}: its metrics need the group of each example (column '{task.group_column}').")

    parsed = [task.parse(p) for p in predictions]
    invalid_rate = sum(p is None for p in parsed) / len(parsed)
    if task.kind == "classification":
        preds: list = [INVALID_LABEL if p is None else task.label_to_id(p) for p in parsed]
        refs: list = _reference_ids(task, references)
    elif task.kind == "regression":
        preds = [INVALID_REGRESSION_VALUE if p is None else p for p in parsed]
        refs = _reference_values(task, references)
    else:
        preds = ["" if p is None else p for p in parsed]
        refs = list(references)
    results = score(task.metrics, preds, refs, groups, list(task.labels or {}), task.positive_label)
    results[INVALID_RATE] = invalid_rate
    return results
