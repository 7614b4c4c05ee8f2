"""Scores of parsed generations against references, by metric name.

Every score is a float on the 0..1 scale (correlations on -1..1), as the Hugging Face examples report them.
Metric functions see plain predictions and references, never a task: the task's own postprocessing (parsing a
generation, mapping label words to ids: :func:`t5lab.tasks.scoring.compute_metrics`) is the bridge. A generation
that matches no label, is not a number, or is empty is *invalid*. Invalid predictions always count as wrong:

* classification: an invalid prediction is the id ``-1``, a class no reference has. It is never correct; binary
  F1 counts it as a negative prediction, macro F1 as a miss of the true class, MCC as an extra predicted class.
* regression: an invalid prediction is scored as ``-1.0``, T5's convention for STS-B (below its 0..5 range).
* text: an invalid (empty) prediction is scored as the empty string.

``invalid_rate`` (the fraction of invalid predictions) is always reported, so a substitute never hides a problem.
Correlations that are undefined (constant predictions) are reported as 0.0 rather than NaN, so that best-model
selection keeps working.
"""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from t5lab.errors import ConfigError

INVALID_LABEL = -1
INVALID_REGRESSION_VALUE = -1.0
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_PUNCTUATION = frozenset(string.punctuation)


# --- metric functions -------------------------------------------------------------------------------------


def accuracy(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Fraction of predictions equal to their reference."""
    return float(np.mean(np.asarray(predictions) == np.asarray(references)))


def f1(predictions: Sequence[int], references: Sequence[int], positive_label: int = 1) -> float:
    """Binary F1 of the positive class (every other prediction, invalid ones included, is negative)."""
    return float(
        f1_score(np.asarray(references) == positive_label, np.asarray(predictions) == positive_label, zero_division=0)
    )


def f1_macro(predictions: Sequence[int], references: Sequence[int], labels: Sequence[int]) -> float:
    """Unweighted mean of the per-class F1 over ``labels`` (T5's ``mean_multiclass_f1``)."""
    return float(f1_score(references, predictions, labels=list(labels), average="macro", zero_division=0))


def mcc(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Matthews correlation coefficient (GLUE's CoLA metric)."""
    return float(matthews_corrcoef(references, predictions))


def group_exact_match(predictions: Sequence[Any], references: Sequence[Any], groups: Sequence[Hashable]) -> float:
    """Fraction of groups whose predictions are all correct (MultiRC's per-question EM)."""
    all_correct: dict[Hashable, bool] = defaultdict(lambda: True)
    for prediction, reference, group in zip(predictions, references, groups):
        all_correct[group] &= prediction == reference
    return float(np.mean(list(all_correct.values())))


def _correlation(function: Callable, predictions: Sequence[float], references: Sequence[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: reported as 0.0 below
        value = function(np.asarray(predictions, dtype=float), np.asarray(references, dtype=float))[0]
    return 0.0 if np.isnan(value) else float(value)


def pearson(predictions: Sequence[float], references: Sequence[float]) -> float:
    """Pearson correlation."""
    return _correlation(stats.pearsonr, predictions, references)


def spearmanr(predictions: Sequence[float], references: Sequence[float]) -> float:
    """Spearman rank correlation."""
    return _correlation(stats.spearmanr, predictions, references)


def _as_references(reference: str | Sequence[str]) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def exact_match(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Fraction of predictions equal (after stripping whitespace) to their reference, or to one of them."""
    hits = [p.strip() in {r.strip() for r in _as_references(refs)} for p, refs in zip(predictions, references)]
    return float(np.mean(hits))


def split_sentences(text: str) -> str:
    """One sentence per line, as run_summarization prepares text for rougeLsum: nltk's Punkt model when its data
    is installed (``nltk.download("punkt_tab")``), else Punkt's untrained defaults (which also split after
    abbreviations such as "Mr.")."""
    import nltk

    try:
        return "\n".join(nltk.sent_tokenize(text.strip()))
    except LookupError:
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        return "\n".join(PunktSentenceTokenizer().tokenize(text.strip()))


def rouge(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], types: Sequence[str] = ROUGE_TYPES
) -> dict[str, float]:
    """Mean ROUGE F-measures by rouge type (rouge_score, Porter stemming; the best of an example's references).

    ``rougeLsum`` is the summary-level LCS over newline-separated sentences: texts are split into sentences
    first (:func:`split_sentences`), as Hugging Face's run_summarization does, so figures compare with papers.
    """
    from rouge_score import rouge_scorer  # imports nltk, which only summarization tasks need

    totals: Counter = Counter()
    for sentence_level, names in ((False, [t for t in types if t != "rougeLsum"]), (True, ["rougeLsum"])):
        if not names or not set(names) <= set(types):
            continue
        scorer = rouge_scorer.RougeScorer(names, use_stemmer=True)
        prepare = split_sentences if sentence_level else str
        for prediction, reference in zip(predictions, references):
            refs = [prepare(r) for r in _as_references(reference)]
            for name, score in scorer.score_multi(refs, prepare(prediction)).items():
                totals[name] += score.fmeasure
    return {name: totals[name] / len(predictions) for name in types}


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_f1(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """SQuAD token-overlap F1, the best over each example's references."""
    scores = [max(_token_f1(p, r) for r in _as_references(refs)) for p, refs in zip(predictions, references)]
    return float(np.mean(scores))


def squad_exact_match(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """SQuAD exact match after answer normalization, against any of each example's references."""
    return float(
        np.mean(
            [
                any(normalize_answer(p) == normalize_answer(r) for r in _as_references(refs))
                for p, refs in zip(predictions, references)
            ]
        )
    )


# --- registry ---------------------------------------------------------------------------------------------


@dataclass
class _Scoring:
    """One task's parsed predictions and references, shared by the metrics computed on them."""

    predictions: list
    references: list
    groups: Sequence[Hashable] | None
    label_ids: list[int]
    positive_label: int | None

    @cached_property
    def rouge(self) -> dict[str, float]:
        return rouge(self.predictions, self.references)


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is computed and which tasks it applies to."""

    kind: str  # "classification", "regression" or "text": the task kind it needs
    compute: Callable[[_Scoring], float]
    binary: bool = False  # needs exactly two labels
    grouped: bool = False  # needs the task's group_column
    greater_is_better: bool = True  # every registered metric is a score; loss and invalid_rate are not metrics here


METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec("classification", lambda s: accuracy(s.predictions, s.references)),
    "f1": MetricSpec("classification", lambda s: f1(s.predictions, s.references, s.positive_label), binary=True),
    # MultiRC's F1 over all answer options: binary F1 of the "True" answers, under SuperGLUE's name.
    "f1a": MetricSpec("classification", lambda s: f1(s.predictions, s.references, s.positive_label), binary=True),
    "f1_macro": MetricSpec("classification", lambda s: f1_macro(s.predictions, s.references, s.label_ids)),
    "mcc": MetricSpec("classification", lambda s: mcc(s.predictions, s.references)),
    "group_exact_match": MetricSpec(
        "classification", lambda s: group_exact_match(s.predictions, s.references, s.groups), grouped=True
    ),
    "pearson": MetricSpec("regression", lambda s: pearson(s.predictions, s.references)),
    "spearmanr": MetricSpec("regression", lambda s: spearmanr(s.predictions, s.references)),
    "exact_match": MetricSpec("text", lambda s: exact_match(s.predictions, s.references)),
    "squad_f1": MetricSpec("text", lambda s: squad_f1(s.predictions, s.references)),
    "squad_exact_match": MetricSpec("text", lambda s: squad_exact_match(s.predictions, s.references)),
    **{name: MetricSpec("text", lambda s, name=name: s.rouge[name]) for name in ROUGE_TYPES},
}
# The mean of a task's other metrics: GLUE's MRPC/QQP (F1, accuracy) and STS-B (Pearson, Spearman) scores.
COMBINED_SCORE = "combined_score"
INVALID_RATE = "invalid_rate"
ALIASES = {
    "acc": "accuracy",
    "matthews_correlation": "mcc",
    "matthews_corrcoef": "mcc",
    "pearsonr": "pearson",
    "spearman": "spearmanr",
    "em": "exact_match",
}


# Figures reported beside the metrics, where lower is better.
LOWER_IS_BETTER = frozenset({INVALID_RATE, "loss"})


def greater_is_better(metric: str) -> bool:
    """The direction of a metric, from its spec (``loss`` and ``invalid_rate`` are lower-is-better)."""
    if metric in LOWER_IS_BETTER:
        return False
    return METRICS[metric].greater_is_better if metric in METRICS else True


def known_metrics() -> list[str]:
    """Every metric name a task may list (aliases excluded)."""
    return sorted([*METRICS, COMBINED_SCORE])


def canonical_metric(name: str) -> str | None:
    """The registered name of ``name`` or of its alias; None when unknown."""
    name = ALIASES.get(name, name)
    return name if name in METRICS or name == COMBINED_SCORE else None


# --- scoring ----------------------------------------------------------------------------------------------


def score(
    metrics: Sequence[str],
    predictions: Sequence[Any],
    references: Sequence[Any],
    groups: Sequence[Hashable] | None = None,
    label_ids: Sequence[int] = (),
    positive_label: int | None = None,
) -> dict[str, float]:
    """Compute ``metrics`` (registered names, ``combined_score`` included) on parsed predictions.

    Classification predictions and references are label ids (invalid predictions ``INVALID_LABEL``), regression
    ones floats, text ones strings (references may be lists of acceptable strings).
    """
    scoring = _Scoring(list(predictions), list(references), groups, sorted(label_ids), positive_label)
    results = {name: METRICS[name].compute(scoring) for name in metrics if name != COMBINED_SCORE}
    if COMBINED_SCORE in metrics:
        results[COMBINED_SCORE] = float(np.mean(list(results.values())))
    return results


# --- GLUE -------------------------------------------------------------------------------------------------

# GLUE's per-task score: the mean of these metrics (the leaderboard convention).
GLUE_MAIN_METRICS = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"),
    "qqp": ("f1", "accuracy"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}


def _glue_task_score(task: str, results: Mapping[str, Any]) -> float:
    if all(isinstance(v, Mapping) for v in results.values()):
        # One result per validation split (MNLI matched and mismatched): their mean.
        return float(np.mean([_glue_task_score(task, split_results) for split_results in results.values()]))
    missing = [m for m in GLUE_MAIN_METRICS[task] if m not in results]
    if missing:
        raise ConfigError(f"GLUE results of {task} lack {', '.join(missing)} (have: {', '.join(results) or 'none'}).")
    return float(np.mean([results[m] for m in GLUE_MAIN_METRICS[task]]))


def glue_average(per_task_results: Mapping[str, Mapping[str, Any]]) -> float:
    """The GLUE score: the mean over the given GLUE tasks of each task's main score.

    Keys are task names ("glue/cola" or "cola"); values map metric names to scores, or, for a task evaluated on
    several validation splits (MNLI matched and mismatched), split names to such mappings, whose scores are
    averaged. Main scores: CoLA MCC, STS-B mean of Pearson and Spearman, MRPC and QQP mean of F1 and accuracy,
    the others accuracy. Keys of other benchmarks are ignored; ``glue/ax`` has no labels and is never scored.
    """
    scores = []
    for name, results in per_task_results.items():
        benchmark, _, short = name.rpartition("/")
        if benchmark in ("", "glue") and short in GLUE_MAIN_METRICS:
            scores.append(_glue_task_score(short, results))
    if not scores:
        raise ConfigError(
            f"no GLUE task among the results ({', '.join(per_task_results) or 'none'}); "
            f"expected some of {', '.join(GLUE_MAIN_METRICS)}."
        )
    return float(np.mean(scores))
