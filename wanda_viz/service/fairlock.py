"""A first-come-first-served, re-entrant lock for the shared model (no Gradio).

``threading.RLock`` wakes an arbitrary waiter, so a long job that releases and re-takes the model
between steps (a sweep, point by point) can take it again before a waiting generation ever gets
it. ``FairLock`` serves waiters in arrival order (a queue of tickets): when a sweep finishes a
point and asks for the model again, it queues behind every job that arrived meanwhile.
Re-entrant: the thread holding it may take it again (nested ``MODELS.use``) without queueing.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["FairLock"]


class FairLock:
    """FIFO re-entrant lock. ``with lock:`` or ``acquire(on_wait=...)`` / ``release()``."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[object] = deque()   # tickets of the waiting threads, oldest first
        self._owner: int | None = None         # thread id of the holder
        self._depth = 0                        # re-entry count of the holder

    def acquire(self, on_wait: Callable[[int], None] | None = None) -> None:
        """Take the lock, after every thread that asked before; ``on_wait(jobs_ahead)`` is
        called (outside the internal lock) whenever the caller must wait and its place changes."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            ticket = object()
            self._queue.append(ticket)
            self._cond.notify_all()  # wakes ``wait_for_waiters``
            reported = None
            try:
                while self._owner is not None or self._queue[0] is not ticket:
                    ahead = self._queue.index(ticket) + (self._owner is not None)
                    if on_wait is not None and ahead != reported:
                        reported = ahead
                        self._cond.release()  # the callback may be slow (a UI update)
                        try:
                            on_wait(ahead)
                        finally:
                            self._cond.acquire()
                        continue  # the queue may have moved while the callback ran
                    self._cond.wait()
            except BaseException:
                self._queue.remove(ticket)  # an abandoned ticket must not block the queue
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a FairLock not held by this thread")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """Threads queued for the lock (not counting the holder)."""
        with self._cond:
            return len(self._queue)

    def held(self) -> bool:
        with self._cond:
            return self._owner is not None

    def wait_for_waiters(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` threads are queued (tests and benchmarks use it to
        order threads without sleeping); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._queue) >= count, timeout)
