"""Takeaway sentences of the sinks figures, computed from the numbers (never typed by hand).

Each function takes an analysis result and returns one or two sentences that a teacher can read
out; the figures put them above their protocol, the CLI prints them, the docs quote them.
"""
from __future__ import annotations

import math

import pandas as pd

from ..analysis.sinks import SinkReport
from ..analysis.sinks_view import TokenChannelView

__all__ = ["attention_takeaway", "bias_takeaway", "view_takeaway", "intervention_takeaway",
           "window_takeaway", "pruning_takeaway"]


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


def attention_takeaway(report: SinkReport) -> str:
    first = report.first_token.mean(dim=1)          # (n_layers,) mean over heads
    carrying = report.carrying_blocks
    if not carrying:
        return (f"No massive activations reach an attention layer on these windows; heads put "
                f"on average {_pct(float(first.mean()))} of their attention on the first token.")
    start, channel = carrying[0], report.rule.channels[0]
    inside = float(first[carrying].mean())
    outside = [i for i in range(len(first)) if i not in set(carrying)]
    text = (f"From block {start}, the first whose input carries the massive activation of "
            f"channel {channel} (it appears in block {start - 1}'s output), heads put on average "
            f"{_pct(inside)} of their attention on the first token; in the other blocks "
            f"{_pct(float(first[outside].mean())) if outside else 'n/a'}.")
    other = report.other_massive[carrying]
    if report.other_queries and not bool(other.isnan().all()):
        text += (f" The other massive-activation tokens get {_pct(float(other.nanmean()))} "
                 "from the queries after them.")
    elif not report.n_other_tokens:
        text += " No token other than the first carries a massive activation in these windows."
    return text


def bias_takeaway(report: SinkReport, block: int | None = None) -> str:
    bias = report.bias
    if block is None:
        block = report.carrying_blocks[0] if report.carrying_blocks else len(bias) // 2
    row = bias.iloc[block]
    return (f"In block {block}, the first token's part of the attention output has a mean cosine "
            f"of {row['sink_cosine']:.2f} between query positions and windows (the other tokens' "
            f"part: {row['rest_cosine']:.2f}) and is {_pct(row['sink_share'])} of the output's "
            "norm: a nearly constant, input-independent bias." if row["sink_cosine"] > 0.9 else
            f"In block {block}, the first token's part of the attention output has a mean cosine "
            f"of {row['sink_cosine']:.2f} between query positions and windows (the other tokens' "
            f"part: {row['rest_cosine']:.2f}), {_pct(row['sink_share'])} of the output's norm.")


def view_takeaway(view: TokenChannelView) -> str:
    if not view.massive_channels:
        return f"No massive activation at {view.block} in this text."
    channel = view.massive_channels[0]
    column = view.magnitude[:, channel]
    position = int(column.argmax())
    peak = float(column[position])
    others = [view.tokens[p].strip() or repr(view.tokens[p]) for p in view.carrying_positions]
    return (f"At {view.block}, channel {channel} reaches {peak:,.0f} on token "
            f"'{view.tokens[position].strip()}' (position {position}), "
            f"{peak / max(view.median, 1e-30):,.0f}x the median |h|; massive channels "
            f"{view.massive_channels[:4]}, carried by {', '.join(others[:4])}.")


def _random_mean(table: pd.DataFrame, mode: str) -> float:
    part = table[(table["target"] == "random") & (table["mode"] == mode)]
    return float(part["perplexity"].mean()) if len(part) else math.nan


def intervention_takeaway(table: pd.DataFrame) -> str:
    value = table.set_index(["target", "mode"])["perplexity"]
    dense = float(value[("dense", "none")])
    zero, mean = float(value[("massive", "zero")]), float(value[("massive", "mean")])
    return (f"Setting the massive activations of every block to zero takes perplexity from "
            f"{dense:.2f} to {zero:,.2f}; setting them to their mean gives {mean:.2f}. The same "
            f"number of random activations: {_random_mean(table, 'zero'):.2f} (zero), "
            f"{_random_mean(table, 'mean'):.2f} (mean).")


def window_takeaway(table: pd.DataFrame) -> str:
    full = float(table.loc[table["window"].isna(), "perplexity"].iloc[0])
    windows = table.dropna(subset=["window"])
    smallest = windows["window"].min()
    part = windows[windows["window"] == smallest].set_index("sink_tokens")["perplexity"]
    sinks = int(max(part.index))
    kept = "the first token is" if sinks == 1 else f"the first {sinks} are"
    return (f"With each token seeing only the last {int(smallest)} tokens, perplexity is "
            f"{float(part[0]):,.2f} without the first tokens and {float(part[sinks]):,.2f} when "
            f"{kept} kept too (full attention: {full:.2f}).")


def pruning_takeaway(kinds: pd.DataFrame, sparsity: float = 0.5) -> str:
    if kinds.empty:
        return "No layer reads a massive channel."
    parts = [f"{row.kind} {row.share_wanda:.0%} vs {row.share_magnitude:.0%}"
             for row in kinds.itertuples()]
    return (f"Of the weights that read the massive channels, Wanda vs magnitude keep (both at "
            f"{sparsity:.0%}): " + "; ".join(parts) + ".")
