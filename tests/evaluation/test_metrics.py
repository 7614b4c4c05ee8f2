"""Every metric against a direct computation (by hand, scikit-learn, scipy, rouge_score), invalid predictions,
task-level scoring and the GLUE average."""

from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer
from scipy import stats
from sklearn import metrics as sk

from t5lab.errors import ConfigError, DataError
from t5lab.evaluation import metrics as m
from t5lab.tasks.registry import builtin_tasks, get_task
from t5lab.tasks.scoring import compute_metrics

RNG = np.random.default_rng(0)
REFS = RNG.integers(0, 3, size=200)
PREDS = np.where(RNG.random(200) < 0.7, REFS, RNG.integers(-1, 3, size=200))  # some wrong, some invalid (-1)
SCORES = RNG.uniform(0, 5, size=100)
PREDICTED_SCORES = SCORES + RNG.normal(0, 1, size=100)


def test_hand_computed_classification() -> None:
    predictions, references = [1, 0, -1, 1, 0], [1, 1, 1, 0, 0]
    assert m.accuracy(predictions, references) == pytest.approx(2 / 5)
    # positive class 1: TP=1, FP=1, FN=2 (the invalid prediction is a miss) -> P=1/2, R=1/3, F1=0.4
    assert m.f1(predictions, references) == pytest.approx(0.4)
    # class 0: TP=1, FP=1, FN=1 -> F1=0.5; class 1: 0.4
    assert m.f1_macro(predictions, references, labels=[0, 1]) == pytest.approx(0.45)
    assert m.group_exact_match(predictions, references, ["a", "a", "b", "c", "c"]) == pytest.approx(0.0)
    assert m.group_exact_match([1, 1, 0], [1, 1, 1], ["q1", "q1", "q2"]) == pytest.approx(0.5)


def test_classification_against_scikit_learn() -> None:
    binary_refs, binary_preds = REFS % 2, np.where(PREDS == -1, -1, PREDS % 2)
    assert m.accuracy(PREDS, REFS) == pytest.approx(sk.accuracy_score(REFS, PREDS))
    assert m.f1(binary_preds, binary_refs) == pytest.approx(sk.f1_score(binary_refs, binary_preds == 1))
    assert m.f1(binary_preds, binary_refs, positive_label=0) == pytest.approx(
        sk.f1_score(binary_refs == 0, binary_preds == 0)
    )
    assert m.f1_macro(PREDS, REFS, [0, 1, 2]) == pytest.approx(
        np.mean([sk.f1_score(REFS == c, PREDS == c) for c in range(3)])
    )
    assert m.mcc(PREDS, REFS) == pytest.approx(sk.matthews_corrcoef(REFS, PREDS))


def test_regression_against_scipy() -> None:
    assert m.pearson(PREDICTED_SCORES, SCORES) == pytest.approx(stats.pearsonr(PREDICTED_SCORES, SCORES)[0])
    assert m.spearmanr(PREDICTED_SCORES, SCORES) == pytest.approx(stats.spearmanr(PREDICTED_SCORES, SCORES)[0])
    assert m.pearson([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0  # undefined (constant) is 0, not NaN


def test_text_metrics() -> None:
    predictions = ["The cats are running.", "a dog", "Paris"]
    references = ["the cat is running", "the dog barked", ["paris, France", "Paris"]]
    assert m.exact_match(predictions, references) == pytest.approx(1 / 3)
    # SQuAD: "cats are running" vs "cat is running": 1 common token of 3 and 3 -> 1/3; "dog" vs "dog barked": 2/3
    assert m.squad_f1(predictions, references) == pytest.approx((1 / 3 + 2 / 3 + 1.0) / 3)
    assert m.squad_exact_match(["The  Paris!", "x"], ["paris", "y"]) == pytest.approx(0.5)
    assert m.normalize_answer("The Quick, brown fox!") == "quick brown fox"
    summaries, gold = ["the cats sat on mats", "hello world"], ["a cat sat on the mat", "goodbye world"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = [scorer.score(g, s) for s, g in zip(summaries, gold)]
    for name, value in m.rouge(summaries, gold, ("rouge1", "rouge2", "rougeL")).items():
        assert value == pytest.approx(np.mean([d[name].fmeasure for d in direct]))
    best = m.rouge(["hello world"], [["goodbye world", "hello world"]])
    assert best == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "rougeLsum": 1.0}


def test_rouge_lsum_scores_sentence_split_text_like_run_summarization(shared_data) -> None:
    import json

    rows = [json.loads(line) for line in (shared_data / "summarization/xsum/test.jsonl").read_text().splitlines()[:30]]
    lead3 = [" ".join(row["document"].split("\n")[:3]) for row in rows]  # the lead-3 baseline, several sentences
    summaries = [row["summary"] for row in rows]
    scores = m.rouge(lead3, summaries)
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    direct = [
        scorer.score(m.split_sentences(g), m.split_sentences(p))["rougeLsum"].fmeasure for p, g in zip(lead3, summaries)
    ]
    assert scores["rougeLsum"] == pytest.approx(np.mean(direct))
    assert all(m.split_sentences(p).count("\n") >= 2 for p in lead3[:5])  # the split happened
    assert scores["rougeLsum"] != pytest.approx(scores["rougeL"])  # summary-level LCS differs from plain LCS


@pytest.mark.parametrize("name", [t.name for t in builtin_tasks()])
def test_compute_metrics_returns_every_metric_of_every_task(name: str) -> None:
    task = get_task(name)
    if task.kind == "classification":
        predictions, references = [task.label_words[0], task.label_words[1], "??"], [0, 1, 1]
    elif task.kind == "regression":
        predictions, references = ["1.0", "2.4", "x"], [1.2, 2.0, 4.0]
    else:
        predictions, references = ["a summary", "another one", ""], ["a summary", "one more", "text"]
    groups = ["q1", "q1", "q2"] if task.group_column else None
    results = compute_metrics(task, predictions, references, groups)
    assert list(results) == task.produced_metrics
    assert results["invalid_rate"] == pytest.approx(1 / 3)
    assert all(isinstance(v, float) and np.isfinite(v) for v in results.values())


def test_compute_metrics_on_mrpc_by_hand() -> None:
    results = compute_metrics(
        get_task("mrpc"),
        ["equivalent", " not_equivalent ", "maybe", "Equivalent"],
        ["equivalent", "not_equivalent", "equivalent", "not_equivalent"],
    )
    # preds 1,0,invalid,1 vs refs 1,0,1,0: accuracy 1/2; TP=1 FP=1 FN=1 -> F1 1/2
    assert results == {"f1": 0.5, "accuracy": 0.5, "combined_score": 0.5, "invalid_rate": 0.25}


def test_compute_metrics_on_stsb_substitutes_invalid_predictions() -> None:
    references = [3.9, 1.2, 2.0, 4.0]
    results = compute_metrics(get_task("stsb"), ["3.8", "1.0", "not a number", "4.2"], references)
    substituted = [3.8, 1.0, m.INVALID_REGRESSION_VALUE, 4.2]
    assert results["pearson"] == pytest.approx(stats.pearsonr(substituted, references)[0])
    assert results["spearmanr"] == pytest.approx(stats.spearmanr(substituted, references)[0])
    assert results["combined_score"] == pytest.approx((results["pearson"] + results["spearmanr"]) / 2)
    assert results["invalid_rate"] == 0.25


def test_compute_metrics_on_multirc_groups() -> None:
    results = compute_metrics(
        get_task("multirc"), ["True", "False", "True", "True"], [1, 0, 0, 1], groups=["0-1", "0-1", "0-2", "0-2"]
    )
    # F1a: TP=2 FP=1 FN=0 -> 0.8; EM: question 0-1 right, 0-2 wrong -> 0.5
    assert results == pytest.approx({"f1a": 0.8, "group_exact_match": 0.5, "combined_score": 0.65, "invalid_rate": 0.0})


@pytest.mark.parametrize(
    ("task", "predictions", "references", "groups", "message"),
    [
        ("sst2", ["positive"], [1, 0], None, r"1 predictions but 2 references"),
        ("sst2", [], [], None, r"no predictions"),
        ("multirc", ["True"], [1], None, r"need the group of each example \(column 'question_id'\)"),
        ("sst2", ["positive"], [-1], None, r"unlabeled"),
        ("sst2", ["positive"], ["great"], None, r"label value 'great'"),
        ("stsb", ["1.0"], [float("nan")], None, r"unlabeled"),
    ],
)
def test_compute_metrics_errors(task, predictions, references, groups, message) -> None:
    with pytest.raises(DataError, match=message):
        compute_metrics(get_task(task), predictions, references, groups)


def test_glue_average() -> None:
    results = {
        "glue/cola": {"mcc": 0.5, "accuracy": 0.9},
        "glue/sst2": {"accuracy": 0.9},
        "mrpc": {"f1": 0.8, "accuracy": 0.6},
        "glue/stsb": {"pearson": 0.7, "spearmanr": 0.9},
        "glue/qqp": {"f1": 0.7, "accuracy": 0.9},
        "glue/mnli": {"validation_matched": {"accuracy": 0.8}, "validation_mismatched": {"accuracy": 0.6}},
        "glue/qnli": {"accuracy": 0.9},
        "glue/rte": {"accuracy": 0.6},
        "glue/wnli": {"accuracy": 0.5},
        "superglue/rte": {"accuracy": 0.0},  # another benchmark: ignored
    }
    expected = np.mean([0.5, 0.9, 0.7, 0.8, 0.8, 0.7, 0.9, 0.6, 0.5])
    assert m.glue_average(results) == pytest.approx(expected)


def test_glue_average_errors() -> None:
    with pytest.raises(ConfigError, match=r"GLUE results of cola lack mcc"):
        m.glue_average({"cola": {"accuracy": 0.9}})
    with pytest.raises(ConfigError, match=r"no GLUE task among the results \(superglue/boolq\)"):
        m.glue_average({"superglue/boolq": {"accuracy": 0.9}})
