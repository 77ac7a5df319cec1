"""Is the Hugging Face Hub reachable? One quick probe per process, remembered.

An offline host must answer at once: without this probe ``datasets``/``transformers`` retry for
~25 s before failing. The first caller opens one TCP connection to the hub (``timeout`` 2 s);
the answer is kept for the life of the process (``forget_hub_probe()`` clears it, e.g. in tests
or after the network comes back). ``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1`` mean offline
without probing.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from urllib.parse import urlparse

__all__ = ["hub_reachable", "forget_hub_probe", "PROBE_TIMEOUT_S"]

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
_OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_lock = threading.Lock()
_answer: bool | None = None  # process-wide memo; None = not probed yet


def _offline_by_env() -> bool:
    return any(os.environ.get(flag, "0").strip().lower() not in ("0", "", "false", "no")
               for flag in _OFFLINE_FLAGS)


def _probe(timeout: float) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as err:  # DNS failure, refused, timeout
        logger.info("Hugging Face Hub unreachable (%s): offline mode", type(err).__name__)
        return False
    return True


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when the hub answered the (single, remembered) probe and no offline flag is set."""
    global _answer
    if _offline_by_env():
        return False
    with _lock:  # concurrent first requests wait for one probe instead of probing each
        if _answer is None:
            _answer = _probe(timeout)
        return _answer


def forget_hub_probe() -> None:
    """Probe again on the next call (the network may have changed)."""
    global _answer
    with _lock:
        _answer = None
