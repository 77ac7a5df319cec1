"""Sinks figures and takeaways: pure functions of results (no model), numbers in the sentences.

Results come from hand-made tables and from one run on the planted sink model; nothing is
rendered (figure objects are inspected, as in test_figures.py).
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from helpers import assert_plain_axes
from sinks_planted import SINK_CHANNEL, sink_model, sink_windows
from wanda_viz.analysis import collect_activation_report
from wanda_viz.analysis.sinks import MassiveRule, collect_sink_report
from wanda_viz.analysis.sinks_view import token_channel_view
from wanda_viz.figures.sinks import (plot_first_token_attention, plot_sink_bias,
                                     plot_sink_interventions, plot_sink_pruning,
                                     plot_sliding_window, plot_token_channels)
from wanda_viz.figures.sinks_text import (intervention_takeaway, pruning_takeaway,
                                          window_takeaway)


@pytest.fixture(scope="module")
def planted():
    model, ids = sink_model(), sink_windows()
    rule = MassiveRule.from_report(collect_activation_report(model, ids))
    return (collect_sink_report(model, ids, rule),
            token_channel_view(model, ids[0], 0, rule))


def _caption(fig: go.Figure) -> str:
    return fig.layout.title.subtitle.text.replace("<br>", " ")


def test_attention_heatmap(planted):
    report, _ = planted
    fig = plot_first_token_attention(report)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    assert list(fig.data[0].y) == ["0", "1 *"]     # block 0's output feeds block 1
    assert fig.layout.xaxis.title.text == "attention head"
    assert report.carrying_blocks == [1]
    mean, other = float(report.first_token[1].mean()), float(report.first_token[0].mean())
    assert f"heads put on average {mean:.0%}" in _caption(fig)
    assert f"in the other blocks {other:.0%}" in _caption(fig)


def test_bias_and_view_figures(planted):
    report, view = planted
    fig = plot_sink_bias(report)
    assert [t.name for t in fig.data] == ["first token's part", "other tokens' part",
                                          "first token's share of the norm"]
    assert f"In block 1, the first token's part" in _caption(fig)
    assert f"{report.bias['sink_cosine'].iloc[1]:.2f}" in _caption(fig)
    fig = plot_token_channels(view)
    assert fig.data[0].type == "heatmap" and len(fig.data[0].y) == len(view.tokens)
    assert fig.data[0].y[0].startswith("<b>0:")                # the sink token is highlighted
    assert any(a.text == f"ch {SINK_CHANNEL}" for a in fig.layout.annotations)


def test_intervention_figure_and_takeaway():
    table = pd.DataFrame({"target": ["dense", "massive", "massive", "random", "random",
                                     "random", "random"],
                          "mode": ["none", "zero", "mean", "zero", "zero", "mean", "mean"],
                          "seed": [None, None, None, 0, 1, 0, 1],
                          "perplexity": [10.0, 900.0, 10.5, 10.2, 10.4, 10.1, 10.3]})
    text = intervention_takeaway(table)
    assert "from 10.00 to 900.00" in text and "gives 10.50" in text
    assert "10.30 (zero), 10.20 (mean)" in text
    fig = plot_sink_interventions(table, "protocol text")
    assert len(fig.data) == 2 and len(fig.data[0].x) == 4      # bars + dense line
    assert list(fig.data[0].y) == pytest.approx([900.0, 10.5, 10.3, 10.2])
    assert "protocol text" in _caption(fig)


def test_window_figure_and_takeaway():
    table = pd.DataFrame({"window": [None, 8, 8, 32, 32], "sink_tokens": [0, 0, 4, 0, 4],
                          "perplexity": [12.0, 400.0, 20.0, 100.0, 14.0]})
    assert window_takeaway(table) == (
        "With each token seeing only the last 8 tokens, perplexity is 400.00 without the first "
        "tokens and 20.00 when the first 4 are kept too (full attention: 12.00).")
    fig = plot_sliding_window(table)
    assert [t.name for t in fig.data] == ["window only", "window + first 4 tokens",
                                          "full attention (12)"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_pruning_figure_and_takeaway():
    kinds = pd.DataFrame({"kind": ["down_proj", "q_proj"], "layers": [2, 2], "weights": [10, 20],
                          "kept_magnitude": [2, 5], "kept_wanda": [9, 15],
                          "share_magnitude": [0.2, 0.25], "share_wanda": [0.9, 0.75]})
    assert pruning_takeaway(kinds) == ("Of the weights that read the massive channels, Wanda vs "
                                       "magnitude keep (both at 50%): down_proj 90% vs 20%; "
                                       "q_proj 75% vs 25%.")
    fig = plot_sink_pruning(kinds)
    assert list(fig.data[0].x) == ["q_proj", "down_proj"]      # attention before MLP
    assert [t.name for t in fig.data] == ["magnitude", "wanda", "kept overall (50%)"]
    assert fig.data[0].marker.color != fig.data[1].marker.color
    assert torch.tensor(list(fig.data[1].y)).tolist() == pytest.approx([0.75, 0.9])


def test_sinks_axes_write_numbers_plainly(planted):
    """The same axis rules as every other figure (tests/test_figure_axes.py)."""
    report, view = planted
    window = pd.DataFrame({"window": [None, 8, 8, 32, 32], "sink_tokens": [0, 0, 4, 0, 4],
                           "perplexity": [12.0, 400.0, 20.0, 100.0, 14.0]})
    interventions = pd.DataFrame({"target": ["dense", "massive", "massive"],
                                  "mode": ["none", "zero", "mean"], "seed": [None, None, None],
                                  "perplexity": [10.0, 2.5e6, 10.5]})
    figures = {"attention": plot_first_token_attention(report), "bias": plot_sink_bias(report),
               "view": plot_token_channels(view), "window": plot_sliding_window(window),
               "interventions": plot_sink_interventions(interventions)}
    for name, fig in figures.items():
        assert_plain_axes(fig, name)
