"""The Trainer's arguments with t5lab's defaults, additions and device policy.

Kept apart from :mod:`t5lab.config` because transformers' TrainingArguments imports torch: commands that do not
train (``--help``, ``tasks``, ``sweep``, ``runs``) parse their flags without paying for it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from functools import cached_property

import torch
from transformers import Seq2SeqTrainingArguments
from transformers.hf_argparser import string_to_bool

from t5lab.data.hub import is_offline
from t5lab.errors import ConfigError
from t5lab.help import TRAINER_GROUP

# Optimizers t5lab provides on top of the Trainer's own `--optim` choices.
EXTRA_OPTIMIZERS = ("adamwscale",)


def quiet_deepspeed_on_cpu() -> None:
    """DeepSpeed, which transformers imports when it is installed, would warn on every CPU run that it fell back
    to the CPU; called by the training commands before transformers' Trainer is imported."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def _require_cpu_compiler() -> None:
    """torch.compile on CPU builds C++ kernels: without a compiler inductor fails at the first step, with a long
    traceback, after the data is prepared. Asks torch's own compiler search, so $CXX is honoured as torch does."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:  # a torch that moved them: torch reports a missing compiler itself
        return
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise ConfigError(
            "--torch_compile on CPU needs a C++ compiler (g++ or clang++, or the one $CXX names) and none was "
            "found; install one, or train without --torch_compile."
        ) from None


def native_bf16() -> bool:
    """Whether this machine multiplies bf16 matrices in hardware: a CUDA GPU with bf16, or a CPU with AVX-512-BF16
    or AMX. Other CPUs emulate bf16, and there a bf16 step is about 9x slower than fp32 (docs/benchmarks.md,
    "Precision")."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # torch.cpu's checks are private, so a torch without them counts as no native bf16 (fp32 is never wrong)
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def bool_or_auto(value: str | bool) -> bool | str:
    """The values --bf16 takes: a boolean, spelled as for every other flag, or ``auto``.

    Used as the field's type, which HfArgumentParser hands to argparse as the value converter: a ``bool | str``
    annotation would be parsed as a plain boolean, which refuses ``auto``.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return string_to_bool(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected true, false or auto, got '{value}'") from None


@dataclass
class T5LabTrainingArguments(Seq2SeqTrainingArguments):
    """The Trainer's arguments with t5lab's defaults and a few additions."""

    given_flags = frozenset()  # not a field: set by t5lab.config.parse_arguments to the flags the user gave
    _argument_group_name = TRAINER_GROUP

    output_dir: str | None = field(default=None, metadata={"help": "Where the run writes everything (required)."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow starting a new run in an output dir that holds a different run."},
    )
    optim: str = field(
        default="adamw_torch",
        metadata={
            "help": "Any Trainer optimizer (adamw_torch, adamw_torch_fused, adafactor, sgd, ...: the Trainer's "
            "OptimizerNames) or 'adamwscale' (nanoT5's AdamW with RMS-scaled updates).",
            "metavar": "{adamw_torch,adafactor,...,adamwscale}",
        },
    )
    report_to: None | str | list[str] = field(
        default="tensorboard",
        metadata={"help": "Trackers, comma-separated: tensorboard (default, local), wandb, mlflow, trackio, none."},
    )
    eval_strategy: str | None = field(
        default=None,
        metadata={"help": "When to evaluate: no, steps or epoch (default: steps when --eval_steps is given, else no)."},
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_total_limit: int | None = field(default=3, metadata={"help": "Keep the last K checkpoints."})
    plot_loss: bool = field(default=True, metadata={"help": "Write loss_curve.png into the output dir."})
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "Under DDP, look for parameters without a gradient after every backward pass. Every T5 "
            "parameter gets one, so t5lab turns the search off; the Trainer's default turns it on and DDP warns "
            "on every rank that it found none."
        },
    )
    bf16: bool_or_auto = field(  # type: ignore[valid-type]  # the annotation is argparse's converter (above)
        default=False,
        metadata={
            "nargs": "?",
            "const": True,
            "metavar": "true|false|auto",
            "help": "bf16 mixed precision (autocast). auto: on where the hardware computes in bf16 (a CUDA GPU with "
            "bf16, a CPU with AVX-512-BF16 or AMX: 1.2-1.5x fp32 on an AVX-512-BF16 CPU), off elsewhere (CPUs "
            "without them emulate bf16, ~9x slower than fp32). The run's t5lab_config.yaml records the outcome.",
        },
    )
    on_nonfinite: str = field(
        default="stop",
        metadata={
            "metavar": "{stop,skip}",
            "help": "On a NaN/inf loss or gradient: stop (name the step and the last good checkpoint) or "
            "skip (drop that update, count it in the logs as nonfinite_skipped).",
        },
    )

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ConfigError("--output_dir is required.")
        self.bf16_auto = self.bf16 == "auto"
        if self.bf16_auto:
            self.bf16 = native_bf16()
        if self.on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"--on_nonfinite must be stop or skip, got '{self.on_nonfinite}'.")
        if self.push_to_hub and is_offline():
            # the Trainer would create the hub repository only once the data and model are ready, and fail there
            raise ConfigError(
                "--push_to_hub needs the Hugging Face hub, which is off here (HF_HUB_OFFLINE is set); unset it, or "
                "train without --push_to_hub and upload the output dir afterwards (hf upload ORG/NAME OUTPUT_DIR)."
            )
        if self.eval_strategy is None:  # --eval_steps alone means every N steps; an explicit "no" stays no
            self.eval_strategy = "steps" if self.eval_steps is not None else "no"
        self.t5lab_optim = self.optim
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns every epoch otherwise
            if self.torch_compile:
                _require_cpu_compiler()
            if self.bf16:
                self.use_cpu = True  # the Trainer accepts bf16 autocast on CPU only when told it is on CPU
            if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not self.deepspeed:
                if self.fsdp or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
                    # accelerate would quietly fall back to DDP on CPU processes
                    raise ConfigError(
                        "FSDP needs GPUs (accelerate runs it on accelerators only); on CPU use DDP or --deepspeed."
                    )
                # Without it, launched CPU processes each train alone: accelerate opens the process group but
                # neither wraps the model in DDP nor gathers the logged loss.
                self.use_cpu = True
        if self.optim in EXTRA_OPTIMIZERS:
            self.optim = "adamw_torch"  # the Trainer validates the name; the real optimizer is passed in later
        # Recorded as given (a shipped name or the user's path); the Trainer gets the checked config itself.
        self.t5lab_deepspeed = self.deepspeed if isinstance(self.deepspeed, str) else None
        if self.t5lab_deepspeed:
            from t5lab.launch.configs import load_deepspeed_config

            self.deepspeed = load_deepspeed_config(self.t5lab_deepspeed, self.t5lab_optim)
        if isinstance(self.report_to, str) and "," in self.report_to:
            self.report_to = [name.strip() for name in self.report_to.split(",") if name.strip()]
        super().__post_init__()

    @property
    def precision(self) -> str:
        """The training precision in words, for the run's first log line ("fp32", "bf16 autocast (--bf16 auto)")."""
        words = "bf16 autocast" if self.bf16 else "fp16 autocast" if self.fp16 else "fp32"
        return f"{words} (--bf16 auto)" if self.bf16_auto else words

    @cached_property
    def _setup_devices(self) -> torch.device:
        if self.deepspeed:
            from t5lab.launch.configs import start_deepspeed_on_cpu

            if start_deepspeed_on_cpu(self.ddp_backend or "gloo", self.ddp_timeout):
                self.accelerator_config.use_configured_state = True
        return super()._setup_devices


# the flags this class adds or whose default it changes: shown in their own --help group
T5LabTrainingArguments.t5lab_fields = frozenset(T5LabTrainingArguments.__annotations__)
