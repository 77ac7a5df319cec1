"""SparseGPT kernel (arXiv 2301.00774): mask counts, OBS reconstruction, numerical fallbacks.

The reconstruction test uses a seeded linear layer with correlated inputs X = Z @ A (a random
mixing matrix A), where the OBS weight update must beat mask-only methods on ||W X - W' X||.
"""
from __future__ import annotations

import logging

import pytest
import torch

from wanda_viz.pruning import (magnitude_scores, nm_keep_mask, sparsegpt_prune, sparsegpt_saliency,
                               topk_keep_mask, wanda_scores)
from wanda_viz.stats import HessianStats, InputNormStats

ROWS, COLUMNS, TOKENS = 32, 64, 512


def _layer_and_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(ROWS, COLUMNS, generator=generator)
    mixing = torch.randn(COLUMNS, COLUMNS, generator=generator)
    scale = torch.logspace(-1, 1, COLUMNS)  # channels of very different size, as in LLMs
    inputs = (torch.randn(TOKENS, COLUMNS, generator=generator) @ mixing) * scale  # (T, in)
    return weight, inputs


def _hessian(inputs: torch.Tensor) -> torch.Tensor:
    stats = HessianStats(inputs.shape[1])
    stats.add_batch(inputs)
    return stats.hessian


def _error(weight: torch.Tensor, pruned: torch.Tensor, inputs: torch.Tensor) -> float:
    return torch.linalg.norm(inputs @ weight.t() - inputs @ pruned.t()).item()


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_reconstruction_beats_magnitude_and_wanda(nm):
    weight, inputs = _layer_and_inputs()
    norms = InputNormStats(COLUMNS)
    norms.add_batch(inputs)
    pruned, keep_mask, loss = sparsegpt_prune(weight, _hessian(inputs), 0.5, nm=nm)
    if nm is None:
        magnitude = topk_keep_mask(magnitude_scores(weight), 0.5, "layer")
        wanda = topk_keep_mask(wanda_scores(weight, norms.input_sq_norm), 0.5, "row")
    else:
        magnitude = nm_keep_mask(magnitude_scores(weight), *nm)
        wanda = nm_keep_mask(wanda_scores(weight, norms.input_sq_norm), *nm)
    sparsegpt_error = _error(weight, pruned, inputs)
    # measured ||WX - W'X||: unstructured 1246 (SparseGPT) / 1522 (Wanda) / 6531 (magnitude);
    # 2:4: 8974 / 9362 / 9520.
    assert sparsegpt_error < _error(weight, weight * wanda, inputs)
    assert sparsegpt_error < _error(weight, weight * magnitude, inputs)
    assert loss > 0
    assert torch.equal(pruned == 0, ~keep_mask)


def test_unstructured_count_is_exact_per_block():
    weight, inputs = _layer_and_inputs(1)
    weight = torch.cat([weight, weight.flip(1)], dim=1)  # 128 columns -> two blocks of 64
    inputs = torch.cat([inputs, inputs.roll(1, 0)], dim=1)
    _, keep_mask, _ = sparsegpt_prune(weight, _hessian(inputs), 0.3, block_size=64)
    for block in keep_mask.split(64, dim=1):
        assert (~block).sum() == int(ROWS * 64 * 0.3)


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8)])
def test_nm_every_group_exact(n, m):
    weight, inputs = _layer_and_inputs(2)
    pruned, keep_mask, _ = sparsegpt_prune(weight, _hessian(inputs), n / m, nm=(n, m),
                                           block_size=32)
    assert ((~keep_mask).reshape(ROWS, COLUMNS // m, m).sum(-1) == n).all()
    assert (pruned[~keep_mask] == 0).all()


def test_block_size_must_be_multiple_of_m():
    weight, inputs = _layer_and_inputs()
    with pytest.raises(ValueError, match="multiple of M"):
        sparsegpt_prune(weight, _hessian(inputs), 0.5, nm=(4, 8), block_size=12)


def test_sparsity_zero_changes_nothing():
    weight, inputs = _layer_and_inputs(3)
    pruned, keep_mask, loss = sparsegpt_prune(weight, _hessian(inputs), 0.0)
    torch.testing.assert_close(pruned, weight, atol=1e-5, rtol=0)
    assert keep_mask.all() and loss == 0


def test_input_weight_is_not_modified():
    weight, inputs = _layer_and_inputs()
    before = weight.clone()
    sparsegpt_prune(weight, _hessian(inputs), 0.5)
    assert torch.equal(weight, before)


def test_dead_inputs_zero_their_columns():
    weight, inputs = _layer_and_inputs(4)
    dead = [3, 17, 40]
    inputs[:, dead] = 0
    hessian = _hessian(inputs)
    assert (torch.diag(hessian)[dead] == 0).all()
    pruned, keep_mask, _ = sparsegpt_prune(weight, hessian, 0.25)
    assert (pruned[:, dead] == 0).all()
    assert (~keep_mask).sum() == int(ROWS * COLUMNS * 0.25)
    assert torch.isfinite(pruned).all()


def test_indefinite_hessian_retries_with_more_damping(caplog):
    weight, _ = _layer_and_inputs()
    hessian = torch.eye(COLUMNS)
    hessian[5, 5] = -0.05  # damping 0.01 * mean(diag) ~ 0.0098 is too small, 10x is enough
    with caplog.at_level(logging.WARNING, logger="wanda_viz.pruning.sparsegpt"):
        pruned, keep_mask, _ = sparsegpt_prune(weight, hessian, 0.5)
    assert "not positive definite" in caplog.text
    assert "identity" not in caplog.text
    assert (~keep_mask).sum() == ROWS * COLUMNS // 2
    assert torch.isfinite(pruned).all()


def test_hopeless_hessian_falls_back_to_identity(caplog):
    weight, _ = _layer_and_inputs()
    hessian = -torch.eye(COLUMNS)  # negative damping never helps
    with caplog.at_level(logging.WARNING, logger="wanda_viz.pruning.sparsegpt"):
        pruned, keep_mask, _ = sparsegpt_prune(weight, hessian, 0.5)
    assert "using the identity" in caplog.text
    assert (~keep_mask).sum() == ROWS * COLUMNS // 2
    # With the identity there is no weight update: kept weights are untouched (magnitude-like).
    torch.testing.assert_close(pruned[keep_mask], weight[keep_mask])


def test_saliency_shape_and_first_block_mask():
    weight, inputs = _layer_and_inputs(5)
    hessian = _hessian(inputs)
    saliency = sparsegpt_saliency(weight, hessian)
    assert saliency.shape == weight.shape and (saliency >= 0).all()
    # The kernel's first (here: only) block mask is chosen from exactly this saliency.
    _, keep_mask, _ = sparsegpt_prune(weight, hessian.clone(), 0.5)
    assert torch.equal(keep_mask, topk_keep_mask(saliency, 0.5, "layer"))
