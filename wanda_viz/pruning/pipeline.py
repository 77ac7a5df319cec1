"""The one pruning pipeline: sequential statistics -> scores -> keep-masks -> (refine) -> update.

``prune_model`` walks the decoder blocks with the sequential protocol (``sequential.py``): for
block i, the statistics its method (and refinement) needs are recorded, every prunable layer is
pruned through its registry entry, and the block runs again so that its PRUNED outputs become the
inputs of block i+1. One loop serves every method, structure and architecture. A ``CancelToken``
is checked at every block boundary; on ``Cancelled`` the model is left part-pruned and the caller
restores the dense weights (its ``WeightBackup``), as every job does in ``finally``.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import nn

from ..block_pass import sync_device
from ..cancel import CancelToken, check_cancelled
from ..layers import find_decoder_layers, find_prunable_layers, model_context_length, \
    weight_matrix
from ..result import PruneResult
from ..sequential import BlockStep, calibrate_blocks
from ..stats import CalibrationStats
from .config import PruneConfig
from .masks import (achieved_sparsity, apply_keep_mask, block_keep_mask, nm_keep_mask,
                    topk_keep_mask, wanda_variant_keep_mask)
from .owl import outlier_ratio, owl_block_sparsities
from .registry import RefineInput
from .scores import wanda_scores

__all__ = ["compute_keep_mask", "prune_layer", "prune_shared_input_layers", "prune_model",
           "compute_owl_sparsities"]

logger = logging.getLogger(__name__)


def compute_keep_mask(scores: torch.Tensor, sparsity: float, config: PruneConfig) -> torch.Tensor:
    """Keep-mask from scores under the config's structure and comparison group.

    "block" (SparseGPT's group) takes its width from the method's settings (``block_size``).
    """
    if config.nm is not None:
        return nm_keep_mask(scores, *config.nm)
    if config.wanda_variant:
        return wanda_variant_keep_mask(scores, sparsity)[0]
    if config.comparison_group == "block":
        return block_keep_mask(scores, sparsity, config.settings.block_size)
    return topk_keep_mask(scores, sparsity, config.comparison_group)


@torch.no_grad()
def prune_layer(layer: nn.Module, stats: CalibrationStats | None, sparsity: float,
                config: PruneConfig, *, name: str = "") -> tuple[torch.Tensor, float | None]:
    """Prune one layer in place; returns (keep_mask (out, in) bool, SparseGPT loss or None).

    A method that updates weights runs its registry ``prune`` kernel; the others (and every
    refined config) score, choose the mask, refine it (``config.refine``) and zero the rest.
    """
    weight = weight_matrix(layer)  # (out, in) view of the parameter
    method = config.spec
    if config.updates_weights:
        ((new_weight, keep_mask, loss),) = method.prune([weight], stats, sparsity, config)
        weight.copy_(new_weight.to(weight.dtype))
        return keep_mask, loss
    scores = method.score(weight, stats, config.settings)
    keep_mask = compute_keep_mask(scores, sparsity, config)
    if config.refinement is not None:
        keep_mask = config.refinement.refine(RefineInput(
            name=name, weight=weight, scores=scores, keep_mask=keep_mask, stats=stats,
            sparsity=sparsity, config=config))
    apply_keep_mask(layer, keep_mask)
    return keep_mask, None


@torch.no_grad()
def prune_shared_input_layers(layers: dict[str, nn.Module], stats: CalibrationStats | None,
                              sparsity: float, config: PruneConfig
                              ) -> dict[str, tuple[torch.Tensor, float | None]]:
    """Prune layers that read the same input (one stats object) in place; {name: (keep, loss)}.

    A method that updates weights (SparseGPT) prunes them in ONE call of its registry ``prune``
    (one OBS pass over their stacked rows), bit for bit what ``prune_layer`` gives each layer
    alone; the others score, mask and zero layer by layer.
    """
    if not config.updates_weights:
        return {name: prune_layer(layer, stats, sparsity, config, name=name)
                for name, layer in layers.items()}
    weights = [weight_matrix(layer) for layer in layers.values()]  # (out, in) views
    pruned = config.spec.prune(weights, stats, sparsity, config)
    for weight, (new_weight, _, _) in zip(weights, pruned):
        weight.copy_(new_weight.to(weight.dtype))
    return {name: (keep_mask, loss) for name, (_, keep_mask, loss) in zip(layers, pruned)}


def compute_owl_sparsities(model: nn.Module, calib_ids: torch.Tensor, config: PruneConfig,
                           timings: dict | None = None,
                           cancel: CancelToken | None = None) -> list[float]:
    """OWL per-block sparsities from a dense sequential pass (Wanda scores' outlier ratios)."""
    ratios = []
    for step in calibrate_blocks(model, calib_ids, batch_size=config.batch_size,
                                 offload=config.offload, exec_device=config.exec_device,
                                 timings=timings, cancel=cancel, desc="OWL outlier ratios"):
        scores = [wanda_scores(weight_matrix(layer), step.stats[name].input_sq_norm)
                  for name, layer in step.layers.items()]
        ratios.append(outlier_ratio(scores, config.owl_m))
    sparsities = owl_block_sparsities(ratios, config.sparsity, config.owl_lambda)
    logger.info("OWL outlier ratios %s -> block sparsities %s", ratios, sparsities)
    return sparsities


def _check_calib_ids(model: nn.Module, calib_ids: torch.Tensor | None) -> None:
    if calib_ids is None:
        raise ValueError("this method needs calibration data: pass calib_ids (n_samples, seq_len)")
    if calib_ids.dim() != 2 or calib_ids.dtype not in (torch.long, torch.int):
        raise ValueError(f"calib_ids must be integer token ids (n_samples, seq_len), got "
                         f"{tuple(calib_ids.shape)} {calib_ids.dtype}")
    context = model_context_length(model)
    if context is not None and calib_ids.shape[1] > context:
        raise ValueError(f"calibration seq_len {calib_ids.shape[1]} is longer than the model "
                         f"allows ({context} tokens)")


def _blocks_without_calibration(model: nn.Module,
                                cancel: CancelToken | None) -> Iterator[BlockStep]:
    prefix, blocks = find_decoder_layers(model)
    for index, block in enumerate(blocks):
        check_cancelled(cancel)
        name = f"{prefix}.{index}"
        yield BlockStep(index, name, block, find_prunable_layers(block, name), {},
                        index == len(blocks) - 1)


def prune_model(model: nn.Module, calib_ids: torch.Tensor | None = None,
                config: PruneConfig | None = None, *, calibration: dict | None = None,
                model_name: str | None = None, cancel: CancelToken | None = None) -> PruneResult:
    """Prune every prunable layer of every decoder block of ``model`` in place.

    Args:
        model: a causal LM (see ``load_model``). Keep a ``WeightBackup`` to go back to dense.
        calib_ids: (n_samples, seq_len) token ids; not needed for plain magnitude pruning.
        config: method, sparsity, structure ... (default: Wanda, 50%, unstructured).
        calibration: description of the calibration data, stored in the result.
        cancel: checked at every decoder-block boundary (``Cancelled`` leaves the model
            part-pruned: restore it from your ``WeightBackup``).
    Returns:
        PruneResult with achieved sparsity per layer, keep-masks, input norms and timings.
    """
    config = config or PruneConfig()
    if config.needs_calibration:
        _check_calib_ids(model, calib_ids)
    timings: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    result = PruneResult(config, calibration, model_name,
                         keep_masks={} if config.store_masks else None)
    block_targets = (compute_owl_sparsities(model, calib_ids, config, timings, cancel)
                     if config.owl else None)
    if block_targets is not None:
        timings["owl_s"] = time.perf_counter() - start
    # dense_outputs=False: every step but the last recomputes its outputs after pruning below.
    steps = (calibrate_blocks(model, calib_ids, statistics=config.statistics,
                              batch_size=config.batch_size, offload=config.offload,
                              exec_device=config.exec_device, dense_outputs=False,
                              timings=timings, cancel=cancel, desc=f"pruning ({config.label()})")
             if config.needs_calibration else _blocks_without_calibration(model, cancel))
    for step in steps:
        sparsity = block_targets[step.index] if block_targets else config.sparsity
        result.block_sparsity.append(sparsity)
        _prune_block(step, sparsity, config, result, timings)
        if not step.last and config.needs_calibration:  # the last block's outputs feed nothing
            step.recompute_outputs()
    timings["total_s"] = time.perf_counter() - start
    result.timings = dict(timings)
    return result


def _input_groups(step: BlockStep) -> list[list[str]]:
    """The block's layer names grouped by shared stats (same input), in layer order."""
    groups: dict[object, list[str]] = {}
    for name in step.layers:
        stats = step.stats.get(name)
        groups.setdefault(id(stats) if stats is not None else name, []).append(name)
    return list(groups.values())


def _prune_block(step: BlockStep, sparsity: float, config: PruneConfig, result: PruneResult,
                 timings: dict) -> None:
    done: dict[str, tuple] = {}  # name -> what the result records; filled in layer order below
    for group in _input_groups(step):
        layers = {name: step.layers[name] for name in group}
        stats = step.stats.get(group[0])
        device = layers[group[0]].weight.device
        start = time.perf_counter()
        pruned = prune_shared_input_layers(layers, stats, sparsity, config)
        sync_device(device)
        timings["prune_s"] += time.perf_counter() - start
        norm = stats.input_sq_norm.cpu() if stats is not None else None
        for name in group:
            keep_mask, loss = pruned[name]
            done[name] = (tuple(keep_mask.shape), achieved_sparsity(keep_mask), loss, norm,
                          keep_mask.cpu() if result.keep_masks is not None else None)
            step.stats.pop(name, None)  # free the Hessian before the next group
    for name in step.layers:
        shape, achieved, loss, norm, keep_mask = done[name]
        result.layer_shapes[name] = shape
        result.target_sparsity[name] = sparsity
        result.layer_sparsity[name] = achieved
        if norm is not None:
            result.input_sq_norm[name] = norm
        if loss is not None:
            result.losses[name] = loss
        if keep_mask is not None:
            result.keep_masks[name] = keep_mask
