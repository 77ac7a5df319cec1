"""Hooks for sequential, block-by-block calibration (Wanda/SparseGPT reference scheme).

``capture_layer_inputs`` runs the calibration windows through the embeddings and stops at the
first decoder block, keeping its inputs and EVERY keyword argument it receives (attention mask,
position ids, ``position_embeddings``, cache position ...; the reference Catcher kept only the mask
and position ids and breaks on transformers >= 4.45). ``record_inputs`` attaches statistics to the
inputs of linear layers for the duration of a ``with`` block; ``run_layer`` pushes hidden states
through one block in batches. All hooks are removed in ``finally``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["capture_layer_inputs", "record_inputs", "run_layer", "move_kwargs"]


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass at the first block (private signal)."""


def _map_tensors(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def move_kwargs(layer_kwargs: dict, device: torch.device) -> dict:
    """Every tensor in the (nested) keyword arguments moved to ``device``."""
    return _map_tensors(layer_kwargs, lambda t: t.to(device))


def _fit_batch(layer_kwargs: dict, captured_batch: int, batch: int) -> dict:
    """Slice batch-dimension tensors captured for ``captured_batch`` windows down to ``batch``.

    All calibration windows have the same length and no padding, so the per-window kwargs
    (masks, positions, rotary tables) are identical and slicing is exact.
    """
    if batch == captured_batch:
        return layer_kwargs
    # dim >= 2 only: 1-D tensors such as cache_position (seq_len,) have no batch dimension.
    fit = (lambda t: t[:batch] if t.dim() >= 2 and t.shape[0] == captured_batch else t)
    return _map_tensors(layer_kwargs, fit)


@torch.no_grad()
def capture_layer_inputs(model: nn.Module, first_block: nn.Module, input_ids: torch.Tensor, *,
                         batch_size: int = 8,
                         store_device: torch.device | None = None) -> tuple[torch.Tensor, dict]:
    """Inputs of ``first_block`` for every calibration window, and its keyword arguments.

    Args:
        input_ids: (n_samples, seq_len) token ids.
        batch_size: windows per forward pass through the embeddings.
        store_device: where to keep the hidden states (default: where the block received them).
    Returns:
        hidden (n_samples, seq_len, hidden_size) in the model dtype, and the block's kwargs as
        captured for the first batch (``use_cache``/cache objects dropped).
    """
    captured: list[torch.Tensor] = []
    layer_kwargs: dict = {}

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        captured.append(hidden.detach().to(store_device or hidden.device))
        if not layer_kwargs:
            layer_kwargs.update({k: v for k, v in kwargs.items()
                                 if k not in ("hidden_states", "past_key_values", "past_key_value",
                                              "layer_past")})
            layer_kwargs["_captured_batch"] = hidden.shape[0]
        raise _StopForward

    device = next(model.parameters()).device
    handle = first_block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in input_ids.split(batch_size):
            with contextlib.suppress(_StopForward):
                model(batch.to(device), use_cache=False)
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the first decoder block was never called during the forward pass")
    layer_kwargs["use_cache"] = False
    return torch.cat(captured, dim=0), layer_kwargs


@torch.no_grad()
def run_layer(block: nn.Module, hidden: torch.Tensor, layer_kwargs: dict, *,
              batch_size: int = 8, out: torch.Tensor | None = None) -> torch.Tensor:
    """Push hidden (n, seq_len, d) through ``block`` in batches; returns the block outputs.

    The block runs on its own device; ``hidden`` and ``out`` may live elsewhere (e.g. on CPU).
    ``out`` may be a preallocated buffer of the same shape (it may not alias ``hidden``).
    """
    device = next(block.parameters()).device
    kwargs = {k: v for k, v in layer_kwargs.items() if k != "_captured_batch"}
    kwargs = move_kwargs(kwargs, device)
    captured_batch = layer_kwargs.get("_captured_batch", batch_size)
    out = torch.empty_like(hidden) if out is None else out
    for start in range(0, hidden.shape[0], batch_size):
        chunk = hidden[start:start + batch_size].to(device)
        result = block(chunk, **_fit_batch(kwargs, captured_batch, chunk.shape[0]))
        result = result[0] if isinstance(result, (tuple, list)) else result
        out[start:start + chunk.shape[0]] = result.to(out.device)
    return out


@contextlib.contextmanager
def record_inputs(layers: dict[str, nn.Module],
                  make_stats: Callable[[str, nn.Module], object]) -> Iterator[dict[str, object]]:
    """Attach ``make_stats(name, layer)`` to the input of every layer while the block runs.

    Yields {name: stats}; each stats object gets ``add_batch(input)`` on every forward call.
    The hooks are removed on exit, also when the body raises.
    """
    stats = {name: make_stats(name, layer) for name, layer in layers.items()}
    handles = []
    try:
        for name, layer in layers.items():
            handles.append(layer.register_forward_hook(
                lambda module, inputs, output, s=stats[name]: s.add_batch(inputs[0].detach())))
        yield stats
    finally:
        for handle in handles:
            handle.remove()
