"""What a run leaves for people to read: loss plots and summary tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def plot_loss_curve(log_history: Iterable[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Plot training and evaluation loss against the step from a Trainer's ``log_history``."""
    history = list(log_history)
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evaluation = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", alpha=0.8)
    if evaluation:
        ax.plot(*zip(*evaluation), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]], console: Console | None = None) -> None:
    """Print a small table to the terminal."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    (console or Console()).print(table)
