"""A real sweep: Optuna + SQLite, subprocess trials that pre-train t5-tiny for 3 steps on WikiText-2, two at a
time; then a resume, the report with its plots, `t5lab runs`, and what each trial recorded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from t5lab.cli import main

pytestmark = pytest.mark.slow


def _snapshot(study: optuna.Study) -> dict[int, tuple]:
    return {t.number: (t.state, t.params, t.value, t.datetime_complete) for t in study.trials}


@pytest.fixture(scope="module")
def pretrain_sweep(tmp_path_factory, wikitext_file, wiki_tokenizer_dir):
    root = tmp_path_factory.mktemp("pretrain-sweep")
    config = {
        "train_file": str(wikitext_file),
        "tokenizer_name": str(wiki_tokenizer_dir),
        "config_name": "t5-tiny",
        "input_length": 64,
        "per_device_train_batch_size": 8,
        "max_eval_samples": 32,
        "max_steps": 3,
        "eval_steps": 1,
        "logging_steps": 1,
        "save_strategy": "no",
        "plot_loss": False,
        "report_to": "none",
    }
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    sweep_file = root / "sweep.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-lr",
                "command": "pretrain",
                "config": "tiny.yaml",
                "method": "random",
                "metric": {"name": "eval/token_accuracy", "goal": "maximize"},
                "parameters": {
                    "learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
                    "lr_scheduler_type": {"values": ["linear", "constant"]},
                },
            }
        )
    )
    out = root / "out"
    storage = f"sqlite:///{out / 'optuna.db'}"
    with pytest.MonkeyPatch.context() as env:  # module scope: the autouse cache fixture is not active yet
        env.setenv("T5LAB_CACHE", str(tmp_path_factory.getbasetemp() / "t5lab-cache"))
        # Pack the corpus once first: two trials packing the same cache entry at once may collide.
        assert (
            main(
                [
                    "pretrain",
                    "--config",
                    str(root / "tiny.yaml"),
                    "--output_dir",
                    str(root / "warmup"),
                    "--max_steps",
                    "1",
                ]
            )
            == 0
        )
        first_code = main(["sweep", str(sweep_file), "--trials", "4", "--workers", "2", "--output_dir", str(out)])
        first = _snapshot(optuna.load_study(study_name="tiny-lr", storage=storage))
        resume_code = main(["sweep", str(sweep_file), "--trials", "5", "--workers", "2", "--output_dir", str(out)])
    study = optuna.load_study(study_name="tiny-lr", storage=storage)
    return SimpleNamespace(
        sweep_file=sweep_file,
        out=out,
        trials=out / "tiny-lr",
        first_code=first_code,
        first=first,
        resume_code=resume_code,
        study=study,
    )


def test_four_trials_on_two_workers_complete_and_the_best_is_the_best_recorded(pretrain_sweep):
    assert pretrain_sweep.first_code == 0
    first = pretrain_sweep.first
    assert sorted(first) == [0, 1, 2, 3] and all(state == TrialState.COMPLETE for state, *_ in first.values())
    study = pretrain_sweep.study
    recorded = {
        t.number: json.loads((pretrain_sweep.trials / f"trial-{t.number:04d}" / "eval_results.json").read_text())[
            "eval_token_accuracy"
        ]
        for t in study.trials
    }
    assert {t.number: t.value for t in study.trials} == recorded
    assert study.best_trial.number == max(recorded, key=recorded.get)
    trials = study.trials
    assert trials[1].datetime_start < trials[0].datetime_complete  # two ran at once
    assert len(trials[0].intermediate_values) >= 3  # evaluations read while it ran


def test_rerunning_with_more_trials_adds_them_without_repeating_finished_ones(pretrain_sweep):
    assert pretrain_sweep.resume_code == 0
    now = _snapshot(pretrain_sweep.study)
    assert sorted(now) == [0, 1, 2, 3, 4] and now[4][0] == TrialState.COMPLETE
    assert {n: now[n] for n in range(4)} == pretrain_sweep.first
    for n in range(5):  # each trial trained once, from scratch, in its own dir
        state = json.loads((pretrain_sweep.trials / f"trial-{n:04d}" / "trainer_state.json").read_text())
        assert [h["step"] for h in state["log_history"] if "train_runtime" in h] == [3]


def test_report_shows_the_trials_and_best_trial_and_writes_plots(pretrain_sweep, capsys):
    assert main(["sweep", "report", str(pretrain_sweep.sweep_file)]) == 2  # default output dir: nothing there
    assert "no sweep storage" in capsys.readouterr().err
    assert (
        main(["sweep", "report", "--study", "other", "--storage", f"sqlite:///{pretrain_sweep.out / 'optuna.db'}"]) == 2
    )
    error = capsys.readouterr().err
    assert "no study named 'other' in sqlite" in error and "studies: tiny-lr" in error
    assert main(["sweep", "report", str(pretrain_sweep.sweep_file), "--output_dir", str(pretrain_sweep.out)]) == 0
    out = capsys.readouterr().out
    assert "study tiny-lr: 5 trials" in out and "eval/token_accuracy" in out and "learning_rate" in out
    assert f"Best: trial {pretrain_sweep.study.best_trial.number}," in out
    plots = pretrain_sweep.trials / "plots"
    for name in (
        "optimization_history",
        "param_importances",
        "slice",
        "parallel_coordinate",
        "intermediate_values",
        "timeline",
    ):
        assert (plots / f"{name}.png").stat().st_size > 5000, name


def test_runs_lists_every_trial_with_its_metrics(pretrain_sweep, capsys):
    assert main(["runs", str(pretrain_sweep.out)]) == 0
    out = capsys.readouterr().out
    assert "5 runs under" in out and out.count("finished") == 5 and "token_accuracy" in out


def test_each_trial_records_its_config_environment_and_metrics(pretrain_sweep):
    trial = pretrain_sweep.study.trials[0]
    folder = pretrain_sweep.trials / "trial-0000"
    info = json.loads((folder / "run_info.json").read_text())
    assert info["config"]["learning_rate"] == pytest.approx(trial.params["learning_rate"])
    # the effective config holds the Trainer settings that differ from their defaults (linear is the default)
    assert info["config"].get("lr_scheduler_type", "linear") == trial.params["lr_scheduler_type"]
    assert info["environment"]["world_size"] == 1 and "torch" in info["environment"]["packages"]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "eval_token_accuracy" in row][:3] == [1, 2, 3]
    assert [row["step"] for row in rows if "loss" in row] == [1, 2, 3]
    assert (folder.parent / "trial-0000.log").read_text().strip()
