"""The ZeRO memory table comes from real parameter counts and is the one in the README; `t5lab export`
refuses what it cannot do in one line without touching anything."""

from __future__ import annotations

from pathlib import Path

from t5lab.cli import main
from t5lab.launch.memory import MODELS, memory_table, model_state_bytes, parameter_count

README = Path(__file__).resolve().parents[2] / "README.md"


def test_parameter_counts_and_the_zero_formulas():
    counts = {name: parameter_count(dims) for name, dims in MODELS.items()}
    # The sizes documented in models/presets.py (T5's 32,128-row vocabulary); XL is the 3B model.
    assert round(counts["t5-base"] / 1e6) == 223 and round(counts["t5-large"] / 1e6) == 750
    assert 2.7e9 < counts["t5-xl (3B)"] < 2.9e9
    per_gpu = model_state_bytes(1_000_000, num_gpus=8)
    assert per_gpu["DDP"] == 16e6 and per_gpu["ZeRO-3"] == 2e6 and per_gpu["ZeRO-2"] == 2e6 + 14e6 / 8
    assert (
        per_gpu["DDP"]
        > per_gpu["ZeRO-1"]
        > per_gpu["ZeRO-2"]
        > per_gpu["ZeRO-3"]
        > per_gpu["ZeRO-3 + optimizer offload"]
    )
    assert model_state_bytes(1_000_000, num_gpus=1)["ZeRO-3"] == per_gpu["DDP"]


def test_the_readme_shows_the_computed_table():
    assert memory_table(8) in README.read_text()


def test_export_refusals(tmp_path, capsys):
    not_a_checkpoint = tmp_path / "empty"
    not_a_checkpoint.mkdir()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    for argv, message in (
        (["export", str(not_a_checkpoint), str(tmp_path / "out")], "is not a model checkpoint (no config.json)"),
        (["export", str(checkpoint), str(occupied)], "exists and is not empty"),
        (["export", str(checkpoint)], "the following arguments are required: output_dir"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("t5lab export: error:") and message in err and "\n" not in err
    assert (occupied / "keep.txt").read_text() == "mine" and not (tmp_path / "out").exists()
