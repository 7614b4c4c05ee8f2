"""The launcher configs shipped with t5lab: DeepSpeed JSONs by name (accelerate YAMLs sit beside them).

``--deepspeed zero2|zero3|zero3_offload|zero3_nvme`` names a JSON in ``launch/deepspeed/``; any other value
is a path to the user's own JSON. The configs leave every value the Trainer knows as ``"auto"`` (batch sizes,
accumulation, clipping, precision, bucket sizes), so the command-line flags stay the single source of truth.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from t5lab.errors import ConfigError

DEEPSPEED_CONFIGS = ("zero2", "zero3", "zero3_offload", "zero3_nvme")
# Trainer optimizers that a DeepSpeed "optimizer" section (AdamW, filled from --learning_rate, --adam_beta1/2,
# --adam_epsilon and --weight_decay) implements faithfully; any other --optim would be silently replaced.
_ADAMW_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_torch_npu_fused", "adamw_apex_fused")
NVME_PATH_VARIABLE = "T5LAB_NVME_PATH"


def launch_file(*parts: str) -> Path:
    """Path of a file shipped under ``t5lab/launch`` (works from a checkout and from an installed wheel)."""
    return Path(str(resources.files("t5lab").joinpath("launch", *parts)))


def _fill_nvme_paths(node: Any, name: str) -> None:
    """Replace ``"nvme_path": "auto"`` with $T5LAB_NVME_PATH: the drive is the machine's, not the config's."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "nvme_path" and value == "auto":
            path = os.environ.get(NVME_PATH_VARIABLE)
            if not path:
                raise ConfigError(
                    f"--deepspeed {name} offloads to NVMe: set {NVME_PATH_VARIABLE} to a folder on a local NVMe drive."
                )
            node[key] = path
        else:
            _fill_nvme_paths(value, name)


def _offloads_to_nvme(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("device") == "nvme" or any(_offloads_to_nvme(value) for value in node.values())
    return False


def _require_async_io(name: str) -> None:
    """NVMe offload needs DeepSpeed's async_io op (libaio); without it DeepSpeed fails deep inside its engine."""
    try:
        from deepspeed.ops.op_builder import AsyncIOBuilder
    except ImportError:
        raise ConfigError(f"--deepspeed {name} needs DeepSpeed: pip install deepspeed.") from None
    if not AsyncIOBuilder().is_compatible(verbose=False):
        raise ConfigError(
            f"--deepspeed {name} offloads to NVMe, which needs DeepSpeed's async_io op, and it cannot be built here: "
            "install libaio (apt install libaio-dev, or conda install libaio) and retry, "
            "or use --deepspeed zero3_offload."
        )


def load_deepspeed_config(value: str, optim: str) -> dict[str, Any]:
    """The DeepSpeed config for ``--deepspeed VALUE`` (a shipped name, a JSON file or inline JSON), checked.

    Raises :class:`ConfigError` for a missing or malformed file, and when the config defines its own optimizer
    while ``--optim`` asks for another one (DeepSpeed would silently use its own).
    """
    if value in DEEPSPEED_CONFIGS:
        source, text = value, launch_file("deepspeed", f"{value}.json").read_text(encoding="utf-8")
    elif value.lstrip().startswith("{"):
        source, text = "the inline --deepspeed JSON", value
    else:
        path = Path(value)
        if not path.is_file():
            raise ConfigError(
                f"--deepspeed {value}: no such file; give a JSON file or one of {', '.join(DEEPSPEED_CONFIGS)}."
            )
        source, text = str(path), path.read_text(encoding="utf-8")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--deepspeed: {source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"--deepspeed: {source} must hold a JSON object.")
    if "optimizer" in config and optim not in _ADAMW_OPTIMIZERS:
        raise ConfigError(
            f"--deepspeed {value} defines its own optimizer ({config['optimizer'].get('type', '?')}), "
            "which would replace "
            f'--optim {optim}; use --optim adamw_torch with it, or a config without an "optimizer" section.'
        )
    _fill_nvme_paths(config, value)
    if _offloads_to_nvme(config):
        _require_async_io(value)
    return config


def start_deepspeed_on_cpu(backend: str, timeout_seconds: float) -> bool:
    """On a machine without an accelerator, start DeepSpeed's process group itself; True if it did.

    Accelerate finds no communication backend for DeepSpeed when there is no GPU and would run each launched
    process as a world of one. With the state set up here (DeepSpeed's comm on ``backend``, e.g. gloo) the
    Trainer's ``use_configured_state`` picks up the real world size.
    """
    import torch
    from accelerate import PartialState

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    try:
        PartialState(backend=backend, timeout=timedelta(seconds=timeout_seconds))
    finally:
        del os.environ["ACCELERATE_USE_DEEPSPEED"]
    return True
