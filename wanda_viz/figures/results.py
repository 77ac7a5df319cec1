"""Figures of pruning outcomes: perplexity vs sparsity, per-layer sparsity, generation probabilities.

Perplexity follows the reference protocol (Wanda lib/eval.py; docs/PROTOCOLS.md); N:M points
(2:4, 4:8; SparseGPT/Wanda papers) are drawn as markers at their sparsity N/M.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from ..analysis.generation import GenerationComparison
from ..result import PruneResult
from ._style import METHOD_COLORS, STRUCTURE_SYMBOLS, finish_figure, method_color, method_dash

__all__ = ["plot_sweep", "plot_layer_sparsity", "plot_generation_probs", "sweep_caption"]


def sweep_caption(table: pd.DataFrame) -> str:
    """Protocol caption of a sweep table (model, calibration, evaluation, version)."""
    if table.empty:
        return ""
    first = table.iloc[0]
    parts = [f"model {first.get('model', '?')}"]
    calib = table.loc[table["calibration"] != "-", "calibration"]  # "-": no calibration used
    if len(calib):
        parts.append(f"calibration: {calib.iloc[0]}")
    parts.append(f"perplexity: {first.get('eval_protocol', '?')}")
    parts.append(f"wanda-viz {first.get('version', '?')}")
    return "; ".join(parts)


def plot_sweep(table: pd.DataFrame, *, log_y: bool = True) -> go.Figure:
    """Perplexity vs sparsity: a line per method (unstructured), markers for N:M, dense line.

    Args:
        table: from ``run_sweep`` (method, structure, sparsity, perplexity, ...).
    Returns:
        Figure: one line trace per method with unstructured points, one marker trace per
        (method, N:M structure), and a dashed dense-baseline trace (last) when present.
    """
    fig = go.Figure()
    pruned = table[table["method"] != "dense"]
    for method, part in pruned.groupby("method", sort=False):
        color = method_color(method)
        lines = part[part["structure"] == "unstructured"].sort_values("sparsity")
        if len(lines):
            fig.add_trace(go.Scatter(
                x=lines["sparsity"], y=lines["perplexity"], name=method, mode="lines+markers",
                line={"color": color, "dash": method_dash(method)}, legendgroup=method,
                hovertemplate=method + " %{x:.0%}: ppl %{y:.4g}<extra></extra>"))
        for structure, points in part[part["structure"] != "unstructured"].groupby("structure"):
            fig.add_trace(go.Scatter(
                x=points["sparsity"], y=points["perplexity"], name=f"{method} {structure}",
                mode="markers", legendgroup=method,
                marker={"color": color, "size": 12,
                        "symbol": STRUCTURE_SYMBOLS.get(structure, "star"),
                        "line": {"color": "#000000", "width": 1}},
                hovertemplate=f"{method} {structure}: ppl %{{y:.4g}}<extra></extra>"))
    dense = table[table["method"] == "dense"]
    if len(dense):
        # A trace, not add_hline: hline annotations are misplaced on log axes (y read as log10).
        value = float(dense["perplexity"].iloc[0])
        # From the dense point (sparsity 0) to the sparsest point: visible even with one level.
        span = [0.0, float(pruned["sparsity"].max()) if len(pruned) else 1.0]
        fig.add_trace(go.Scatter(x=span, y=[value, value], name=f"dense ({value:.4g})",
                                 mode="lines+markers", marker={"size": [8, 0]},
                                 line={"color": METHOD_COLORS["dense"], "dash": "dash"},
                                 hovertemplate=f"dense: ppl {value:.4g}<extra></extra>"))
    fig.update_xaxes(tickformat=".0%")
    return finish_figure(fig, title="Perplexity vs sparsity", x_title="sparsity (share of "
                         "weights removed per layer)", y_title="perplexity (log scale)"
                         if log_y else "perplexity", log_y=log_y, caption=sweep_caption(table))


def plot_layer_sparsity(result: PruneResult | Mapping[str, float], *,
                        target: Mapping[str, float] | None = None,
                        method: str | None = None) -> go.Figure:
    """Achieved sparsity per prunable layer (horizontal bars) with the target; OWL varies it.

    Args:
        result: a ``PruneResult`` or a mapping layer name -> achieved sparsity.
        target: layer -> target sparsity (taken from the result when it is a PruneResult).
    Returns:
        Figure with a bar trace (achieved) and, when targets are known, a marker trace.
    """
    if isinstance(result, PruneResult):
        achieved, target = result.layer_sparsity, target or result.target_sparsity
        method, caption = result.config.method, f"{result.config.label()}, comparison group " \
            f"{result.config.comparison_group}; overall {result.overall_sparsity:.2%}"
    else:
        achieved, caption = dict(result), "achieved sparsity per layer"
    names = list(achieved)
    fig = go.Figure(go.Bar(y=names, x=[achieved[n] for n in names], name="achieved",
                           orientation="h", marker={"color": method_color(method or "")},
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    if target:
        fig.add_trace(go.Scatter(y=names, x=[target.get(n) for n in names], name="target",
                                 mode="markers", marker={"symbol": "line-ns-open", "size": 12,
                                                         "color": "#000000",
                                                         "line": {"width": 2}}))
    # Horizontal bars: full layer names stay readable; the first layer on top.
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    return finish_figure(fig, title="Achieved sparsity per layer", x_title="sparsity (share of "
                         "weights zero)", y_title="layer", caption=caption,
                         height=max(300, 80 + 16 * len(names)))


def plot_generation_probs(comparison: GenerationComparison) -> go.Figure:
    """Probability of each generated token per variant; tokens differing from dense are crosses.

    Returns:
        Figure with one line trace per variant (dense first); hover shows the token text.
    """
    fig = go.Figure()
    table = comparison.token_table()
    for index, (name, part) in enumerate(table.groupby("variant", sort=False)):
        symbols = ["circle" if same else "x" for same in part["same_as_dense"]]
        fig.add_trace(go.Scatter(
            x=part["index"], y=part["prob"], name=name, mode="lines+markers",
            line={"color": method_color(name, index)}, marker={"symbol": symbols, "size": 8},
            text=[repr(t) for t in part["token"]],
            hovertemplate=name + " #%{x}: %{text} p=%{y:.3f}<extra></extra>"))
    settings = comparison.settings
    decoding = "greedy" if not settings.get("do_sample") else \
        f"sampling T={settings.get('temperature')} top-p={settings.get('top_p')}"
    divergence = ", ".join(f"{k}: {'none' if v is None else v}"
                           for k, v in comparison.divergence().items() if k != "dense")
    fig.update_yaxes(range=[0, 1.02])
    n_tokens = int(table["index"].max()) + 1 if len(table) else 1
    fig.update_xaxes(tick0=0, dtick=max(1, -(-n_tokens // 20)))  # integer ticks, at most ~20
    return finish_figure(
        fig, title="Probability of each generated token", x_title="generated token (index)",
        y_title="probability of the chosen token",
        caption=f"prompt {comparison.prompt[:60]!r}; {decoding}, seed {settings.get('seed')}, "
                f"{settings.get('max_new_tokens')} new tokens; x = token differs from dense; "
                f"first divergence: {divergence or '-'}")
