"""Why Wanda works (2/2): causal interventions in weight space and in activation space.

Weight space: zero every weight that reads the top-k input channels by input norm ``||X_j||`` of
each prunable layer (its own input statistic), for k = 1, 2, 4, 8, against k random channels per
layer (several seeds), and measure perplexity each time. Random channels are drawn uniformly from
the channels outside the layer's top-max(k) (nested: the first k of one permutation per seed), and
layers that read the same input (q/k/v, gate/up) share their random channels as they share their
outlier channels, so both arms zero exactly the same number of weights.

The activation-space intervention lives in ``why_activations``. Weights are restored from a
``WeightBackup`` after every point (the model is dense on return, also on error).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..evaluate import perplexity
from ..models import WeightBackup, resolve_seq_len, weight_matrix
from .why import ModelHold, cached_point, dense_point, holder, why_context

__all__ = [
    "WEIGHT_COLUMNS", "outlier_channels", "select_channels",
    "zero_input_channels", "ChannelIntervention", "channel_intervention",
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


@torch.no_grad()
def channel_intervention(model: nn.Module, calib_ids: torch.Tensor, eval_ids: torch.Tensor,
                         input_norms: dict[str, torch.Tensor], *, ks: Sequence[int] = (1, 2, 4, 8),
                         seeds: Sequence[int] = (0, 1, 2), fingerprint: dict | None = None,
                         calibration: dict | None = None, eval_label: str = "evaluation text",
                         seq_len: int | None = None, max_windows: int | None = None,
                         cache_dir=None, dense: WeightBackup | None = None,
                         callback: Callable[[int, int, dict], None] | None = None,
                         model_for_point: ModelHold | None = None) -> ChannelIntervention:
    """Dense perplexity, then outlier-channel and random-channel cuts for every k (and seed).

    Args:
        calib_ids: the calibration windows that produced ``input_norms`` (for the cache key).
        input_norms: layer -> (in,) ``sqrt(input_sq_norm)``, e.g. ``report.input_norms``.
        fingerprint: ``model_fingerprint(...)``; None = no on-disk cache.
        dense: an existing ``WeightBackup`` (None = take one, while the model is held). Every
            point restores the dense weights before it lets the model go.
        model_for_point: entered around each computed point, yields the dense model (see
            ``analysis.why.ModelHold``); None = ``model`` throughout.
    Returns:
        ChannelIntervention; ``table`` has one dense row, one outlier row per k and one random
        row per (k, seed).
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive channel counts, got {ks}")
    seq_len = resolve_seq_len(model, seq_len)
    context, shared = why_context(fingerprint, calib_ids, eval_ids, calibration=calibration,
                                  eval_label=eval_label, seq_len=seq_len,
                                  max_windows=max_windows)
    total_weights = sum(weight_matrix(m).numel() for n, m in model.named_modules()
                        if n in input_norms)
    points = [("outlier", k, None) for k in ks] + [("random", k, s) for k in ks for s in seeds]
    hold = holder(model, model_for_point)
    backup = dense
    base = dense_point(model, eval_ids, seq_len=seq_len, max_windows=max_windows,
                       context=context, cache_dir=cache_dir, model_for_point=model_for_point)
    rows = [{"kind": "dense", "k": 0, "seed": None, "zeroed_weights": 0, "zeroed_share": 0.0,
             **base}]
    for done, (kind, k, seed) in enumerate(points, start=1):
        settings = {"analysis": "why-weights", "kind": kind, "k": k, "seed": seed,
                    "exclude_top": ks[-1] if kind == "random" else None}

        def compute(kind=kind, k=k, seed=seed) -> dict:
            nonlocal backup
            chosen = select_channels(input_norms, k, seed=seed, exclude_top=ks[-1])
            with hold() as point_model:
                backup = backup or WeightBackup(point_model)  # taken while the model is held
                try:
                    zeroed = zero_input_channels(point_model, chosen)
                    ppl = perplexity(point_model, eval_ids, seq_len, max_windows=max_windows,
                                     show_progress=False)
                finally:
                    backup.restore(point_model)  # dense again before anyone else gets it
            return {"kind": kind, "k": k, "seed": seed, "perplexity": ppl,
                    "zeroed_weights": zeroed, "zeroed_share": zeroed / total_weights}

        rows.append(cached_point(settings, context, compute, cache_dir=cache_dir))
        if callback is not None:
            callback(done, len(points), rows[-1])
    return ChannelIntervention(pd.DataFrame(rows, columns=WEIGHT_COLUMNS), shared["calibration"],
                               shared["eval_protocol"], ks[-1])
