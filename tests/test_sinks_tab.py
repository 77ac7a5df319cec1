"""Tab 9, where the huge activations go: handlers called directly on the tiny checkpoint of
conftest's tiny_assets (seq_len 32, so windows above 30 are left out of the sliding-window demo)."""
from __future__ import annotations

import json

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

from helpers import PRUNE, SETUP

RUN = dict(windows=[4, 8, 64], sink_tokens=2, seeds=1, run_interventions=True, sparsity=0.5,
           view_text="The cat sat. The dog ran.")


def test_tab_is_built_with_its_endpoint(app_env):
    from wanda_viz.ui import build_demo
    assert "/sinks" in build_demo().get_api_info()["named_endpoints"]


def test_sinks_needs_a_prune_first(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import sinks
    with pytest.raises(gr.Error, match="Run a prune"):
        sinks.on_sinks(Session(), **RUN)


def test_presets(app_env):
    from wanda_viz.ui.tabs import sinks
    assert sinks.on_preset(list(sinks.PRESETS)[2]) == {
        "windows": [], "sink_tokens": 4, "seeds": 1, "run_interventions": False}
    with pytest.raises(gr.Error, match="unknown preset"):
        sinks.on_preset("nope")


def test_every_view_after_a_prune(app_env):
    from wanda_viz.layers import WeightBackup
    from wanda_viz.service import Session
    from wanda_viz.service.cache import MODELS
    from wanda_viz.ui.tabs import model, sinks
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    named = sinks.on_sinks(session, **RUN)
    result = named["session"].sinks
    assert set(named) == {"session", *sinks.OUTPUTS}
    assert "first token" in named["summary"] and "In block" in named["summary"]
    for name in ("attention", "bias", "view", "window_fig", "pruning_fig"):
        assert isinstance(named[name], go.Figure)
    assert list(result.window["window"].dropna()) == [4, 4, 8, 8]   # 64 does not fit seq_len 32
    assert "attention and bias" in named["protocols"]
    files = {p.rsplit("/", 1)[1]: p for p in named["files"]}
    assert {"sinks.json", "sinks_window.csv", "sinks_bias.csv"} <= set(files)
    payload = json.loads(open(files["sinks.json"], encoding="utf-8").read())
    assert len(payload["first_token_attention"]) == len(result.sinks.block_names)
    (entry,) = MODELS._models.values()
    assert entry.model.config._attn_implementation != "eager"
    assert all(torch.equal(w, entry.backup.weights[n])
               for n, w in WeightBackup(entry.model).weights.items())
    again = sinks.on_sinks(session, **RUN)["session"].sinks
    assert again.window["cached"].all()            # same setup: points from disk


def test_a_new_setup_clears_the_result(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import model, sinks
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    quick = {**RUN, "windows": [], "run_interventions": False}
    session = sinks.on_sinks(session, **quick)["session"]
    result = session.sinks
    session = model.on_prune(session, **SETUP, **{**PRUNE, "method": "magnitude"})["session"]
    assert session.sinks is result
    assert all(value == gr.skip() for value in sinks.on_refresh(session).values())
    session = model.on_prune(session, **{**SETUP, "n_samples": 3}, **PRUNE)["session"]
    assert session.sinks is None
    views = sinks.on_refresh(session)
    assert views["summary"] == sinks.PLACEHOLDER and views["files"] is None


def test_sinks_through_the_named_api(tmp_path):
    from gradio_client import Client
    from app_server import serve_app
    from wanda_viz.ui.tabs import sinks
    with serve_app(tmp_path) as url:
        client = Client(url, verbose=False, download_files=False)
        client.predict(**SETUP, **PRUNE, api_name="/prune")
        outputs = client.predict(**{**RUN, "windows": [16]}, api_name="/sinks")
    named = dict(zip(sinks.OUTPUTS, outputs))   # the session (a gr.State) is not in the API
    assert "first token" in named["summary"]
    assert [row[:2] for row in named["window"]["data"]] == [[None, 0], [16, 0], [16, 2]]
    assert "sinks.json" in {f["orig_name"] for f in named["files"]}
