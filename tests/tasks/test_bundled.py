"""The offline demo task is written from Python's bundled docs and loads like any local task."""

from __future__ import annotations

import json

from t5lab.tasks.bundled import SPLIT_SIZES, write_docsource
from t5lab.tasks.readers import load_task_splits
from t5lab.tasks.registry import get_task


def test_docsource_is_balanced_disjoint_and_loadable(tmp_path):
    folder = write_docsource(tmp_path)
    rows = {
        split: [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]
        for split in SPLIT_SIZES
    }
    for split, size in SPLIT_SIZES.items():
        assert sorted({r["label"] for r in rows[split]}) == [0, 1]
        assert sum(r["label"] == 1 for r in rows[split]) == size
        assert sum(r["label"] == 0 for r in rows[split]) > size / 2
    assert not {r["text"] for r in rows["train"]} & {r["text"] for r in rows["validation"]}
    task = get_task("t5lab/docsource")
    splits = load_task_splits(task, data_dir=tmp_path, splits=["train", "validation"])
    assert len(splits["validation"]) == 2 * SPLIT_SIZES["validation"]
    assert task.format_input(splits["train"][0]).startswith("docsource paragraph: ")
    assert task.format_target(splits["train"][0]) in ("reference", "docstring")
