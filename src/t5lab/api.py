"""The Python API: ``t5lab.pretrain``, ``finetune``, ``evaluate`` and ``predict`` (docs/api.md).

Each takes the command's flags as keyword arguments (``pretrain(train_file="corpus.txt", max_steps=10,
output_dir="runs/x")``) and optionally ``config="file.yaml"``, whose values the keywords override, as flags
override it on the command line. The keywords become flags and go through the command's own parser, so they
are checked exactly as ``t5lab COMMAND`` checks them: a bad one raises :class:`~t5lab.errors.ConfigError` with
the command's one-line message. Lists and mappings are given as in a YAML config.

Nothing heavy is imported until a function runs: ``import t5lab`` stays free of torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pretrain(*, config: str | Path | None = None, **flags: Any) -> dict[str, Any]:
    """Pre-train a T5 model, as ``t5lab pretrain``; returns the final train and eval metrics."""
    return _run("pretrain", config, flags)


def finetune(*, config: str | Path | None = None, **flags: Any) -> dict[str, Any]:
    """Fine-tune on one task or a mixture, as ``t5lab finetune``; returns the final eval metrics."""
    return _run("finetune", config, flags)


def evaluate(*, config: str | Path | None = None, **flags: Any) -> dict[str, Any]:
    """Evaluate a model on the validation splits of tasks, as ``t5lab evaluate``; returns the eval metrics."""
    return _run("evaluate", config, flags)


def predict(*, config: str | Path | None = None, **flags: Any) -> Path:
    """Predict the test splits of tasks, as ``t5lab predict``; returns the folder of GLUE submission files (the
    predictions are in ``OUTPUT_DIR/predictions``)."""
    return _run("predict", config, flags)


# command -> the description its --help opens with
RECIPES = {
    "pretrain": "Pre-train a T5 model (span corruption or another objective).",
    "finetune": "Fine-tune a T5 model on a task or a mixture of tasks.",
    "evaluate": "Evaluate a model on the validation splits of tasks.",
    "predict": "Predict the test splits of tasks; writes GLUE submission files.",
}


# Trainer flags a command accepts (they are TrainingArguments fields) but has no use for: refused in one line, never
# silently ignored. The fine-tuning recipe honours the rest of the generation and best-model flags itself.
_DECODING_FLAGS = {"predict_with_generate", "generation_max_length", "generation_num_beams", "generation_config"}
NOT_APPLICABLE = {
    "pretrain": {"do_train", "do_eval", "do_predict", "sortish_sampler", *_DECODING_FLAGS},
    "finetune": {"sortish_sampler"},
    "evaluate": {"do_train", "do_eval", "do_predict", "sortish_sampler"},
    "predict": {"do_train", "do_eval", "do_predict", "sortish_sampler"},
}


def _argument_types(command: str) -> tuple[type, ...]:
    from t5lab.training.arguments import T5LabTrainingArguments, quiet_deepspeed_on_cpu

    quiet_deepspeed_on_cpu()  # before anything imports transformers' Trainer
    from t5lab.config import DataArguments, ModelArguments, TaskArguments

    return ModelArguments, DataArguments if command == "pretrain" else TaskArguments, T5LabTrainingArguments


def run_recipe(command: str, argv: Sequence[str]) -> Any:
    """Parse ``argv`` as ``t5lab COMMAND`` does and run the recipe: the one path of the CLI and of this API."""
    from t5lab.config import parse_arguments
    from t5lab.errors import ConfigError

    args = parse_arguments(_argument_types(command), argv, f"t5lab {command}", RECIPES[command])
    if refused := sorted(NOT_APPLICABLE[command] & args[-1].given_flags):
        raise ConfigError(f"--{refused[0]} has no effect in `t5lab {command}`; leave it out (see --help).")
    if command == "pretrain":
        from t5lab.training.pretrain import pretrain as recipe
    else:
        from t5lab.training import finetune

        recipe = getattr(finetune, command)
    return recipe(*args)


def _run(command: str, config: str | Path | None, flags: dict[str, Any]) -> Any:
    from t5lab.config import values_to_argv
    from t5lab.log import configure, logger

    if not logger.handlers:  # a script that set up no logging still sees t5lab's progress lines
        configure()

    argv = (["--config", str(config)] if config is not None else []) + values_to_argv(flags, _argument_types(command))
    return run_recipe(command, argv)
