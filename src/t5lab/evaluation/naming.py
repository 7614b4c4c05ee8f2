"""Names of evaluation metrics: the one place that knows how a metric is keyed and which way is better.

A fine-tuning run evaluated on one validation split reports ``eval_<metric>`` (``eval_accuracy``); evaluated
on several (MNLI matched and mismatched, a task mixture) it reports ``eval_<task>_<split>_<metric>`` for each
split plus ``eval_average`` (the mean of each split's metric to optimize) and ``eval_loss``. Trackers show the
same keys as ``eval/<metric>``; sweep files may name a metric either way, or bare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from t5lab.errors import ConfigError

if TYPE_CHECKING:  # names only: sweeps and trackers use this module without loading tasks and metrics
    from t5lab.tasks.schema import Task

EVAL_PREFIX = "eval"
AVERAGE = "average"


def strip_eval_prefix(name: str) -> str:
    """``eval/f1`` (W&B's view of HF metrics), ``eval_f1`` (eval_results.json) or ``f1`` -> ``f1``."""
    for prefix in (f"{EVAL_PREFIX}/", f"{EVAL_PREFIX}_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def split_metric_prefix(evaluation_set_name: str, several: bool, prefix: str = EVAL_PREFIX) -> str:
    """Key prefix of one evaluation split's metrics: ``eval`` alone, ``eval_<task>_<split>`` among several."""
    return f"{prefix}_{evaluation_set_name}" if several else prefix


def metrics_of_splits(
    evaluation_sets: Sequence[Any], metrics: Mapping[str, float]
) -> list[tuple[Any, dict[str, float]]]:
    """Each evaluation set (anything with a ``name`` and a ``task``) with its own metrics from ``metrics``, keyed
    without their prefix: ``accuracy``, not ``eval_accuracy`` or ``eval_sst2_validation_accuracy``."""
    several = len(evaluation_sets) > 1
    pairs = []
    for evaluation_set in evaluation_sets:
        prefix = split_metric_prefix(evaluation_set.name, several)
        keys = {m: f"{prefix}_{m}" for m in evaluation_set.task.produced_metrics}
        pairs.append((evaluation_set, {m: metrics[key] for m, key in keys.items() if key in metrics}))
    return pairs


def produced_metrics(tasks: Sequence[Task], validation_file: str | None = None) -> tuple[list[str], str]:
    """The eval metrics (without ``eval_``) a fine-tuning run writes, and the default one to optimize.

    One validation split: the task's metrics, invalid_rate and loss. Several: their mean ``average``, ``loss``,
    and each split's metrics as ``<task>_<split>_<metric>``.
    """
    sets = [
        (task, split)
        for task in tasks
        for split in (["validation"] if validation_file else task.splits.names("validation"))
    ]
    if len(sets) == 1:
        return [*tasks[0].produced_metrics, "loss"], tasks[0].metric_to_optimize
    per_split = [f"{task.short_name}_{split}_{m}" for task, split in sets for m in task.produced_metrics]
    return [AVERAGE, "loss", *per_split], AVERAGE


def metric_direction(metric: str, tasks: Sequence[Task], validation_file: str | None = None) -> bool:
    """Whether a larger ``metric`` (as named by :func:`produced_metrics`) is better.

    The task definition decides for its metric to optimize (``greater_is_better`` in its YAML); otherwise
    the metric's spec does, for per-split names through the metric they end with.
    """
    from t5lab.evaluation.metrics import greater_is_better  # scipy and scikit-learn: only when a direction is needed

    if metric == AVERAGE:
        return True
    for task in tasks:
        sets = ["validation"] if validation_file else task.splits.names("validation")
        for split in sets:
            for produced in task.produced_metrics:
                if metric in (produced, f"{task.short_name}_{split}_{produced}"):
                    return (
                        task.greater_is_better if produced == task.metric_to_optimize else greater_is_better(produced)
                    )
    return greater_is_better(metric)


def best_model_metric(
    tasks: Sequence[Task],
    validation_file: str | None,
    requested: str | None,
    requested_greater_is_better: bool | None = None,
) -> tuple[str, bool]:
    """The metric that picks the best checkpoint and its direction; the user's explicit values win.

    Checked before any data is read or model built: a metric the run does not produce is a one-line error.
    """
    produced, default = produced_metrics(tasks, validation_file)
    name = default if requested is None else strip_eval_prefix(requested)
    if name not in produced:
        raise ConfigError(
            f"--metric_for_best_model '{requested}' is not a metric of this run; choose one of {', '.join(produced)}."
        )
    greater = (
        requested_greater_is_better
        if requested_greater_is_better is not None
        else metric_direction(name, tasks, validation_file)
    )
    return name, greater
