"""Sequential calibration: input capture with every kwarg, hooks always removed, batching and the
sequential property (block i's statistics see the pruning of blocks < i, as in the reference).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from conftest import TINY_CONFIGS, make_tiny_model
from wanda_viz.calibration import capture_layer_inputs, record_inputs, run_layer
from wanda_viz.layers import find_decoder_layers, weight_matrix
from wanda_viz.pruning import apply_keep_mask, magnitude_scores, topk_keep_mask
from wanda_viz.sequential import calibrate_blocks
from wanda_viz.stats import CalibrationStats


def _assert_no_hooks(model: torch.nn.Module) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks, name
        assert not module._forward_pre_hooks, name


def _collect_stats(model, calib_ids, batch_size):
    return [{name: (s.input_sq_norm.clone(), s.hessian.clone()) for name, s in step.stats.items()}
            for step in calibrate_blocks(model, calib_ids, batch_size=batch_size,
                                         statistics=("hessian",))]


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


def test_stale_outputs_raise_instead_of_returning_other_numbers(calib_ids):
    """The recompute contract (sequential.py): outputs are read only when current."""
    from wanda_viz.sequential import StaleOutputsError
    steps = calibrate_blocks(make_tiny_model("llama"), calib_ids, batch_size=2,
                             dense_outputs=False)
    step = next(steps)
    with pytest.raises(StaleOutputsError, match="call recompute_outputs"):
        step.outputs  # noqa: B018 - the read itself must raise
    with pytest.raises(StaleOutputsError, match="was not called before the next block"):
        next(steps)   # advancing without the recompute would feed block 1 garbage
    dense = calibrate_blocks(make_tiny_model("llama"), calib_ids, batch_size=2)
    first = next(dense)
    first.outputs  # noqa: B018 - dense outputs are current
    second = next(dense)
    with pytest.raises(StaleOutputsError, match="buffers are reused"):
        first.outputs  # noqa: B018 - block 0's buffer now holds block 1's outputs
    with pytest.raises(StaleOutputsError, match="buffers are reused"):
        first.recompute_outputs()
    assert second.inputs.shape == second.outputs.shape


# -- one way to stop a forward pass ---------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "wanda_viz"
HOOK_REGISTRATIONS = ("register_forward_hook", "register_forward_pre_hook")
# Every exception class the library defines: one stop signal, the rest are real errors.
EXCEPTION_CLASSES = {"StopForward", "Cancelled", "DataUnavailableError", "StaleOutputsError",
                     "FieldError",
                     "ZeroShotUnavailable"}  # harness or task data missing (a user error)


def _raised_names(function: ast.AST, functions: dict[str, ast.AST], seen: set) -> set[str]:
    """Names of the exceptions ``function`` raises, following calls of module functions by name
    (a hook usually calls a helper, e.g. ``observe``)."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            names.add(exc.id if isinstance(exc, ast.Name) else getattr(exc, "attr", "?"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in functions and node.func.id not in seen:
            seen.add(node.func.id)
            names |= _raised_names(functions[node.func.id], functions, seen)
    return names


def _hook_raises(path: Path) -> dict[str, set[str]]:
    """Per hook registered in ``path``: the exceptions it (or a helper it calls) raises."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {node.name: node for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in HOOK_REGISTRATIONS and node.args:
            hook = node.args[0]
            target = hook.func if isinstance(hook, ast.Call) else hook  # a factory's closure
            body = functions.get(target.id) if isinstance(target, ast.Name) else target
            if body is not None:
                found[f"{path.name}:{node.lineno}"] = _raised_names(body, functions, set())
    return found


def test_hooks_stop_a_forward_only_with_stop_forward():
    """A hook that raised ValueError (the reference Catcher) or a private class to end a forward
    pass fails here: ``calibration.stop_forward_at`` is the one way (its own StopForward)."""
    hooks = {site: raised for path in sorted(PACKAGE.rglob("*.py"))
             for site, raised in _hook_raises(path).items()}
    assert any("calibration.py" in site for site in hooks)  # the scan sees the helper itself
    for site, raised in hooks.items():
        assert raised <= {"StopForward"}, f"{site} raises {sorted(raised)} from a hook"
    defined = {node.name for path in PACKAGE.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef) and any(
                   getattr(base, "id", "").endswith(("Exception", "Error")) for base in node.bases)}
    assert defined == EXCEPTION_CLASSES, "a new exception class: a stop signal must be StopForward"


def test_stop_forward_at_observes_and_removes_its_hook(calib_ids):
    from wanda_viz.calibration import stop_forward_at
    model = make_tiny_model("llama")
    seen = []
    with stop_forward_at(model.model.layers[0], observe=lambda out: seen.append(out)) as run:
        assert run(model, calib_ids) is True     # ended after block 0: no logits computed
    assert len(seen) == 1 and not model.model.layers[0]._forward_hooks
