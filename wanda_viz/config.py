"""Run configuration: what to prune, how to calibrate, how to evaluate.

Frozen dataclasses validated once, at the boundary (``__post_init__``), so the rest of the library
can trust its inputs. The defaults follow the reference protocols (Wanda, arXiv 2306.11695 and its
code; SparseGPT, arXiv 2301.00774): 128 calibration windows, seed 0, per-output comparison for
Wanda, per-layer for magnitude, 128-column blocks and 1% damping for SparseGPT.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["PruneConfig", "CalibConfig", "EvalConfig", "parse_structure", "RiaSettings",
           "DSnoTSettings", "REFINEMENTS"]


def _method(name: str):
    """The method's registry entry (imported at call time: ``pruning`` imports this module)."""
    from .pruning.registry import get_method
    return get_method(name)


def _groups() -> tuple[str, ...]:
    from .pruning.registry import GROUPS
    return GROUPS


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


# --- successor methods' own settings (issue 20; the registry will own these) -----------------

REFINEMENTS = ("dsnot",)  # mask refinements that compose with a base method (PruneConfig.refine)
DSNOT_SKIP_LAYERS = ("mlp", "self_attn", "no_skip")


@dataclass(frozen=True)
class RiaSettings:
    """RIA's settings (biomedical-cybernetics/Relative-importance-and-activation-pruning main.py).

    Attributes:
        a: exponent of the activation factor ``sqrt(input_sq_norm)^a`` (``--a``, default 0.5).
    Its ``--per_outneuron`` is ``PruneConfig.group="row"``; the default is one threshold per layer.
    """

    a: float = 0.5


@dataclass(frozen=True)
class DSnoTSettings:
    """DSnoT's settings, defaults of zyxxmu/DSnoT main.py @ 4c029df.

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


def _settings(value, cls):
    """Accept the dataclass or its ``asdict`` form (``PruneConfig(**config.to_dict())``)."""
    return cls(**value) if isinstance(value, dict) else value


@dataclass(frozen=True)
class PruneConfig:
    """How to prune.

    Attributes:
        method: a registry name: "magnitude", "wanda", "sparsegpt", "ri" or "ria".
        sparsity: share of weights removed in every prunable layer, in [0, 1).
        structure: "unstructured" or "N:M" (prune N of every M consecutive inputs of a row).
        group: comparison group for magnitude/Wanda scores: "row" (per output), "layer" or
            "input" (per input column). None picks the method's reference default.
        wanda_variant: the Wanda appendix variant (per-row cumulative-score threshold with an
            alpha search); achieved sparsity is then within 0.001 of the target, not exact.
        owl: outlier-weighted layerwise sparsity (OWL, arXiv 2310.05175) on top of the method.
        owl_m / owl_lambda: OWL's outlier multiple M and sparsity spread lambda.
        block_size / percdamp: SparseGPT's column block and damping (share of mean diag(H)).
        batch_size: calibration windows run through a block at once (bounds memory).
        offload: keep the model where it is (e.g. CPU) and move one block at a time to
            ``exec_device`` (the path for models larger than GPU memory).
        exec_device: device for block computation when offloading ("auto": CUDA if available).
        store_masks: keep every layer's boolean keep-mask (on CPU) in the result.
        refine: a mask refinement applied on top of ``method``'s scores: "dsnot" (DSnoT,
            per-row initial mask, no weight update) or None.
        ria / dsnot: the settings of RIA and of the DSnoT refinement.
    """

    method: str = "wanda"
    sparsity: float = 0.5
    structure: str = "unstructured"
    group: str | None = None
    wanda_variant: bool = False
    owl: bool = False
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    block_size: int = 128
    percdamp: float = 0.01
    batch_size: int = 8
    offload: bool = False
    exec_device: str = "auto"
    store_masks: bool = True
    refine: str | None = None
    ria: RiaSettings = field(default_factory=RiaSettings)
    dsnot: DSnoTSettings = field(default_factory=DSnoTSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ria", _settings(self.ria, RiaSettings))
        object.__setattr__(self, "dsnot", _settings(self.dsnot, DSnoTSettings))
        method = _method(self.method)
        self._check_refine()
        if not 0.0 <= float(self.sparsity) < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        nm = parse_structure(self.structure)
        if nm is not None and abs(self.sparsity - nm[0] / nm[1]) > 1e-9:
            raise ValueError(
                f"N:M structure {nm[0]}:{nm[1]} requires sparsity == {nm[0]}/{nm[1]} = "
                f"{nm[0] / nm[1]:g}, got {self.sparsity}")
        if self.group is not None and self.group not in _groups():
            raise ValueError(f"group must be one of {', '.join(_groups())} or None, "
                             f"got {self.group!r}")
        if self.group is not None and method.group_note:
            raise ValueError(method.group_note)
        if self.wanda_variant and (self.method != "wanda" or nm is not None):
            raise ValueError("the Wanda variant (alpha search) applies to unstructured Wanda only")
        if self.owl and nm is not None:
            raise ValueError("OWL assigns a different sparsity to each block, so it cannot keep N:M")
        if self.owl and not 0.0 <= self.owl_lambda < 0.5:
            raise ValueError(f"owl_lambda must be in [0, 0.5), got {self.owl_lambda}")
        if self.block_size < 1 or self.batch_size < 1:
            raise ValueError("block_size and batch_size must be positive")
        if self.percdamp <= 0:
            raise ValueError(f"percdamp must be positive, got {self.percdamp}")

    def _check_refine(self) -> None:
        if self.refine is None:
            return
        if self.refine not in REFINEMENTS:
            raise ValueError(f"refine must be one of {', '.join(REFINEMENTS)} or None, "
                             f"got {self.refine!r}")
        if self.group not in (None, "row") or self.wanda_variant:
            raise ValueError("DSnoT refines a per-row initial mask: group must be 'row' (or "
                             "unset) and the Wanda variant is not available")

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_structure(self.structure)

    @property
    def comparison_group(self) -> str:
        """The group actually used: explicit ``group``, per row under DSnoT (its initial mask),
        else the method's reference default."""
        if self.refine is not None:
            return "row"
        return self.group or _method(self.method).default_group

    @property
    def needs_calibration(self) -> bool:
        """OWL reads Wanda's input norms whatever the method; DSnoT reads input moments."""
        return _method(self.method).needs_calibration or self.owl or self.refine is not None

    def label(self) -> str:
        """Short human label, e.g. ``"wanda 50% 2:4"``."""
        parts = [self.method, f"{self.sparsity:.0%}"]
        if self.nm:
            parts.append(self.structure)
        if self.group and self.group != _method(self.method).default_group and not self.refine:
            parts.append(f"per-{self.group}")
        if self.refine:
            parts.append(f"+{self.refine}")
        if self.wanda_variant:
            parts.append("variant")
        if self.owl:
            parts.append("OWL")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CalibConfig:
    """Calibration windows: ``n_samples`` windows of ``seq_len`` tokens drawn with ``seed``.

    Attributes:
        source: a dataset name (``data.CALIB_SOURCES``) or a text file; None when ``text`` is set.
        text: raw text to sample from (pasted or uploaded); None when ``source`` is set.
        text_label: how captions name ``text`` (e.g. "uploaded file notes.txt"); None: pasted.
        seq_len: None means the smaller of the model's context and 2048 (``resolve_seq_len``).
        data_dir: data folder (None: ``$WANDA_VIZ_DATA``).
    Frozen and hashable: the dashboard caches calibration windows per config.
    """

    source: str | None = None
    text: str | None = None
    text_label: str | None = None
    n_samples: int = 128
    seq_len: int | None = None
    seed: int = 0
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {self.n_samples}")
        if self.seq_len is not None and self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")


@dataclass(frozen=True)
class EvalConfig:
    """Perplexity protocol: non-overlapping windows of ``seq_len`` tokens (reference protocol).

    Attributes:
        source: "wikitext2" (raw test), "wikitext2-valid", a text file, or None (no perplexity).
        max_windows: evaluate only the first windows, for quick looks (None = all of them).
        seq_len: window length; None = the calibration's (or the model's default).
    """

    source: str | None = "wikitext2"
    max_windows: int | None = None
    data_dir: str | None = None
    seq_len: int | None = None
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.seq_len is not None and self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {self.max_windows}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
