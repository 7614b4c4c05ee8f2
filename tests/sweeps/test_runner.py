"""The Optuna runner with real subprocess trials of a stand-in program (fake_train.py, milliseconds each):
failures, pruning, the trial budget across workers, resuming, interruption, and fail-fast checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from t5lab.cli import main
from t5lab.errors import INTERRUPTED_EXIT_CODE, PREEMPTED_EXIT_CODE
from t5lab.sweeps.layout import worker_environments
from t5lab.sweeps.report import trial_rows
from t5lab.sweeps.runner import open_storage, open_study, retries
from t5lab.sweeps.wandb_yaml import load_sweep, search_space

FAKE_PROGRAM = Path(__file__).with_name("fake_train.py")


def fake_sweep(tmp_path: Path, values=(0.2, 0.5, 0.9), method="grid", fixed=None, name="fake", **extra) -> Path:
    """A W&B sweep file running fake_train.py with W&B's default command (${env} ${interpreter} ${program} ${args})."""
    parameters = {"x": {"values": list(values)}, **{key: {"value": value} for key, value in (fixed or {}).items()}}
    data = {
        "name": name,
        "program": str(FAKE_PROGRAM),
        "method": method,
        "metric": {"name": "eval/score", "goal": "maximize"},
        "parameters": parameters,
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def load(out: Path, name: str = "fake") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")


def by_state(study: optuna.Study) -> dict[str, list[int]]:
    states: dict[str, list[int]] = {}
    for trial in study.trials:
        states.setdefault(trial.state.name, []).append(trial.number)
    return states


def test_a_crashing_trial_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            ["sweep", str(fake_sweep(tmp_path, fixed={"crash_above": 0.6})), "--workers", "2", "--output_dir", str(out)]
        )
        == 0
    )
    study = load(out)
    assert len(study.trials) == 3  # a grid's default budget is its size
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.params["x"] for t in failed] == [0.9]
    assert "exit code 1: training diverged: loss is nan" in failed[0].user_attrs["error"]
    assert sorted(t.value for t in study.trials if t.state == TrialState.COMPLETE) == [0.2, 0.5]
    assert study.best_trial.params == {"x": 0.5}
    command = study.best_trial.user_attrs["command"]  # an argument list, never a shell string
    assert command[2:] == [
        str(FAKE_PROGRAM),
        "--crash_above=0.6",
        "--x=0.5",
        f"--output_dir={study.best_trial.user_attrs['output_dir']}",
    ]
    printed = capsys.readouterr()
    assert "trial" in printed.err and "failed" in printed.err and "Best: trial" in printed.out


def test_budget_is_shared_by_workers_and_rerunning_resumes_without_repeating(tmp_path):
    sweep_file, out = (
        fake_sweep(tmp_path, values=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), method="random"),
        tmp_path / "out",
    )
    assert main(["sweep", str(sweep_file), "--trials", "5", "--workers", "3", "--output_dir", str(out)]) == 0
    first = {t.number: (t.params, t.datetime_complete) for t in load(out).trials}
    assert sorted(first) == [0, 1, 2, 3, 4]
    assert main(["sweep", str(sweep_file), "--trials", "7", "--workers", "3", "--output_dir", str(out)]) == 0
    study = load(out)
    assert len(study.trials) == 7 and by_state(study) == {"COMPLETE": list(range(7))}
    assert {t.number: (t.params, t.datetime_complete) for t in study.trials if t.number < 5} == first  # untouched
    assert main(["sweep", str(sweep_file), "--trials", "7", "--output_dir", str(out)]) == 0
    assert len(load(out).trials) == 7  # nothing left to do
    assert sorted(p.name for p in (out / "fake").glob("trial-*") if p.is_dir()) == [f"trial-{i:04d}" for i in range(7)]


def test_hyperband_prunes_a_running_trial_from_its_logged_evaluations(tmp_path):
    # One bracket (max_iter < eta): a trial is pruned as soon as it trails a finished one at the first evaluation.
    sweep_file = fake_sweep(
        tmp_path,
        values=(0.1, 0.9),
        method="random",
        fixed={"evals": 4, "pause": 0.6},
        early_terminate={"type": "hyperband", "min_iter": 1, "max_iter": 2, "eta": 3},
    )
    out = tmp_path / "out"
    spec = load_sweep(sweep_file)
    study = open_study(spec, open_storage(f"sqlite:///{out / 'optuna.db'}"), "fake", search_space(spec))
    study.enqueue_trial({"x": 0.9})  # queued trials run first, in order
    study.enqueue_trial({"x": 0.1})
    assert main(["sweep", str(sweep_file), "--trials", "2", "--output_dir", str(out)]) == 0
    study = load(out)
    assert by_state(study) == {"COMPLETE": [0], "PRUNED": [1]}
    assert study.trials[0].intermediate_values == {1: 0.9, 2: 0.9, 3: 0.9, 4: 0.9}
    assert 1 in study.trials[1].intermediate_values
    assert not (out / "fake" / "trial-0001" / "eval_results.json").exists()  # stopped before it finished


def test_the_sweep_stops_when_the_metric_target_is_reached(tmp_path):
    sweep_file = fake_sweep(
        tmp_path, values=(0.6, 0.7, 0.8), metric={"name": "eval/score", "goal": "maximize", "target": 0.5}
    )
    assert main(["sweep", str(sweep_file), "--output_dir", str(tmp_path / "out")]) == 0
    assert len(load(tmp_path / "out").trials) == 1


@pytest.mark.parametrize("stop", [signal.SIGUSR1, signal.SIGINT])
def test_an_interrupted_trial_is_queued_again_and_resumes_in_its_dir(tmp_path, stop):
    sweep_file, out = fake_sweep(tmp_path, values=(0.3,), method="random", fixed={"evals": 1}), tmp_path / "out"
    command = [sys.executable, "-m", "t5lab", "sweep", str(sweep_file), "--trials", "1", "--output_dir", str(out)]
    sweep = subprocess.Popen(
        command, env={**os.environ, "FAKE_PAUSE": "120"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    log = out / "fake" / "trial-0000.log"
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    sweep.send_signal(stop)  # SIGUSR1: as the SLURM templates ask before a time limit or preemption; SIGINT: Ctrl-C
    _, stderr = sweep.communicate(timeout=60)
    last = stderr.strip().splitlines()[-1]
    if stop == signal.SIGUSR1:
        assert sweep.returncode == PREEMPTED_EXIT_CODE, stderr  # the exit code the SLURM templates requeue on
        assert last.startswith("t5lab sweep: error: stopped by SIGUSR1; the running trials are queued again")
    else:
        assert sweep.returncode == INTERRUPTED_EXIT_CODE and last == "t5lab sweep: interrupted", stderr
    study = load(out)
    assert by_state(study) == {"FAIL": [0], "WAITING": [1]}
    assert study.trials[1].params == study.trials[0].params
    assert main(["sweep", str(sweep_file), "--trials", "1", "--output_dir", str(out)]) == 0
    study = load(out)
    assert by_state(study) == {"FAIL": [0], "COMPLETE": [1]}
    assert study.trials[1].user_attrs["output_dir"] == str(out / "fake" / "trial-0000")
    assert (out / "fake" / "trial-0000" / "eval_results.json").is_file()
    _, rows = trial_rows(study)
    assert [row[:2] for row in rows] == [(0, "stopped"), (1, "complete")]
    assert rows[0][-1] == "resumed as trial 1" and rows[1][-1] == ""


def test_a_changed_sweep_is_refused_in_the_same_study(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(fake_sweep(tmp_path, values=(0.5,))), "--output_dir", str(out)]) == 0
    assert main(["sweep", str(fake_sweep(tmp_path, values=(0.5, 0.6))), "--output_dir", str(out)]) == 2
    error = capsys.readouterr().err
    assert "study 'fake' in sqlite" in error and "was made from a different sweep (differs: parameters)" in error


def test_a_wrong_metric_fails_before_any_trial_starts(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("max_steps: 2\n")
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "command": "pretrain",
                "config": "base.yaml",
                "method": "random",
                "metric": {"name": "eval/accuracy", "goal": "maximize"},
                "parameters": {"learning_rate": {"values": [0.001]}},
            }
        )
    )
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--output_dir", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "metric 'eval/accuracy' is not produced by pretrain; choose one of eval/loss, eval/token_accuracy" in error
    assert not out.exists()  # no study, no trial


def test_bad_flags_are_one_line_errors(tmp_path, capsys):
    assert main(["sweep"]) == 2
    assert main(["sweep", str(fake_sweep(tmp_path)), "--workers", "0"]) == 2
    assert main(["sweep", str(fake_sweep(tmp_path)), "--storage", "nosuchdb://x"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and "--workers must be at least 1" in errors[1] and "--storage nosuchdb://x" in errors[2]
    with pytest.raises(SystemExit) as help_exit:
        main(["sweep", "--help"])
    assert help_exit.value.code == 0 and "--workers" in capsys.readouterr().out


def test_each_worker_gets_its_own_gpu_or_a_share_of_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert [env["CUDA_VISIBLE_DEVICES"] for env in worker_environments(3)] == ["2", "5", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert {env["OMP_NUM_THREADS"] for env in worker_environments(2)} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert worker_environments(1) == [dict(os.environ)]  # one worker: the trial may use every device


def test_a_sweep_killed_with_sigkill_leaves_a_study_the_next_run_continues(tmp_path):
    """SQLite commits each trial's state in a transaction: a SIGKILL at any point leaves a readable study. The
    killed trial stays RUNNING until Optuna's heartbeat (2 x 60 s) fails it and queues it again."""
    sweep_file, out = fake_sweep(tmp_path, values=(0.1, 0.2, 0.3, 0.4), method="grid"), tmp_path / "out"
    command = [sys.executable, "-m", "t5lab", "sweep", str(sweep_file), "--trials", "4", "--output_dir", str(out)]
    sweep = subprocess.Popen(
        command,
        env={**os.environ, "FAKE_PAUSE": "0.3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "fake" / "trial-0001.log").exists() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and its running trial, as a node failure would
    sweep.wait(timeout=30)
    killed = by_state(load(out))
    assert killed.get("COMPLETE") and killed.get("RUNNING")
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    study = load(out)
    assert len(by_state(study)["COMPLETE"]) > len(killed["COMPLETE"])
    assert by_state(study)["RUNNING"] == killed["RUNNING"]  # the zombie, until its heartbeat expires


def test_a_trial_stopped_twice_counts_once_and_reports_its_successor():
    from optuna.distributions import FloatDistribution
    from optuna.storages import RetryFailedTrialCallback

    study = optuna.create_study(direction="maximize")
    retry = RetryFailedTrialCallback()  # what the sweep's storage does with a stopped trial: queue a copy
    trial = study.ask({"learning_rate": FloatDistribution(1e-4, 1e-2)})
    for _ in range(2):  # stopped, queued again, picked up again
        study.tell(trial, state=TrialState.FAIL)
        retry(study, study.trials[-1])
        trial = study.ask()
    study.tell(trial, 0.5)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert retries(study.trials) == {0: 1, 1: 2}  # the budget counts one trial, not two
    _, rows = trial_rows(study)
    assert [(row[1], row[-1]) for row in rows] == [
        ("stopped", "resumed as trial 1"),
        ("stopped", "resumed as trial 2"),
        ("complete", ""),
    ]
