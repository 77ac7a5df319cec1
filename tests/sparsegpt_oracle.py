"""The SparseGPT kernel as it was before the shared-Hessian speed-up (a test oracle only).

A verbatim copy of ``wanda_viz.pruning.sparsegpt.sparsegpt_prune`` at commit 80948fe: one layer,
``q = w.clone(); q[mask] = 0`` and a full-width rank-1 update per column, as in
IST-DASLab/sparsegpt ``fasterprune`` (apart from the exact-k mask). The tests check that the
current kernel, alone and for stacked layers sharing a Hessian, gives bit-identical results.
"""
from __future__ import annotations

import torch

from wanda_viz.pruning.masks import check_nm, lowest_k_mask
from wanda_viz.pruning.sparsegpt import inverse_hessian_cholesky

__all__ = ["sparsegpt_prune_before"]


@torch.no_grad()
def sparsegpt_prune_before(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, *,
                           nm: tuple[int, int] | None = None, block_size: int = 128,
                           percdamp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, float]:
    W = weight.detach().float().clone(memory_format=torch.contiguous_format)
    H = hessian
    rows, columns = W.shape
    if nm is not None:
        check_nm(columns, *nm)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Hinv = inverse_hessian_cholesky(H, percdamp)
    prune_mask = torch.zeros_like(W, dtype=torch.bool)
    losses = torch.zeros(rows, device=W.device)
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
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, ~prune_mask, losses.sum().item()
