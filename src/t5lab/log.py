"""t5lab's own messages ("Pre-training 4.0M parameters ...", warnings about a run) go to the ``t5lab`` logger.

They are shown on stderr at INFO by default; ``t5lab -q COMMAND`` shows warnings and errors only (and quiets
transformers and datasets the same way); an explicit ``--log_level`` / ``--log_level_replica`` rules for the
recipes, as it does for the Trainer. Results (tables, span fills, paths of outputs) are printed on stdout and
are not log messages.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("t5lab")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (redirections and captures made later apply)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(quiet: bool = False) -> None:
    """Plain lines on stderr, INFO (or WARNING with ``quiet``); set by the ``t5lab`` command and the Python API."""
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


def follow_training_arguments(training_args: Any) -> None:
    """An explicit ``--log_level`` (or ``--log_level_replica`` on other processes) sets t5lab's level too."""
    if {"log_level", "log_level_replica"} & training_args.given_flags:
        logger.setLevel(training_args.get_process_log_level())
