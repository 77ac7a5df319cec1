"""Which failures a user caused or can fix (bad input, refused model, offline hub, missing data,
out of memory), and the one-line message they get; anything else is a bug and propagates."""
from __future__ import annotations

import torch

__all__ = ["OOM_MESSAGE", "user_message"]

OOM_MESSAGE = ("out of memory: use fewer or shorter calibration windows, fewer evaluation "
               "windows, float16/bfloat16 or a smaller model")
_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


def user_message(err: BaseException) -> str | None:
    """The readable message for an expected failure, or None for an unexpected one."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return OOM_MESSAGE
    if isinstance(err, (ValueError, OSError)):  # includes DataUnavailableError
        return str(err)
    if isinstance(err, RuntimeError) and any(s in str(err) for s in _MEMORY):
        return OOM_MESSAGE
    return None
