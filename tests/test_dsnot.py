"""DSnoT against the official code's logic (tests/dsnot_oracle.py): statistics bit for bit, the
refined masks identical on random layers and on a whole tiny LLaMA with the same calibration
windows, one window per forward pass; every deviation shown by a test."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import dsnot_oracle as oracle
from helpers import official_and_our_windows
from wanda_viz.config import PruneConfig
from wanda_viz.pruning import prune_layer, prune_model
from wanda_viz.pruning.dsnot import (DSnoTInputs, DSnoTSettings, block_relative_name,
                                     dsnot_keep_mask, reorder_indices, skips_refinement)
from wanda_viz.pruning.sparsegpt import sparsegpt_saliency
from wanda_viz.stats import CalibrationStats, InputMomentStats
from wanda_viz.testing import make_tiny_model

SEQ_LEN, N_SAMPLES = 32, 16
CASES = [(0.5, None), (0.6, None), (0.5, (2, 4)), (0.5, (4, 8))]


def _wrapped_layer(in_features=160, out_features=96, seed=0, initial="wanda"):
    """A random layer and the official wrapper fed 6 sequences one at a time."""
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_features, in_features, generator=generator))
    inputs = torch.randn(6, 24, in_features, generator=generator) * 0.5 + 0.2
    wrapped = oracle.WrappedGPT(layer, initial, accumulate_hessian=True)
    for sequence in inputs:
        wrapped.add_batch(sequence.unsqueeze(0), None)
    if initial == "sparsegpt":
        wrapped.H_clean = wrapped.H.clone()  # the official metric adds its damping to H in place
    return layer, wrapped, inputs


def _official_mask(name, layer, wrapped, args, nm):
    if hasattr(wrapped, "H_clean"):
        wrapped.H = wrapped.H_clean.clone()
    return oracle.dsnot_layer_mask(name, layer, wrapped, args, *(nm or (0, 0)))


def _our_mask(layer, wrapped, sparsity, nm, settings, initial="wanda", refine=True):
    weight = layer.weight.data
    wanda = weight.abs() * torch.sqrt(wrapped.scaler_row.reshape((1, -1)))
    scores = {"wanda": wanda, "magnitude": weight.abs(),
              "sparsegpt": sparsegpt_saliency(weight, wrapped.H_clean, 0.01)
              if initial == "sparsegpt" else None}[initial]
    inputs = DSnoTInputs(weight, scores, wanda, wrapped.sum_metric_row, wrapped.var.flatten())
    return dsnot_keep_mask(inputs, sparsity, nm, settings, refine=refine)


def test_moments_equal_the_official_wrapper_bit_for_bit():
    layer, wrapped, inputs = _wrapped_layer(in_features=40)
    for splits in ([6], [1] * 6, [2, 4]):
        ours = InputMomentStats(40, seq_len=24)
        for chunk in inputs.split(splits):
            ours.add_batch(chunk)
        assert torch.equal(ours.input_var, wrapped.var.flatten())
        assert torch.equal(ours.input_sum, wrapped.sum_metric_row)
    flat = InputMomentStats(40, seq_len=24)  # OPT-style (batch * seq, in) input
    flat.add_batch(inputs.reshape(-1, 40))
    assert torch.equal(flat.input_var, wrapped.var.flatten())
    # a mean of per-sequence variances, not the pooled variance of every token
    assert not torch.allclose(flat.input_var, inputs.reshape(-1, 40).var(0, unbiased=False))


def test_moments_only_when_asked():
    assert CalibrationStats(8, "cpu").get("input_moments") is None
    moments = CalibrationStats(8, "cpu", statistics=("input_moments",)).get("input_moments")
    assert isinstance(moments, InputMomentStats)


def test_reorder_indices_equal_the_official_function():
    values = torch.randn(40, 30, generator=torch.Generator().manual_seed(1))
    values[values.abs() < 0.4] = 0  # zeros map to position 0 (official quirk)
    values[0, 5] = float("nan")
    assert torch.equal(reorder_indices(values), oracle.return_reorder_indice(values))


@pytest.mark.parametrize("initial", ["wanda", "magnitude", "sparsegpt"])
@pytest.mark.parametrize("sparsity,nm", CASES)
@pytest.mark.parametrize("without_same_sign", [True, False])
def test_layer_masks_equal_the_official_refinement(initial, sparsity, nm, without_same_sign):
    layer, wrapped, _ = _wrapped_layer(initial=initial)
    settings = DSnoTSettings(update_threshold=0.01, without_same_sign=without_same_sign)
    args = oracle.Args(sparsity_ratio=sparsity, initial_method=initial, update_threshold=0.01,
                       without_same_sign=without_same_sign)
    theirs = _official_mask("self_attn.q_proj", layer, wrapped, args, nm)
    ours = _our_mask(layer, wrapped, sparsity, nm, settings, initial)
    assert torch.equal(ours, ~theirs)
    unrefined = _our_mask(layer, wrapped, sparsity, nm, settings, initial, refine=False)
    assert int((ours != unrefined).sum()) > 0  # the refinement swapped weights
    skipped = _official_mask("mlp.up_proj", layer, wrapped, args, nm)
    assert torch.equal(unrefined, ~skipped)


def test_a_narrow_layer_stops_where_the_official_code_raises(caplog):
    layer, wrapped, _ = _wrapped_layer(in_features=16, out_features=8)
    args = oracle.Args(update_threshold=0.0, max_cycle_time=50)
    with pytest.raises((IndexError, RuntimeError)):  # a pointer leaves its 8-entry list
        oracle.dsnot_layer_mask("self_attn.q_proj", layer, wrapped, args)
    with caplog.at_level(logging.WARNING):
        ours = _our_mask(layer, wrapped, 0.5, None, DSnoTSettings(update_threshold=0.0))
    assert "ran out after" in caplog.text
    cycles = int(caplog.text.split("ran out after ")[1].split()[0])
    args.max_cycle_time = cycles  # the official code run just up to that cycle
    assert torch.equal(ours, ~oracle.dsnot_layer_mask("self_attn.q_proj", layer, wrapped, args))
    args.max_cycle_time = cycles + 1
    with pytest.raises((IndexError, RuntimeError)):
        oracle.dsnot_layer_mask("self_attn.q_proj", layer, wrapped, args)


@pytest.mark.parametrize("name,skip,expected", [
    ("mlp.up_proj", "mlp", True), ("self_attn.q_proj", "mlp", False),
    ("self_attn.o_proj", "self_attn", True), ("mlp.down_proj", "no_skip", False),
    ("fc1", "mlp", True), ("self_attn.out_proj", "mlp", False),  # OPT
    ("attn.c_attn", "mlp", False), ("mlp.c_fc", "mlp", True),  # GPT-2
    ("attention.query_key_value", "self_attn", True)])  # GPT-NeoX
def test_skip_layer_rule(name, skip, expected):
    assert skips_refinement(name, DSnoTSettings(skip_layer=skip)) is expected


@pytest.mark.parametrize("name,relative", [
    ("model.layers.3.mlp.up_proj", "mlp.up_proj"), ("transformer.h.11.attn.c_attn", "attn.c_attn"),
    ("model.decoder.layers.0.fc1", "fc1"), ("lm_head", "lm_head")])
def test_block_relative_name(name, relative):
    assert block_relative_name(name) == relative


def test_config_rules():
    config = PruneConfig(method="sparsegpt", refine="dsnot")
    assert config.label() == "sparsegpt+dsnot 50%" and config.method_key == "sparsegpt+dsnot"
    assert not config.updates_weights and "input_moments" in config.statistics
    assert PruneConfig(method="magnitude", refine="dsnot").needs_calibration
    assert PruneConfig(**config.to_dict()) == config
    changed = PruneConfig(refine="dsnot", refine_settings={"max_cycle_time": 5})
    assert changed.refine_settings == DSnoTSettings(max_cycle_time=5)
    assert changed.label() == "wanda+dsnot 50% max_cycle_time=5"
    with pytest.raises(ValueError, match="skip_layer"):
        DSnoTSettings(skip_layer="attention")
    with pytest.raises(ValueError, match="no setting"):
        PruneConfig(refine="dsnot", refine_settings={"cycles": 5})


def test_a_layer_group_is_refused(windows):
    _, calib_ids = windows
    with pytest.raises(ValueError, match="per-row initial mask"):
        prune_model(_model(), calib_ids, PruneConfig(method="wanda", group="layer",
                                                     refine="dsnot"))


def test_prune_layer_refines_a_layer_named_or_not():
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 32, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(32, 64, generator=generator))
    stats = CalibrationStats(64, "cpu", statistics=("input_moments",))
    stats.add_batch(torch.randn(4, 24, 64, generator=generator) + 0.3)
    config = PruneConfig(refine="dsnot", refine_settings={"update_threshold": 0.0})
    masks = {}
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj", ""):
        copy = nn.Linear(64, 32, bias=False)
        copy.load_state_dict(layer.state_dict())
        masks[name] = prune_layer(copy, stats, 0.5, config, name=name)[0]
    wanda = prune_layer(layer, stats, 0.5, PruneConfig())[0]
    assert torch.equal(masks["model.layers.0.mlp.up_proj"], wanda)  # skip_layer "mlp"
    assert not torch.equal(masks["model.layers.0.self_attn.q_proj"], wanda)
    assert torch.equal(masks[""], masks["model.layers.0.self_attn.q_proj"])  # no name: refined


@pytest.fixture(scope="module")
def windows():
    return official_and_our_windows(N_SAMPLES, SEQ_LEN)


def _model():
    # 128 inputs: 50 cycles cannot run a candidate list out (the official code would raise)
    model = make_tiny_model("llama", hidden_size=128, intermediate_size=256)
    model.seqlen = SEQ_LEN
    return model


def _structure(sparsity, nm):
    return (f"{nm[0]}:{nm[1]}" if nm else "unstructured"), (nm or (0, 0))


@pytest.mark.parametrize("initial", ["wanda", "magnitude", "sparsegpt"])
@pytest.mark.parametrize("sparsity,nm", CASES[:3])
def test_model_masks_equal_official_prune_dsnot(initial, sparsity, nm, windows):
    loader, calib_ids = windows
    structure, (n, m) = _structure(sparsity, nm)
    args = oracle.Args(sparsity_ratio=sparsity, initial_method=initial)
    theirs = oracle.prune_DSnoT(_model(), loader, args, n, m, accumulate_hessian=True)
    config = PruneConfig(method=initial, sparsity=sparsity, structure=structure, refine="dsnot",
                         batch_size=1)
    ours = prune_model(_model(), calib_ids, config)
    assert ours.keep_masks.keys() == theirs.keys()
    for name, keep in ours.keep_masks.items():
        assert torch.equal(keep, ~theirs[name]), name
    base = prune_model(_model(), calib_ids, PruneConfig(method="wanda", sparsity=sparsity,
                                                        structure=structure, batch_size=1))
    changed = {name for name in ours.keep_masks
               if not torch.equal(ours.keep_masks[name], base.keep_masks[name])}
    assert "model.layers.0.self_attn.q_proj" in changed
    if initial == "wanda":  # block 0's MLP keeps the initial (Wanda) mask; block 1 sees the change
        assert not any(name.startswith("model.layers.0.mlp") for name in changed)


def test_batching_does_not_change_the_masks(windows):
    _, calib_ids = windows
    one, eight = (prune_model(_model(), calib_ids, PruneConfig(refine="dsnot", sparsity=0.6,
                                                               batch_size=b)) for b in (1, 8))
    assert all(torch.equal(one.keep_masks[k], eight.keep_masks[k]) for k in one.keep_masks)


def test_official_sparsegpt_initial_metric_is_all_zero(windows):
    """The deviation we do NOT copy: the official wrapper never accumulates H, so the SparseGPT
    initial metric is 0 everywhere and the stable sort prunes the first k columns of each row
    (visible in the MLP layers, which keep the initial mask)."""
    loader, _ = windows
    args = oracle.Args(sparsity_ratio=0.5, initial_method="sparsegpt")
    theirs = oracle.prune_DSnoT(_model(), loader, args, accumulate_hessian=False)
    for name, prune in theirs.items():
        if ".mlp." in name:
            k = prune.shape[1] // 2
            assert prune[:, :k].all() and not prune[:, k:].any(), name


def test_a_sweep_group_leaves_refined_keys_at_their_base_default():
    from wanda_viz.analysis.sweep import SweepSpec, sweep_points
    points = sweep_points(SweepSpec(methods=("wanda", "wanda+dsnot"), group="layer",
                                    include_dense=False))
    assert [(p.method_key, p.comparison_group) for p in points] == [
        ("wanda", "layer"), ("wanda+dsnot", "row")]
