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


class UserArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one-line :class:`UserError`s instead of usage dumps."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see --help)")


# Exit code of a run that saved a checkpoint and stopped on SIGTERM/SIGUSR1 (preemption): the SLURM
# templates requeue the job on it. 75 is EX_TEMPFAIL in sysexits.h: "try again later".
PREEMPTED_EXIT_CODE = 75
