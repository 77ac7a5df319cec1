"""Cancel that stops (issue 21), through ``gradio_client`` on the served app: the API's /cancel,
gradio_client's own ``Job.cancel()`` and a closed client session stop a long job; the points it
finished stay on disk, the dense model is unchanged, other users go on. And on the point runner
the jobs hand their token to: a cancel set inside a point (a prune's block loop, a perplexity's
windows) stops within one block or window, with the dense weights restored and no hook left.

No sleeps: the test holds the shared model's first-come-first-served lock and hands it to the job
for exactly the steps it wants (``app_server.handoff``), so the number of points computed is known.
"""
from __future__ import annotations

import time

import pytest
import torch

from app_server import cached_points, finish_cancelled, handoff, serve_app
from helpers import PRUNE, SETUP
from wanda_viz.cancel import Cancelled, CancelToken
from wanda_viz.config import PruneConfig
from wanda_viz.errors import CANCELLED_MESSAGE
from wanda_viz.layers import WeightBackup, find_decoder_layers
from wanda_viz.points import Prune
from wanda_viz.service.cache import MODELS
from wanda_viz.service.long_jobs import LONG_JOBS
from wanda_viz.testing import make_tiny_model

SWEEP = dict(methods=["wanda", "magnitude"], sparsities=[0.3, 0.5, 0.7],
             structures=["unstructured"])  # 7 points with the dense one


def _calls(module: torch.nn.Module, counts: list, index: int, after=None):
    """Count ``module``'s forward calls in ``counts[index]``; ``after(count)`` after each."""
    def hook(*_args):
        counts[index] += 1
        if after is not None:
            after(counts[index])
    return module.register_forward_hook(hook)


def _dense_and_hook_free(model, dense: dict) -> bool:
    return (all(torch.equal(dense[k], v) for k, v in model.state_dict().items())
            and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()))


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_a_cancel_inside_a_prune_stops_before_the_next_block(method, make_runner, tmp_path):
    """The token is set while block 1 of 4 is pruned (its first calibration forward): block 2
    never runs, nothing is cached, the dense weights are back and no hook is left."""
    model = make_tiny_model("llama", num_hidden_layers=4)
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    token = CancelToken()
    _, blocks = find_decoder_layers(model)
    counts = [0] * len(blocks)
    handles = [_calls(block, counts, i, (lambda n: token.cancel()) if i == 1 else None)
               for i, block in enumerate(blocks)]
    ids = torch.randint(0, 99, (4, 16), generator=torch.Generator().manual_seed(0))
    runner = make_runner(model, ids, ids.reshape(1, -1), fingerprint={"fingerprint": "t"},
                         cache_dir=tmp_path, cancel=token)
    with pytest.raises(Cancelled):
        runner.run(Prune(PruneConfig(method=method)))
    for handle in handles:
        handle.remove()
    assert counts[0] > 0 and counts[1] > 0 and counts[2:] == [0, 0]  # stopped within block 1
    assert _dense_and_hook_free(model, dense)
    assert cached_points(tmp_path) == []  # the point it was inside is not stored


def test_a_cancel_inside_perplexity_stops_before_the_next_window(make_runner, tmp_path):
    """Set during the first of 8 evaluation windows: the second is never evaluated."""
    model = make_tiny_model("llama")
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    token = CancelToken()
    windows = [0]
    handle = _calls(model, windows, 0, lambda n: token.cancel())
    ids = torch.randint(0, 99, (1, 8 * 16), generator=torch.Generator().manual_seed(1))
    runner = make_runner(model, ids.reshape(8, 16), ids, fingerprint={"fingerprint": "t"},
                         cache_dir=tmp_path, cancel=token)
    with pytest.raises(Cancelled):
        runner.run(Prune(PruneConfig(method="magnitude")))
    handle.remove()
    assert windows == [1]
    assert _dense_and_hook_free(model, dense)
    assert cached_points(tmp_path) == []


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


def _assert_dense() -> None:
    (entry,) = MODELS._models.values()
    now = WeightBackup(entry.model).weights
    assert all(torch.equal(now[name], w) for name, w in entry.backup.weights.items())


def _start_sweep(client, cache):
    """Submit the sweep with the model held; it computes exactly the dense point; returns the
    job, holding the model while the sweep waits for its second point."""
    for old in cached_points(cache):
        old.unlink()
    MODELS.lock.acquire()
    job = client.submit(**SWEEP, api_name="/sweep")
    handoff()  # the sweep reads the evaluation ids
    handoff()  # the sweep computes the dense point
    assert MODELS.lock.wait_for_waiters(1, 60)  # ... and now waits for its second point
    (running,) = LONG_JOBS.running()
    return job, running


def test_the_api_cancel_stops_a_sweep_and_keeps_its_finished_points(app):
    url, cache = app
    client = _client(url)
    job, running = _start_sweep(client, cache)
    message = client.predict(api_name="/cancel")
    assert message.startswith("Cancelled: sweep")
    finish_cancelled(running)
    with pytest.raises(ValueError, match=CANCELLED_MESSAGE.split(":")[0]):
        job.result(timeout=60)
    assert len(cached_points(cache)) == 1  # the dense point, cached; none of the 6 others
    _assert_dense()
    assert client.predict(api_name="/cancel").startswith("Nothing to cancel")
    _takeaway, _plot, table, _protocol, _files = client.predict(
        **{**SWEEP, "methods": ["magnitude"]}, api_name="/sweep")
    assert [row[0] for row in table["data"]][0] == "dense"  # the kept point is reused
    client.close()


def test_gradio_clients_job_cancel_stops_a_why_analysis(app):
    url, cache = app
    client = _client(url)
    before = set(cached_points(cache))
    MODELS.lock.acquire()
    job = client.submit(sparsity=0.5, ks=[1, 2, 4], seeds=3, api_name="/why")
    handoff()  # the why job resolves its evaluation setup
    handoff()  # ... takes the tokenizer
    handoff()  # the dense activation pass
    assert MODELS.lock.wait_for_waiters(1, 60)  # waits for its first perplexity point
    (running,) = LONG_JOBS.running()
    deadline = time.monotonic() + 60  # the client learns the event id from the server's reply
    while job.communicator.event_id is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.cancel()
    finish_cancelled(running)
    assert set(cached_points(cache)) == before  # no perplexity point computed after the cancel
    _assert_dense()
    other = _client(url)  # another user's job goes on
    other.close()
    client.close()


def test_the_api_cancel_stops_tab_ones_comparison_and_keeps_the_session(app):
    """Tab 1's compare (magnitude vs Wanda, a minute on the real model) stops the same way: the
    client's earlier run stays, no new run joins the session, the model is dense."""
    url, _cache = app
    client = _client(url)
    MODELS.lock.acquire()
    job = client.submit(**SETUP, sparsity=0.3, structure="unstructured", with_sparsegpt=False,
                        api_name="/compare")
    assert MODELS.lock.wait_for_waiters(1, 60)  # the comparison waits for the model
    (running,) = LONG_JOBS.running()
    assert running.name == "prune"
    assert client.predict(api_name="/cancel").startswith("Cancelled: prune")
    finish_cancelled(running)
    with pytest.raises(ValueError, match=CANCELLED_MESSAGE.split(":")[0]):
        job.result(timeout=60)
    _assert_dense()
    _takeaway, _summary, runs, _ppl, _sparsity = client.predict(**SETUP, **PRUNE,
                                                                api_name="/prune")
    assert [row[0] for row in runs["data"]] == ["wanda 50%"]  # no 30% run joined
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
    finish_cancelled(running)
    assert len(cached_points(cache)) == 1
    assert len(UPDATED_WEIGHTS) == stored - 1  # the session's SparseGPT values were freed
    _assert_dense()
