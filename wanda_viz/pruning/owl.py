"""OWL: outlier-weighted layerwise sparsity (arXiv 2310.05175, reference prune_wanda_outlier).

Per decoder block, the outlier ratio D is the share of Wanda scores of all its prunable layers
that exceed M times their mean (M = 5). Ratios are min-max scaled to a spread of 2 * lambda
(lambda = 0.08) and shifted so that their mean density is 1 - target: blocks with more outliers
keep more weights (lower sparsity), and the mean sparsity over blocks equals the target.
"""
from __future__ import annotations

import torch

__all__ = ["outlier_ratio", "owl_block_sparsities"]


def outlier_ratio(scores: list[torch.Tensor], m: float = 5.0) -> float:
    """Share of all entries of ``scores`` (one block's layers) above ``m`` x their mean."""
    flat = torch.cat([s.flatten().float().cpu() for s in scores])
    return (flat > m * flat.mean()).float().mean().item()


def owl_block_sparsities(ratios: list[float], target: float, lam: float = 0.08) -> list[float]:
    """Per-block sparsity from per-block outlier ratios (higher ratio -> lower sparsity).

    Returns:
        One sparsity per block; their mean equals ``target``; spread at most ``2 * lam``.
    """
    values = torch.tensor(ratios, dtype=torch.float64)
    spread = values.max() - values.min()
    if len(ratios) < 2 or spread == 0:
        return [float(target)] * len(ratios)
    density = (values - values.min()) / spread * (2 * lam)
    density = density - density.mean() + (1 - target)
    sparsities = (1 - density).clamp(0.0, 0.99)
    return [float(s) for s in sparsities]
