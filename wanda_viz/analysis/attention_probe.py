"""Attention probabilities and the output projection's input of every decoder block, generically.

Attention modules are found from transformers' own metadata: ``model._can_record_outputs
["attentions"]`` names the module class whose second output is what ``output_attentions=True``
returns (an ``OutputRecorder`` for GPT-2, whose ``layer_name`` tells self- from cross-attention),
falling back to the outermost module of a block whose class name ends in "Attention". The
probabilities exist only on the eager path, so ``eager_attention`` switches the model to it for
one pass and restores the previous implementation on exit, also on error.

The output projection (o_proj, dense, out_proj, c_proj) is the last prunable layer the attention
module calls; its input is the concatenation of the heads' outputs ``sum_j p_hqj v_hj``, (b, T,
H * d_head). ``record_attention`` hands both to a callback per block, so the caller keeps only
statistics, never the (b, H, T, T) tensors of every block.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..layers import find_decoder_layers, find_prunable_layers, weight_matrix

__all__ = ["AttentionSite", "AttentionCall", "find_attention_modules", "eager_attention",
           "record_attention", "cancel_at_blocks"]

EAGER = "eager"


@dataclass
class AttentionSite:
    """The self-attention module of one decoder block."""

    block_index: int
    name: str            # qualified, e.g. "model.layers.3.self_attn"
    module: nn.Module


@dataclass
class AttentionCall:
    """What one attention module saw in one forward call (tensors on the model's device).

    Attributes:
        probs: (b, H, T, T) attention probabilities (after softmax), query x key.
        proj_input: (b, T, H * d_head) input of the output projection.
        proj_weight: (hidden, H * d_head) the output projection's weight (out, in).
        proj_name: qualified name of the output projection.
    """

    block_index: int
    probs: torch.Tensor
    proj_input: torch.Tensor
    proj_weight: torch.Tensor
    proj_name: str


def _attention_target(model: nn.Module) -> tuple[type | None, str | None]:
    """(attention class, leaf name such as "attn" or None) from ``_can_record_outputs``."""
    recorder = (getattr(model, "_can_record_outputs", None) or {}).get("attentions")
    if recorder is None:
        return None, None
    target = getattr(recorder, "target_class", recorder)
    layer_name = getattr(recorder, "layer_name", None)
    return (target if isinstance(target, type) else None), \
        (layer_name.lstrip(".") if layer_name else None)


def _is_attention(name: str, module: nn.Module, target: type | None, leaf: str | None) -> bool:
    if target is not None:
        return isinstance(module, target) and (leaf is None or name.split(".")[-1] == leaf)
    return type(module).__name__.endswith("Attention")


def find_attention_modules(model: nn.Module) -> list[AttentionSite]:
    """One self-attention module per decoder block, in block order.

    Raises:
        ValueError: a block without a recognisable attention module.
    """
    prefix, blocks = find_decoder_layers(model)
    target, leaf = _attention_target(model)
    sites = []
    for index, block in enumerate(blocks):
        found = [(name, module) for name, module in block.named_modules()
                 if name and _is_attention(name, module, target, leaf)]
        if not found:
            raise ValueError(f"cannot find the attention module of {prefix}.{index} in "
                             f"{type(model).__name__}")
        name, module = found[0]  # outermost first (named_modules is pre-order)
        sites.append(AttentionSite(index, f"{prefix}.{index}.{name}", module))
    return sites


def _attn_implementation(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """The eager attention path (which returns probabilities) inside the ``with`` only."""
    previous = _attn_implementation(model)
    if previous == EAGER:
        yield
        return
    if not hasattr(model, "set_attn_implementation"):
        raise ValueError(f"{type(model).__name__} cannot switch to eager attention, which the "
                         "attention probabilities need")
    model.set_attn_implementation(EAGER)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


@contextlib.contextmanager
def record_attention(model: nn.Module,
                     on_call: Callable[[AttentionCall], None]
                     ) -> Iterator[tuple[list[AttentionSite], Callable[[], None]]]:
    """While inside, every attention call runs ``on_call`` with its probabilities and the input of
    its output projection. Needs the eager path (``eager_attention``); hooks removed on exit.

    Yields:
        (the attention sites, one per block; ``check()``: raises ValueError after a forward pass
        in which an attention module returned no probabilities. Hooks never raise: only
        ``calibration.StopForward`` may end a forward pass from a hook.)
    """
    sites = find_attention_modules(model)
    handles = []
    latest: dict[int, tuple[str, nn.Module, torch.Tensor]] = {}  # block -> last linear called

    def linear_hook(index: int, name: str):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor):
                latest[index] = (name, module, args[0])
        return hook

    missing: list[int] = []   # blocks whose attention returned no probabilities

    def attention_hook(index: int):
        def hook(module, args, output):  # never raises: the caller calls ``check``
            probs = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
            if probs is None:
                missing.append(index)
                return
            name, layer, proj_input = latest.pop(index)
            on_call(AttentionCall(index, probs, proj_input, weight_matrix(layer), name))
        return hook

    def check() -> None:
        if missing:
            raise ValueError(f"the attention modules of blocks {sorted(set(missing))} returned "
                             "no probabilities; is the model on the eager attention path?")

    try:
        for site in sites:
            for name, layer in find_prunable_layers(site.module, site.name).items():
                handles.append(layer.register_forward_pre_hook(linear_hook(site.block_index,
                                                                           name)))
            handles.append(site.module.register_forward_hook(attention_hook(site.block_index)))
        yield sites, check
    finally:
        for handle in handles:
            handle.remove()
        latest.clear()


@contextlib.contextmanager
def cancel_at_blocks(model: nn.Module, cancel: CancelToken | None) -> Iterator[None]:
    """While inside, every decoder block first checks ``cancel`` (raises ``Cancelled``): a long
    dense pass of the sinks analyses stops at the next block boundary."""
    if cancel is None:
        yield
        return
    _, blocks = find_decoder_layers(model)
    handles = [block.register_forward_pre_hook(lambda module, args: check_cancelled(cancel))
               for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
