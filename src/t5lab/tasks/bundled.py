"""A small labelled task built from text bundled with Python, so the quickstart can fine-tune offline.

``docsource``: is a paragraph from the Python language reference (``pydoc_data`` topics) or from a
standard-library docstring? Real English text; the label is where it came from. Written as JSONL files that
the built-in task ``t5lab/docsource`` reads with ``--data_dir``.

    python -m t5lab.tasks.bundled DIR      # writes DIR/docsource/{train,validation}.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from t5lab.data.corpus import python_docs_paragraphs

SPLIT_SIZES = {"train": 2000, "validation": 300}  # per label, at most (the reference has ~2,100 distinct paragraphs)


def write_docsource(directory: str | Path, seed: int = 0) -> Path:
    """Write a balanced train/validation split of the docsource task; returns the task folder."""
    reference, docstrings = python_docs_paragraphs()
    # Paragraphs repeat across topics and docstrings: deduplicate so no text is in two splits or two labels.
    reference = sorted(set(reference))
    docstrings = sorted(set(docstrings) - set(reference))
    rng = random.Random(seed)
    folder = Path(directory) / "docsource"
    folder.mkdir(parents=True, exist_ok=True)
    pools = {label: rng.sample(rows, k=len(rows)) for label, rows in ((0, reference), (1, docstrings))}
    # Validation first, so it is full-sized; training takes up to its size from what is left.
    bounds = {
        "validation": (0, SPLIT_SIZES["validation"]),
        "train": (SPLIT_SIZES["validation"], sum(SPLIT_SIZES.values())),
    }
    for split, (start, end) in bounds.items():
        rows = [{"text": text, "label": label} for label, pool in pools.items() for text in pool[start:end]]
        rng.shuffle(rows)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m t5lab.tasks.bundled DIR")
    print(f"wrote {write_docsource(sys.argv[1])}")
