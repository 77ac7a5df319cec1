"""Sweeps: methods x sparsities x structures with the dense baseline, one cached point each.

Each point is a ``Prune`` change evaluated with perplexity by the point runner (``points``): it
prunes the dense model in place, evaluates by the reference protocol (docs/PROTOCOLS.md) and
restores the dense weights; points already on disk are read, not recomputed, so a repeated or
extended sweep computes only its new points.
NOTE: per-method calibration statistics cannot be shared across sparsities: the sequential
protocol (Wanda/SparseGPT reference code) computes the statistics of block i on the outputs of
the already PRUNED blocks < i, so they depend on the sparsity. Only magnitude needs none.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ..config import PruneConfig, parse_structure
from ..points import Dense, PointRunner, Prune
from ..pruning.registry import DEFAULT_METHODS, get_method, split_method_key

__all__ = ["SWEEP_COLUMNS", "SweepSpec", "sweep_points", "run_sweep"]

SWEEP_COLUMNS = ["method", "structure", "sparsity", "group", "label", "perplexity",
                 "achieved_sparsity", "prune_s", "forward_s", "total_s", "eval_s", "model",
                 "calibration", "eval_protocol", "version", "key", "cached"]
_DENSE = {"method": "dense", "structure": "dense", "sparsity": 0.0, "group": "-",
          "label": "dense", "achieved_sparsity": 0.0, "prune_s": 0.0, "forward_s": 0.0,
          "total_s": 0.0}


@dataclass(frozen=True)
class SweepSpec:
    """Which points a sweep has.

    Attributes:
        methods: registry names, or "base+refine" keys such as "wanda+dsnot".
        sparsities: levels of the unstructured points; N:M structures get their one N/M.
        structures: "unstructured", "2:4", "4:8" ...
        group: comparison group for the methods that allow it (None = each method's default;
            a method that fixes its group, as SparseGPT does, keeps its own).
        include_dense: the dense baseline first.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    sparsities: tuple[float, ...] = (0.5,)
    structures: tuple[str, ...] = ("unstructured",)
    group: str | None = None
    include_dense: bool = True


def sweep_points(spec: SweepSpec) -> list[PruneConfig | None]:
    """The configs of a sweep (the dense baseline first, as ``None``)."""
    points: list = [None] if spec.include_dense else []
    for structure in spec.structures:
        nm = parse_structure(structure)
        levels = [nm[0] / nm[1]] if nm else list(dict.fromkeys(spec.sparsities))  # unique
        for sparsity in levels:
            for key in spec.methods:
                method, refine = split_method_key(key)
                group = spec.group if spec.group in get_method(method).groups else None
                points.append(PruneConfig(method=method, sparsity=float(sparsity),
                                          structure=structure if nm else "unstructured",
                                          group=group, refine=refine))
    return points


def _point_labels(config: PruneConfig) -> dict:
    group = "N:M" if config.nm else config.comparison_group  # N:M compares within M inputs
    return {"method": config.method_key, "structure": config.structure,
            "sparsity": config.sparsity, "group": group, "label": config.label()}


def run_sweep(runner: PointRunner, spec: SweepSpec, *,
              callback: Callable[[int, int, dict], None] | None = None,
              show_progress: bool = True) -> pd.DataFrame:
    """Perplexity and sparsity of every sweep point; cached points are read, not recomputed.

    Args:
        runner: the point runner of the DENSE model and its evaluation setup (calibration ids
            needed unless every method is calibration-free).
        callback: ``callback(done, total, row)`` after each point (the UI's progress).
    Returns:
        DataFrame with ``SWEEP_COLUMNS``; ``cached`` says which points came from disk.
    """
    shared = runner.setup.protocol_columns()
    configs = sweep_points(spec)
    changes = [Dense() if config is None else Prune(config) for config in configs]

    def labelled(done: int, total: int, row: dict) -> None:
        rows.append(_row(configs[done - 1], changes[done - 1], row, shared))
        if callback is not None:
            callback(done, total, rows[-1])

    rows: list[dict] = []
    runner.run_all(changes, desc="sweep", callback=labelled, show_progress=show_progress)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def _row(config: PruneConfig | None, change, row: dict, shared: dict) -> dict:
    labels = _DENSE if config is None else _point_labels(config)
    calibration = shared["calibration"] if change.uses_calibration else "-"
    return {**labels, **shared, **row, "calibration": calibration}
