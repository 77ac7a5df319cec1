"""FairLock: first come first served, re-entrant, and a releasing job queues behind waiters.

Threads are ordered with ``wait_for_waiters`` and events, never with sleeps.
"""
from __future__ import annotations

import threading

import pytest

from wanda_viz.service.fairlock import FairLock

TIMEOUT = 10.0


def _start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _take_and_record(lock: FairLock, order: list, name) -> None:
    with lock:
        order.append(name)


def test_waiters_get_the_lock_in_arrival_order():
    lock, order, threads = FairLock(), [], []
    lock.acquire()
    for index in range(5):
        threads.append(_start(_take_and_record, lock, order, index))
        assert lock.wait_for_waiters(index + 1, TIMEOUT)  # queued before the next one starts
    assert order == []  # nobody runs while the lock is held
    lock.release()
    for thread in threads:
        thread.join(TIMEOUT)
    assert order == [0, 1, 2, 3, 4]
    assert not lock.held() and lock.waiting == 0


def test_reentrant_for_the_holder_and_released_only_by_the_last_release():
    lock, order = FairLock(), []
    lock.acquire()
    lock.acquire()  # the holder does not queue behind itself
    waiter = _start(_take_and_record, lock, order, "waiter")
    assert lock.wait_for_waiters(1, TIMEOUT)
    lock.release()
    assert lock.held() and lock.waiting == 1 and order == []  # one level still held
    lock.release()
    waiter.join(TIMEOUT)
    assert order == ["waiter"]


def test_a_job_that_releases_and_retakes_queues_behind_a_waiter():
    """The sweep case: between two points the sweep lets a waiting generation in."""
    lock, order = FairLock(), []
    first_point_done = threading.Event()

    def sweep():
        with lock:
            order.append("point 1")
            first_point_done.set()
            assert lock.wait_for_waiters(1, TIMEOUT)  # the generation has queued meanwhile
        with lock:
            order.append("point 2")

    sweeper = _start(sweep)
    assert first_point_done.wait(TIMEOUT)
    generation = _start(_take_and_record, lock, order, "generation")
    sweeper.join(TIMEOUT)
    generation.join(TIMEOUT)
    assert order == ["point 1", "generation", "point 2"]


def test_on_wait_reports_the_jobs_ahead():
    lock, seen = FairLock(), []
    second_saw_one, second_done = threading.Event(), threading.Event()

    def first():
        with lock:
            assert second_saw_one.wait(TIMEOUT)  # hold until the second one has seen 1 ahead

    def report(ahead):
        seen.append(ahead)
        if ahead == 1:
            second_saw_one.set()

    def second():
        lock.acquire(on_wait=report)
        second_done.set()
        lock.release()

    lock.acquire()
    first_thread = _start(first)
    assert lock.wait_for_waiters(1, TIMEOUT)
    second_thread = _start(second)
    assert lock.wait_for_waiters(2, TIMEOUT)
    lock.release()
    assert second_done.wait(TIMEOUT)
    first_thread.join(TIMEOUT)
    second_thread.join(TIMEOUT)
    assert seen == [2, 1]  # holder + first, then first only
    lock.acquire(on_wait=report)  # free: taken at once, nothing reported
    lock.release()
    assert seen == [2, 1]


def test_an_abandoned_wait_does_not_block_the_queue():
    lock, order = FairLock(), []
    lock.acquire()

    def give_up(_ahead):
        raise KeyboardInterrupt  # e.g. the request was cancelled while queued

    errors = []

    def impatient():
        try:
            lock.acquire(on_wait=give_up)
        except KeyboardInterrupt:
            errors.append("gave up")

    _start(impatient).join(TIMEOUT)
    assert errors == ["gave up"] and lock.waiting == 0
    late = _start(_take_and_record, lock, order, "late")
    assert lock.wait_for_waiters(1, TIMEOUT)
    lock.release()
    late.join(TIMEOUT)
    assert order == ["late"]


def test_release_by_another_thread_is_refused():
    lock = FairLock()
    with pytest.raises(RuntimeError, match="not held by this thread"):
        lock.release()
    lock.acquire()
    errors = []

    def foreign_release():
        try:
            lock.release()
        except RuntimeError as err:
            errors.append(str(err))

    _start(foreign_release).join(TIMEOUT)
    assert errors and lock.held()
    lock.release()
