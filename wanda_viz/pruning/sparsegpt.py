"""SparseGPT: second-order pruning with an OBS weight update (arXiv 2301.00774, Algorithm 1).

Follows IST-DASLab/sparsegpt ``SparseGPT.fasterprune`` (as vendored by locuslab/wanda):
dead inputs, 1% damping, Cholesky of the inverse Hessian, 128-column blocks with one adaptive
mask per block chosen from ``W^2 / diag(Hinv)^2`` across all rows, and error propagation to the
remaining columns. Symbols as in the paper:
  W     (rows, columns) weight being pruned, float32 working copy
  H     (columns, columns) Hessian 2 X X^T / n of the layer inputs
  Hinv  upper Cholesky factor of H^-1
  Err1  scaled errors (w - q) / d of one block, propagated with Hinv rows
"""
from __future__ import annotations

import logging

import torch

from .masks import check_nm, lowest_k_mask

__all__ = ["sparsegpt_prune", "sparsegpt_saliency", "inverse_hessian_cholesky"]

logger = logging.getLogger(__name__)
MAX_DAMP_RETRIES = 6


def inverse_hessian_cholesky(H: torch.Tensor, percdamp: float = 0.01) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp I)^-1, with damp = percdamp * mean(diag H).

    Modifies ``H`` in place (adds the damping). If H is not positive definite the damping is
    multiplied by 10 and retried (logged); after MAX_DAMP_RETRIES the identity is used (logged).
    """
    columns = H.shape[0]
    diag = torch.arange(columns, device=H.device)
    damp = percdamp * torch.mean(torch.diag(H))
    added = torch.zeros((), device=H.device)
    for attempt in range(MAX_DAMP_RETRIES):
        H[diag, diag] += damp - added
        added = damp.clone()
        L, info = torch.linalg.cholesky_ex(H)
        if info.item() == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if info.item() == 0:
                return U
        logger.warning("SparseGPT: Hessian not positive definite with damping %.3g (attempt %d); "
                       "retrying with 10x damping", damp.item(), attempt + 1)
        damp = damp * 10
    logger.warning("SparseGPT: Cholesky failed after %d retries; using the identity (magnitude-like "
                   "pruning without weight update) for this layer", MAX_DAMP_RETRIES)
    return torch.eye(columns, device=H.device, dtype=H.dtype)


def sparsegpt_saliency(weight: torch.Tensor, hessian: torch.Tensor,
                       percdamp: float = 0.01) -> torch.Tensor:
    """``W^2 / diag(Hinv)^2`` for the dense weight (the score of the first block's mask choice).

    Shown in the score-distribution view; the kernel recomputes it per block on updated weights.
    """
    H = hessian.clone().float()
    W = weight.detach().float().clone(memory_format=torch.contiguous_format)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Hinv = inverse_hessian_cholesky(H, percdamp)
    return W.square() / torch.diag(Hinv).reshape(1, -1).square()


@torch.no_grad()
def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, *,
                    nm: tuple[int, int] | None = None, block_size: int = 128,
                    percdamp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Prune one layer with SparseGPT.

    Args:
        weight: (out_features, in_features), any float dtype; not modified.
        hessian: (in_features, in_features) float32; CONSUMED (modified in place, like the reference).
        sparsity: share pruned; for unstructured, exactly int(rows * block_cols * sparsity) per block.
        nm: (n, m) for N:M sparsity (then ``sparsity`` must be n/m), else None.
    Returns:
        (new weight (out, in) float32 with pruned entries zero, keep_mask bool, reconstruction loss
        sum_rows sum_cols (w - q)^2 / d^2 / 2).
    """
    W = weight.detach().float().clone(memory_format=torch.contiguous_format)
    H = hessian
    rows, columns = W.shape
    if nm is not None:
        check_nm(columns, *nm)
        if block_size % nm[1]:
            raise ValueError(f"block_size {block_size} must be a multiple of M = {nm[1]}")
    # 1. Dead inputs: never active, so their weights cannot matter; zero them (keep H invertible).
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    # 2. Damped inverse Hessian, as its upper Cholesky factor (paper section 3.3).
    Hinv = inverse_hessian_cholesky(H, percdamp)
    prune_mask = torch.zeros_like(W, dtype=torch.bool)  # True = pruned (kernel-local polarity)
    losses = torch.zeros(rows, device=W.device)
    # 3. Blocks of columns: adaptive mask, column-by-column OBS update, lazy batch update.
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d_block = torch.diag(Hinv1).reshape(1, -1)
        prune1 = torch.zeros_like(W1, dtype=torch.bool)
        if nm is None:
            # One threshold over all rows of the block: row sparsity varies (section 3.4).
            saliency = W1.square() / d_block.square()
            k = int(saliency.numel() * sparsity)
            prune1 = lowest_k_mask(saliency.flatten(), k, dim=0).view(prune1.shape)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if nm is not None and i % nm[1] == 0:
                n, m = nm
                saliency = W1[:, i:i + m].square() / d_block[:, i:i + m].square()
                prune1.scatter_(1, i + torch.topk(saliency, n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[prune1[:, i]] = 0
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        prune_mask[:, i1:i2] = prune1
        losses += torch.sum(Losses1, 1) / 2
        # 4. Propagate the block's errors to all later columns at once.
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, ~prune_mask, losses.sum().item()
