"""Shared fixtures: the real data in ../shared/data (beside the repository) and small trained artifacts."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("T5LAB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # the suite's workers share the machine's cores: one thread each (and in the t5lab processes they start)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data sets laid beside the repository (GLUE, SuperGLUE, corpora)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"shared data not found at {SHARED_DATA}; set T5LAB_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def free_port() -> int:
    """A TCP port free right now, for a launcher's rendezvous: fixed ports collide when test runs overlap."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def torchrun(free_port: int) -> list[str]:
    """``t5lab`` under torchrun, two CPU processes on a free port: the command's arguments follow."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port),
        "-m",
        "t5lab",
    ]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep t5lab's corpus cache and user config out of the home directory during tests."""
    monkeypatch.setenv("T5LAB_CACHE", str(tmp_path_factory.getbasetemp() / "t5lab-cache"))
    monkeypatch.setenv("T5LAB_CONFIG_DIR", str(tmp_path_factory.getbasetemp() / "t5lab-config"))


@pytest.fixture(scope="session")
def wikitext_file(shared_data: Path) -> Path:
    """WikiText-2 raw test split: real English, CRLF line endings, headings like ' = Title = '."""
    return shared_data / "corpus" / "wikitext-2-raw" / "wiki.test.raw"


@pytest.fixture(scope="session")
def wiki_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory, wikitext_file: Path) -> Path:
    """A SentencePiece tokenizer (2,000 tokens, 100 sentinels) trained on WikiText-2 and saved in HF format."""
    from t5lab.data.tokenizer import save_tokenizer, train_tokenizer

    lines = wikitext_file.read_text(encoding="utf-8").splitlines()
    directory = tmp_path_factory.mktemp("wiki-tokenizer")
    save_tokenizer(train_tokenizer(lines, vocab_size=2000, num_sentinels=100), directory)
    return directory
