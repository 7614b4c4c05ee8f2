"""Fixtures of the reliability tests; the helpers they share are in harness.py (put on the path here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The first 200 kB of Tiny Shakespeare: a few hundred 64-token chunks, enough for 12 steps of batch 4."""
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_bytes((shared_data / "corpus" / "tinyshakespeare" / "input.txt").read_bytes()[:200_000])
    return path
