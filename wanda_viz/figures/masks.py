"""Figures of scores and masks: score histograms, per-row sparsity, kept/pruned maps, ablation.

Wanda (arXiv 2306.11695) compares scores per output row; these figures show what changes against
one threshold per layer (section 3, Table 8 ablation) and against magnitude / SparseGPT scores.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..analysis.groups import CATEGORY_LABELS, GroupComparison
from ..analysis.scores import ScoreReport
from ..pruning.registry import METHODS
from ._style import CATEGORY_COLORS, METHOD_COLORS, finish_figure, method_color

__all__ = ["plot_score_histograms", "plot_row_sparsity", "plot_mask_categories",
           "plot_group_ablation"]

_SCORE_UNITS = {name: spec.unit for name, spec in METHODS.items()}


def _log_histogram(scores: torch.Tensor, bins: int) -> tuple[list[float], list[int], int]:
    """Histogram of positive scores on log-spaced bins: (bin centres, counts, zeros excluded)."""
    flat = scores.flatten().double()
    positive = flat[flat > 0]
    if positive.numel() == 0:
        return [], [], flat.numel()
    logs = positive.log10()
    low, high = logs.min().item(), logs.max().item()
    high = high if high > low else low + 1e-6
    counts = torch.histc(logs, bins=bins, min=low, max=high)
    edges = torch.linspace(low, high, bins + 1, dtype=torch.float64)
    centres = (10 ** ((edges[:-1] + edges[1:]) / 2)).tolist()
    return centres, counts.long().tolist(), flat.numel() - positive.numel()


def plot_score_histograms(report: ScoreReport, *, bins: int = 80) -> go.Figure:
    """One panel per method: score histogram on a log x axis with the pruning threshold(s).

    Per-layer / block groups: a solid line at the (median) threshold; per-row groups: the median
    of the per-row thresholds (solid) and their min and max (dotted).
    Returns:
        Figure with one step trace per method (stacked panels, own x axes).
    """
    methods = list(report.scores)
    fig = make_subplots(rows=len(methods), cols=1, vertical_spacing=0.12,
                        subplot_titles=[f"{m}: {_SCORE_UNITS.get(m, 'score')}, "
                                        f"per-{report.groups[m]} threshold" for m in methods])
    excluded = []
    for row, method in enumerate(methods, start=1):
        centres, counts, zeros = _log_histogram(report.scores[method], bins)
        excluded.append(f"{method} {zeros}")
        fig.add_trace(go.Scatter(x=centres, y=counts, name=method, mode="lines",
                                 line={"shape": "hvh", "color": method_color(method)},
                                 fill="tozeroy"), row=row, col=1)
        info = report.thresholds[method]
        if info["median"] == info["median"]:  # not NaN
            fig.add_vline(x=info["median"], line_color="#222222", row=row, col=1)
        if info["group"] in ("row", "input", "block") and info["min"] == info["min"]:
            for value in (info["min"], info["max"]):
                fig.add_vline(x=value, line_dash="dot", line_color="#777777", row=row, col=1)
        fig.update_xaxes(type="log", title_text=f"score ({_SCORE_UNITS.get(method, '')}, log)",
                         row=row, col=1)
        fig.update_yaxes(title_text="weights (count)", row=row, col=1)
    caption = (f"{report.layer} {report.shape[0]}x{report.shape[1]}, dense model; thresholds at "
               f"{report.sparsity:.0%} sparsity in each method's comparison group; zero scores "
               f"left out ({', '.join(excluded)}). SparseGPT saliency on the dense weight with 1% "
               "damping (first-block view).")
    fig = finish_figure(fig, title=f"Score distributions of {report.layer}",
                        x_title=None, y_title=None, caption=caption,
                        height=260 * len(methods) + 60)
    fig.update_layout(margin_t=fig.layout.margin.t + 25)  # room for the first panel's title
    return fig


def plot_row_sparsity(comparison: GroupComparison, *, layer: str = "",
                      bins: int = 40) -> go.Figure:
    """Histogram of the pruned share of each output row under the per-layer mask.

    The per-row mask gives every row exactly the target (dashed line).
    Returns:
        Figure with one histogram trace.
    """
    fig = go.Figure(go.Histogram(x=comparison.row_sparsity_layer_mask.tolist(), nbinsx=bins,
                                 name="per-layer mask", marker={"color": "#EE6677"}))
    fig.add_vline(x=comparison.sparsity, line_dash="dash", line_color="#4477AA",
                  annotation_text="per-row mask (every row)")
    return finish_figure(
        fig, title=f"Row sparsity under one threshold per layer{' - ' + layer if layer else ''}",
        x_title="pruned share of the row (fraction of weights)", y_title="output rows (count)",
        caption=f"target sparsity {comparison.sparsity:.0%}; the masks disagree on "
                f"{comparison.disagreement:.2%} of the weights.")


def plot_mask_categories(comparison: GroupComparison, *, layer: str = "", row_start: int = 0,
                         col_start: int = 0, size: int = 64) -> go.Figure:
    """Categorical map of a weight block: kept by both / pruned by both / row-only / layer-only.

    Args:
        row_start / col_start / size: the block shown, rows [row_start, row_start+size).
    Returns:
        Figure with one heatmap trace (discrete colours, legend in the colour bar).
    """
    block = comparison.categories[row_start:row_start + size, col_start:col_start + size]
    n_cat = len(CATEGORY_LABELS)
    scale = []
    for code, color in enumerate(CATEGORY_COLORS):
        scale += [[code / n_cat, color], [(code + 1) / n_cat, color]]
    fig = go.Figure(go.Heatmap(
        z=block.float().tolist(), zmin=-0.5, zmax=n_cat - 0.5, colorscale=scale,
        x=list(range(col_start, col_start + block.shape[1])),
        y=list(range(row_start, row_start + block.shape[0])),
        colorbar={"tickvals": list(range(n_cat)), "ticktext": list(CATEGORY_LABELS)},
        customdata=[[CATEGORY_LABELS[int(v)] for v in r] for r in block.tolist()],
        hovertemplate="row %{y}, input %{x}<br>%{customdata}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    counts = comparison.category_counts()
    return finish_figure(
        fig, title=f"Per-row vs per-layer mask{' - ' + layer if layer else ''}",
        x_title="input channel (index)", y_title="output row (index)",
        caption=f"{comparison.sparsity:.0%} sparsity, same scores; whole layer: "
                + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")


def plot_group_ablation(table: pd.DataFrame, *, protocol: str = "") -> go.Figure:
    """Perplexity per comparison group (row, layer, input) for each method, dense as a line.

    Args:
        table: from ``group_ablation`` (method, group, sparsity, perplexity ...).
    Returns:
        Figure with one bar trace per method (grouped), plus a dashed dense line.
    """
    fig = go.Figure()
    pruned = table[table["method"] != "dense"]
    for method, part in pruned.groupby("method", sort=False):
        fig.add_trace(go.Bar(x=[f"per-{g}" for g in part["group"]], y=part["perplexity"],
                             name=method, marker={"color": method_color(method)},
                             text=[f"{p:.2f}" for p in part["perplexity"]],
                             textposition="outside"))
    dense = table[table["method"] == "dense"]
    if len(dense):
        fig.add_hline(y=float(dense["perplexity"].iloc[0]), line_dash="dash",
                      line_color=METHOD_COLORS["dense"], annotation_text="dense")
    sparsity = pruned["sparsity"].iloc[0] if len(pruned) else 0.0
    fig.update_layout(barmode="group")
    return finish_figure(fig, title=f"Comparison-group ablation at {sparsity:.0%} sparsity",
                         x_title="comparison group", y_title="perplexity (exp NLL/token)",
                         caption=protocol or "perplexity by the reference protocol")
