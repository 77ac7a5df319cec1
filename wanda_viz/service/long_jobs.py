"""Every session's running long jobs and their cancel tokens (no Gradio).

Torch work in a thread cannot be killed, so a long job (sweep, group ablation, why; zero-shot and
sinks plug in the same way) runs under ``LONG_JOBS.track(session, name)``, which gives it a
``CancelToken``; the job polls the token where stopping is safe (between points, and at block
boundaries in the point runner) and raises ``Cancelled``. Whatever ends a job sets the token the
same way: the Cancel button and the API's ``/cancel`` (``cancel``), a closed browser tab
(``cancel`` of the whole session) and Gradio's own task cancellation (the UI's long-job wrapper).
Points finished before the cancel stay in the on-disk caches; the dense weights are restored by
whoever changed them (``MODELS.use``).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..cancel import CancelToken

__all__ = ["LongJob", "LongJobs", "LONG_JOBS"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LongJob:
    """One running long job: its session, its name ("sweep", "ablation", "why", ...) and token."""

    session: str
    name: str
    token: CancelToken


class LongJobs:
    """The registry: ``track`` while a job runs, ``cancel`` from anywhere (any thread)."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._jobs: list[LongJob] = []

    @contextmanager
    def track(self, session: str | None, name: str,
              token: CancelToken | None = None) -> Iterator[CancelToken]:
        """Register a job of ``session`` while the block runs (the thread doing the work: the
        job is listed until it has stopped); yields its token (``token``, or a new one)."""
        job = LongJob(session or "", name, token or CancelToken())
        with self._changed:
            self._jobs.append(job)
            self._changed.notify_all()
        try:
            yield job.token
        finally:
            with self._changed:
                self._jobs.remove(job)
                self._changed.notify_all()

    def cancel(self, session: str | None, name: str | None = None) -> list[str]:
        """Set the tokens of ``session``'s running jobs (only those called ``name`` if given);
        returns the names of the jobs that are stopping (cancelled now or before)."""
        with self._changed:
            chosen = [job for job in self._jobs if job.session == (session or "")
                      and name in (None, job.name)]
            fresh = [job for job in chosen if not job.token.cancelled]
            for job in fresh:
                job.token.cancel()
            self._changed.notify_all()
        if fresh:
            logger.info("cancelled %s of session %s", ", ".join(j.name for j in fresh),
                        (session or "-")[:8])
        return [job.name for job in chosen]

    def stop(self, token: CancelToken) -> None:
        """Set one job's token (Gradio cancelled its event) and wake ``wait_for``."""
        with self._changed:
            token.cancel()
            self._changed.notify_all()

    def running(self, session: str | None = None) -> list[LongJob]:
        """The jobs running now (of one session, or all)."""
        with self._changed:
            return [job for job in self._jobs if session is None or job.session == session]

    def wait_for(self, predicate, timeout: float | None = None) -> bool:
        """Block until ``predicate(running jobs)`` holds (tests and benchmarks use it instead of
        sleeping); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self._jobs)), timeout)


LONG_JOBS = LongJobs()  # the one registry of the process
