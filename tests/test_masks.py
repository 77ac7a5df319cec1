"""Keep-masks and scores: hand-computed golden cases (torchao style) and counting invariants.

Golden case from HOUSE_STYLE B8: weight [[1, 2, 3, 4]] with input norms [100, 10, 1, 0.1]
(squared: [1e4, 1e2, 1, 1e-2]) gives Wanda scores [100, 20, 3, 0.4], so Wanda at 50% keeps
[[1, 2, 0, 0]] while magnitude keeps [[0, 0, 3, 4]].
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from wanda_viz.config import PruneConfig
from wanda_viz.pruning import (achieved_sparsity, apply_keep_mask, magnitude_scores,
                               nm_keep_mask, prune_layer, topk_keep_mask, wanda_scores,
                               wanda_variant_keep_mask)
from wanda_viz.pruning.masks import check_nm, lowest_k_mask
from wanda_viz.stats import CalibrationStats

WEIGHT = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
INPUT_SQ_NORM = torch.tensor([1e4, 1e2, 1.0, 1e-2])  # norms [100, 10, 1, 0.1], squared


def _linear(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


# -- golden cases ---------------------------------------------------------------------------------

def test_wanda_scores_golden():
    expected = torch.tensor([[100.0, 20.0, 3.0, 0.4]])
    torch.testing.assert_close(wanda_scores(WEIGHT, INPUT_SQ_NORM), expected)


def test_wanda_keeps_first_two_magnitude_keeps_last_two():
    wanda_keep = topk_keep_mask(wanda_scores(WEIGHT, INPUT_SQ_NORM), 0.5, "row")
    magnitude_keep = topk_keep_mask(magnitude_scores(WEIGHT), 0.5, "layer")
    assert wanda_keep.tolist() == [[True, True, False, False]]
    assert magnitude_keep.tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("method,expected", [
    ("wanda", [[1.0, 2.0, 0.0, 0.0]]),
    ("magnitude", [[0.0, 0.0, 3.0, 4.0]]),
])
def test_prune_layer_golden(method, expected):
    layer = _linear(WEIGHT)
    stats = CalibrationStats(4, "cpu")
    stats.add_batch(torch.tensor([[100.0, 10.0, 1.0, 0.1]]))  # one token: squared norms as above
    torch.testing.assert_close(stats.input_sq_norm, INPUT_SQ_NORM)
    keep_mask, loss = prune_layer(layer, stats, 0.5, PruneConfig(method=method))
    assert layer.weight.tolist() == expected
    assert keep_mask.tolist() == [[w != 0 for w in expected[0]]]
    assert loss is None


def test_nm_golden():
    # 2:4: each group of four loses its two smallest |scores|.
    scores = torch.tensor([[1.0, 5.0, 2.0, 0.5, 3.0, 3.5, 0.1, 4.0],
                           [8.0, 7.0, 6.0, 5.0, 1.0, 2.0, 3.0, 4.0]])
    expected = [[False, True, True, False, False, True, False, True],
                [True, True, False, False, False, False, True, True]]
    assert nm_keep_mask(scores, 2, 4).tolist() == expected
    # 4:8 over the same rows: one group of eight loses its four smallest.
    expected_48 = [[False, True, False, False, True, True, False, True],
                   [True, True, True, True, False, False, False, False]]
    assert nm_keep_mask(scores, 4, 8).tolist() == expected_48


def test_row_vs_layer_golden():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0],
                           [10.0, 20.0, 30.0, 40.0]])
    # per row: each row loses its two smallest.
    assert topk_keep_mask(scores, 0.5, "row").tolist() == [[False, False, True, True],
                                                          [False, False, True, True]]
    # per layer: the four smallest of the whole matrix all sit in row 0.
    assert topk_keep_mask(scores, 0.5, "layer").tolist() == [[False, False, False, False],
                                                            [True, True, True, True]]


def test_per_input_golden():
    scores = torch.tensor([[1.0, 2.0, 30.0, 40.0],
                           [3.0, 4.0, 10.0, 20.0]])
    # per input column: each column loses its smaller entry.
    assert topk_keep_mask(scores, 0.5, "input").tolist() == [[False, False, True, True],
                                                            [True, True, False, False]]
    # per row the same matrix prunes the first two columns of both rows.
    assert topk_keep_mask(scores, 0.5, "row").tolist() == [[False, False, True, True],
                                                          [False, False, True, True]]


def test_wanda_variant_reaches_target_within_tolerance():
    generator = torch.Generator().manual_seed(0)
    columns = torch.rand(1, 128, generator=generator)  # channel scales, as from input norms
    scores = torch.randn(64, 128, generator=generator).abs() * columns
    keep_mask, alpha = wanda_variant_keep_mask(scores, 0.5)
    assert 0.0 <= alpha <= 0.8
    assert abs(achieved_sparsity(keep_mask) - 0.5) <= 0.001  # measured: 0.0004
    # Per row, pruned entries are the lowest ones: every kept score >= every pruned score.
    for row, keep in zip(scores, keep_mask):
        if (~keep).any() and keep.any():
            assert row[keep].min() >= row[~keep].max()


def test_wanda_variant_prunes_cumulative_mass_below_alpha():
    # Row sum 10; alpha 0.4 allows a cumulative sum <= 4: 1 + 3 = 4 -> prune the two smallest.
    scores = torch.tensor([[3.0, 1.0, 6.0]])
    keep_mask, alpha = wanda_variant_keep_mask(scores, 2 / 3, tolerance=0.5)
    assert alpha == pytest.approx(0.4)
    assert keep_mask.tolist() == [[False, False, True]]


# -- invariants ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.3, 0.5, 0.7, 0.99])
@pytest.mark.parametrize("group", ["row", "layer", "input"])
def test_topk_exact_count(sparsity, group):
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(12, 40, generator=generator)
    keep_mask = topk_keep_mask(scores, sparsity, group)
    pruned = ~keep_mask
    if group == "row":
        assert (pruned.sum(dim=1) == int(40 * sparsity)).all()
    elif group == "input":
        assert (pruned.sum(dim=0) == int(12 * sparsity)).all()
    else:
        assert pruned.sum() == int(12 * 40 * sparsity)


@pytest.mark.parametrize("group", ["row", "layer", "input"])
def test_ties_do_not_change_the_count(group):
    scores = torch.ones(8, 16)
    pruned = ~topk_keep_mask(scores, 0.5, group)
    assert pruned.sum() == 64
    if group == "row":
        assert (pruned.sum(dim=1) == 8).all()
    if group == "input":
        assert (pruned.sum(dim=0) == 4).all()


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_every_group_exact_also_with_ties(n, m):
    for scores in (torch.rand(6, 32, generator=torch.Generator().manual_seed(2)),
                   torch.ones(6, 32)):
        pruned = ~nm_keep_mask(scores, n, m)
        assert (pruned.reshape(6, 32 // m, m).sum(dim=-1) == n).all()


def test_nm_needs_divisible_columns():
    with pytest.raises(ValueError, match="divisible by 4"):
        nm_keep_mask(torch.rand(2, 6), 2, 4)
    with pytest.raises(ValueError, match="divisible"):
        check_nm(10, 4, 8)


def test_unknown_group_raises():
    with pytest.raises(ValueError, match="group"):
        topk_keep_mask(torch.rand(2, 4), 0.5, "block")


def test_wanda_equals_magnitude_with_unit_norms():
    weight = torch.randn(16, 32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(wanda_scores(weight, torch.ones(32)), magnitude_scores(weight))


def test_scores_are_float32_for_half_weights():
    weight = torch.randn(4, 8).half()
    assert magnitude_scores(weight).dtype == torch.float32
    assert wanda_scores(weight, torch.ones(8)).dtype == torch.float32


def test_apply_keep_mask_on_conv1d_uses_out_in_layout():
    from transformers.pytorch_utils import Conv1D
    layer = Conv1D(nf=3, nx=4)  # weight stored (in=4, out=3)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1.0, 13.0).reshape(4, 3))
    keep_mask = torch.ones(3, 4, dtype=torch.bool)  # (out, in)
    keep_mask[0, 1] = False
    apply_keep_mask(layer, keep_mask)
    assert layer.weight[1, 0] == 0  # (in=1, out=0)
    assert (layer.weight != 0).sum() == 11


def test_achieved_sparsity():
    keep_mask = torch.tensor([[True, False, False, False]])
    assert achieved_sparsity(keep_mask) == pytest.approx(0.75)


def _sorted_first_k(scores: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """The definition: the first k indices of a stable sort along dim (reference semantics)."""
    mask = torch.zeros(scores.shape, dtype=torch.bool)
    return mask.scatter_(dim, torch.sort(scores, dim=dim, stable=True)[1].narrow(dim, 0, k), True)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dim", [0, 1])
def test_lowest_k_mask_equals_stable_sort_with_ties(seed, dim):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (9, 14), generator=generator).float()  # many ties
    if seed % 2:
        scores[torch.rand(scores.shape, generator=generator) < 0.1] = float("nan")
    for k in range(scores.shape[dim] + 1):
        expected = _sorted_first_k(scores, k, dim)
        assert torch.equal(lowest_k_mask(scores, k, dim), expected), (k, dim)


def test_lowest_k_mask_flat_and_layer_group_agree_with_sort():
    scores = torch.randint(0, 3, (6, 10), generator=torch.Generator().manual_seed(9)).float()
    for sparsity in (0.1, 0.5, 0.77):
        k = int(scores.numel() * sparsity)
        expected = _sorted_first_k(scores.flatten(), k, 0).view(6, 10)
        assert torch.equal(topk_keep_mask(scores, sparsity, "layer"), ~expected)


@pytest.mark.parametrize("values", ["random", "quantized", "zeros_and_tiny", "one_value"])
def test_radix_kth_equals_kthvalue(values):
    from wanda_viz.pruning.masks import _radix_kth
    generator = torch.Generator().manual_seed(11)
    flat = torch.randn(5000, generator=generator).abs()
    if values == "quantized":  # many ties, as in weights dequantized from 4 bits
        flat = (flat * 8).round() / 8
    elif values == "zeros_and_tiny":  # zeros, subnormals and normals together
        flat[::3] = 0
        flat[1::3] = torch.finfo(torch.float32).tiny / 7
    elif values == "one_value":
        flat = torch.full((5000,), 0.25)
    for k in (1, 2, 1234, 2500, 4999, 5000):
        assert torch.equal(_radix_kth(flat, k), torch.kthvalue(flat, k, keepdim=True).values)


@pytest.mark.parametrize("bad", ["negative", "negative_zero", "nan", "inf", "half"])
def test_radix_kth_declines_what_it_cannot_order(bad):
    from wanda_viz.pruning.masks import _radix_kth
    flat = torch.rand(100)
    if bad == "half":
        flat = flat.half()
    else:
        flat[7] = {"negative": -1.0, "negative_zero": -0.0, "nan": float("nan"),
                   "inf": float("inf")}[bad]
    assert _radix_kth(flat, 10) is None
    if bad != "half":  # lowest_k_mask still selects exactly k (kthvalue or sort fallback)
        assert int(lowest_k_mask(flat, 10, dim=0).sum()) == 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_apply_keep_mask_equals_masked_fill_bit_for_bit(dtype, transposed):
    generator = torch.Generator().manual_seed(3)
    layer = nn.Linear(12, 6).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(6, 12, generator=generator))
        layer.weight[0, :4] = -0.0  # signed zeros survive when kept, become +0.0 when pruned
        if transposed:  # a non-contiguous weight, as Conv1D's transposed (out, in) view
            layer.weight = nn.Parameter(layer.weight.detach().t().contiguous().t())
    keep_mask = torch.rand(6, 12, generator=generator) < 0.5
    keep_mask[0, :2] = False
    expected = layer.weight.detach().clone().masked_fill_(~keep_mask, 0)
    apply_keep_mask(layer, keep_mask)
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}.get(dtype, torch.int16)
    assert torch.equal(layer.weight.detach().view(bits), expected.view(bits))
    assert layer.weight.requires_grad
