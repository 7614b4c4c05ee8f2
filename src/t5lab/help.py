"""``--help`` a person can read, fast.

The recipes' flags come from dataclasses, most of them the Trainer's ~150 ``TrainingArguments``. The help
shows t5lab's groups first (model, data and objective or task, t5lab's training options) and the Trainer's
last, one spelling per flag (``--max_steps``, not also ``--max-steps``, though both work), no ``--no_X``
twins (``--X false`` says the same), and a short usage line.

Building it needs transformers and torch (seconds to import), so the rendered text is cached per command,
keyed by the versions and the source files that define the flags; a later ``--help`` prints it without
importing either. This module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TRAINER_GROUP = "Trainer options (transformers TrainingArguments, as in the HF example scripts)"
T5LAB_TRAINING_GROUP = "t5lab training options"


class ReadableHelpFormatter(argparse.HelpFormatter):
    """One spelling per flag (the underscore one), wider columns, choices shown once."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=100)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        if action.nargs == 0:
            return ", ".join(action.option_strings)  # -h, --help
        # HfArgumentParser lists --name first, then --name-with-dashes (not shown), then real aliases (shown)
        flag, *others = action.option_strings
        aliases = [o for o in others if o.lstrip("-").replace("-", "_") != flag.lstrip("-")]
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(f"{option} {metavar}" for option in [flag, *aliases])

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        if action.nargs == "?" and action.const is True:
            return "true|false"
        return {int: "N", float: "X"}.get(action.type, "VALUE")

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if default_metavar == "true|false":
            return f"[{action.metavar or 'true|false'}]"  # a boolean that takes more words (--bf16 auto) names them
        return super()._format_args(action, default_metavar)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required and "required" not in text:
            text = f"(required) {text}"
        shown = action.default not in (None, False, "", [], argparse.SUPPRESS) and "default" not in text.lower()
        return f"{text} (default: %(default)s)" if shown else text


def organise(parser: argparse.ArgumentParser, trainer_fields: set[str], t5lab_fields: set[str]) -> None:
    """Regroup a recipe parser's flags for help: t5lab's own training options out of the Trainer's group, the
    Trainer's group last, ``--no_X`` twins hidden."""
    groups = parser._action_groups  # argparse has no public API to reorder or regroup; help output only
    trainer = next((g for g in groups if g.title == TRAINER_GROUP), None)
    if trainer is None:
        return
    ours = parser.add_argument_group(T5LAB_TRAINING_GROUP, "Flags t5lab adds, or whose default it changes.")
    for action in list(trainer._group_actions):
        if action.dest in t5lab_fields:
            trainer._group_actions.remove(action)
            ours._group_actions.append(action)
    for action in parser._actions:
        if any(s.startswith("--no_") for s in action.option_strings) and action.dest in trainer_fields | t5lab_fields:
            action.help = argparse.SUPPRESS
    groups.remove(trainer)
    groups.append(trainer)
    parser.usage = f"{parser.prog} [--config FILE.yaml] [FLAGS]  (booleans: --flag or --flag false)"


def _cache_file(prog: str) -> Path:
    package = Path(__file__).parent
    key = hashlib.sha256()
    for name in ("t5lab", "transformers", "torch"):
        try:
            key.update(f"{name}={version(name)};".encode())
        except PackageNotFoundError:
            key.update(f"{name}=?;".encode())
    for path in sorted(package.rglob("*.py")):  # flags are defined in the sources: any edit renders anew
        key.update(f"{path.relative_to(package)}:{path.stat().st_mtime_ns};".encode())
    root = Path(os.environ.get("T5LAB_CACHE", Path.home() / ".cache" / "t5lab"))
    return root / "help" / f"{prog.replace(' ', '-')}-{key.hexdigest()[:16]}.txt"


def cached_help(prog: str) -> str | None:
    """The help text rendered earlier for ``prog`` with these sources and versions, if any."""
    try:
        return _cache_file(prog).read_text(encoding="utf-8")
    except OSError:
        return None


def store_help(prog: str, text: str) -> None:
    """Keep the rendered help; a cache that cannot be written only costs the next --help its seconds."""
    path = _cache_file(prog)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass
