"""Which failures a user caused or can fix, and the one-line message they get: ONE policy for the
command line and the dashboard (bad input, refused model, offline hub, missing data, out of memory
on a GPU or on the CPU). Anything else is a bug and propagates with its traceback.
"""
from __future__ import annotations

import torch

from .cancel import Cancelled

__all__ = ["OOM_MESSAGE", "CANCELLED_MESSAGE", "user_message"]

OOM_MESSAGE = ("out of memory: use fewer or shorter calibration windows, fewer evaluation "
               "windows, a smaller batch size, float16/bfloat16, offloading or a smaller model")
CANCELLED_MESSAGE = "cancelled: finished points are kept (cached) and the model is dense again"
_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


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
