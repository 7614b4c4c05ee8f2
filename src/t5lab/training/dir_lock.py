"""One run per output directory: a lock that names its holder and that a killed holder cannot leave behind.

The lock is ``OUTPUT_DIR/.t5lab.lock``, held with ``flock`` by the run's main process (one lock per run, not
per rank, under torchrun) for as long as the process lives. The kernel drops a flock when its process dies,
even by SIGKILL, so a stale lock needs no detection heuristics: a file nobody holds is simply taken over.
The file records the holder (pid, host, command, start time) so that a refused command can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO

from t5lab.errors import ConfigError

LOCK_FILE = ".t5lab.lock"
_held: dict[Path, IO[str]] = {}  # directories this process holds: a second run in the same process reuses its lock


def hold_output_dir(output_dir: str | Path) -> None:
    """Take the directory's lock for this process, or refuse in one line naming the live run that holds it."""
    path = Path(output_dir).resolve()
    if path in _held:
        return
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read() or "{}")
        except json.JSONDecodeError:
            holder = {}
        handle.close()
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(holder["started"])) if "started" in holder else "?"
        raise ConfigError(
            f"--output_dir {output_dir} is in use by another run ({who}, `{holder.get('command', 't5lab')}`, "
            f"since {since}); wait for it to finish, stop it, or choose another directory."
        ) from None
    handle.seek(0)
    handle.truncate()
    command = " ".join(["t5lab", *sys.argv[1:4]]) if sys.argv else "t5lab"
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}, handle)
    handle.flush()
    _held[path] = handle


def release_output_dir(output_dir: str | Path) -> None:
    """Let the directory go (a command that was refused after taking it)."""
    handle = _held.pop(Path(output_dir).resolve(), None)
    if handle is not None:
        handle.close()
