"""`t5lab slurm`: the sbatch scripts are valid bash with no site settings, and under a fake SLURM (srun,
scontrol on PATH; no controller here) every task gets the rank, world size and rendezvous address torchrun
would give it, the log folder exists, and a run that exits 75 (preempted) queues the job again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from t5lab.cli import main
from t5lab.errors import PREEMPTED_EXIT_CODE
from t5lab.launch.sbatch import render_sbatch

# srun: run the command once per task, with the variables SLURM sets for it (2 nodes here).
FAKE_SRUN = """#!/bin/bash
[[ "$1" == --label ]] && shift
status=0
for ((task = 0; task < SLURM_NTASKS; task++)); do
  SLURM_PROCID=$task SLURM_LOCALID=$((task % SLURM_NTASKS_PER_NODE)) \
SLURM_NODEID=$((task / SLURM_NTASKS_PER_NODE)) "$@" || status=$?
done
exit $status
"""
FAKE_SCONTROL = """#!/bin/bash
if [[ "$1 $2" == "show hostnames" ]]; then printf 'gpu-a17\\ngpu-a18\\n'; else echo "$@" >> "$FAKE_LOG/scontrol"; fi
"""
# python: record what each task would start, and exit with the code the test asks for.
FAKE_PYTHON = """#!/bin/bash
echo "RANK=$RANK LOCAL_RANK=$LOCAL_RANK WORLD_SIZE=$WORLD_SIZE LOCAL_WORLD_SIZE=$LOCAL_WORLD_SIZE \
MASTER=$MASTER_ADDR:$MASTER_PORT CUDA=${CUDA_VISIBLE_DEVICES-} ARGS=$*" >> "$FAKE_LOG/tasks"
exit "${FAKE_EXIT:-0}"
"""


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL), ("python", FAKE_PYTHON)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_LOG": str(tmp_path),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu-a[17-18]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NNODES": "2",
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "2",
    }

    def run(script: str, **extra: str) -> subprocess.CompletedProcess:
        path = tmp_path / "job.sbatch"
        path.write_text(script)
        return subprocess.run(
            ["bash", str(path)], env={**env, **extra}, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    return run


def test_scripts_are_valid_bash_with_no_site_settings(tmp_path):
    for command, args in (
        ("pretrain", ["--config", "my run.yaml"]),
        ("finetune", ["--task", "glue/rte"]),
        ("sweep", ["sweeps/glue_rte.yaml", "--storage", "sqlite:////shared/o.db"]),
    ):
        script = render_sbatch(command, args, nodes=4, gpus_per_node=8, partition="gpu")
        path = tmp_path / f"{command}.sbatch"
        path.write_text(script)
        subprocess.run(["bash", "-n", str(path)], check=True)
        assert (
            "#SBATCH --nodes=4" in script
            and "#SBATCH --ntasks-per-node=8" in script
            and "#SBATCH --gpus-per-node=8" in script
        )
        assert "#SBATCH --requeue" in script and "#SBATCH --partition=gpu" in script
        assert "#SBATCH --account" not in script and "#SBATCH --nodelist" not in script
    assert "#SBATCH --signal=USR1@300" in render_sbatch("pretrain", [], 1, 1)
    assert "#SBATCH --partition" not in render_sbatch("pretrain", [], 1, 1)


def test_tasks_get_ranks_world_size_and_the_first_node_as_rendezvous(tmp_path, fake_slurm):
    result = fake_slurm(
        render_sbatch(
            "pretrain",
            ["--config", "my run.yaml", "--deepspeed", "zero2"],
            nodes=2,
            gpus_per_node=2,
            log_dir="logs/slurm",
        )
    )
    assert result.returncode == 0, result.stderr
    assert "2 node(s) x 2 process(es), rendezvous gpu-a17:24242" in result.stdout
    tasks = (tmp_path / "tasks").read_text().splitlines()
    assert tasks == [
        f"RANK={rank} LOCAL_RANK={rank % 2} WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 MASTER=gpu-a17:24242 CUDA= "
        "ARGS=-m t5lab pretrain --config my run.yaml --deepspeed zero2"
        for rank in range(4)
    ]
    assert (tmp_path / "logs" / "slurm").is_dir() and not (tmp_path / "scontrol").exists()


def test_a_preempted_run_is_requeued_and_a_failed_one_is_not(tmp_path, fake_slurm):
    script = render_sbatch("finetune", ["--task", "glue/rte"], nodes=2, gpus_per_node=2)
    preempted = fake_slurm(script, FAKE_EXIT=str(PREEMPTED_EXIT_CODE))
    assert preempted.returncode == PREEMPTED_EXIT_CODE
    assert (tmp_path / "scontrol").read_text().split() == ["requeue", "4242"]
    (tmp_path / "scontrol").unlink()
    failed = fake_slurm(script, FAKE_EXIT="1")
    assert failed.returncode == 1 and not (tmp_path / "scontrol").exists()


def test_sweep_workers_get_one_gpu_each_and_no_ranks(tmp_path, fake_slurm):
    result = fake_slurm(
        render_sbatch("sweep", ["s.yaml", "--storage", "postgresql://db/optuna"], nodes=2, gpus_per_node=2)
    )
    assert result.returncode == 0, result.stderr
    tasks = (tmp_path / "tasks").read_text().splitlines()
    assert [t.split(" CUDA=")[1].split()[0] for t in tasks] == ["0", "1", "0", "1"]
    assert all(
        "RANK= " in t
        and "WORLD_SIZE= " in t
        and t.endswith("ARGS=-m t5lab sweep s.yaml --storage postgresql://db/optuna")
        for t in tasks
    )
    assert "#SBATCH --signal=TERM@" in render_sbatch("sweep", ["s.yaml"], 1, 1)


def test_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "slurm",
                "pretrain",
                "--nodes",
                "2",
                "--gpus_per_node",
                "8",
                "--output",
                "job.sbatch",
                "--log_dir",
                "logs/a",
                "--",
                "--config",
                "c.yaml",
            ]
        )
        == 0
    )
    assert Path("job.sbatch").read_text().count("T5LAB_ARGS=(pretrain --config c.yaml)") == 1
    assert Path("logs/a").is_dir() and os.access("job.sbatch", os.X_OK)
    before = Path("job.sbatch").read_text()
    capsys.readouterr()
    for argv, message in (
        (["slurm", "pretrain", "--nodes", "1", "--gpus_per_node", "1", "--output", "job.sbatch"], "job.sbatch exists"),
        (["slurm", "sweep", "--nodes", "2", "--gpus_per_node", "4", "--", "s.yaml"], "needs --storage URL"),
        (["slurm", "pretrain", "--nodes", "0", "--gpus_per_node", "1"], "--nodes"),
        (["slurm", "pretrain", "--nodes", "1", "--gpus_per_node", "1", "--time", "1 day"], "not a SLURM time"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("t5lab slurm: error:") and message in err and "\n" not in err
    assert Path("job.sbatch").read_text() == before
