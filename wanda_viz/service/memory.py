"""Memory the server gives back to the system: glibc allocator settings and trims (no Gradio).

Every Gradio event runs in a worker thread and glibc gives each thread that allocates its own
heap ("arena", up to 8 per core). Tensors freed in one arena stay mapped there, so after many
jobs in many threads the process holds gigabytes it does not use (measured with
``benchmarks/bench_session_memory.py --app``: BENCHMARKS.md, "Memory of many sessions"). Two
cures, both no-ops where glibc is absent:

* ``configure_allocator()`` (once, at start): at most ``WANDA_VIZ_MALLOC_ARENAS`` arenas
  (default 2; 0 = glibc's default), so freed memory is reused across threads;
* ``release_memory()`` (after each model job and each ended session): ``malloc_trim(0)``, which
  returns every arena's free pages to the system.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["ARENAS_ENV", "TRIM_ENV", "configure_allocator", "release_memory"]

logger = logging.getLogger(__name__)

ARENAS_ENV = "WANDA_VIZ_MALLOC_ARENAS"
TRIM_ENV = "WANDA_VIZ_MALLOC_TRIM"
_M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
_LIBC: ctypes.CDLL | None = None
_LOADED = False


def _libc() -> ctypes.CDLL | None:
    """glibc, or None (musl, macOS, Windows: nothing to tune)."""
    global _LIBC, _LOADED
    if not _LOADED:
        _LOADED = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC = lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None
        except OSError:
            _LIBC = None
    return _LIBC


def configure_allocator() -> int | None:
    """Cap glibc's arenas (``WANDA_VIZ_MALLOC_ARENAS``, default 2); returns the cap set, or None.

    ``MALLOC_ARENA_MAX`` in the environment before the process starts does the same and wins.
    """
    libc = _libc()
    arenas = int(os.environ.get(ARENAS_ENV, "2"))
    if libc is None or arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return None
    if libc.mallopt(_M_ARENA_MAX, arenas) != 1:
        logger.warning("mallopt(M_ARENA_MAX, %d) failed: allocator left as it is", arenas)
        return None
    logger.info("glibc malloc: at most %d arenas (%s)", arenas, ARENAS_ENV)
    return arenas


def release_memory() -> bool:
    """Return the allocator's free pages to the system (``malloc_trim(0)``); True if any were.
    ``WANDA_VIZ_MALLOC_TRIM=0`` turns it off (to measure what it does)."""
    libc = _libc()
    if libc is None or os.environ.get(TRIM_ENV, "1") == "0":
        return False
    return bool(libc.malloc_trim(0))
