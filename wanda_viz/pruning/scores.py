"""Importance scores: magnitude ``|W|`` and Wanda ``|W| * sqrt(input_sq_norm)``.

Wanda (arXiv 2306.11695, eq. 1): S_ij = |W_ij| * ||X_j||_2, with ||X_j||^2 the squared norm of
input channel j over the calibration tokens (here a mean over sequences; a constant factor changes
no ranking). SparseGPT's saliency ``W^2 / diag(H^-1)^2`` lives in sparsegpt.py.
"""
from __future__ import annotations

import torch

__all__ = ["magnitude_scores", "wanda_scores"]


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """|W| in float32; weight is (out_features, in_features)."""
    return weight.abs().float()


def wanda_scores(weight: torch.Tensor, input_sq_norm: torch.Tensor) -> torch.Tensor:
    """|W_ij| * sqrt(input_sq_norm_j) in float32.

    Args:
        weight: (out_features, in_features).
        input_sq_norm: (in_features,) per-channel squared input norm.
    """
    norms = input_sq_norm.to(weight.device, torch.float32).sqrt().reshape(1, -1)
    return weight.abs().float() * norms
