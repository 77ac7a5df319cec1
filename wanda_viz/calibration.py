"""Hooks for sequential, block-by-block calibration (Wanda/SparseGPT reference scheme).

``capture_layer_inputs`` runs the calibration windows through the embeddings and stops at the
first decoder block, keeping its inputs and EVERY keyword argument it receives (attention mask,
position ids, ``position_embeddings``, cache position ...; the reference Catcher kept only the mask
and position ids and breaks on transformers >= 4.45). ``record_inputs`` attaches statistics to the
inputs of linear layers for the duration of a ``with`` block, ONE statistic per distinct input
tensor (``shared_inputs``); ``run_layer`` pushes hidden states through one block in batches;
``stop_forward_at`` ends forward passes early at a module: it is the ONE way the library stops a
forward pass, with its own exception class ``StopForward`` (never a ValueError, which would also
swallow real errors; tests/test_calibration.py checks that no hook raises anything else). The
sequential protocol built on these hooks is ``sequential.py``. All hooks are removed in
``finally``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["CapturedInputs", "StopForward", "capture_layer_inputs", "record_inputs", "run_layer",
           "move_kwargs", "stop_forward_at"]


class StopForward(Exception):
    """Raised by ``stop_forward_at``'s hooks to end a forward pass; caught by its ``run`` only."""


class CapturedInputs(NamedTuple):
    """What the first decoder block received during calibration."""

    hidden: torch.Tensor  # (n_samples, seq_len, hidden_size) in the model dtype
    kwargs: dict          # its keyword arguments (use_cache=False; cache objects dropped)
    batch: int            # windows in the captured call: batch-dimension tensors in kwargs have it


@contextlib.contextmanager
def stop_forward_at(module: nn.Module, *, before: bool = False,
                    observe: Callable[..., None] | None = None
                    ) -> Iterator[Callable[..., bool]]:
    """Within the ``with`` block, every forward pass that reaches ``module`` ends there.

    Args:
        before: stop before ``module`` runs (then ``observe(args, kwargs)`` sees its inputs),
            else right after it (then ``observe(output)`` sees its output; forward hooks
            registered earlier still run).
    Yields:
        ``run(fn, *args, **kwargs)``: calls ``fn``, swallowing only this stop; True if stopped.
    """
    def stop_before(_module, args, kwargs):
        if observe is not None:
            observe(args, kwargs)
        raise StopForward

    def stop_after(_module, _inputs, output):
        if observe is not None:
            observe(output)
        raise StopForward

    def run(fn: Callable, *args, **kwargs) -> bool:
        try:
            fn(*args, **kwargs)
        except StopForward:
            return True
        return False

    handle = (module.register_forward_pre_hook(stop_before, with_kwargs=True) if before
              else module.register_forward_hook(stop_after))
    try:
        yield run
    finally:
        handle.remove()


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
                         store_device: torch.device | None = None) -> CapturedInputs:
    """Inputs of ``first_block`` for every calibration window, and its keyword arguments.

    Args:
        input_ids: (n_samples, seq_len) token ids.
        batch_size: windows per forward pass through the embeddings.
        store_device: where to keep the hidden states (default: where the block received them).
    Returns:
        CapturedInputs: hidden (n_samples, seq_len, hidden_size) in the model dtype, the block's
        kwargs as captured for the first batch (``use_cache``/cache objects dropped) and the
        size of that batch.
    """
    captured: list[torch.Tensor] = []
    layer_kwargs: dict = {}

    def observe(args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        captured.append(hidden.detach().to(store_device or hidden.device))
        if not layer_kwargs:
            layer_kwargs.update({k: v for k, v in kwargs.items()
                                 if k not in ("hidden_states", "past_key_values", "past_key_value",
                                              "layer_past")})

    device = next(model.parameters()).device
    with stop_forward_at(first_block, before=True, observe=observe) as run:
        for batch in input_ids.split(batch_size):
            run(model, batch.to(device), use_cache=False)
    if not captured:
        raise RuntimeError("the first decoder block was never called during the forward pass")
    layer_kwargs["use_cache"] = False
    return CapturedInputs(torch.cat(captured, dim=0), layer_kwargs, captured[0].shape[0])


@torch.no_grad()
def run_layer(block: nn.Module, hidden: torch.Tensor, layer_kwargs: dict, *, captured_batch: int,
              batch_size: int = 8, out: torch.Tensor | None = None,
              stop_at: nn.Module | None = None) -> torch.Tensor:
    """Push hidden (n, seq_len, d) through ``block`` in batches; returns the block outputs.

    ``layer_kwargs`` and ``captured_batch`` are ``CapturedInputs.kwargs`` / ``.batch``. The block
    runs on its own device; ``hidden`` and ``out`` may live elsewhere (e.g. on CPU). ``out`` may
    be a preallocated buffer of the same shape (it may not alias ``hidden``).
    ``stop_at``: a submodule at which every batch's pass ENDS, before it runs (pre-hooks
    registered earlier, such as ``record_inputs``', still see its input); the rows of ``out``
    of a batch that reached it are left unwritten. For passes run for input statistics only.
    """
    device = next(block.parameters()).device
    kwargs = move_kwargs(layer_kwargs, device)
    out = torch.empty_like(hidden) if out is None else out
    with (stop_forward_at(stop_at, before=True) if stop_at is not None
          else contextlib.nullcontext()):
        for start in range(0, hidden.shape[0], batch_size):
            chunk = hidden[start:start + batch_size].to(device)
            try:
                result = block(chunk, **_fit_batch(kwargs, captured_batch, chunk.shape[0]))
            except StopForward:
                continue  # reached stop_at: this batch ran for its statistics only
            result = result[0] if isinstance(result, (tuple, list)) else result
            out[start:start + chunk.shape[0]] = result.to(out.device)
    return out


@contextlib.contextmanager
def record_inputs(layers: dict[str, nn.Module], make_stats: Callable[[str, nn.Module], object],
                  *, share_inputs: bool = True,
                  call_log: list[str] | None = None) -> Iterator[dict[str, object]]:
    """Attach ``make_stats(name, layer)`` to the input of every layer while the block runs.

    Yields {name: stats}, filled as the layers run (layers that never ran get fresh stats on
    exit); each stats object gets ``add_batch(input)`` once per distinct input. With
    ``share_inputs``, layers that read the very same input tensor (LLaMA's q/k/v, gate/up) share
    ONE stats object, fed once (see ``_SharedInputs``). The inputs are read by forward PRE-hooks,
    before each layer runs, so a pass may end at a layer (``run_layer(stop_at=)``) once its input
    is recorded. ``call_log``, if given, gets every layer's name each time it is called, in call
    order. The hooks are removed on exit, also when the body raises.
    """
    tracker = _SharedInputs(layers, make_stats, share_inputs)
    handles = []

    def observe(name: str, inp: torch.Tensor) -> None:
        if call_log is not None:
            call_log.append(name)
        tracker.observe(name, inp)

    try:
        for name, layer in layers.items():
            handles.append(layer.register_forward_pre_hook(
                lambda module, args, n=name: observe(n, args[0])))
        yield tracker.stats
        tracker.finish()
    finally:
        for handle in handles:
            handle.remove()


def _input_key(tensor: torch.Tensor) -> tuple | None:
    """Equal keys for two tensors, the first held alive, mean the same unmodified data.

    ``_version`` counts in-place writes (shared by views); while the first tensor lives, no other
    storage can sit at its address. None (never shared) for inference-mode tensors, which keep
    no version counter.
    """
    if tensor.is_inference():
        return None
    return (tensor.data_ptr(), tensor.device, tensor.dtype, tuple(tensor.shape), tensor.stride(),
            tensor._version)


class _SharedInputs:
    """One statistic per distinct input: which layers read the same tensor, checked every call.

    A layer seen for the first time joins the group of a layer that was ALSO first seen in this
    forward call with the same input (so both statistics would be equal so far); otherwise it
    gets its own stats. On later calls the group's first layer (its owner) feeds the stats and
    holds the input until every member has been called with that same input; anything else
    (a member skipped, called first or with other data) raises: the statistics could not be
    shared, so calibrate with ``share_inputs=False``.
    NOTE: a layer's first input is held until its second call (so no other tensor can take its
    address while layers may still join): for the first batch of each block, about one input
    per distinct input stays alive a little longer than without sharing.
    """

    def __init__(self, layers: dict, make_stats: Callable, share: bool):
        self.layers, self.make_stats, self.share = layers, make_stats, share
        self.stats: dict[str, object] = {}
        self.owner: dict[str, str] = {}            # layer -> first layer of its group
        self.members: dict[str, list[str]] = {}    # owner -> the other layers of its group
        self.calls: dict[str, int] = {}            # owner -> forward calls seen
        self.pending: dict[str, tuple] = {}        # owner -> (key, input held, members to come)

    def observe(self, name: str, inp: torch.Tensor) -> None:
        if name not in self.owner:
            self._first_call(name, inp)
        elif self.owner[name] == name:
            self._owner_call(name, inp)
        else:
            self._member_call(name, inp)

    def _first_call(self, name: str, inp: torch.Tensor) -> None:
        key = _input_key(inp) if self.share else None
        for owner, (held_key, _, _) in self.pending.items():
            if key is not None and held_key == key and self.calls[owner] == 1:
                self.owner[name] = owner
                self.members[owner].append(name)
                self.stats[name] = self.stats[owner]
                return
        self.owner[name], self.members[name], self.calls[name] = name, [], 0
        self.stats[name] = self.make_stats(name, self.layers[name])
        self._owner_call(name, inp)

    def _owner_call(self, name: str, inp: torch.Tensor) -> None:
        missed = self.pending.get(name, (None, None, []))[2]
        if missed:
            self._fail(missed[0], name)
        self.calls[name] += 1
        self.stats[name].add_batch(inp.detach())
        if self.share:  # hold the input while a layer may still join or members must match
            held = inp if self.calls[name] == 1 or self.members[name] else None
            self.pending[name] = (_input_key(inp), held, list(self.members[name]))

    def _member_call(self, name: str, inp: torch.Tensor) -> None:
        owner = self.owner[name]
        key, _, to_come = self.pending[owner]
        if name not in to_come or _input_key(inp) != key:
            self._fail(name, owner)
        to_come.remove(name)
        if not to_come:  # release the held input
            self.pending[owner] = (key, None, to_come)

    def _fail(self, member: str, owner: str) -> None:
        raise RuntimeError(
            f"{member} and {owner} read the same input tensor in the first calibration batch but "
            f"not in every batch, so they cannot share input statistics; calibrate with "
            f"share_inputs=False")

    def finish(self) -> None:
        """After the forward passes: check no member missed the last call; stats for the rest."""
        for owner, (_, _, to_come) in self.pending.items():
            if to_come:
                self._fail(to_come[0], owner)
        self.pending.clear()
        for name, layer in self.layers.items():
            if name not in self.stats:
                self.stats[name] = self.make_stats(name, layer)
