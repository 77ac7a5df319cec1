"""Cancel that stops (issue 21), through ``gradio_client`` on the served app: the API's /cancel,
gradio_client's own ``Job.cancel()`` and a closed client session stop a long job at its next
point; the points it finished stay on disk, the dense model is unchanged, other users go on.

No sleeps: the test holds the shared model's first-come-first-served lock and hands it to the job
for exactly the steps it wants (``handoff``), so the number of points computed is known.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from app_server import serve_app
from test_ui_handlers import PRUNE, SETUP
from wanda_viz.service.cache import MODELS
from wanda_viz.service.long_jobs import LONG_JOBS

SWEEP = dict(methods=["wanda", "magnitude"], sparsities=[0.3, 0.5, 0.7],
             structures=["unstructured"])  # 7 points with the dense one


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("cancel")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.2")  # a closed client is noticed at once
    with serve_app(root) as url:
        yield url, root / "sweeps"
    monkeypatch.undo()


def _client(url):
    from gradio_client import Client
    client = Client(url, verbose=False, download_files=False)
    client.predict(**SETUP, **PRUNE, api_name="/prune")
    return client


def handoff() -> None:
    """Let the job waiting for the model take it for one step, then hold the model again (the
    lock is first come first served: our next turn is right after the job's step)."""
    assert MODELS.lock.wait_for_waiters(1, 60)
    MODELS.lock.release()
    MODELS.lock.acquire()


def _points(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.json") if p.name != "file_hashes.json"]


def _assert_dense() -> None:
    from wanda_viz.models import WeightBackup
    (entry,) = MODELS._models.values()
    now = WeightBackup(entry.model).weights
    assert all(torch.equal(now[name], w) for name, w in entry.backup.weights.items())


def _start_sweep(client, cache: Path):
    """Submit the sweep with the model held; it computes exactly the dense point; returns the
    job, holding the model while the sweep waits for its second point."""
    for old in _points(cache):
        old.unlink()
    MODELS.lock.acquire()
    job = client.submit(**SWEEP, api_name="/sweep")
    handoff()  # the sweep reads the evaluation ids
    handoff()  # the sweep computes the dense point
    assert MODELS.lock.wait_for_waiters(1, 60)  # ... and now waits for its second point
    (running,) = LONG_JOBS.running()
    return job, running


def _finish(running) -> None:
    """Once the job's token is set, give it the model; when we have it back, it has stopped."""
    assert LONG_JOBS.wait_for(lambda jobs: running.token.cancelled, 60)
    MODELS.lock.release()
    MODELS.lock.acquire()  # after the job's cancelled turn
    MODELS.lock.release()


def test_the_api_cancel_stops_a_sweep_and_keeps_its_finished_points(app):
    url, cache = app
    client = _client(url)
    job, running = _start_sweep(client, cache)
    message = client.predict(api_name="/cancel")
    assert message.startswith("Cancelled: sweep")
    _finish(running)
    with pytest.raises(ValueError, match="cancelled: the job stopped at its next point"):
        job.result(timeout=60)
    assert len(_points(cache)) == 1  # the dense point, cached; none of the 6 others
    _assert_dense()
    assert client.predict(api_name="/cancel").startswith("Nothing to cancel")
    plot, table, protocol, files = client.predict(**{**SWEEP, "methods": ["magnitude"]},
                                                  api_name="/sweep")
    assert [row[0] for row in table["data"]][0] == "dense"  # the kept point is reused
    client.close()


def test_gradio_clients_job_cancel_stops_a_why_analysis(app):
    url, cache = app
    client = _client(url)
    MODELS.lock.acquire()
    job = client.submit(sparsity=0.5, ks=[1, 2, 4], seeds=3, api_name="/why")
    handoff()  # the why job reads the evaluation ids
    handoff()  # the dense activation pass
    assert MODELS.lock.wait_for_waiters(1, 60)  # waits for its first perplexity point
    (running,) = LONG_JOBS.running()
    deadline = time.monotonic() + 60  # the client learns the event id from the server's reply
    while job.communicator.event_id is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.cancel()
    _finish(running)
    assert _points(cache / "why") == []  # no perplexity point was computed after the cancel
    _assert_dense()
    other = _client(url)  # another user's job goes on
    other.close()
    client.close()


def test_a_closed_client_session_stops_its_sweep_and_frees_its_runs(app):
    from wanda_viz.service.weights_store import UPDATED_WEIGHTS
    from wanda_viz.ui.app import wait_for_session_end
    url, cache = app
    client = _client(url)
    client.predict(**SETUP, **{**PRUNE, "method": "sparsegpt"}, api_name="/prune")
    stored = len(UPDATED_WEIGHTS)
    assert stored >= 1
    job, running = _start_sweep(client, cache)
    client.close()  # the heartbeat ends: Gradio's unload
    assert wait_for_session_end(client.session_hash, 60)
    _finish(running)
    assert len(_points(cache)) == 1
    assert len(UPDATED_WEIGHTS) == stored - 1  # the session's SparseGPT values were freed
    _assert_dense()
