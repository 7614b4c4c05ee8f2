"""The shipped launcher configs: DeepSpeed JSONs by name with "auto" values filled from our flags, optimizer
flags honoured or refused, one-line errors; accelerate YAMLs that accelerate loads; FSDP wraps a real T5 class."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from transformers.models.t5 import modeling_t5

from t5lab.cli import main
from t5lab.config import DataArguments, ModelArguments, parse_arguments
from t5lab.errors import ConfigError
from t5lab.launch.configs import DEEPSPEED_CONFIGS, launch_file
from t5lab.training.arguments import T5LabTrainingArguments
from t5lab.training.run_dir import effective_config

pytest.importorskip("deepspeed", reason="DeepSpeed is part of the test extra (pip install -e '.[test]')")
TYPES = (ModelArguments, DataArguments, T5LabTrainingArguments)


def _parse(tmp_path, *flags):
    return parse_arguments(TYPES, ["--output_dir", str(tmp_path / "run"), *flags], "t5lab pretrain", "")


@pytest.mark.parametrize("name", DEEPSPEED_CONFIGS)
def test_shipped_deepspeed_configs_are_json_with_auto_values(name):
    config = json.loads(launch_file("deepspeed", f"{name}.json").read_text())
    assert config["bf16"]["enabled"] == "auto"
    for key in (
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
        "train_batch_size",
    ):
        assert config[key] == "auto", key
    assert config["zero_optimization"]["stage"] == (2 if name == "zero2" else 3)
    assert "scheduler" not in config  # the Trainer's --lr_scheduler_type always applies


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
def test_the_trainer_fills_the_auto_values_from_our_flags(tmp_path, name):
    (_, _, args) = _parse(
        tmp_path,
        "--deepspeed",
        name,
        "--bf16",
        "--per_device_train_batch_size",
        "3",
        "--gradient_accumulation_steps",
        "2",
        "--max_grad_norm",
        "0.5",
        "--learning_rate",
        "7e-4",
        "--adam_beta2",
        "0.98",
        "--weight_decay",
        "0.01",
    )
    filled = args.hf_deepspeed_config.config
    assert filled["bf16"]["enabled"] is True and filled["fp16"]["enabled"] is False
    assert (
        filled["train_micro_batch_size_per_gpu"],
        filled["gradient_accumulation_steps"],
        filled["gradient_clipping"],
    ) == (3, 2, 0.5)
    if name == "zero3_offload":  # DeepSpeed's CPU AdamW, with our hyperparameters
        assert filled["optimizer"]["params"] == {"lr": 7e-4, "betas": [0.9, 0.98], "eps": 1e-8, "weight_decay": 0.01}
    else:  # no optimizer section: the Trainer builds --optim (adamw_torch, adamwscale, adafactor, ...) itself
        assert "optimizer" not in filled
    # The run records the name, not the expanded dict or a path inside the installed package.
    assert effective_config((args,))["deepspeed"] == name


def test_an_optimizer_the_config_would_replace_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="defines its own optimizer"):
        _parse(tmp_path, "--deepspeed", "zero3_offload", "--optim", "adafactor")
    assert (
        main(["pretrain", "--output_dir", str(tmp_path / "x"), "--deepspeed", "zero3_offload", "--optim", "adamwscale"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(
        "t5lab pretrain: error: --deepspeed zero3_offload defines its own optimizer"
    )
    assert not (tmp_path / "x").exists()


def test_user_files_and_bad_values(tmp_path, monkeypatch):
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 1}, "train_micro_batch_size_per_gpu": "auto"}))
    (_, _, args) = _parse(tmp_path, "--deepspeed", str(own), "--per_device_train_batch_size", "5")
    assert args.hf_deepspeed_config.config["train_micro_batch_size_per_gpu"] == 5
    with pytest.raises(ConfigError, match="no such file; give a JSON file or one of zero2, zero3"):
        _parse(tmp_path, "--deepspeed", "zero4")
    broken = tmp_path / "broken.json"
    broken.write_text('{"zero_optimization": {"stage": 2,}}')
    with pytest.raises(ConfigError, match=r"broken.json is not valid JSON \(line 1"):
        _parse(tmp_path, "--deepspeed", str(broken))
    monkeypatch.delenv("T5LAB_NVME_PATH", raising=False)
    with pytest.raises(ConfigError, match="set T5LAB_NVME_PATH"):
        _parse(tmp_path, "--deepspeed", "zero3_nvme")
    monkeypatch.setenv("T5LAB_NVME_PATH", str(tmp_path / "nvme"))
    from deepspeed.ops.op_builder import AsyncIOBuilder

    if not AsyncIOBuilder().is_compatible(verbose=False):  # no libaio: refused before DeepSpeed fails in its engine
        with pytest.raises(ConfigError, match="needs DeepSpeed's async_io op.*apt install libaio-dev"):
            _parse(tmp_path, "--deepspeed", "zero3_nvme")
        return
    (_, _, args) = _parse(tmp_path, "--deepspeed", "zero3_nvme")
    offload = args.hf_deepspeed_config.config["zero_optimization"]
    assert offload["offload_param"]["nvme_path"] == offload["offload_optimizer"]["nvme_path"] == str(tmp_path / "nvme")


def test_accelerate_configs_load_and_fsdp_wraps_t5_blocks():
    folder = launch_file("accelerate")
    names = sorted(path.stem for path in folder.glob("*.yaml"))
    assert names == [
        "cpu",
        "cpu_multi",
        "deepspeed_zero2",
        "deepspeed_zero3",
        "deepspeed_zero3_offload",
        "fsdp",
        "gpu",
        "multi_gpu",
    ]
    types = {name: str(load_config_from_file(str(folder / f"{name}.yaml")).distributed_type) for name in names}
    assert types["cpu_multi"] == "DistributedType.MULTI_GPU"  # a CPU-only config would start one process
    assert types["fsdp"] == "DistributedType.FSDP" and types["deepspeed_zero3"] == "DistributedType.DEEPSPEED"
    fsdp = yaml.safe_load((folder / "fsdp.yaml").read_text())["fsdp_config"]
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    block = getattr(modeling_t5, fsdp["fsdp_transformer_layer_cls_to_wrap"])
    assert block.__name__ == "T5Block" and "T5Block" in modeling_t5.T5PreTrainedModel._no_split_modules


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_fsdp_on_cpu_processes_is_refused_rather_than_run_as_ddp(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="FSDP needs GPUs"):
        _parse(tmp_path)
