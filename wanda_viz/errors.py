"""Which failures a user caused or can fix, and the one-line message they get: ONE policy for the
command line and the dashboard (bad input, refused model, offline hub, missing data, out of memory
on a GPU or on the CPU). Anything else is a bug and propagates with its traceback.

Bad input names its field: ``FieldError(field, message)`` (a ``ValueError``, so the policy below
gives its message) carries the parameter the message belongs to; the dashboard's validators show
it under that input before the request is queued (``ui/validation.py``).
"""
from __future__ import annotations

import torch

from .cancel import Cancelled

__all__ = ["OOM_MESSAGE", "CANCELLED_MESSAGE", "FieldError", "user_message"]

OOM_MESSAGE = ("out of memory: use fewer or shorter calibration windows, fewer evaluation "
               "windows, a smaller batch size, float16/bfloat16, offloading or a smaller model")
CANCELLED_MESSAGE = "cancelled: finished points are kept (cached) and the model is dense again"
_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


class FieldError(ValueError):
    """Bad input of one field (``field``: the handler's parameter name, e.g. "calib_text")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def user_message(err: BaseException) -> str | None:
    """The readable message for an expected failure, or None for an unexpected one."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return OOM_MESSAGE
    if isinstance(err, Cancelled):
        return CANCELLED_MESSAGE
    if isinstance(err, (ValueError, OSError)):  # includes DataUnavailableError
        return str(err)
    if isinstance(err, RuntimeError) and any(s in str(err) for s in _MEMORY):
        return OOM_MESSAGE  # CPU allocators raise RuntimeError("... can't allocate memory ...")
    return None
