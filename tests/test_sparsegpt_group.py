"""SparseGPT over layers that share one Hessian: bit for bit the one-layer-at-a-time results.

Layers fed the same input (LLaMA's q/k/v, gate/up) share H, its damped inverse and Cholesky
factor; ``sparsegpt_prune_group`` runs the column loop once over their stacked rows while each
layer keeps its own per-block threshold. Checked with ``torch.equal`` (weights, masks) and ``==``
(losses) against ``sparsegpt_prune`` per layer, and the fast kernel against the kernel as it was
before (tests/sparsegpt_oracle.py), for unstructured, 2:4, 4:8, partial blocks, dead inputs, the
damping-retry path and the identity fallback.
"""
from __future__ import annotations

import logging

import pytest
import torch

from sparsegpt_oracle import sparsegpt_prune_before
from wanda_viz.pruning import sparsegpt_prune
from wanda_viz.pruning.sparsegpt import sparsegpt_prune_group
from wanda_viz.stats import HessianStats

COLUMNS = 96  # with block_size 64: one full and one partial block
NM = {"unstructured": None, "2:4": (2, 4), "4:8": (4, 8)}


def _hessian(seed: int, columns: int = COLUMNS, dead: tuple[int, ...] = ()) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(columns, columns, generator=generator)
    inputs = torch.randn(4, 64, columns, generator=generator) @ mixing  # (batch, tokens, in)
    inputs[..., list(dead)] = 0
    stats = HessianStats(columns)
    stats.add_batch(inputs)
    return stats.hessian


def _weights(seed: int, rows: tuple[int, ...], columns: int = COLUMNS) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + 100)
    return [torch.randn(r, columns, generator=generator) for r in rows]


def _assert_same(a: tuple, b: tuple) -> None:
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


@pytest.mark.parametrize("structure", list(NM))
@pytest.mark.parametrize("seed", [0, 1])
def test_group_equals_layers_one_by_one(structure, seed):
    hessian = _hessian(seed, dead=(7,))
    weights = _weights(seed, (24, 8, 8))  # q, k, v with grouped-query k/v
    sparsity = 0.5 if NM[structure] is None else NM[structure][0] / NM[structure][1]
    group = sparsegpt_prune_group(weights, hessian.clone(), sparsity, nm=NM[structure],
                                  block_size=64)
    for weight, stacked in zip(weights, group):
        alone = sparsegpt_prune(weight, hessian.clone(), sparsity, nm=NM[structure], block_size=64)
        _assert_same(stacked, alone)


@pytest.mark.parametrize("structure", list(NM))
@pytest.mark.parametrize("rows,block_size", [(16, 64), (40, 128), (7, 32)])
def test_kernel_equals_the_kernel_before(structure, rows, block_size):
    hessian = _hessian(rows, dead=(3, 50))
    weight = _weights(rows, (rows,))[0]
    sparsity = 0.5 if NM[structure] is None else NM[structure][0] / NM[structure][1]
    ours = sparsegpt_prune(weight, hessian.clone(), sparsity, nm=NM[structure],
                           block_size=block_size)
    before = sparsegpt_prune_before(weight, hessian.clone(), sparsity, nm=NM[structure],
                                    block_size=block_size)
    _assert_same(ours, before)


@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_damping_retry_path_is_shared_and_identical(structure, caplog):
    hessian = _hessian(5)
    hessian[5, :] = hessian[:, 5] = 0
    hessian[5, 5] = -0.05 * torch.diag(hessian).mean()  # 1% damping too small, 10x enough
    weights = _weights(5, (12, 4))
    sparsity = 0.5
    with caplog.at_level(logging.WARNING, logger="wanda_viz.pruning.sparsegpt"):
        group = sparsegpt_prune_group(weights, hessian.clone(), sparsity, nm=NM[structure])
    assert caplog.text.count("not positive definite") == 1  # one factorisation for the group
    assert "identity" not in caplog.text
    for weight, stacked in zip(weights, group):
        _assert_same(stacked, sparsegpt_prune(weight, hessian.clone(), sparsity, nm=NM[structure]))
        _assert_same(stacked, sparsegpt_prune_before(weight, hessian.clone(), sparsity,
                                                     nm=NM[structure]))


def test_identity_fallback_is_shared_and_identical():
    hessian = -torch.eye(COLUMNS)
    weights = _weights(6, (10, 6))
    group = sparsegpt_prune_group(weights, hessian.clone(), 0.5)
    for weight, stacked in zip(weights, group):
        _assert_same(stacked, sparsegpt_prune_before(weight, hessian.clone(), 0.5))


def test_each_layer_keeps_its_own_threshold():
    """A layer of large weights next to one of small weights: each loses half of every block,
    which one threshold over the stacked rows would not give."""
    hessian = _hessian(7)
    small, large = _weights(7, (8, 8))
    group = sparsegpt_prune_group([small * 1e-3, large], hessian, 0.5, block_size=32)
    for _, keep_mask, _ in group:
        for block in keep_mask.split(32, dim=1):
            assert int((~block).sum()) == block.numel() // 2
