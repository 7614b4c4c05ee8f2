"""Where tasks come from: the built-in YAML files, the user's task folder, and files given with --task_file.

Later sources override earlier ones by task name: built-in, then ``$T5LAB_CONFIG_DIR/tasks/*.yaml`` (default
``~/.config/t5lab/tasks``), then task files in the order given.

A task file is either a list of tasks or a mapping with ``tasks`` (the list), and optionally ``benchmark`` (the
prefix of names given without one) and ``defaults`` (fields merged under every task, mappings key by key).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from t5lab.errors import ConfigError, yaml_error
from t5lab.tasks.schema import Task

TaskFiles = Iterable["str | Path"]


def user_task_dir() -> Path:
    """``$T5LAB_CONFIG_DIR/tasks``, by default ``~/.config/t5lab/tasks``."""
    return Path(os.environ.get("T5LAB_CONFIG_DIR") or Path.home() / ".config" / "t5lab") / "tasks"


def _merge(defaults: dict, overrides: dict) -> dict:
    merged = dict(defaults)
    for key, value in overrides.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_mappings else value
    return merged


def _compose(text: str, origin: str) -> tuple[Any, yaml.Node | None]:
    """The YAML document and its node tree (for line numbers)."""
    try:
        loader = yaml.SafeLoader(text)  # its reader already rejects NULs and other control characters
    except yaml.YAMLError as exc:
        raise yaml_error("task file", origin, exc) from None
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as exc:
        raise yaml_error("task file", origin, exc) from None
    finally:
        loader.dispose()


def _task_entries(data: Any, node: yaml.Node, origin: str) -> tuple[list, list[yaml.Node], dict, str | None]:
    """The raw tasks of a file, their nodes, its defaults and its benchmark."""
    if isinstance(data, list):
        return data, node.value, {}, None
    if not isinstance(data, dict):
        raise ConfigError(f"task file {origin} must hold a list of tasks or a mapping with 'tasks'.")
    unknown = [key for key in data if key not in ("tasks", "defaults", "benchmark")]
    if unknown:
        raise ConfigError(
            f"task file {origin}: unknown top-level key '{unknown[0]}' (expected tasks, defaults, benchmark)."
        )
    tasks, defaults, benchmark = data.get("tasks"), data.get("defaults") or {}, data.get("benchmark")
    if not isinstance(tasks, list):
        raise ConfigError(f"task file {origin}: 'tasks' must be a list of task mappings.")
    if not isinstance(defaults, dict):
        raise ConfigError(f"task file {origin}: 'defaults' must be a mapping of task fields.")
    if benchmark is not None and not isinstance(benchmark, str):
        raise ConfigError(f"task file {origin}: 'benchmark' must be a name like glue.")
    tasks_node = next(value for key, value in node.value if key.value == "tasks")
    return tasks, tasks_node.value, defaults, benchmark


def parse_task_text(text: str, origin: str) -> list[Task]:
    """The tasks of a task file's text; ``origin`` names the file in errors."""
    data, node = _compose(text, origin)
    if data is None:
        raise ConfigError(f"task file {origin} is empty; it must define at least one task.")
    entries, nodes, defaults, benchmark = _task_entries(data, node, origin)
    tasks: dict[str, Task] = {}
    for number, (entry, entry_node) in enumerate(zip(entries, nodes), start=1):
        if isinstance(entry, dict):
            entry = _merge(defaults, entry)
            if benchmark and isinstance(entry.get("name"), str) and "/" not in entry["name"]:
                entry["name"] = f"{benchmark}/{entry['name']}"
        task = Task.from_dict(entry, f"{origin}:{entry_node.start_mark.line + 1}", fallback_name=f"#{number}")
        if task.name in tasks:
            first = tasks[task.name].origin
            raise ConfigError(f"task file {origin} defines '{task.name}' twice ({first} and {task.origin}).")
        tasks[task.name] = task
    return list(tasks.values())


def load_task_file(path: str | Path) -> list[Task]:
    """The tasks defined in a YAML task file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"task file {path} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"task file {path} is not UTF-8 text.") from None
    return parse_task_text(text, str(path))


@lru_cache(maxsize=1)
def builtin_tasks() -> tuple[Task, ...]:
    """The tasks shipped with t5lab (src/t5lab/tasks/builtin/*.yaml)."""
    folder = resources.files("t5lab.tasks") / "builtin"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    return tuple(task for f in files for task in parse_task_text(f.read_text(encoding="utf-8"), f"builtin/{f.name}"))


def list_tasks(task_files: TaskFiles = ()) -> list[Task]:
    """Every known task: built-in, then the user's task folder, then ``task_files`` (later ones win by name)."""
    tasks = {task.name: task for task in builtin_tasks()}
    user_dir = user_task_dir()
    user_files = sorted([*user_dir.glob("*.yaml"), *user_dir.glob("*.yml")]) if user_dir.is_dir() else []
    for path in [*user_files, *task_files]:
        tasks.update((task.name, task) for task in load_task_file(path))
    return list(tasks.values())


def _key(name: str) -> str:
    return name.casefold().replace("_", "-")


def get_task(name: str, task_files: TaskFiles = ()) -> Task:
    """The task called ``name``: a full name ("glue/sst2") or an unambiguous short one ("sst2").

    Case, and ``_`` versus ``-``, are ignored when the exact name is not found.
    """
    tasks = list_tasks(task_files)
    exact = [task for task in tasks if task.name == name]
    matches = exact or [task for task in tasks if _key(name) in (_key(task.name), _key(task.short_name))]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(task.name for task in matches)
        raise ConfigError(f"task name '{name}' is ambiguous: it matches {names}; give the full name.")
    by_key = {_key(n): task.name for task in tasks for n in (task.name, task.short_name)}
    close = dict.fromkeys(by_key[k] for k in difflib.get_close_matches(_key(name), by_key, n=5, cutoff=0.6))
    if close:
        hint = f"close matches: {', '.join(close)}"
    else:
        hint = f"benchmarks: {', '.join(sorted({t.name.rpartition('/')[0] for t in tasks} - {''}))}"
    raise ConfigError(f"unknown task '{name}' ({hint}); define your own with --task_file (see docs/tasks.md).")
