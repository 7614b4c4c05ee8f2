"""Fail at once when the Hugging Face hub cannot be reached, instead of after the clients' retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from t5lab.errors import DataError

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


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
        raise DataError(f"{what} needs the Hugging Face hub, which is unreachable ({host}:{port}: {reason}); "
                        "pass local files, or set HF_HUB_OFFLINE=1 to use what is cached.") from None
