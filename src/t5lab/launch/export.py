"""``t5lab export CHECKPOINT OUTDIR``: a checkpoint (ZeRO-sharded or not) as a plain Hugging Face model.

A DeepSpeed ZeRO checkpoint holds each process's shard of the fp32 master weights (``global_step*/``);
DeepSpeed's own ``zero_to_fp32`` merges them. Any other checkpoint already holds the model, which is
loaded and saved again. Either way OUTDIR gets safetensors, config, generation config and tokenizer files
that ``T5ForConditionalGeneration.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from t5lab.errors import UserArgumentParser, UserError
from t5lab.models.presets import new_model

# Files a checkpoint carries besides the weights that a standalone model needs.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spiece.model",
    "added_tokens.json",
)


def is_zero_checkpoint(checkpoint: Path) -> bool:
    """True when ``checkpoint`` holds DeepSpeed ZeRO shards (a ``latest`` tag file and ``global_step*`` dirs)."""
    return (checkpoint / "latest").is_file() and any(checkpoint.glob("global_step*"))


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path) -> str:
    """Write the model of ``checkpoint`` to ``output_dir`` as a plain HF model; returns how it was read."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    checkpoint, output_dir = Path(checkpoint), Path(output_dir)
    if not (checkpoint / "config.json").is_file():
        raise UserError(f"{checkpoint} is not a model checkpoint (no config.json).")
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise UserError(f"{output_dir} exists and is not empty; export writes into a new or empty folder.")
    if is_zero_checkpoint(checkpoint):
        try:
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
        except ImportError:
            raise UserError(
                "this is a DeepSpeed ZeRO checkpoint: install deepspeed (pip install 't5lab[deepspeed]')."
            ) from None
        state_dict = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint))
        # new_model keeps a T5 v1.1 output layer untied, as the run built it (transformers 5 would tie it).
        model = new_model(AutoConfig.from_pretrained(checkpoint))
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        tied = set(model.all_tied_weights_keys) if hasattr(model, "all_tied_weights_keys") else set()
        if unexpected or set(missing) - tied:
            raise UserError(
                f"the ZeRO checkpoint does not match its config.json: missing {sorted(set(missing) - tied)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}."
            )
        model.tie_weights()
        source = "DeepSpeed ZeRO shards (fp32 master weights)"
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint)
        source = "the checkpoint's model weights"
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    for name in _TOKENIZER_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, output_dir / name)
    return source


def export_command(argv: Sequence[str]) -> int:
    """``t5lab export CHECKPOINT OUTDIR``."""
    parser = UserArgumentParser(
        prog="t5lab export", description="Write a checkpoint (DeepSpeed ZeRO or plain) as a plain Hugging Face model."
    )
    parser.add_argument("checkpoint", help="a checkpoint folder (e.g. runs/x/checkpoint-2000) or a run's output dir")
    parser.add_argument("output_dir", help="a new or empty folder for the model")
    args = parser.parse_args(list(argv))
    source = export_checkpoint(args.checkpoint, args.output_dir)
    print(f"Exported {args.checkpoint} ({source}) to {args.output_dir}")
    return 0
