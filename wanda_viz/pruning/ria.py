"""RIA: relative importance and activations (Zhang et al., ICLR 2024, "Plug-and-Play: An Efficient
Post-training Pruning Method for Large Language Models").

As in the official code (biomedical-cybernetics/Relative-importance-and-activation-pruning,
lib/prune.py ``prune_ria`` and, for ``ri``, ``prune_magnitude``, commit 7bc55b0):

    RI_ij  = |W_ij| / sum_k |W_kj|  +  |W_ij| / sum_k |W_ik|     (column sum, then row sum)
    RIA_ij = RI_ij * (sqrt(input_sq_norm_j)) ** a                 (a = 0.5; input_sq_norm: Wanda's)

Comparison groups: the official default is ONE threshold over the whole matrix,
``thresh = sort(scores.flatten())[int(numel * sparsity)]`` and every score ``<= thresh`` pruned
(``reference_threshold_keep_mask``: k + 1 weights when nothing ties, more with ties);
``--per_outneuron`` ("Wanda's tactic") is the per-row stable sort (``topk_keep_mask(.., "row")``);
N:M prunes the N lowest of each M consecutive inputs per row (``nm_keep_mask``, torch.topk as the
official loop). The official N:M channel reallocation and linear-sum assignment (``--reallocation``,
``--lsa``, off by default) are NOT implemented.
NOTE: scores are float32 (the project's rule). The official code computes RI in the model's
dtype (float16 in its ``main.py``); for float32 models the two are bit-identical.
"""
from __future__ import annotations

import torch

__all__ = ["relative_importance", "ria_scores", "reference_threshold_keep_mask"]


def relative_importance(weight: torch.Tensor) -> torch.Tensor:
    """|W_ij| / sum_k |W_kj| + |W_ij| / sum_k |W_ik| in float32; weight is (out, in).

    A column (or row) of zeros gives 0 / 0 = NaN there, as in the official code.
    """
    magnitude = weight.detach().float().abs()
    return (magnitude / torch.sum(magnitude, dim=0)
            + magnitude / torch.sum(magnitude, dim=1).reshape(-1, 1))


def ria_scores(weight: torch.Tensor, input_sq_norm: torch.Tensor, a: float = 0.5) -> torch.Tensor:
    """RI * (sqrt(input_sq_norm_j)) ** a, in float32 and in the official order of operations.

    Args:
        weight: (out_features, in_features).
        input_sq_norm: (in_features,) Wanda's running mean of ||X_j||^2 (the official scaler_row).
        a: exponent of the activation factor.
    """
    norms = input_sq_norm.to(weight.device, torch.float32).reshape((1, -1))
    return relative_importance(weight) * (torch.sqrt(norms)) ** a


def reference_threshold_keep_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The official per-layer rule: prune every score ``<=`` the sorted value at index k.

    k = int(numel * sparsity). That value is the (k+1)-th smallest, found with ``kthvalue``
    (the same value as the official full sort, faster); NaN scores sort last and are never
    ``<=``, so they are kept, as officially. At sparsity 0 nothing is pruned (the official
    ``main.py`` does not prune at 0).
    Returns:
        keep_mask (out, in) bool: True = keep.
    """
    if sparsity <= 0:
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    flat = scores.flatten()
    k = int(scores.shape[0] * scores.shape[1] * sparsity)
    if torch.isnan(flat).any():  # keep the sort's NaN-last order exactly
        thresh = torch.sort(flat)[0][k]
    else:
        thresh = torch.kthvalue(flat, k + 1).values
    return ~(scores <= thresh)
