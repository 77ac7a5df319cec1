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

import itertools
import logging
from collections.abc import Sequence

import torch

from .masks import check_nm, lowest_k_mask

__all__ = ["sparsegpt_prune", "sparsegpt_prune_group", "sparsegpt_saliency",
           "inverse_hessian_cholesky"]

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
    return sparsegpt_prune_group([weight], hessian, sparsity, nm=nm, block_size=block_size,
                                 percdamp=percdamp)[0]


@torch.no_grad()
def sparsegpt_prune_group(weights: Sequence[torch.Tensor], hessian: torch.Tensor, sparsity: float,
                          *, nm: tuple[int, int] | None = None, block_size: int = 128,
                          percdamp: float = 0.01) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """Prune layers that share one Hessian (they read the same input) in ONE OBS pass.

    The damped inverse, its Cholesky factor and the column loop are shared: the OBS update acts
    on each row alone, so the rows of all layers are stacked. The comparison group stays the
    layer (each layer's own unstructured threshold per column block) and every product with a
    sum over columns runs per layer, so each result is bit for bit ``sparsegpt_prune`` of that
    layer alone. Arguments as ``sparsegpt_prune``; ``weights`` are (rows_l, in_features).
    Returns:
        One (new weight, keep_mask, loss) per layer, in order.
    """
    rows = [w.shape[0] for w in weights]
    bounds = list(zip(itertools.accumulate([0] + rows[:-1]), itertools.accumulate(rows)))
    W = torch.cat([w.detach().float() for w in weights], dim=0)  # (sum rows_l, columns) copy
    H = hessian
    columns = W.shape[1]
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
    losses = torch.zeros(W.shape[0], device=W.device)
    # 3. Blocks of columns: adaptive mask, column-by-column OBS update, lazy batch update.
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        W1 = W[:, i1:i2].clone()
        Hinv1 = Hinv[i1:i2, i1:i2]
        d_block = torch.diag(Hinv1).reshape(1, -1)
        if nm is None:
            prune1 = _block_prune_mask(W1, d_block, sparsity, bounds)
        else:
            prune1 = torch.zeros_like(W1, dtype=torch.bool)
        Err1 = _obs_columns(W1, Hinv1, prune1, d_block, nm)
        # W1 now holds every column as it was when processed: the kernel's q and loss follow.
        Q1 = W1.masked_fill(prune1, 0)
        W[:, i1:i2] = Q1
        prune_mask[:, i1:i2] = prune1
        losses += torch.sum((W1 - Q1) ** 2 / d_block ** 2, 1) / 2
        # 4. Propagate the block's errors to all later columns, per layer: a product summed over
        # the block's columns must see exactly the operands of the one-layer run.
        for r1, r2 in bounds:
            W[r1:r2, i2:] -= Err1[r1:r2].matmul(Hinv[i1:i2, i2:])
    return [(W[r1:r2], ~prune_mask[r1:r2], losses[r1:r2].clone().sum().item())
            for r1, r2 in bounds]


def _block_prune_mask(W1: torch.Tensor, d_block: torch.Tensor, sparsity: float,
                      bounds: list[tuple[int, int]]) -> torch.Tensor:
    """One threshold per layer over all its rows of the block (section 3.4): W^2 / d^2 lowest."""
    saliency = W1.square() / d_block.square()  # (rows, count)
    prune1 = torch.empty_like(W1, dtype=torch.bool)
    for r1, r2 in bounds:
        layer = saliency[r1:r2]
        k = int(layer.numel() * sparsity)
        prune1[r1:r2] = lowest_k_mask(layer.flatten(), k, dim=0).view(layer.shape)
    return prune1


def _obs_columns(W1: torch.Tensor, Hinv1: torch.Tensor, prune1: torch.Tensor,
                 d_block: torch.Tensor, nm: tuple[int, int] | None) -> torch.Tensor:
    """The column loop of one block, in place on W1 (rows, count); returns Err1 (rows, count).

    Column i: err = (w - q) / d, with q = w where kept and 0 where pruned, i.e. w where pruned;
    then the later columns get ``W1[:, j] -= err * Hinv1[i, j]`` (rank-1, no sums: exact per
    element, so any number of stacked rows gives the one-layer values). Column i itself is not
    updated (the reference's update of it is never read), so W1 keeps each column as processed.
    N:M masks are chosen every m columns on the updated weights.
    NOTE: the loop runs on transposed copies (count, rows) so that a column is contiguous
    memory; every operation is elementwise, so the layout cannot change a value. ``addr_`` would
    fuse the update into one FMA (another rounding), hence ``outer`` then ``sub_``.
    """
    count = W1.shape[1]
    W1T, P1T = W1.t().contiguous(), prune1.t().contiguous()  # (count, rows)
    Err1T = torch.zeros_like(W1T)
    zeros = torch.zeros_like(W1T[0])  # a tensor, not the scalar 0.0: no wrapping per call
    update = torch.empty_like(W1T)  # reused for every rank-1 product: no allocation per column
    # Per-column views made once (unbind), tails by narrow: less Python per column.
    w_cols, p_cols, err_cols = W1T.unbind(0), P1T.unbind(0), Err1T.unbind(0)  # each (rows,)
    h_rows, h_diag = Hinv1.unbind(0), Hinv1.diagonal().unbind(0)
    where, outer = torch.where, torch.outer
    for i in range(count):
        if nm is not None and i % nm[1] == 0:
            n, m = nm
            saliency = W1T[i:i + m].t().square() / d_block[:, i:i + m].square()  # (rows, m)
            P1T.t().scatter_(1, i + torch.topk(saliency, n, dim=1, largest=False)[1], True)
        err = where(p_cols[i], w_cols[i], zeros, out=err_cols[i]).div_(h_diag[i])
        later = count - i - 1
        if later:
            W1T.narrow(0, i + 1, later).sub_(
                outer(h_rows[i].narrow(0, i + 1, later), err, out=update.narrow(0, i + 1, later)))
    W1.copy_(W1T.t())
    prune1.copy_(P1T.t())
    return Err1T.t().contiguous()
