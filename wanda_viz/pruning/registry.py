"""The method registry: every property of a pruning method in one entry; lists derive from it.

A ``MethodSpec`` says what a method computes and needs: its score (higher = keep), the calibration
statistics it reads (``stats.STATISTICS`` names), the comparison groups it allows (the first is its
reference default; SparseGPT's "block" takes its width from the method's settings), its own
settings (a small frozen dataclass, e.g. SparseGPT's ``block_size`` and ``percdamp``), whether it
updates the kept weights (a ``prune`` kernel, SparseGPT's OBS step), and how people see it: label,
formula, score unit, paper, colour, line dash and marker. ``PruneConfig`` validation, the pipeline,
the score analysis, the figures, the CLI, the dashboard and the sweep defaults all read it, so a
new method is one entry here plus its kernel file (docs/ARCHITECTURE.md, "Adding a method").

Refinements (``RefinementSpec``, e.g. DSnoT's prune-and-grow) change a base method's keep-mask
without retraining. They compose with any base through ``PruneConfig(refine="dsnot")`` (the
command line's ``--refine``), not as entries that name their base: DSnoT's reference code takes its
initial mask from magnitude, Wanda or SparseGPT alike (``--initial_method``), so entries per base
would multiply (3 bases x every refinement) and each would repeat the base's statistics and
groups. A refined config runs its base in score-and-mask form (``score`` + comparison group or
N:M; never the base's weight update, as DSnoT's ``initial_method sparsegpt`` uses SparseGPT's
saliency only) and then calls ``refine`` on every layer with a ``RefineInput``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from .scores import magnitude_scores, wanda_scores
from .sparsegpt import sparsegpt_prune_group, sparsegpt_saliency

__all__ = ["STATS_INPUT_NORM", "STATS_HESSIAN", "MASK_GROUPS", "GROUPS", "STRUCTURES",
           "NoSettings", "SparseGPTSettings", "MethodSpec", "RefineInput", "RefinementSpec",
           "METHODS", "METHOD_NAMES", "DEFAULT_METHODS", "REFINEMENTS", "get_method",
           "get_refinement", "split_method_key", "needs_calibration", "needs_hessian",
           "settings_dict"]

STATS_INPUT_NORM, STATS_HESSIAN = "input_norm", "hessian"   # names in stats.STATISTICS
MASK_GROUPS = ("row", "layer", "input")        # groups of topk_keep_mask (any score)
GROUPS = MASK_GROUPS                            # the groups a user may choose (CLI, UI, ablation)
STRUCTURES = ("unstructured", "2:4", "4:8")    # offered in the UI; any N:M works in the library


@dataclass(frozen=True)
class NoSettings:
    """Settings of a method that has none of its own."""


@dataclass(frozen=True)
class SparseGPTSettings:
    """SparseGPT's own settings (IST-DASLab/sparsegpt ``fasterprune``).

    Attributes:
        block_size: columns per block; one mask threshold over all rows of each block.
        percdamp: damping added to diag(H), as a share of its mean.
    """

    block_size: int = 128
    percdamp: float = 0.01

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        if self.percdamp <= 0:
            raise ValueError(f"percdamp must be positive, got {self.percdamp}")


@dataclass(frozen=True)
class MethodSpec:
    """One pruning method.

    Attributes:
        name: the key ("wanda"), used in configs, cache keys, the CLI and the UI.
        label / formula / unit / citation: display name, score formula, the score's axis unit
            and the paper, for captions, figures and the UI.
        score: ``score(weight (out, in), stats, settings) -> (out, in) float32``, higher = keep;
            ``stats`` is the layer's ``CalibrationStats`` (None without calibration).
        stats: the statistics it reads (``stats.STATISTICS`` names); () = no calibration.
        groups: comparison groups it allows; the first is its reference default.
        settings: the frozen dataclass of its own settings (``PruneConfig.settings``).
        prune: for methods that update the kept weights too, ``prune(weights, stats, sparsity,
            config) -> [(new weight, keep_mask, loss), ...]`` for (out, in) weights that read the
            same input (one ``stats``); None = score, mask and zero.
        color / dash / marker: how every figure draws it (plotly names).
        default_selected: part of the default selections (the sweep's methods, CLI defaults).
    """

    name: str
    label: str
    formula: str
    unit: str
    citation: str
    score: Callable
    stats: tuple[str, ...] = ()
    groups: tuple[str, ...] = ("row", "layer", "input")
    settings: type = NoSettings
    prune: Callable | None = None
    color: str = "#BBBBBB"
    dash: str = "solid"
    marker: str = "circle"
    default_selected: bool = True

    @property
    def default_group(self) -> str:
        return self.groups[0]

    @property
    def needs_calibration(self) -> bool:
        return bool(self.stats)

    @property
    def updates_weights(self) -> bool:
        """Kept weights change too, so a keep-mask alone cannot rebuild the pruned layer."""
        return self.prune is not None


@dataclass(frozen=True)
class RefineInput:
    """What a refinement sees of one layer (all tensors (out, in) on the layer's device).

    Attributes:
        name: the layer's qualified name (a refinement may skip some, e.g. DSnoT's MLP rule).
        weight: the dense weight, unchanged so far.
        scores: the base method's scores; keep_mask: its keep-mask under the config's group/N:M.
        stats: the layer's ``CalibrationStats`` (with the refinement's statistics), or None.
        sparsity: this layer's target; config: the whole ``PruneConfig`` (``refine_settings``).
    """

    name: str
    weight: torch.Tensor
    scores: torch.Tensor
    keep_mask: torch.Tensor
    stats: object
    sparsity: float
    config: object


@dataclass(frozen=True)
class RefinementSpec:
    """A mask refinement that composes with any base method (``PruneConfig.refine``).

    Attributes:
        refine: ``refine(RefineInput) -> keep_mask (out, in) bool``.
        stats: statistics it reads besides the base's; settings: its frozen settings dataclass.
        dash: the line dash of refined runs (they keep the base's colour).
    """

    name: str
    label: str
    citation: str
    refine: Callable[[RefineInput], torch.Tensor]
    stats: tuple[str, ...] = ()
    settings: type = NoSettings
    dash: str = "dash"


# -- score adapters: (weight, stats, settings) -> scores ------------------------------------------

def _magnitude(weight: torch.Tensor, stats, settings) -> torch.Tensor:
    return magnitude_scores(weight)


def _wanda(weight: torch.Tensor, stats, settings) -> torch.Tensor:
    if stats is None:
        raise ValueError("Wanda scores need the layer's input norms (calibration statistics)")
    return wanda_scores(weight, stats.input_sq_norm)


def _sparsegpt_saliency(weight: torch.Tensor, stats, settings: SparseGPTSettings) -> torch.Tensor:
    if stats is None or stats.hessian is None:
        raise ValueError("SparseGPT saliency needs the layer's Hessian (statistics 'hessian')")
    return sparsegpt_saliency(weight, stats.hessian, settings.percdamp)


def _sparsegpt_prune(weights: list[torch.Tensor], stats, sparsity: float, config):
    # One OBS pass over the stacked rows of layers sharing a Hessian; bit for bit the same as
    # pruning each layer alone (each keeps its own threshold per column block).
    settings: SparseGPTSettings = config.settings
    return sparsegpt_prune_group(weights, stats.hessian, sparsity, nm=config.nm,
                                 block_size=settings.block_size, percdamp=settings.percdamp)


# Colours: Paul Tol's colour-blind-safe "bright" scheme; one colour per method in every figure.
METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("magnitude", "magnitude", "|W_ij|", "|W|", "the Wanda paper's baseline "
               "(Sun et al. 2023, arXiv 2306.11695)", _magnitude, groups=("layer", "row", "input"),
               color="#EE6677", marker="square"),
    MethodSpec("wanda", "Wanda", "|W_ij| * ||X_j||_2", "|W| x ||X_j||₂",
               "Sun et al. 2023, arXiv 2306.11695", _wanda, stats=(STATS_INPUT_NORM,),
               color="#4477AA", marker="circle"),
    MethodSpec("sparsegpt", "SparseGPT", "W_ij^2 / [H^-1]_jj^2", "W² / [H⁻¹]_jj²",
               "Frantar & Alistarh 2023, arXiv 2301.00774", _sparsegpt_saliency,
               stats=(STATS_INPUT_NORM, STATS_HESSIAN), groups=("block",),
               settings=SparseGPTSettings, prune=_sparsegpt_prune, color="#228833",
               marker="diamond"),
)}
METHOD_NAMES = tuple(METHODS)
DEFAULT_METHODS = tuple(name for name, spec in METHODS.items() if spec.default_selected)
REFINEMENTS: dict[str, RefinementSpec] = {}


def get_method(name: str) -> MethodSpec:
    """The registry entry of ``name``; a ValueError listing the methods otherwise."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]


def get_refinement(name: str) -> RefinementSpec:
    """The refinement ``name``; a ValueError listing the refinements otherwise."""
    if name not in REFINEMENTS:
        known = ", ".join(REFINEMENTS) or "none registered"
        raise ValueError(f"refine must be one of {known}, got {name!r}")
    return REFINEMENTS[name]


def split_method_key(key: str) -> tuple[str, str | None]:
    """``"wanda+dsnot"`` -> ("wanda", "dsnot"); ``"wanda"`` -> ("wanda", None); both validated."""
    method, _, refine = key.partition("+")
    get_method(method.strip())
    if refine:
        get_refinement(refine.strip())
    return method.strip(), (refine.strip() or None)


def needs_calibration(methods) -> bool:
    """Whether any of ``methods`` (names, or ``"base+refine"`` keys) reads calibration data."""
    return any(_stats_of(m) for m in methods)


def needs_hessian(methods) -> bool:
    """Whether any of ``methods`` reads the Hessian (SparseGPT's statistic)."""
    return any(STATS_HESSIAN in _stats_of(m) for m in methods)


def _stats_of(key: str) -> tuple[str, ...]:
    method, refine = split_method_key(key)
    return get_method(method).stats + (get_refinement(refine).stats if refine else ())


def settings_dict(settings) -> dict:
    """The fields of a settings dataclass as a plain dict (for keys, labels and JSON)."""
    return {f.name: getattr(settings, f.name) for f in fields(settings)}
