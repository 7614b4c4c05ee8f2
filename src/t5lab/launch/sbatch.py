"""``t5lab slurm pretrain|finetune|sweep ... -- ARGS``: an sbatch script for N nodes x G GPUs.

The script (from ``launch/slurm/job.sbatch``) holds no account, partition or node names; it takes the
rendezvous address from the allocation, starts one task per GPU with srun, creates its log folder and queues
the job again when t5lab exits with :data:`~t5lab.errors.PREEMPTED_EXIT_CODE`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from t5lab.errors import PREEMPTED_EXIT_CODE, UserArgumentParser, UserError
from t5lab.launch.configs import launch_file

SLURM_COMMANDS = ("pretrain", "finetune", "sweep")
# Training tasks get the variables torchrun would set; sweep workers are independent jobs on one GPU each.
_TRAINING_TASK_ENV = (
    "export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS "
    "LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE; "
)
_SWEEP_TASK_ENV = "export CUDA_VISIBLE_DEVICES=$SLURM_LOCALID; "


def render_sbatch(
    command: str,
    t5lab_args: Sequence[str],
    nodes: int,
    gpus_per_node: int,
    time: str = "24:00:00",
    partition: str | None = None,
    cpus_per_task: int = 8,
    job_name: str | None = None,
    log_dir: str = "logs/slurm",
    signal_seconds: int = 300,
) -> str:
    """The sbatch script that runs ``t5lab COMMAND ARGS`` on ``nodes`` x ``gpus_per_node`` GPUs
    (0: one CPU task per node)."""
    if command not in SLURM_COMMANDS:
        raise UserError(f"unknown command '{command}'; choose one of {', '.join(SLURM_COMMANDS)}.")
    if nodes < 1 or gpus_per_node < 0 or cpus_per_task < 1 or signal_seconds < 1:
        raise UserError("--nodes, --cpus_per_task and --signal_seconds must be at least 1, --gpus_per_node at least 0.")
    if not re.fullmatch(r"(\d+-)?\d+(:\d{1,2}){0,2}", time):
        raise UserError(f"--time '{time}' is not a SLURM time (MINUTES, HH:MM:SS or DAYS-HH:MM:SS).")
    if (
        command == "sweep"
        and nodes * max(gpus_per_node, 1) > 1
        and not any(a.startswith("--storage") for a in t5lab_args)
    ):
        raise UserError(
            "a sweep on several workers needs --storage URL (a database every node reaches) in its arguments."
        )
    values = {
        "COMMAND": command,
        "NODES": str(nodes),
        "TASKS_PER_NODE": str(max(gpus_per_node, 1)),
        "GPU_DIRECTIVE": f"#SBATCH --gpus-per-node={gpus_per_node}\n" if gpus_per_node else "",
        "CPUS_PER_TASK": str(cpus_per_task),
        "TIME": time,
        "EXTRA_DIRECTIVES": f"#SBATCH --partition={partition}\n" if partition else "",
        "JOB_NAME": job_name or f"t5lab-{command}",
        "LOG_DIR": shlex.quote(log_dir),
        # Sweeps stop their trials on SIGTERM (see t5lab.sweeps.runner); training checkpoints on USR1.
        "SIGNAL": "TERM" if command == "sweep" else "USR1",
        "SIGNAL_SECONDS": str(signal_seconds),
        "PREEMPTED": str(PREEMPTED_EXIT_CODE),
        "TASK_ENV": _SWEEP_TASK_ENV
        if command == "sweep" and gpus_per_node
        else ""
        if command == "sweep"
        else _TRAINING_TASK_ENV,
        "ARGS": " ".join(shlex.quote(a) for a in [command, *t5lab_args]),
    }
    text = launch_file("slurm", "job.sbatch").read_text(encoding="utf-8")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def slurm_command(argv: Sequence[str]) -> int:
    """``t5lab slurm COMMAND [options] -- T5LAB_ARGS``: print or write the sbatch script."""
    argv = list(argv)
    t5lab_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = UserArgumentParser(
        prog="t5lab slurm",
        description="Write an sbatch script that runs a t5lab command on N nodes x G GPUs.",
        epilog="example: t5lab slurm pretrain --nodes 2 --gpus_per_node 8 --output pretrain.sbatch -- "
        "--config configs/t5-base-nanot5.yaml --output_dir runs/base --deepspeed zero2",
    )
    parser.add_argument("command", choices=SLURM_COMMANDS)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus_per_node", type=int, required=True, help="GPUs per node (0 for CPU-only nodes)")
    parser.add_argument("--time", default="24:00:00", help="time limit (default 24:00:00)")
    parser.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    parser.add_argument("--cpus_per_task", type=int, default=8)
    parser.add_argument("--job_name")
    parser.add_argument("--log_dir", default="logs/slurm", help="where SLURM writes the job's output (created)")
    parser.add_argument(
        "--signal_seconds",
        type=int,
        default=300,
        help="seconds before the time limit at which the run is told to checkpoint and stop",
    )
    parser.add_argument("--output", help="write the script here (default: stdout)")
    args = parser.parse_args(own)
    script = render_sbatch(
        args.command,
        t5lab_args,
        args.nodes,
        args.gpus_per_node,
        args.time,
        args.partition,
        args.cpus_per_task,
        args.job_name,
        args.log_dir,
        args.signal_seconds,
    )
    if args.output:
        output = Path(args.output)
        if output.exists():
            raise UserError(f"{output} exists; choose another --output or remove it.")
        output.write_text(script, encoding="utf-8")
        output.chmod(0o755)
        # SLURM opens the --output file before the script runs, so its folder must exist at submission.
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        print(f"Wrote {output}; submit it with: sbatch {output}")
    else:
        print(script, end="")
    return 0
