"""DSnoT: training-free prune-and-grow refinement of a keep-mask (Zhang et al., ICLR 2024, "Dynamic
Sparse No Training: Training-Free Fine-tuning for Sparse LLMs").

Follows zyxxmu/DSnoT lib/prune.py ``prune_DSnoT`` (commit 4c029df) rule for rule, on the whole
matrix at once (one step per cycle for every row together, as the official code):
  * ``dsnot_metric = W * input_sum`` (W_ij times the mean over sequences of sum_t x_tj): a pruned
    weight's expected contribution to output i. A row's reconstruction error is the sum of it
    over its pruned weights.
  * initial mask: per row, the k = int(in * sparsity) lowest initial scores (stable sort), or for
    N:M the N lowest of each M (``torch.sort``; ``torch.topk`` in skipped layers).
  * each cycle, per row: grow the pruned weight whose ``dsnot_metric / var^p`` is largest (error
    > 0) or smallest (error <= 0); prune a kept weight: unstructured, the least Wanda-important one
    with a negative (error >= 0) or positive (error < 0) metric; N:M, the kept weight with the
    lowest initial score in the grown weight's group of M. A row stops for good once |error| <=
    ``update_threshold`` (N:M: also when the swap would flip the error's initial sign); at most
    ``max_cycle_time`` cycles. Candidate pointers advance every cycle, for stopped rows too.
  * weights are never updated; only the mask changes.
Official quirks kept on purpose: kept weights with a zero metric fill the middle of the pruning
order with position 0 (``reorder_indices``); a pointer that walks past the pruned weights of one
sign can "grow" a kept weight, so a row can end up one weight sparser.
The registry entry (``REFINEMENTS["dsnot"]``) calls ``refine_keep_mask(RefineInput)``: the initial
metric is the base method's score (``--initial_method``); the initial mask is DSnoT's own (per row,
or N:M), whatever the base's comparison group, as in the official code.
NOTE (deviation): where a candidate pointer would leave its list (a row of fewer than about
``max_cycle_time`` candidates), the official ``gather`` raises; here the refinement stops before
that cycle (logged). Whenever the official code runs, the masks are the same.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .masks import check_nm, lowest_k_mask
from .scores import wanda_scores

__all__ = ["DSNOT_SKIP_LAYERS", "STATS_INPUT_MOMENTS", "DSnoTSettings", "DSnoTInputs",
           "block_relative_name", "dsnot_keep_mask", "refine_keep_mask", "reorder_indices",
           "skips_refinement"]

logger = logging.getLogger(__name__)

DSNOT_SKIP_LAYERS = ("mlp", "self_attn", "no_skip")
STATS_INPUT_MOMENTS = "input_moments"  # stats.STATISTICS name of InputMomentStats


@dataclass(frozen=True)
class DSnoTSettings:
    """DSnoT's settings (``PruneConfig.refine_settings``), defaults of zyxxmu/DSnoT main.py @
    4c029df.

    Attributes:
        max_cycle_time: prune-and-grow swaps per row at most.
        update_threshold: a row stops once |its expected reconstruction error| <= this (absolute,
            so it scales with the calibration seq_len: the error sums over tokens).
        pow_of_var_regrowing: the growing criterion divides by var^this (0: no division).
        skip_layer: "mlp" (default: MLP layers keep the initial mask), "self_attn" or "no_skip".
        without_same_sign: True (the reference default; its argparse ``type=bool`` cannot turn it
            off from the command line): unstructured swaps do not require the error to keep its
            sign. The reference's N:M branch always requires it.
    The reference's ``pow_of_var_pruning`` is parsed and logged but never used; it is not kept.
    """

    max_cycle_time: int = 50
    update_threshold: float = 0.1
    pow_of_var_regrowing: float = 1.0
    skip_layer: str = "mlp"
    without_same_sign: bool = True

    def __post_init__(self) -> None:
        if self.max_cycle_time < 0:
            raise ValueError(f"dsnot max_cycle_time must be >= 0, got {self.max_cycle_time}")
        if self.skip_layer not in DSNOT_SKIP_LAYERS:
            raise ValueError(f"dsnot skip_layer must be one of {', '.join(DSNOT_SKIP_LAYERS)}, "
                             f"got {self.skip_layer!r}")


@dataclass
class DSnoTInputs:
    """One layer's tensors; every one (out, in) or (in,), float32.

    weight: the dense weight. initial: the base method's score (higher = keep). wanda: |W| *
    sqrt(input_sq_norm) (orders the pruning candidates). input_sum / input_var: the moments of
    ``stats.InputMomentStats``.
    """

    weight: torch.Tensor
    initial: torch.Tensor
    wanda: torch.Tensor
    input_sum: torch.Tensor
    input_var: torch.Tensor


def block_relative_name(name: str) -> str:
    """"model.layers.3.mlp.up_proj" -> "mlp.up_proj": the part after the last numeric part (the
    decoder block's index); the name itself when it has none."""
    parts = name.split(".")
    digits = [i for i, part in enumerate(parts) if part.isdigit()]
    return ".".join(parts[digits[-1] + 1:]) if digits else name


def skips_refinement(relative_name: str, settings: DSnoTSettings) -> bool:
    """Whether a layer keeps its initial mask: ``skip_layer`` names its sub-module.

    The official test is ``name.split(".")[0] == skip_layer`` on LLaMA names ("mlp.up_proj",
    "self_attn.q_proj"). Generically (OPT's fc1, GPT-2's "attn.c_attn" ...): a layer belongs to
    "self_attn" when the first part of its name contains "attn" or "attention", else to "mlp"
    (the official OPT variant's rule); the same answers on LLaMA names.
    """
    if settings.skip_layer == "no_skip":
        return False
    first = relative_name.split(".")[0].lower()
    part = "self_attn" if ("attn" in first or "attention" in first) else "mlp"
    return part == settings.skip_layer


def reorder_indices(values: torch.Tensor) -> torch.Tensor:
    """Official ``return_reorder_indice`` without its sorts: per row, the positions of the
    negative values (ascending), then 0 for every zero (or NaN) value, then the positions of the
    positive values (descending). values: (rows, L); returns int64 (rows, L)."""
    rows, length = values.shape
    negative, positive = values < 0, values > 0
    # output slot: the k-th negative goes to k; a positive with c positives up to and including
    # it goes to L - c (the last positive first); zeros to a spare column L, dropped below
    slot = torch.where(negative, negative.cumsum(1) - 1,
                       torch.where(positive, length - positive.cumsum(1), length))
    position = torch.arange(length, device=values.device).expand(rows, length)
    order = torch.zeros((rows, length + 1), dtype=torch.long, device=values.device)
    return order.scatter_(1, slot, position)[:, :length]


def _grow_metric(metric: torch.Tensor, prune: torch.Tensor, inputs: DSnoTInputs,
                 settings: DSnoTSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(error (out, 1), growing order (out, in)): the pruned weights' metric summed per row, and
    the indices that sort ``metric / var^p`` (kept weights count as 0) ascending, stably."""
    grow = metric.masked_fill(~prune, 0)
    error = torch.sum(grow, dim=1, keepdim=True)
    if settings.pow_of_var_regrowing:
        grow /= torch.pow(inputs.input_var.reshape((1, -1)), settings.pow_of_var_regrowing)
    return error, torch.sort(grow, dim=1, stable=True)[1]


def _pointer(pointers: torch.Tensor, side: torch.Tensor, length: int) -> torch.Tensor | None:
    """The candidate position of each row on ``side`` (0: from the start, 1: from the end),
    advanced in place; None where one would fall outside the list (the official code raises)."""
    at = pointers.gather(1, side)
    if bool(((at < 0) | (at >= length)).any()):
        return None
    pointers.scatter_(1, side, at + 1 - 2 * side)
    return at


def _new_pointers(rows: int, length: int, device) -> torch.Tensor:
    pointers = torch.zeros((rows, 2), dtype=torch.long, device=device)
    pointers[:, 1] = length - 1
    return pointers


def _stop(cycle: int, settings: DSnoTSettings) -> None:
    logger.warning("DSnoT: a candidate list ran out after %d of %d cycles (a layer too narrow "
                   "for max_cycle_time; the official code raises here); refinement stopped",
                   cycle, settings.max_cycle_time)


def _swap(prune, active, error, prune_idx, prune_val, grow_idx, grow_val) -> None:
    """Apply one cycle's decision: active rows prune one weight and grow another."""
    prune.scatter_(1, prune_idx, active)
    prune.scatter_(1, grow_idx, ~active)
    error += torch.where(active, prune_val, torch.zeros_like(prune_val))
    error -= torch.where(active, grow_val, torch.zeros_like(grow_val))


def _kept_by_wanda(wanda: torch.Tensor, prune: torch.Tensor, n_kept: int) -> torch.Tensor:
    """(rows, n_kept): each row's kept columns by ascending Wanda score, ties by column: the
    official stable sort of all scores with the pruned ones set to inf, first n_kept, computed
    on the kept half only (the same whenever kept scores are finite; else the full sort)."""
    kept = (~prune).nonzero()[:, 1].reshape(prune.shape[0], n_kept)  # columns ascending
    scores = wanda.gather(1, kept)
    if not bool(torch.isfinite(scores).all()):
        return torch.sort(wanda.masked_fill(prune, float("inf")), dim=1, stable=True)[1][
            :, :n_kept]
    return kept.gather(1, torch.sort(scores, dim=1, stable=True)[1])


def _refine_unstructured(prune: torch.Tensor, inputs: DSnoTInputs, metric: torch.Tensor,
                         n_kept: int, settings: DSnoTSettings) -> None:
    rows, columns = prune.shape
    error, grow_order = _grow_metric(metric, prune, inputs, settings)
    init_sign = torch.sign(error)
    kept_order = _kept_by_wanda(inputs.wanda, prune, n_kept)  # least important first
    prune_order = kept_order.gather(1, reorder_indices(metric.gather(1, kept_order)))
    grow_ptr = _new_pointers(rows, columns, prune.device)
    prune_ptr = _new_pointers(rows, n_kept, prune.device)
    active = torch.ones_like(error, dtype=torch.bool)
    for cycle in range(settings.max_cycle_time):
        if not bool(active.any()):
            break
        grow_at = _pointer(grow_ptr, (error > 0).long(), columns)
        prune_at = _pointer(prune_ptr, (error < 0).long(), n_kept) if grow_at is not None else None
        if prune_at is None:
            return _stop(cycle, settings)
        grow_idx, prune_idx = grow_order.gather(1, grow_at), prune_order.gather(1, prune_at)
        grow_val, prune_val = metric.gather(1, grow_idx), metric.gather(1, prune_idx)
        active = active & (abs(error) > settings.update_threshold)
        if not settings.without_same_sign:
            active &= init_sign == torch.sign(error + prune_val - grow_val)
        _swap(prune, active, error, prune_idx, prune_val, grow_idx, grow_val)


def _refine_nm(prune: torch.Tensor, inputs: DSnoTInputs, metric: torch.Tensor, m: int,
               settings: DSnoTSettings) -> None:
    rows, columns = prune.shape
    error, grow_order = _grow_metric(metric, prune, inputs, settings)
    init_sign = torch.sign(error)
    initial = inputs.initial.masked_fill(prune, float("inf"))
    pruned_value = torch.max(initial, dim=1, keepdim=True)[0] + 1  # inf, as officially
    grow_ptr = _new_pointers(rows, columns, prune.device)
    group_offsets = torch.arange(m, device=prune.device).reshape(1, -1)
    active = torch.ones_like(error, dtype=torch.bool)
    for cycle in range(settings.max_cycle_time):
        if not bool(active.any()):
            break
        grow_at = _pointer(grow_ptr, (error > 0).long(), columns)
        if grow_at is None:
            return _stop(cycle, settings)
        grow_idx = grow_order.gather(1, grow_at)
        grow_val = metric.gather(1, grow_idx)
        start = grow_idx - grow_idx % m
        prune_idx = torch.topk(initial.gather(1, start + group_offsets), 1, dim=1,
                               largest=False)[1] + start
        prune_val = metric.gather(1, prune_idx)
        active = (active & (init_sign == torch.sign(error + prune_val - grow_val))
                  & (abs(error) > settings.update_threshold))
        initial.scatter_(1, prune_idx, pruned_value)
        _swap(prune, active, error, prune_idx, prune_val, grow_idx, grow_val)


def _initial_prune_mask(initial: torch.Tensor, sparsity: float, nm: tuple[int, int] | None,
                        refine: bool) -> torch.Tensor:
    """The official initial mask, True = pruned."""
    rows, columns = initial.shape
    prune = torch.zeros(initial.shape, dtype=torch.bool, device=initial.device)
    if nm is None:  # the first k of a stable sort per row (lowest_k_mask: the same, faster)
        return lowest_k_mask(initial, int(columns * sparsity), dim=1)
    n, m = nm
    grouped = initial.reshape(rows, columns // m, m)
    lowest = (torch.sort(grouped, dim=-1)[1] if refine  # the refined branch sorts ...
              else torch.topk(grouped, n, dim=-1, largest=False)[1])  # ... the skipped, topk
    return prune.view(rows, columns // m, m).scatter_(-1, lowest[..., :n], True).view(rows, -1)


@torch.no_grad()
def dsnot_keep_mask(inputs: DSnoTInputs, sparsity: float, nm: tuple[int, int] | None,
                    settings: DSnoTSettings, *, refine: bool = True) -> torch.Tensor:
    """DSnoT's keep-mask (out, in), True = keep: the initial mask, refined unless ``refine`` is
    False (a skipped layer, see ``skips_refinement``)."""
    columns = inputs.initial.shape[1]
    n_pruned = int(columns * sparsity) if nm is None else nm[0]
    prune = _initial_prune_mask(inputs.initial, sparsity, nm, refine)
    if refine and n_pruned > 0:  # nothing to swap at sparsity 0 (officially never run)
        metric = inputs.weight.float() * inputs.input_sum.reshape((1, -1))
        if nm is None:
            _refine_unstructured(prune, inputs, metric, columns - n_pruned, settings)
        else:
            _refine_nm(prune, inputs, metric, nm[1], settings)
    return ~prune


@torch.no_grad()
def refine_keep_mask(layer) -> torch.Tensor:
    """The ``RefinementSpec.refine`` of DSnoT: ``layer`` is a ``registry.RefineInput``.

    The base's ``scores`` are the initial metric; its ``keep_mask`` is not used (DSnoT builds
    its own per-row or N:M initial mask, as the official code does for every initial method).
    ``skip_layer`` reads the layer's name inside its block; a layer without a name is refined.
    """
    if layer.config.group not in (None, "row") or layer.config.wanda_variant:
        raise ValueError("DSnoT refines a per-row initial mask (its official rule for every "
                         f"initial method); group {layer.config.group!r} and the Wanda variant "
                         "do not apply")
    moments = layer.stats.get(STATS_INPUT_MOMENTS) if layer.stats is not None else None
    if moments is None:
        raise ValueError("DSnoT needs the layer's input moments (statistic 'input_moments')")
    nm = layer.config.nm
    if nm is not None:
        check_nm(layer.weight.shape[1], *nm)
    inputs = DSnoTInputs(layer.weight, layer.scores,
                         wanda_scores(layer.weight, layer.stats.input_sq_norm),
                         moments.input_sum, moments.input_var)
    settings = layer.config.refine_settings
    skip = bool(layer.name) and skips_refinement(block_relative_name(layer.name), settings)
    return dsnot_keep_mask(inputs, layer.sparsity, nm, settings, refine=not skip)
