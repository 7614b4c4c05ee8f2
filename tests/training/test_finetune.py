"""Fine-tuning and evaluation end to end on the real GLUE files: decoded metrics, outputs, errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from t5lab.cli import main
from t5lab.errors import ConfigError

pytestmark = pytest.mark.slow


def _finetune(tmp_path, shared_data, tokenizer_dir, out_name, *extra):
    out = tmp_path / out_name
    args = [
        "finetune",
        "--data_dir",
        str(shared_data / "glue"),
        "--config_name",
        "t5-tiny",
        "--tokenizer_name",
        str(tokenizer_dir),
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "16",
        "--learning_rate",
        "1e-3",
        "--max_source_length",
        "64",
        "--max_target_length",
        "8",
        "--max_eval_samples",
        "64",
        "--report_to",
        "none",
        "--logging_steps",
        "5",
        *extra,
    ]
    return main(args), out


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_finetune_sst2_writes_metrics_predictions_and_best_model(tmp_path, shared_data, wiki_tokenizer_dir):
    code, out = _finetune(
        tmp_path,
        shared_data,
        wiki_tokenizer_dir,
        "sst2",
        "--task",
        "glue/sst2",
        "--max_steps",
        "30",
        "--eval_steps",
        "15",
        "--save_steps",
        "15",
        "--max_train_samples",
        "2000",
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_invalid_rate", "eval_loss", "eval_glue_average"} <= set(results)
    rows = _rows(out / "predictions" / "sst2_validation.jsonl")
    assert len(rows) == 64
    with open(shared_data / "glue" / "SST-2" / "dev.tsv", encoding="utf-8") as f:
        first = next(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0]["input"] == f"sst2 sentence: {first['text']}"
    assert rows[0]["target"] == ("positive" if first["label"] == "1" else "negative")
    # the reported accuracy is exactly what the predictions file says
    correct = sum(r["parsed"] == r["target"] for r in rows)
    assert results["eval_accuracy"] == pytest.approx(correct / len(rows))
    assert results["eval_invalid_rate"] == pytest.approx(sum(r["parsed"] is None for r in rows) / len(rows))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and state["best_model_checkpoint"]
    assert [h for h in state["log_history"] if "eval_accuracy" in h]


def test_generation_and_rank_classification_on_the_same_model(tmp_path, shared_data, wiki_tokenizer_dir):
    code, model_dir = _finetune(
        tmp_path,
        shared_data,
        wiki_tokenizer_dir,
        "rte",
        "--task",
        "glue/rte",
        "--max_steps",
        "10",
        "--save_strategy",
        "no",
    )
    assert code == 0
    metrics = {}
    for mode in ("generate", "rank"):
        out = tmp_path / f"eval-{mode}"
        assert (
            main(
                [
                    "evaluate",
                    "--task",
                    "glue/rte",
                    "--data_dir",
                    str(shared_data / "glue"),
                    "--model_name_or_path",
                    str(model_dir),
                    "--output_dir",
                    str(out),
                    "--eval_mode",
                    mode,
                    "--max_eval_samples",
                    "48",
                    "--max_source_length",
                    "128",
                    "--report_to",
                    "none",
                ]
            )
            == 0
        )
        metrics[mode] = json.loads((out / "eval_results.json").read_text())
        rows = _rows(out / "predictions" / "rte_validation.jsonl")
        assert len(rows) == 48
    assert metrics["rank"]["eval_invalid_rate"] == 0.0  # rank classification always answers with a label
    assert all(r["parsed"] in ("entailment", "not_entailment") for r in rows)


def test_multitask_mixture_reports_each_task_and_the_average(tmp_path, shared_data, wiki_tokenizer_dir):
    code, out = _finetune(
        tmp_path,
        shared_data,
        wiki_tokenizer_dir,
        "mix",
        "--task",
        "glue/sst2,glue/rte",
        "--max_steps",
        "8",
        "--save_strategy",
        "no",
        "--mixing",
        "temperature",
        "--max_train_samples",
        "500",
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_sst2_validation_accuracy", "eval_rte_validation_accuracy", "eval_average"} <= set(results)
    assert results["eval_average"] == pytest.approx(
        (results["eval_sst2_validation_accuracy"] + results["eval_rte_validation_accuracy"]) / 2
    )
    assert (out / "predictions" / "rte_validation.jsonl").is_file()


def test_predict_writes_glue_submission(tmp_path, shared_data, wiki_tokenizer_dir):
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    shutil.copy(shared_data / "glue" / "SST-2" / "train.tsv", glue / "train.tsv")
    shutil.copy(shared_data / "glue" / "SST-2" / "dev.tsv", glue / "dev.tsv")
    dev = (shared_data / "glue" / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:21]
    (glue / "test.tsv").write_text(
        "index\tsentence\n" + "".join(f"{i}\t{line.split(chr(9))[0]}\n" for i, line in enumerate(dev))
    )
    code, model_dir = _finetune(
        tmp_path,
        tmp_path,
        wiki_tokenizer_dir,
        "model",
        "--task",
        "glue/sst2",
        "--max_steps",
        "4",
        "--save_strategy",
        "no",
        "--max_train_samples",
        "200",
    )
    assert code == 0
    assert len(_rows(model_dir / "predictions" / "sst2_test.jsonl")) == 20  # finetune predicts the test split too
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--task",
                "glue/sst2",
                "--data_dir",
                str(tmp_path / "glue"),
                "--model_name_or_path",
                str(model_dir),
                "--output_dir",
                str(out),
                "--eval_mode",
                "rank",
                "--report_to",
                "none",
            ]
        )
        == 0
    )
    lines = (out / "glue_submission" / "SST-2.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 21
    assert all(line.split("\t")[1] in ("0", "1") for line in lines[1:])
    # the files run_summarization writes: one prediction per line, and the predict metrics
    generated = (out / "generated_predictions.txt").read_text().splitlines()
    assert generated == [json.loads(row)["prediction"] for row in (out / "predictions" / "sst2_test.jsonl").open()]
    assert json.loads((out / "predict_results.json").read_text())["predict_samples"] == 20


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--task", "glue/sst3"], "unknown task"),
        (
            ["--task", "glue/sst2", "--metric_for_best_model", "eval_f1", "--eval_steps", "5"],
            "--metric_for_best_model 'eval_f1' is not a metric",
        ),
        (["--task", "glue/cola"], "does not exist"),  # a CoLA folder without train.tsv
        (["--task", "glue/sst2", "--eval_mode", "sample"], "--eval_mode must be one of"),
    ],
)
def test_bad_finetune_input(tmp_path, shared_data, wiki_tokenizer_dir, capsys, extra, message):
    data = shared_data / "glue"
    if "glue/cola" in extra:
        data = tmp_path / "glue"
        (data / "CoLA").mkdir(parents=True)
        shutil.copy(shared_data / "glue" / "CoLA" / "dev.tsv", data / "CoLA" / "dev.tsv")
    code = main(
        [
            "finetune",
            "--data_dir",
            str(data),
            "--config_name",
            "t5-tiny",
            "--tokenizer_name",
            str(wiki_tokenizer_dir),
            "--output_dir",
            str(tmp_path / "out"),
            "--max_steps",
            "1",
            "--report_to",
            "none",
            *extra,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("t5lab finetune: error:")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_tasks_command_lists_builtin_and_user_tasks(tmp_path, capsys):
    task_file = tmp_path / "mine.yaml"
    task_file.write_text(
        "tasks:\n  - name: mine/polarity\n    source: {local: {files: {train: t.csv, validation: v.csv}}}\n"
        "    input_template: 'polarity: {text}'\n    labels: {0: bad, 1: good}\n    metrics: [accuracy]\n"
    )
    assert main(["tasks", "--task_file", str(task_file)]) == 0
    out = capsys.readouterr().out
    for name in (
        "glue/sst2",
        "glue/mnli",
        "superglue/boolq",
        "discoeval/SParxiv",
        "summarization/xsum",
        "mine/polarity",
    ):
        assert name in out, name


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path, shared_data, wiki_tokenizer_dir):
    # with a zero learning rate the metric never improves after the first evaluation
    code, out = _finetune(
        tmp_path,
        shared_data,
        wiki_tokenizer_dir,
        "stop",
        "--task",
        "glue/rte",
        "--max_steps",
        "60",
        "--learning_rate",
        "0",
        "--eval_steps",
        "2",
        "--save_steps",
        "2",
        "--early_stopping_patience",
        "2",
        "--max_eval_samples",
        "16",
    )
    assert code == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6  # evaluations at 2 (best), 4 and 6 (no improvement twice)


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_its_fix(
    tmp_path, shared_data, wiki_tokenizer_dir
):
    code, out = _finetune(tmp_path, shared_data, wiki_tokenizer_dir, "run", "--task", "glue/sst3", "--max_steps", "2")
    assert code == 2  # unknown task, after the run record was written
    code, out = _finetune(
        tmp_path,
        shared_data,
        wiki_tokenizer_dir,
        "run",
        "--task",
        "glue/rte",
        "--max_steps",
        "2",
        "--max_train_samples",
        "32",
    )
    assert code == 0 and (out / "eval_results.json").is_file()
    assert "rte" in (out / "t5lab_config.yaml").read_text()
    # a run that reached a checkpoint is still protected
    code, _ = _finetune(tmp_path, shared_data, wiki_tokenizer_dir, "run", "--task", "glue/sst2", "--max_steps", "2")
    assert code == 2


def test_do_flags_follow_the_hf_scripts(tmp_path, shared_data, wiki_tokenizer_dir):
    # --do_train alone: trains and saves, no final evaluation and no test predictions
    code, trained = _finetune(
        tmp_path, shared_data, wiki_tokenizer_dir, "train-only", "--task", "glue/rte", "--max_steps", "4", "--do_train"
    )
    assert code == 0 and (trained / "model.safetensors").is_file() and (trained / "train_results.json").is_file()
    assert not (trained / "eval_results.json").exists() and not (trained / "predictions").exists()
    # flags given only false remove their phases; all three false is refused before anything is written
    code, no_eval = _finetune(
        tmp_path,
        shared_data,
        wiki_tokenizer_dir,
        "no-eval",
        "--task",
        "glue/rte",
        "--max_steps",
        "2",
        "--do_eval",
        "false",
    )
    assert code == 0 and (no_eval / "train_results.json").is_file() and not (no_eval / "eval_results.json").exists()
    off = ["--do_train", "false", "--do_eval", "false", "--do_predict", "false"]
    code, nothing = _finetune(tmp_path, shared_data, wiki_tokenizer_dir, "nothing", "--task", "glue/rte", *off)
    assert code == 2 and not nothing.exists()
    # --do_eval without --do_train: evaluates the given model, trains nothing
    out = tmp_path / "eval-only"
    argv = ["finetune", "--task", "glue/rte", "--data_dir", str(shared_data / "glue"), "--model_name_or_path"]
    argv += [str(trained), "--max_eval_samples", "32", "--report_to", "none", "--max_target_length", "8"]
    assert main([*argv, "--do_eval", "--output_dir", str(out)]) == 0
    assert "eval_accuracy" in json.loads((out / "eval_results.json").read_text())
    assert not (out / "train_results.json").exists() and not (out / "model.safetensors").exists()
    # --do_predict alone predicts the test split, here missing from the folder: a one-line error at once
    assert main([*argv, "--do_predict", "--output_dir", str(tmp_path / "predict-only")]) == 2
    assert not (tmp_path / "predict-only" / "glue_submission").exists()
    # the same with training: refused before training starts
    code, _ = _finetune(
        tmp_path, shared_data, wiki_tokenizer_dir, "t+p", "--task", "glue/rte", "--do_train", "--do_predict"
    )
    assert code == 2 and not (tmp_path / "t+p" / "train_results.json").exists()


def test_generation_and_best_model_flags_are_honoured_or_refused(tmp_path):
    from t5lab.config import ModelArguments, TaskArguments, parse_arguments
    from t5lab.training.arguments import T5LabTrainingArguments
    from t5lab.training.finetune import _with_evaluation_policy, generation_beams

    def parse(*flags):
        types = (ModelArguments, TaskArguments, T5LabTrainingArguments)
        _, task, training = parse_arguments(
            types, ["--task", "glue/rte", "--output_dir", str(tmp_path), *flags], "t", ""
        )
        return task, training

    assert generation_beams(*parse("--generation_num_beams", "4")) == 4  # the Trainer's name works
    assert generation_beams(*parse("--num_beams", "3")) == 3
    assert generation_beams(*parse("--num_beams", "4", "--generation_num_beams", "4")) == 4
    with pytest.raises(ConfigError, match="disagree"):
        generation_beams(*parse("--num_beams", "2", "--generation_num_beams", "4"))
    _, training = parse("--predict_with_generate", "false")
    with pytest.raises(ConfigError, match="always scores decoded predictions"):
        _with_evaluation_policy(training, "accuracy", True)
    _, training = parse("--eval_steps", "10", "--save_steps", "10", "--load_best_model_at_end", "false")
    assert _with_evaluation_policy(training, "accuracy", True).load_best_model_at_end is False  # the user's value
    _, training = parse("--eval_steps", "10", "--save_steps", "10")
    assert _with_evaluation_policy(training, "accuracy", True).load_best_model_at_end is True  # t5lab's default
    with pytest.raises(ConfigError, match="round multiple"):  # an impossible request is refused when parsed
        parse("--eval_steps", "10", "--save_steps", "15", "--load_best_model_at_end")
    # the other fields t5lab sets a default for: the user's explicit value wins
    from t5lab.evaluation.naming import best_model_metric
    from t5lab.tasks.registry import get_task

    assert parse()[1].eval_strategy == "no" and parse("--eval_steps", "5")[1].eval_strategy == "steps"
    assert parse("--eval_strategy", "epoch")[1].eval_strategy == "epoch"
    rte = [get_task("glue/rte")]
    assert best_model_metric(rte, None, None) == ("accuracy", True)
    assert best_model_metric(rte, None, "eval_loss", None) == ("loss", False)
    assert best_model_metric(rte, None, "accuracy", False) == ("accuracy", False)  # --greater_is_better false


def test_loading_the_best_checkpoint_reports_no_spurious_missing_keys(tmp_path, shared_data, wiki_tokenizer_dir):
    argv = [sys.executable, "-m", "t5lab", "finetune", "--task", "glue/rte", "--data_dir", str(shared_data / "glue")]
    argv += ["--config_name", "t5-tiny", "--tokenizer_name", str(wiki_tokenizer_dir), "--max_steps", "4"]
    argv += ["--eval_steps", "2", "--save_steps", "2", "--max_eval_samples", "16", "--max_target_length", "8"]
    argv += ["--max_source_length", "64", "--report_to", "none", "--output_dir", str(tmp_path / "best")]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "best" / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert "missing keys" not in result.stderr and "NOT tie them" not in result.stderr
