"""Whether the Hugging Face hub is switched off, and failing at once when it cannot be reached instead of after
the clients' retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from huggingface_hub.constants import ENV_VARS_TRUE_VALUES

from t5lab.errors import DataError

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _is_true(value: str | None) -> bool:
    return value is not None and value.upper() in ENV_VARS_TRUE_VALUES


def is_offline(for_datasets: bool = False) -> bool:
    """Whether the hub is switched off: ``HF_HUB_OFFLINE`` (or, unset, ``TRANSFORMERS_OFFLINE``) is "1", "true",
    "yes" or "on" in any case, as huggingface_hub reads it; with ``for_datasets``, ``HF_DATASETS_OFFLINE`` too.
    """
    # huggingface_hub.constants.HF_HUB_OFFLINE is fixed when that module is imported; the environment is read
    # here on every call so that a variable set later (a test, a notebook) is seen.
    hub = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return _is_true(hub) or (for_datasets and _is_true(os.environ.get("HF_DATASETS_OFFLINE")))


def check_hub_reachable(what: str, timeout: float = 5.0) -> None:
    """Raise a one-line :class:`DataError` naming ``what`` if the hub endpoint does not accept a connection.

    Behind a proxy a direct connection says nothing, so the check is skipped there.
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DataError(
            f"{what} needs the Hugging Face hub, which is unreachable ({host}:{port}: {reason}); "
            "pass local files, or set HF_HUB_OFFLINE=1 to use what is cached."
        ) from None
