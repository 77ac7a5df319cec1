"""The dashboard launched in-process and driven through its named API with ``gradio_client``.

One full flow on the tiny checkpoint: /prune -> /outliers -> /sweep (one point) -> /generate, in
one client session (the server keeps that session's gr.State between calls), then a second client
that has not pruned gets a readable error, not another user's results.
"""
from __future__ import annotations

import pytest

from app_server import serve_app
from helpers import PRUNE, SETUP


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_app(tmp_path_factory.mktemp("client")) as url:
        yield url


def _client(url: str):
    from gradio_client import Client
    return Client(url, verbose=False, download_files=False)


def test_full_flow_through_the_named_api(server):
    client = _client(server)
    summary, runs, figure = client.predict(**SETUP, **PRUNE, api_name="/prune")
    assert "Dense perplexity" in summary and "reference sampler" in summary
    assert runs["data"][0][0] == "wanda 50%"
    assert figure is not None
    magnitudes, heatmap, layers, features, massive, tokens, protocol = client.predict(
        api_name="/outliers")
    assert magnitudes is not None and heatmap is not None and len(layers["data"]) == 2
    assert "calibration" in protocol or "windows" in protocol or "seed" in protocol
    plot, table, protocol, files = client.predict(methods=["wanda"], sparsities=[0.5],
                                                  structures=["unstructured"], api_name="/sweep")
    labels = [row[0] for row in table["data"]]
    assert labels == ["dense", "wanda 50%"] and len(files) == 3
    dense, pruned, generation, probs = client.predict(
        prompt="the cat sat", run="wanda 50%", max_new_tokens=6, do_sample=False,
        temperature=1.0, top_p=1.0, seed=0, api_name="/generate")
    assert [row[0] for row in generation["data"]] == ["dense", "wanda 50%"]
    assert probs is not None


def test_a_new_session_does_not_see_other_results(server):
    from gradio_client.exceptions import AppError
    other = _client(server)
    with pytest.raises(AppError, match="Prune a model in tab 1 first"):
        other.predict(prompt="the cat sat", run="wanda 50%", max_new_tokens=4, do_sample=False,
                      temperature=1.0, top_p=1.0, seed=0, api_name="/generate")
    with pytest.raises(AppError, match="not a Hugging Face model id"):
        other.predict(**{**SETUP, "model_choice": "bad id!"}, **PRUNE, api_name="/prune")


def test_a_job_waiting_for_the_model_says_so(server):
    """While another job holds the shared model, the client's status shows the jobs ahead."""
    import time

    from gradio_client.utils import Status

    from wanda_viz.service.cache import MODELS
    client = _client(server)
    client.predict(**SETUP, **PRUNE, api_name="/prune")
    MODELS.lock.acquire()  # someone else's job holds the model
    try:
        job = client.submit(prompt="the cat", run="wanda 50%", max_new_tokens=3,
                            do_sample=False, temperature=1.0, top_p=1.0, seed=0,
                            api_name="/generate")
        assert MODELS.lock.wait_for_waiters(1, 60)
        deadline, status = time.monotonic() + 30, None
        while time.monotonic() < deadline:  # the status reaches the client asynchronously
            status = job.status()
            if status.progress_data:
                break
            time.sleep(0.05)
    finally:
        MODELS.lock.release()
    assert status.code == Status.PROGRESS
    assert status.progress_data[0].desc.startswith("waiting for the shared model: 1 job(s) ahead")
    assert [row[0] for row in job.result()[2]["data"]] == ["dense", "wanda 50%"]
