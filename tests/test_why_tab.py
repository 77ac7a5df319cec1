"""The "Why it works" tab: handlers called directly on the tiny checkpoint of test_ui_handlers."""
from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

from test_ui_handlers import PRUNE, SETUP, save_tiny_checkpoint, write_tiny_data


@pytest.fixture(scope="module")
def tiny_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("why-ui")
    return save_tiny_checkpoint(root / "model"), write_tiny_data(root / "data")


@pytest.fixture
def app_env(tiny_assets, monkeypatch, tmp_path):
    from wanda_viz.ui.cache import MODELS
    model_dir, data_dir = tiny_assets
    monkeypatch.setenv("WANDA_VIZ_MODEL", str(model_dir))
    monkeypatch.setenv("WANDA_VIZ_DATA", str(data_dir))
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(tmp_path / "sweeps"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    MODELS.clear()
    yield model_dir
    MODELS.clear()


def test_tab_is_built_with_its_endpoint(app_env):
    from wanda_viz.ui import build_demo
    assert "/why" in build_demo().get_api_info()["named_endpoints"]


def test_why_needs_a_prune_first(app_env):
    from wanda_viz.ui import why_tab
    from wanda_viz.ui.engine import Session
    with pytest.raises(gr.Error, match="Run a prune"):
        why_tab.on_why(Session(), 0.5, [1, 2], 1)


def test_three_steps_after_a_prune(app_env):
    from wanda_viz.models import WeightBackup
    from wanda_viz.ui import handlers, why_tab
    from wanda_viz.ui.cache import MODELS
    from wanda_viz.ui.engine import Session
    session = handlers.on_prune(Session(), **SETUP, **PRUNE)[0]
    outputs = why_tab.on_why(session, *why_tab.on_preset(list(why_tab.PRESETS)[1]))
    result, named = outputs[0], dict(zip(why_tab.OUTPUTS, outputs[1:]))
    assert "Protocol:" in named["summary"] and "top 1%" in named["summary"]
    assert named["layer"].choices[0][0] == why_tab.ALL_LAYERS
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
    again = why_tab.on_why(session, 0.5, [1, 2, 4], 1)
    assert again[0].weights.table["cached"].all()     # same model and calibration: from disk
    layer = result.disagreement.layers["layer"].iloc[0]
    one = why_tab.on_layer(result, layer)
    assert layer in one.layout.title.text
    assert why_tab.on_layer(None, layer) is None
