"""The SLURM job-array template: shipped with the package, no site-specific account, and it really starts a
sweep worker (or a W&B agent) when srun runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import optuna
import pytest
import yaml

import t5lab

TEMPLATE = resources.files("t5lab") / "launch" / "slurm" / "sweep_array.sbatch"
FAKE_PROGRAM = Path(__file__).with_name("fake_train.py")


def _shim(folder, name, body):
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_template_has_array_directives_and_no_site_settings():
    text = TEMPLATE.read_text()
    assert "#SBATCH --array=" in text and "#SBATCH --signal=TERM@" in text
    assert "#SBATCH --account" not in text and "#SBATCH --partition" not in text
    subprocess.run(["bash", "-n", str(TEMPLATE)], check=True)


@pytest.fixture
def fake_cluster(tmp_path):
    """srun that just runs its command, t5lab as this Python's module, and wandb that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _shim(bin_dir, "srun", 'exec "$@"')
    package_root = Path(t5lab.__file__).resolve().parents[1]  # installed or not
    _shim(bin_dir, "t5lab", f'PYTHONPATH="{package_root}" exec "{sys.executable}" -m t5lab "$@"')
    _shim(bin_dir, "wandb", f'echo "$@" > "{tmp_path / "wandb-args"}"')
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_an_array_task_runs_a_worker_against_the_shared_storage(tmp_path, fake_cluster):
    sweep_file = tmp_path / "fake.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "name": "fake",
                "program": str(FAKE_PROGRAM),
                "method": "random",
                "metric": {"name": "eval/score", "goal": "maximize"},
                "parameters": {"x": {"values": [0.1, 0.2, 0.3]}},
            }
        )
    )
    storage = f"sqlite:///{tmp_path / 'shared' / 'optuna.db'}"
    env = {
        **fake_cluster,
        "SWEEP_FILE": str(sweep_file),
        "SWEEP_STORAGE": storage,
        "SWEEP_TRIALS": "2",
        "SWEEP_OUTPUT_DIR": str(tmp_path / "runs"),
    }
    result = subprocess.run(["bash", str(TEMPLATE)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="fake", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert (tmp_path / "runs" / "fake" / "trial-0001" / "eval_results.json").is_file()


def test_an_array_task_runs_a_wandb_agent_for_a_wandb_sweep(tmp_path, fake_cluster):
    env = {**fake_cluster, "WANDB_SWEEP": "me/glue/abc123", "WANDB_COUNT": "5"}
    subprocess.run(["bash", str(TEMPLATE)], env=env, cwd=tmp_path, check=True, timeout=60)
    assert (tmp_path / "wandb-args").read_text().split() == ["agent", "--count", "5", "me/glue/abc123"]


def test_missing_settings_are_named(tmp_path, fake_cluster):
    result = subprocess.run(["bash", str(TEMPLATE)], env=fake_cluster, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "set SWEEP_FILE" in result.stderr
