"""Cooperative cancellation of long jobs (sweep, ablation, why, zero-shot, sinks).

Torch work in a thread cannot be killed from outside, so a long job is given a ``CancelToken`` and
checks it where stopping is safe: between evaluated points and at decoder-block boundaries. A
cancelled job raises ``Cancelled``; whoever changed the model restores the dense weights on the
way out (``finally``), and points already finished stay cached.
"""
from __future__ import annotations

import threading

__all__ = ["Cancelled", "CancelToken", "check_cancelled"]


class Cancelled(Exception):
    """The job was stopped by its user; not an error (no traceback is logged for it)."""


class CancelToken:
    """A flag a job polls; ``cancel()`` may be called from any thread, any number of times."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def check_cancelled(token: CancelToken | None) -> None:
    """Raise ``Cancelled`` if ``token`` is set; a job run without a token never stops early."""
    if token is not None:
        token.raise_if_cancelled()
