"""Reading task splits: the real GLUE/SuperGLUE/XSum files in ../shared/data, synthetic layouts, and failures."""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import cache
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict

from t5lab.errors import ConfigError, DataError
from t5lab.tasks import readers
from t5lab.tasks.examples import format_examples
from t5lab.tasks.formatting import multirc
from t5lab.tasks.readers import load_task_splits
from t5lab.tasks.registry import get_task
from t5lab.tasks.schema import Task


@cache
def _load(task: str, data_dir: str) -> dict[str, Dataset]:
    return load_task_splits(get_task(task), data_dir=data_dir)


@pytest.fixture
def splits(shared_data: Path):
    """Loaded splits of a built-in task from a folder of the shared data (each read once per session)."""
    return lambda task, folder: _load(task, str(shared_data / folder))


# Row counts and label counts as ../shared/data/README.md states them.
@pytest.mark.parametrize(
    ("task", "data_dir", "split", "rows", "label_counts"),
    [
        ("glue/sst2", "glue", "train", 67_349, {"negative": 29_780, "positive": 37_569}),
        ("glue/sst2", "glue", "validation", 872, {"negative": 428, "positive": 444}),
        ("glue/qnli", "glue", "validation", 5_463, {"entailment": 2_702, "not_entailment": 2_761}),
        ("glue/rte", "glue", "train", 2_490, {"entailment": 1_249, "not_entailment": 1_241}),
        ("glue/rte", "glue", "validation", 277, {"entailment": 146, "not_entailment": 131}),
        ("glue/cola", "glue", "train", 8_551, {"acceptable": 6_023, "unacceptable": 2_528}),
        ("glue/cola", "glue/CoLA", "validation", 1_043, {"acceptable": 721, "unacceptable": 322}),
        ("superglue/boolq", "superglue", "validation", 3_270, {"True": 2_033, "False": 1_237}),
        ("superglue/copa", "superglue", "validation", 100, {"choice1": 55, "choice2": 45}),
        ("superglue/wic", "superglue", "validation", 638, {"True": 319, "False": 319}),
        ("superglue/multirc", "superglue", "validation", 4_848, {"True": 2_075, "False": 2_773}),
        ("summarization/xsum", "summarization", "test", 1_000, None),
    ],
)
def test_shared_files_row_and_label_counts(splits, task, data_dir, split, rows, label_counts) -> None:
    dataset = splits(task, data_dir)[split]
    assert len(dataset) == rows
    if label_counts:
        words = get_task(task).labels
        assert Counter(words[i] for i in dataset["label"]) == label_counts


def test_only_existing_files_are_loaded(splits) -> None:
    assert set(splits("glue/sst2", "glue")) == {"train", "validation"}
    assert set(splits("glue/qnli", "glue")) == {"validation"}
    assert set(splits("summarization/xsum", "summarization")) == {"test"}


# The first row of each shared file, formatted.
@pytest.mark.parametrize(
    ("task", "data_dir", "split", "inputs", "target"),
    [
        (
            "glue/sst2",
            "glue",
            "validation",
            "sst2 sentence: it 's a charming and often affecting journey . ",
            "positive",
        ),
        ("glue/sst2", "glue", "train", "sst2 sentence: hide new secretions from the parental units ", "negative"),
        (
            "glue/cola",
            "glue",
            "validation",
            "cola sentence: The sailors rode the breeze clear of the rocks.",
            "acceptable",
        ),
        (
            "glue/qnli",
            "glue",
            "validation",
            "qnli question: What came into force after the new constitution was "
            "herald? sentence: As of that day, the new constitution heralding the Second Republic came into force.",
            "entailment",
        ),
        (
            "glue/rte",
            "glue",
            "train",
            "rte sentence1: No Weapons of Mass Destruction Found in Iraq Yet. "
            "sentence2: Weapons of Mass Destruction Found in Iraq.",
            "not_entailment",
        ),
        (
            "superglue/copa",
            "superglue",
            "validation",
            "copa choice1: The toilet filled with water. choice2: Water "
            "flowed from the spout. premise: The man turned on the faucet. question: effect",
            "choice2",
        ),
        (
            "superglue/wic",
            "superglue",
            "validation",
            "wic sentence1: An emerging professional class. sentence2: "
            "Apologizing for losing your temper, even though you were badly provoked, showed real class. word: class",
            "False",
        ),
    ],
)
def test_first_row_formatting(splits, task, data_dir, split, inputs, target) -> None:
    example = format_examples(get_task(task), splits(task, data_dir)[split].select(range(1)))[0]
    assert (example["inputs"], example["targets"]) == (inputs, target)


def test_boolq_row(splits, shared_data: Path) -> None:
    raw = json.loads((shared_data / "superglue/BoolQ/val.jsonl").read_text(encoding="utf-8").splitlines()[0])
    example = format_examples(get_task("boolq"), splits("superglue/boolq", "superglue")["validation"].select([0]))[0]
    assert example["inputs"] == f"boolq passage: {raw['passage']} question: {raw['question']}"
    assert example["targets"] == str(raw["label"])
    assert example["inputs"].startswith("boolq passage: Ethanol fuel -- All biomass goes through")


def test_multirc_is_flattened_per_answer_with_question_groups(splits, shared_data: Path) -> None:
    dataset = splits("superglue/multirc", "superglue")["validation"]
    assert len(set(dataset["question_id"])) == 953
    passage = json.loads((shared_data / "superglue/MultiRC/val.jsonl").read_text(encoding="utf-8").splitlines()[0])
    question = passage["passage"]["questions"][0]
    answer = question["answers"][0]
    example = format_examples(get_task("multirc"), dataset.select([0]))[0]
    assert example["inputs"] == (
        f"multirc question: {question['question']} answer: {answer['text']} paragraph: {passage['passage']['text']}"
    )
    assert example["targets"] == ["False", "True"][answer["label"]]
    assert dataset[0]["question_id"] == f"0-{question['idx']}"


def test_xsum_rows(splits) -> None:
    dataset = splits("summarization/xsum", "summarization")["test"]
    example = format_examples(get_task("xsum"), dataset.select([0]))[0]
    assert example["inputs"].startswith("summarize: The ex-Reading defender denied fraudulent trading charges")
    assert example["targets"].startswith("Former Premier League footballer Sam Sodje has appeared in court")
    empty = dataset.filter(lambda row: row["id"] == "32556640")
    assert format_examples(get_task("xsum"), empty)[0]["inputs"] == "summarize: "


def test_rte_tsv_matches_parquet_row_for_row(splits, shared_data: Path) -> None:
    """The shared RTE TSVs are CSV-quoted Hugging Face exports: quotes inside fields must come out unescaped."""
    task = get_task("glue/rte")
    parquet = load_task_splits(
        task,
        data_files={
            "train": shared_data / "glue/RTE/train.parquet",
            "validation": shared_data / "glue/RTE/validation.parquet",
        },
    )
    for split in ("train", "validation"):
        tsv = splits("glue/rte", "glue")[split]
        for column in ("sentence1", "sentence2", "label"):
            assert tsv[column] == parquet[split][column]
    assert any('"' in sentence for sentence in parquet["train"]["sentence1"])


def test_cola_quirks(splits, shared_data: Path) -> None:
    train, dev = splits("glue/cola", "glue")["train"], splits("glue/cola", "glue")["validation"]
    assert not (shared_data / "glue/CoLA/dev.tsv").read_bytes().endswith(b"\n")
    assert dev[-1]["sentence"] == (shared_data / "glue/CoLA/dev.tsv").read_text().split("\t")[-1]
    assert dev[683]["sentence"] == "Who always drinks milk?"
    assert sum('"' in s for s in train["sentence"]) >= 2  # lines 3,057 and 3,058 keep their quote characters


# --- synthetic layouts --------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_glue_mnli_layout_with_matched_and_mismatched(tmp_path: Path) -> None:
    header = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
    _write(tmp_path / "MNLI/train.tsv", header + '0\t1\t1n\tgov\tThe "premise".\tA hypothesis.\tneutral\tneutral\n')
    _write(tmp_path / "MNLI/dev_matched.tsv", header + "0\t2\t2e\tfic\tP1.\tH1.\tentailment\tentailment\n")
    _write(tmp_path / "MNLI/dev_mismatched.tsv", header + "0\t3\t3c\tnow\tP2.\tH2.\tcontradiction\tcontradiction\n")
    test_header = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\n"
    _write(tmp_path / "MNLI/test_matched.tsv", test_header + "0\t4\t4\tx\tP.\tH.\n")
    task = get_task("glue/mnli")
    loaded = load_task_splits(task, data_dir=tmp_path)
    assert set(loaded) == {"train", "validation_matched", "validation_mismatched", "test_matched"}
    assert task.format_input(loaded["train"][0]) == 'mnli hypothesis: A hypothesis. premise: The "premise".'
    assert [loaded[s][0]["label"] for s in ("train", "validation_matched", "validation_mismatched")] == [1, 0, 2]
    assert loaded["test_matched"][0]["label"] == -1
    validation = load_task_splits(task, data_dir=tmp_path / "MNLI", splits=["validation"])
    assert set(validation) == {"validation_matched", "validation_mismatched"}


def test_glue_mrpc_stsb_and_test_files_without_labels(tmp_path: Path) -> None:
    _write(tmp_path / "MRPC/dev.tsv", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA.\tB.\n")
    _write(tmp_path / "MRPC/test.tsv", "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tC.\tD.\n")
    mrpc = load_task_splits(get_task("mrpc"), data_dir=tmp_path)
    assert (mrpc["validation"][0]["sentence1"], mrpc["validation"][0]["label"]) == ("A.", 1)
    assert mrpc["test"][0]["label"] == -1 and get_task("mrpc").format_target(mrpc["test"][0]) is None

    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    _write(tmp_path / "STS-B/dev.tsv", f"{header}\tscore\n0\tnews\tf\t2012\t1\tx\ty\tA.\tB.\t3.800\n")
    _write(tmp_path / "STS-B/test.tsv", f"{header}\n0\tnews\tf\t2012\t1\tx\ty\tA.\tB.\n")
    stsb = load_task_splits(get_task("stsb"), data_dir=tmp_path / "STS-B")
    assert stsb["validation"][0]["label"] == pytest.approx(3.8)
    assert get_task("stsb").format_target(stsb["validation"][0]) == "3.8"
    assert math.isnan(stsb["test"][0]["label"])


def test_hub_style_exports_and_generic_files(tmp_path: Path) -> None:
    task = get_task("sst2")
    csv_file = _write(tmp_path / "train.csv", 'sentence,label\n"good, really",positive\nbad,negative\n')
    jsonl_file = _write(tmp_path / "dev.jsonl", '{"sentence": "fine", "label": 1}\n\n{"sentence": "meh", "label": 0}\n')
    json_file = _write(tmp_path / "more.json", '[{"sentence": "ok", "label": true}]')
    parquet_file = tmp_path / "test.parquet"
    pq.write_table(pa.table({"sentence": ["x"], "label": [-1], "idx": [0]}), parquet_file)
    loaded = load_task_splits(
        task, data_files={"train": csv_file, "validation": [jsonl_file, json_file], "test": str(parquet_file)}
    )
    assert loaded["train"]["sentence"] == ["good, really", "bad"] and loaded["train"]["label"] == [1, 0]
    assert loaded["validation"]["label"] == [1, 0, 1]
    assert loaded["test"]["label"] == [-1]


def test_discoeval_original_txt_layout(tmp_path: Path) -> None:
    _write(tmp_path / "BSO/wiki/valid.txt", "1\tFirst.\tSecond.\n0\tSecond.\tFirst.\n")
    loaded = load_task_splits(get_task("BSOwiki"), data_dir=tmp_path, splits=["validation"])
    task = get_task("BSOwiki")
    assert [task.format_target(row) for row in loaded["validation"]] == ["Correct order", "Incorrect order"]
    assert task.format_input(loaded["validation"][0]) == "bsowiki sentence1: First. sentence2: Second."


def test_wsc_spans_are_marked_like_t5(tmp_path: Path) -> None:
    row = {
        "text": "This is a test sentence .",
        "target": {"span1_text": "test", "span1_index": 3, "span2_text": "This", "span2_index": 0},
        "idx": 0,
        "label": False,
    }
    _write(tmp_path / "WSC/val.jsonl", json.dumps(row) + "\n")
    loaded = load_task_splits(get_task("wsc"), data_dir=tmp_path)
    example = format_examples(get_task("wsc"), loaded["validation"])[0]
    assert (example["inputs"], example["targets"]) == ("wsc text: # This # is a * test * sentence .", "False")


def test_multirc_hub_layout_and_markup() -> None:
    batch = {
        "paragraph": ["<b>Sent 1: </b>Hi.<br><b>Sent 2: </b>Bye."],
        "question": ["Q?"],
        "answer": ["A"],
        "label": [1],
        "idx": [{"paragraph": 4, "question": 7, "answer": 9}],
    }
    out = multirc(batch)
    assert out["paragraph"] == ["Sent 1: Hi. Sent 2: Bye."] and out["question_id"] == ["4-7"]


# --- failures -----------------------------------------------------------------------------------------------


def _error(exc_type, **kwargs) -> str:
    task = kwargs.pop("task", get_task("sst2"))
    with pytest.raises(exc_type) as info:
        load_task_splits(task, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_required_split_file_names_it(shared_data: Path) -> None:
    message = _error(DataError, task=get_task("qnli"), data_dir=shared_data / "glue", splits=["train", "validation"])
    assert "split 'train' of task glue/qnli: file" in message and "QNLI/train.tsv does not exist" in message


def test_no_file_at_all(tmp_path: Path) -> None:
    assert "no file of task glue/sst2 under" in _error(DataError, data_dir=tmp_path)
    assert "does not exist" in _error(DataError, data_dir=tmp_path / "nowhere")
    assert "nope.csv (split train of task glue/sst2) does not exist" in _error(
        DataError, data_files={"train": tmp_path / "nope.csv"}
    )


def test_absent_column_names_the_column_and_split(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.csv", "review,label\ngood,1\n")
    message = _error(DataError, data_files={"train": path})
    assert "has no column 'sentence'" in message and "split train" in message and "columns: review, label" in message


def test_missing_label_column_outside_test(tmp_path: Path) -> None:
    path = _write(tmp_path / "dev.csv", "sentence\ngood\n")
    assert "has no column 'label'" in _error(DataError, data_files={"validation": path})


def test_label_outside_the_verbalizer(tmp_path: Path) -> None:
    _write(tmp_path / "SST-2/dev.tsv", "sentence\tlabel\ngood\t1\nodd\t2\n")
    message = _error(DataError, data_dir=tmp_path)
    assert "dev.tsv" in message and "column 'label'" in message and "label value '2'" in message
    assert "(0=negative, 1=positive)" in message


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dev.tsv", "sentence\tlabel\ngood\t1\textra\n", r"dev.tsv, line 2: 3 fields where 2 columns"),
        ("dev.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": \n', r"dev.jsonl, line 2: not valid JSON"),
        ("dev.json", "[1, 2]", r"must hold JSON objects"),
        ("dev.xlsx", "x", r"unsupported type"),
        ("dev.tsv", "", r"dev.tsv is empty"),
        ("dev.tsv", "sentence\tlabel\n", r"dev.tsv has no data rows"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(DataError, match=message):
        load_task_splits(get_task("sst2"), data_files={"validation": path})


def test_offline_hub_fails_at_once_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _error(DataError, cache_dir=tmp_path)
    assert "hub is offline" in message and "nyu-mll/glue (sst2)" in message and "--data_dir" in message


def test_offline_set_after_import_never_goes_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("went online"))
    assert "hub is offline" in _error(DataError)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list:
    """datasets.load_dataset answering with small in-memory data sets in the hub's layouts."""
    calls = []
    hub = {
        ("nyu-mll/glue", "stsb"): DatasetDict(
            {
                "train": Dataset.from_dict({"sentence1": ["A."], "sentence2": ["B."], "label": [3.2], "idx": [0]}),
                "validation": Dataset.from_dict({"sentence1": ["C."], "sentence2": ["D."], "label": [1.0], "idx": [0]}),
                "test": Dataset.from_dict({"sentence1": ["E."], "sentence2": ["F."], "label": [-1.0], "idx": [0]}),
            }
        ),
        ("aps/super_glue", "multirc"): DatasetDict(
            {
                "validation": Dataset.from_dict(
                    {
                        "paragraph": ["<b>Sent 1: </b>Hi.<br>"] * 2,
                        "question": ["Q?"] * 2,
                        "answer": ["A", "B"],
                        "idx": [
                            {"paragraph": 0, "question": 0, "answer": 0},
                            {"paragraph": 0, "question": 0, "answer": 1},
                        ],
                        "label": [1, 0],
                    }
                )
            }
        ),
    }

    def load_dataset(path, name=None, revision=None, cache_dir=None):
        calls.append((path, name, revision, cache_dir))
        if (path, name) not in hub:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub\nmore detail")
        return hub[(path, name)]

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(readers, "check_hub_reachable", lambda what: None)  # the fake hub needs no network
    return calls


def test_hub_route(fake_hub: list, tmp_path: Path) -> None:
    stsb = load_task_splits(get_task("stsb"), cache_dir=tmp_path)
    assert fake_hub == [("nyu-mll/glue", "stsb", None, tmp_path)]
    assert stsb["train"]["label"] == [pytest.approx(3.2)] and math.isnan(stsb["test"]["label"][0])
    multirc = load_task_splits(get_task("multirc"), splits=["validation"])["validation"]
    assert multirc["question_id"] == ["0-0", "0-0"] and multirc["paragraph"][0] == "Sent 1: Hi. "
    assert "hub data set aps/super_glue (multirc) has no split 'train'" in _error(
        DataError, task=get_task("multirc"), splits=["train"]
    )
    message = _error(DataError, task=get_task("qqp"))
    assert message.startswith("could not load hub data set nyu-mll/glue (qqp) for task glue/qqp: Dataset")
    assert "--data_dir" in message


def test_task_without_local_layout(tmp_path: Path) -> None:
    assert "has no local file layout" in _error(DataError, task=get_task("discoeval/RST"), data_dir=tmp_path)


def test_unknown_split_request(tmp_path: Path) -> None:
    train_only = Task.from_dict(
        {
            "name": "a/b",
            "source": {"hub": {"path": "x"}},
            "input_template": "{t}",
            "labels": ["n", "y"],
            "metrics": ["accuracy"],
            "splits": {"train": "train"},
        }
    )
    assert "has no test split" in _error(ConfigError, task=train_only, data_dir=tmp_path, splits=["test"])
    assert "has no dev split" in _error(ConfigError, data_dir=tmp_path, splits=["dev"])


def test_user_task_with_local_csv(tmp_path: Path) -> None:
    task = Task.from_dict(
        {
            "name": "mine/reviews",
            "source": {"local": {"files": {"train": "reviews.csv"}, "rename": {"stars": "label"}}},
            "input_template": "review: {text}",
            "labels": {0: "bad", 1: "good"},
            "metrics": ["accuracy"],
            "splits": {"train": "train"},
        }
    )
    _write(tmp_path / "reviews.csv", "text,stars\nLoved it,good\nMeh,bad\n")
    rows = format_examples(task, load_task_splits(task, data_dir=tmp_path)["train"])
    assert rows["inputs"] == ["review: Loved it", "review: Meh"] and rows["targets"] == ["good", "bad"]
