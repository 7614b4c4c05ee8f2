"""Task validation (every bad field is a ConfigError naming it), verbalizers, parsing and targets."""

from __future__ import annotations

import copy
import math
import re

import pytest

from t5lab.errors import ConfigError, DataError
from t5lab.tasks.registry import builtin_tasks, get_task
from t5lab.tasks.schema import UNLABELED, Task

VALID = {
    "name": "demo/sentiment",
    "source": {"hub": {"path": "me/reviews"}, "local": {"files": {"train": "train.csv", "validation": "dev.csv"}}},
    "input_template": "sentiment: {review}",
    "labels": {0: "negative", 1: "positive"},
    "metrics": ["accuracy", "f1"],
}


def _with(**changes) -> dict:
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def test_valid_task_defaults() -> None:
    task = Task.from_dict(VALID, "demo.yaml:1")
    assert task.kind == "classification"
    assert (task.metric_to_optimize, task.greater_is_better, task.label_column) == ("accuracy", True, "label")
    assert (task.positive_label, task.splits.names()) == (1, ["train", "validation", "test"])
    assert task.produced_metrics == ["accuracy", "f1", "invalid_rate"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_template": None}, r"field 'input_template' is missing"),
        ({"name": None}, r"field 'name' is missing"),
        ({"name": "a/b/c"}, r"field 'name' must be letters"),
        ({"metrics": "accuracy,f1"}, r"unknown metric 'accuracy,f1'"),  # a string is one metric name
        ({"metrics": 5}, r"field 'metrics' must be a string or a list of strings, got int 5"),
        ({"metrics": []}, r"field 'metrics' must be a string or a list of non-empty strings"),
        ({"metrics": ["acuracy"]}, r"unknown metric 'acuracy'; did you mean 'accuracy'\? known: accuracy, "),
        ({"metrics": ["pearson"]}, r"'pearson', a regression metric, but the task is classification"),
        ({"metrics": ["combined_score"]}, r"mean of the other metrics"),
        ({"metric_to_optimize": "rougeL"}, r"field 'metric_to_optimize' is 'rougeL'.*accuracy, f1, invalid_rate"),
        ({"greater_is_better": "yes"}, r"field 'greater_is_better' must be true or false, got str 'yes'"),
        ({"labels": {0: "negative", 1: True}}, r"field 'labels.1' must be a non-empty word.*quote"),
        ({"labels": {"x": "a", "y": "b"}}, r"field 'labels.x' must be a label id"),
        ({"labels": ["a", "A"]}, r"field 'labels' must be distinct"),
        ({"labels": {0: "a", 1: "b", 2: "c"}}, r"'f1', which needs two labels.*f1_macro"),
        ({"labels": None}, r"field 'labels' is missing"),
        ({"regression": {"round_to": 0.2}}, r"field 'labels / regression' are exclusive"),
        ({"target_template": "{summary}"}, r"field 'labels / target_template' are exclusive"),
        ({"label_colum": "y"}, r"field 'label_colum' is not a known field; did you mean 'label_column'\?"),
        ({"positive_label": "neutral"}, r"field 'positive_label' must be one of the labels"),
        ({"input_template": "review: {}"}, r"field 'input_template' is not a valid template: placeholder"),
        ({"input_template": "no placeholder"}, r"names no column"),
        ({"input_template": "{review:>10}"}, r"plain column name"),
        ({"preprocessor": "flatten"}, r"field 'preprocessor' is 'flatten'; known preprocessors: multirc, wsc"),
        ({"splits": {"train": "train", "dev": ["dev"]}}, r"field 'splits.dev' is not a known field"),
        ({"splits": {"train": "a", "validation": ["a"]}}, r"field 'splits' names a split twice"),
        ({"splits": {"validation": "validation"}}, r"field 'source.local.files.train' is not a split of the task"),
        ({"source": {}}, r"field 'source' needs hub"),
        ({"source": "nyu-mll/glue"}, r"field 'source' must be a mapping"),
        ({"source": {"hub": {"name": "sst2"}}}, r"field 'source.hub.path' is missing"),
        ({"source": {"local": {"files": {"train": "t"}, "format": "xlsx"}}}, r"'source.local.format' must be one of"),
        ({"source": {"local": {"files": {"train": "t"}, "quoting": "all"}}}, r"'source.local.quoting' must be one of"),
        ({"metrics": ["group_exact_match"]}, r"needs group_column"),
    ],
)
def test_bad_task_names_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Task.from_dict(_with(**changes), "demo.yaml:3")
    text = str(info.value)
    assert text.startswith("task '") and "(demo.yaml:3)" in text and "\n" not in text
    assert re.search(message, text), text


def test_regression_and_text_tasks() -> None:
    regression = Task.from_dict(_with(labels=None, regression={"round_to": 0.25}, metrics=["pearson", "spearman"]))
    assert regression.kind == "regression" and regression.metrics == ("pearson", "spearmanr")
    assert regression.format_target({"label": 3.13}) == "3.25"
    text = Task.from_dict(_with(labels=None, target_template="{summary}", metrics=["rouge1", "em"]))
    assert text.kind == "text" and text.metrics == ("rouge1", "exact_match")
    with pytest.raises(ConfigError, match="label_column' applies to tasks with labels"):
        Task.from_dict(_with(labels=None, target_template="{summary}", metrics=["rouge1"], label_column="y"))


@pytest.mark.parametrize(("alias", "canonical"), [("matthews_correlation", "mcc"), ("acc", "accuracy")])
def test_metric_aliases(alias: str, canonical: str) -> None:
    task = Task.from_dict(_with(metrics=[alias], metric_to_optimize=alias))
    assert task.metrics == (canonical,) and task.metric_to_optimize == canonical


CLASSIFICATION = [t.name for t in builtin_tasks() if t.kind == "classification"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_every_label_word_parses_back(name: str) -> None:
    task = get_task(name)
    for label_id, word in task.labels.items():
        assert task.parse(word) == word
        assert task.parse(f"  {word.upper()}\n") == word
        assert task.format_target({task.label_column: label_id}) == word
        assert task.label_to_id(word) == label_id
    assert task.parse("certainly not a label") is None
    assert task.parse("") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        ("1", 1),
        (" 0 ", 0),
        (True, 1),
        (False, 0),
        (1.0, 1),
        ("positive", 1),
        ("NEGATIVE", 0),
        (-1, UNLABELED),
        (None, UNLABELED),
        (float("nan"), UNLABELED),
    ],
)
def test_label_values_to_ids(value, expected: int) -> None:
    assert Task.from_dict(VALID).label_to_id(value) == expected


@pytest.mark.parametrize("value", [2, "neutral", 0.5, "", [1]])
def test_label_values_outside_the_verbalizer(value) -> None:
    with pytest.raises(ValueError, match=r"is not one of task demo/sentiment's labels \(0=negative, 1=positive\)"):
        Task.from_dict(VALID).label_to_id(value)


@pytest.mark.parametrize(
    ("score", "target"),
    [(3.8, "3.8"), (3.9, "4.0"), (3.7, "3.6"), (0.0, "0.0"), (5.0, "5.0"), ("4.333", "4.4"), (1.11, "1.2")],
)
def test_stsb_targets_round_to_a_fifth_like_t5(score, target: str) -> None:
    # T5: tf.round(score * 5) / 5 with one decimal; tf.round rounds halves to even (3.7 * 5 = 18.5 -> 18).
    assert get_task("glue/stsb").format_target({"label": score}) == target


@pytest.mark.parametrize(
    ("text", "value"),
    [("3.8", 3.8), (" 4 ", 4.0), ("-0.2", -0.2), ("nan", None), ("inf", None), ("four", None), ("", None)],
)
def test_regression_parse(text: str, value: float | None) -> None:
    assert get_task("glue/stsb").parse(text) == value


def test_unlabeled_rows_have_no_target() -> None:
    assert get_task("glue/sst2").format_target({"sentence": "x", "label": -1}) is None
    assert get_task("glue/sst2").format_target({"sentence": "x"}) is None
    assert get_task("glue/stsb").format_target({"label": math.nan}) is None


def test_bad_rows_raise_data_errors() -> None:
    with pytest.raises(DataError, match=r"row lacks column 'sentence'.*columns: text"):
        get_task("glue/sst2").format_input({"text": "x"})
    with pytest.raises(DataError, match=r"label value 'great'"):
        get_task("glue/sst2").format_target({"sentence": "x", "label": "great"})
