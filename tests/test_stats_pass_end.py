"""The statistics pass of pruning ends at the input of a block's last prunable layer.

Pruning recomputes every block's outputs after changing its weights, so the first pass through a
block only has to deliver the inputs of its prunable layers: it may stop right after the last
one (LLaMA: down_proj) has been seen. The statistics, and so every pruning result, must stay bit
for bit the same, and a pass that would skip a layer must fail loudly instead of leaving it
without statistics.
"""
from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from conftest import TINY_CONFIGS, make_tiny_model
from wanda_viz.config import PruneConfig
from wanda_viz.layers import find_decoder_layers, find_prunable_layers
from wanda_viz.pruning import prune_model
from wanda_viz.pruning import pipeline
from wanda_viz.sequential import calibrate_blocks
from wanda_viz.block_pass import StatsPassEnd as _StatsPassEnd

N_BATCHES = 2  # calib_ids has 4 windows, batch_size 3


def _steps_stats(model, calib_ids, dense_outputs: bool) -> list[dict]:
    """Per block {layer: (input_sq_norm, hessian)}; every step's outputs recomputed."""
    found = []
    for step in calibrate_blocks(model, calib_ids, batch_size=3, statistics=("hessian",),
                                 dense_outputs=dense_outputs):
        found.append({name: (s.input_sq_norm.clone(), s.hessian.clone())
                      for name, s in step.stats.items()})
        step.recompute_outputs()
    return found


def _count_completed_forwards(model) -> tuple[Counter, list]:
    calls: Counter = Counter()
    prefix, blocks = find_decoder_layers(model)
    handles = [layer.register_forward_hook(lambda *_a, n=name: calls.update([n]))
               for name, layer in find_prunable_layers(blocks, prefix).items()]
    return calls, handles


@pytest.mark.parametrize("family", list(TINY_CONFIGS))
def test_shortened_pass_gives_the_same_statistics(family, calib_ids):
    dense = _steps_stats(make_tiny_model(family, num_hidden_layers=3), calib_ids, True)
    model = make_tiny_model(family, num_hidden_layers=3)
    calls, handles = _count_completed_forwards(model)
    short = _steps_stats(model, calib_ids, False)
    for handle in handles:
        handle.remove()
    for block_dense, block_short in zip(dense, short, strict=True):
        assert block_dense.keys() == block_short.keys()
        for name, (norm, hessian) in block_dense.items():
            assert torch.equal(block_short[name][0], norm), name
            assert torch.equal(block_short[name][1], hessian), name
    # Block 0 runs whole twice (statistics, recompute); blocks 1-2 skip their last layer's
    # forward in the statistics pass, and only that one.
    prefix, blocks = find_decoder_layers(model)
    for index in range(3):
        layers = find_prunable_layers(blocks[index], f"{prefix}.{index}")
        skipped = [name for name in layers if calls[name] == N_BATCHES]
        assert all(calls[name] in (N_BATCHES, 2 * N_BATCHES) for name in layers)
        assert len(skipped) == (0 if index == 0 else 1), (index, skipped)


@pytest.mark.parametrize("family", list(TINY_CONFIGS))
@pytest.mark.parametrize("method,structure", [("sparsegpt", "unstructured"), ("sparsegpt", "2:4"),
                                              ("wanda", "unstructured")])
def test_pruning_is_bit_identical_to_whole_passes(family, method, structure, calib_ids,
                                                  monkeypatch):
    config = PruneConfig(method=method, structure=structure, batch_size=3)
    _assert_same_as_whole_passes(make_tiny_model(family, num_hidden_layers=3),
                                 make_tiny_model(family, num_hidden_layers=3), calib_ids, config,
                                 monkeypatch)


def _assert_same_as_whole_passes(short_model, whole_model, calib_ids, config, monkeypatch):
    """prune_model as it is (shortened passes) and with whole passes: bit for bit the same."""
    short = prune_model(short_model, calib_ids, config)
    original = pipeline.calibrate_blocks
    monkeypatch.setattr(pipeline, "calibrate_blocks",
                        lambda *a, **k: original(*a, **{**k, "dense_outputs": True}))
    whole = prune_model(whole_model, calib_ids, config)
    for (name, a), (_, b) in zip(short_model.state_dict().items(),
                                 whole_model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    for name, keep_mask in whole.keep_masks.items():
        assert torch.equal(short.keep_masks[name], keep_mask), name
        assert torch.equal(short.input_sq_norm[name], whole.input_sq_norm[name]), name
    assert short.losses == whole.losses


def _layers(name: str) -> tuple[nn.Module, dict[str, nn.Module]]:
    block = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    return block, {f"{name}.0": block[0], f"{name}.1": block[1]}


def test_pass_end_is_learned_from_a_whole_pass_and_checked(caplog):
    end = _StatsPassEnd(n_batches=2)
    block0, layers0 = _layers("blocks.0")
    assert end.layer(block0, "blocks.0", layers0) is None  # nothing learned: run whole
    assert end.check(block0, "blocks.0", layers0, ["blocks.0.0", "blocks.0.1"] * 2, stopped=False)
    block1, layers1 = _layers("blocks.1")
    assert end.layer(block1, "blocks.1", layers1) is layers1["blocks.1.1"]
    assert end.check(block1, "blocks.1", layers1, ["blocks.1.0", "blocks.1.1"] * 2, stopped=True)
    # A shortened pass that missed a layer: its statistics are incomplete, shortening stops.
    assert not end.check(block1, "blocks.1", layers1,
                         ["blocks.1.1", "blocks.1.0", "blocks.1.1"], stopped=True)
    assert "blocks.1.0 did not run once per batch" in caplog.text
    assert end.layer(block1, "blocks.1", layers1) is None
    end.check(block0, "blocks.0", layers0, ["blocks.0.0", "blocks.0.1"] * 2, stopped=False)
    assert end.learned is None  # never learned again


def test_pass_end_is_not_used_for_other_blocks_or_repeated_layers():
    end = _StatsPassEnd(n_batches=1)
    block0, layers0 = _layers("blocks.0")
    end.check(block0, "blocks.0", layers0, ["blocks.0.0", "blocks.0.1", "blocks.0.1"],
              stopped=False)  # a layer called twice per batch: its order cannot be relied on
    assert end.learned is None
    end.check(block0, "blocks.0", layers0, ["blocks.0.0", "blocks.0.1"], stopped=False)
    other = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])  # another block class
    assert end.layer(other, "blocks.1", {"blocks.1.0": other[0], "blocks.1.1": other[1]}) is None
    renamed, _ = _layers("blocks.1")
    assert end.layer(renamed, "blocks.1", {"blocks.1.0": renamed[0]}) is None  # other layers


def _call_gate_last_in_block(model, index: int) -> None:
    """Block ``index``'s MLP calls gate_proj after down_proj (a call order block 0 did not show):
    a pass ended at down_proj would leave gate_proj without statistics."""
    mlp = find_decoder_layers(model)[1][index].mlp

    def forward(x):
        out = mlp.down_proj(mlp.act_fn(mlp.up_proj(x)))
        return out + 0 * mlp.gate_proj(x)[..., :out.shape[-1]]
    mlp.forward = forward


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_a_pass_that_missed_a_layer_runs_again_whole(method, calib_ids, monkeypatch, caplog):
    models = [make_tiny_model("llama", num_hidden_layers=3) for _ in range(2)]
    for model in models:
        _call_gate_last_in_block(model, 1)
    _assert_same_as_whole_passes(*models, calib_ids, PruneConfig(method=method, batch_size=3),
                                 monkeypatch)
    assert "model.layers.1.mlp.gate_proj did not run once per batch" in caplog.text


def test_no_hooks_left_when_a_shortened_pass_fails(calib_ids, monkeypatch):
    model = make_tiny_model("llama", num_hidden_layers=3)
    steps = calibrate_blocks(model, calib_ids, batch_size=3, dense_outputs=False)
    next(steps).recompute_outputs()

    def fail(self, inp):
        raise RuntimeError("stats failed")

    monkeypatch.setattr("wanda_viz.stats.InputNormStats.add_batch", fail)
    with pytest.raises(RuntimeError, match="stats failed"):
        next(steps)
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
