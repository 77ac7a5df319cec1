"""prune_model on tiny models: exact sparsity, N:M groups, no-ops, hooks, determinism, safety.

Parametrised over methods x structures (HOUSE_STYLE B8) and over seven architectures.
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_CONFIGS, make_tiny_model
from wanda_viz.config import PruneConfig
from wanda_viz.evaluate import perplexity
from wanda_viz.layers import WeightBackup, find_decoder_layers, find_prunable_layers, weight_matrix
from wanda_viz.pruning import outlier_ratio, owl_block_sparsities, prune_model
from wanda_viz.pruning.registry import METHOD_NAMES

METHODS = list(METHOD_NAMES)  # every registered method
FAMILIES = list(TINY_CONFIGS)


def _prunable(model) -> dict[str, torch.nn.Module]:
    prefix, blocks = find_decoder_layers(model)
    return find_prunable_layers(blocks, prefix)


def _assert_exact(result, model, config: PruneConfig) -> None:
    """Every layer's mask has the exact count its comparison group and structure prescribe."""
    layers = _prunable(model)
    assert result.keep_masks.keys() == layers.keys()
    for name, layer in layers.items():
        keep_mask = result.keep_masks[name]
        weight = weight_matrix(layer).cpu()
        rows, columns = weight.shape
        assert keep_mask.shape == weight.shape
        assert (weight[~keep_mask] == 0).all(), name
        assert int((weight == 0).sum()) == int((~keep_mask).sum()), name
        if config.nm is not None:
            n, m = config.nm
            groups = (~keep_mask).reshape(rows, columns // m, m).sum(dim=-1)
            assert (groups == n).all(), name
        elif config.comparison_group == "row":
            assert ((~keep_mask).sum(dim=1) == int(columns * config.sparsity)).all(), name
        elif config.comparison_group == "input":
            assert ((~keep_mask).sum(dim=0) == int(rows * config.sparsity)).all(), name
        elif config.comparison_group == "layer":
            assert int((~keep_mask).sum()) == int(rows * columns * config.sparsity), name
        else:  # "block" (SparseGPT): one threshold per column block of settings.block_size
            assert config.comparison_group == "block", config.comparison_group
            for block in keep_mask.split(config.settings.block_size, dim=1):
                assert int((~block).sum()) == int(block.numel() * config.sparsity), name
        assert result.layer_sparsity[name] == pytest.approx(1 - keep_mask.float().mean().item())


def _assert_no_hooks(model) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparsity,structure", [(0.5, "unstructured"), (0.5, "2:4"),
                                                (0.5, "4:8"), (0.3, "unstructured")])
def test_exact_sparsity_llama(method, sparsity, structure, calib_ids):
    model = make_tiny_model("llama")
    config = PruneConfig(method=method, sparsity=sparsity, structure=structure)
    result = prune_model(model, calib_ids, config)
    _assert_exact(result, model, config)
    # int() floors per group: 30% of 32 inputs prunes 9 (28.1%), so allow 0.02 (measured 0.015).
    assert sparsity - 0.02 <= result.overall_sparsity <= sparsity
    _assert_no_hooks(model)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_every_architecture(family, method, structure, calib_ids):
    model = make_tiny_model(family)
    layers = _prunable(model)
    untouched = {name: p.detach().clone() for name, p in model.named_parameters()
                 if not any(name.startswith(layer + ".") for layer in layers)}
    embeddings = model.get_input_embeddings().weight.detach().clone()
    lm_head = model.get_output_embeddings().weight.detach().clone()
    config = PruneConfig(method=method, sparsity=0.5, structure=structure)
    result = prune_model(model, calib_ids, config)
    _assert_exact(result, model, config)
    # Embeddings, lm_head, norms and biases are never touched.
    assert torch.equal(model.get_input_embeddings().weight, embeddings)
    assert torch.equal(model.get_output_embeddings().weight, lm_head)
    for name, param in model.named_parameters():
        if name in untouched:
            assert torch.equal(param, untouched[name]), name
    _assert_no_hooks(model)


@pytest.mark.parametrize("method", METHODS)
def test_sparsity_zero_changes_nothing(method, calib_ids):
    model = make_tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = prune_model(model, calib_ids, PruneConfig(method=method, sparsity=0.0))
    for name, value in model.state_dict().items():
        if method == "sparsegpt":
            torch.testing.assert_close(value, before[name], atol=1e-5, rtol=0)
        else:
            assert torch.equal(value, before[name]), name
    assert result.overall_sparsity == 0.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_same_inputs_same_result(method, structure, calib_ids):
    config = PruneConfig(method=method, structure=structure)
    models = [make_tiny_model("llama"), make_tiny_model("llama")]
    results = [prune_model(model, calib_ids.clone(), config) for model in models]
    for name, keep_mask in results[0].keep_masks.items():
        assert torch.equal(keep_mask, results[1].keep_masks[name]), name
    for (name, a), (_, b) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("method", METHODS)
def test_prune_then_restore_is_bit_identical(method, calib_ids):
    model = make_tiny_model("gpt2")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    backup = WeightBackup(model)
    prune_model(model, calib_ids, PruneConfig(method=method, structure="2:4"))
    backup.restore(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_no_hooks_left_when_calibration_raises(calib_ids, monkeypatch):
    """An exception inside record_inputs (here: a stats object failing) leaves no hooks behind."""
    model = make_tiny_model("llama")
    import wanda_viz.sequential as sequential

    def failing_stats(*args, **kwargs):
        class Failing:
            def add_batch(self, inp):
                raise RuntimeError("stats failed")
        return Failing()

    monkeypatch.setattr(sequential, "CalibrationStats", failing_stats)
    with pytest.raises(RuntimeError, match="stats failed"):
        prune_model(model, calib_ids, PruneConfig(method="wanda"))
    _assert_no_hooks(model)  # record_inputs removed them in its finally


def test_magnitude_needs_no_calibration():
    model = make_tiny_model("opt")
    result = prune_model(model, None, PruneConfig(method="magnitude"))
    assert result.overall_sparsity == pytest.approx(0.5)
    assert result.input_sq_norm == {}


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_calibration_required_and_checked(method, calib_ids):
    model = make_tiny_model("llama")
    with pytest.raises(ValueError, match="calibration data"):
        prune_model(model, None, PruneConfig(method=method))
    with pytest.raises(ValueError, match="integer token ids"):
        prune_model(model, calib_ids.float(), PruneConfig(method=method))
    with pytest.raises(ValueError, match="longer than the model"):
        prune_model(model, torch.zeros(1, 65, dtype=torch.long), PruneConfig(method=method))


def test_result_contents(calib_ids):
    model = make_tiny_model("llama")
    result = prune_model(model, calib_ids, PruneConfig(method="sparsegpt"), model_name="tiny",
                         calibration={"source": "random"})
    names = list(_prunable(model))
    assert result.layer_names == names
    assert set(result.losses) == set(names) and all(v >= 0 for v in result.losses.values())
    assert set(result.input_sq_norm) == set(names)
    assert result.block_sparsity == [0.5, 0.5]
    assert {"prune_s", "forward_s", "capture_s", "total_s"} <= set(result.timings)
    summary = result.summary()
    assert summary["model"] == "tiny" and summary["comparison_group"] == "block"


@pytest.mark.parametrize("group", ["row", "layer", "input"])
def test_comparison_groups_on_a_model(group, calib_ids):
    model = make_tiny_model("llama")
    result = prune_model(model, calib_ids, PruneConfig(method="wanda", group=group))
    for keep_mask in result.keep_masks.values():
        pruned = ~keep_mask
        if group == "row":
            assert (pruned.sum(1) == keep_mask.shape[1] // 2).all()
        elif group == "input":
            assert (pruned.sum(0) == keep_mask.shape[0] // 2).all()
        else:
            assert pruned.sum() == keep_mask.numel() // 2


def test_wanda_variant_on_a_model(calib_ids):
    model = make_tiny_model("llama")
    result = prune_model(model, calib_ids, PruneConfig(method="wanda", wanda_variant=True))
    for name, sparsity in result.layer_sparsity.items():
        # measured <= 0.001; one weight of the smallest (16 x 32) layer is 0.002
        assert abs(sparsity - 0.5) <= 0.002, name


def test_owl_block_sparsities_average_to_target(calib_ids):
    model = make_tiny_model("llama")
    result = prune_model(model, calib_ids, PruneConfig(method="wanda", owl=True))
    assert len(result.block_sparsity) == 2
    assert sum(result.block_sparsity) / 2 == pytest.approx(0.5)
    assert max(result.block_sparsity) - min(result.block_sparsity) <= 2 * 0.08 + 1e-9


def test_owl_golden_block_sparsities():
    # Ratios min-max scaled to a spread of 2 * lambda = 0.16 around density 1 - 0.5:
    # densities [0.42, 0.50, 0.58] -> sparsities [0.58, 0.50, 0.42] (more outliers, fewer pruned).
    sparsities = owl_block_sparsities([0.01, 0.02, 0.03], 0.5, 0.08)
    assert sparsities == pytest.approx([0.58, 0.50, 0.42])
    assert owl_block_sparsities([0.2, 0.2], 0.5) == [0.5, 0.5]
    assert outlier_ratio([torch.tensor([1.0, 1.0, 1.0, 1.0, 100.0])], m=2.0) == pytest.approx(0.2)


def test_store_masks_off(calib_ids):
    model = make_tiny_model("llama")
    result = prune_model(model, calib_ids, PruneConfig(method="wanda", store_masks=False))
    assert result.keep_masks is None and result.overall_sparsity == pytest.approx(0.5)


def test_offload_path_on_cpu(calib_ids):
    config = PruneConfig(method="sparsegpt", offload=True, exec_device="cpu")
    offloaded = make_tiny_model("llama")
    plain = make_tiny_model("llama")
    result = prune_model(offloaded, calib_ids, config)
    reference = prune_model(plain, calib_ids, PruneConfig(method="sparsegpt"))
    for name in result.keep_masks:
        assert torch.equal(result.keep_masks[name], reference.keep_masks[name])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", METHODS)
def test_half_precision_on_cpu(method, dtype, calib_ids):
    """Half-precision models: exact counts, statistics in fp32, finite perplexity (CPU)."""
    model = make_tiny_model("llama").to(dtype)
    config = PruneConfig(method=method, structure="2:4")
    result = prune_model(model, calib_ids, config)
    _assert_exact(result, model, config)
    assert all(norm.dtype == torch.float32 for norm in result.input_sq_norm.values())
    assert next(model.parameters()).dtype == dtype
    assert math.isfinite(perplexity(model, calib_ids.reshape(1, -1), 16, show_progress=False))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", METHODS)
def test_half_precision_on_cuda(method, dtype, calib_ids):
    """fp16/bf16 on CUDA: statistics in fp32, exact sparsity, finite perplexity."""
    model = make_tiny_model("llama").to("cuda", dtype)
    config = PruneConfig(method=method)
    result = prune_model(model, calib_ids.cuda(), config)
    _assert_exact(result, model, config)
    assert all(norm.dtype == torch.float32 for norm in result.input_sq_norm.values())
    eval_ids = torch.randint(0, 99, (1, 256), generator=torch.Generator().manual_seed(1))
    assert math.isfinite(perplexity(model, eval_ids.cuda(), 32, show_progress=False))
