"""Turning rows into text: input/target templates, number targets, and preprocessors for rows that are not examples."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from datasets import Dataset

from t5lab.errors import DataError


def as_text(value: Any) -> str:
    """A column value as template text: lists (e.g. DiscoEval's RST units) are joined with spaces, None is empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(as_text(v) for v in value)
    return str(value)


class Template:
    """A text pattern whose ``{column}`` placeholders are filled from a row (``{{``/``}}`` for literal braces)."""

    def __init__(self, text: str) -> None:
        """Parse ``text``; a ValueError says what is wrong with it."""
        fields: list[str] = []
        for _, name, spec, conversion in string.Formatter().parse(text):
            if name is None:
                continue
            if not name or name.isdigit():
                raise ValueError(f"placeholder '{{{name}}}' must name a column, e.g. {{sentence}}")
            if spec or conversion or any(ch in name for ch in ".[]"):
                raise ValueError(f"placeholder in '{text}' must be a plain column name like {{sentence}}")
            fields.append(name)
        if not fields:
            raise ValueError(f"'{text}' names no column; use placeholders like {{sentence}}")
        self.text = text
        self.fields = tuple(dict.fromkeys(fields))

    def render(self, row: Mapping[str, Any]) -> str:
        """The template filled with the row's values."""
        missing = [f for f in self.fields if f not in row]
        if missing:
            raise DataError(
                f"row lacks column '{missing[0]}' used by template '{self.text}' (columns: {', '.join(map(str, row))})."
            )
        return self.text.format_map({f: as_text(row[f]) for f in self.fields})

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def format_number(value: float, round_to: float | None = None) -> str:
    """A regression target as text: rounded to a multiple of ``round_to`` with that many decimals.

    T5 writes STS-B targets as ``round(score * 5) / 5`` with one decimal (e.g. "3.8"); ``round_to=0.2`` does the
    same. Without ``round_to`` the value is written as Python's shortest repr.
    """
    if round_to is None:
        return repr(float(value))
    scale = 1 / round_to  # multiply rather than divide: 1 / 0.2 is exactly 5, as in T5
    decimals = max(0, -Decimal(str(round_to)).as_tuple().exponent)
    return f"{round(value * scale) / scale:.{decimals}f}"


# --- preprocessors: named steps that turn rows into examples ------------------------------------------------

_BOLD = re.compile(r"</?b>")


def multirc(batch: dict[str, list]) -> dict[str, list]:
    """MultiRC: one example per answer option, with the question group kept for per-question exact match.

    Accepts SuperGLUE's JSON Lines (one row per passage, questions and answers nested) and Hugging Face's
    ``super_glue/multirc`` (one row per answer, ``idx`` a mapping). Emits ``paragraph``, ``question``, ``answer``,
    ``label`` (-1 when the file has none) and ``question_id`` (``"<passage>-<question>"``). HTML markup is
    removed from paragraphs, as T5 does.
    """
    out: dict[str, list] = {"paragraph": [], "question": [], "answer": [], "label": [], "question_id": []}

    def add(paragraph: str, question: str, answer: str, label: Any, question_id: str) -> None:
        paragraph = _BOLD.sub("", paragraph.replace("<br>", " "))
        for key, value in zip(out, (paragraph, question, answer, label, question_id)):
            out[key].append(value)

    if "passage" in batch:
        for passage_idx, passage in zip(batch["idx"], batch["passage"]):
            for question in passage["questions"]:
                for answer in question["answers"]:
                    add(
                        passage["text"],
                        question["question"],
                        answer["text"],
                        answer.get("label", -1),
                        f"{passage_idx}-{question['idx']}",
                    )
    else:
        for paragraph, question, answer, label, idx in zip(
            batch["paragraph"], batch["question"], batch["answer"], batch["label"], batch["idx"]
        ):
            add(paragraph, question, answer, label, f"{idx['paragraph']}-{idx['question']}")
    return out


def _mark_span(text: str, span: str, word_index: int, mark: str) -> str:
    # T5's wsc preprocessor: surround the span starting at word `word_index` with `mark`.
    pattern = rf"^((?:\S+\s){{{word_index}}})({re.escape(span)})"
    return re.sub(pattern, rf"\1{mark} \2 {mark}", text, count=1)


def wsc(batch: dict[str, list]) -> dict[str, list]:
    """WSC: mark the noun with ``*`` and the pronoun with ``#`` in ``text`` (T5's ``wsc`` preprocessor).

    Span fields come from the row (Hugging Face's ``super_glue/wsc.fixed``) or from its ``target`` mapping
    (SuperGLUE's JSON Lines).
    """
    texts = []
    for i, text in enumerate(batch["text"]):
        spans = batch["target"][i] if "target" in batch else {k: batch[k][i] for k in batch}
        text = _mark_span(text, spans["span1_text"], spans["span1_index"], "*")
        # Marking span 1 added two words before span 2 when span 1 comes first.
        span2_index = spans["span2_index"] + 2 * int(spans["span1_index"] < spans["span2_index"])
        texts.append(_mark_span(text, spans["span2_text"], span2_index, "#"))
    return {**batch, "text": texts}


PREPROCESSORS: dict[str, Callable[[dict[str, list]], dict[str, list]]] = {"multirc": multirc, "wsc": wsc}


def apply_preprocessor(name: str, dataset: Dataset, where: str) -> Dataset:
    """Run preprocessor ``name`` over ``dataset``; ``where`` (file or hub split) names the data in errors."""
    try:
        return dataset.map(PREPROCESSORS[name], batched=True, remove_columns=dataset.column_names)
    except (KeyError, TypeError) as exc:
        raise DataError(f"{where}: rows do not have the layout preprocessor '{name}' expects ({exc!r}).") from None
