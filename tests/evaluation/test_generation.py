"""``t5lab generate`` on a real (briefly pre-trained) model: span fills, stdin, beams, sampling, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from t5lab.cli import main
from t5lab.evaluation.generation import fill_spans

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, wikitext_file, wiki_tokenizer_dir):
    out = tmp_path_factory.mktemp("generate") / "model"
    argv = ["pretrain", "--train_file", str(wikitext_file), "--tokenizer_name", str(wiki_tokenizer_dir)]
    argv += ["--config_name", "t5-tiny", "--input_length", "64", "--per_device_train_batch_size", "16"]
    argv += ["--max_steps", "60", "--learning_rate", "3e-3", "--warmup_steps", "5", "--report_to", "none"]
    assert main([*argv, "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", str(out)]) == 0
    return out


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "t5lab", "generate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"),
        timeout=300,
    )


def test_fill_spans_puts_each_generated_span_at_its_sentinel():
    assert (
        fill_spans("a <extra_id_0> c <extra_id_1> e", "<extra_id_0> b<extra_id_1> d d<extra_id_2> x")
        == "a [b] c [d d] e"
    )
    assert fill_spans("a <extra_id_0> c", "nothing") == "a [] c"


def test_span_filling_from_arguments_and_stdin_without_loading_noise(model_dir):
    result = run(str(model_dir), "The <extra_id_0> of the city .", "In 1990 the <extra_id_0> was built .")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        filled, raw = line.split("\t")
        assert raw.startswith("<extra_id_0>") and "[" in filled and "<extra_id_0>" not in filled
    assert "NOT tie them" not in result.stderr and "Loading weights" not in result.stderr
    piped = run(str(model_dir), stdin="The <extra_id_0> of the city .\n\nIn 1990 the <extra_id_0> was built .\n")
    assert piped.returncode == 0 and piped.stdout == result.stdout  # blank lines skipped, same greedy outputs


def test_beams_return_several_outputs_and_sampling_follows_its_seed(model_dir, capsys):
    assert (
        main(["generate", str(model_dir), "The city <extra_id_0>", "--num_beams", "3", "--num_return_sequences", "2"])
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2
    outputs = []
    for _ in range(2):
        assert (
            main(["generate", str(model_dir), "The city", "--do_sample", "--seed", "7", "--max_new_tokens", "12"]) == 0
        )
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].strip()


def test_bad_generate_input_is_one_line(model_dir, tmp_path):
    for args, message in [
        ((str(tmp_path),), "is not a model directory"),
        ((str(model_dir), "x", "--num_return_sequences", "3"), "needs --num_beams at least as large"),
        ((str(model_dir), "x", "--temperature", "0"), "--temperature must be > 0"),
    ]:
        result = run(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    empty = run(str(model_dir), stdin="\n")
    assert empty.returncode == 2 and "no text to generate from" in empty.stderr
