"""A fair queue (issue 21): one client cannot fill the queue everyone shares. With the shared model
held, a client that submits more jobs than its cap gets the cap's message for the extra ones,
while another client's job is still accepted; once the model is free every accepted job runs."""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, wait

import pytest

from app_server import serve_app
from helpers import PRUNE, SETUP
from wanda_viz.service.cache import MODELS

CAP, QUEUE = 3, 5
GENERATE = dict(prompt="the cat", run="wanda 50%", max_new_tokens=2, do_sample=False,
                temperature=1.0, top_p=1.0, seed=0)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("WANDA_VIZ_MAX_QUEUED_PER_SESSION", str(CAP))
    monkeypatch.setenv("WANDA_VIZ_QUEUE_SIZE", str(QUEUE))
    with serve_app(tmp_path_factory.mktemp("fair")) as served:
        yield served
    monkeypatch.undo()


def _client(url):
    from gradio_client import Client
    client = Client(url, verbose=False, download_files=False)
    client.predict(**SETUP, **PRUNE, api_name="/prune")
    return client


def _first_finished(futures, count: int) -> set:
    """The first ``count`` futures to finish (the others wait for the model)."""
    done: set = set()
    while len(done) < count:
        finished, _ = wait(set(futures) - done, timeout=60, return_when=FIRST_COMPLETED)
        assert finished, f"only {len(done)} of {count} requests were answered"
        done |= finished
    assert len(done) == count
    return done


def test_one_client_cannot_fill_the_queue(url):
    greedy, polite = _client(url), _client(url)
    MODELS.lock.acquire()  # a job of someone else holds the model: nothing finishes meanwhile
    try:
        jobs = [greedy.submit(**GENERATE, api_name="/generate") for _ in range(CAP + 4)]
        assert MODELS.lock.wait_for_waiters(1, 60)  # one runs and waits for the model
        refused = _first_finished([job.future for job in jobs], 4)  # the 4 beyond the cap
        messages = [str(future.exception()) for future in refused]
        assert all("this host allows 3 per session (WANDA_VIZ_MAX_QUEUED_PER_SESSION)" in m
                   for m in messages), messages
        fair = polite.submit(**GENERATE, api_name="/generate")  # not "Queue is full"
    finally:
        MODELS.lock.release()
    accepted = [job for job in jobs if job.future not in refused]
    assert len(accepted) == CAP and all(job.result(timeout=120) for job in accepted)
    _takeaway, _dense, _pruned, table, _probs, _protocol = fair.result(timeout=120)
    assert [row[0] for row in table["data"]] == ["dense", "wanda 50%"]
    greedy.close()
    polite.close()
