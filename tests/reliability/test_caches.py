"""Caches and partial state survive SIGKILL and damage: a rerun never reads a half-written or changed file."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from harness import child_env, kill_group, pretrain_args, start

from t5lab.cli import main
from t5lab.data.packing import cache_problem

pytestmark = pytest.mark.slow


def entries(cache: Path) -> list[Path]:
    return [p for p in (cache / "packed").iterdir() if not p.name.startswith(".")]


def test_a_damaged_cache_entry_is_detected_and_rebuilt_with_a_notice(
    tmp_path, small_corpus, wiki_tokenizer_dir, monkeypatch, capsys
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("T5LAB_CACHE", str(cache))
    argv = pretrain_args(small_corpus, wiki_tokenizer_dir, tmp_path / "first", "--max_steps", "2")
    assert main(argv) == 0
    (entry,) = entries(cache)
    assert cache_problem(entry) is None
    arrow = max(entry.rglob("*.arrow"), key=lambda p: p.stat().st_size)
    data = bytearray(arrow.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the token ids
    arrow.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(pretrain_args(small_corpus, wiki_tokenizer_dir, tmp_path / "second", "--max_steps", "2")) == 0
    assert f"The cached corpus {entry} is damaged ({arrow.relative_to(entry)} has changed (checksum)); rebuilding" in (
        capsys.readouterr().err
    )
    assert cache_problem(entry) is None
    arrow.write_bytes(arrow.read_bytes()[:100])  # truncated
    assert main(pretrain_args(small_corpus, wiki_tokenizer_dir, tmp_path / "third", "--max_steps", "2")) == 0
    assert "bytes instead of" in capsys.readouterr().err and cache_problem(entry) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_while_training_the_tokenizer_or_packing_never_leaves_a_half_written_cache(
    tmp_path, small_corpus, seed
):
    """Killed at a random point of its start (tokenizer training, tokenizing and packing, first steps), the run's
    rerun with the same command finishes, and every cache entry it leaves matches its manifest."""
    cache = tmp_path / "cache"
    env = child_env(T5LAB_CACHE=str(cache))
    argv = pretrain_args(small_corpus, Path("train"), tmp_path / "run", "--vocab_size", "1000", "--max_steps", "3")
    process = start(argv, env)
    time.sleep(random.Random(seed).uniform(1.0, 12.0))
    kill_group(process)
    rerun = start(argv, env)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0 and "Traceback" not in output, output[-3000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert all(cache_problem(entry) is None for entry in entries(cache))
    assert not list((tmp_path / "run").glob(".tokenizer-*"))
