"""Compact pruned-state records: bit-packed masks and kept values rebuild weights bit for bit."""
from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_model
from wanda_viz.layers import WeightBackup, find_decoder_layers, find_prunable_layers, weight_matrix
from wanda_viz.pruning import prune_model
from wanda_viz.config import PruneConfig
from wanda_viz.pruning.state import KeptWeights, PackedMask, apply_packed_masks, pack_keep_masks


def _prunable_weights(model) -> dict[str, torch.Tensor]:
    prefix, blocks = find_decoder_layers(model)
    return {name: weight_matrix(layer).detach().clone()
            for name, layer in find_prunable_layers(blocks, prefix).items()}


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 9), (16, 8)])
def test_packed_mask_round_trip_and_size(shape):
    torch.manual_seed(0)
    mask = torch.rand(shape) > 0.5
    packed = PackedMask.from_tensor(mask)
    assert torch.equal(packed.to_tensor(), mask)
    assert packed.nbytes == -(-shape[0] * shape[1] // 8)  # ceil(n / 8): one bit per weight


@pytest.mark.parametrize("family", ["llama", "gpt2"])  # gpt2: Conv1D weights stored (in, out)
def test_kept_weights_rebuild_sparsegpt_bit_for_bit(family):
    model = make_tiny_model(family)
    dense = WeightBackup(model)
    calib = torch.randint(0, 90, (4, 16), generator=torch.Generator().manual_seed(0))
    result = prune_model(model, calib, PruneConfig(method="sparsegpt", sparsity=0.5))
    pruned = _prunable_weights(model)
    kept = KeptWeights.capture(model, result.keep_masks)
    dense.restore(model)
    assert not all(torch.equal(pruned[n], w) for n, w in _prunable_weights(model).items())
    kept.apply(model)
    for name, weight in _prunable_weights(model).items():
        assert torch.equal(weight, pruned[name]), name
    full = sum(w.numel() * w.element_size() for w in pruned.values())
    assert kept.nbytes < 0.55 * full  # half the values in fp32 + 1 bit per weight


def test_packed_masks_rebuild_wanda():
    model = make_tiny_model("llama")
    dense = WeightBackup(model)
    calib = torch.randint(0, 90, (4, 16), generator=torch.Generator().manual_seed(1))
    result = prune_model(model, calib, PruneConfig(method="wanda", sparsity=0.5))
    pruned = _prunable_weights(model)
    packed = pack_keep_masks(result.keep_masks)
    dense.restore(model)
    apply_packed_masks(model, packed)
    for name, weight in _prunable_weights(model).items():
        assert torch.equal(weight, pruned[name]), name


def test_wrong_model_is_refused():
    kept = KeptWeights({"model.layers.9.mlp.up_proj": PackedMask.from_tensor(torch.ones(2, 2,
                                                                                        dtype=bool))},
                       {"model.layers.9.mlp.up_proj": torch.ones(4)})
    with pytest.raises(KeyError, match="not the pruned model"):
        kept.apply(make_tiny_model("llama"))
