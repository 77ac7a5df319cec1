"""The method registry: hand-computed scores, what each method needs, one entry adds a method."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from wanda_viz.config import PruneConfig
from wanda_viz.pruning import prune_layer
from wanda_viz.pruning import registry
from wanda_viz.pruning.registry import (METHOD_NAMES, STATS_NONE, MethodSpec, get_method,
                                        needs_calibration, needs_hessian)

WEIGHT = torch.tensor([[1.0, -2.0, 3.0, -4.0], [-0.5, 0.25, 8.0, 1.0]])


def _stats(input_sq_norm) -> SimpleNamespace:
    """What the score functions read of ``CalibrationStats``: the input norm, no Hessian."""
    return SimpleNamespace(input_sq_norm=torch.tensor(input_sq_norm), hessian=None)


def test_scores_match_hand_computed_values():
    assert torch.equal(get_method("magnitude").score(WEIGHT, None, 0.01), WEIGHT.abs())
    wanda = get_method("wanda").score(WEIGHT, _stats([4.0, 1.0, 0.25, 9.0]), 0.01)
    assert torch.equal(wanda, torch.tensor([[2.0, 2.0, 1.5, 12.0], [1.0, 0.25, 4.0, 3.0]]))


def test_what_each_method_needs():
    assert METHOD_NAMES == ("magnitude", "wanda", "sparsegpt")
    assert [get_method(m).needs_calibration for m in METHOD_NAMES] == [False, True, True]
    assert [get_method(m).default_group for m in METHOD_NAMES] == ["layer", "row", "block"]
    assert [get_method(m).updates_weights for m in METHOD_NAMES] == [False, False, True]
    assert not needs_calibration(["magnitude"]) and needs_calibration(["magnitude", "wanda"])
    assert needs_hessian(["sparsegpt"]) and not needs_hessian(["magnitude", "wanda"])
    with pytest.raises(ValueError, match="SparseGPT saliency needs the layer's Hessian"):
        get_method("sparsegpt").score(WEIGHT, _stats([1.0] * 4), 0.01)
    with pytest.raises(ValueError, match="method must be one of magnitude, wanda, sparsegpt"):
        get_method("obs")


def test_one_entry_adds_a_method(monkeypatch):
    # Prunes the LARGEST weights: unlike any real method, so the registry is what decides.
    largest_first = MethodSpec("largest-first", lambda w, stats, percdamp: -w.abs().float(),
                               STATS_NONE, "row")
    monkeypatch.setitem(registry.METHODS, "largest-first", largest_first)
    config = PruneConfig(method="largest-first", sparsity=0.5)
    assert config.comparison_group == "row" and not config.needs_calibration
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(WEIGHT)
    keep_mask, loss = prune_layer(layer, None, 0.5, config)
    assert loss is None
    assert keep_mask.tolist() == [[True, True, False, False], [True, True, False, False]]
    assert torch.equal(layer.weight, torch.tensor([[1.0, -2.0, 0.0, 0.0], [-0.5, 0.25, 0.0, 0.0]]))


def test_group_is_refused_where_the_method_fixes_it():
    with pytest.raises(ValueError, match="group does not apply"):
        PruneConfig(method="sparsegpt", group="row")
