"""``t5lab sweep FILE --backend wandb``: the same sweep run by W&B's sweep controller, for users with an account.

W&B chooses the parameters and its agents (``wandb agent``, started here or by the SLURM template) run the
trials. Each agent runs ``t5lab sweep trial FILE --output_dir ROOT -- ${args}``, which builds the same trial
command as the optuna backend, gives the run its own output dir (``ROOT/<W&B run id>``), reports to W&B, and
becomes the trial program. The metric is named as the Trainer's W&B integration logs it: ``eval/<metric>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from t5lab.errors import ConfigError, UserError
from t5lab.sweeps.layout import locations, study_folder, worker_environments
from t5lab.sweeps.trial import check_metric, check_program, expand_command
from t5lab.sweeps.wandb_yaml import SweepSpec, load_sweep

console = Console(stderr=True, soft_wrap=True)


def to_wandb_config(spec: SweepSpec, trial_root: Path, trials: int | None = None) -> dict[str, Any]:
    """The W&B sweep config of ``spec``: its search as written, the metric as W&B shows it, and a command
    that runs each trial through ``t5lab sweep trial`` in its own output dir under ``trial_root``."""
    report_to = spec.fixed.get("report_to")
    if report_to is not None and "wandb" not in str(report_to):
        raise ConfigError(f"report_to is {report_to}: the wandb backend reads the metric from W&B; include wandb.")
    parameters = {
        name: {k: v for k, v in p.items() if v is not None}  # W&B's schema rejects nulls
        for name, p in spec.parameters.items()
        if name != "output_dir"
    }
    metric = {"name": f"eval/{spec.metric_name}", "goal": spec.goal}
    if spec.target is not None:
        metric["target"] = spec.target
    config: dict[str, Any] = {
        "name": spec.name,
        "method": spec.method,
        "metric": metric,
        "parameters": parameters,
        "command": [
            "${env}",
            "${interpreter}",
            "-m",
            "t5lab",
            "sweep",
            "trial",
            str(spec.path.resolve()),
            f"--output_dir={trial_root.resolve()}",
            "--",
            "${args}",
        ],
    }
    optional = {
        "program": spec.program,
        "description": spec.description,
        "early_terminate": spec.early_terminate,
        "run_cap": trials or spec.run_cap,
    }
    config.update({key: value for key, value in optional.items() if value is not None})
    return config


def trial_argv(spec: SweepSpec, wandb_args: Sequence[str], trial_root: Path, run_id: str) -> list[str]:
    """The trial program's argument list for one W&B run, from the ``--key=value`` arguments W&B passed."""
    args: dict[str, Any] = {}
    for arg in wandb_args:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep:
            raise ConfigError(f"expected --key=value arguments from the W&B agent, got '{arg}'.")
        args[key] = value
    output_dir = trial_root / run_id
    args["output_dir"] = str(output_dir)
    args.setdefault("report_to", "wandb")
    return expand_command(spec.command, args, spec.program, trial_root / f"{run_id}.args.json")


def trial_command(argv: Sequence[str]) -> int:
    """``t5lab sweep trial FILE --output_dir ROOT -- ARGS``: become the trial program of the current W&B run."""
    argv = list(argv)
    if "--" not in argv or len(argv[: argv.index("--")]) != 2 or not argv[1].startswith("--output_dir="):
        raise UserError("usage: t5lab sweep trial FILE.yaml --output_dir=ROOT -- --key=value ... (run by W&B agents)")
    run_id = os.environ.get("WANDB_RUN_ID")
    if not run_id:
        raise UserError("t5lab sweep trial is run by a W&B agent (WANDB_RUN_ID is not set); use t5lab sweep FILE.")
    trial_root = Path(argv[1].split("=", 1)[1])
    trial_root.mkdir(parents=True, exist_ok=True)
    command = trial_argv(load_sweep(argv[0]), argv[argv.index("--") + 1 :], trial_root, run_id)
    os.execvp(command[0], command)  # the agent watches this process: it must be the trial itself
    return 0  # not reached


def run_wandb_sweep(spec: SweepSpec, trials: int | None, workers: int, output_dir: str | None) -> str:
    """Create the W&B sweep and run ``workers`` agents here (none with ``--workers 0``); returns its path."""
    try:
        import wandb
    except ImportError:
        raise UserError("the wandb backend needs the wandb package: pip install 't5lab[wandb]'.") from None
    if workers < 0:
        raise ConfigError(f"--workers must be 0 (only create the sweep) or more, got {workers}.")
    check_program(spec)
    check_metric(spec)
    root, _, name = locations(spec, output_dir, None, None)
    project = spec.project or os.environ.get("WANDB_PROJECT") or "t5lab"
    sweep_id = wandb.sweep(to_wandb_config(spec, study_folder(root, name), trials), project=project, entity=spec.entity)
    path = "/".join(part for part in (spec.entity, project, sweep_id) if part)
    console.print(f"W&B sweep {path}; add agents anywhere with: wandb agent {path}")
    agents = (
        [
            subprocess.Popen([sys.executable, "-m", "wandb", "agent", path], env=env)
            for env in worker_environments(workers)
        ]
        if workers
        else []
    )
    try:
        for agent in agents:
            agent.wait()
    except KeyboardInterrupt:
        for agent in agents:
            agent.terminate()
        raise
    return path
