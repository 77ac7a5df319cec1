"""Tab 7, why it works: handlers called directly on the tiny checkpoint (conftest.py app_env)."""
from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

from helpers import PRUNE, SETUP


def test_tab_is_built_with_its_endpoint(app_env):
    from wanda_viz.ui import build_demo
    assert "/why" in build_demo().get_api_info()["named_endpoints"]


def test_why_needs_a_prune_first(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import why
    with pytest.raises(gr.Error, match="Run a prune"):
        why.on_why(Session(), sparsity=0.5, ks=[1, 2], seeds=1)


def test_three_steps_after_a_prune(app_env):
    from wanda_viz.layers import WeightBackup
    from wanda_viz.service import Session
    from wanda_viz.service.cache import MODELS
    from wanda_viz.ui.tabs import model, why
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    preset = why.on_preset(list(why.PRESETS)[1])
    assert preset == {"sparsity": 0.5, "ks": [1, 2, 4], "seeds": 1}
    named = why.on_why(session, **preset)
    result = named["session"].why
    assert set(named) == {"session", *why.OUTPUTS}
    assert "Protocol:" in named["summary"] and "top 1%" in named["summary"]
    assert named["layer"].choices[0][0] == why.ALL_LAYERS
    for name in ("scatter", "by_layer", "weights_fig"):
        assert isinstance(named[name], go.Figure)
    assert list(named["weights"]["kind"]) == ["dense"] + ["outlier"] * 3 + ["random"] * 3
    assert "perplexity:" in named["weights_protocol"]
    # a random tiny model has no massive activations: step 3 says so instead of a figure
    assert named["activations_fig"] is None and "no massive activations" in \
        named["activations_protocol"]
    assert {p.rsplit("/", 1)[1] for p in named["files"]} >= {"why.csv", "why.json"}
    (entry,) = MODELS._models.values()
    assert all(torch.equal(w, entry.backup.weights[n])
               for n, w in WeightBackup(entry.model).weights.items())
    again = why.on_why(session, sparsity=0.5, ks=[1, 2, 4], seeds=1)
    assert again["session"].why.weights.table["cached"].all()  # same setup: from disk
    layer = result.disagreement.layers["layer"].iloc[0]
    assert layer in why.on_layer(session, layer)["scatter"].layout.title.text
    assert why.on_layer(Session(), layer) == {"scatter": None}


def test_a_new_setup_clears_the_result_and_the_same_setup_keeps_it(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import model, why
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    session = why.on_why(session, sparsity=0.5, ks=[1], seeds=1)["session"]
    result = session.why
    # Another run on the same model and windows: the result still describes this setup.
    session = model.on_prune(session, **SETUP, **{**PRUNE, "method": "magnitude"})["session"]
    assert session.why is result
    views = why.on_render(session)
    assert "top 1%" in views["summary"] and views["files"] is not None  # files left as they are
    assert all(value == gr.skip() for value in why.on_refresh(session).values())  # not redrawn
    # Other calibration windows: the result is gone and the views (and downloads) are cleared.
    session = model.on_prune(session, **{**SETUP, "n_samples": 3}, **PRUNE)["session"]
    assert session.why is None
    views = why.on_render(session)
    assert views["summary"] == why.PLACEHOLDER and views["files"] is None
    assert views["scatter"] is None and views["weights"] is None
    refreshed = why.on_refresh(session)
    assert refreshed["summary"] == why.PLACEHOLDER and refreshed["files"] is None


def test_why_through_the_named_api(tmp_path):
    from gradio_client import Client
    from app_server import serve_app
    from wanda_viz.ui.tabs import why
    with serve_app(tmp_path) as url:
        client = Client(url, verbose=False, download_files=False)
        client.predict(**SETUP, **PRUNE, api_name="/prune")
        outputs = client.predict(sparsity=0.5, ks=[1, 2], seeds=1, api_name="/why")
    named = dict(zip(why.OUTPUTS, outputs))   # the session (a gr.State) is not part of the API
    assert "top 1%" in named["summary"] and "Protocol:" in named["summary"]
    assert [row[0] for row in named["weights"]["data"]] == ["dense", "outlier", "outlier",
                                                            "random", "random"]
    assert "perplexity:" in named["weights_protocol"]
    # no massive activations in a random tiny model: no activation table among the downloads
    assert sorted(f["orig_name"] for f in named["files"]) == [
        "why.csv", "why.json", "why_channels.csv", "why_weights.csv"]
