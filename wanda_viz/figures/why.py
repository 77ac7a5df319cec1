"""Figures for "why Wanda works": disagreement vs input norm and the two interventions.

Pure functions: results of ``analysis.why*`` in, ``plotly.graph_objects.Figure`` out. Wanda and
magnitude keep their fixed method colours; the outlier and random arms of the interventions use
two spare colours of the same colour-blind-safe scheme, dense is the dashed grey line.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..analysis.takeaways import readable_number
from ..analysis.why import DisagreementReport
from ..analysis.why_activations import ActivationIntervention
from ..analysis.why_interventions import ChannelIntervention
from ._style import METHOD_COLORS, finish_figure, method_marker, plain_number, wrap_caption
from .compare import split_layer_name

__all__ = ["OUTLIER_COLOR", "RANDOM_COLOR", "plot_disagreement_vs_norm",
           "plot_disagreement_by_layer", "plot_channel_intervention",
           "plot_activation_intervention"]

OUTLIER_COLOR, RANDOM_COLOR, MEAN_COLOR = "#AA3377", "#66CCEE", "#CCBB44"  # Tol "bright"
_SCATTERGL_ABOVE = 5000  # points per trace from which WebGL is used


def _finish(fig: go.Figure, **kwargs) -> go.Figure:
    """``finish_figure`` plus room for captions longer than two lines (these carry protocols;
    measured in Chromium: without it a five-line caption overlaps the top tick label)."""
    fig = finish_figure(fig, **kwargs)
    extra_lines = wrap_caption(kwargs.get("caption") or "").count("<br>") + 1 - 1
    if extra_lines > 0:
        fig.update_layout(margin_t=fig.layout.margin.t + 12 * extra_lines)
    return fig


def _share_text(summary: dict, top_share: float) -> str:
    return (f"Top {top_share:.0%} of channels by ||X_j||: {summary['top_share']:.1%} of the "
            f"disagreements (even spread {summary['uniform_share']:.1%}), "
            f"{summary['top_share_wanda_only']:.1%} of the weights only Wanda keeps")


def _thin(channels: pd.DataFrame, max_points: int | None) -> tuple[pd.DataFrame, str]:
    """Every top channel and an even stride through the others, at most ~max_points rows."""
    if max_points is None or len(channels) <= max_points:
        return channels, ""
    top = channels[channels["top_channel"]]
    rest = channels[~channels["top_channel"]]
    stride = -(-len(rest) // max(1, max_points - len(top)))  # ceil division
    shown = pd.concat([top, rest.iloc[::stride]])
    return shown, (f"Shown: {len(shown):,} of {len(channels):,} channels (every top one, every "
                   f"{stride}th other). ")


def plot_disagreement_vs_norm(report: DisagreementReport, layer: str | None = None, *,
                              max_points: int | None = 20_000) -> go.Figure:
    """Per input channel: weights kept only by Wanda / only by magnitude against ``||X_j||``.

    Args:
        layer: one layer of the report (None = every channel of every layer analysed).
        max_points: draw at most about this many channels (every top channel, an even stride
            through the others; the caption says so); None = all. Shares use every channel.
    Returns:
        Figure with two scatter traces (Wanda-only, magnitude-only) on a log x axis.
    """
    channels = report.channels
    summary = report.overall
    if layer is not None:
        if layer not in set(channels["layer"]):
            raise ValueError(f"layer {layer!r} is not in the report")
        channels = channels[channels["layer"] == layer]
        summary = report.layers.set_index("layer").loc[layer].to_dict()
    channels, thinned = _thin(channels, max_points)
    trace = go.Scattergl if len(channels) > _SCATTERGL_ABOVE else go.Scatter
    fig = go.Figure()
    for column, method, label in (("wanda_only", "wanda", "kept by Wanda, pruned by magnitude"),
                                  ("magnitude_only", "magnitude",
                                   "kept by magnitude, pruned by Wanda")):
        fig.add_trace(trace(
            x=channels["input_norm"], y=channels[column], mode="markers", name=label,
            marker=method_marker(method, size=5, opacity=0.6),
            customdata=channels[["layer", "channel"]].values,
            hovertemplate="%{customdata[0]} channel %{customdata[1]}<br>||X_j|| %{x:,.4r}: "
                          "%{y} weights<extra>" + method + " only</extra>"))
    scope = layer or f"all {len(report.layers) - (len(report.layers) > 1)} layers"
    return _finish(
        fig, title=f"Where Wanda and magnitude disagree: {scope}",
        x_title="input channel norm ||X_j|| (log scale)",
        y_title="weights of the channel (count)", log_x=True,
        caption=f"{_share_text(summary, report.top_share)}. {thinned}".strip(),
        protocol=f"{thinned}{report.protocol()}")


_BARS_UP_TO = 40  # layers drawn as bars; more become a blocks x layer types map


def _share_map(report: DisagreementReport, layers: pd.DataFrame) -> go.Figure:
    """Blocks (x) x layer types (y), colour = share on the top channels / an even spread."""
    cells = {}
    for row in layers.itertuples():
        _, index, kind = split_layer_name(row.layer)
        cells[(index, kind)] = row.top_share / row.uniform_share if row.uniform_share else 0.0
    blocks = sorted({index for index, _ in cells})
    kinds = list(dict.fromkeys(kind for _, kind in cells))
    z = [[cells.get((b, k), float("nan")) for b in blocks] for k in kinds]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(b) for b in blocks], y=kinds, colorscale="Blues", zmin=0,
        text=[[f"{v:.0f}" if v == v else "" for v in row] for row in z],
        texttemplate="%{text}" if len(blocks) <= 32 else None, textfont={"size": 9},
        colorbar={"title": {"text": "x even"}},
        hovertemplate="block %{x}, %{y}: %{z:.1f}x an even spread<extra></extra>"))
    fig.update_xaxes(type="category")
    return _finish(fig, title=f"Disagreements on each layer's top {report.top_share:.0%} "
                              "channels, as a multiple of an even spread",
                   x_title="decoder block", y_title=None,
                   caption="1 = no more than their share; every cell above 1: the top channels "
                           "carry more of the disagreements.", protocol=report.protocol(),
                   height=120 + 28 * len(kinds))


def plot_disagreement_by_layer(report: DisagreementReport) -> go.Figure:
    """Per layer: share of disagreements on its top channels, against an even spread.

    Up to 40 layers: bars per layer with the even spread marked; more (a real LLM's hundreds):
    a compact blocks x layer types map of the share as a multiple of the even spread.
    """
    layers = report.layers[report.layers["layer"] != "all layers"]
    if len(layers) > _BARS_UP_TO:
        return _share_map(report, layers)
    fig = go.Figure([
        go.Bar(x=layers["layer"], y=layers["top_share"], name="on the top channels",
               marker_color=METHOD_COLORS["wanda"]),
        go.Scatter(x=layers["layer"], y=layers["uniform_share"], name="an even spread",
                   mode="markers", marker={"color": METHOD_COLORS["dense"], "symbol": "line-ew",
                                           "size": 14, "line": {"width": 2}})])
    fig.update_yaxes(tickformat=".0%")
    return _finish(fig, title=f"Share of the disagreements on each layer's top "
                         f"{report.top_share:.0%} channels", x_title="prunable layer",
                         y_title="share of disagreements",
                         caption="Bars above the marks: the top channels take more than their "
                                 "share.", protocol=report.protocol())


def _dense_trace(value: float, xs: list) -> go.Scatter:
    # A trace, not add_hline: hline annotations are misplaced on log axes.
    return go.Scatter(x=[min(xs), max(xs)], y=[value, value], mode="lines",
                      name=f"dense ({plain_number(round(value, 1))})",
                      line={"color": METHOD_COLORS["dense"], "dash": "dash"},
                      hovertemplate=f"dense: perplexity {value:,.2f}<extra></extra>")


def plot_channel_intervention(result: ChannelIntervention) -> go.Figure:
    """Perplexity vs k: outlier channels, random channels (mean, min-max band, seeds), dense."""
    table = result.table
    outlier = table[table["kind"] == "outlier"].sort_values("k")
    random = table[table["kind"] == "random"]
    fig = go.Figure()
    if len(random):
        stats = random.groupby("k")["perplexity"].agg(["mean", "min", "max"]).reset_index()
        fig.add_trace(go.Scatter(x=list(stats["k"]) + list(stats["k"])[::-1],
                                 y=list(stats["max"]) + list(stats["min"])[::-1], fill="toself",
                                 fillcolor="rgba(102, 204, 238, 0.25)", line={"width": 0},
                                 name="random: min-max over seeds", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=stats["k"], y=stats["mean"], mode="lines",
                                 name=f"random channels: mean of {random['seed'].nunique()} seeds",
                                 line={"color": RANDOM_COLOR, "width": 3},
                                 hovertemplate="random k=%{x}: mean ppl %{y:,.4r}<extra></extra>"))
        fig.add_trace(go.Scatter(x=random["k"], y=random["perplexity"], mode="markers",
                                 name="random: each seed", marker={"color": RANDOM_COLOR,
                                                                    "size": 7},
                                 customdata=random["seed"],
                                 hovertemplate="random k=%{x}, seed %{customdata}: ppl %{y:,.4r}"
                                               "<extra></extra>"))
    fig.add_trace(go.Scatter(x=outlier["k"], y=outlier["perplexity"], mode="lines+markers",
                             name="top-k outlier channels (by ||X_j||)",
                             line={"color": OUTLIER_COLOR, "width": 3}, marker={"size": 9},
                             hovertemplate="outlier k=%{x}: ppl %{y:,.4r}<extra></extra>"))
    dense = table[table["kind"] == "dense"]
    ks = list(table.loc[table["kind"] != "dense", "k"])
    if len(dense) and ks:
        fig.add_trace(_dense_trace(float(dense["perplexity"].iloc[0]), ks))
    fig = _finish(fig, title="Cutting the weights that read k input channels per layer",
                  x_title="k = input channels cut in every prunable layer (log scale)",
                  y_title="perplexity (log scale)", log_y=True,
                  caption="Purple: the k largest-norm channels; cyan: k random ones; dashed: "
                          "dense.", protocol=result.protocol())
    ticks = sorted(set(ks))
    fig.update_xaxes(type="log", tickmode="array", tickvals=ticks,
                     ticktext=[plain_number(k) for k in ticks])
    return fig


def plot_activation_intervention(result: ActivationIntervention) -> go.Figure:
    """Bars: perplexity of the dense model, with massive activations zeroed, set to their mean."""
    table: pd.DataFrame = result.table
    colors = {"dense": METHOD_COLORS["dense"], "zero": OUTLIER_COLOR, "mean": MEAN_COLOR}
    labels = {"dense": "dense", "zero": "massive activations = 0",
              "mean": "massive activations = their mean"}
    fig = go.Figure(go.Bar(
        x=[labels.get(i, i) for i in table["intervention"]], y=table["perplexity"],
        marker_color=[colors.get(i, RANDOM_COLOR) for i in table["intervention"]],
        text=[readable_number(v) for v in table["perplexity"]], textposition="outside",
        cliponaxis=False,
        customdata=table["replaced"],
        hovertemplate="%{x}: ppl %{y:,.4r} (%{customdata} activations replaced)<extra></extra>"))
    return _finish(fig, title="Massive activations: set to zero vs to their mean",
                         x_title="intervention", y_title="perplexity (log scale)", log_y=True,
                         caption="Lower is better.", protocol=result.protocol())
