"""Trial command lines (W&B's macros, never a shell), the metric check before any trial, the GLUE sweeps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from t5lab.errors import ConfigError
from t5lab.sweeps.trial import (
    TrialFailed,
    check_metric,
    check_program,
    evaluations,
    expand_command,
    finetune_metrics,
    read_objective,
    t5lab_command,
)
from t5lab.sweeps.wandb_yaml import load_sweep, optuna_distribution, search_space

REPO = Path(__file__).resolve().parents[2]
GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


def sweep(tmp_path, **data):
    data = {
        "method": "random",
        "metric": {"name": "eval/accuracy", "goal": "maximize"},
        "parameters": {"learning_rate": {"values": [0.001]}},
        **data,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(path)


def test_macros_expand_to_an_argument_list_as_wandb_does(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA", "/data")
    args = {"learning_rate": 0.0003, "fp16": True, "bf16": False, "name": "a b; rm -rf /"}
    template = ("${env}", "${interpreter}", "${program}", "${args}", "--data=${envvar:DATA}/glue", "${envvar:UNSET}")
    argv = expand_command(template, args, "train.py")
    assert argv[0].endswith("env") and argv[1] == sys.executable
    assert argv[2:] == [
        "train.py",
        "--learning_rate=0.0003",
        "--fp16=True",
        "--bf16=False",
        "--name=a b; rm -rf /",
        "--data=/data/glue",
        "UNSET",
    ]
    one = {"a": 1}
    assert expand_command(("p", "${args_no_hyphens}"), one, None) == ["p", "a=1"]
    assert expand_command(("p", "${args_no_equals}"), one, None) == ["p", "--a", "1"]
    assert expand_command(("p", "${args_append_hydra}", "${args_override_hydra}"), one, None) == ["p", "+a=1", "++a=1"]
    assert expand_command(("p", "${args_no_boolean_flags}"), args, None) == [
        "p",
        "--learning_rate=0.0003",
        "--fp16",
        "--name=a b; rm -rf /",
    ]
    assert json.loads(expand_command(("p", "${args_json}"), one, None)[1]) == one
    json_file = tmp_path / "args.json"
    assert expand_command(("p", "--params", "${args_json_file}"), one, None, json_file) == [
        "p",
        "--params",
        str(json_file),
    ]
    assert json.loads(json_file.read_text()) == one


def test_which_t5lab_command_a_sweep_runs(tmp_path):
    assert t5lab_command(sweep(tmp_path, command="finetune")) == "finetune"
    assert (
        t5lab_command(sweep(tmp_path, command=["${env}", "${interpreter}", "-m", "t5lab", "pretrain", "${args}"]))
        == "pretrain"
    )
    assert t5lab_command(sweep(tmp_path, program="t5lab", command=["${program}", "finetune", "${args}"])) == "finetune"
    assert t5lab_command(sweep(tmp_path, command=["/opt/venv/bin/t5lab", "finetune", "${args}"])) == "finetune"
    assert t5lab_command(sweep(tmp_path, program="train.py")) is None


def test_t5lab_as_a_program_is_this_installation_and_a_missing_program_fails_before_any_trial(tmp_path):
    spec = sweep(tmp_path, program="t5lab", command=["${program}", "finetune", "${args}"])
    assert expand_command(spec.command, {"seed": 1}, spec.program) == [
        sys.executable,
        "-m",
        "t5lab",
        "finetune",
        "--seed=1",
    ]
    check_program(spec)  # found, whatever PATH says
    with pytest.raises(ConfigError, match="would run 'no-such-trainer', which is neither a program on PATH nor a file"):
        check_program(sweep(tmp_path, program="no-such-trainer", command=["${program}", "${args}"]))


def test_a_sweep_from_a_shell_without_the_environment_on_path(tmp_path):
    """`.venv/bin/t5lab sweep` where PATH lacks .venv/bin: `program: t5lab` runs, a missing program is one line."""
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "program": "t5lab",
                "command": ["${program}", "tasks"],
                "method": "grid",
                "metric": {"name": "eval/accuracy", "goal": "maximize"},
                "parameters": {"output_dir": {"value": str(tmp_path / "good")}},
            }
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "t5lab", "sweep", str(good)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert "Traceback" not in run.stderr and "FileNotFoundError" not in run.stderr
    logs = list((tmp_path / "good").rglob("*.log"))
    assert (
        logs and "glue/sst2" in logs[0].read_text()
    )  # the trial ran `t5lab tasks` (then failed: it writes no metrics)
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("program: t5lab", "program: t5lab-missing"))
    run = subprocess.run(
        [sys.executable, "-m", "t5lab", "sweep", str(bad), "--output_dir", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "t5lab-missing" in run.stderr
    assert not (tmp_path / "bad").exists()  # nothing written: no study, no trial folder


@pytest.mark.parametrize("metric", ["eval/mcc", "eval_mcc", "mcc", "eval/loss", "eval/invalid_rate"])
def test_metric_names_as_wandb_shows_them_or_as_eval_results_has_them(tmp_path, metric):
    check_metric(
        sweep(
            tmp_path,
            command="finetune",
            metric={"name": metric, "goal": "maximize"},
            parameters={"task": {"value": "glue/cola"}, "learning_rate": {"values": [0.001]}},
        )
    )


def test_a_wrong_metric_fails_naming_the_available_ones(tmp_path):
    spec = sweep(
        tmp_path,
        command="finetune",
        metric={"name": "eval/matthews_correlation", "goal": "maximize"},
        parameters={"task": {"value": "glue/cola"}, "learning_rate": {"values": [0.001]}},
    )
    with pytest.raises(
        ConfigError,
        match="'eval/matthews_correlation' is not produced by glue/cola; "
        "choose one of eval/mcc, eval/accuracy, eval/invalid_rate, eval/loss",
    ):
        check_metric(spec)
    with pytest.raises(ConfigError, match="not produced by pretrain; choose one of eval/loss, eval/token_accuracy"):
        check_metric(sweep(tmp_path, command="pretrain"))


def test_a_pretraining_sweep_can_search_on_the_encoder_gain(tmp_path):
    # the figure that says whether pre-training is learning anything transferable (docs/benchmarks.md)
    check_metric(sweep(tmp_path, command="pretrain", metric={"name": "eval/encoder_gain", "goal": "maximize"}))
    check_metric(sweep(tmp_path, command="pretrain", metric={"name": "noise_loss"}))


def test_metric_check_reads_the_task_from_the_config_and_every_searched_task(tmp_path):
    (tmp_path / "base.yaml").write_text("task: glue/mnli\n")
    spec = sweep(tmp_path, command="finetune", config="base.yaml", metric={"name": "eval/accuracy"})
    with pytest.raises(
        ConfigError, match="choose one of eval/average, eval/loss, eval/mnli_validation_matched_accuracy"
    ):
        check_metric(spec)  # MNLI has two validation sets: finetune reports their average
    searched = sweep(
        tmp_path,
        command="finetune",
        metric={"name": "eval/f1"},
        parameters={"task": {"values": ["glue/mrpc", "glue/sst2"]}},
    )
    with pytest.raises(ConfigError, match="not produced by glue/sst2"):
        check_metric(searched)
    with pytest.raises(ConfigError, match="sets no task"):
        check_metric(sweep(tmp_path, command="finetune"))
    check_metric(
        sweep(tmp_path, program="train.py", metric={"name": "eval/anything"})
    )  # another program: checked after a trial


def test_finetune_metrics_of_a_mixture():
    assert finetune_metrics("glue/rte,glue/sst2")[:3] == ["average", "loss", "rte_validation_accuracy"]
    assert finetune_metrics("glue/stsb") == ["pearson", "spearmanr", "combined_score", "invalid_rate", "loss"]


def test_results_and_evaluations_of_a_trial(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 5, "loss": 2.0}\n{"step": 10, "eval_f1": 0.5}\n{"step": 20, "eval_f1": 0.7}\n{"st'
    )
    assert evaluations(tmp_path, "f1") == [0.5, 0.7]  # a line being written is skipped
    with pytest.raises(TrialFailed, match="wrote no"):
        read_objective(tmp_path, "f1")
    (tmp_path / "eval_results.json").write_text('{"eval_f1": 0.75, "eval_loss": 1.5}')
    assert read_objective(tmp_path, "f1") == 0.75
    with pytest.raises(TrialFailed, match="has no eval_accuracy .it has: eval_f1, eval_loss."):
        read_objective(tmp_path, "accuracy")
    checkpoint = tmp_path / "hf" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"log_history": [{"step": 4, "eval_f1": 0.25}]}')
    assert evaluations(tmp_path / "hf", "f1") == [0.25]  # a program without t5lab's metrics.jsonl


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_glue_sweeps_search_a_log_uniform_learning_rate_and_schedules_with_the_right_metric(task):
    spec = load_sweep(REPO / "sweeps" / f"glue_{task}.yaml")
    assert spec.fixed["task"] == f"glue/{task}" and spec.goal == "maximize"
    check_metric(spec)
    assert spec.parameters["learning_rate"]["distribution"] == "log_uniform_values"
    assert optuna_distribution("learning_rate", spec.parameters["learning_rate"]).log
    assert set(spec.parameters["lr_scheduler_type"]["values"]) >= {"linear", "cosine"}
    assert set(search_space(spec)) == {"learning_rate", "lr_scheduler_type"}
    assert spec.fixed["eval_steps"] == spec.fixed["save_steps"]  # finetune keeps the best checkpoint only then
