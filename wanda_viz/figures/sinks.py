"""Figures of where the huge activations go: attention sinks, the implicit bias, the interventions,
the sliding window and what pruning keeps of the weights reading the massive channels.

Pure functions: results of ``analysis.sinks*`` / ``analysis.sliding_window`` in, ``go.Figure``
out. Each caption starts with the takeaway sentence (``sinks_text``), then the protocol. Wanda and
magnitude keep their method colours; the massive and random arms reuse the why figures' colours.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import torch

from ..analysis.sinks import SinkReport
from ..analysis.sinks_view import TokenChannelView
from ._style import METHOD_COLORS, plain_number
from .sinks_text import (attention_takeaway, bias_takeaway, intervention_takeaway,
                         pruning_takeaway, view_takeaway, window_takeaway)
from .why import MEAN_COLOR, OUTLIER_COLOR, RANDOM_COLOR, _dense_trace, _finish

__all__ = ["plot_first_token_attention", "plot_sink_bias", "plot_token_channels",
           "plot_sink_interventions", "plot_sliding_window", "plot_sink_pruning"]

SINK_COLOR, REST_COLOR = "#AA3377", "#66CCEE"
_MARK = "Blocks marked * have massive activations in their input."
KIND_ORDER = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _block_labels(report: SinkReport) -> list[str]:
    massive = set(report.carrying_blocks)
    return [f"{i}{' *' if i in massive else ''}" for i in range(len(report.block_names))]


def plot_first_token_attention(report: SinkReport) -> go.Figure:
    """Blocks x heads heatmap of the mean attention on position 0; massive blocks marked '*'."""
    values = report.first_token.float()                           # (n_layers, n_heads)
    labels = _block_labels(report)
    fig = go.Figure(go.Heatmap(
        z=values.tolist(), x=[str(h) for h in range(values.shape[1])], y=labels, zmin=0, zmax=1,
        colorscale="Viridis", colorbar={"title": {"text": "attention<br>on token 0"},
                                        "tickformat": ".0%"},
        hovertemplate="block %{y}, head %{x}<br>attention on position 0: %{z:.1%}"
                      "<extra></extra>"))
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(type="category")
    return _finish(fig, title="Attention on the first token, per block and head",
                   x_title="attention head", y_title="decoder block",
                   caption=f"{attention_takeaway(report)} {_MARK} Protocol: {report.protocol()}",
                   height=max(420, 18 * len(labels) + 120))


def plot_sink_bias(report: SinkReport) -> go.Figure:
    """Per block: mean cosine between query positions of the first token's part and of the rest."""
    bias = report.bias
    x = _block_labels(report)
    fig = go.Figure()
    for column, name, color, dash in (
            ("sink_cosine", "first token's part", SINK_COLOR, "solid"),
            ("rest_cosine", "other tokens' part", REST_COLOR, "solid"),
            ("sink_share", "first token's share of the norm", "#555555", "dot")):
        fig.add_trace(go.Scatter(x=x, y=bias[column], name=name, mode="lines+markers",
                                 line={"color": color, "dash": dash},
                                 hovertemplate="block %{x}: %{y:.3f}<extra>" + name + "</extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[min(-0.05, float(bias[["sink_cosine", "rest_cosine"]].min().min())),
                            1.05])
    return _finish(fig, title="The implicit bias: how constant is the first token's contribution?",
                   x_title="decoder block", y_title="mean cosine / share",
                   caption=f"{bias_takeaway(report)} {_MARK} Protocol: attention output without "
                           f"the projection bias, split into the first token's term "
                           f"W_o[p_q0 v_0] and the rest; cosine over pairs of query positions "
                           f"1..T-1 of all windows; {report.protocol()}")


def _tick_label(position: int, token: str, carrying: set[int]) -> str:
    text = f"{position}: {token.strip() or repr(token)}"
    return f"<b>{text} ◀</b>" if position in carrying else text


def plot_token_channels(view: TokenChannelView) -> go.Figure:
    """Tokens x channels heatmap of log10 |h|; massive channels labelled, carrying tokens bold."""
    magnitude = view.magnitude.clamp(min=1e-6)                     # (T, hidden)
    z = torch.log10(magnitude)
    ticks = list(range(int(z.min().floor()), int(z.max().ceil()) + 1))  # decades, written plainly
    carrying = set(view.carrying_positions)
    labels = [_tick_label(i, t, carrying) for i, t in enumerate(view.tokens)]
    fig = go.Figure(go.Heatmap(
        z=z.tolist(), y=labels, colorscale="Viridis", customdata=magnitude.tolist(),
        colorbar={"title": {"text": "|h| (log scale)"}, "tickvals": ticks,
                  "ticktext": [plain_number(10.0 ** t) for t in ticks]},
        hovertemplate="%{y}<br>channel %{x}<br>|h| = %{customdata:,.4g}<extra></extra>"))
    for channel in view.massive_channels[:6]:
        fig.add_annotation(x=channel, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                           text=f"ch {channel}", font={"size": 11, "color": SINK_COLOR})
    fig.update_yaxes(type="category", autorange="reversed")
    return _finish(fig, title=f"|h| per token and channel at {view.block}",
                   x_title="hidden channel (index)", y_title="token (◀ carries a massive one)",
                   caption=f"{view_takeaway(view)} Protocol: {view.protocol()}",
                   height=max(360, 22 * len(labels) + 120))


def _bar_rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = table.groupby(["target", "mode"], sort=False)["perplexity"].agg(
        ["mean", "min", "max", "count"]).reset_index()
    return rows[rows["target"] != "dense"]


def plot_sink_interventions(table: pd.DataFrame, protocol: str = "") -> go.Figure:
    """Bars: massive vs random activations set to zero / to their mean, in every massive block."""
    rows = _bar_rows(table)
    colors = {("massive", "zero"): OUTLIER_COLOR, ("massive", "mean"): MEAN_COLOR}
    names = [f"{t} activations = {'0' if m == 'zero' else 'their mean'}" +
             (f" (mean of {c} seeds)" if t == "random" else "")
             for t, m, c in zip(rows["target"], rows["mode"], rows["count"])]
    fig = go.Figure(go.Bar(
        x=names, y=rows["mean"], text=[f"{v:,.4g}" for v in rows["mean"]], textposition="outside",
        marker_color=[colors.get((t, m), RANDOM_COLOR) for t, m in zip(rows["target"],
                                                                        rows["mode"])],
        error_y={"type": "data", "symmetric": False, "array": rows["max"] - rows["mean"],
                 "arrayminus": rows["mean"] - rows["min"]},
        hovertemplate="%{x}: ppl %{y:,.4g}<extra></extra>"))
    dense = float(table.loc[table["target"] == "dense", "perplexity"].iloc[0])
    fig.add_trace(_dense_trace(dense, names))
    fig.update_xaxes(type="category")
    return _finish(fig, title="Massive activations replaced in every block where they appear",
                   x_title="intervention", y_title="perplexity (log scale)", log_y=True,
                   caption=f"{intervention_takeaway(table)} Protocol: {protocol}")


def plot_sliding_window(table: pd.DataFrame, protocol: str = "") -> go.Figure:
    """Perplexity vs window W: window only, window + first tokens, full attention (dashed)."""
    windows = table.dropna(subset=["window"]).sort_values("window")
    fig = go.Figure()
    for sinks, part in windows.groupby("sink_tokens"):
        name = "window only" if sinks == 0 else f"window + first {int(sinks)} tokens"
        color = OUTLIER_COLOR if sinks == 0 else METHOD_COLORS["wanda"]
        fig.add_trace(go.Scatter(x=part["window"], y=part["perplexity"], mode="lines+markers",
                                 name=name, line={"color": color, "width": 3},
                                 hovertemplate="W = %{x}: ppl %{y:,.4g}<extra>" + name +
                                               "</extra>"))
    full = float(table.loc[table["window"].isna(), "perplexity"].iloc[0])
    trace = _dense_trace(full, list(windows["window"]))
    trace.name = f"full attention ({full:.4g})"
    fig.add_trace(trace)
    ticks = sorted(float(w) for w in windows["window"].unique())  # the windows measured
    fig.update_xaxes(type="log", tickmode="array", tickvals=ticks,
                     ticktext=[plain_number(t) for t in ticks])
    return _finish(fig, title="Sliding-window attention with and without the first tokens",
                   x_title="W = most recent tokens each token sees (log scale)",
                   y_title="perplexity (log scale)", log_y=True,
                   caption=f"{window_takeaway(table)} Protocol: {protocol}")


def plot_sink_pruning(kinds: pd.DataFrame, sparsity: float = 0.5,
                      protocol: str = "") -> go.Figure:
    """Per module type: share of the weights reading massive channels kept by each method."""
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    kinds = kinds.sort_values("kind", key=lambda s: s.map(lambda k: order.get(k, len(order))))
    fig = go.Figure()
    for method in ("magnitude", "wanda"):
        fig.add_trace(go.Bar(x=kinds["kind"], y=kinds[f"share_{method}"], name=method,
                             marker_color=METHOD_COLORS[method],
                             text=[f"{v:.0%}" for v in kinds[f"share_{method}"]],
                             textposition="outside", customdata=kinds["weights"],
                             hovertemplate="%{x}: %{y:.1%} of %{customdata} weights kept"
                                           "<extra>" + method + "</extra>"))
    fig.add_trace(go.Scatter(x=list(kinds["kind"]), y=[1 - sparsity] * len(kinds), mode="lines",
                             name=f"kept overall ({1 - sparsity:.0%})",
                             line={"color": METHOD_COLORS["dense"], "dash": "dash"}))
    fig.update_yaxes(tickformat=".0%", range=[0, 1.1])
    if kinds.empty:
        fig.add_annotation(text="no layer reads a massive channel", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 16})
        fig.update_xaxes(visible=False)
    return _finish(fig, title="Pruning meets sinks: weights reading the massive channels kept",
                   x_title="module type", y_title="share of those weights kept",
                   caption=f"{pruning_takeaway(kinds, sparsity)} Protocol: {protocol}")
