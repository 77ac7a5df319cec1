"""Per-row vs per-layer masks: a hand-computed golden case and the whole-model group ablation."""
from __future__ import annotations

import torch
from conftest import make_tiny_model

from wanda_viz import WeightBackup
from wanda_viz.analysis import AblationSpec, CATEGORY_LABELS, compare_group_masks, group_ablation
from wanda_viz.pruning import wanda_scores


def test_one_huge_input_channel_golden():
    # Input channel 0 has norm 100: its small weights win under Wanda in every row.
    weight = torch.tensor([[0.1, 1.0, 2.0, 3.0],
                           [0.1, 4.0, 5.0, 6.0]])
    scores = wanda_scores(weight, torch.tensor([1e4, 1.0, 1.0, 1.0]))  # [[10,1,2,3],[10,4,5,6]]
    comparison = compare_group_masks(scores, 0.5)
    # per row: each row drops its 2 lowest; per layer: the 4 lowest of all 8 (1, 2, 3, 4)
    assert comparison.row_keep.tolist() == [[True, False, False, True], [True, False, False, True]]
    assert comparison.layer_keep.tolist() == [[True, False, False, False], [True, False, True, True]]
    assert comparison.disagreement == 0.25
    assert comparison.row_sparsity_layer_mask.tolist() == [0.75, 0.25]
    assert comparison.categories.tolist() == [[0, 1, 1, 2], [0, 1, 3, 0]]
    assert comparison.category_counts() == dict(zip(CATEGORY_LABELS, [3, 3, 1, 1]))


def test_row_and_layer_masks_agree_on_uniform_rows():
    scores = torch.arange(8.0).repeat(3, 1)  # every row identical: one threshold = per row
    comparison = compare_group_masks(scores, 0.5)
    assert comparison.disagreement == 0.0
    assert torch.equal(comparison.row_sparsity_layer_mask, torch.full((3,), 0.5))


def test_group_ablation_table_and_restore(calib_ids, make_runner):
    model = make_tiny_model("llama")
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    eval_ids = torch.randint(0, 99, (1, 80), generator=torch.Generator().manual_seed(1))
    calls = []
    runner = make_runner(model, calib_ids, eval_ids, max_windows=2, dense=WeightBackup(model))
    table = group_ablation(runner, AblationSpec(sparsity=0.5),
                           callback=lambda done, total, row: calls.append((done, total)))
    assert table["method"].tolist() == ["dense"] + ["wanda"] * 3 + ["magnitude"] * 3
    assert table["group"].tolist() == ["-"] + ["row", "layer", "input"] * 2
    assert (table.loc[1:, "achieved_sparsity"] == 0.5).all()
    assert (table["perplexity"] > 1).all()
    assert calls[-1] == (6, 6)
    assert all(torch.equal(dense[k], v) for k, v in model.state_dict().items())
