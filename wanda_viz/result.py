"""``PruneResult``: what one pruning run produced, small enough to keep per user and to save.

Holds per-layer achieved and target sparsity, keep-masks (CPU bool, optional), the per-channel
input statistics of every pruned layer (the visualisations reuse them), SparseGPT reconstruction
losses and timings split as the Wanda paper measures them: score/mask/update time (``prune_s``)
apart from calibration forward passes (``forward_s``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

from .pruning.config import PruneConfig

__all__ = ["PruneResult"]


@dataclass
class PruneResult:
    """Outcome of ``prune_model``. Tensors are on CPU; the model itself is never stored."""

    config: PruneConfig
    calibration: dict | None = None               # source, n_samples, seq_len, seed
    model_name: str | None = None
    layer_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (out, in)
    target_sparsity: dict[str, float] = field(default_factory=dict)
    layer_sparsity: dict[str, float] = field(default_factory=dict)          # achieved
    input_sq_norm: dict[str, torch.Tensor] = field(default_factory=dict)   # (in,) float32
    keep_masks: dict[str, torch.Tensor] | None = None                      # (out, in) bool
    losses: dict[str, float] = field(default_factory=dict)                 # SparseGPT
    block_sparsity: list[float] = field(default_factory=list)              # OWL / per block
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def layer_names(self) -> list[str]:
        return list(self.layer_shapes)

    @property
    def overall_sparsity(self) -> float:
        """Pruned share of all prunable weights (weighted by layer size)."""
        sizes = {name: out * inp for name, (out, inp) in self.layer_shapes.items()}
        total = sum(sizes.values())
        if total == 0:
            return 0.0
        return sum(self.layer_sparsity[n] * sizes[n] for n in sizes) / total

    def summary(self) -> dict:
        """JSON-ready summary (no tensors)."""
        return {
            "model": self.model_name,
            "config": self.config.to_dict(),
            "label": self.config.label(),
            "comparison_group": self.config.comparison_group,
            "calibration": self.calibration,
            "overall_sparsity": self.overall_sparsity,
            "layer_sparsity": self.layer_sparsity,
            "target_sparsity": self.target_sparsity,
            "block_sparsity": self.block_sparsity,
            "losses": self.losses,
            "timings": self.timings,
        }

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.summary(), f, indent=2)
