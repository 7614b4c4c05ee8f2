"""What every run records (config, environment, metrics over time) and `t5lab runs`, without training a model."""

from __future__ import annotations

import json
import os
import time

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from t5lab.cli import main
from t5lab.training.tracking import METRICS_FILE, RUN_INFO_FILE, TrackingCallback, log_history


def _args(tmp_path, report_to="none"):
    return TrainingArguments(output_dir=str(tmp_path), report_to=report_to)


def test_run_info_and_metrics_over_time(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    callback = TrackingCallback({"learning_rate": 0.001, "hub_token": "secret"})
    args, state, control = _args(tmp_path), TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    info = json.loads((tmp_path / RUN_INFO_FILE).read_text())
    assert info["config"] == {"learning_rate": 0.001, "hub_token": "<redacted>"}
    environment = info["environment"]
    assert {"t5lab", "torch", "transformers"} <= set(environment["packages"])
    assert environment["devices"] and environment["world_size"] == 1 and environment["python"]
    for step, logs in ((1, {"loss": 3.0}), (2, {"eval_loss": 2.5}), (3, {"loss": 2.0})):
        state.global_step = step
        callback.on_log(args, state, control, logs=logs)
    assert [(row["step"], "eval_loss" in row) for row in log_history(tmp_path)] == [(1, False), (2, True), (3, False)]
    assert os.environ["WANDB_PROJECT"] == "t5lab"  # the Trainer's W&B integration would use "huggingface"


def test_a_resumed_run_logs_again_from_its_checkpoint_and_a_new_one_from_scratch(tmp_path):
    rows = [{"step": step, "loss": 1.0} for step in (1, 2, 3, 4)]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    state = TrainerState()
    state.global_step = 2  # resuming from checkpoint-2
    TrackingCallback({}).on_train_begin(_args(tmp_path), state, TrainerControl())
    assert [row["step"] for row in log_history(tmp_path)] == [1, 2]
    TrackingCallback({}).on_train_begin(_args(tmp_path), TrainerState(), TrainerControl())
    assert log_history(tmp_path) == []


def test_config_and_environment_reach_tensorboard(tmp_path):
    TrackingCallback({"seed": 1}).on_train_begin(_args(tmp_path, "tensorboard"), TrainerState(), TrainerControl())
    assert list((tmp_path / "runs" / "t5lab").glob("events.out.tfevents.*"))


def test_config_and_environment_reach_wandb_offline(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")  # the optional [wandb] extra
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run = wandb.init(project="t5lab-test")
    try:
        TrackingCallback({"seed": 1}).on_train_begin(_args(tmp_path, "wandb"), TrainerState(), TrainerControl())
        assert (
            run.config["t5lab"]["config"] == {"seed": 1} and "torch" in run.config["t5lab"]["environment"]["packages"]
        )
    finally:
        run.finish()


def test_runs_table_lists_finished_and_stopped_runs(tmp_path, capsys):
    finished = tmp_path / "sst2-lr3e-4"
    finished.mkdir()
    (finished / "t5lab_config.yaml").write_text("task: glue/sst2\nmodel_name_or_path: google/t5-v1_1-small\n")
    (finished / "eval_results.json").write_text(
        json.dumps({"eval_accuracy": 0.91, "eval_loss": 0.2, "eval_runtime": 3.0})
    )
    (finished / METRICS_FILE).write_text(json.dumps({"step": 500, "eval_accuracy": 0.91}) + "\n")
    (finished / "checkpoint-500").mkdir()
    (finished / "checkpoint-500" / "trainer_state.json").write_text("{}")
    stopped = tmp_path / "pretrain" / "tiny"
    stopped.mkdir(parents=True)
    (stopped / "t5lab_config.yaml").write_text("config_name: t5-tiny\ninput_length: 128\n")
    (stopped / METRICS_FILE).write_text(json.dumps({"step": 300, "eval_loss": 4.5, "eval_token_accuracy": 0.3}) + "\n")
    old = time.time() - 3600
    for path in stopped.iterdir():
        os.utime(path, (old, old))
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 runs under" in out and "checkpoint-500" not in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert "glue/sst2" in lines["sst2-lr3e-4"] and "finished" in lines["sst2-lr3e-4"] and "0.91" in lines["sst2-lr3e-4"]
    assert (
        "pretrain" in lines["pretrain/tiny"] and "stopped" in lines["pretrain/tiny"] and "4.5" in lines["pretrain/tiny"]
    )
    assert main(["runs", str(tmp_path), "--metrics", "eval/accuracy"]) == 0
    assert "token_accuracy" not in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
