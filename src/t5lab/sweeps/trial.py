"""One trial of a sweep: its command line, the metrics its program can produce, and the results it wrote.

A trial's command is the sweep's command with W&B's macros expanded into an argument list (never a shell
string): ``${args}`` becomes ``--key=value`` per parameter, as W&B's agent writes it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from t5lab.errors import ConfigError
from t5lab.evaluation.pretraining import DIAGNOSTIC_METRICS
from t5lab.sweeps.wandb_yaml import ENVVAR_MACRO, SweepSpec, read_yaml
from t5lab.training.tracking import log_history

# t5lab pretrain's evaluation: the Trainer's loss, t5lab.training.pretrain.token_accuracy and the diagnostics.
PRETRAINING_METRICS = ("loss", "token_accuracy", *DIAGNOSTIC_METRICS)


class TrialFailed(Exception):
    """A trial ended without a value: its program failed, or wrote no value of the metric."""


def expand_command(
    template: tuple[str, ...], args: dict[str, Any], program: str | None, args_json_file: Path | None = None
) -> list[str]:
    """The argument list of a trial: W&B's macros expanded with this trial's ``args``, as W&B's agent does.

    ``${interpreter}`` is the Python running t5lab (W&B's agent uses ``python``), so trials use its environment.
    """
    pairs = [(key, str(value)) for key, value in args.items()]  # W&B passes str(value): 0.001, True, linear
    expansions = {
        "${env}": [shutil.which("env") or "/usr/bin/env"],
        "${interpreter}": [sys.executable],
        "${program}": [program or ""],
        "${args}": [f"--{k}={v}" for k, v in pairs],
        "${args_no_equals}": [item for k, v in pairs for item in (f"--{k}", v)],
        "${args_no_hyphens}": [f"{k}={v}" for k, v in pairs],
        "${args_no_boolean_flags}": [
            f"--{k}" if v is True else f"--{k}={v}" for k, v in args.items() if v is not False
        ],
        "${args_json}": [json.dumps(args)],
        "${args_json_file}": [str(args_json_file or "")],
        "${args_append_hydra}": [f"+{k}={v}" for k, v in pairs],
        "${args_override_hydra}": [f"++{k}={v}" for k, v in pairs],
    }
    if args_json_file is not None and "${args_json_file}" in template:
        args_json_file.write_text(json.dumps(args), encoding="utf-8")
    argv: list[str] = []
    for token in template:
        if token in expansions:
            argv += expansions[token]
        else:  # W&B leaves an unset variable's name
            argv.append(ENVVAR_MACRO.sub(lambda match: os.environ.get(match.group(1), match.group(1)), token))
    if argv and argv[0] == "t5lab":
        # this installation's t5lab, whether or not its environment's bin folder is on PATH
        argv = [sys.executable, "-m", "t5lab", *argv[1:]]
    return argv


def check_program(spec: SweepSpec) -> None:
    """Fail before any trial when the program the trials run cannot be found."""
    argv = expand_command(spec.command, {}, spec.program)
    if not argv or not argv[0]:
        raise ConfigError("the sweep's command is empty; set program (e.g. t5lab) or command.")
    executable = argv[0]
    if shutil.which(executable) is None and not Path(executable).is_file():
        raise ConfigError(
            f"the sweep's trials would run '{executable}', which is neither a program on PATH nor a file; "
            "fix program/command in the sweep file (t5lab itself can be named as 'program: t5lab')."
        )


def t5lab_command(spec: SweepSpec) -> str | None:
    """The t5lab command the trials run (``finetune``, ``pretrain``, ...), or None for another program."""
    argv = expand_command(spec.command, {}, spec.program)
    for i, token in enumerate(argv[:-1]):
        if (token == "t5lab" and i > 0 and argv[i - 1] == "-m") or Path(token).name == "t5lab":
            return argv[i + 1]
    return None


def _trial_settings(spec: SweepSpec) -> dict[str, list[Any]]:
    """Every value each setting takes across trials: the t5lab config's, overridden by the parameters."""
    settings: dict[str, list[Any]] = {}
    configs = [token.split("=", 1)[1] for token in spec.command if token.startswith("--config=")]
    if "config" in spec.fixed:
        configs.append(str(spec.fixed["config"]))
    for config in configs:
        data = read_yaml(Path(config), "config file") or {}
        settings.update({key: [value] for key, value in data.items()} if isinstance(data, dict) else {})
    for name, parameter in spec.parameters.items():
        settings[name] = (
            [parameter["value"]] if parameter["distribution"] == "constant" else parameter.get("values", [])
        )
    return settings


def finetune_metrics(task: str, task_file: str | None = None, validation_file: str | None = None) -> list[str]:
    """The eval metrics ``t5lab finetune --task TASK`` writes (without ``eval_``)."""
    from t5lab.evaluation.naming import produced_metrics
    from t5lab.tasks.examples import task_list

    return produced_metrics(task_list(task, task_file), validation_file)[0]


def check_metric(spec: SweepSpec) -> None:
    """Fail before any trial when the sweep's metric is not one that its t5lab trials produce.

    Other programs are not known in advance; their metric is checked when the first trial ends.
    """
    command = t5lab_command(spec)
    if command == "pretrain":
        produced = {"pretrain": list(PRETRAINING_METRICS)}
    elif command == "finetune":
        settings = _trial_settings(spec)
        if not settings.get("task"):
            raise ConfigError(
                "the sweep runs t5lab finetune but sets no task; add task: {value: glue/sst2} to parameters."
            )
        file, validation = (settings.get(key, [None])[0] for key in ("task_file", "validation_file"))
        produced = {task: finetune_metrics(str(task), file, validation) for task in settings["task"]}
    else:
        return
    for what, metrics in produced.items():
        if spec.metric_name not in metrics:
            raise ConfigError(
                f"metric '{spec.metric}' is not produced by {what}; "
                f"choose one of {', '.join('eval/' + m for m in metrics)}."
            )


def read_objective(output_dir: Path, metric: str) -> float:
    """The trial's final value of ``metric`` from ``eval_results.json``."""
    path = output_dir / "eval_results.json"
    if not path.is_file():
        raise TrialFailed(f"the trial wrote no {path}; the program must save its eval results there.")
    results = json.loads(path.read_text(encoding="utf-8"))
    key = f"eval_{metric}"
    if key not in results:
        have = ", ".join(k for k in results if k.startswith("eval_")) or "none"
        raise TrialFailed(f"{path} has no {key} (it has: {have}).")
    return float(results[key])


def evaluations(output_dir: Path, metric: str) -> list[float]:
    """The values of ``metric`` at each evaluation logged so far by the running trial."""
    key = f"eval_{metric}"
    return [float(row[key]) for row in log_history(output_dir) if key in row]
