"""Score distributions: ranks, Spearman, thresholds per group, overlap, single-layer statistics."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_model

from wanda_viz.analysis import (analyze_layer_scores, collect_layer_stats, compute_layer_scores,
                                group_keep_mask, pruned_overlap, rank_values, score_thresholds,
                                spearman_correlation)
from wanda_viz.layers import weight_matrix
from wanda_viz.pruning import sparsegpt_saliency
from wanda_viz.pruning.registry import METHOD_NAMES
from wanda_viz.sequential import calibrate_blocks
from wanda_viz.stats import CalibrationStats

LAYER = "model.layers.0.mlp.down_proj"


def test_average_ranks_with_ties():
    assert rank_values(torch.tensor([3.0, 1.0, 2.0, 1.0])).tolist() == [4.0, 1.5, 3.0, 1.5]


def test_spearman_golden():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    b = torch.tensor([5.0, 6.0, 7.0, 8.0, 7.0])  # ranks 1, 2, 3.5, 5, 3.5
    assert spearman_correlation(a, b) == pytest.approx(8 / math.sqrt(10 * 9.5))
    assert spearman_correlation(a, a.exp()) == pytest.approx(1.0)
    assert spearman_correlation(a, -a) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        spearman_correlation(a, a[:3])


def test_thresholds_per_group_golden():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    row = score_thresholds(scores, group_keep_mask(scores, 0.5, "row"), "row")
    assert row["values"] == [2.0, 20.0] and row["median"] == 2.0  # torch.median: lower middle
    layer = score_thresholds(scores, group_keep_mask(scores, 0.5, "layer"), "layer")
    assert layer["values"] == [4.0]
    column = score_thresholds(scores, group_keep_mask(scores, 0.5, "input"), "input")
    assert column["values"] == [1.0, 2.0, 3.0, 4.0]


def test_block_group_prunes_exactly_per_128_columns():
    scores = torch.rand(8, 256, generator=torch.Generator().manual_seed(0))
    scores[:, 128:] *= 100  # the second block's scores are all larger
    keep = group_keep_mask(scores, 0.25, "block", block_size=128)
    assert (~keep[:, :128]).sum() == 256 and (~keep[:, 128:]).sum() == 256
    assert len(score_thresholds(scores, keep, "block", block_size=128)["values"]) == 2


def test_pruned_overlap_golden():
    keep_a = torch.tensor([[False, False, True, True]])
    keep_b = torch.tensor([[False, True, False, True]])
    assert pruned_overlap(keep_a, keep_b) == {"jaccard": 1 / 3, "share_of_a": 0.5}


def test_unit_input_norms_make_wanda_equal_magnitude():
    weight = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    stats = CalibrationStats(8, "cpu")
    stats.norms.input_sq_norm.fill_(1.0)
    scores = compute_layer_scores(weight, stats, ("magnitude", "wanda"))
    assert torch.equal(scores["magnitude"], scores["wanda"])


@pytest.mark.parametrize("family,layer", [("llama", LAYER), ("opt", "model.decoder.layers.0.fc2")])
def test_single_layer_stats_match_sequential_first_block(calib_ids, family, layer):
    model = make_tiny_model(family)
    stats = collect_layer_stats(model, calib_ids, layer, batch_size=2)
    step = next(iter(calibrate_blocks(model, calib_ids, statistics=("hessian",))))
    assert torch.allclose(stats.input_sq_norm, step.stats[layer].input_sq_norm, rtol=1e-5)
    assert torch.allclose(stats.hessian, step.stats[layer].hessian, rtol=1e-4, atol=1e-7)
    assert all(not m._forward_hooks for m in model.modules())


def test_analyze_layer_scores_on_tiny_llama(calib_ids):
    model = make_tiny_model("llama")
    report = analyze_layer_scores(model, calib_ids, LAYER, 0.5)
    assert report.shape == (32, 64)
    assert set(report.scores) == set(METHOD_NAMES)
    assert report.groups == {"magnitude": "layer", "wanda": "row", "sparsegpt": "block"}
    assert len(report.thresholds["wanda"]["values"]) == 32  # one per output row
    for keep in report.keep_masks.values():
        assert (~keep).sum() == 32 * 64 // 2
    assert len(report.agreement) == 3
    assert report.agreement["spearman"].between(-1, 1).all()
    stats = collect_layer_stats(model, calib_ids, LAYER)
    expected = sparsegpt_saliency(weight_matrix(dict(model.named_modules())[LAYER]),
                                  stats.hessian)
    assert torch.allclose(report.scores["sparsegpt"], expected)
    with pytest.raises(ValueError, match="not a prunable linear layer"):
        analyze_layer_scores(model, calib_ids, "model.nope", 0.5)


def test_agreement_on_a_subset_is_close_to_exact():
    from wanda_viz.analysis import score_agreement

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(64, 64, generator=generator)
    scores = {"a": a, "b": a + 0.3 * torch.rand(64, 64, generator=generator)}
    keep = {k: group_keep_mask(v, 0.5, "layer") for k, v in scores.items()}
    exact = score_agreement(scores, keep, max_elements=None)["spearman"].item()
    sampled = score_agreement(scores, keep, max_elements=1000)["spearman"].item()
    assert abs(exact - sampled) < 0.05  # measured 0.96 exact vs a 1000-weight subset
