"""Compact records of a pruned model: bit-packed keep-masks and the values of the kept weights.

A pruned variant is the dense model plus what differs from it. Magnitude and Wanda only zero
weights, so their keep-masks alone rebuild the pruned model; bit-packed they cost 1 bit per weight
instead of the 8 bits of a bool tensor. SparseGPT also updates the kept weights: ``KeptWeights``
stores exactly those values (``weight[keep_mask]``, in the model dtype), so together with the
packed mask it rebuilds the pruned weights bit for bit at ``(1 - sparsity)`` of a full copy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..layers import weight_matrix

__all__ = ["PackedMask", "pack_keep_masks", "KeptWeights", "apply_packed_masks", "values_nbytes"]


@dataclass(frozen=True)
class PackedMask:
    """A boolean keep-mask (out, in) stored as bits (``numpy.packbits``, row-major)."""

    bits: np.ndarray            # uint8, ceil(out * in / 8)
    shape: tuple[int, int]

    @classmethod
    def from_tensor(cls, keep_mask: torch.Tensor) -> PackedMask:
        flat = keep_mask.detach().to("cpu", torch.bool).reshape(-1).numpy()
        return cls(np.packbits(flat), tuple(keep_mask.shape))

    def to_tensor(self) -> torch.Tensor:
        count = self.shape[0] * self.shape[1]
        flat = np.unpackbits(self.bits, count=count).astype(bool)
        return torch.from_numpy(flat).reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)


def pack_keep_masks(keep_masks: dict[str, torch.Tensor]) -> dict[str, PackedMask]:
    """{layer name: PackedMask} for a ``PruneResult.keep_masks`` dict."""
    return {name: PackedMask.from_tensor(mask) for name, mask in keep_masks.items()}


def _modules(model: nn.Module, names) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise KeyError(f"the model has no layer(s) {missing[:3]}: it is not the pruned model")
    return {name: modules[name] for name in names}


@torch.no_grad()
def apply_packed_masks(model: nn.Module, masks: dict[str, PackedMask]) -> None:
    """Zero the pruned weights of the (dense) ``model`` in place."""
    for name, layer in _modules(model, masks).items():
        weight = weight_matrix(layer)
        weight.masked_fill_(~masks[name].to_tensor().to(weight.device), 0)


def values_nbytes(values: dict[str, torch.Tensor]) -> int:
    """Bytes held by {layer name: kept values}."""
    return sum(v.numel() * v.element_size() for v in values.values())


@dataclass
class KeptWeights:
    """The kept values of every pruned layer, for methods that update weights (SparseGPT).

    ``values[name]`` is 1-D: ``weight_matrix(layer)[keep_mask]`` in row-major order, on the CPU, in
    the model dtype. ``apply`` writes them back and zeros everything else: bit-identical weights.
    """

    masks: dict[str, PackedMask]
    values: dict[str, torch.Tensor]

    @classmethod
    @torch.no_grad()
    def capture(cls, model: nn.Module, keep_masks: dict[str, torch.Tensor]) -> KeptWeights:
        layers = _modules(model, keep_masks)
        values = {name: weight_matrix(layer)[keep_masks[name].to(layer.weight.device)]
                  .detach().to("cpu", copy=True) for name, layer in layers.items()}
        return cls(pack_keep_masks(keep_masks), values)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        for name, layer in _modules(model, self.masks).items():
            weight = weight_matrix(layer)  # (out, in) view; writes go through to the parameter
            keep_mask = self.masks[name].to_tensor().to(weight.device)
            weight.zero_()
            weight[keep_mask] = self.values[name].to(weight.device, weight.dtype)

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.masks.values()) + values_nbytes(self.values)
