"""The method registry: every pruning method in one entry, and the choice lists derived from it.

An entry says what the method needs and how it scores: its score function (higher = keep), the
calibration statistics it reads (none, the input norm ``||X_j||^2`` or SparseGPT's Hessian
``2/n X X^T``), its reference comparison group and, for methods that also update the kept weights
(SparseGPT's OBS step), the kernel that prunes a whole layer. ``prune_layer``, the score analysis,
``PruneConfig`` validation, the CLI and the dashboard all read it: adding a method is one entry.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..data import CALIB_SOURCES, EVAL_SOURCES
from .ria import reference_threshold_keep_mask, relative_importance, ria_scores
from .scores import magnitude_scores, wanda_scores
from .sparsegpt import sparsegpt_prune_group, sparsegpt_saliency

__all__ = ["STATS_NONE", "STATS_INPUT_NORM", "STATS_HESSIAN", "MethodSpec", "METHODS",
           "METHOD_NAMES", "ALL_METHOD_NAMES", "GROUPS", "STRUCTURES", "CALIB_SOURCES",
           "EVAL_SOURCES", "get_method", "needs_calibration", "needs_hessian"]

STATS_NONE, STATS_INPUT_NORM, STATS_HESSIAN = "none", "input_norm", "hessian"
GROUPS = ("row", "layer", "input")               # comparison groups a score-and-mask method takes
STRUCTURES = ("unstructured", "2:4", "4:8")      # offered in the UI; any N:M works in the library


@dataclass(frozen=True)
class MethodSpec:
    """One pruning method.

    Attributes:
        name: the method's key ("wanda").
        score: ``score(weight (out, in), stats, percdamp) -> (out, in) float32`` (higher = keep).
        stats: the calibration statistic it needs: STATS_NONE, STATS_INPUT_NORM, STATS_HESSIAN.
        default_group: its reference comparison group ("row", "layer" or SparseGPT's "block").
        prune: for methods that also update the kept weights, ``prune(weights, stats, sparsity,
            config) -> [(new weight, keep_mask, loss), ...]`` for one or more (out, in) weights
            that read the same input (one ``stats``); None = score, mask and zero.
        group_note: why ``group`` cannot be chosen (None = it can be).
        configured_score: ``score(weight, stats, config)`` for a method with its own settings
            (RIA's exponent ``config.ria.a``); None = ``score`` with ``config.percdamp``.
        layer_mask: the method's own rule for the "layer" group, ``(scores, sparsity) ->
            keep_mask`` (RIA's official ``<=`` threshold); None = exactly k by index.
    """

    name: str
    score: Callable
    stats: str
    default_group: str
    prune: Callable | None = None
    group_note: str | None = None
    configured_score: Callable | None = None
    layer_mask: Callable | None = None

    def scores(self, weight: torch.Tensor, stats, config) -> torch.Tensor:
        """The method's scores of one (out, in) weight under ``config`` (higher = keep)."""
        if self.configured_score is not None:
            return self.configured_score(weight, stats, config)
        return self.score(weight, stats, config.percdamp)

    @property
    def needs_calibration(self) -> bool:
        return self.stats != STATS_NONE

    @property
    def updates_weights(self) -> bool:
        """Kept weights change too, so a keep-mask alone cannot rebuild the pruned layer."""
        return self.prune is not None


def _magnitude(weight: torch.Tensor, stats, percdamp: float) -> torch.Tensor:
    return magnitude_scores(weight)


def _wanda(weight: torch.Tensor, stats, percdamp: float) -> torch.Tensor:
    if stats is None:
        raise ValueError("Wanda scores need the layer's input norms (calibration statistics)")
    return wanda_scores(weight, stats.input_sq_norm)


def _sparsegpt_saliency(weight: torch.Tensor, stats, percdamp: float) -> torch.Tensor:
    if stats is None or stats.hessian is None:
        raise ValueError("SparseGPT saliency needs the layer's Hessian (hessian=True)")
    return sparsegpt_saliency(weight, stats.hessian, percdamp)


def _sparsegpt_prune(weights: list[torch.Tensor], stats, sparsity: float, config):
    # One OBS pass over the stacked rows of layers sharing a Hessian; bit for bit the same as
    # pruning each layer alone (each keeps its own threshold per 128-column block).
    return sparsegpt_prune_group(weights, stats.hessian, sparsity, nm=config.nm,
                                 block_size=config.block_size, percdamp=config.percdamp)


# --- successors (issue 20): RIA and its "relative importance" alone ----------------------------
def _ri(weight: torch.Tensor, stats, percdamp: float) -> torch.Tensor:
    return relative_importance(weight)


def _ria(weight: torch.Tensor, stats, percdamp: float, a: float = 0.5) -> torch.Tensor:
    if stats is None:
        raise ValueError("RIA scores need the layer's input norms (calibration statistics)")
    return ria_scores(weight, stats.input_sq_norm, a)


def _ria_configured(weight: torch.Tensor, stats, config) -> torch.Tensor:
    return _ria(weight, stats, config.percdamp, config.ria.a)


METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("magnitude", _magnitude, STATS_NONE, "layer"),
    MethodSpec("wanda", _wanda, STATS_INPUT_NORM, "row"),
    MethodSpec("sparsegpt", _sparsegpt_saliency, STATS_HESSIAN, "block", prune=_sparsegpt_prune,
               group_note="SparseGPT chooses its mask per 128-column block; group does not "
                          "apply"),
    MethodSpec("ri", _ri, STATS_NONE, "layer", layer_mask=reference_threshold_keep_mask),
    MethodSpec("ria", _ria, STATS_INPUT_NORM, "layer", configured_score=_ria_configured,
               layer_mask=reference_threshold_keep_mask),
)}
# What the dashboard lists, presets and sweep defaults run and the score views show (unchanged
# until the registry carries labels, formulas and colours for the successors); the command line and
# PruneConfig accept ALL_METHOD_NAMES.
METHOD_NAMES = ("magnitude", "wanda", "sparsegpt")
ALL_METHOD_NAMES = tuple(METHODS)


def get_method(name: str) -> MethodSpec:
    """The registry entry of ``name``; a ValueError listing the methods otherwise."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]


def needs_calibration(methods) -> bool:
    """Whether any of ``methods`` (names) reads calibration statistics."""
    return any(get_method(m).needs_calibration for m in methods)


def needs_hessian(methods) -> bool:
    """Whether any of ``methods`` (names) reads the Hessian (SparseGPT's statistic)."""
    return any(get_method(m).stats == STATS_HESSIAN for m in methods)
