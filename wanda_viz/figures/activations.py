"""Figures of emergent large-magnitude features (outlier features, massive activations).

Per-layer top-1/2/3 |h| against the median is the Massive Activations figure (arXiv 2402.17762,
Fig. 1); the layers x channels heatmap shows LLM.int8's outlier dimensions (arXiv 2208.07339) as
vertical stripes; the per-channel input norm is the quantity Wanda multiplies |W| by.
"""
from __future__ import annotations

import plotly.graph_objects as go
import torch

from ..analysis.outliers import ActivationReport, layer_magnitude_table
from ._style import finish_figure

__all__ = ["plot_layer_magnitudes", "plot_residual_heatmap", "plot_input_norms"]

_TOP_STYLES = (("top1", "top-1", "#AA3377"), ("top2", "top-2", "#EE6677"),
               ("top3", "top-3", "#CCBB44"), ("median", "median", "#4477AA"))


def plot_layer_magnitudes(report: ActivationReport) -> go.Figure:
    """Per decoder block: the three largest |h| of the residual stream and the median (log y).

    Args:
        report: from ``collect_activation_report``.
    Returns:
        Figure with 4 line traces (top-1, top-2, top-3, median), x = block names.
    """
    table = layer_magnitude_table(report)
    fig = go.Figure()
    for column, label, color in _TOP_STYLES:
        fig.add_trace(go.Scatter(x=table["layer"], y=table[column], name=label,
                                 mode="lines+markers", line={"color": color},
                                 hovertemplate="%{x}<br>" + label + " |h| = %{y:.4g}<extra></extra>"))
    return finish_figure(
        fig, title="Largest residual-stream activations per layer vs the median",
        x_title="decoder block", y_title="|h| (activation magnitude, log scale)", log_y=True,
        caption=report.protocol() + ". Massive activation: |h| > 100 and > 1000 x median.")


def _heatmap_channels(channel_max: torch.Tensor, max_channels: int) -> list[int]:
    """All channels, or the ``max_channels`` with the largest max |h| (kept in channel order)."""
    hidden = channel_max.shape[1]
    if hidden <= max_channels:
        return list(range(hidden))
    top = torch.topk(channel_max.amax(dim=0), max_channels).indices
    return sorted(top.tolist())


def plot_residual_heatmap(report: ActivationReport, *, max_channels: int = 4096) -> go.Figure:
    """Layers x channels heatmap of max |h| of the residual stream, on a log colour scale.

    Args:
        max_channels: show at most this many channels (those with the largest magnitude).
    Returns:
        Figure with one heatmap trace; colour = log10 max |h|.
    """
    channels = _heatmap_channels(report.channel_max, max_channels)
    values = report.channel_max[:, channels].clamp(min=1e-12)  # (n_layers, n_shown)
    z = torch.log10(values).tolist()
    low, high = int(torch.log10(values).min().floor()), int(torch.log10(values).max().ceil())
    ticks = list(range(low, high + 1))
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in channels], y=report.block_names, colorscale="Viridis",
        colorbar={"title": {"text": "max |h|"}, "tickvals": ticks,
                  "ticktext": [f"1e{t}" for t in ticks]},
        customdata=values.tolist(),
        hovertemplate="%{y}<br>channel %{x}<br>max |h| = %{customdata:.4g}<extra></extra>"))
    fig.update_xaxes(type="category")
    shown = "all channels" if len(channels) == report.hidden_size else \
        f"the {len(channels)} largest of {report.hidden_size} channels"
    return finish_figure(
        fig, title="Residual-stream magnitude per layer and channel",
        x_title="hidden channel (index)", y_title="decoder block",
        caption=f"{report.protocol()}; colour = log10 of the max |h| over all tokens; {shown}. "
                "Outlier features appear as vertical stripes.")


def plot_input_norms(report: ActivationReport, layer: str, *, log_y: bool = True) -> go.Figure:
    """Per input channel of one prunable layer: ``sqrt(input_sq_norm)`` (the Wanda statistic).

    Returns:
        Figure with a bar trace (x = input channel) and a dashed median-line trace.
    """
    if layer not in report.input_norms:
        raise ValueError(f"unknown layer {layer!r}")
    norms = report.input_norms[layer]
    fig = go.Figure(go.Bar(x=list(range(norms.numel())), y=norms.tolist(), name=layer,
                           marker={"color": "#4477AA"},
                           hovertemplate="channel %{x}<br>||X_j|| = %{y:.4g}<extra></extra>"))
    median = float(norms.median())
    # A trace, not add_hline: hline annotations are misplaced on log axes (y read as log10).
    fig.add_trace(go.Scatter(x=[0, norms.numel() - 1], y=[median, median], mode="lines",
                             name=f"median ({median:.3g})",
                             line={"color": "#555555", "dash": "dash"}))
    return finish_figure(
        fig, title=f"Input-channel norms of {layer}", x_title="input channel (index)",
        y_title="||X_j||₂ (sqrt of mean squared input norm)", log_y=log_y,
        caption=report.protocol() + ". Wanda score = |W_ij| x ||X_j||₂; large-norm channels "
                "protect their weights.")
