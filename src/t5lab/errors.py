"""User-facing failures.

Every failure a user can fix (bad flag, bad file, bad config) is raised as a :class:`UserError`.
The CLI turns it into one line on stderr and exit code 2; tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import argparse


class UserError(Exception):
    """A problem with the user's input, reported as one line: what is wrong and how to fix it."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(UserError):
    """An invalid flag, YAML config or task definition."""


class DataError(UserError):
    """A missing, empty or malformed data source."""


def yaml_error(what: str, where: object, exc: Exception) -> ConfigError:
    """One line for a YAML file that cannot be read: PyYAML's syntax errors (line and column) and reader errors
    (a NUL or other control character, named with its position)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        return ConfigError(
            f"{what} {where} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}."
        )
    character = getattr(exc, "character", None)
    if character is not None:  # yaml.reader.ReaderError
        code = character if isinstance(character, int) else ord(character)
        return ConfigError(
            f"{what} {where} is not valid YAML: character #x{code:04x} at position {getattr(exc, 'position', '?')} "
            "is not allowed in YAML (a NUL or another control character)."
        )
    return ConfigError(
        f"{what} {where} is not valid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}."
    )


class UserArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one-line :class:`ConfigError`s instead of usage dumps."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see --help)")


# Exit code of a run that saved a checkpoint and stopped on SIGTERM/SIGUSR1 (preemption): the SLURM
# templates requeue the job on it. 75 is EX_TEMPFAIL in sysexits.h: "try again later".
PREEMPTED_EXIT_CODE = 75
# Exit code after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT_CODE = 130
