"""Mask refinements on top of a base method (``PruneConfig.refine``): DSnoT.

DSnoT (zyxxmu/DSnoT ``prune_DSnoT``, ``--initial_method``) takes the base method's score as its
initial metric: |W| (magnitude), Wanda's, SparseGPT's saliency ``W^2 / diag(Hinv)^2`` on the dense
weight (no OBS update: the official code never updates weights), or any registered score (RIA).
The initial mask is per output row whatever the base method's own group; the refined mask only
zeroes weights. Layers named by ``skip_layer`` ("mlp" by default) keep the initial mask.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models import weight_matrix
from .dsnot import DSnoTInputs, dsnot_keep_mask, skips_refinement
from .masks import apply_keep_mask, check_nm
from .registry import get_method
from .scores import wanda_scores

__all__ = ["refine_shared_input_layers"]


@torch.no_grad()
def refine_shared_input_layers(layers: dict[str, nn.Module], stats, sparsity: float, config,
                               block_name: str) -> dict[str, tuple[torch.Tensor, None]]:
    """Prune layers that read one input (one stats object) with DSnoT; {name: (keep, None)}.

    Args:
        layers: qualified name -> layer, all inside the block ``block_name``.
        stats: ``CalibrationStats`` with ``moments`` (and the Hessian for a SparseGPT base).
    """
    if config.refine != "dsnot":
        raise ValueError(f"unknown refinement {config.refine!r}")
    if stats is None or stats.moments is None:
        raise ValueError("DSnoT needs the input moments (calibrate with moments=True)")
    base = get_method(config.method)
    pruned = {}
    for name, layer in layers.items():
        weight = weight_matrix(layer)  # (out, in) view, dense
        if config.nm is not None:
            check_nm(weight.shape[1], *config.nm)
        inputs = DSnoTInputs(weight, base.scores(weight, stats, config),
                             wanda_scores(weight, stats.input_sq_norm),
                             stats.moments.input_sum, stats.moments.input_var)
        relative = name[len(block_name) + 1:] if name.startswith(block_name + ".") else name
        keep_mask = dsnot_keep_mask(inputs, sparsity, config.nm, config.dsnot,
                                    refine=not skips_refinement(relative, config.dsnot))
        apply_keep_mask(layer, keep_mask)
        pruned[name] = (keep_mask, None)
    return pruned
