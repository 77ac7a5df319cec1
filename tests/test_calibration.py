"""Sequential calibration: input capture with every kwarg, hooks always removed, batching and the
sequential property (block i's statistics see the pruning of blocks < i, as in the reference).
"""
from __future__ import annotations

import pytest
import torch

from conftest import TINY_CONFIGS, make_tiny_model
from wanda_viz.calibration import capture_layer_inputs, record_inputs, run_layer
from wanda_viz.models import find_decoder_layers, weight_matrix
from wanda_viz.pruning import apply_keep_mask, calibrate_blocks, magnitude_scores, topk_keep_mask
from wanda_viz.stats import CalibrationStats


def _assert_no_hooks(model: torch.nn.Module) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks, name
        assert not module._forward_pre_hooks, name


def _collect_stats(model, calib_ids, batch_size):
    return [{name: (s.input_sq_norm.clone(), s.hessian.clone()) for name, s in step.stats.items()}
            for step in calibrate_blocks(model, calib_ids, batch_size=batch_size, hessian=True)]


def test_capture_keeps_position_embeddings_for_llama(calib_ids):
    model = make_tiny_model("llama")
    _, blocks = find_decoder_layers(model)
    hidden, kwargs, captured_batch = capture_layer_inputs(model, blocks[0], calib_ids, batch_size=4)
    assert hidden.shape == (4, 16, 32) and captured_batch == 4
    assert "_captured_batch" not in kwargs
    cos, sin = kwargs["position_embeddings"]
    assert cos.shape[-2:] == (16, 8) and sin.shape == cos.shape  # head_dim 32 / 4 heads
    assert kwargs["use_cache"] is False
    torch.testing.assert_close(hidden, model.model.embed_tokens(calib_ids))
    _assert_no_hooks(model)


@pytest.mark.parametrize("family", ["llama", "opt", "gpt2"])
def test_run_layer_reproduces_the_full_forward(family, calib_ids):
    """Captured inputs + kwargs pushed through every block give the model's last hidden state."""
    model = make_tiny_model(family)
    _, blocks = find_decoder_layers(model)
    hidden, kwargs, captured_batch = capture_layer_inputs(model, blocks[0], calib_ids, batch_size=3)
    assert captured_batch == 3  # 4 windows: batches of 3 and 1; kwargs are sliced for the last
    for block in blocks:
        hidden = run_layer(block, hidden, kwargs, captured_batch=captured_batch, batch_size=3)
    with torch.no_grad():
        expected = model(calib_ids, output_hidden_states=True).hidden_states
    # hidden_states[-1] has the final norm applied; compare the block output before it.
    final_norm = {"llama": lambda: model.model.norm,
                  "opt": lambda: model.model.decoder.final_layer_norm,
                  "gpt2": lambda: model.transformer.ln_f}[family]()
    torch.testing.assert_close(final_norm(hidden), expected[-1], rtol=1e-4, atol=1e-5)


def test_record_inputs_removes_hooks_on_exception(calib_ids):
    model = make_tiny_model("llama")
    block = model.model.layers[0]
    layers = {"q": block.self_attn.q_proj, "down": block.mlp.down_proj}
    with pytest.raises(RuntimeError, match="boom"):
        with record_inputs(layers, lambda _n, layer: CalibrationStats(
                weight_matrix(layer).shape[1], "cpu")) as stats:
            model(calib_ids)
            assert stats["q"].norms.n_samples == 4
            raise RuntimeError("boom")
    _assert_no_hooks(model)


def test_capture_removes_its_hook_when_the_forward_fails():
    model = make_tiny_model("llama")
    _, blocks = find_decoder_layers(model)
    with pytest.raises(IndexError):
        capture_layer_inputs(model, blocks[0], torch.full((2, 4), 1000))  # ids beyond the vocab
    _assert_no_hooks(model)


def test_no_hooks_after_calibrate_blocks_closed_early(calib_ids):
    model = make_tiny_model("llama")
    steps = calibrate_blocks(model, calib_ids, batch_size=2)
    next(steps)
    steps.close()  # generator abandoned mid-way (e.g. the UI cancelled)
    _assert_no_hooks(model)


@pytest.mark.parametrize("family", list(TINY_CONFIGS))
@pytest.mark.parametrize("batch_size", [4, 3])
def test_batched_statistics_equal_one_by_one(family, batch_size, calib_ids):
    """batch_size 4 (and 3, which leaves a last batch of 1) gives the statistics of batch_size 1."""
    one_by_one = _collect_stats(make_tiny_model(family), calib_ids, batch_size=1)
    batched = _collect_stats(make_tiny_model(family), calib_ids, batch_size=batch_size)
    for block_one, block_batched in zip(one_by_one, batched):
        assert block_one.keys() == block_batched.keys()
        for name, (norm, hessian) in block_one.items():
            torch.testing.assert_close(block_batched[name][0], norm, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(block_batched[name][1], hessian, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["opt", "llama"])
def test_batch_equal_to_seq_len_with_a_short_last_batch(family):
    """Batch-dimension kwargs are sliced for the last batch even when batch == seq_len."""
    calib_ids = torch.randint(0, 99, (5, 4), generator=torch.Generator().manual_seed(0))
    one_by_one = _collect_stats(make_tiny_model(family), calib_ids, batch_size=1)
    batched = _collect_stats(make_tiny_model(family), calib_ids, batch_size=4)
    for block_one, block_batched in zip(one_by_one, batched):
        for name, (norm, hessian) in block_one.items():
            torch.testing.assert_close(block_batched[name][0], norm, rtol=1e-4, atol=1e-5)


def _block1_norms(model, calib_ids, prune_block0: bool, recompute: bool):
    for step in calibrate_blocks(model, calib_ids, batch_size=2):
        if step.index == 0:
            if prune_block0:
                for layer in step.layers.values():
                    keep_mask = topk_keep_mask(magnitude_scores(weight_matrix(layer)), 0.5, "row")
                    apply_keep_mask(layer, keep_mask)
            if recompute:
                step.recompute_outputs()
        else:
            return {name: s.input_sq_norm.clone() for name, s in step.stats.items()}


def test_block1_statistics_see_block0_pruning_only_after_recompute(calib_ids):
    dense = _block1_norms(make_tiny_model("llama"), calib_ids, prune_block0=False, recompute=False)
    pruned = _block1_norms(make_tiny_model("llama"), calib_ids, prune_block0=True, recompute=True)
    for name in dense:
        assert not torch.allclose(dense[name], pruned[name]), name
    # Pruned but not recomputed: block 1 still gets the dense outputs (nothing reruns behind
    # the caller's back).
    stale = _block1_norms(make_tiny_model("llama"), calib_ids, prune_block0=True, recompute=False)
    for name in dense:
        assert torch.equal(stale[name], dense[name]), name


def test_recompute_outputs_runs_the_changed_block(calib_ids):
    model = make_tiny_model("llama")
    timings: dict = {}
    steps = calibrate_blocks(model, calib_ids, batch_size=3, timings=timings)
    step = next(steps)
    dense_outputs = step.outputs.clone()
    forward_s = timings["forward_s"]
    step.recompute_outputs()  # unchanged block: the same outputs, bit for bit
    assert torch.equal(step.outputs, dense_outputs) and timings["forward_s"] > forward_s
    for layer in step.layers.values():
        apply_keep_mask(layer, topk_keep_mask(magnitude_scores(weight_matrix(layer)), 0.5, "row"))
    step.recompute_outputs()
    _, kwargs, captured_batch = capture_layer_inputs(model, step.block, calib_ids, batch_size=3)
    expected = run_layer(step.block, step.inputs, kwargs, captured_batch=captured_batch,
                         batch_size=3)
    assert torch.equal(step.outputs, expected) and not torch.equal(step.outputs, dense_outputs)
    assert [s.last for s in [step, *steps]] == [False, True]


def test_calibrate_blocks_yields_every_block_with_inputs_and_outputs(calib_ids):
    model = make_tiny_model("opt")
    timings: dict = {}
    steps = list(calibrate_blocks(model, calib_ids, batch_size=4, timings=timings))
    assert [s.index for s in steps] == [0, 1]
    assert [s.name for s in steps] == ["model.decoder.layers.0", "model.decoder.layers.1"]
    assert set(timings) >= {"capture_s", "forward_s"}
    for step in steps:
        assert len(step.layers) == 6 and step.stats.keys() == step.layers.keys()
        for stats in step.stats.values():
            assert stats.norms.n_samples == 4 and stats.hessian is None
    _assert_no_hooks(model)
