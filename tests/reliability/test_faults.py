"""Preemption signals, non-finite steps and full disks: a clean stop, a clear line, checkpoints intact."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from faulty_t5lab import inject_faults
from harness import child_env, error_line, kill_group, logged_steps, pretrain_args, start, wait_for
from safetensors.torch import load_file

from t5lab.cli import main
from t5lab.errors import INTERRUPTED_EXIT_CODE, PREEMPTED_EXIT_CODE
from t5lab.training.checkpointing import checkpoint_problem

pytestmark = pytest.mark.slow


def _err_line(capsys) -> str:
    return error_line(capsys.readouterr().err)


@pytest.fixture
def faults(monkeypatch) -> None:
    """The Trainer of this process with the faults of faulty_t5lab.py, chosen by the T5LAB_FAULT_* variables."""
    inject_faults(monkeypatch.setattr)


def test_sigterm_saves_a_checkpoint_at_the_next_step_and_exits_75(tmp_path, small_corpus, wiki_tokenizer_dir):
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "500", "--save_steps", "1000")
    process = start(argv)
    wait_for(process, lambda: 3 in logged_steps(out))
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    elapsed = time.monotonic() - signalled
    assert process.returncode == PREEMPTED_EXIT_CODE, output[-2000:]
    assert elapsed < 30  # one step and one save of a tiny model
    line = error_line(output)
    assert line.startswith("t5lab pretrain: error: stopped by SIGTERM at step ") and "rerun the same command" in line
    step = int(line.split("at step ")[1].split()[0])
    assert checkpoint_problem(out / f"checkpoint-{step}") is None
    assert max(logged_steps(out)) == step and not (out / "model.safetensors").exists()
    # the requeued job resumes from it and finishes
    process = start(
        pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", str(step + 2), "--save_steps", "1000")
    )
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-2000:]
    assert sorted(set(logged_steps(out))) == list(range(1, step + 3))


def test_ctrl_c_checkpoints_and_exits_130_and_a_second_ctrl_c_aborts_at_once(
    tmp_path, small_corpus, wiki_tokenizer_dir
):
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "500", "--save_steps", "1000")
    process = start(argv)
    wait_for(process, lambda: 3 in logged_steps(out))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == INTERRUPTED_EXIT_CODE, output[-2000:]
    assert "Ctrl-C: saving a checkpoint" in output
    line = error_line(output)
    assert line.startswith("t5lab pretrain: error: stopped by Ctrl-C (SIGINT) at step ") and "rerun" in line
    step = int(line.split("at step ")[1].split()[0])
    assert checkpoint_problem(out / f"checkpoint-{step}") is None
    # the rerun resumes exactly where Ctrl-C stopped
    process = start(
        pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", str(step + 2), "--save_steps", "1000")
    )
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-2000:]
    assert sorted(set(logged_steps(out))) == list(range(1, step + 3))

    # Ctrl-C twice, the second while a checkpoint is being written (held there by the injected delay): the run
    # stops at once without finishing that checkpoint; the last complete one is intact and the rerun resumes it
    again = tmp_path / "again"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, again, "--max_steps", "500", "--save_steps", "3")
    process = start(argv, child_env(T5LAB_FAULT_SAVE_DELAY="10"), faulty=True)
    wait_for(process, lambda: (again / ".incomplete" / "checkpoint-6" / "trainer_state.json").is_file())
    process.send_signal(signal.SIGINT)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == INTERRUPTED_EXIT_CODE and "Traceback" not in output, output[-2000:]
    assert "t5lab pretrain: interrupted" in output and not (again / "checkpoint-6").exists()
    assert checkpoint_problem(again / "checkpoint-3") is None
    process = start(pretrain_args(small_corpus, wiki_tokenizer_dir, again, "--max_steps", "8", "--save_steps", "3"))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and f"resuming from {again / 'checkpoint-3'}" in output, output


def test_sigusr1_on_one_ddp_rank_stops_both_ranks_after_one_checkpoint(
    tmp_path, small_corpus, wiki_tokenizer_dir, torchrun
):
    out = tmp_path / "run"
    argv = pretrain_args(
        small_corpus,
        wiki_tokenizer_dir,
        out,
        "--max_steps",
        "500",
        "--save_steps",
        "1000",
        "--per_device_train_batch_size",
        "2",
        "--ddp_backend",
        "gloo",
    )
    process = start(argv, launcher=torchrun)
    wait_for(process, lambda: 3 in logged_steps(out))
    workers = [
        int(p) for p in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    ]
    assert len(workers) == 2
    signalled = time.monotonic()
    os.kill(workers[1], signal.SIGUSR1)  # only rank 1 is told: the ranks must agree, or rank 0 would hang
    output, _ = process.communicate(timeout=120)
    assert time.monotonic() - signalled < 60
    assert process.returncode != 0
    assert output.count("error: stopped by ") == 2, output[-3000:]
    step = int(output.split("after saving ")[0].rsplit("at step ", 1)[1].split()[0])
    assert checkpoint_problem(out / f"checkpoint-{step}") is None
    assert (out / f"checkpoint-{step}" / "rng_state_1.pth").is_file()


@pytest.mark.usefixtures("faults")
def test_nonfinite_loss_stops_naming_the_step_and_the_last_good_checkpoint(
    tmp_path, small_corpus, wiki_tokenizer_dir, capsys, monkeypatch
):
    monkeypatch.setenv("T5LAB_FAULT_NONFINITE_STEPS", "5")
    out = tmp_path / "run"
    assert main(pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "8")) == 3
    line = _err_line(capsys)
    assert line.startswith(
        "t5lab pretrain: error: non-finite loss or gradient norm (nan) at step 5; "
        f"the last good checkpoint is {out / 'checkpoint-3'}."
    )
    assert "--on_nonfinite skip" in line
    assert checkpoint_problem(out / "checkpoint-3") is None and not (out / "model.safetensors").exists()


@pytest.mark.usefixtures("faults")
def test_nonfinite_steps_skipped_and_counted_under_the_skip_policy(
    tmp_path, small_corpus, wiki_tokenizer_dir, monkeypatch
):
    monkeypatch.setenv("T5LAB_FAULT_NONFINITE_STEPS", "2,4")
    out = tmp_path / "run"
    assert (
        main(
            pretrain_args(
                small_corpus,
                wiki_tokenizer_dir,
                out,
                "--max_steps",
                "5",
                "--on_nonfinite",
                "skip",
                "--save_steps",
                "1",
                "--save_total_limit",
                "5",
            )
        )
        == 0
    )
    assert json.loads((out / "train_results.json").read_text())["nonfinite_skipped"] == 2
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [h.get("nonfinite_skipped", 0) for h in history if "loss" in h] == [0, 1, 1, 2, 2]
    assert math.isnan(history[1]["grad_norm"]) and math.isfinite(history[2]["grad_norm"])
    weights = {step: load_file(str(out / f"checkpoint-{step}" / "model.safetensors")) for step in range(1, 6)}
    assert all(bool(t.isfinite().all()) for t in weights[5].values())
    changed = {
        step: any(not torch.equal(weights[step][k], weights[step - 1][k]) for k in weights[step])
        for step in range(2, 6)
    }
    assert changed == {2: False, 3: True, 4: False, 5: True}  # a skipped step changes nothing


@pytest.mark.usefixtures("faults")
def test_disk_full_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(
    tmp_path, small_corpus, wiki_tokenizer_dir, capsys, monkeypatch
):
    monkeypatch.setenv("T5LAB_FAULT_SAVE_ENOSPC", "2")  # the second save fails after writing the weights
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "9")
    assert main(argv) == 4
    line = _err_line(capsys)
    assert line.startswith(
        f"t5lab pretrain: error: could not write checkpoint-6 in {out} ([Errno 28] No space left on device"
    )
    assert f"the previous checkpoint {out / 'checkpoint-3'} is intact" in line
    assert checkpoint_problem(out / "checkpoint-3") is None
    assert not (out / "checkpoint-6").exists() and not (out / ".incomplete").exists()
    monkeypatch.delenv("T5LAB_FAULT_SAVE_ENOSPC")
    assert main(argv) == 0
    assert sorted(set(logged_steps(out))) == list(range(1, 10))


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to mount a private tmpfs")
def test_a_really_full_disk(tmp_path, small_corpus, wiki_tokenizer_dir):
    out, copy = tmp_path / "run", tmp_path / "copy"
    out.mkdir()
    copy.mkdir()
    # 45 MB: the tokenizer-less output dir and one 31 MB checkpoint fit, a second checkpoint does not
    script = (
        f"mount -t tmpfs -o size=45m tmpfs {out} || exit 99; {sys.executable} -m t5lab "
        + " ".join(pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "9"))
        + f" 2>&1; cp -a {out}/. {copy}/"
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600, env=child_env()
    )
    if "exit 99" in result.stderr or result.returncode == 99 or "mount:" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()[:200]}")
    line = error_line(result.stdout)
    assert (
        line.startswith("t5lab pretrain: error: could not write checkpoint-") and "no space left on device" in line
    ), line
    assert "is intact" in line
    kept = sorted(p.name for p in copy.glob("checkpoint-*"))
    assert kept and all(checkpoint_problem(copy / name) is None for name in kept)
    assert not (copy / ".incomplete").exists()


def test_rotation_keeps_the_newest_and_the_best_checkpoint(tmp_path, small_corpus, wiki_tokenizer_dir):
    # "greater is better" on the eval loss makes the first evaluation (the highest loss) the best one; with a
    # limit of 2, every save from step 6 on must delete the middle checkpoint, never the best or the newest
    out = tmp_path / "run"
    assert (
        main(
            pretrain_args(
                small_corpus,
                wiki_tokenizer_dir,
                out,
                "--max_steps",
                "8",
                "--save_steps",
                "2",
                "--eval_steps",
                "2",
                "--validation_split_percentage",
                "10",
                "--max_eval_samples",
                "8",
                "--save_total_limit",
                "2",
                "--load_best_model_at_end",
                "--metric_for_best_model",
                "eval_loss",
                "--greater_is_better",
                "true",
            )
        )
        == 0
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(out / "checkpoint-2")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-8"]
    assert all(checkpoint_problem(p) is None for p in out.glob("checkpoint-*"))


def test_a_damaged_newest_checkpoint_is_reported_and_skipped(tmp_path, small_corpus, wiki_tokenizer_dir, capsys):
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "6")
    assert main(argv) == 0
    optimizer = out / "checkpoint-6" / "optimizer.pt"
    size = optimizer.stat().st_size
    optimizer.write_bytes(optimizer.read_bytes()[: size // 2])  # truncated behind t5lab's back (a bad disk, a copy)
    capsys.readouterr()
    assert main(pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "7")) == 0
    err = capsys.readouterr().err
    assert (
        f"Skipping incomplete checkpoints: checkpoint-6: optimizer.pt has {size // 2} bytes, {size} expected; "
        f"resuming from {out / 'checkpoint-3'}."
    ) in err
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 7


def test_one_run_per_output_dir_and_a_killed_holder_leaves_no_lock(tmp_path, small_corpus, wiki_tokenizer_dir):
    out = tmp_path / "run"
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "500", "--save_steps", "2")
    first = start(argv)
    wait_for(first, lambda: (out / "checkpoint-2").is_dir())
    second = start(argv)  # the same command again, e.g. a requeued job while the first still runs
    output, _ = second.communicate(timeout=300)
    line = error_line(output)
    assert second.returncode == 2 and f"is in use by another run (pid {first.pid} on {socket.gethostname()}" in line
    assert first.poll() is None  # the first run goes on
    kill_group(first)  # SIGKILL: the kernel drops its lock with it
    resumed = start(pretrain_args(small_corpus, wiki_tokenizer_dir, out, "--max_steps", "6", "--save_steps", "2"))
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resuming from" in output, output[-2000:]
