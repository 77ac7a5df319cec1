"""One statistic per distinct input: layers fed the same tensor share one stats object.

Detection is generic (the tensor each layer's hook receives, held alive and compared by address,
layout and in-place version counter), never by layer name. Shared statistics must equal the
per-layer ones bit for bit, and pruning results must not change.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import TINY_CONFIGS, make_tiny_model
from wanda_viz.calibration import record_inputs
from wanda_viz.config import PruneConfig
from wanda_viz.layers import weight_matrix
from wanda_viz.pruning import prune_model
from wanda_viz.sequential import calibrate_blocks
from wanda_viz.stats import CalibrationStats


def _groups(step) -> list[list[str]]:
    """Layer names (short) grouped by stats object, in layer order."""
    groups: dict[int, list[str]] = {}
    for name in step.layers:
        groups.setdefault(id(step.stats[name]), []).append(name.split(".")[-1])
    return list(groups.values())


def test_llama_shares_qkv_and_gate_up(calib_ids):
    step = next(calibrate_blocks(make_tiny_model("llama"), calib_ids, batch_size=3))
    assert _groups(step) == [["q_proj", "k_proj", "v_proj"], ["o_proj"],
                             ["gate_proj", "up_proj"], ["down_proj"]]


def test_opt_shares_qkv_in_any_module_order(calib_ids):
    step = next(calibrate_blocks(make_tiny_model("opt"), calib_ids, batch_size=3))
    assert _groups(step) == [["k_proj", "v_proj", "q_proj"], ["out_proj"], ["fc1"], ["fc2"]]


@pytest.mark.parametrize("family", list(TINY_CONFIGS))
def test_shared_statistics_equal_per_layer_statistics(family, calib_ids):
    hessian = ("hessian",)
    shared = calibrate_blocks(make_tiny_model(family), calib_ids, batch_size=3, statistics=hessian)
    alone = calibrate_blocks(make_tiny_model(family), calib_ids, batch_size=3, statistics=hessian,
                             share_inputs=False)
    for step_shared, step_alone in zip(shared, alone):
        assert len({id(s) for s in step_alone.stats.values()}) == len(step_alone.layers)
        for name, stats in step_alone.stats.items():
            assert torch.equal(step_shared.stats[name].input_sq_norm, stats.input_sq_norm), name
            assert torch.equal(step_shared.stats[name].hessian, stats.hessian), name
            assert step_shared.stats[name].norms.n_samples == stats.norms.n_samples == 4


@pytest.mark.parametrize("family", ["llama", "opt", "phi"])
@pytest.mark.parametrize("method,structure", [("sparsegpt", "unstructured"), ("sparsegpt", "2:4"),
                                              ("wanda", "unstructured")])
def test_pruning_is_bit_identical_with_and_without_sharing(family, method, structure, calib_ids,
                                                           monkeypatch):
    config = PruneConfig(method=method, structure=structure, batch_size=3)
    shared_model, alone_model = make_tiny_model(family), make_tiny_model(family)
    shared = prune_model(shared_model, calib_ids, config)
    from wanda_viz.pruning import pipeline
    original = pipeline.calibrate_blocks
    monkeypatch.setattr(pipeline, "calibrate_blocks",
                        lambda *a, **k: original(*a, **k, share_inputs=False))
    alone = prune_model(alone_model, calib_ids, config)
    for (name, a), (_, b) in zip(shared_model.state_dict().items(),
                                 alone_model.state_dict().items()):
        assert torch.equal(a, b), name
    for name, keep_mask in alone.keep_masks.items():
        assert torch.equal(shared.keep_masks[name], keep_mask), name
    assert shared.losses == alone.losses
    assert list(shared.keep_masks) == list(alone.keep_masks)  # same layer order


class _TwoReaders(nn.Module):
    """``a`` and ``b`` read x; ``mode`` decides whether b gets the same tensor."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x, mode="same"):
        self.a(x)
        if mode == "inplace":
            x.mul_(2)  # same object, changed data: must not count as the same input
        return self.b(x.clone() if mode == "copy" else x)


def _record(module, calls, share=True):
    added = []

    def make(name, layer):
        stats = CalibrationStats(weight_matrix(layer).shape[1], "cpu")
        original = stats.add_batch
        stats.add_batch = lambda inp: (added.append(name), original(inp))
        return stats

    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), record_inputs({"a": module.a, "b": module.b}, make,
                                        share_inputs=share) as stats:
        for mode in calls:
            module(x.clone(), mode)
    return stats, added


def test_same_tensor_shares_and_feeds_once():
    stats, added = _record(_TwoReaders(), ["same", "same", "same"])
    assert stats["a"] is stats["b"] and added == ["a", "a", "a"]
    assert stats["a"].norms.n_samples == 6


@pytest.mark.parametrize("mode", ["copy", "inplace"])
def test_equal_data_in_another_tensor_or_changed_in_place_is_not_shared(mode):
    stats, added = _record(_TwoReaders(), [mode, mode])
    assert stats["a"] is not stats["b"] and added == ["a", "b", "a", "b"]


@pytest.mark.parametrize("later", ["copy", "inplace"])
def test_sharing_that_breaks_in_a_later_batch_raises(later):
    with pytest.raises(RuntimeError, match="share_inputs=False"):
        _record(_TwoReaders(), ["same", later])


def test_share_inputs_off_keeps_one_stats_per_layer():
    stats, added = _record(_TwoReaders(), ["same", "same"], share=False)
    assert stats["a"] is not stats["b"] and added == ["a", "b", "a", "b"]


def test_layer_never_called_gets_empty_stats():
    module = _TwoReaders()
    with torch.no_grad(), record_inputs({"a": module.a, "b": module.b},
                                        lambda _n, layer: CalibrationStats(4, "cpu")) as stats:
        module.a(torch.ones(1, 2, 4))
    assert stats["a"].norms.n_samples == 1 and stats["b"].norms.n_samples == 0


def test_inference_mode_tensors_are_never_shared():
    """They keep no version counter, so an in-place change could not be seen: one stats each."""
    module = _TwoReaders()
    with torch.inference_mode(), record_inputs(
            {"a": module.a, "b": module.b},
            lambda _n, layer: CalibrationStats(4, "cpu")) as stats:
        for _ in range(2):
            module(torch.ones(1, 2, 4))
    assert stats["a"] is not stats["b"] and stats["b"].norms.n_samples == 2
