"""Why Wanda works (2/2): causal interventions in weight space and in activation space.

Weight space: zero every weight that reads the top-k input channels by input norm ``||X_j||`` of
each prunable layer (its own input statistic), for k = 1, 2, 4, 8, against k random channels per
layer (several seeds), and measure perplexity each time. Random channels are drawn uniformly from
the channels outside the layer's top-max(k) (nested: the first k of one permutation per seed), and
layers that read the same input (q/k/v, gate/up) share their random channels as they share their
outlier channels, so both arms zero exactly the same number of weights.

The activation-space intervention lives in ``why_activations``. Every point is a ``WeightEdit`` on
the point runner (``points``): the dense weights are restored after it, also on error, and it is
cached with the one key scheme.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..layers import weight_matrix
from ..points import Dense, PointRunner, WeightEdit

__all__ = [
    "WEIGHT_COLUMNS", "outlier_channels", "select_channels",
    "zero_input_channels", "ChannelIntervention", "ChannelSpec", "channel_intervention",
]

logger = logging.getLogger(__name__)

WEIGHT_COLUMNS = ["kind", "k", "seed", "perplexity", "zeroed_weights", "zeroed_share", "cached"]


def outlier_channels(input_norm: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest ``input_norm`` entries (ties by index), largest first."""
    return torch.sort(input_norm.float().cpu(), descending=True, stable=True).indices[:k]


def select_channels(input_norms: dict[str, torch.Tensor], k: int, *, seed: int | None = None,
                    exclude_top: int | None = None) -> dict[str, torch.Tensor]:
    """Input channels to cut in every layer: the top-k by norm (seed None) or k random ones.

    Args:
        input_norms: layer -> (in_features,) ``||X_j||`` (or anything ranked the same way).
        seed: random arm: per layer, the first k of a seeded permutation of the channels outside
            the layer's top-``exclude_top`` (default k); layers with identical norms (same input)
            share one draw.
    """
    if seed is None:
        return {name: outlier_channels(norm, k) for name, norm in input_norms.items()}
    generator = torch.Generator().manual_seed(seed)
    draws: list[tuple[torch.Tensor, torch.Tensor]] = []  # (norm, permutation), shared by input
    chosen = {}
    for name, norm in input_norms.items():
        norm = norm.float().cpu()
        permutation = next((p for n, p in draws if n.shape == norm.shape and torch.equal(n, norm)),
                           None)
        if permutation is None:
            pool = torch.ones(norm.numel(), dtype=torch.bool)
            pool[outlier_channels(norm, exclude_top or k)] = False
            candidates = torch.nonzero(pool).flatten()
            permutation = candidates[torch.randperm(candidates.numel(), generator=generator)]
            draws.append((norm, permutation))
        if permutation.numel() < k:
            raise ValueError(f"{name} has only {permutation.numel()} channels outside its top "
                             f"{exclude_top or k}; cannot draw {k} random ones")
        chosen[name] = permutation[:k]
    return chosen


@torch.no_grad()
def zero_input_channels(model: nn.Module, channels: dict[str, torch.Tensor]) -> int:
    """Zero every weight reading the given input channels (columns of (out, in)); in place.

    Returns:
        The number of weights zeroed.
    """
    modules = dict(model.named_modules())
    zeroed = 0
    for name, index in channels.items():
        weight = weight_matrix(modules[name])  # (out, in) view: writes reach the layer
        weight[:, index.to(weight.device)] = 0
        zeroed += weight.shape[0] * index.numel()
    return zeroed


@dataclass
class ChannelIntervention:
    """Perplexity after cutting outlier vs random input channels (rows: ``WEIGHT_COLUMNS``)."""

    table: pd.DataFrame
    calibration: str
    eval_protocol: str
    exclude_top: int

    def protocol(self) -> str:
        return (f"zero every weight reading the top-k input channels by ||X_j|| of each prunable "
                f"layer (dense statistics, {self.calibration}) vs k random channels per layer "
                f"(outside its top {self.exclude_top}, shared by layers with the same input); "
                f"perplexity: {self.eval_protocol}")


@dataclass(frozen=True)
class ChannelSpec:
    """The weight-space intervention's points: channel counts ``ks`` and random ``seeds``."""

    ks: tuple[int, ...] = (1, 2, 4, 8)
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        ks = tuple(sorted({int(k) for k in self.ks}))
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must be positive channel counts, got {list(self.ks)}")
        object.__setattr__(self, "ks", ks)


def _cut(input_norms: dict[str, torch.Tensor], kind: str, k: int, seed: int | None,
         exclude_top: int) -> WeightEdit:
    """The point that zeroes the weights reading k outlier (or random) channels per layer."""
    def edit(model: nn.Module) -> dict:
        chosen = select_channels(input_norms, k, seed=seed, exclude_top=exclude_top)
        return {"zeroed_weights": zero_input_channels(model, chosen)}
    settings = {"kind": kind, "k": k, "seed": seed,
                "exclude_top": exclude_top if kind == "random" else None}
    return WeightEdit("why-weights", settings, edit, uses_calibration=True,
                      columns=("zeroed_weights",))


@torch.no_grad()
def channel_intervention(runner: PointRunner, input_norms: dict[str, torch.Tensor],
                         spec: ChannelSpec = ChannelSpec(), *,
                         callback: Callable[[int, int, dict], None] | None = None
                         ) -> ChannelIntervention:
    """Dense perplexity, then outlier-channel and random-channel cuts for every k (and seed).

    Args:
        runner: the point runner of the dense model; its setup's calibration windows are the ones
            that produced ``input_norms`` (they key the cached points).
        input_norms: layer -> (in,) ``sqrt(input_sq_norm)``, e.g. ``report.input_norms``.
        callback: ``callback(done, total, row)`` after each intervention point.
    Returns:
        ChannelIntervention; ``table`` has one dense row, one outlier row per k and one random
        row per (k, seed).
    """
    exclude_top = spec.ks[-1]
    modules = dict(runner.model.named_modules())
    total_weights = sum(weight_matrix(modules[name]).numel() for name in input_norms)
    points = ([("outlier", k, None) for k in spec.ks]
              + [("random", k, s) for k in spec.ks for s in spec.seeds])
    rows = [{"kind": "dense", "k": 0, "seed": None, "zeroed_weights": 0, "zeroed_share": 0.0,
             **runner.run(Dense())}]

    def labelled(done: int, total: int, row: dict) -> None:
        kind, k, seed = points[done - 1]
        rows.append({**row, "kind": kind, "k": k, "seed": seed,
                     "zeroed_share": row["zeroed_weights"] / total_weights})
        if callback is not None:
            callback(done, total, rows[-1])

    runner.run_all([_cut(input_norms, *point, exclude_top) for point in points],
                   desc="why: weights", callback=labelled, show_progress=False)
    shared = runner.setup.protocol_columns()
    return ChannelIntervention(pd.DataFrame(rows, columns=WEIGHT_COLUMNS), shared["calibration"],
                               shared["eval_protocol"], exclude_top)
