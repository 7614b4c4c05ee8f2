"""A fine-tuning task: where its data comes from, how a row becomes text-to-text, and how generations are scored.

Tasks are declared in YAML (docs/tasks.md) and validated on load: every problem is a one-line
:class:`~t5lab.errors.ConfigError` naming the task, the field and what was expected.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from t5lab.errors import ConfigError, DataError
from t5lab.evaluation.metrics import COMBINED_SCORE, INVALID_RATE, METRICS, canonical_metric, known_metrics
from t5lab.tasks.formatting import PREPROCESSORS, Template, format_number

ROLES = ("train", "validation", "test")
FORMATS = ("tsv", "csv", "jsonl", "json", "parquet")
QUOTING = ("auto", "none", "csv")
UNLABELED = -1  # label id of a row without a label (the Hugging Face convention for hidden test labels)
_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_REQUIRED = object()


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub data set: ``datasets.load_dataset(path, name, revision=revision)``."""

    path: str
    name: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class LocalSource:
    """Files of a local copy, one per split, in ``folder`` under ``--data_dir`` (or in ``--data_dir`` itself)."""

    files: dict[str, str]
    folder: str | None = None
    format: str | None = None  # one of FORMATS; default: from each file's extension
    columns: tuple[str, ...] | None = None  # column names of files without a header line (CoLA)
    rename: dict[str, str] = field(default_factory=dict)  # file column -> column the templates use
    quoting: str = "auto"  # tsv: GLUE's unquoted fields, except Hugging Face exports (with an `idx` column)


@dataclass(frozen=True)
class Splits:
    """The split names of each role: one training split, any number of validation and test splits."""

    train: str | None = "train"
    validation: tuple[str, ...] = ("validation",)
    test: tuple[str, ...] = ("test",)

    def names(self, role: str | None = None) -> list[str]:
        """Split names of ``role`` (train, validation or test), or of all roles."""
        roles = ROLES if role is None else (role,)
        by_role = {"train": (self.train,) if self.train else (), "validation": self.validation, "test": self.test}
        return [name for r in roles for name in by_role[r]]

    def role_of(self, split: str) -> str | None:
        """The role of split ``split``, or None when the task does not name it."""
        return next((role for role in ROLES if split in self.names(role)), None)


@dataclass(frozen=True)
class Task:
    """One text-to-text task (see docs/tasks.md for the YAML fields)."""

    name: str
    input_template: Template
    metrics: tuple[str, ...]
    metric_to_optimize: str
    greater_is_better: bool = True
    hub: HubSource | None = None
    local: LocalSource | None = None
    target_template: Template | None = None
    label_column: str = "label"
    labels: dict[int, str] | None = None
    positive_label: int | None = None
    regression: bool = False
    round_to: float | None = None
    splits: Splits = Splits()
    preprocessor: str | None = None
    group_column: str | None = None
    description: str = ""
    origin: str = ""  # file:line it was declared at

    @property
    def short_name(self) -> str:
        """The name without its benchmark ("sst2" for "glue/sst2")."""
        return self.name.rpartition("/")[2]

    @property
    def kind(self) -> str:
        """ "classification" (labels), "regression" or "text" (a target template)."""
        if self.labels is not None:
            return "classification"
        return "regression" if self.regression else "text"

    @property
    def label_words(self) -> list[str]:
        """The verbalized labels in id order (the candidates of rank classification)."""
        return [self.labels[i] for i in sorted(self.labels)] if self.labels else []

    @property
    def produced_metrics(self) -> list[str]:
        """The keys :func:`~t5lab.evaluation.metrics.compute_metrics` returns for this task."""
        return [*self.metrics, INVALID_RATE]

    def required_columns(self, labeled: bool) -> list[str]:
        """Columns a split needs: the input template's, the group column, and the target's when labeled."""
        columns = [*self.input_template.fields, *([self.group_column] if self.group_column else [])]
        if labeled:
            columns += self.target_template.fields if self.target_template else [self.label_column]
        return list(dict.fromkeys(columns))

    @cached_property
    def _word_ids(self) -> tuple[dict[str, int], dict[str, int]]:
        words = {w: i for i, w in (self.labels or {}).items()}
        return words, {w.casefold(): i for w, i in words.items()}

    def _word_to_id(self, text: str) -> int | None:
        """The id of a label word, matched exactly, else ignoring case."""
        exact, folded = self._word_ids
        return exact[text] if text in exact else folded.get(text.casefold())

    def label_to_id(self, value: Any) -> int:
        """The label id of a data value: an id, a label word, a digit string or a boolean (True is 1).

        None, NaN and -1 mean unlabeled (:data:`UNLABELED`). A ValueError names a value outside the verbalizer.
        """
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return UNLABELED
        if hasattr(value, "item"):  # numpy scalars
            value = value.item()
        label_id = None
        if isinstance(value, str):
            text = value.strip()
            label_id = self._word_to_id(text)
            if label_id is None and re.fullmatch(r"-?\d+", text):
                label_id = int(text)
        elif isinstance(value, (bool, int)) or (isinstance(value, float) and value.is_integer()):
            label_id = int(value)
        if label_id is not None and (label_id == UNLABELED or label_id in self.labels):
            return label_id
        choices = ", ".join(f"{i}={w}" for i, w in sorted(self.labels.items()))
        raise ValueError(f"label value {value!r} is not one of task {self.name}'s labels ({choices})")

    def value_to_float(self, value: Any) -> float:
        """A regression label as a float (NaN when unlabeled); a ValueError names a value that is not a number."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return math.nan
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"label value {value!r} of task {self.name} is not a number") from None

    def format_input(self, row: Mapping[str, Any]) -> str:
        """The model input of a row."""
        return self.input_template.render(row)

    def format_target(self, row: Mapping[str, Any]) -> str | None:
        """The target text of a row: its label word, rounded score or target template; None when unlabeled."""
        if self.target_template is not None:
            return self.target_template.render(row)
        if self.label_column not in row:
            return None
        try:
            if self.regression:
                value = self.value_to_float(row[self.label_column])
                return None if math.isnan(value) else format_number(value, self.round_to)
            label_id = self.label_to_id(row[self.label_column])
        except ValueError as exc:
            raise DataError(f"{exc}.") from None
        return None if label_id == UNLABELED else self.labels[label_id]

    def parse(self, prediction: str) -> str | float | None:
        """A generation as a label word, a number or stripped text; None when it is invalid.

        Label words match exactly after stripping whitespace, else ignoring case. Text is invalid when empty.
        """
        text = prediction.strip()
        if self.kind == "classification":
            label_id = self._word_to_id(text)
            return None if label_id is None else self.labels[label_id]
        if self.kind == "regression":
            try:
                value = float(text)
            except ValueError:
                return None
            return value if math.isfinite(value) else None
        return text or None

    @classmethod
    def from_dict(cls, data: Any, origin: str = "", fallback_name: str = "?") -> Task:
        """Validate one task's YAML mapping; ``origin`` (file:line) is named in errors."""
        return _TaskParser(data, origin, fallback_name).parse()


class _TaskParser:
    """Reads one task mapping; every error names the task, where it is declared, the field and what was expected."""

    FIELDS = (
        "name",
        "description",
        "source",
        "preprocessor",
        "input_template",
        "target_template",
        "label_column",
        "labels",
        "positive_label",
        "regression",
        "metrics",
        "metric_to_optimize",
        "greater_is_better",
        "splits",
        "group_column",
    )

    def __init__(self, data: Any, origin: str, fallback_name: str) -> None:
        self.data = data
        self.origin = origin
        name = data.get("name") if isinstance(data, Mapping) else None
        self.task = name if isinstance(name, str) else fallback_name

    @property
    def where(self) -> str:
        return f" ({self.origin})" if self.origin else ""

    def error(self, path: str, problem: str) -> ConfigError:
        return ConfigError(f"task '{self.task}'{self.where}: field '{path}' {problem}.")

    def keys(self, mapping: Mapping, allowed: tuple[str, ...], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known fields: {', '.join(allowed)}"
                raise self.error(f"{path}{key}", f"is not a known field{suggestion}")

    def get(
        self, mapping: Mapping, key: str, types: type | tuple, expected: str, default: Any = _REQUIRED, path: str = ""
    ) -> Any:
        value = mapping.get(key, default)
        if value is _REQUIRED:
            raise self.error(path + key, f"is missing; it must be {expected}")
        if value is None and default is None:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise self.error(path + key, f"must be {expected}, got {type(value).__name__} {value!r}")
        return value

    def string_list(self, mapping: Mapping, key: str, path: str = "") -> tuple[str, ...]:
        value = self.get(mapping, key, (str, list), "a string or a list of strings", path=path)
        values = [value] if isinstance(value, str) else value
        if not values or not all(isinstance(v, str) and v for v in values):
            raise self.error(path + key, f"must be a string or a list of non-empty strings, got {value!r}")
        return tuple(values)

    def template(self, key: str, default: Any = _REQUIRED) -> Template | None:
        text = self.get(self.data, key, str, "a template string like 'sst2 sentence: {sentence}'", default)
        if text is None:
            return None
        try:
            return Template(text)
        except ValueError as exc:
            raise self.error(key, f"is not a valid template: {exc}") from None

    def parse(self) -> Task:
        if not isinstance(self.data, Mapping):
            raise ConfigError(f"task {self.task}{self.where} must be a mapping of fields, got {self.data!r}.")
        self.keys(self.data, self.FIELDS, "")
        name = self.get(self.data, "name", str, "a name like 'glue/sst2' (benchmark/task)")
        if not _NAME.match(name):
            raise self.error("name", "must be letters, digits, '_', '.', '-', with at most one '/' (e.g. glue/sst2)")
        splits = self.splits()
        hub, local = self.source(splits)
        labels, regression, round_to, target_template = self.kind_fields()
        kind = "classification" if labels is not None else "regression" if regression else "text"
        positive_label = self.positive_label(labels)
        group_column = self.get(self.data, "group_column", str, "a column name", None)
        metrics = self.metrics(kind, labels, positive_label, group_column)
        default_label_column = "label" if kind != "text" else None
        label_column = self.get(self.data, "label_column", str, "a column name", default_label_column)
        if kind == "text" and label_column is not None:
            raise self.error("label_column", "applies to tasks with labels or regression, not target_template")
        return Task(
            name=name,
            description=self.get(self.data, "description", str, "a string", ""),
            input_template=self.template("input_template"),
            target_template=target_template,
            label_column=label_column or "label",
            labels=labels,
            positive_label=positive_label,
            regression=regression,
            round_to=round_to,
            metrics=metrics,
            metric_to_optimize=self.metric_to_optimize(metrics),
            greater_is_better=self.get(self.data, "greater_is_better", bool, "true or false", True),
            hub=hub,
            local=local,
            splits=splits,
            preprocessor=self.preprocessor(),
            group_column=group_column,
            origin=self.origin,
        )

    def kind_fields(self) -> tuple[dict[int, str] | None, bool, float | None, Template | None]:
        given = [key for key in ("labels", "regression", "target_template") if self.data.get(key) is not None]
        if len(given) != 1:
            problem = "are exclusive; give one" if given else "is missing"
            raise self.error(
                " / ".join(given) if given else "labels",
                f"{problem} (labels for classification, regression for a score, target_template for generated text)",
            )
        labels = self.labels() if "labels" in given else None
        round_to = None
        if "regression" in given:
            regression = self.get(self.data, "regression", (dict, bool), "true or a mapping like {round_to: 0.2}")
            if regression is False:
                raise self.error("regression", "must be true or a mapping like {round_to: 0.2}; remove it instead")
            if isinstance(regression, dict):
                self.keys(regression, ("round_to",), "regression.")
                round_to = self.get(regression, "round_to", (int, float), "a positive number", None, "regression.")
                if round_to is not None and round_to <= 0:
                    raise self.error("regression.round_to", f"must be a positive number, got {round_to}")
        return labels, "regression" in given, round_to, self.template("target_template", None)

    def labels(self) -> dict[int, str]:
        expected = "a mapping of label ids to words, like {0: negative, 1: positive}"
        raw = self.get(self.data, "labels", (dict, list), expected)
        items = enumerate(raw) if isinstance(raw, list) else raw.items()
        labels: dict[int, str] = {}
        for key, word in items:
            label_id = int(key) if isinstance(key, str) and key.isdigit() else key
            if not isinstance(label_id, int) or isinstance(label_id, bool) or label_id < 0:
                raise self.error(f"labels.{key}", "must be a label id: an integer from 0")
            if not isinstance(word, str) or not word.strip():
                problem = f"must be a non-empty word, got {word!r} (quote words like 'True' in YAML)"
                raise self.error(f"labels.{key}", problem)
            labels[label_id] = word.strip()
        if len(labels) < 2:
            raise self.error("labels", "must have at least two labels")
        folded = [w.casefold() for w in labels.values()]
        if len(set(folded)) != len(folded):
            raise self.error("labels", f"must be distinct words (ignoring case), got {list(labels.values())}")
        return labels

    def positive_label(self, labels: dict[int, str] | None) -> int | None:
        value = self.get(self.data, "positive_label", (int, str), "a label id or word", None)
        if value is None:
            return 1 if labels is not None and len(labels) == 2 and 1 in labels else None
        if labels is None:
            raise self.error("positive_label", "applies only to tasks with labels")
        label_id = next((i for i, w in labels.items() if w == value), value)
        if label_id not in labels:
            raise self.error("positive_label", f"must be one of the labels {labels}, got {value!r}")
        return label_id

    def metrics(self, kind: str, labels: dict | None, positive_label: int | None, group_column: str | None) -> tuple:
        names = self.string_list(self.data, "metrics")
        metrics = []
        for raw in names:
            name = canonical_metric(raw)
            if name is None:
                hint = difflib.get_close_matches(raw, known_metrics(), n=1)
                suggestion = f"did you mean '{hint[0]}'? " if hint else ""
                known = ", ".join(known_metrics())
                raise self.error("metrics", f"names unknown metric '{raw}'; {suggestion}known: {known}")
            spec = METRICS.get(name)
            if spec is not None and spec.kind != kind:
                raise self.error("metrics", f"names '{raw}', a {spec.kind} metric, but the task is {kind}")
            if spec is not None and spec.binary and (len(labels) != 2 or positive_label is None):
                raise self.error(
                    "metrics",
                    f"names '{raw}', which needs two labels and a positive_label; use f1_macro for more labels",
                )
            if spec is not None and spec.grouped and not group_column:
                raise self.error("metrics", f"names '{raw}', which needs group_column (e.g. question_id)")
            metrics.append(name)
        if metrics == [COMBINED_SCORE]:
            raise self.error("metrics", f"'{COMBINED_SCORE}' is the mean of the other metrics; list them too")
        return tuple(dict.fromkeys(metrics))

    def metric_to_optimize(self, metrics: tuple[str, ...]) -> str:
        raw = self.get(self.data, "metric_to_optimize", str, "a metric name", metrics[0])
        produced = [*metrics, INVALID_RATE]
        name = canonical_metric(raw) or raw
        if name not in produced:
            raise self.error(
                "metric_to_optimize",
                f"is '{raw}', which the task does not produce; choose one of {', '.join(produced)}",
            )
        return name

    def splits(self) -> Splits:
        raw = self.get(self.data, "splits", dict, "a mapping like {train: train, validation: [validation]}", None)
        if raw is None:
            return Splits()
        self.keys(raw, ROLES, "splits.")
        splits = Splits(
            train=self.get(raw, "train", str, "a split name", None, "splits."),
            validation=self.string_list(raw, "validation", "splits.") if raw.get("validation") else (),
            test=self.string_list(raw, "test", "splits.") if raw.get("test") else (),
        )
        names = splits.names()
        if not names:
            raise self.error("splits", "names no split; give at least one of train, validation, test")
        if len(set(names)) != len(names):
            raise self.error("splits", f"names a split twice: {names}")
        return splits

    def source(self, splits: Splits) -> tuple[HubSource | None, LocalSource | None]:
        raw = self.get(self.data, "source", dict, "a mapping with hub: and/or local:")
        self.keys(raw, ("hub", "local"), "source.")
        if not raw.get("hub") and not raw.get("local"):
            raise self.error("source", "needs hub: {path, name} or local: {files}, or both")
        hub = local = None
        if raw.get("hub") is not None:
            spec = self.get(raw, "hub", dict, "a mapping like {path: nyu-mll/glue, name: sst2}", path="source.")
            self.keys(spec, ("path", "name", "revision"), "source.hub.")
            hub = HubSource(
                path=self.get(spec, "path", str, "a hub data set id", path="source.hub."),
                name=self.get(spec, "name", str, "a config name", None, "source.hub."),
                revision=self.get(spec, "revision", str, "a branch, tag or commit", None, "source.hub."),
            )
        if raw.get("local") is not None:
            local = self.local(raw["local"], splits)
        return hub, local

    def local(self, spec: Any, splits: Splits) -> LocalSource:
        path = "source.local."
        if not isinstance(spec, dict):
            raise self.error("source.local", f"must be a mapping like {{files: {{train: train.tsv}}}}, got {spec!r}")
        self.keys(spec, ("folder", "files", "format", "columns", "rename", "quoting"), path)
        files = self.get(spec, "files", dict, "a mapping of split names to file names", path=path)
        for split, file_name in files.items():
            if split not in splits.names():
                raise self.error(f"{path}files.{split}", f"is not a split of the task ({', '.join(splits.names())})")
            if not isinstance(file_name, str) or not file_name:
                raise self.error(f"{path}files.{split}", f"must be a file name, got {file_name!r}")
        fmt = self.get(spec, "format", str, f"one of {', '.join(FORMATS)}", None, path)
        if fmt is not None and fmt not in FORMATS:
            raise self.error(path + "format", f"must be one of {', '.join(FORMATS)}, got '{fmt}'")
        quoting = self.get(spec, "quoting", str, f"one of {', '.join(QUOTING)}", "auto", path)
        if quoting not in QUOTING:
            raise self.error(path + "quoting", f"must be one of {', '.join(QUOTING)}, got '{quoting}'")
        rename = self.get(spec, "rename", dict, "a mapping of file columns to template columns", {}, path)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
            raise self.error(path + "rename", f"must map column names to column names, got {rename!r}")
        columns = self.string_list(spec, "columns", path) if spec.get("columns") is not None else None
        return LocalSource(
            files=dict(files),
            folder=self.get(spec, "folder", str, "a folder name", None, path),
            format=fmt,
            columns=columns,
            rename=dict(rename),
            quoting=quoting,
        )

    def preprocessor(self) -> str | None:
        name = self.get(self.data, "preprocessor", str, "a preprocessor name", None)
        if name is not None and name not in PREPROCESSORS:
            raise self.error("preprocessor", f"is '{name}'; known preprocessors: {', '.join(PREPROCESSORS)}")
        return name


def _as_tuple(types: type | tuple) -> tuple:
    return types if isinstance(types, tuple) else (types,)
