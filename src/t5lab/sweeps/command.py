"""``t5lab sweep``: run a sweep (Optuna or W&B), report on one, or run one W&B trial (called by W&B agents)."""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import TrialState

from t5lab.errors import ConfigError, UserArgumentParser, UserError
from t5lab.sweeps import wandb_yaml
from t5lab.sweeps.layout import DEFAULT_OUTPUT_DIR


def sweep_command(argv: Sequence[str]) -> int:
    """``t5lab sweep FILE.yaml [...]``, ``t5lab sweep report [...]`` (and ``t5lab sweep trial``, run by W&B agents)."""
    if argv and argv[0] == "report":
        from t5lab.sweeps.report import report_command

        return report_command(argv[1:])
    if argv and argv[0] == "trial":
        from t5lab.sweeps.wandb_backend import trial_command

        return trial_command(argv[1:])
    parser = UserArgumentParser(
        prog="t5lab sweep",
        description=(
            "Run a hyperparameter sweep from a W&B sweep YAML (or t5lab's native form). "
            "`t5lab sweep report [STUDY|FILE.yaml]` shows its results."
        ),
    )
    parser.add_argument("file", help="The sweep YAML.")
    parser.add_argument(
        "--backend",
        choices=("optuna", "wandb"),
        default="optuna",
        help="optuna (default: local, no account) or wandb (a W&B sweep with local agents).",
    )
    parser.add_argument(
        "--trials", type=int, help="Trials in the whole study (default: run_cap, the grid's size, or 20)."
    )
    parser.add_argument("--workers", type=int, default=1, help="Trials running at once on this machine (default 1).")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUTPUT_DIR/optuna.db).")
    parser.add_argument("--study", help="Study name (default: the sweep's name, else the file's name).")
    parser.add_argument(
        "--output_dir", help=f"Where trials write (default: the output_dir parameter, else {DEFAULT_OUTPUT_DIR})."
    )
    args = parser.parse_args(list(argv))
    spec = wandb_yaml.load_sweep(args.file)
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {args.trials}.")
    if args.backend == "wandb":
        from t5lab.sweeps.wandb_backend import run_wandb_sweep

        run_wandb_sweep(spec, args.trials, args.workers, args.output_dir)
        return 0
    from t5lab.sweeps.report import print_summary
    from t5lab.sweeps.runner import run_sweep

    study = run_sweep(spec, args.trials, args.workers, args.storage, args.study, args.output_dir)
    print_summary(study)
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise UserError(f"no trial of study '{study.study_name}' completed; see the trial logs.")
    return 0
