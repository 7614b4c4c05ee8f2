"""Security hygiene: no secret reaches a run's files, remote code is opt-in, nothing unsafe is loaded or shelled."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from harness import pretrain_args

from t5lab.config import DataArguments, ModelArguments, parse_arguments
from t5lab.training.arguments import T5LabTrainingArguments

REPO = Path(__file__).resolve().parents[2]
SECRETS = {
    "--hub_token": "hf_FlagTokenFlagTokenFlagTokenFlag12",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "HF_TOKEN": "hf_EnvTokenEnvTokenEnvTokenEnvToken34",
}


@pytest.mark.slow
def test_tokens_from_flags_and_environment_never_reach_the_output_dir(tmp_path, small_corpus, wiki_tokenizer_dir):
    out = tmp_path / "run"
    argv = pretrain_args(
        small_corpus,
        wiki_tokenizer_dir,
        out,
        "--max_steps",
        "2",
        "--save_steps",
        "1",
        "--report_to",
        "tensorboard",
        "--hub_token",
        SECRETS["--hub_token"],
    )
    env = {
        **os.environ,
        "WANDB_API_KEY": SECRETS["WANDB_API_KEY"],
        "HF_TOKEN": SECRETS["HF_TOKEN"],
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "t5lab", *argv], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {
        "t5lab_config.yaml",
        "run_info.json",
        "trainer_state.json",
        "training_args.bin",
        "model.safetensors",
    } <= names
    assert any(p.name.startswith("events.out.tfevents") for p in files)  # the TensorBoard copy of the run info
    for path in files:  # text and binary (training_args.bin is a pickle of the arguments)
        data = path.read_bytes()
        for secret in SECRETS.values():
            assert secret.encode() not in data, f"{secret} found in {path}"
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr
    assert "<redacted>" in (out / "run_info.json").read_text()  # the command line, with its --hub_token value
    assert not list(out.rglob("pytorch_model.bin"))  # weights only as safetensors


def test_remote_code_is_off_unless_asked(tmp_path):
    model, _, _ = parse_arguments(
        (ModelArguments, DataArguments, T5LabTrainingArguments), ["--output_dir", str(tmp_path)], "t", ""
    )
    assert model.trust_remote_code is False
    model, _, _ = parse_arguments(
        (ModelArguments, DataArguments, T5LabTrainingArguments),
        ["--output_dir", str(tmp_path), "--trust_remote_code"],
        "t",
        "",
    )
    assert model.trust_remote_code is True


def test_source_loads_no_pickles_and_starts_no_shell():
    sources = {path: path.read_text(encoding="utf-8") for path in (REPO / "src" / "t5lab").rglob("*.py")}
    for path, text in sources.items():
        assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, path
        assert "pickle.load" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_repository_holds_no_credentials():
    token = re.compile(
        r"\b(hf_[A-Za-z0-9]{30,}|(WANDB_API_KEY|HF_TOKEN|HUGGING_FACE_HUB_TOKEN)\s*[=:]\s*['\"]?[A-Za-z0-9_]{20,})"
    )
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert tracked
    for name in tracked:
        path = REPO / name
        if (
            path.suffix in {".py", ".yaml", ".yml", ".md", ".json", ".toml", ".sbatch", ".sh", ".txt", ".cfg"}
            and path.is_file()
        ):
            hits = [m.group(0) for m in token.finditer(path.read_text(encoding="utf-8", errors="replace"))]
            assert not [h for h in hits if "tests/reliability/test_security.py" not in name], (name, hits)
