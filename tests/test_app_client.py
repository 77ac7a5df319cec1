"""The dashboard launched in-process and driven through its named API with ``gradio_client``.

One full flow on the tiny checkpoint: /prune -> /outliers -> /sweep (one point) -> /generate, in
one client session (the server keeps that session's gr.State between calls), then a second client
that has not pruned gets a readable error, not another user's results.
"""
from __future__ import annotations

import socket

import pytest

from test_ui_handlers import PRUNE, SETUP, save_tiny_checkpoint, write_tiny_data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("client")
    monkeypatch.setenv("WANDA_VIZ_MODEL", str(save_tiny_checkpoint(root / "model")))
    monkeypatch.setenv("WANDA_VIZ_DATA", str(write_tiny_data(root / "data")))
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(root / "sweeps"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from wanda_viz.ui import build_demo
    from wanda_viz.ui.cache import MODELS
    MODELS.clear()
    demo = build_demo()
    port = _free_port()
    demo.queue(default_concurrency_limit=1).launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    MODELS.clear()
    monkeypatch.undo()


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
