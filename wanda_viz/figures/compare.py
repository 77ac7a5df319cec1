"""Figures of the first result: perplexity of each run against dense, and where sparsity varies.

``plot_perplexity_bars`` is the one-click comparison (magnitude vs Wanda on the same windows,
Wanda paper Table 3's question on the loaded model). ``plot_sparsity_grid`` shows the achieved
sparsity as a compact blocks x layer-types map, the view OWL (arXiv 2310.05175) needs, where the
sparsity differs from block to block.
"""
from __future__ import annotations

import math
import re

import pandas as pd
import plotly.graph_objects as go

from ..analysis.takeaways import readable_number, times_text
from ..result import PruneResult
from ._style import add_dense_line, finish_figure, method_pattern

__all__ = ["plot_perplexity_bars", "plot_sparsity_grid", "split_layer_name"]

_LOG_FROM = 30.0  # largest / smallest bar: beyond this factor the y axis turns logarithmic
_BLOCK = re.compile(r"^(?P<block>.*?\.(?P<index>\d+))\.(?P<kind>.+)$")


def _bar_label(perplexity: float, dense: float | None) -> str:
    value = readable_number(perplexity)  # as the takeaway sentence writes it
    return f"{value} ({times_text(perplexity / dense)})" if dense else value


def plot_perplexity_bars(runs: pd.DataFrame, dense: float | None, *,
                         protocol: str = "") -> go.Figure:
    """One bar per run (method colour and pattern, value and "x dense" on top), dense dashed.

    Args:
        runs: columns ``run`` (label), ``method`` and ``perplexity``, in drawing order.
        dense: the dense model's perplexity on the same windows (None: no line).
    Returns:
        Figure with one bar trace per run and, with ``dense``, a dashed line across the plot
        (a shape) labelled "dense <perplexity>".
    """
    fig = go.Figure()
    for index, row in enumerate(runs.itertuples()):
        fig.add_trace(go.Bar(x=[row.run], y=[row.perplexity], name=row.run,
                             marker=method_pattern(row.method, index),
                             text=[_bar_label(row.perplexity, dense)], textposition="outside",
                             cliponaxis=False, textfont={"size": 14},
                             hovertemplate=f"{row.run}: perplexity %{{y:,.4r}}<extra></extra>"))
    values = [*runs["perplexity"], *([dense] if dense else [])]
    log_y = len(values) > 1 and max(values) / max(min(values), 1e-30) > _LOG_FROM
    top = max(values) if values else 1.0
    fig = finish_figure(
        fig, title="Perplexity after pruning (lower is better)", x_title=None,
        y_title="perplexity (log scale)" if log_y else "perplexity", log_y=log_y,
        caption="Same calibration windows and evaluation text for every run; dashed: dense; "
                "label: perplexity (times dense).", protocol=protocol, height=380)
    fig.update_yaxes(range=[math.log10(min(values) / 2), math.log10(top * 3)] if log_y
                     else [0, top * 1.2])
    fig.update_layout(showlegend=False, bargap=0.45)
    if dense:
        add_dense_line(fig, dense, f"dense {readable_number(dense)}", log_y=log_y)
    return fig


def split_layer_name(name: str) -> tuple[str, int, str]:
    """"model.layers.11.mlp.down_proj" -> ("model.layers.11", 11, "mlp.down_proj")."""
    match = _BLOCK.match(name)
    if match is None:
        return name, 0, name
    return match["block"], int(match["index"]), match["kind"]


def plot_sparsity_grid(result: PruneResult) -> go.Figure:
    """Achieved sparsity as a decoder blocks (x) x layer types (y) map, the value in each cell.

    Returns:
        Figure with one heatmap trace (z = achieved sparsity; NaN where a block lacks a type).
    """
    cells: dict[tuple[int, str], float] = {}
    for name, value in result.layer_sparsity.items():
        _, index, kind = split_layer_name(name)
        cells[(index, kind)] = value
    blocks = sorted({index for index, _ in cells})
    kinds = list(dict.fromkeys(kind for _, kind in cells))
    z = [[cells.get((b, k), float("nan")) for b in blocks] for k in kinds]
    text = [[f"{v:.0%}" if v == v else "" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(b) for b in blocks], y=kinds, text=text,
        texttemplate="%{text}" if len(blocks) <= 32 else None, textfont={"size": 9},
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": {"text": "sparsity"},
                                                     "tickformat": ".0%"},
        hovertemplate="block %{x}, %{y}: %{z:.2%}<extra></extra>"))
    fig.update_xaxes(type="category")
    config = result.config
    return finish_figure(
        fig, title=f"Achieved sparsity per block and layer type ({config.label()})",
        x_title="decoder block", y_title=None,
        caption=f"Overall {result.overall_sparsity:.2%}; comparison group "
                f"{config.comparison_group}.",
        height=120 + 28 * len(kinds))
