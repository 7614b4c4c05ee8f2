"""The wandb backend, offline: the sweep config sent to W&B, the trial command its agents run, and the launch
flow against a stand-in wandb module (the real one needs an account and the network)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from t5lab.errors import ConfigError, UserError
from t5lab.sweeps.wandb_backend import run_wandb_sweep, to_wandb_config, trial_argv
from t5lab.sweeps.wandb_yaml import load_sweep

REPO = Path(__file__).resolve().parents[2]


def test_wandb_config_keeps_the_search_and_names_the_metric_as_wandb_shows_it(tmp_path):
    spec = load_sweep(REPO / "sweeps" / "glue_cola.yaml")
    config = to_wandb_config(spec, tmp_path / "trials", trials=12)
    assert config["metric"] == {"name": "eval/mcc", "goal": "maximize"}
    assert config["method"] == "bayes" and config["run_cap"] == 12 and config["name"] == "glue-cola"
    assert config["parameters"]["learning_rate"] == {"distribution": "log_uniform_values", "min": 1e-5, "max": 3e-3}
    assert config["parameters"]["lr_scheduler_type"] == {
        "distribution": "categorical",
        "values": ["constant_with_warmup", "linear", "cosine"],
    }
    assert config["early_terminate"] == {"type": "hyperband", "min_iter": 3, "eta": 3}
    assert config["command"] == [
        "${env}",
        "${interpreter}",
        "-m",
        "t5lab",
        "sweep",
        "trial",
        str(spec.path.resolve()),
        f"--output_dir={(tmp_path / 'trials').resolve()}",
        "--",
        "${args}",
    ]
    yaml.safe_dump(config)  # plain data, as wandb.sweep() and `wandb sweep` take it


def test_distributions_optuna_lacks_go_to_wandb_unchanged(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "program": "train.py",
                "method": "random",
                "metric": {"name": "eval_f1", "goal": "maximize", "target": 0.9},
                "parameters": {
                    "dropout": {"distribution": "normal", "mu": 0.1, "sigma": 0.02},
                    "batch": {"values": [8, 16], "probabilities": [0.3, 0.7]},
                    "output_dir": {"value": "runs/x"},
                },
            }
        )
    )
    config = to_wandb_config(load_sweep(path), tmp_path)
    assert config["parameters"] == {
        "dropout": {"distribution": "normal", "mu": 0.1, "sigma": 0.02},
        "batch": {"distribution": "categorical", "values": [8, 16], "probabilities": [0.3, 0.7]},
    }
    assert (
        config["metric"] == {"name": "eval/f1", "goal": "maximize", "target": 0.9} and config["program"] == "train.py"
    )
    assert "run_cap" not in config


def test_each_wandb_run_gets_its_own_output_dir_and_reports_to_wandb(tmp_path):
    spec = load_sweep(REPO / "sweeps" / "glue_rte.yaml")
    argv = trial_argv(
        spec, ["--learning_rate=0.0003", "--lr_scheduler_type=linear", "--task=glue/rte"], tmp_path, "run42"
    )
    assert argv[1:5] == [sys.executable, "-m", "t5lab", "finetune"]
    assert argv[5:] == [
        "--learning_rate=0.0003",
        "--lr_scheduler_type=linear",
        "--task=glue/rte",
        f"--output_dir={tmp_path / 'run42'}",
        "--report_to=wandb",
    ]
    with pytest.raises(ConfigError, match="expected --key=value"):
        trial_argv(spec, ["learning_rate", "0.1"], tmp_path, "run42")


def test_report_to_without_wandb_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "program": "t.py",
                "method": "random",
                "metric": {"name": "loss"},
                "parameters": {"a": {"values": [1]}, "report_to": {"value": "tensorboard"}},
            }
        )
    )
    with pytest.raises(ConfigError, match="include wandb"):
        to_wandb_config(load_sweep(path), tmp_path)


def test_creating_the_sweep_through_the_wandb_api(tmp_path, monkeypatch):
    created = {}

    def sweep(config, project=None, entity=None):
        created.update(config=config, project=project, entity=entity)
        return "abc123"

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(sweep=sweep))
    monkeypatch.setenv("WANDB_PROJECT", "glue")
    path = run_wandb_sweep(
        load_sweep(REPO / "sweeps" / "glue_sst2.yaml"), trials=8, workers=0, output_dir=str(tmp_path)
    )
    assert path == "glue/abc123" and created["project"] == "glue" and created["entity"] is None
    assert created["config"]["run_cap"] == 8
    assert created["config"]["command"][7] == f"--output_dir={(tmp_path / 'glue-sst2').resolve()}"


def test_the_wandb_backend_without_wandb_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(UserError, match=r"pip install 't5lab\[wandb\]'"):
        run_wandb_sweep(load_sweep(REPO / "sweeps" / "glue_sst2.yaml"), trials=None, workers=1, output_dir=None)
