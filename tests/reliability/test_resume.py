"""Exact resume: SIGKILL a run at several points, rerun the same command, get the uninterrupted run bit for bit.

Every run is a real ``python -m t5lab`` process (faulty_t5lab.py where a save must be slow) with one thread,
killed with SIGKILL on its whole process group. "Identical" means every logged loss, gradient norm and
learning rate, and every final weight, are bitwise equal to those of a run that was never interrupted (CPU,
same thread count).
"""

from __future__ import annotations

import time

import pytest
from harness import (
    assert_identical_runs,
    child_env,
    kill_group,
    logged_steps,
    pretrain_args,
    resumed_from_a_checkpoint,
    start,
    wait_for,
)

pytestmark = pytest.mark.slow


def _run(argv, env=None, launcher=None) -> str:
    """Run to the end; the output without whitespace (the console wraps long lines)."""
    process = start(argv, env, launcher)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return "".join(output.split())


def _resumed_from(output: str) -> str:
    return output.split("resumingfrom", 1)[1].split("[", 1)[0] if "resumingfrom" in output else ""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_corpus, wiki_tokenizer_dir):
    out = tmp_path_factory.mktemp("reference") / "run"
    _run(pretrain_args(small_corpus, wiki_tokenizer_dir, out))
    return out


@pytest.mark.parametrize(
    "kill_point", ["after step 4", "while saving checkpoint-6", "after step 11", "after checkpoint-12"]
)
def test_pretraining_killed_and_rerun_matches_an_uninterrupted_run(
    tmp_path, small_corpus, wiki_tokenizer_dir, reference, kill_point
):
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out)
    if kill_point.startswith("while saving"):
        # The injected delay holds the save after every file is written and before the checkpoint is committed.
        process = start(argv, child_env(T5LAB_FAULT_SAVE_DELAY="5"), faulty=True)
        wait_for(process, lambda: (out / ".incomplete" / "checkpoint-6" / "trainer_state.json").is_file())
    elif kill_point == "after checkpoint-12":  # the last one: the rerun must only finish, not train a step 13
        process = start(argv)
        wait_for(process, lambda: (out / "checkpoint-12").is_dir())
    else:
        process = start(argv)
        step = int(kill_point.split()[-1])
        wait_for(process, lambda: step in logged_steps(out))
    kill_group(process)
    if kill_point != "after checkpoint-12":
        assert not (out / "model.safetensors").exists()  # really killed before the end

    output = _run(argv)
    if kill_point.startswith("while saving"):
        assert "Skippingincompletecheckpoints:checkpoint-6(half-written,removed)" in output
        assert _resumed_from(output).startswith(str(out / "checkpoint-3"))
    else:
        assert _resumed_from(output).startswith(str(out / "checkpoint-"))
    assert_identical_runs(reference, out)
    assert not (out / ".incomplete").exists()


def test_finetuning_killed_and_rerun_matches_an_uninterrupted_run(tmp_path, shared_data, wiki_tokenizer_dir):
    # Dropout 0.1 is on while fine-tuning, so this also checks that the RNG state is restored.
    def argv(out):
        return [
            "finetune",
            "--task",
            "glue/rte",
            "--data_dir",
            str(shared_data / "glue"),
            "--config_name",
            "t5-tiny",
            "--tokenizer_name",
            str(wiki_tokenizer_dir),
            "--output_dir",
            str(out),
            "--per_device_train_batch_size",
            "4",
            "--max_source_length",
            "64",
            "--max_target_length",
            "4",
            "--max_train_samples",
            "200",
            "--max_eval_samples",
            "8",
            "--max_steps",
            "9",
            "--save_steps",
            "3",
            "--logging_steps",
            "1",
            "--learning_rate",
            "1e-3",
            "--report_to",
            "none",
            "--plot_loss",
            "false",
            "--seed",
            "3",
        ]

    _run(argv(tmp_path / "reference"))
    out = tmp_path / "run"
    process = start(argv(out))
    wait_for(process, lambda: 5 in logged_steps(out))
    kill_group(process)
    killed_at = time.time()
    _run(argv(out))
    assert resumed_from_a_checkpoint(out, killed_at)
    assert_identical_runs(tmp_path / "reference", out)


def test_two_process_ddp_killed_and_rerun_matches_an_uninterrupted_run(
    tmp_path, small_corpus, wiki_tokenizer_dir, torchrun
):
    extra = ("--ddp_backend", "gloo", "--max_steps", "9", "--per_device_train_batch_size", "2")
    reference = _run(pretrain_args(small_corpus, wiki_tokenizer_dir, tmp_path / "reference", *extra), launcher=torchrun)
    assert "find_unused_parameters=True" not in reference  # t5lab's default: no search, no warning per rank
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out, *extra)
    process = start(argv, launcher=torchrun)
    wait_for(process, lambda: 5 in logged_steps(out))
    kill_group(process)
    killed_at = time.time()
    assert _resumed_from(_run(argv, launcher=torchrun))
    assert resumed_from_a_checkpoint(out, killed_at)
    assert_identical_runs(tmp_path / "reference", out)
