"""Sweep files: W&B's YAML as users write it, t5lab's native form, and their translation to Optuna."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from t5lab.errors import ConfigError
from t5lab.sweeps import wandb_yaml
from t5lab.sweeps.wandb_yaml import load_sweep, optuna_distribution, parse_parameter


def write(tmp_path, data, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)
    return path


WANDB_SWEEP = """
program: train.py
method: bayes
metric:
  name: eval/f1
  goal: maximize
parameters:
  learning_rate:
    distribution: log_uniform_values
    min: 1e-5
    max: 1e-3
  lr_scheduler_type:
    values: [linear, cosine]
  seed:
    value: 1
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - ${args}
early_terminate:
  type: hyperband
  min_iter: 2
"""


def test_wandb_sweep_yaml_as_users_write_it(tmp_path):
    spec = load_sweep(write(tmp_path, WANDB_SWEEP))
    assert (spec.name, spec.method, spec.goal, spec.metric, spec.metric_name) == (
        "sweep",
        "bayes",
        "maximize",
        "eval/f1",
        "f1",
    )
    assert spec.program == "train.py" and spec.command == ("${env}", "${interpreter}", "${program}", "${args}")
    assert spec.parameters["learning_rate"] == {
        "distribution": "log_uniform_values",
        "min": 1e-5,
        "max": 1e-3,
    }  # "1e-5" is a str in YAML 1.1
    assert spec.fixed == {"seed": 1}
    space = wandb_yaml.search_space(spec)
    assert space == {
        "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
        "lr_scheduler_type": CategoricalDistribution(["linear", "cosine"]),
    }
    assert isinstance(wandb_yaml.sampler(spec, space), optuna.samplers.TPESampler)
    pruner = wandb_yaml.pruner(spec)
    assert (
        isinstance(pruner, optuna.pruners.HyperbandPruner)
        and pruner._min_resource == 2
        and pruner._reduction_factor == 3
    )


def test_native_form_points_at_a_t5lab_config(tmp_path):
    (tmp_path / "base.yaml").write_text("task: glue/sst2\n")
    spec = load_sweep(
        write(
            tmp_path,
            {
                "command": "finetune",
                "config": "base.yaml",
                "method": "random",
                "metric": {"name": "eval_accuracy", "goal": "maximize"},
                "parameters": {"learning_rate": {"min": 0.0001, "max": 0.001}},
            },
        )
    )
    assert spec.command == (
        "${interpreter}",
        "-m",
        "t5lab",
        "finetune",
        f"--config={tmp_path / 'base.yaml'}",
        "${args}",
    )
    assert spec.parameters["learning_rate"]["distribution"] == "uniform"  # W&B's rule: float min/max
    assert isinstance(wandb_yaml.sampler(spec, wandb_yaml.search_space(spec)), optuna.samplers.RandomSampler)
    assert isinstance(wandb_yaml.pruner(spec), optuna.pruners.NopPruner)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"value": 3}, None),
        ({"values": [1, "a", True]}, CategoricalDistribution([1, "a", True])),
        ({"min": 1, "max": 8}, IntDistribution(1, 8)),
        ({"distribution": "int_uniform", "min": 2, "max": 4}, IntDistribution(2, 4)),
        ({"distribution": "uniform", "min": 0.1, "max": 0.5}, FloatDistribution(0.1, 0.5)),
        ({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25}, FloatDistribution(0.0, 1.0, step=0.25)),
        ({"distribution": "q_uniform", "min": 8, "max": 64, "q": 8}, IntDistribution(8, 64, step=8)),
        ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}, FloatDistribution(1e-5, 1e-2, log=True)),
        ({"distribution": "inv_log_uniform_values", "min": 1e-5, "max": 1e-2}, FloatDistribution(1e-5, 1e-2, log=True)),
        ({"distribution": "log_uniform", "min": -4, "max": 0}, FloatDistribution(math.exp(-4), 1.0, log=True)),
        ({"distribution": "inv_log_uniform", "min": 0, "max": 4}, FloatDistribution(math.exp(-4), 1.0, log=True)),
        ({"distribution": "q_log_uniform_values", "min": 16, "max": 512}, IntDistribution(16, 512, log=True)),
        ({"distribution": "q_log_uniform", "min": 0, "max": 3}, IntDistribution(1, 20, log=True)),
    ],
)
def test_every_translatable_distribution(spec, expected):
    parsed = parse_parameter("p", spec)
    if expected is None:
        assert parsed["distribution"] == "constant"
    else:
        assert optuna_distribution("p", parsed) == expected


@pytest.mark.parametrize(
    "spec, named",
    [
        ({"distribution": "normal", "mu": 0, "sigma": 1}, "normal"),
        ({"distribution": "q_normal", "q": 2}, "q_normal"),
        ({"distribution": "log_normal", "mu": -5, "sigma": 1}, "log_normal"),
        ({"distribution": "q_log_normal"}, "q_log_normal"),
        ({"distribution": "beta", "a": 2, "b": 5}, "beta"),
        ({"distribution": "q_beta", "q": 0.1}, "q_beta"),
        ({"distribution": "q_log_uniform_values", "min": 8, "max": 256, "q": 8}, "q_log_uniform_values"),
        ({"distribution": "categorical", "values": [1, 2], "probabilities": [0.2, 0.8]}, "probabilities"),
        ({"values": [[1, 2], [3]]}, "values must be numbers"),
    ],
)
def test_distributions_optuna_cannot_represent_are_accepted_then_refused_by_name(spec, named):
    parsed = parse_parameter("p", spec)  # valid W&B: the wandb backend runs them
    with pytest.raises(ConfigError, match=named):
        optuna_distribution("p", parsed)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"distribution": "gaussian"}, "distribution: unsupported key 'gaussian'"),
        ({"distribution": "uniform", "min": 1, "max": 2, "step": 1}, "unsupported key 'step'"),
        ({"distribution": "uniform", "min": 1}, "needs max"),
        ({"min": 3, "max": 1}, "min .3. is larger than max"),
        ({"distribution": "log_uniform_values", "min": "x", "max": 1}, "min must be a number"),
        ({"parameters": {"a": {"value": 1}}}, "nested 'parameters' are not supported"),
        ({"mu": 1}, "needs value, values, min and max, or a distribution"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_parameters_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_parameter("p", spec)


def test_log_distribution_with_nonpositive_min_is_reported_with_the_parameter():
    with pytest.raises(ConfigError, match="parameter 'lr' .log_uniform_values."):
        optuna_distribution("lr", parse_parameter("lr", {"distribution": "log_uniform_values", "min": 0, "max": 1}))


def test_grid_search_over_discrete_parameters(tmp_path):
    spec = load_sweep(
        write(
            tmp_path,
            {
                "program": "t.py",
                "method": "grid",
                "metric": {"name": "loss"},
                "parameters": {
                    "a": {"values": [1, 2, 3]},
                    "b": {"min": 1, "max": 2},
                    "c": {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.25},
                    "d": {"value": "fixed"},
                },
            },
        )
    )
    space = wandb_yaml.search_space(spec)
    assert {name: d.choices for name, d in space.items()} == {"a": (1, 2, 3), "b": (1, 2), "c": (0.0, 0.25, 0.5)}
    assert wandb_yaml.grid_size(space) == 18
    assert isinstance(wandb_yaml.sampler(spec, space), optuna.samplers.GridSampler)
    continuous = load_sweep(
        write(
            tmp_path,
            {
                "program": "t.py",
                "method": "grid",
                "metric": {"name": "loss"},
                "parameters": {"lr": {"min": 0.1, "max": 0.2}},
            },
            "c.yaml",
        )
    )
    with pytest.raises(
        ConfigError, match="grid search needs discrete parameters.*'lr'|'lr'.*grid search needs discrete"
    ):
        wandb_yaml.search_space(continuous)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
                "count": 3,
            },
            "unsupported key 'count'",
        ),
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
                "paramters": {},
            },
            "Did you mean 'parameters'",
        ),
        (
            {"program": "t.py", "method": "hyperopt", "metric": {"name": "loss"}, "parameters": {"a": {"value": 1}}},
            "method must be one of",
        ),
        ({"program": "t.py", "method": "bayes", "parameters": {"a": {"value": 1}}}, "metric is required"),
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss", "goal": "max"},
                "parameters": {"a": {"value": 1}},
            },
            "goal must be maximize or minimize",
        ),
        (
            {"program": "t.py", "method": "bayes", "metric": {"name": "train/loss"}, "parameters": {"a": {"value": 1}}},
            "evaluation metric",
        ),
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss", "goals": 1},
                "parameters": {"a": {"value": 1}},
            },
            "metric: unsupported key 'goals'",
        ),
        ({"method": "bayes", "metric": {"name": "loss"}, "parameters": {"a": {"value": 1}}}, "needs a program"),
        (
            {"command": "train", "method": "bayes", "metric": {"name": "loss"}, "parameters": {"a": {"value": 1}}},
            "native form runs a t5lab command",
        ),
        (
            {
                "command": "pretrain",
                "config": "missing.yaml",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
            },
            "missing.yaml does not exist",
        ),
        (
            {
                "command": ["python", "t.py", "${arguments}"],
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
            },
            r"'\$\{arguments\}' is not a W&B macro",
        ),
        (
            {
                "command": ["python", "--file=${program}"],
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
            },
            "a macro is a whole item of the list",
        ),
        (
            {
                "command": ["python", "${program}"],
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
            },
            "no program",
        ),
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
                "early_terminate": {"type": "envelope"},
            },
            "hyperband only",
        ),
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
                "early_terminate": {"type": "hyperband", "min_iter": 1, "strict": True},
            },
            "early_terminate: unsupported key 'strict'",
        ),
        (
            {
                "program": "t.py",
                "method": "bayes",
                "metric": {"name": "loss"},
                "parameters": {"a": {"value": 1}},
                "early_terminate": {"type": "hyperband", "max_iter": 27},
            },
            "needs min_iter, or max_iter with s",
        ),
        (
            {"program": "t.py", "method": "bayes", "metric": {"name": "loss"}, "parameters": {}},
            "parameters must be a mapping",
        ),
    ],
)
def test_bad_sweep_files_fail_with_one_line_naming_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write(tmp_path, data))


def test_unreadable_sweep_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML at line 3"):
        load_sweep(write(tmp_path, "method: bayes\nparameters: [a\n"))


def test_hyperband_with_max_iter_and_brackets(tmp_path):
    spec = load_sweep(
        write(
            tmp_path,
            {
                "program": "t.py",
                "method": "random",
                "metric": {"name": "loss"},
                "parameters": {"a": {"values": [1, 2]}},
                "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3},
            },
        )
    )
    pruner = wandb_yaml.pruner(spec)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (3, 27, 3)
