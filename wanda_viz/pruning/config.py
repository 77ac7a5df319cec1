"""``PruneConfig``: what to prune and how, validated once against the method registry.

It lives beside the registry (not in ``wanda_viz.config``, which re-exports it) so that reading
the registry needs no lazy import: registry -> config -> pipeline is the one import order.
Defaults follow the reference protocols (Wanda, arXiv 2306.11695 and its code; SparseGPT, arXiv
2301.00774): per-output comparison for Wanda, per-layer for magnitude, SparseGPT's 128-column
blocks and 1% damping (``SparseGPTSettings``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, is_dataclass

from .registry import (GROUPS, MethodSpec, RefinementSpec, get_method, get_refinement,
                       settings_dict)

__all__ = ["PruneConfig", "parse_structure"]


def parse_structure(structure: str) -> tuple[int, int] | None:
    """Parse ``"unstructured"`` -> None and ``"2:4"`` -> (2, 4); raise ValueError otherwise."""
    text = structure.strip().lower()
    if text in ("unstructured", "none", ""):
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"structure must be 'unstructured' or 'N:M' such as '2:4', got {structure!r}")
    n, m = int(parts[0]), int(parts[1])
    if not 0 < n < m:
        raise ValueError(f"N:M structure needs 0 < N < M, got {structure!r}")
    return n, m


def _resolve_settings(kind: type, value, owner: str):
    """None -> the defaults; a dict -> ``kind(**dict)``; an instance of ``kind`` as is."""
    if value is None:
        return kind()
    if isinstance(value, dict):
        known = [f.name for f in fields(kind)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"{owner} has no setting {', '.join(unknown)} (its settings: "
                             f"{', '.join(known) or 'none'})")
        return kind(**value)
    if not (is_dataclass(value) and isinstance(value, kind)):
        raise ValueError(f"settings of {owner} must be a {kind.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class PruneConfig:
    """How to prune.

    Attributes:
        method: a registry name ("magnitude", "wanda", "sparsegpt", ...).
        sparsity: share of weights removed in every prunable layer, in [0, 1).
        structure: "unstructured" or "N:M" (prune N of every M consecutive inputs of a row).
        group: comparison group, one of the method's ``groups``; None = its reference default.
        settings: the method's own settings (its registry ``settings`` dataclass, or a dict of
            its fields); None = the defaults. Resolved in ``__post_init__``.
        refine: a mask refinement applied on top of the method (``registry.REFINEMENTS``).
        refine_settings: the refinement's settings (as ``settings``).
        wanda_variant: the Wanda appendix variant (per-row cumulative-score threshold with an
            alpha search); achieved sparsity is then within 0.001 of the target, not exact.
        owl: outlier-weighted layerwise sparsity (OWL, arXiv 2310.05175) on top of the method.
        owl_m / owl_lambda: OWL's outlier multiple M and sparsity spread lambda.
        batch_size: calibration windows run through a block at once (bounds memory).
        offload: keep the model where it is (e.g. CPU) and move one block at a time to
            ``exec_device`` (the path for models larger than GPU memory).
        exec_device: device for block computation when offloading ("auto": CUDA if available).
        store_masks: keep every layer's boolean keep-mask (on CPU) in the result.
    """

    method: str = "wanda"
    sparsity: float = 0.5
    structure: str = "unstructured"
    group: str | None = None
    settings: object = None
    refine: str | None = None
    refine_settings: object = None
    wanda_variant: bool = False
    owl: bool = False
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    batch_size: int = 8
    offload: bool = False
    exec_device: str = "auto"
    store_masks: bool = True

    def __post_init__(self) -> None:
        method = get_method(self.method)
        object.__setattr__(self, "settings",
                           _resolve_settings(method.settings, self.settings, self.method))
        if self.refine is not None:
            object.__setattr__(self, "refine_settings", _resolve_settings(
                get_refinement(self.refine).settings, self.refine_settings, self.refine))
        elif self.refine_settings is not None:
            raise ValueError("refine_settings given without refine")
        self._check_sparsity()
        self._check_group(method)
        if self.wanda_variant and (self.method != "wanda" or self.nm is not None):
            raise ValueError("the Wanda variant (alpha search) applies to unstructured Wanda only")
        if self.owl and not 0.0 <= self.owl_lambda < 0.5:
            raise ValueError(f"owl_lambda must be in [0, 0.5), got {self.owl_lambda}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")

    def _check_sparsity(self) -> None:
        if not 0.0 <= float(self.sparsity) < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        nm = parse_structure(self.structure)
        if nm is not None and abs(self.sparsity - nm[0] / nm[1]) > 1e-9:
            raise ValueError(
                f"N:M structure {nm[0]}:{nm[1]} requires sparsity == {nm[0]}/{nm[1]} = "
                f"{nm[0] / nm[1]:g}, got {self.sparsity}")
        if self.owl and nm is not None:
            raise ValueError("OWL assigns a different sparsity to each block, so it cannot keep "
                             "N:M")

    def _check_group(self, method: MethodSpec) -> None:
        if self.group is None:
            return
        if self.group not in GROUPS and self.group not in method.groups:
            raise ValueError(f"group must be one of {', '.join(GROUPS)} or None, "
                             f"got {self.group!r}")
        if self.group not in method.groups:
            raise ValueError(f"{method.label} compares per {' / '.join(method.groups)}, so "
                             f"group does not apply (got {self.group!r})")

    # -- derived -------------------------------------------------------------------------------

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_structure(self.structure)

    @property
    def spec(self) -> MethodSpec:
        return get_method(self.method)

    @property
    def refinement(self) -> RefinementSpec | None:
        return get_refinement(self.refine) if self.refine is not None else None

    @property
    def method_key(self) -> str:
        """The method as sweep tables and figures name it: "wanda" or "wanda+dsnot"."""
        return f"{self.method}+{self.refine}" if self.refine else self.method

    @property
    def comparison_group(self) -> str:
        """The group actually used: explicit ``group`` or the method's reference default."""
        return self.group or self.spec.default_group

    @property
    def statistics(self) -> tuple[str, ...]:
        """Calibration statistics the run reads: the method's, the refinement's, OWL's norm."""
        names = list(self.spec.stats)
        names += self.refinement.stats if self.refinement else ()
        names += ("input_norm",) if self.owl else ()
        return tuple(dict.fromkeys(names))

    @property
    def needs_calibration(self) -> bool:
        return bool(self.statistics)

    @property
    def updates_weights(self) -> bool:
        """The method's weight update runs (a refined config runs its base as score and mask)."""
        return self.spec.updates_weights and self.refine is None

    def label(self) -> str:
        """Short human label, e.g. ``"wanda 50% 2:4"``; settings that differ from the defaults
        are listed (``"sparsegpt 50% percdamp=0.1"``)."""
        parts = [self.method_key, f"{self.sparsity:.0%}"]
        if self.nm:
            parts.append(self.structure)
        if self.group and self.group != self.spec.default_group:
            parts.append(f"per-{self.group}")
        parts += _changed(self.settings, self.spec.settings())
        if self.refinement:
            parts += _changed(self.refine_settings, self.refinement.settings())
        if self.wanda_variant:
            parts.append("variant")
        if self.owl:
            parts.append("OWL")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def _changed(settings, defaults) -> list[str]:
    ours, base = settings_dict(settings), settings_dict(defaults)
    return [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in ours.items() if v != base[k]]
