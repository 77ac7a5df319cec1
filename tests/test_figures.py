"""Figures: type, trace counts, axis titles, layer names, protocol captions, method colours.

Never renders images (no kaleido); only the figure objects are inspected.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from conftest import make_tiny_model

from wanda_viz import PruneConfig, prune_model
from wanda_viz.analysis import (GenerationComparison, analyze_layer_scores,
                                collect_activation_report, compare_group_masks)
from wanda_viz.evaluate import GenerationResult
from wanda_viz.figures import (METHOD_COLORS, figure_protocol, plot_generation_probs,
                               plot_group_ablation, plot_input_norms, plot_layer_magnitudes,
                               plot_layer_sparsity, plot_mask_categories, plot_residual_heatmap,
                               plot_row_sparsity, plot_score_histograms, plot_sweep,
                               write_sweep_report)
from wanda_viz.pruning.registry import METHOD_NAMES

LAYER = "model.layers.1.mlp.down_proj"


def _caption(fig: go.Figure) -> str:
    """The figure's short caption and its full protocol (``figure_protocol``)."""
    caption = fig.layout.title.subtitle.text
    assert caption, "every figure carries a short caption as its subtitle"
    return f"{caption} {figure_protocol(fig)}"


@pytest.fixture(scope="module")
def activation_report():
    ids = torch.randint(0, 99, (2, 16), generator=torch.Generator().manual_seed(0))
    return collect_activation_report(make_tiny_model("llama"), ids,
                                     calibration={"source": "random", "n_samples": 2,
                                                  "seq_len": 16, "seed": 0})


@pytest.fixture
def sweep_table() -> pd.DataFrame:
    rows = [("dense", "dense", 0.0, 20.0)]
    rows += [(m, "unstructured", s, 20 + 10 * s * k) for k, m in
             enumerate(["magnitude", "wanda", "sparsegpt"], 1) for s in (0.3, 0.5)]
    rows += [(m, "2:4", 0.5, 40.0) for m in ["magnitude", "wanda", "sparsegpt"]]
    table = pd.DataFrame(rows, columns=["method", "structure", "sparsity", "perplexity"])
    return table.assign(group="row", achieved_sparsity=table["sparsity"], prune_s=0.1,
                        forward_s=0.2, eval_s=0.3, cached=False, model="tiny",
                        calibration="random, 4 x 16 tokens, seed 0",
                        eval_protocol="eval.txt, seq_len 16", version="0.1.0")


def test_activation_figures(activation_report):
    fig = plot_layer_magnitudes(activation_report)
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert fig.layout.yaxis.type == "log" and "|h|" in fig.layout.yaxis.title.text
    assert list(fig.data[0].x) == ["model.layers.0", "model.layers.1"]
    assert "random" in _caption(fig)
    heat = plot_residual_heatmap(activation_report, max_channels=8)
    assert len(heat.data) == 1 and len(heat.data[0].x) == 8
    assert list(heat.data[0].y) == ["model.layers.0", "model.layers.1"]
    assert heat.layout.xaxis.title.text.startswith("hidden channel")
    norms = plot_input_norms(activation_report, LAYER)
    assert len(norms.data) == 2 and len(norms.data[0].y) == 64 and LAYER in norms.layout.title.text
    with pytest.raises(ValueError):
        plot_input_norms(activation_report, "nope")


def test_score_and_mask_figures(calib_ids):
    report = analyze_layer_scores(make_tiny_model("llama"), calib_ids, LAYER, 0.5)
    fig = plot_score_histograms(report)
    assert [t.name for t in fig.data] == list(METHOD_NAMES)  # every registered method
    assert all(fig.layout[f"xaxis{i}"].type == "log"
               for i in ("", *map(str, range(2, len(METHOD_NAMES) + 1))))
    assert [t.line.color for t in fig.data] == [METHOD_COLORS[m] for m in METHOD_NAMES]
    assert len(set(METHOD_COLORS[m] for m in METHOD_NAMES)) == len(METHOD_NAMES)
    assert LAYER in fig.layout.title.text and "50%" in _caption(fig)
    comparison = compare_group_masks(report.scores["wanda"], 0.5)
    rows = plot_row_sparsity(comparison, layer=LAYER)
    assert len(rows.data) == 1 and rows.layout.yaxis.title.text == "output rows (count)"
    cats = plot_mask_categories(comparison, layer=LAYER, size=16)
    assert len(cats.data) == 1 and len(cats.data[0].z) == 16
    assert list(cats.data[0].colorbar.ticktext)[0] == "kept by both"


def test_group_ablation_figure():
    table = pd.DataFrame({"method": ["dense", "wanda", "wanda", "magnitude", "magnitude"],
                          "group": ["-", "row", "layer", "row", "layer"],
                          "sparsity": [0.0, 0.5, 0.5, 0.5, 0.5],
                          "perplexity": [10.0, 12.0, 14.0, 30.0, 25.0]})
    fig = plot_group_ablation(table, protocol="wikitext2 test, seq_len 16")
    assert len(fig.data) == 2 and list(fig.data[0].x) == ["per-row", "per-layer"]
    assert fig.data[1].marker.color == METHOD_COLORS["magnitude"]
    assert fig.layout.shapes[0].line.dash == "dash" and fig.layout.annotations[-1].text == \
        "dense 10.0"
    assert "perplexity" in fig.layout.yaxis.title.text and "seq_len 16" in _caption(fig)


def test_sweep_figure_and_report(sweep_table, tmp_path):
    fig = plot_sweep(sweep_table)
    assert len(fig.data) == 7  # 3 method lines + 3 markers for 2:4 + the dense baseline
    assert fig.data[-1].name.startswith("dense") and fig.data[-1].line.dash == "dash"
    assert fig.layout.yaxis.type == "log"
    assert {t.name for t in fig.data} >= {"wanda", "wanda 2:4"}
    assert "eval.txt" in _caption(fig) and "sparsity" in fig.layout.xaxis.title.text
    path = write_sweep_report(sweep_table, tmp_path / "report.html", title="tiny sweep")
    html = path.read_text()
    assert "tiny sweep" in html and "<table" in html and "plotly" in html.lower()
    assert len(html) > 1_000_000  # plotly.js embedded: self-contained


def test_layer_sparsity_figure(calib_ids):
    result = prune_model(make_tiny_model("llama"), calib_ids, PruneConfig(method="wanda"))
    fig = plot_layer_sparsity(result)
    assert len(fig.data) == 2 and LAYER in list(fig.data[0].y)
    assert fig.data[0].marker.color == METHOD_COLORS["wanda"]
    assert "sparsity" in fig.layout.xaxis.title.text and "wanda 50%" in _caption(fig)
    assert len(plot_layer_sparsity({"a": 0.5, "b": 0.4}).data) == 1


def test_generation_figure():
    dense = GenerationResult("p", "a b c", [1, 2, 3], ["a", " b", " c"], [0.5, 0.4, 0.3], 1.0)
    pruned = GenerationResult("p", "a x c", [1, 9, 3], ["a", " x", " c"], [0.5, 0.2, 0.3], 1.0)
    comparison = GenerationComparison("p", {"dense": dense, "wanda 50%": pruned},
                                      {"do_sample": False, "seed": 0, "max_new_tokens": 3})
    fig = plot_generation_probs(comparison)
    assert len(fig.data) == 2 and list(fig.data[1].marker.symbol) == ["circle", "x", "circle"]
    assert fig.data[1].line.color == METHOD_COLORS["wanda"]
    assert "wanda 50%: 1" in _caption(fig)
