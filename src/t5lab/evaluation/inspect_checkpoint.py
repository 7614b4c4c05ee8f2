"""``t5lab inspect MODEL_DIR --train_file F``: is this checkpoint using its encoder, and is the encoder collapsed?

Prints the pre-training diagnostics of :mod:`t5lab.evaluation.pretraining` for a checkpoint and for a random
twin (same config, same tokenizer) side by side, on random chunks of a text file, corrupted exactly as
pre-training corrupts them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from t5lab.errors import DataError, UserArgumentParser, UserError

# How many characters to read per window so that a window holds at least the chunk's tokens (English text
# runs 4-6 characters per SentencePiece token; the margin covers short lines and punctuation).
_CHARS_PER_TOKEN = 12
_UNIGRAM_WINDOWS = 2000


def _run_settings(model_dir: Path) -> dict[str, Any]:
    """Span-corruption settings of the run that produced ``model_dir`` (the run dir or one of its checkpoints);
    a PMI vocabulary the run built is the file it kept in its dir."""
    from t5lab.data import pmi

    for folder in (model_dir, model_dir.parent):
        config = folder / "t5lab_config.yaml"
        if config.is_file():
            settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
            if settings.get("pmi_vocab") == pmi.BUILD:
                settings["pmi_vocab"] = str(folder / pmi.VOCAB_FILE)
            return settings
    return {}


def _windows(path: Path, count: int, chars: int, seed: int) -> list[str]:
    """``count`` random windows of about ``chars`` characters, each starting at a line start."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read --train_file {path}: {exc.strerror or exc}.") from None
    if len(text.strip()) == 0:
        raise DataError(f"--train_file {path} is empty.")
    rng = random.Random(seed)
    windows = []
    for _ in range(count):
        start = rng.randrange(max(len(text) - chars, 1))
        newline = text.find("\n", start)
        start = newline + 1 if 0 <= newline < start + chars // 2 else start
        windows.append(" ".join(text[start : start + chars].split()))
    return windows


def inspect_checkpoint(
    model_dir: str,
    train_file: str,
    num_chunks: int = 96,
    batch_size: int = 32,
    input_length: int | None = None,
    noise_density: float | None = None,
    mean_noise_span_length: float | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Diagnostics of the checkpoint in ``model_dir`` and of its random twin, keyed "model" and "random twin"."""
    import numpy as np
    import torch

    from t5lab.data.collators import PretrainingCollator
    from t5lab.data.objectives import objective_for_tokenizer, parse_objective
    from t5lab.data.tokenizer import load_tokenizer
    from t5lab.evaluation.pretraining import PretrainingDiagnostics, encoder_collapse, unigram_log_probs
    from t5lab.models.presets import build_model, new_model

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise UserError(
            f"{model_dir} is not a model directory (no config.json); give a run's output dir or a checkpoint."
        )
    if not Path(train_file).is_file():
        raise DataError(f"--train_file {train_file} does not exist.")
    settings = _run_settings(folder)
    lengths_args = (
        input_length or settings.get("input_length", 512),
        noise_density or settings.get("noise_density", 0.15),
        mean_noise_span_length or settings.get("mean_noise_span_length", 3.0),
    )
    tokenizer = load_tokenizer(str(folder))
    denoisers = parse_objective(settings.get("objective", "span_corruption"), *lengths_args[1:])
    objective = objective_for_tokenizer(denoisers, lengths_args[0], tokenizer, settings.get("pmi_vocab"))
    lengths = objective.lengths
    model = build_model(tokenizer, str(folder))
    torch.manual_seed(seed)
    twin = new_model(type(model.config).from_dict(model.config.to_dict()))

    windows = _windows(Path(train_file), num_chunks + _UNIGRAM_WINDOWS, lengths.raw_length * _CHARS_PER_TOKEN, seed)
    ids = tokenizer(windows, add_special_tokens=False)["input_ids"]
    chunks = [row[: lengths.raw_length] for row in ids[:num_chunks] if len(row) >= lengths.raw_length]
    if len(chunks) < 2:
        raise DataError(f"--train_file {train_file} is too short for chunks of {lengths.raw_length} tokens.")
    unigram = unigram_log_probs((np.asarray(row) for row in ids[num_chunks:]), model.config.vocab_size)
    collator = PretrainingCollator(objective, model.config.decoder_start_token_id, seed=seed)
    probe_texts = windows[:num_chunks]

    report: dict[str, dict[str, float]] = {}
    for name, candidate in (("model", model), ("random twin", twin)):
        candidate.eval()
        diagnostics = PretrainingDiagnostics(int(objective.sentinel_ids.min()), tokenizer.eos_token_id, unigram)
        for start in range(0, len(chunks), batch_size):
            rows = [{"input_ids": np.asarray(chunk, dtype=np.int64)} for chunk in chunks[start : start + batch_size]]
            diagnostics.update(candidate, collator(rows))
        figures = {"loss": round(diagnostics.sums["loss"] / diagnostics.sums["tokens"], 4), **diagnostics.metrics()}
        figures.update(encoder_collapse(candidate, tokenizer, probe_texts, max_length=lengths.input_length))
        report[name] = figures
    report["settings"] = {
        "chunks": len(chunks),
        "raw_length": lengths.raw_length,
        "input_length": lengths.input_length,
        "target_length": lengths.target_length,
        "objective": ", ".join(d.describe() for d in denoisers),
        "noise_density": lengths_args[1],
        "mean_noise_span_length": lengths_args[2],
    }
    return report


_ROWS = [
    ("loss", "pre-training loss (nats/token)"),
    ("noise_loss", "loss on hidden tokens"),
    ("noise_unigram_loss", "  corpus unigram on the same tokens"),
    ("sentinel_loss", "loss on sentinels + EOS"),
    ("encoder_gain", "encoder gain (rolled inputs - true)"),
    ("mean_token_cosine", "mean cosine of encoder token states"),
    ("effective_rank", "effective rank of encoder states"),
]


def inspect_command(argv: Sequence[str]) -> int:
    """``t5lab inspect``: print (or ``--json``) the diagnostics of a checkpoint against its random twin."""
    parser = UserArgumentParser(prog="t5lab inspect", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="A run's output dir or one of its checkpoints.")
    parser.add_argument(
        "--train_file", required=True, help="A text file to draw held-out chunks from (e.g. your dev text)."
    )
    parser.add_argument("--num_chunks", type=int, default=96, help="Random chunks to evaluate (default 96).")
    parser.add_argument("--batch_size", type=int, default=32, help="Chunks per forward pass (default 32).")
    parser.add_argument("--input_length", type=int, help="Default: the run's t5lab_config.yaml, else 512.")
    parser.add_argument("--noise_density", type=float, help="Default: the run's, else 0.15.")
    parser.add_argument("--mean_noise_span_length", type=float, help="Default: the run's, else 3.0.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the chunk sample, the noise and the twin.")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    args = parser.parse_args(list(argv))
    if args.num_chunks < 2 or args.batch_size < 2:
        raise UserError(
            "--num_chunks and --batch_size must be at least 2 (the encoder gain borrows another row's inputs)."
        )
    report = inspect_checkpoint(
        args.model_dir,
        args.train_file,
        args.num_chunks,
        args.batch_size,
        args.input_length,
        args.noise_density,
        args.mean_noise_span_length,
        args.seed,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from t5lab.evaluation.outputs import print_table
    from t5lab.evaluation.pretraining import describe_encoder_gain

    rows = [(label, report["model"].get(key, "-"), report["random twin"].get(key, "-")) for key, label in _ROWS]
    s = report["settings"]
    print_table(
        f"{args.model_dir}: {s['chunks']} chunks of {s['raw_length']} tokens -> {s['input_length']} inputs / "
        f"{s['target_length']} targets",
        ["figure", "model", "random twin"],
        rows,
    )
    print(f"{describe_encoder_gain(report['model'].get('encoder_gain')).capitalize()}.")
    return 0
