"""Figures of emergent large-magnitude features (outlier features, massive activations).

Per-layer top-1/2/3 |h| against the median is the Massive Activations figure (arXiv 2402.17762,
Fig. 1); the layers x channels heatmap shows LLM.int8's outlier dimensions (arXiv 2208.07339) as
vertical stripes; the per-channel input norm is the quantity Wanda multiplies |W| by.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
import torch

from ..analysis.highlights import massive_channel_summary, top_channels
from ..analysis.outliers import ActivationReport, layer_magnitude_table
from ._style import finish_figure, plain_number

__all__ = ["plot_layer_magnitudes", "plot_residual_heatmap", "plot_input_norms"]

# Not a method's colour: these lines are ranks of one activation table.
_TOP_STYLES = (("top1", "top-1", "#AA3377", "solid"), ("top2", "top-2", "#AA3377", "dash"),
               ("top3", "top-3", "#AA3377", "dot"), ("median", "median", "#777777", "solid"))


def _label_massive(fig: go.Figure, report: ActivationReport) -> None:
    """An arrow to the largest entry of each massive channel: "channel 507, token '2'".

    The y axis is logarithmic, where annotations take log10 coordinates."""
    for _, row in massive_channel_summary(report).head(3).iterrows():
        fig.add_annotation(x=row["block"], y=math.log10(float(row["max_abs"])), ax=0, ay=-30,
                           yref="y", text=f"channel {row['channel']}, token {row['token']!r}",
                           showarrow=True, arrowhead=2, font={"size": 11})


def plot_layer_magnitudes(report: ActivationReport) -> go.Figure:
    """Per decoder block: the three largest |h| of the residual stream and the median (log y).

    Massive channels (|h| > 100 and > 1000 x median) are labelled at their largest entry.
    Args:
        report: from ``collect_activation_report``.
    Returns:
        Figure with 4 line traces (top-1, top-2, top-3, median), x = block names.
    """
    table = layer_magnitude_table(report)
    fig = go.Figure()
    for column, label, color, dash in _TOP_STYLES:
        fig.add_trace(go.Scatter(x=table["layer"], y=table[column], name=label,
                                 mode="lines+markers", line={"color": color, "dash": dash},
                                 hovertemplate="%{x}<br>" + label + " |h| = %{y:,.4r}"
                                               "<extra></extra>"))
    fig = finish_figure(
        fig, title="Largest residual-stream activations per block vs the median",
        x_title="decoder block", y_title="|h| (log scale)", log_y=True,
        caption="Massive activation: |h| > 100 and > 1000 x the block's median.",
        protocol=report.protocol())
    _label_massive(fig, report)
    return fig


def _heatmap_channels(channel_max: torch.Tensor, max_channels: int) -> list[int]:
    """All channels, or the ``max_channels`` with the largest max |h| (kept in channel order)."""
    hidden = channel_max.shape[1]
    if hidden <= max_channels:
        return list(range(hidden))
    top = torch.topk(channel_max.amax(dim=0), max_channels).indices
    return sorted(top.tolist())


def plot_residual_heatmap(report: ActivationReport, *, max_channels: int = 4096) -> go.Figure:
    """Layers x channels heatmap of max |h| of the residual stream, on a log colour scale.

    The massive channels (else the largest one) are labelled above their column.
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
                  "ticktext": [plain_number(10.0 ** t) for t in ticks]},
        customdata=values.tolist(),
        hovertemplate="%{y}<br>channel %{x}<br>max |h| = %{customdata:,.4r}<extra></extra>"))
    fig.update_xaxes(type="category", showticklabels=len(channels) <= 64)
    for channel in top_channels(report):
        if channel in channels:
            fig.add_annotation(x=str(channel), y=1.0, yref="paper", yanchor="bottom",
                               text=f"channel {channel}", showarrow=True, arrowhead=2, ay=-22,
                               font={"size": 11})
    shown = "all channels" if len(channels) == report.hidden_size else \
        f"the {len(channels)} largest of {report.hidden_size} channels"
    fig = finish_figure(
        fig, title="Residual-stream magnitude per block and channel",
        x_title=f"hidden channel ({shown})", y_title="decoder block",
        caption="Colour: the largest |h| over all tokens (log scale). Outlier channels are "
                "vertical stripes.",
        protocol=report.protocol())
    fig.update_layout(margin_t=fig.layout.margin.t + 45)  # room for the channel labels
    return fig


def plot_input_norms(report: ActivationReport, layer: str, *, log_y: bool = True) -> go.Figure:
    """Per input channel of one prunable layer: ``sqrt(input_sq_norm)`` (the Wanda statistic).

    Returns:
        Figure with a bar trace (x = input channel) and a dashed median-line trace.
    """
    if layer not in report.input_norms:
        raise ValueError(f"unknown layer {layer!r}")
    norms = report.input_norms[layer]
    fig = go.Figure(go.Bar(x=list(range(norms.numel())), y=norms.tolist(), name="||X_j||",
                           marker={"color": "#4477AA", "line": {"width": 0}},
                           hovertemplate="channel %{x}<br>||X_j|| = %{y:,.4r}<extra></extra>"))
    median = float(norms.median())
    # A trace, not add_hline: hline annotations are misplaced on log axes (y read as log10).
    fig.add_trace(go.Scatter(x=[0, norms.numel() - 1], y=[median, median], mode="lines",
                             name=f"median ({plain_number(round(median, 3))})",
                             line={"color": "#555555", "dash": "dash"}))
    peak = int(norms.argmax())
    fig.add_annotation(x=peak, y=float(norms[peak]), yref="y",
                       text=f"channel {peak}: {float(norms[peak]) / median:,.0f}x the median"
                       if median > 0 else f"channel {peak}", showarrow=True, arrowhead=2, ay=-25)
    fig = finish_figure(
        fig, title=f"Input-channel norms of {layer}", x_title="input channel",
        y_title="||X_j|| (log scale)" if log_y else "||X_j||", log_y=log_y,
        caption="Wanda score = |W_ij| x ||X_j||: weights on large-norm channels are protected.",
        protocol=report.protocol())
    if log_y:  # annotations on a log axis take log10 coordinates
        fig.layout.annotations[-1].y = math.log10(max(float(norms[peak]), 1e-30))
    return fig
