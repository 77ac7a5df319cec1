"""Why Wanda works (1/2): where Wanda and magnitude disagree, per input channel; the shared cache.

Wanda (arXiv 2306.11695) scores ``|W_ij| * ||X_j||`` and compares per output row; magnitude scores
``|W_ij|`` and compares per layer (each method's reference comparison group, docs PROTOCOLS.md).
The paper's argument: a few input channels j carry huge activations, so magnitude deletes small
weights that read them while Wanda keeps them. ``channel_disagreement`` counts, per input channel,
the weights Wanda keeps that magnitude prunes (``wanda_only``) and the reverse
(``magnitude_only``), next to the channel's input norm ``||X_j|| = sqrt(input_sq_norm_j)``.

Statistics: the DENSE model's, as in the score view (``analysis.scores``). One layer: a single hook
on that layer (``collect_layer_stats``). All layers: the one dense pass over all blocks of
``collect_activation_report`` (``calibrate_blocks`` without pruning, so block i sees the dense
outputs of block i-1; the sequential pruning protocol would let it see the pruned ones). Both give
the same norms for a layer (tested).

The interventions (``why_interventions``, ``why_activations``) evaluate each changed model on the
point runner (``points``), which caches every point on disk with the one key scheme.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..captions import calibration_caption
from ..layers import weight_matrix
from ..pruning import get_method, magnitude_scores, topk_keep_mask, wanda_scores
from .outliers import ActivationReport
from .scores import collect_layer_stats

__all__ = [
    "TOP_SHARE", "CHANNEL_COLUMNS", "LAYER_COLUMNS", "DisagreementReport", "top_channel_count",
    "channel_disagreement", "summarize_disagreement", "layer_disagreement", "model_disagreement",
]

logger = logging.getLogger(__name__)

TOP_SHARE = 0.01  # "top 1% of channels by input norm"
CHANNEL_COLUMNS = ["layer", "channel", "input_norm", "norm_rank", "top_channel", "wanda_only",
                   "magnitude_only", "disagreements"]
# in_features, n_top: of the "all layers" row, summed over the layers
LAYER_COLUMNS = ["layer", "in_features", "n_top", "uniform_share", "disagreements", "wanda_only",
                 "magnitude_only", "top_share", "top_share_wanda_only"]
ALL_LAYERS = "all layers"


def top_channel_count(in_features: int, top_share: float = TOP_SHARE) -> int:
    """How many channels form the top ``top_share`` of a layer: ceil(share x in), at least 1."""
    return max(1, math.ceil(top_share * in_features - 1e-9))


def channel_disagreement(weight: torch.Tensor, input_sq_norm: torch.Tensor, sparsity: float, *,
                         layer: str = "", top_share: float = TOP_SHARE) -> pd.DataFrame:
    """Per input channel: weights kept by Wanda only, by magnitude only, and the input norm.

    Args:
        weight: (out_features, in_features) dense weight.
        input_sq_norm: (in_features,) Wanda statistic ``mean over sequences of sum_t x_tj^2``.
        sparsity: share pruned by both methods, in [0, 1).
    Returns:
        DataFrame with ``CHANNEL_COLUMNS``, one row per input channel: norm_rank 1 = largest
        ``||X_j||`` (ties by index); top_channel marks the ``top_channel_count`` largest.
    """
    weight = weight.detach().float().cpu()
    input_sq_norm = input_sq_norm.detach().float().cpu()
    wanda_keep = topk_keep_mask(wanda_scores(weight, input_sq_norm), sparsity,
                                get_method("wanda").default_group)
    magnitude_keep = topk_keep_mask(magnitude_scores(weight), sparsity,
                                    get_method("magnitude").default_group)
    wanda_only = (wanda_keep & ~magnitude_keep).sum(dim=0)          # (in,)
    magnitude_only = (magnitude_keep & ~wanda_keep).sum(dim=0)      # (in,)
    norms = input_sq_norm.sqrt()
    order = torch.sort(norms, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, norms.numel() + 1)
    n_top = top_channel_count(norms.numel(), top_share)
    return pd.DataFrame({
        "layer": layer, "channel": range(norms.numel()), "input_norm": norms.tolist(),
        "norm_rank": rank.tolist(), "top_channel": (rank <= n_top).tolist(),
        "wanda_only": wanda_only.tolist(), "magnitude_only": magnitude_only.tolist(),
        "disagreements": (wanda_only + magnitude_only).tolist()}, columns=CHANNEL_COLUMNS)


def _share(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def _summary_row(layer: str, table: pd.DataFrame) -> dict:
    top = table[table["top_channel"]]
    n_channels = len(table)
    total, wanda_only = float(table["disagreements"].sum()), float(table["wanda_only"].sum())
    return {"layer": layer, "in_features": n_channels, "n_top": len(top),
            "uniform_share": _share(len(top), n_channels), "disagreements": int(total),
            "wanda_only": int(wanda_only), "magnitude_only": int(table["magnitude_only"].sum()),
            "top_share": _share(float(top["disagreements"].sum()), total),
            "top_share_wanda_only": _share(float(top["wanda_only"].sum()), wanda_only)}


def summarize_disagreement(channels: pd.DataFrame) -> pd.DataFrame:
    """Per layer and over all layers: disagreements and the share on each layer's top channels.

    ``top_share`` = disagreements on the top channels / all disagreements; ``uniform_share`` is
    what an even spread over channels would give (n_top / in_features; over all layers, all top
    channels / all channels).
    """
    rows = [_summary_row(name, part) for name, part in channels.groupby("layer", sort=False)]
    if len(rows) > 1:
        rows.append(_summary_row(ALL_LAYERS, channels))
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


@dataclass
class DisagreementReport:
    """Wanda vs magnitude keep-masks per input channel, for one layer or all (CPU, picklable).

    Attributes:
        channels: one row per (layer, input channel), ``CHANNEL_COLUMNS``.
        layers: per layer (and an "all layers" row when there are several), ``LAYER_COLUMNS``.
        statistics: how the input norms were collected (for the protocol).
    """

    channels: pd.DataFrame
    layers: pd.DataFrame
    sparsity: float
    top_share: float = TOP_SHARE
    statistics: str = ""
    calibration: dict | None = None
    model_name: str | None = None

    @property
    def overall(self) -> dict:
        """The summary row over every layer analysed (the only row for one layer)."""
        return self.layers.iloc[-1].to_dict()

    def protocol(self) -> str:
        return (f"Wanda |W|*||X_j|| per output row vs magnitude |W| per layer, both at "
                f"{self.sparsity:.0%} sparsity on the dense weights; ||X_j|| from {self.statistics}"
                f" on {calibration_caption(self.calibration)}; top {self.top_share:.0%} = the "
                f"ceil({self.top_share:g} x in_features) channels of each layer with the largest "
                "||X_j||")


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")


@torch.no_grad()
def layer_disagreement(model: nn.Module, calib_ids: torch.Tensor, layer_name: str,
                       sparsity: float = 0.5, *, top_share: float = TOP_SHARE,
                       batch_size: int = 8, calibration: dict | None = None,
                       model_name: str | None = None) -> DisagreementReport:
    """Disagreement for one prunable layer; its input norms from one hook on the dense model."""
    _check_sparsity(sparsity)
    stats = collect_layer_stats(model, calib_ids, layer_name, statistics=(),
                                batch_size=batch_size)
    weight = weight_matrix(dict(model.named_modules())[layer_name])
    channels = channel_disagreement(weight, stats.input_sq_norm, sparsity, layer=layer_name,
                                    top_share=top_share)
    return DisagreementReport(channels, summarize_disagreement(channels), sparsity, top_share,
                              "one hook on this layer of the dense model",
                              calibration or {"n_samples": calib_ids.shape[0],
                                              "seq_len": calib_ids.shape[1]}, model_name)


@torch.no_grad()
def model_disagreement(model: nn.Module, report: ActivationReport, sparsity: float = 0.5, *,
                       layers: list[str] | None = None,
                       top_share: float = TOP_SHARE) -> DisagreementReport:
    """Disagreement for every prunable layer (or ``layers``), from an activation report's norms.

    Args:
        report: ``collect_activation_report(model, calib_ids)`` of the same dense model; its
            ``input_norms`` are ``sqrt(input_sq_norm)`` per prunable layer.
    """
    _check_sparsity(sparsity)
    modules = dict(model.named_modules())
    names = layers or list(report.input_norms)
    tables = [channel_disagreement(weight_matrix(modules[name]),
                                   report.input_norms[name].square(), sparsity, layer=name,
                                   top_share=top_share) for name in names]
    channels = pd.concat(tables, ignore_index=True)
    return DisagreementReport(channels, summarize_disagreement(channels), sparsity, top_share,
                              "one dense pass over all blocks (no pruning)", report.calibration,
                              report.model_name)
