"""``t5lab generate``: what a model does with your text, without writing code.

A pre-trained model fills the spans marked ``<extra_id_N>``; a fine-tuned model answers its task's inputs
("sst2 sentence: ..."). Texts come from the command line or, one per line, from standard input.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from t5lab.errors import ConfigError

_SENTINEL = re.compile(r"<extra_id_(\d+)>")


@dataclass
class GenerateArguments:
    """Flags of ``t5lab generate`` (the names of transformers' GenerationConfig)."""

    model_name_or_path: str = field(metadata={"help": "A model directory (a run's output dir or a checkpoint)."})
    texts: list[str] = field(default_factory=list, metadata={"help": "Input texts (default: lines of stdin)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Most tokens generated per text."})
    num_beams: int = field(default=1, metadata={"help": "Beam search width (1: greedy or sampling)."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy/beam search."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (with --do_sample)."})
    top_k: int = field(default=50, metadata={"help": "Sample among the k most likely tokens (with --do_sample)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (with --do_sample)."})
    num_return_sequences: int = field(default=1, metadata={"help": "Outputs per text (<= beams, or sampled)."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampling."})
    batch_size: int = field(default=16, metadata={"help": "Texts per forward pass."})

    def __post_init__(self) -> None:
        folder = Path(self.model_name_or_path)
        if folder.exists() and not (folder / "config.json").is_file():
            raise ConfigError(f"{folder} is not a model directory (no config.json); give a run's output dir.")
        for name in ("max_new_tokens", "num_beams", "top_k", "num_return_sequences", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ConfigError("--temperature must be > 0 and --top_p in (0, 1].")
        if not self.do_sample and self.num_return_sequences > self.num_beams:
            raise ConfigError(
                f"--num_return_sequences {self.num_return_sequences} needs --num_beams at least as large, "
                "or --do_sample."
            )


def fill_spans(text: str, generated: str) -> str:
    """Put each span the model generated after ``<extra_id_N>`` back at that sentinel in ``text``."""
    parts = _SENTINEL.split(generated)
    fills = {int(parts[i]): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    return _SENTINEL.sub(lambda m: f"[{fills.get(int(m.group(1)), '')}]", text)


def generate(args: GenerateArguments, texts: Sequence[str]) -> list[list[str]]:
    """The model's outputs (``num_return_sequences`` per text), sentinels kept, padding and EOS removed."""
    import torch
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    from t5lab.data.tokenizer import load_tokenizer
    from t5lab.models.presets import build_model

    hf_logging.disable_progress_bar()  # the weight-loading bar would sit between the user and the answers
    tokenizer = load_tokenizer(args.model_name_or_path)
    model = build_model(tokenizer, args.model_name_or_path).eval()
    set_seed(args.seed)
    outputs: list[list[str]] = []
    for start in range(0, len(texts), args.batch_size):
        batch = tokenizer(list(texts[start : start + args.batch_size]), return_tensors="pt", padding=True)
        with torch.no_grad():
            generated = model.generate(
                **batch,
                max_new_tokens=args.max_new_tokens,
                num_beams=args.num_beams,
                do_sample=args.do_sample,
                temperature=args.temperature if args.do_sample else None,
                top_k=args.top_k if args.do_sample else None,
                top_p=args.top_p if args.do_sample else None,
                num_return_sequences=args.num_return_sequences,
            )
        decoded = [
            tokenizer.decode([i for i in row if i not in (tokenizer.pad_token_id, tokenizer.eos_token_id)])
            for row in generated.tolist()
        ]
        n = args.num_return_sequences
        outputs += [decoded[i : i + n] for i in range(0, len(decoded), n)]
    return outputs


def generate_command(argv: Sequence[str]) -> int:
    """``t5lab generate MODEL_DIR [TEXT ...]``: print each text's output(s); span fills are put back in place."""
    from t5lab.config import ArgumentParser

    parser = ArgumentParser(
        [GenerateArguments],
        prog="t5lab generate",
        description="Generate with a model: fill <extra_id_N> spans (pre-trained) or answer task inputs (fine-tuned).",
    )
    if argv and not argv[0].startswith("-"):
        argv = ["--model_name_or_path", argv[0], *(["--texts", *argv[1:]] if len(argv) > 1 else [])]
    (args,) = parser.parse_args_into_dataclasses(args=list(argv))
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ConfigError("no text to generate from: give texts after MODEL_DIR or lines on standard input.")
    for text, outputs in zip(texts, generate(args, texts)):
        for output in outputs:
            if _SENTINEL.search(text):
                print(f"{fill_spans(text, output)}\t{output}")
            else:
                print(output)
    return 0
