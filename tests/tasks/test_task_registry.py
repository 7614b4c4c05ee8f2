"""The built-in task YAMLs, name lookup, user task files and T5's input formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from t5lab.errors import ConfigError
from t5lab.tasks.registry import builtin_tasks, get_task, list_tasks, load_task_file

BUILTIN_NAMES = [task.name for task in builtin_tasks()]
REQUIRED = [
    *(f"glue/{n}" for n in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "ax")),
    *(f"superglue/{n}" for n in ("boolq", "cb", "copa", "rte", "wic", "multirc")),
    *(
        f"discoeval/{n}"
        for n in (
            "SParxiv",
            "SProcstory",
            "SPwiki",
            "BSOarxiv",
            "BSOrocstory",
            "BSOwiki",
            "DCchat",
            "DCwiki",
            "RST",
            "PDTB-E",
            "PDTB-I",
            "SSPabs",
        )
    ),
    "summarization/cnn_dailymail",
    "summarization/xsum",
]


def test_builtin_tasks_cover_the_benchmarks() -> None:
    assert set(REQUIRED) <= set(BUILTIN_NAMES)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_task_is_consistent(name: str) -> None:
    task = get_task(name)
    assert task.metric_to_optimize in task.produced_metrics
    assert (task.hub is not None and task.hub.path) or task.name.startswith("t5lab/")  # t5lab/ data is written locally
    assert task.origin.startswith("builtin/") and task.description
    if task.local is not None:
        assert set(task.local.files) <= set(task.splits.names())
    if task.kind == "classification":
        assert len(task.label_words) == len(set(task.label_words)) >= 2


@pytest.mark.parametrize(
    ("name", "hub_path", "hub_name", "splits"),
    [
        (
            "glue/mnli",
            "nyu-mll/glue",
            "mnli",
            ["train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"],
        ),
        ("glue/ax", "nyu-mll/glue", "ax", ["test"]),
        ("superglue/wsc", "aps/super_glue", "wsc.fixed", ["train", "validation", "test"]),
        ("discoeval/PDTB-I", "OfekGlick/DiscoEval", "PDTB_I", ["train", "validation", "test"]),
        ("summarization/cnn_dailymail", "abisee/cnn_dailymail", "3.0.0", ["train", "validation", "test"]),
    ],
)
def test_hub_sources_and_splits(name: str, hub_path: str, hub_name: str, splits: list[str]) -> None:
    task = get_task(name)
    assert (task.hub.path, task.hub.name) == (hub_path, hub_name)
    assert task.splits.names() == splits


# Rows in the Hugging Face layout, and the input T5 builds for them (t5.data.glue_utils: sorted feature names,
# except MultiRC and WiC).
@pytest.mark.parametrize(
    ("name", "row", "expected"),
    [
        ("glue/mnli", {"premise": "P.", "hypothesis": "H."}, "mnli hypothesis: H. premise: P."),
        ("glue/ax", {"premise": "P.", "hypothesis": "H."}, "mnli hypothesis: H. premise: P."),
        ("glue/stsb", {"sentence1": "A.", "sentence2": "B."}, "stsb sentence1: A. sentence2: B."),
        ("glue/mrpc", {"sentence1": "A.", "sentence2": "B."}, "mrpc sentence1: A. sentence2: B."),
        ("glue/qqp", {"question1": "A?", "question2": "B?"}, "qqp question1: A? question2: B?"),
        ("glue/wnli", {"sentence1": "A.", "sentence2": "B."}, "wnli sentence1: A. sentence2: B."),
        ("superglue/cb", {"premise": "P.", "hypothesis": "H."}, "cb hypothesis: H. premise: P."),
        ("superglue/rte", {"premise": "P.", "hypothesis": "H."}, "rte hypothesis: H. premise: P."),
        ("superglue/axb", {"sentence1": "A.", "sentence2": "B."}, "rte sentence1: A. sentence2: B."),
        ("summarization/cnn_dailymail", {"article": "Text."}, "summarize: Text."),
        ("discoeval/BSOwiki", {"first_sentence": "A.", "second_sentence": "B."}, "bsowiki sentence1: A. sentence2: B."),
        ("discoeval/RST", {"first_sentence": ["A.", "B."], "second_sentence": ["C."]}, "rst unit1: A. B. unit2: C."),
    ],
)
def test_t5_input_format(name: str, row: dict, expected: str) -> None:
    assert get_task(name).format_input(row) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("glue/sst2", "glue/sst2"),
        ("sst2", "glue/sst2"),
        ("SST2", "glue/sst2"),
        ("boolq", "superglue/boolq"),
        ("pdtb_e", "discoeval/PDTB-E"),
        ("sparxiv", "discoeval/SParxiv"),
        ("xsum", "summarization/xsum"),
    ],
)
def test_get_task_by_full_or_short_name(query: str, expected: str) -> None:
    assert get_task(query).name == expected


def test_ambiguous_short_name_lists_candidates() -> None:
    with pytest.raises(ConfigError, match=r"ambiguous.*glue/rte.*superglue/rte"):
        get_task("rte")


def test_unknown_task_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'sst3'.*glue/sst2"):
        get_task("sst3")


USER_TASK = """
benchmark: mine
defaults:
  metrics: [accuracy]
tasks:
  - name: sentiment
    source:
      local:
        files: {train: train.csv, validation: dev.csv}
    input_template: "sentiment: {review}"
    labels: [bad, good]
    splits: {train: train, validation: [validation]}
"""


def test_user_config_dir_tasks_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T5LAB_CONFIG_DIR", str(tmp_path))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text(USER_TASK, encoding="utf-8")
    task = get_task("sentiment")
    assert task.name == "mine/sentiment"
    assert task.origin == f"{tmp_path / 'tasks' / 'mine.yaml'}:6"
    assert task.label_words == ["bad", "good"]
    assert "mine/sentiment" in [t.name for t in list_tasks()]


def test_task_file_overrides_a_builtin_task(tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(
        "- name: glue/sst2\n  source: {hub: {path: my/sst2}}\n  input_template: 'review: {sentence}'\n"
        "  labels: {0: neg, 1: pos}\n  metrics: [accuracy, f1]\n",
        encoding="utf-8",
    )
    task = get_task("glue/sst2", task_files=[override])
    assert (task.hub.path, task.label_words, task.metrics) == ("my/sst2", ["neg", "pos"], ("accuracy", "f1"))
    assert get_task("glue/sst2").hub.path == "nyu-mll/glue"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks:\n  - name: a\n    labels: [x, y\n", r"bad\.yaml is not valid YAML at line 4"),
        # a NUL byte: PyYAML's reader refuses it before parsing (this used to be a traceback)
        ("tasks:\n  - name: a\x00\n", r"bad\.yaml is not valid YAML: character #x0000 at position 18"),
        ("", r"bad\.yaml is empty"),
        ("just a string\n", r"must hold a list of tasks"),
        ("task: []\n", r"unknown top-level key 'task'"),
        ("tasks: {name: a}\n", r"'tasks' must be a list"),
    ],
)
def test_malformed_task_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_task_file(path)


def test_task_defined_twice_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    task = "- {name: a/b, source: {hub: {path: x}}, input_template: '{t}', labels: [n, y], metrics: [accuracy]}\n"
    path.write_text(task * 2, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'a/b' twice \(.*twice\.yaml:1 and .*twice\.yaml:2\)"):
        load_task_file(path)


def test_missing_task_file() -> None:
    with pytest.raises(ConfigError, match="task file nowhere.yaml does not exist"):
        get_task("sst2", task_files=["nowhere.yaml"])


def test_docs_worked_example(tmp_path: Path) -> None:
    """The user-defined tasks of docs/tasks.md load and read the CSV layout the docs describe."""
    from t5lab.tasks.readers import load_task_splits

    docs = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text(encoding="utf-8")
    yaml_text = docs.split("```yaml\nbenchmark: mine\n", 1)[1].split("```", 1)[0]
    task_file = tmp_path / "reviews.yaml"
    task_file.write_text("benchmark: mine\n" + yaml_text, encoding="utf-8")
    header = "title,body,sentiment,stars\n"
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "train.csv").write_text(header + "Great kettle,Boils fast.,positive,5\n", encoding="utf-8")
    (tmp_path / "reviews" / "dev.csv").write_text(header + 'Leaks,"Wet, always.",negative,1\n', encoding="utf-8")

    task = get_task("mine/reviews", task_files=[task_file])
    splits = load_task_splits(task, data_dir=tmp_path)
    assert task.format_input(splits["train"][0]) == "review title: Great kettle body: Boils fast."
    assert task.format_target(splits["train"][0]) == "positive"
    assert (task.parse(" Positive "), task.parse("meh")) == ("positive", None)
    stars = get_task("review_stars", task_files=[task_file])
    assert stars.format_target(load_task_splits(stars, data_dir=tmp_path)["validation"][0]) == "1"


def test_task_entry_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just a name\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"task #1 \(.*list\.yaml:1\) must be a mapping of fields"):
        load_task_file(path)
