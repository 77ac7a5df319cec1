"""Every figure builder's axes read plainly: no SI prefixes, no minor digit labels on log axes.

Plotly's defaults write 1e-7 as "100n", 2e-4 as "200µ" and label the minor ticks of a log axis
"2, 5, 2, 5", so 644 reads as "6". Every ``plot_*`` of ``wanda_viz.figures`` is built here on
small results (a planted tiny LLaMA with an outlier channel and a massive activation) and each of
its axes and colour bars is checked: numbers written plainly (``exponentformat="none"`` or explicit
tick texts), and every log axis with explicit ticks whose labels are plain numbers. A builder
added to ``figures.__all__`` without a case here fails the coverage test.
"""
from __future__ import annotations


import pandas as pd
import plotly.graph_objects as go
import pytest

import wanda_viz.figures as figures
from helpers import assert_plain_axes
from why_planted import planted_setup
from wanda_viz import PruneConfig, prune_model
from wanda_viz.analysis import (ChannelSpec, GenerationComparison, WhySpec, analyze_layer_scores,
                                compare_group_masks)
from wanda_viz.analysis.why_run import run_why
from wanda_viz.config import EvalConfig
from wanda_viz.evaluate import GenerationResult
from wanda_viz.points import PointRunner, resolve_eval_setup
from wanda_viz.pruning.registry import METHODS

LAYER = "model.layers.1.mlp.down_proj"


@pytest.fixture(scope="module")
def built() -> dict[str, go.Figure]:
    model, calib, eval_ids, report = planted_setup()
    setup = resolve_eval_setup(model, EvalConfig(seq_len=16, max_windows=4), eval_ids=eval_ids,
                               calib_ids=calib)
    why = run_why(PointRunner(model, setup), WhySpec(channels=ChannelSpec(ks=(1, 2), seeds=(0,))))
    scores = analyze_layer_scores(model, calib, LAYER, 0.5)
    comparison = compare_group_masks(scores.scores["wanda"], 0.5)
    result = prune_model(model, calib, PruneConfig(method="wanda", owl=True))
    sweep = pd.DataFrame([("dense", "dense", 0.0, 20.0), ("wanda", "unstructured", 0.5, 31.0),
                          ("magnitude", "unstructured", 0.5, 640.0),
                          ("wanda", "2:4", 0.5, 90.0)],
                         columns=["method", "structure", "sparsity", "perplexity"]).assign(
        calibration="random", eval_protocol="tiny", model="tiny", version="0")
    ablation = pd.DataFrame({"method": ["dense", "wanda", "magnitude"], "group": ["-", "row",
                                                                                   "row"],
                             "sparsity": [0.0, 0.5, 0.5], "perplexity": [20.0, 31.0, 2.5e6]})
    gen = GenerationResult("p", "a b", [1, 2], ["a", " b"], [0.5, 1e-4], 1.0)
    generation = GenerationComparison("p", {"dense": gen, "wanda 50%": gen},
                                      {"do_sample": False, "seed": 0, "max_new_tokens": 2})
    runs = pd.DataFrame({"run": ["magnitude 50%", "wanda 50%"], "method": ["magnitude", "wanda"],
                         "perplexity": [644.0, 105.8]})
    return {
        "plot_layer_magnitudes": figures.plot_layer_magnitudes(report),
        "plot_residual_heatmap": figures.plot_residual_heatmap(report),
        "plot_input_norms": figures.plot_input_norms(report, LAYER),
        "plot_score_histograms": figures.plot_score_histograms(scores),
        "plot_row_sparsity": figures.plot_row_sparsity(comparison),
        "plot_mask_categories": figures.plot_mask_categories(comparison, size=16),
        "plot_group_ablation": figures.plot_group_ablation(ablation),
        "plot_sweep": figures.plot_sweep(sweep),
        "plot_layer_sparsity": figures.plot_layer_sparsity(result),
        "plot_sparsity_grid": figures.plot_sparsity_grid(result),
        "plot_perplexity_bars": figures.plot_perplexity_bars(runs, 51.6),
        "plot_generation_probs": figures.plot_generation_probs(generation),
        "plot_disagreement_vs_norm": figures.plot_disagreement_vs_norm(why.disagreement),
        "plot_disagreement_by_layer": figures.plot_disagreement_by_layer(why.disagreement),
        "plot_channel_intervention": figures.plot_channel_intervention(why.weights),
        "plot_activation_intervention": figures.plot_activation_intervention(why.activations),
        "plot_zero_shot": figures.plot_zero_shot(
            _zero_shot_table(), caption=figures.zero_shot_caption(_zero_shot_table(), "tiny")),
    }


def _zero_shot_table() -> pd.DataFrame:
    from wanda_viz.zeroshot import TaskScore, ZeroShotResult, zero_shot_table
    def result(acc: float) -> ZeroShotResult:
        return ZeroShotResult((TaskScore("arc_easy", acc, 0.05, acc, 0.05, 50, 500, "validation",
                                         "test", "1.0", "CC BY-SA 4.0", "ai2_arc"),),
                              "0.4.13", "0.9.0", limit=50)
    return zero_shot_table([(None, result(0.5)), (PruneConfig(method="wanda"), result(0.45))])


def test_every_figure_builder_is_checked(built):
    builders = {name for name in figures.__all__ if name.startswith("plot_")}
    assert builders == set(built)


@pytest.mark.parametrize("name", sorted(n for n in figures.__all__ if n.startswith("plot_")))
def test_axes_write_numbers_plainly(built, name):
    assert_plain_axes(built[name], name)


def test_plain_numbers_and_log_ticks():
    assert [figures.plain_number(v) for v in (0.01, 5, 1000, 2.5e6, 1e-5, 1e10, 0)] == \
        ["0.01", "5", "1,000", "2,500,000", "1e-5", "1e10", "0"]
    assert figures.log_ticks([36, 6.4e6])[:3] == [1.0, 10.0, 100.0]      # decades
    assert {50.0, 100.0, 200.0, 500.0} <= set(figures.log_ticks([51, 644]))  # 1-2-5: one decade
    narrow = figures.log_ticks([36.6, 43.4])                             # under a factor of 3
    assert min(narrow) <= 36.6 and max(narrow) >= 43.4 and len(narrow) >= 4


def test_one_look_per_method_across_figures(built):
    bars = built["plot_perplexity_bars"]
    magnitude, wanda = bars.data[0], bars.data[1]
    assert magnitude.marker.color == figures.METHOD_COLORS["magnitude"]
    assert magnitude.marker.pattern.shape != wanda.marker.pattern.shape  # not by colour alone
    sweep = built["plot_sweep"]
    lines = {t.name: t for t in sweep.data if t.mode == "lines+markers"}
    assert lines["wanda"].marker.symbol != lines["magnitude"].marker.symbol  # not by colour alone
    for name, spec in METHODS.items():  # every look comes from the method's registry entry
        style = figures.method_style(name)
        assert (style["color"], style["dash"], style["symbol"]) == \
            (spec.color, spec.dash, spec.marker)
    for name in ("wanda", "magnitude"):
        assert (lines[name].line.color, lines[name].line.dash, lines[name].marker.symbol) == \
            (METHODS[name].color, METHODS[name].dash, METHODS[name].marker)
    histogram = built["plot_row_sparsity"].data[0]  # Wanda scores: Wanda's colour, never red
    assert histogram.marker.color == figures.METHOD_COLORS["wanda"]
    assert figures.METHOD_COLORS["magnitude"] not in figures.CATEGORY_COLORS


def test_captions_are_short_and_the_protocol_stays_with_the_figure(built):
    for name, fig in built.items():
        caption = fig.layout.title.subtitle.text or ""
        assert caption.count("<br>") <= 2, f"{name}: caption longer than three lines"
        assert figures.figure_protocol(fig), f"{name}: no protocol"


def test_a_new_registry_entry_brings_its_own_look(monkeypatch):
    from dataclasses import replace
    entry = replace(METHODS["wanda"], name="newmethod", color="#123456", dash="dot",
                    marker="triangle-up")
    monkeypatch.setitem(METHODS, "newmethod", entry)
    style = figures.method_style("newmethod 50%")
    assert (style["color"], style["dash"], style["symbol"]) == ("#123456", "dot", "triangle-up")
    assert style["pattern"] != figures.method_style("wanda")["pattern"]
    sweep = pd.DataFrame([("newmethod", "unstructured", 0.5, 30.0)],
                         columns=["method", "structure", "sparsity", "perplexity"]).assign(
        calibration="random", eval_protocol="tiny", model="tiny", version="0")
    (trace,) = figures.plot_sweep(sweep).data
    assert (trace.line.color, trace.line.dash, trace.marker.symbol) == \
        ("#123456", "dot", "triangle-up")


def test_methods_differ_by_dash_and_marker_not_only_by_colour():
    from wanda_viz.pruning.registry import REFINEMENTS
    dashes = [spec.dash for spec in METHODS.values()]
    markers = [spec.marker for spec in METHODS.values()]
    assert len(set(dashes)) == len(dashes) and len(set(markers)) == len(markers)
    # a refined run ("wanda+dsnot") keeps its base's colour and takes the refinement's dash
    refine_dashes = {spec.dash for spec in REFINEMENTS.values()} | {"dash"}  # the default
    assert not refine_dashes & set(dashes)
