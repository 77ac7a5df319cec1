"""Magnitudes of the hidden states that ENTER the linear layers (LLM.int8's X in X W).

Dettmers et al. (arXiv 2208.07339) count outlier features in the inputs of the attention
projections and of the FFN's first layer: in pre-norm transformers these are the outputs of the
block's normalisation modules. Found generically: a forward hook on every module of a block whose
class name contains "Norm" keeps its latest output, and a forward pre-hook on every prunable
layer checks whether its input IS one of them (same tensor, or same storage and shape). Each such
normalisation output is one "site" (LLaMA: attention input read by q/k/v_proj, FFN input read by
gate/up_proj; Phi: one shared input). Norms that feed no linear layer (q/k norms inside attention,
post-norms feeding the residual) are not sites. The residual stream is measured elsewhere.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers import find_decoder_layers, find_prunable_layers

__all__ = ["LinearInputSite", "record_linear_inputs"]


@dataclass
class LinearInputSite:
    """Per-channel statistics of one normalisation output that feeds linear layers."""

    name: str                       # the norm module, e.g. "model.layers.3.input_layernorm"
    block_index: int
    threshold: float
    readers: list[str] = field(default_factory=list)   # linear layers reading it
    channel_max: torch.Tensor | None = None            # (d,) max |x| over tokens
    count: torch.Tensor | None = None                  # (d,) tokens with |x| >= threshold
    n_positions: int = 0

    @property
    def share(self) -> torch.Tensor:
        """(d,) share of positions with |x| >= threshold."""
        return self.count / max(self.n_positions, 1)

    def add(self, x: torch.Tensor) -> None:
        magnitude = x.detach().float().abs().reshape(-1, x.shape[-1])  # (tokens, d)
        peak = magnitude.amax(dim=0).cpu()
        hits = (magnitude >= self.threshold).sum(dim=0).cpu().float()
        self.channel_max = peak if self.channel_max is None else torch.maximum(self.channel_max,
                                                                               peak)
        self.count = hits if self.count is None else self.count + hits
        self.n_positions += magnitude.shape[0]


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape)


@contextlib.contextmanager
def record_linear_inputs(model: nn.Module, threshold: float) -> Iterator[list[LinearInputSite]]:
    """While the block runs, accumulate statistics of every norm output that feeds a linear layer.

    Yields the list of sites (filled as blocks run; ordered by block, then first use). A norm
    output's statistics are only counted from the first call on which a linear layer read it,
    so the dense pass must read each norm on every call (true for standard blocks).
    """
    prefix, blocks = find_decoder_layers(model)
    sites: dict[str, LinearInputSite] = {}
    latest: dict[str, torch.Tensor] = {}   # norm name -> its output in the current call
    current = [-1]                           # block whose norm outputs ``latest`` holds
    handles = []

    def norm_hook(name, index):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if current[0] != index:  # hold only this block's outputs (a few MB), not all blocks'
                latest.clear()
                current[0] = index
            latest[name] = out
            if name in sites:
                sites[name].add(out)
        return hook

    def linear_hook(layer_name, index):
        def hook(module, args):
            x = args[0] if args else None
            if not isinstance(x, torch.Tensor):
                return
            for name, out in latest.items():
                if _same_tensor(x, out):
                    if name not in sites:  # first sighting: count this call's output now
                        sites[name] = LinearInputSite(name, index, threshold)
                        sites[name].add(out)
                    if layer_name not in sites[name].readers:
                        sites[name].readers.append(layer_name)
                    return
        return hook

    ordered: list[LinearInputSite] = []
    try:
        for index, block in enumerate(blocks):
            block_name = f"{prefix}.{index}"
            for name, module in block.named_modules():
                if name and _is_norm(module):
                    handles.append(module.register_forward_hook(
                        norm_hook(f"{block_name}.{name}", index)))
            for layer_name, layer in find_prunable_layers(block, block_name).items():
                handles.append(layer.register_forward_pre_hook(linear_hook(layer_name, index)))
        yield ordered
    finally:
        for handle in handles:
            handle.remove()
        latest.clear()
        ordered.extend(sorted(sites.values(), key=lambda s: s.block_index))
