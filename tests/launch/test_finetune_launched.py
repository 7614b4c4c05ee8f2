"""Fine-tuning and evaluation under torchrun: every example scored once, in order, as by one process.

51 validation examples over 2 processes with batches of 8 do not divide evenly: the distributed sampler repeats
examples to even out the last batches, and the predictions must come back without them.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from t5lab.cli import main

pytestmark = pytest.mark.slow

EVAL_EXAMPLES = 51


def _common(shared_data, output_dir):
    return [
        "--task",
        "glue/rte",
        "--data_dir",
        str(shared_data / "glue"),
        "--max_source_length",
        "64",
        "--max_target_length",
        "4",
        "--max_eval_samples",
        str(EVAL_EXAMPLES),
        "--per_device_eval_batch_size",
        "8",
        "--report_to",
        "none",
        "--output_dir",
        str(output_dir),
    ]


def _torchrun(torchrun, argv, cwd) -> str:
    command = [*torchrun, *argv]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _predictions(output_dir):
    return (output_dir / "predictions" / "rte_validation.jsonl").read_text(encoding="utf-8").splitlines()


def test_finetune_and_evaluate_under_torchrun_score_each_example_once(
    tmp_path, shared_data, wiki_tokenizer_dir, torchrun
):
    trained = tmp_path / "ddp"
    log = _torchrun(
        torchrun,
        [
            "finetune",
            "--config_name",
            "t5-tiny",
            "--tokenizer_name",
            str(wiki_tokenizer_dir),
            "--max_steps",
            "4",
            "--per_device_train_batch_size",
            "4",
            "--learning_rate",
            "3e-3",
            "--save_strategy",
            "no",
            *_common(shared_data, trained),
        ],
        tmp_path,
    )
    assert "on 2 process(es)" in "".join(log.split("\n"))
    assert len(_predictions(trained)) == EVAL_EXAMPLES

    # The same model evaluated by one process and by two: the same predictions, line for line, and metrics.
    assert main(["evaluate", "--model_name_or_path", str(trained), *_common(shared_data, tmp_path / "one")]) == 0
    _torchrun(
        torchrun, ["evaluate", "--model_name_or_path", str(trained), *_common(shared_data, tmp_path / "two")], tmp_path
    )
    one, two = _predictions(tmp_path / "one"), _predictions(tmp_path / "two")
    assert len(one) == EVAL_EXAMPLES and one == two
    assert len({json.loads(line)["input"] for line in one}) == EVAL_EXAMPLES
    scores = [json.loads((tmp_path / run / "eval_results.json").read_text()) for run in ("one", "two")]
    assert scores[0]["eval_accuracy"] == scores[1]["eval_accuracy"]
    assert scores[0]["eval_invalid_rate"] == scores[1]["eval_invalid_rate"]
