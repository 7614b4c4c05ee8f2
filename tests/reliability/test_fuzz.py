"""Fuzzing the input languages: every mutated input either works or is a one-line user error, never a crash.

Mutations (hypothesis) of the real files users start from: run configs (configs/*.yaml), task YAML (the
built-in task files), sweep YAML (sweeps/*.yaml), GLUE TSVs, JSONL, CSV and parquet task data, and corpus
text. Each mutation deletes, duplicates, truncates or inserts bytes (NULs, invalid UTF-8, BOMs, quotes, tabs,
YAML syntax). The parsing and validation layers run in-process for volume; a sample goes through the CLI
against an existing run directory, which must not change.

Examples per language: ``T5LAB_FUZZ_EXAMPLES`` (default 60, a few hundred in all; the long mode,
``T5LAB_FUZZ_EXAMPLES=1500``, generates >10,000 cases). Every crash found became a named regression test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t5lab.cli import main
from t5lab.errors import UserError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("T5LAB_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)
# Bytes that break parsers in interesting ways.
NASTY = [
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xc3(",
    b"\t",
    b'"',
    b"'",
    b"\n",
    b"\r\n",
    b": ",
    b"- ",
    b"[",
    b"{",
    b"}",
    b"&a",
    b"*a",
    b"!!python/object:os.system",
    b"---\n",
    b"~",
    b"1e999",
    b"-1",
    b"nan",
    b"\\",
    b"%YAML 9.9\n",
]


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "truncate", "replace"]))
        at = draw(st.integers(0, len(data)))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=8))
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 80))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at : at + 1] = draw(st.sampled_from(NASTY))
    return bytes(data)


def user_error_or_nothing(run, *args) -> None:
    """The property: ``run`` returns, or raises a UserError of one line; anything else is a crash."""
    try:
        run(*args)
    except UserError as error:
        assert "\n" not in str(error).strip(), str(error)


def seed(path: str, limit: int = 6000) -> bytes:
    return (REPO / path).read_bytes()[:limit]


def write(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- configs -------------------------------------------------------------------------------------------------


def _parse_run_config(path: Path) -> None:
    from t5lab.config import DataArguments, ModelArguments, parse_arguments
    from t5lab.training.arguments import T5LabTrainingArguments

    args = ["--config", str(path), "--output_dir", str(path.parent / "out")]
    parse_arguments((ModelArguments, DataArguments, T5LabTrainingArguments), args, "t5lab pretrain", "")


@pytest.mark.parametrize("original", ["configs/quickstart.yaml", "configs/cpu-1h.yaml", "configs/t5-base-nanot5.yaml"])
def test_fuzzed_run_configs(original, tmp):
    @FUZZ
    @given(mutated(seed(original)))
    def check(content):
        user_error_or_nothing(_parse_run_config, write(tmp, "config.yaml", content))

    check()


# --- task YAML -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("original", ["src/t5lab/tasks/builtin/glue.yaml", "src/t5lab/tasks/builtin/superglue.yaml"])
def test_fuzzed_task_files(original, tmp):
    from t5lab.tasks.registry import load_task_file

    @FUZZ
    @given(mutated(seed(original, 3000)))
    def check(content):
        user_error_or_nothing(load_task_file, write(tmp, "tasks.yaml", content))

    check()


# --- sweep YAML ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("original", ["sweeps/glue_sst2.yaml", "sweeps/glue_stsb.yaml"])
def test_fuzzed_sweep_files(original, tmp):
    from t5lab.sweeps.wandb_yaml import load_sweep, search_space

    def load(path: Path) -> None:
        search_space(load_sweep(path))

    @FUZZ
    @given(mutated(seed(original)))
    def check(content):
        user_error_or_nothing(load, write(tmp, "sweep.yaml", content))

    check()


# --- task data files -----------------------------------------------------------------------------------------


def _data_seeds(shared: Path, tmp: Path) -> dict[str, tuple[str, str, bytes]]:
    """name -> (task, file suffix, content) of small real data files."""
    import pandas as pd

    sst2 = (shared / "glue" / "SST-2" / "dev.tsv").read_bytes()[:3000]
    frame = pd.read_csv(shared / "glue" / "SST-2" / "dev.tsv", sep="\t").head(30)
    frame.to_csv(tmp / "seed.csv", index=False)
    frame.to_parquet(tmp / "seed.parquet")
    return {
        "tsv": ("glue/sst2", ".tsv", sst2),
        "csv": ("glue/sst2", ".csv", (tmp / "seed.csv").read_bytes()),
        "parquet": ("glue/sst2", ".parquet", (tmp / "seed.parquet").read_bytes()),
        "jsonl": ("summarization/xsum", ".jsonl", (shared / "summarization/xsum/test-tiny.jsonl").read_bytes()[:4000]),
    }


@pytest.mark.parametrize("kind", ["tsv", "csv", "parquet", "jsonl"])
def test_fuzzed_task_data_files(kind, tmp, shared_data):
    from t5lab.tasks.examples import format_examples
    from t5lab.tasks.readers import load_task_splits
    from t5lab.tasks.registry import get_task

    task_name, suffix, original = _data_seeds(shared_data, tmp)[kind]
    task = get_task(task_name)

    def read(path: Path) -> None:
        for dataset in load_task_splits(task, data_files={"validation": str(path)}).values():
            format_examples(task, dataset)

    @settings(FUZZ, max_examples=max(10, EXAMPLES // 4))  # datasets reads are slow: fewer, still varied
    @given(mutated(original))
    def check(content):
        user_error_or_nothing(read, write(tmp, f"data{suffix}", content))

    check()


def test_fuzzed_corpus_text(tmp, shared_data, wiki_tokenizer_dir):
    from t5lab.data.pipeline import Corpus, pretraining_datasets
    from t5lab.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(wiki_tokenizer_dir))
    original = (shared_data / "corpus" / "tinyshakespeare" / "input.txt").read_bytes()[:6000]

    def pack(path: Path) -> None:
        corpus = Corpus(train_file=str(path), preprocessing_num_workers=1, data_cache_dir=str(tmp / "cache"))
        pretraining_datasets(corpus, tokenizer, raw_length=32, seed=0)

    @settings(FUZZ, max_examples=max(10, EXAMPLES // 4))
    @given(mutated(original))
    def check(content):
        user_error_or_nothing(pack, write(tmp, "corpus.txt", content))

    check()


# --- through the CLI, against an existing run ----------------------------------------------------------------


def test_fuzzed_configs_through_the_cli_never_touch_an_existing_run(tmp, small_corpus, wiki_tokenizer_dir, capsys):
    from harness import pretrain_args

    run = tmp / "existing-run"
    assert main(pretrain_args(small_corpus, wiki_tokenizer_dir, run, "--max_steps", "3")) == 0
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".t5lab.lock"}
    original = seed("configs/quickstart.yaml")

    @settings(FUZZ, max_examples=max(10, EXAMPLES // 3))
    @given(mutated(original))
    def check(content):
        config = write(tmp, "cli.yaml", content)
        # a config that parses is still refused here: the existing run has other settings and checkpoints
        code = main(["pretrain", "--config", str(config), "--output_dir", str(run), "--train_file", "missing.txt"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("t5lab pretrain: error: "), err[-1500:]
        after = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".t5lab.lock"}
        assert after == before

    check()
    shutil.rmtree(tmp / "cache", ignore_errors=True)


# --- crashes found by the fuzzer, kept as regression tests ---------------------------------------------------


def test_regression_nul_byte_in_a_csv_header_is_a_data_error(tmp, shared_data):
    """Found by test_fuzzed_task_data_files[csv]: a NUL before the header made arrow drop the column name
    and datasets raise CastError (a traceback)."""
    from t5lab.errors import DataError
    from t5lab.tasks.readers import load_task_splits
    from t5lab.tasks.registry import get_task

    path = write(tmp, "nul.csv", b"\x00sentence,label\nit 's a charming journey ,1\n")
    with pytest.raises(DataError, match="line 1: a NUL byte"):
        load_task_splits(get_task("glue/sst2"), data_files={"validation": str(path)})
