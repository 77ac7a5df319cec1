"""Where a phenomenon is strongest: the layer, channel and token a figure should open on.

Pure functions of an ``ActivationReport`` (no model): the massive channels summarised one row per
channel (Sun et al., arXiv 2402.17762: a few fixed channels, mostly on the first token), the
prunable layer whose input-channel norms are most uneven (the largest max / median of
``||X_j||``, the statistic Wanda multiplies |W| by) and that layer's peak channel.
"""
from __future__ import annotations

import pandas as pd

from .outliers import ActivationReport, find_massive_activations

__all__ = ["massive_channel_summary", "strongest_layer", "input_norm_peak", "top_channels"]

_SUMMARY_COLUMNS = ["channel", "first_block", "last_block", "n_blocks", "max_abs",
                    "ratio_to_median", "block", "position", "token"]


def massive_channel_summary(report: ActivationReport, **thresholds) -> pd.DataFrame:
    """One row per massive channel, largest first.

    Args:
        thresholds: ``min_abs`` / ``min_ratio`` of ``find_massive_activations``.
    Returns:
        DataFrame: channel, first_block / last_block (indices), n_blocks, max_abs,
        ratio_to_median (at the largest entry), block (name of the block holding the largest
        entry), position and token of that entry. Empty when no activation is massive.
    """
    massive = find_massive_activations(report, **thresholds)
    rows = []
    for channel, part in massive.groupby("channel"):
        peak = part.loc[part["abs"].idxmax()]
        blocks = sorted(set(part["block_index"]))
        rows.append({"channel": int(channel), "first_block": blocks[0], "last_block": blocks[-1],
                     "n_blocks": len(blocks), "max_abs": float(peak["abs"]),
                     "ratio_to_median": float(peak["ratio_to_median"]),
                     "block": peak["layer"], "position": int(peak["position"]),
                     "token": peak["token"]})
    table = pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)
    return table.sort_values("max_abs", ascending=False, ignore_index=True)


def top_channels(report: ActivationReport, n: int = 2) -> list[int]:
    """The massive channels (largest first), else the ``n`` channels with the largest max |h|."""
    summary = massive_channel_summary(report)
    if len(summary):
        return summary["channel"].head(n).tolist()
    return report.channel_max.amax(dim=0).topk(min(n, report.hidden_size)).indices.tolist()


def _unevenness(norms) -> float:
    median = float(norms.median())
    return float(norms.max()) / median if median > 0 else float("inf")


def strongest_layer(report: ActivationReport) -> str | None:
    """The prunable layer with the largest max / median input-channel norm (None: no layers).

    That is where a few input channels dominate, so where Wanda's and magnitude's choices differ
    most: the layer the dashboard's pickers open on.
    """
    if not report.input_norms:
        return None
    return max(report.input_norms, key=lambda name: _unevenness(report.input_norms[name]))


def input_norm_peak(report: ActivationReport, layer: str) -> dict:
    """The largest input channel of ``layer``: channel, norm, median and their ratio."""
    if layer not in report.input_norms:
        raise ValueError(f"unknown layer {layer!r}")
    norms = report.input_norms[layer]
    channel = int(norms.argmax())
    median = float(norms.median())
    return {"layer": layer, "channel": channel, "norm": float(norms[channel]), "median": median,
            "ratio": float(norms[channel]) / median if median > 0 else float("inf")}
