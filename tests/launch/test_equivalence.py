"""Scale-out gives the single-process result: DDP (accelerate launch, 2 CPU processes) x B, gradient
accumulation 2 x B, DeepSpeed ZeRO-2 (deepspeed launcher) and ZeRO-3 (torchrun) all match one process at
batch 2B, step by step; a ZeRO-3 run resumes from its checkpoint; ZeRO checkpoints export to plain HF models.

Same data order by construction: every launcher shards the same seeded permutation so that at each step the
two ranks' batches of B are the two halves of the single process's batch of 2B; span corruption is per row;
every row has the same number of target tokens, so the mean of the ranks' mean losses is the mean loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import T5ForConditionalGeneration

from t5lab.cli import main
from t5lab.launch.configs import launch_file

pytestmark = pytest.mark.slow
pytest.importorskip("deepspeed", reason="DeepSpeed is part of the test extra (pip install -e '.[test]')")

STEPS = 6
BATCH = 4
# fp32 on CPU: DDP and accumulation differ from one process only in summation order (~2e-7 relative here).
TOLERANCE = 2e-5
# DeepSpeed also reduces gradients in its own buckets and steps AdamW on flattened fp32 partitions: ~3e-5 after
# six steps at lr 3e-3 here, far below the loss's change from one step to the next (~1e-2 relative).
ZERO_TOLERANCE = 1e-4
BIN = os.path.dirname(sys.executable)


def _args(wikitext_file, wiki_tokenizer_dir, output_dir, *extra):
    # A constant learning rate lets a run stopped at step 4 resume into the same curve as an uninterrupted one.
    return [
        "pretrain",
        "--train_file",
        str(wikitext_file),
        "--tokenizer_name",
        str(wiki_tokenizer_dir),
        "--config_name",
        "t5-tiny",
        "--input_length",
        "64",
        "--report_to",
        "none",
        "--seed",
        "1",
        "--validation_split_percentage",
        "0",
        "--logging_steps",
        "1",
        "--learning_rate",
        "3e-3",
        "--lr_scheduler_type",
        "constant",
        "--output_dir",
        str(output_dir),
        *extra,
    ]


def _curve(output_dir):
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: (h["loss"], h["grad_norm"]) for h in history if "loss" in h}


def _max_relative_difference(curve, reference):
    assert curve.keys() <= reference.keys() and curve, (curve, reference)
    return max(abs(a - b) / abs(b) for step in curve for a, b in zip(curve[step], reference[step]))


def _launch(command, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory, wikitext_file, wiki_tokenizer_dir):
    """One process at batch 2B, saving a plain checkpoint at the end."""
    out = tmp_path_factory.mktemp("equivalence") / "one"
    assert (
        main(
            _args(
                wikitext_file,
                wiki_tokenizer_dir,
                out,
                "--max_steps",
                str(STEPS),
                "--save_steps",
                str(STEPS),
                "--per_device_train_batch_size",
                str(2 * BATCH),
            )
        )
        == 0
    )
    return out, _curve(out)


def test_ddp_and_gradient_accumulation_match_one_process(
    tmp_path, reference, wikitext_file, wiki_tokenizer_dir, free_port
):
    _, one = reference
    assert (
        main(
            _args(
                wikitext_file,
                wiki_tokenizer_dir,
                tmp_path / "ga",
                "--max_steps",
                str(STEPS),
                "--save_strategy",
                "no",
                "--per_device_train_batch_size",
                str(BATCH),
                "--gradient_accumulation_steps",
                "2",
            )
        )
        == 0
    )
    accelerate = [
        os.path.join(BIN, "accelerate"),
        "launch",
        "--config_file",
        str(launch_file("accelerate", "cpu_multi.yaml")),
        "--main_process_port",
        str(free_port),
        "-m",
        "t5lab",
    ]
    log = _launch(
        accelerate
        + _args(
            wikitext_file,
            wiki_tokenizer_dir,
            tmp_path / "ddp",
            "--max_steps",
            str(STEPS),
            "--save_strategy",
            "no",
            "--per_device_train_batch_size",
            str(BATCH),
        ),
        tmp_path,
    )
    assert "on 2 process(es)" in log
    ga, ddp = _curve(tmp_path / "ga"), _curve(tmp_path / "ddp")
    assert len(ga) == len(ddp) == STEPS
    differences = {
        "gradient accumulation": _max_relative_difference(ga, one),
        "DDP": _max_relative_difference(ddp, one),
    }
    print(f"max relative difference of loss and grad norm vs one process: {differences}")
    assert all(d < TOLERANCE for d in differences.values()), differences
    # The curve is a real one (the model learns), so matching it is not trivial.
    assert one[STEPS][0] < one[1][0] - 0.5


def test_zero2_and_zero3_match_one_process_resume_and_export(
    tmp_path, reference, wikitext_file, wiki_tokenizer_dir, free_port, torchrun
):
    one_dir, one = reference
    zero2, zero3 = tmp_path / "zero2", tmp_path / "zero3"
    # ZeRO-2 under DeepSpeed's own launcher, which passes --local_rank=N before t5lab's arguments.
    deepspeed = [
        os.path.join(BIN, "deepspeed"),
        "--num_gpus",
        "2",
        "--master_port",
        str(free_port),
        "--module",
        "t5lab",
    ]
    log = _launch(
        deepspeed
        + _args(
            wikitext_file,
            wiki_tokenizer_dir,
            zero2,
            "--deepspeed",
            "zero2",
            "--max_steps",
            str(STEPS),
            "--save_steps",
            str(STEPS),
            "--per_device_train_batch_size",
            str(BATCH),
        ),
        tmp_path,
    )
    assert "on 2 process(es)" in log
    # ZeRO-3 under torchrun, stopped at step 4, then resumed by rerunning the command with more steps.
    zero3_args = ["--deepspeed", "zero3", "--save_steps", "2", "--per_device_train_batch_size", str(BATCH)]
    _launch(
        torchrun + _args(wikitext_file, wiki_tokenizer_dir, zero3, "--max_steps", "4", *zero3_args),
        tmp_path,
    )
    assert (zero3 / "checkpoint-4" / "global_step4").is_dir()
    log = _launch(
        torchrun + _args(wikitext_file, wiki_tokenizer_dir, zero3, "--max_steps", str(STEPS), *zero3_args),
        tmp_path,
    )
    assert "resuming from" in log and "checkpoint-4" in log
    curves = {"ZeRO-2": _curve(zero2), "ZeRO-3 (resumed at step 4)": _curve(zero3)}
    assert sorted(curves["ZeRO-2"]) == sorted(curves["ZeRO-3 (resumed at step 4)"]) == list(range(1, STEPS + 1))
    differences = {name: _max_relative_difference(curve, one) for name, curve in curves.items()}
    print(f"max relative difference of loss and grad norm vs one process: {differences}")
    assert all(d < ZERO_TOLERANCE for d in differences.values()), differences

    # Export: ZeRO shards merged by DeepSpeed's zero_to_fp32 equal the model the engine saved; a plain
    # checkpoint is copied as it is.
    for run in (zero2, zero3, one_dir):
        exported = tmp_path / f"export-{run.name}"
        assert main(["export", str(run / f"checkpoint-{STEPS}"), str(exported)]) == 0
        assert (exported / "tokenizer.json").is_file()
        weights = T5ForConditionalGeneration.from_pretrained(exported).state_dict()
        engine = T5ForConditionalGeneration.from_pretrained(run).state_dict()
        assert weights.keys() == engine.keys() and all(torch.equal(weights[k], engine[k]) for k in engine), run.name
    model = T5ForConditionalGeneration.from_pretrained(tmp_path / "export-zero3")
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()


def test_zero3_with_cpu_offload_matches_one_process(tmp_path, reference, wikitext_file, wiki_tokenizer_dir, torchrun):
    # Parameters and optimizer state on the host, stepped by DeepSpeed's CPU AdamW (a C++ op built on first use).
    _, one = reference
    out = tmp_path / "zero3_offload"
    log = _launch(
        torchrun
        + _args(
            wikitext_file,
            wiki_tokenizer_dir,
            out,
            "--deepspeed",
            "zero3_offload",
            "--max_steps",
            str(STEPS),
            "--save_strategy",
            "no",
            "--per_device_train_batch_size",
            str(BATCH),
        ),
        tmp_path,
    )
    assert "on 2 process(es)" in log
    assert json.loads((out / "run_info.json").read_text())["config"]["deepspeed"] == "zero3_offload"
    curve = _curve(out)
    assert sorted(curve) == list(range(1, STEPS + 1))
    difference = _max_relative_difference(curve, one)
    print(f"ZeRO-3 + CPU offload: max relative difference of loss and grad norm vs one process: {difference}")
    assert difference < ZERO_TOLERANCE
