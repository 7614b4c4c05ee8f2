"""Harness of the reliability tests: tiny runs started as real processes, killed with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

TINY_PRETRAIN = [
    "--config_name",
    "t5-tiny",
    "--input_length",
    "64",
    "--per_device_train_batch_size",
    "4",
    "--logging_steps",
    "1",
    "--save_steps",
    "3",
    "--max_steps",
    "12",
    "--report_to",
    "none",
    "--seed",
    "1",
    "--validation_split_percentage",
    "0",
    "--plot_loss",
    "false",
    "--dataloader_num_workers",
    "0",
]
# The CLI with the faults that the T5LAB_FAULT_* variables ask for injected into the Trainer.
FAULTY_T5LAB = Path(__file__).with_name("faulty_t5lab.py")


def pretrain_args(corpus: Path, tokenizer_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """Arguments of a 12-step t5-tiny pre-training that logs every step and checkpoints every 3."""
    return [
        "pretrain",
        "--train_file",
        str(corpus),
        "--tokenizer_name",
        str(tokenizer_dir),
        *TINY_PRETRAIN,
        "--output_dir",
        str(output_dir),
        *extra,
    ]


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child run, one thread per process (2 cores, sometimes 2 processes)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def start(
    argv: list[str], env: dict[str, str] | None = None, launcher: list[str] | None = None, faulty: bool = False
) -> subprocess.Popen:
    """Start ``t5lab ARGV`` in its own process group, output captured: through ``launcher`` if given (a command
    that runs t5lab, such as torchrun's), or, if ``faulty``, as :data:`FAULTY_T5LAB`."""
    if faulty and launcher:
        raise ValueError("faulty_t5lab.py is a script; a launcher runs the real t5lab")
    program = [sys.executable, str(FAULTY_T5LAB)] if faulty else launcher or [sys.executable, "-m", "t5lab"]
    command = [*program, *argv]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or child_env(),
        start_new_session=True,
    )


def wait_for(process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 300) -> None:
    """Poll until ``condition`` holds; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"run ended (code {process.returncode}) before the kill point:\n{process.stdout.read()[-3000:]}"
            )
        if time.monotonic() > deadline:
            kill_group(process, signal.SIGKILL)
            raise AssertionError("kill point not reached in time")
        time.sleep(0.02)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process just ended
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        below = children.get(queue.pop(), [])
        found += below
        queue += below
    return found


def kill_group(process: subprocess.Popen, signum: int = signal.SIGKILL) -> str:
    """Send ``signum`` to the run and every process under it (torchrun puts its workers in their own
    sessions), as a node failure or a scheduler does; returns the run's output."""
    for pid in [process.pid, *_descendants(process.pid)]:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    output, _ = process.communicate(timeout=300)
    return output


def error_line(output: str, command: str = "pretrain") -> str:
    """The CLI's one-line error in a run's output (a progress bar may share its line)."""
    assert "Traceback" not in output, output[-3000:]
    marker = f"t5lab {command}: error:"
    assert marker in output, output[-3000:]
    return output[output.rindex(marker) :].splitlines()[0]


def logged_steps(output_dir: Path) -> list[int]:
    """Steps that have a training-loss line in metrics.jsonl so far."""
    path = output_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:
            steps.append(row["step"])
    return steps


def resumed_from_a_checkpoint(output_dir: Path, killed_at: float) -> bool:
    """Whether the rerun kept the first steps logged before the kill (a resume), rather than redoing them."""
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    first_step = [row for row in rows if row.get("step") == 1 and "loss" in row]
    return len(first_step) == 1 and first_step[0]["time"] < killed_at


def training_logs(output_dir: Path) -> list[tuple[int, float, float, float]]:
    """(step, loss, grad_norm, learning_rate) of every logged training step in the final trainer state."""
    history = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    return [(h["step"], h["loss"], h["grad_norm"], h["learning_rate"]) for h in history if "loss" in h]


def max_weight_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between two saved models' tensors (0.0 means bitwise equal)."""
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    return max(float((first[k].double() - second[k].double()).abs().max()) for k in first)


def assert_identical_runs(reference: Path, resumed: Path) -> None:
    """Every logged loss, gradient norm and learning rate, and every final weight, bitwise equal."""
    assert training_logs(resumed) == training_logs(reference)
    first, second = load_file(str(reference / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(first[k], second[k]) for k in first), max_weight_difference(reference, resumed)
