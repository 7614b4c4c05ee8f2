"""What a run leaves for people to read: loss plots and summary tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from t5lab.evaluation.metrics import glue_average  # noqa: E402
from t5lab.evaluation.naming import EVAL_PREFIX, metrics_of_splits  # noqa: E402

# Pre-training diagnostics drawn in the second panel of the loss plot, with their legend labels.
DIAGNOSTIC_CURVES = {
    "eval_noise_loss": "loss on hidden tokens",
    "eval_noise_unigram_loss": "corpus unigram on hidden tokens",
    "eval_sentinel_loss": "loss on sentinels + EOS",
    "eval_encoder_gain": "encoder gain (rolled inputs - true)",
}


def plot_loss_curve(log_history: Iterable[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Plot training and evaluation loss against the step from a Trainer's ``log_history``.

    When the evaluations carry pre-training diagnostics (see :mod:`t5lab.evaluation.pretraining`), a second
    panel shows them: hidden-token loss against its unigram reference, sentinel loss and encoder gain.
    """
    history = list(log_history)
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evaluation = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    diagnostics = {
        label: [(h["step"], h[key]) for h in history if key in h] for key, label in DIAGNOSTIC_CURVES.items()
    }
    diagnostics = {label: points for label, points in diagnostics.items() if points}
    fig, axes = plt.subplots(1, 2 if diagnostics else 1, figsize=(13 if diagnostics else 7, 4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="train loss", alpha=0.8)
    if evaluation:
        ax.plot(*zip(*evaluation), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evaluation:
        ax.legend()
    if diagnostics:
        right = axes[0][1]
        for label, points in diagnostics.items():
            style = "--" if "unigram" in label else "o-"
            right.plot(*zip(*points), style, label=label)
        right.axhline(0.0, color="grey", linewidth=0.8)
        right.set_xlabel("step")
        right.set_ylabel("nats per target token")
        right.set_title("what the model has learned (held-out text)")
        right.grid(alpha=0.3)
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def table_console() -> Console:
    """The terminal's width on a terminal; wide enough for every column when printing to a file or a pipe."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]], console: Console | None = None) -> None:
    """Print a small table to the terminal."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    (console or Console()).print(table)


def report_evaluation(
    evaluation_sets: Sequence[Any],
    predictions: Mapping[str, list[str]],
    metrics: Mapping[str, float],
    output_dir: Path,
    eval_mode: str,
) -> dict[str, float]:
    """Write each split's predictions file and print the summary table; returns the GLUE average
    (``eval_glue_average``) when GLUE tasks were scored, else nothing."""
    per_task: dict[str, dict[str, dict[str, float]]] = {}
    for evaluation_set, results in metrics_of_splits(evaluation_sets, metrics):
        write_predictions(
            output_dir / "predictions" / f"{evaluation_set.name}.jsonl",
            evaluation_set,
            predictions[evaluation_set.name],
        )
        per_task.setdefault(evaluation_set.task.name, {})[evaluation_set.split] = results
    extra = {}
    glue = {name: results for name, results in per_task.items() if name.startswith("glue/")}
    if glue and any(results for results in glue.values()):
        extra[f"{EVAL_PREFIX}_glue_average"] = glue_average({name.split("/")[1]: r for name, r in glue.items()})
    rows = [
        (task, split, metric, value)
        for task, by_split in per_task.items()
        for split, values in by_split.items()
        for metric, value in values.items()
    ]
    if rows:
        print_table(f"Evaluation ({eval_mode})", ["task", "split", "metric", "value"], rows)
    return extra


def write_predictions(path: str | Path, evaluation_set: Any, predictions: list[str]) -> Path:
    """One JSON line per example, in the split's order: input, target, prediction (raw) and parsed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    task = evaluation_set.task
    with path.open("w", encoding="utf-8") as out:
        for source, target, prediction in zip(evaluation_set.inputs, evaluation_set.targets, predictions):
            row = {"input": source, "target": target, "prediction": prediction, "parsed": task.parse(prediction)}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# GLUE leaderboard file names by (task, split), and the tasks whose submissions use label ids.
GLUE_SUBMISSION_FILES = {
    ("cola", "test"): "CoLA.tsv",
    ("sst2", "test"): "SST-2.tsv",
    ("mrpc", "test"): "MRPC.tsv",
    ("stsb", "test"): "STS-B.tsv",
    ("qqp", "test"): "QQP.tsv",
    ("mnli", "test_matched"): "MNLI-m.tsv",
    ("mnli", "test_mismatched"): "MNLI-mm.tsv",
    ("qnli", "test"): "QNLI.tsv",
    ("rte", "test"): "RTE.tsv",
    ("wnli", "test"): "WNLI.tsv",
    ("ax", "test"): "AX.tsv",
}
GLUE_NUMERIC_LABELS = {"cola", "sst2", "mrpc", "qqp", "wnli"}


def write_glue_submission(directory: str | Path, evaluation_set: Any, predictions: list[str]) -> Path | None:
    """Write a GLUE-leaderboard TSV (index, prediction) for a GLUE test split; None for other splits.

    An invalid generation must still be submitted: it becomes the first label (or 0.0 for STS-B).
    """
    task = evaluation_set.task
    if not task.name.startswith("glue/"):
        return None
    file_name = GLUE_SUBMISSION_FILES.get((task.short_name, evaluation_set.split))
    if file_name is None:
        return None
    path = Path(directory) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["index\tprediction"]
    for index, prediction in enumerate(predictions):
        parsed = task.parse(prediction)
        if task.kind == "regression":
            value = f"{(parsed if parsed is not None else 0.0):.3f}"
        else:
            word = parsed if parsed is not None else task.label_words[0]
            value = str(task.label_to_id(word)) if task.short_name in GLUE_NUMERIC_LABELS else word
        lines.append(f"{index}\t{value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
