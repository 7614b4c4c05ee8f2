"""Sweep files: W&B sweep YAML (or t5lab's native form), validated, and translated to Optuna.

A sweep file is what W&B users already write (``program``, ``method``, ``metric``, ``parameters``,
``command``, ``early_terminate``, ...), or t5lab's native form, which names a t5lab command and an optional
t5lab config instead of a program::

    command: finetune            # or pretrain
    config: sst2-small.yaml      # optional; relative to this file
    method: bayes
    metric: {name: eval/accuracy, goal: maximize}
    parameters:
      learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-3}

Every problem is a :class:`~t5lab.errors.ConfigError` naming the key. Distributions that Optuna cannot
represent (Gaussian and beta priors, weighted choices) load fine, for the wandb backend, and are an error
only when translated for the optuna backend.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from t5lab.errors import ConfigError, yaml_error
from t5lab.evaluation.naming import strip_eval_prefix

METHODS = ("bayes", "random", "grid")
GOALS = ("maximize", "minimize")
TOP_LEVEL_KEYS = (
    "program",
    "command",
    "config",
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "project",
    "entity",
)
NATIVE_COMMANDS = ("finetune", "pretrain")
# W&B's default when a sweep gives only a program.
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
# W&B's command macros. Like W&B's agent, a macro is a whole item of the command list, except ${envvar:NAME}.
MACROS = (
    "${env}",
    "${interpreter}",
    "${program}",
    "${args}",
    "${args_no_equals}",
    "${args_no_hyphens}",
    "${args_no_boolean_flags}",
    "${args_json}",
    "${args_json_file}",
    "${args_append_hydra}",
    "${args_override_hydra}",
)
ENVVAR_MACRO = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")
HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta")

# W&B distribution -> (required keys, optional keys with W&B's defaults).
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "constant": (("value",), {}),
    "categorical": (("values",), {"probabilities": None}),
    "int_uniform": (("min", "max"), {}),
    "uniform": (("min", "max"), {}),
    "q_uniform": (("min", "max"), {"q": 1.0}),
    "log_uniform": (("min", "max"), {}),
    "log_uniform_values": (("min", "max"), {}),
    "inv_log_uniform": (("min", "max"), {}),
    "inv_log_uniform_values": (("min", "max"), {}),
    "q_log_uniform": (("min", "max"), {"q": 1.0}),
    "q_log_uniform_values": (("min", "max"), {"q": 1.0}),
    "normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "log_normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_log_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "beta": ((), {"a": 1.0, "b": 1.0}),
    "q_beta": ((), {"a": 1.0, "b": 1.0, "q": 1.0}),
}
_NUMERIC_KEYS = ("min", "max", "q", "mu", "sigma", "a", "b")


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. ``parameters`` hold W&B parameter specs with ``distribution`` filled in."""

    path: Path
    name: str
    method: str
    metric: str  # as written: eval/f1, eval_f1 or f1
    goal: str
    parameters: dict[str, dict[str, Any]]
    command: tuple[str, ...]  # the trial's command line, W&B macros unexpanded
    program: str | None = None
    target: float | None = None
    early_terminate: dict[str, Any] | None = None
    run_cap: int | None = None
    project: str | None = None
    entity: str | None = None
    description: str | None = None

    @property
    def metric_name(self) -> str:
        """The metric without its prefix: ``f1`` for ``eval/f1`` and ``eval_f1``."""
        return metric_name(self.metric)

    @property
    def fixed(self) -> dict[str, Any]:
        """Parameters with a single value: passed to every trial, never searched."""
        return {name: p["value"] for name, p in self.parameters.items() if p["distribution"] == "constant"}


def metric_name(name: str) -> str:
    """The metric a sweep optimizes, without its prefix (see :func:`t5lab.evaluation.naming.strip_eval_prefix`)."""
    if strip_eval_prefix(name) != name:
        return strip_eval_prefix(name)
    if "/" in name:
        raise ConfigError(
            f"metric '{name}': a sweep optimizes an evaluation metric, e.g. eval/{name.rpartition('/')[2]}."
        )
    return name


def _unknown_key(key: Any, known: tuple[str, ...], where: str) -> ConfigError:
    hint = difflib.get_close_matches(str(key), known, n=1)
    suggestion = f" Did you mean '{hint[0]}'?" if hint else f" Supported: {', '.join(known)}."
    return ConfigError(f"{where}: unsupported key '{key}'.{suggestion}")


def _number(value: Any, where: str) -> int | float:
    # YAML 1.1 reads 1e-5 (no dot) as a string; W&B users write it that way.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be a number, got {value!r}.")
    try:
        return value if isinstance(value, (int, float)) else float(value)
    except ValueError:
        raise ConfigError(f"{where} must be a number, got '{value}'.") from None


def _infer_distribution(name: str, raw: dict[str, Any]) -> str:
    """W&B's rule when ``distribution`` is left out."""
    if "value" in raw:
        return "constant"
    if "values" in raw:
        return "categorical"
    if "min" in raw and "max" in raw:
        return (
            "int_uniform"
            if all(isinstance(raw[k], int) and not isinstance(raw[k], bool) for k in ("min", "max"))
            else "uniform"
        )
    raise ConfigError(f"parameter '{name}' needs value, values, min and max, or a distribution.")


def parse_parameter(name: str, raw: Any) -> dict[str, Any]:
    """Validate one W&B parameter spec and fill in its distribution and W&B's defaults."""
    where = f"parameter '{name}'"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping such as {{value: 1}} or {{values: [1, 2]}}, got {raw!r}.")
    if "parameters" in raw:
        raise ConfigError(f"{where}: nested 'parameters' are not supported; trial flags are flat (--key=value).")
    distribution = raw.get("distribution") or _infer_distribution(name, raw)
    if distribution not in DISTRIBUTIONS:
        raise _unknown_key(distribution, tuple(DISTRIBUTIONS), f"{where}: distribution")
    required, optional = DISTRIBUTIONS[distribution]
    allowed = ("distribution", *required, *optional)
    for key in raw:
        if key not in allowed:
            raise _unknown_key(key, allowed, f"{where} ({distribution})")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ConfigError(f"{where}: distribution {distribution} needs {' and '.join(missing)}.")
    spec = {"distribution": distribution, **optional, **raw}
    for key in _NUMERIC_KEYS:
        if key in spec:
            spec[key] = _number(spec[key], f"{where}: {key}")
    if distribution == "categorical" and (not isinstance(spec["values"], list) or not spec["values"]):
        raise ConfigError(f"{where}: values must be a non-empty list.")
    if distribution == "int_uniform" and not all(float(spec[k]).is_integer() for k in ("min", "max")):
        raise ConfigError(f"{where}: int_uniform needs integer min and max.")
    if "min" in spec and spec["min"] > spec["max"]:
        raise ConfigError(f"{where}: min ({spec['min']}) is larger than max ({spec['max']}).")
    return spec


def _parse_metric(raw: Any) -> tuple[str, str, float | None]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError("metric must be a mapping with a name, e.g. {name: eval/accuracy, goal: maximize}.")
    for key in raw:
        if key not in ("name", "goal", "target"):
            raise _unknown_key(key, ("name", "goal", "target"), "metric")
    goal = raw.get("goal", "minimize")  # W&B's default
    if goal not in GOALS:
        raise ConfigError(f"metric goal must be maximize or minimize, got '{goal}'.")
    target = _number(raw["target"], "metric target") if raw.get("target") is not None else None
    metric_name(raw["name"])  # validates the prefix
    return raw["name"], goal, target


def _parse_early_terminate(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") != "hyperband":
        raise ConfigError("early_terminate supports type: hyperband only, e.g. {type: hyperband, min_iter: 2}.")
    for key in raw:
        if key not in HYPERBAND_KEYS:
            raise _unknown_key(key, HYPERBAND_KEYS, "early_terminate")
    spec = {"eta": 3, **raw}
    for key in ("min_iter", "max_iter", "s", "eta"):
        if key in spec and (not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1):
            raise ConfigError(f"early_terminate: {key} must be a positive integer, got {spec[key]!r}.")
    if "min_iter" not in spec and not ("max_iter" in spec and "s" in spec):
        raise ConfigError("early_terminate: hyperband needs min_iter, or max_iter with s.")
    if spec["eta"] < 2:
        raise ConfigError("early_terminate: eta must be at least 2.")
    return spec


def _command(data: dict[str, Any], folder: Path) -> tuple[tuple[str, ...], str | None]:
    """The trial command template and the program, from either form."""
    command, program, config = data.get("command"), data.get("program"), data.get("config")
    if isinstance(command, str):  # native form
        if command not in NATIVE_COMMANDS:
            raise ConfigError(
                f"command '{command}': the native form runs a t5lab command ({', '.join(NATIVE_COMMANDS)}); "
                "W&B's form takes a list such as [${{env}}, ${{interpreter}}, ${{program}}, ${{args}}]."
            )
        if program is not None:
            raise ConfigError(
                "program: the native form (command: finetune|pretrain) runs t5lab itself; remove program."
            )
        head = ("${interpreter}", "-m", "t5lab", command)
        if config is None:
            return (*head, "${args}"), None
        config_path = (folder / str(config)).resolve()
        if not config_path.is_file():
            raise ConfigError(f"config: {config_path} does not exist.")
        return (*head, f"--config={config_path}", "${args}"), None
    if config is not None:
        raise ConfigError(
            "config: only the native form (command: finetune|pretrain) takes a t5lab config; "
            "with a command list, give --config as a parameter {value: FILE}."
        )
    if command is None:
        if program is None:
            raise ConfigError("a sweep needs a program (W&B form) or command: finetune|pretrain (native form).")
        return DEFAULT_COMMAND, str(program)
    if not isinstance(command, list) or not command or not all(isinstance(c, (str, int, float)) for c in command):
        raise ConfigError("command must be a list of strings, e.g. [${env}, ${interpreter}, ${program}, ${args}].")
    command = tuple(str(c) for c in command)
    for token in command:
        if token not in MACROS and "${" in ENVVAR_MACRO.sub("", token):
            raise ConfigError(
                f"command: '{token}' is not a W&B macro: a macro is a whole item of the list "
                f"({', '.join(MACROS)}) or ${{envvar:NAME}}."
            )
    if "${program}" in command and program is None:
        raise ConfigError("command uses ${program} but the sweep has no program.")
    return command, (str(program) if program is not None else None)


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; errors name the file (and line)."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise yaml_error(what, path, exc) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text.") from None


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file (W&B sweep YAML or the native form)."""
    path = Path(path)
    data = read_yaml(path, "sweep file")
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {path} must be a mapping (program/command, method, metric, parameters).")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key(key, TOP_LEVEL_KEYS, f"sweep file {path}")
    method = data.get("method")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    if "metric" not in data:
        raise ConfigError(
            "metric is required: the trials' evaluation metric, e.g. {name: eval/accuracy, goal: maximize}."
        )
    metric, goal, target = _parse_metric(data["metric"])
    raw_parameters = data.get("parameters")
    if not isinstance(raw_parameters, dict) or not raw_parameters:
        raise ConfigError(
            "parameters must be a mapping of flag names to specs, e.g. learning_rate: {values: [1e-4, 3e-4]}."
        )
    parameters = {str(name): parse_parameter(str(name), raw) for name, raw in raw_parameters.items()}
    command, program = _command(data, path.parent)
    run_cap = data.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or isinstance(run_cap, bool) or run_cap < 1):
        raise ConfigError(f"run_cap must be a positive integer, got {run_cap!r}.")
    return SweepSpec(
        path=path,
        name=str(data.get("name") or path.stem),
        method=method,
        metric=metric,
        goal=goal,
        parameters=parameters,
        command=command,
        program=program,
        target=target,
        early_terminate=_parse_early_terminate(data.get("early_terminate")),
        run_cap=run_cap,
        project=data.get("project"),
        entity=data.get("entity"),
        description=data.get("description"),
    )


# --- translation to Optuna ------------------------------------------------------------------------------


def optuna_distribution(name: str, spec: dict[str, Any]) -> BaseDistribution:
    """The Optuna distribution of a W&B parameter spec (not a constant); exact, or a ConfigError saying why not."""
    kind, low, high, q = spec["distribution"], spec.get("min"), spec.get("max"), spec.get("q")
    try:
        if kind == "categorical":
            if spec.get("probabilities") is not None:
                raise ConfigError(
                    f"parameter '{name}': probabilities (weighted choices) have no Optuna equivalent; "
                    "remove them, or run with --backend wandb."
                )
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in spec["values"]):
                raise ConfigError(
                    f"parameter '{name}': values must be numbers, strings or booleans (flags take one value)."
                )
            return CategoricalDistribution(spec["values"])
        if kind == "int_uniform":
            return IntDistribution(int(low), int(high))
        if kind == "uniform":
            return FloatDistribution(low, high)
        if kind == "q_uniform":  # W&B returns integers when q is an integer
            if all(isinstance(v, int) for v in (low, high, q)):
                return IntDistribution(low, high, step=q)
            return FloatDistribution(low, high, step=q)
        # log(X) uniform on [log min, log max]; the inv_ variants draw 1/X, whose log is uniform too.
        if kind in ("log_uniform_values", "inv_log_uniform_values"):
            return FloatDistribution(low, high, log=True)
        if kind == "log_uniform":  # min and max are exponents
            return FloatDistribution(math.exp(low), math.exp(high), log=True)
        if kind == "inv_log_uniform":
            return FloatDistribution(math.exp(-high), math.exp(-low), log=True)
        if kind in ("q_log_uniform_values", "q_log_uniform") and q == 1:
            bounds = (low, high) if kind == "q_log_uniform_values" else (math.exp(low), math.exp(high))
            return IntDistribution(math.ceil(bounds[0]), math.floor(bounds[1]), log=True)
    except ValueError as exc:  # Optuna's own checks, e.g. log with min <= 0
        raise ConfigError(f"parameter '{name}' ({kind}): {exc}") from None
    hint = (
        "use q: 1, or values: [...]"
        if kind.startswith("q_log")
        else "use uniform or log_uniform_values with min and max covering the range you want"
    )
    raise ConfigError(
        f"parameter '{name}': distribution {kind} has no Optuna equivalent ({hint}), or run it with --backend wandb."
    )


def grid_values(name: str, spec: dict[str, Any]) -> list[Any]:
    """The values a grid search tries for a parameter: its values, or the integers/steps of its range."""
    kind = spec["distribution"]
    if kind == "categorical":
        return list(spec["values"])
    if kind in ("int_uniform", "q_uniform"):
        distribution = optuna_distribution(name, spec)
        step = distribution.step
        count = int(round((distribution.high - distribution.low) / step)) + 1
        return [distribution.low + i * step for i in range(count)]
    raise ConfigError(
        f"parameter '{name}': grid search needs discrete parameters (values, int_uniform or q_uniform), not {kind}."
    )


def search_space(spec: SweepSpec) -> dict[str, BaseDistribution]:
    """Optuna distributions of the searched parameters (a grid's parameters become categorical)."""
    searched = {name: p for name, p in spec.parameters.items() if p["distribution"] != "constant"}
    if spec.method == "grid":
        return {name: CategoricalDistribution(grid_values(name, p)) for name, p in searched.items()}
    return {name: optuna_distribution(name, p) for name, p in searched.items()}


def sampler(spec: SweepSpec, space: dict[str, BaseDistribution]) -> optuna.samplers.BaseSampler:
    """bayes -> TPE (constant liar, for parallel workers), random -> random, grid -> grid."""
    if spec.method == "grid":
        return optuna.samplers.GridSampler({name: list(d.choices) for name, d in space.items()})
    if spec.method == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler(constant_liar=True)


def pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """Hyperband over evaluations (a W&B iteration is one logged evaluation), or no pruning."""
    hyperband = spec.early_terminate
    if hyperband is None:
        return optuna.pruners.NopPruner()
    eta = hyperband["eta"]
    if "min_iter" in hyperband:
        min_resource = hyperband["min_iter"]
    else:  # W&B's brackets for max_iter and s: max_iter / eta**k, k = 1..s
        min_resource = max(1, hyperband["max_iter"] // eta ** hyperband["s"])
    return optuna.pruners.HyperbandPruner(
        min_resource=min_resource, max_resource=hyperband.get("max_iter", "auto"), reduction_factor=eta
    )


def grid_size(space: dict[str, BaseDistribution]) -> int:
    """How many combinations a grid search has."""
    return math.prod(len(d.choices) for d in space.values())
