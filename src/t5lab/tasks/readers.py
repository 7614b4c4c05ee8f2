"""Reading a task's splits from local files (GLUE and SuperGLUE layouts, generic tables) or from the hub.

Every split comes back with the column names the task's templates use and a normalized label column: label
ids (-1 when unlabeled) for classification, floats (NaN when unlabeled) for regression. Test splits without
labels (GLUE's test files, the hub's -1 placeholders) load as unlabeled.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import datasets
import pyarrow
import pyarrow.parquet as pq
from datasets import Dataset

from t5lab.data.hub import check_hub_reachable, is_offline
from t5lab.errors import ConfigError, DataError
from t5lab.tasks.formatting import apply_preprocessor
from t5lab.tasks.schema import ROLES, UNLABELED, LocalSource, Task

FORMAT_BY_SUFFIX = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
_CSV_FIELD_LIMIT = 2**31 - 1  # documents (CNN/DailyMail articles) exceed csv's default 128 KiB per field
# Per split: the raw datasets read for it and, for messages, where each came from.
SplitParts = dict[str, list[tuple[Dataset, str]]]


def load_task_splits(
    task: Task,
    data_dir: str | os.PathLike[str] | None = None,
    data_files: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    splits: Iterable[str] | None = None,
    optional: Iterable[str] = (),
) -> dict[str, Dataset]:
    """The task's splits, keyed by split name (train, validation or validation_matched, ..., test).

    Data comes from ``data_files`` (split name -> file or files), else from ``data_dir`` (a folder holding the
    task's folder, e.g. GLUE's root with SST-2/, or the task's folder itself), else from the hub. ``splits``
    (split names or roles: train, validation, test) selects splits and makes each of them required; without
    it, every split the task names is loaded when its file exists; names in ``optional`` are loaded when they
    exist but not required. With ``data_files``, exactly the splits given there are read.
    """
    if data_files:
        loaded = {split: _read_files(task, split, files) for split, files in data_files.items()}
    else:
        wanted = _wanted_splits(task, splits)
        required = set(wanted) - set(optional) if splits is not None else set()
        if data_dir is not None:
            loaded = _read_local(task, Path(data_dir).expanduser(), wanted, required)
        else:
            loaded = _load_hub(task, wanted, cache_dir, required)
    from_files = data_dir is not None or bool(data_files)
    return {
        split: _concatenate([_prepare(task, dataset, split, where, from_files) for dataset, where in parts], split)
        for split, parts in loaded.items()
    }


def _concatenate(parts: list[Dataset], split: str) -> Dataset:
    try:
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    except ValueError as exc:
        raise DataError(f"the files of split {split} have different columns or types: {exc}") from None


def _wanted_splits(task: Task, splits: Iterable[str] | None) -> list[str]:
    if splits is None:
        return task.splits.names()
    wanted = []
    for name in splits:
        names = task.splits.names(name) if name in ROLES else [name] if task.splits.role_of(name) else None
        if not names:
            raise ConfigError(f"task {task.name} has no {name} split (splits: {', '.join(task.splits.names())}).")
        wanted += names
    return list(dict.fromkeys(wanted))


def _role(task: Task, split: str) -> str | None:
    return task.splits.role_of(split) or (split if split in ROLES else None)


# --- local files ------------------------------------------------------------------------------------------


def _read_local(task: Task, data_dir: Path, wanted: list[str], required: set[str]) -> SplitParts:
    local = task.local
    if local is None:
        raise DataError(
            f"task {task.name} has no local file layout; give its files per split (data files) or load it from the hub."
        )
    if not data_dir.is_dir():
        raise DataError(f"data dir {data_dir} does not exist.")
    folder = data_dir / local.folder if local.folder and (data_dir / local.folder).is_dir() else data_dir
    found = {}
    for split in wanted:
        path = folder / local.files[split] if split in local.files else None
        if path is not None and path.is_file():
            found[split] = [(_read_file(task, path), str(path))]
        elif split in required:
            problem = f"file {path} does not exist" if path else "has no file in the task's local layout"
            raise DataError(f"split '{split}' of task {task.name}: {problem}.")
    if not found:
        expected = ", ".join(
            f"{local.folder + '/' if local.folder else ''}{local.files[s]}" for s in wanted if s in local.files
        )
        raise DataError(
            f"no file of task {task.name} under {data_dir} (expected {expected or 'none'}); "
            "pass the folder that holds them with --data_dir."
        )
    return found


def _read_files(task: Task, split: str, files: str | os.PathLike[str] | Sequence) -> list[tuple[Dataset, str]]:
    paths = [Path(files)] if isinstance(files, (str, os.PathLike)) else [Path(f) for f in files]
    if not paths:
        raise DataError(f"no file given for split '{split}' of task {task.name}.")
    for path in paths:
        if not path.is_file():
            raise DataError(f"data file {path} (split {split} of task {task.name}) does not exist.")
    return [(_read_file(task, path), str(path)) for path in paths]


def _read_file(task: Task, path: Path) -> Dataset:
    """One file as a Dataset of its raw columns."""
    local = task.local or LocalSource(files={})
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower()) or local.format
    if fmt is None:
        raise DataError(f"data file {path} has an unsupported type; use one of {', '.join(FORMAT_BY_SUFFIX)}.")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty.")
    try:
        if fmt in ("tsv", "csv"):
            known = {*task.required_columns(labeled=True), *local.rename}
            return _read_delimited(path, "\t" if fmt == "tsv" else ",", local, known)
        if fmt == "parquet":
            return Dataset(pq.read_table(path))
        return Dataset.from_list(_read_json(path))
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not UTF-8 text.") from None
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"data file {path} could not be read as {fmt}: {exc}") from None


def _quoting(mode: str, delimiter: str, header: list[str]) -> int:
    if mode == "auto":
        # GLUE's TSVs are unquoted and hold stray quote characters; files exported from Hugging Face datasets
        # (pandas, with HF's `idx` column) quote fields that contain quotes.
        mode = "csv" if delimiter == "," or "idx" in header else "none"
    return csv.QUOTE_NONE if mode == "none" else csv.QUOTE_MINIMAL


def _read_delimited(path: Path, delimiter: str, local: LocalSource, known: set[str]) -> Dataset:
    """A TSV/CSV file. A first line naming none of the ``known`` columns is data when ``local.columns`` is set."""
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig drops a byte-order mark
        first = [cell.strip() for cell in f.readline().rstrip("\r\n").split(delimiter)]
        has_header = local.columns is None or any(cell in known for cell in first)
        names = first if has_header else list(local.columns)
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter, quoting=_quoting(local.quoting, delimiter, names))
        if has_header:
            next(reader)
        if any("\x00" in name for name in names):
            raise DataError(f"{path}, line 1: a NUL byte; is this a text file?")
        rows = []
        for row in reader:
            if any("\x00" in cell for cell in row):  # arrow would drop it from column names, then fail to cast
                raise DataError(f"{path}, line {reader.line_num}: a NUL byte; is this a text file?")
            if not row:
                continue
            if len(row) != len(names):
                raise DataError(
                    f"{path}, line {reader.line_num}: {len(row)} fields where {len(names)} columns "
                    f"({', '.join(names)}) were expected."
                )
            rows.append(row)
    if not rows:
        raise DataError(f"data file {path} has no data rows.")
    return Dataset.from_dict({name: list(values) for name, values in zip(names, zip(*rows))})


def _parse_json(text: str, path: Path, first_line: int) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {first_line + exc.lineno - 1}: not valid JSON ({exc.msg}).") from None


def _read_json(path: Path) -> list[dict]:
    """A JSON Lines file, or a JSON file holding a list of objects."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        rows = _parse_json(text, path, 1)
    else:
        rows = [_parse_json(line, path, n) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise DataError(f"data file {path} must hold JSON objects, one per line or in a list.")
    return rows


# --- hub --------------------------------------------------------------------------------------------------


def _load_hub(
    task: Task, wanted: list[str], cache_dir: str | os.PathLike[str] | None, required: set[str]
) -> SplitParts:
    hub = task.hub
    if hub is None:
        raise DataError(f"task {task.name} is not on the hub; pass --data_dir with its files.")
    where = f"hub data set {hub.path}" + (f" ({hub.name})" if hub.name else "")
    offline = DataError(
        f"the Hugging Face hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) and {where} is not "
        f"cached; pass --data_dir with a local copy of task {task.name}."
    )
    if is_offline(for_datasets=True) and not datasets.config.HF_HUB_OFFLINE:
        raise offline  # set after `datasets` was imported, which would still go online and retry
    if not is_offline(for_datasets=True):
        check_hub_reachable(f"{where} (task {task.name})")
    try:
        # Offline, this only looks in the cache and fails at once; online errors are many types, all reported.
        loaded = datasets.load_dataset(hub.path, hub.name, revision=hub.revision, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001
        if is_offline(for_datasets=True):
            raise offline from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"could not load {where} for task {task.name}: {reason}; "
            "check the name or pass --data_dir with a local copy."
        ) from None
    found = {}
    for split in wanted:
        if split in loaded:
            found[split] = [(loaded[split], f"{where} split {split}")]
        elif split in required:
            raise DataError(f"{where} has no split '{split}' (splits: {', '.join(loaded)}).")
    if not found:
        raise DataError(f"{where} has none of the splits of task {task.name} ({', '.join(wanted)}).")
    return found


# --- normalization ----------------------------------------------------------------------------------------


def _prepare(task: Task, dataset: Dataset, split: str, where: str, from_files: bool) -> Dataset:
    """Rename, flatten, check and label-normalize one raw split."""
    where = f"{where} (split {split} of task {task.name})"
    if len(dataset) == 0:
        raise DataError(f"{where} has no rows.")
    if from_files and task.local and task.local.rename:
        renames = {
            old: new
            for old, new in task.local.rename.items()
            if old in dataset.column_names and new not in dataset.column_names
        }
        dataset = dataset.rename_columns(renames)
    if task.preprocessor:
        dataset = apply_preprocessor(task.preprocessor, dataset, where)
    target_columns = task.target_template.fields if task.target_template else (task.label_column,)
    # Test splits may come without labels (GLUE's test files); every other split must have them.
    labeled = _role(task, split) != "test" or all(c in dataset.column_names for c in target_columns)
    missing = [c for c in task.required_columns(labeled) if c not in dataset.column_names]
    if missing:
        raise DataError(f"{where} has no column '{missing[0]}' (columns: {', '.join(dataset.column_names)}).")
    if task.kind == "text":
        return dataset
    column = task.label_column
    if not labeled:
        values = [UNLABELED if task.kind == "classification" else math.nan] * len(dataset)
    else:
        values = _label_values(task, list(dataset[column]), _role(task, split), f"{where}, column '{column}'")
        dataset = dataset.remove_columns(column)
    return dataset.add_column(column, values)


def _label_values(task: Task, raw: list, role: str | None, where: str) -> list:
    """Label ids (classification) or floats (regression) of a label column's raw values."""
    try:
        if task.kind == "classification":
            ids = {value: task.label_to_id(value) for value in set(raw)}
            return [ids[value] for value in raw]
        values = [task.value_to_float(value) for value in raw]
    except TypeError:
        raise DataError(f"{where}: label values must be words, ids or numbers, got {raw[0]!r}.") from None
    except ValueError as exc:
        raise DataError(f"{where}: {exc}.") from None
    if role == "test" and all(value == -1 for value in values):
        return [math.nan] * len(values)  # the hub's placeholder for hidden test scores (STS-B)
    return values
