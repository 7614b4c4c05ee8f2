"""``t5lab sweep report``: a study's trials as a table, its best trial, and PNG plots by Optuna's matplotlib
visualisation (optimization history, parameter importances, slices, parallel coordinates, intermediate
values, timeline)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from t5lab.errors import ConfigError
from t5lab.evaluation.outputs import print_table, table_console
from t5lab.sweeps.runner import retries

PLOTS: dict[str, str] = {  # file name -> optuna.visualization.matplotlib function
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "slice": "plot_slice",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
    "timeline": "plot_timeline",
}


def _metric(study: optuna.Study) -> str:
    return study.user_attrs.get("sweep", {}).get("metric", "value")


def trial_rows(study: optuna.Study) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows of the trials table: number, state, objective, duration, parameters[, note]."""
    trials = study.get_trials(deepcopy=False)
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    # Optuna has no "interrupted" state: a stopped trial is failed and a copy queued (see runner.SweepRunner)
    resumed_as = retries(trials)
    with_notes = bool(resumed_as) or any("error" in t.user_attrs for t in trials)
    columns = ["trial", "state", f"eval/{_metric(study)}", "duration (s)", *params, *(["note"] if with_notes else [])]
    rows = []
    for t in trials:
        duration = round(t.duration.total_seconds()) if t.duration else "-"
        value = t.value if t.value is not None else "-"
        state = "stopped" if t.number in resumed_as else t.state.name.lower()
        note = f"resumed as trial {resumed_as[t.number]}" if t.number in resumed_as else t.user_attrs.get("error", "")
        notes = [note[:80]] if with_notes else []
        rows.append((t.number, state, value, duration, *(t.params.get(p, "-") for p in params), *notes))
    return columns, rows


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best completed trial, or None before any trial completed."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return study.best_trial if done else None


def print_summary(study: optuna.Study) -> None:
    """Print the trials table and the best trial."""
    columns, rows = trial_rows(study)
    print_table(f"study {study.study_name}: {len(rows)} trials", columns, rows, table_console())
    best = best_trial(study)
    if best is None:
        print("No trial has completed yet.")
        return
    params = ", ".join(f"{k}={v}" for k, v in best.params.items())
    print(
        f"Best: trial {best.number}, eval/{_metric(study)} = {best.value:.6g} ({params}); "
        f"output: {best.user_attrs.get('output_dir', '-')}"
    )


def write_plots(study: optuna.Study, folder: str | Path) -> list[Path]:
    """Save each plot that the study's trials allow as ``folder/NAME.png``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as visualization

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, function in PLOTS.items():
        plot: Callable = getattr(visualization, function)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the matplotlib backend is "experimental"; empty plots warn
            try:
                plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials, or nothing varies
                plt.close("all")
                continue
        figure = plt.gcf()
        if not any(ax.has_data() for ax in figure.axes):  # e.g. no intermediate values were reported
            plt.close(figure)
            continue
        figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / f"{name}.png")
    return written


def report_command(argv: Sequence[str]) -> int:
    """``t5lab sweep report [STUDY|FILE.yaml] [--study NAME] [--storage URL] [--output_dir DIR] [--plots DIR]``."""
    from t5lab.errors import UserArgumentParser
    from t5lab.sweeps.layout import locations, study_folder
    from t5lab.sweeps.wandb_yaml import load_sweep

    parser = UserArgumentParser(prog="t5lab sweep report", description="Trials table, best trial and plots of a sweep.")
    parser.add_argument("study", nargs="?", help="Study name or sweep file (default: the storage's only study).")
    parser.add_argument("--study", dest="study_name", help="Study name (the same as giving it first).")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUTPUT_DIR/optuna.db).")
    parser.add_argument("--output_dir", help="The sweep's output root (default: as for t5lab sweep).")
    parser.add_argument("--plots", help="Folder for the PNG plots (default: OUTPUT_DIR/STUDY/plots).")
    args = parser.parse_args(list(argv))
    is_file = bool(args.study) and args.study.endswith((".yaml", ".yml")) and Path(args.study).is_file()
    spec = load_sweep(args.study) if is_file else None
    root, url, name = locations(
        spec, args.output_dir, args.storage, args.study_name or (None if is_file else args.study)
    )
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise ConfigError(f"no sweep storage at {url}; give --storage or --output_dir as used by t5lab sweep.")
    names = optuna.study.get_all_study_names(storage=url)
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        raise ConfigError(
            f"no study {'named ' + repr(name) + ' ' if name else ''}in {url}; studies: {', '.join(names) or 'none'}."
        )
    study = optuna.load_study(study_name=name, storage=url)
    print_summary(study)
    plots = write_plots(study, args.plots or study_folder(root, name) / "plots")
    print("Plots: " + (", ".join(str(p) for p in plots) if plots else "none yet (they need completed trials)"))
    return 0
