"""Per-output (row) vs per-layer comparison groups: where the masks differ, and what it costs.

Wanda (arXiv 2306.11695, section 3 and the comparison-group ablation, Table 8) compares scores
within each output row: every row loses exactly ``int(in_features * sparsity)`` weights. One
threshold over the whole matrix (per layer) lets rows with large input-channel norms keep more
and starves others. This module measures the disagreement on one layer and runs the whole-model
ablation (perplexity of each comparison group for Wanda and magnitude at one sparsity) on the
point runner (``points``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from ..config import PruneConfig
from ..points import Dense, PointRunner, Prune
from ..pruning import topk_keep_mask
from ..pruning.registry import GROUPS, get_method

__all__ = [
    "CATEGORY_LABELS", "GroupComparison", "mask_categories", "compare_group_masks",
    "AblationSpec", "ablation_configs", "group_ablation",
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


@dataclass(frozen=True)
class AblationSpec:
    """The comparison-group ablation: every (method, group) at one sparsity, and the dense model.

    A method that does not allow a group (SparseGPT compares per column block) is skipped for it.
    """

    sparsity: float = 0.5
    methods: tuple[str, ...] = ("wanda", "magnitude")
    groups: tuple[str, ...] = GROUPS


def ablation_configs(spec: AblationSpec) -> list[PruneConfig]:
    """The pruned points of the ablation, method-major."""
    return [PruneConfig(method=m, sparsity=spec.sparsity, group=g)
            for m in spec.methods for g in spec.groups if g in get_method(m).groups]


def group_ablation(runner: PointRunner, spec: AblationSpec = AblationSpec(), *,
                   callback: Callable[[int, int, dict], None] | None = None) -> pd.DataFrame:
    """Perplexity of every (method, comparison group) at one sparsity: the Wanda ablation table.

    Each point is a ``Prune`` change on the runner (the model is dense again afterwards, also on
    error or cancellation; points are cached when the runner's setup has a fingerprint).
    Args:
        callback: called as ``callback(done, total, row)`` after each pruned point.
    Returns:
        DataFrame: method, group, sparsity, perplexity, achieved_sparsity, prune_s; the first row
        is the dense baseline (method "dense", group "-").
    """
    dense = runner.run(Dense())
    rows = [{"method": "dense", "group": "-", "sparsity": 0.0,
             "perplexity": dense["perplexity"], "achieved_sparsity": 0.0, "prune_s": 0.0}]
    configs = ablation_configs(spec)

    def labelled(done: int, total: int, row: dict) -> None:
        config = configs[done - 1]
        rows.append({"method": config.method, "group": config.group, "sparsity": spec.sparsity,
                     "perplexity": row["perplexity"], "achieved_sparsity": row["achieved_sparsity"],
                     "prune_s": row["prune_s"]})
        logger.info("group ablation %s per-%s: ppl %.3f", config.method, config.group,
                    row["perplexity"])
        if callback is not None:
            callback(done, total, rows[-1])

    runner.run_all([Prune(c) for c in configs], desc="group ablation", callback=labelled)
    return pd.DataFrame(rows)
