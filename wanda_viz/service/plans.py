"""What a sweep request asks for, and what fits this host's cap (``WANDA_VIZ_MAX_SWEEP_POINTS``).

The default sweep draws a curve, not a point: magnitude and Wanda at five sparsities around 50%
(10 pruned points, within the CPU cap of 12). When a request exceeds the cap, ``fitting_subset``
names a subset that fits: the same methods and structures at evenly spaced sparsities, or fewer
methods when even one sparsity each is too many; computed points are cached, so the rest can
follow in a second request.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..analysis import SweepSpec, sweep_points
from .estimates import Workload, sweep_estimate

__all__ = ["SWEEP_SPARSITIES", "DEFAULT_SWEEP_METHODS", "count_points", "default_sweep",
           "fitting_subset", "describe_request", "over_cap_message", "sweep_plan"]

SWEEP_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_SWEEP_METHODS = ("magnitude", "wanda")
_PREFERRED = (0.5, 0.7, 0.3, 0.6, 0.4, 0.8, 0.2, 0.9, 0.1)  # most telling first


def count_points(methods: Sequence[str], sparsities: Sequence[float],
                 structures: Sequence[str]) -> int:
    """Pruned points of a request (the dense baseline is not counted)."""
    return len(_points(methods, sparsities, structures))


def _points(methods, sparsities, structures) -> list:
    return sweep_points(SweepSpec(tuple(methods), tuple(sparsities), tuple(structures),
                                  include_dense=False))


def _pick_sparsities(available: Sequence[float], n: int) -> list[float]:
    ranked = sorted(available, key=lambda s: _PREFERRED.index(s) if s in _PREFERRED else 99)
    return sorted(ranked[:n])


def default_sweep(cap: int) -> tuple[list[str], list[float]]:
    """Methods and sparsities of the default curve: magnitude and Wanda at up to five
    sparsities (30-70%), fewer when the cap is lower."""
    methods = list(DEFAULT_SWEEP_METHODS)
    n = max(1, min(5, cap // len(methods)))
    return methods, _pick_sparsities((0.3, 0.4, 0.5, 0.6, 0.7), n)


def describe_request(methods: Sequence[str], sparsities: Sequence[float],
                     structures: Sequence[str]) -> str:
    """"magnitude and wanda at 30%, 50%, 70% (unstructured)"."""
    names = " and ".join([", ".join(methods[:-1]), methods[-1]] if len(methods) > 1
                         else list(methods))
    parts = []
    if "unstructured" in structures and sparsities:
        parts.append(", ".join(f"{s:.0%}" for s in sorted(sparsities)))
    parts += [s for s in structures if s != "unstructured"]
    return f"{names} at {', '.join(parts)}"


def fitting_subset(methods: Sequence[str], sparsities: Sequence[float],
                   structures: Sequence[str], cap: int) -> tuple[list, list, list] | None:
    """A subset of the request within ``cap`` points (None when the request fits already).

    Tries, in order: every method and structure, then every method unstructured only, then fewer
    methods (magnitude and Wanda kept longest, two at least: a comparison), each with as many
    evenly chosen sparsities as fit (three for a curve, else one); a single method last.
    """
    if count_points(methods, sparsities, structures) <= cap:
        return None
    order = sorted(methods, key=lambda m: (m not in DEFAULT_SWEEP_METHODS, list(methods).index(m)))
    nm = [s for s in structures if s != "unstructured"]
    if "unstructured" not in structures or not sparsities:
        return order[:max(1, cap // max(1, len(nm)))], [], nm
    for min_methods in (min(2, len(order)), 1):  # a comparison before a single curve
        for at_least in (min(3, len(sparsities)), 1):
            for n_methods in range(len(order), min_methods - 1, -1):
                for kept_nm in (nm, []):
                    n_sparsities = (cap - n_methods * len(kept_nm)) // n_methods
                    if n_sparsities >= at_least:
                        return (order[:n_methods], _pick_sparsities(sparsities, n_sparsities),
                                ["unstructured", *kept_nm])
    return order[:1], _pick_sparsities(sparsities, 1), ["unstructured"]


def over_cap_message(methods: Sequence[str], sparsities: Sequence[float],
                     structures: Sequence[str], cap: int) -> str | None:
    """Why the request is refused and which subset fits; None when it fits."""
    subset = fitting_subset(methods, sparsities, structures, cap)
    if subset is None:
        return None
    return (f"this sweep has {count_points(methods, sparsities, structures)} pruned points; this "
            f"host runs at most {cap} per request (WANDA_VIZ_MAX_SWEEP_POINTS). This fits: "
            f"{describe_request(*subset)} ({count_points(*subset)} points); run the rest as a "
            "second request (computed points are cached, so it extends the first)")


def sweep_plan(methods: Sequence[str], sparsities: Sequence[float], structures: Sequence[str],
               cap: int, work: Workload | None) -> str:
    """Markdown shown before the click: the subset that fits, else the time estimate."""
    if not methods or not structures:
        return "*Choose at least one method and one structure.*"
    refused = over_cap_message(methods, sparsities, structures, cap)
    if refused is not None:
        return f"**Too many points:** {refused}."
    points = _points(methods, sparsities, structures)
    if work is None:
        return f"{len(points)} pruned points (this host allows {cap}). Prune in tab 1 first."
    return sweep_estimate(work, [config.method for config in points])
