"""Per-output (row) vs per-layer comparison groups: where the masks differ, and what it costs.

Wanda (arXiv 2306.11695, section 3 and the comparison-group ablation, Table 8) compares scores
within each output row: every row loses exactly ``int(in_features * sparsity)`` weights. One
threshold over the whole matrix (per layer) lets rows with large input-channel norms keep more
and starves others. This module measures the disagreement on one layer and runs the whole-model
ablation (perplexity of each comparison group for Wanda and magnitude at one sparsity).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import PruneConfig
from ..evaluate import perplexity
from ..models import WeightBackup
from ..pruning import prune_model, topk_keep_mask
from ..pruning.registry import GROUPS

__all__ = [
    "CATEGORY_LABELS", "GroupComparison", "mask_categories", "compare_group_masks",
    "group_ablation",
]

logger = logging.getLogger(__name__)

# Codes of ``mask_categories`` (int8), in the order the figures use.
CATEGORY_LABELS = ("kept by both", "pruned by both", "kept per-row only", "kept per-layer only")


@dataclass
class GroupComparison:
    """Row vs layer masks of one score matrix at one sparsity (CPU tensors).

    Attributes:
        row_keep / layer_keep: (out, in) bool keep-masks (True = keep).
        disagreement: share of weights on which the two masks differ.
        row_sparsity_layer_mask: (out,) pruned share of each row under the per-layer mask.
        categories: (out, in) int8 codes into ``CATEGORY_LABELS``.
    """

    sparsity: float
    row_keep: torch.Tensor
    layer_keep: torch.Tensor
    disagreement: float
    row_sparsity_layer_mask: torch.Tensor
    categories: torch.Tensor

    def category_counts(self) -> dict[str, int]:
        return {label: int((self.categories == code).sum())
                for code, label in enumerate(CATEGORY_LABELS)}


def mask_categories(row_keep: torch.Tensor, layer_keep: torch.Tensor) -> torch.Tensor:
    """Categorical matrix: 0 kept by both, 1 pruned by both, 2 kept per-row only, 3 per-layer only."""
    row_keep, layer_keep = row_keep.cpu(), layer_keep.cpu()
    codes = torch.zeros(row_keep.shape, dtype=torch.int8)
    codes[~row_keep & ~layer_keep] = 1
    codes[row_keep & ~layer_keep] = 2
    codes[~row_keep & layer_keep] = 3
    return codes


def compare_group_masks(scores: torch.Tensor, sparsity: float) -> GroupComparison:
    """Compare per-row and per-layer keep-masks of the same scores.

    Args:
        scores: (out_features, in_features), e.g. ``wanda_scores(weight, input_sq_norm)``.
        sparsity: share pruned, in [0, 1).
    Returns:
        GroupComparison.
    """
    scores = scores.detach().float().cpu()
    row_keep = topk_keep_mask(scores, sparsity, "row")
    layer_keep = topk_keep_mask(scores, sparsity, "layer")
    return GroupComparison(
        sparsity=sparsity, row_keep=row_keep, layer_keep=layer_keep,
        disagreement=(row_keep != layer_keep).float().mean().item(),
        row_sparsity_layer_mask=1.0 - layer_keep.float().mean(dim=1),
        categories=mask_categories(row_keep, layer_keep))


def _evaluate(model: nn.Module, eval_ids: torch.Tensor, seq_len: int | None,
              max_windows: int | None) -> float:
    return perplexity(model, eval_ids, seq_len, max_windows=max_windows, show_progress=False)


@torch.no_grad()
def group_ablation(model: nn.Module, calib_ids: torch.Tensor, eval_ids: torch.Tensor,
                   sparsity: float = 0.5, *, methods: tuple[str, ...] = ("wanda", "magnitude"),
                   groups: tuple[str, ...] = GROUPS, seq_len: int | None = None,
                   max_windows: int | None = 8, batch_size: int = 8,
                   callback: Callable[[int, int, dict], None] | None = None,
                   dense: WeightBackup | None = None,
                   model_for_point: Callable[[], AbstractContextManager[nn.Module]] | None = None
                   ) -> pd.DataFrame:
    """Perplexity of every (method, comparison group) at one sparsity: the Wanda ablation table.

    The model is pruned in place for each point and restored from a ``WeightBackup`` afterwards,
    so it is dense again on return (also on error).

    Args:
        calib_ids: (n_samples, seq_len) calibration windows (for Wanda).
        eval_ids: (1, n_tokens) evaluation text; perplexity uses non-overlapping ``seq_len``
            windows, at most ``max_windows`` of them (None = all).
        callback: called as ``callback(done, total, row)`` after each point.
        dense: an existing ``WeightBackup`` of the dense weights (None = take one now).
        model_for_point: a context manager factory entered around each point (the dense baseline
            too), yielding the dense model (a service takes its shared model per point with it);
            None = ``model`` throughout.
    Returns:
        DataFrame: method, group, sparsity, perplexity, achieved_sparsity, prune_s; the first row
        is the dense baseline (method "dense", group "-").
    """
    hold = model_for_point or (lambda: nullcontext(model))
    with hold() as point_model:
        backup = dense or WeightBackup(point_model)
        rows = [{"method": "dense", "group": "-", "sparsity": 0.0,
                 "perplexity": _evaluate(point_model, eval_ids, seq_len, max_windows),
                 "achieved_sparsity": 0.0, "prune_s": 0.0}]
    points = [(m, g) for m in methods for g in groups]
    for done, (method, group) in enumerate(tqdm(points, desc="group ablation"), start=1):
        config = PruneConfig(method=method, sparsity=sparsity, group=group,
                             batch_size=batch_size, store_masks=False)
        with hold() as point_model:
            try:
                result = prune_model(point_model, calib_ids, config)
                ppl = _evaluate(point_model, eval_ids, seq_len, max_windows)
            finally:
                backup.restore(point_model)  # dense again before anyone else gets it
        rows.append({"method": method, "group": group, "sparsity": sparsity,
                     "perplexity": ppl, "achieved_sparsity": result.overall_sparsity,
                     "prune_s": result.timings.get("prune_s", 0.0)})
        logger.info("group ablation %s per-%s: ppl %.3f", method, group, ppl)
        if callback is not None:
            callback(done, len(points), rows[-1])
    return pd.DataFrame(rows)
