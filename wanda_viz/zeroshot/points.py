"""Zero-shot accuracy of pruned points (dense, or one prune config), cached per point and task.

``zero_shot_point`` is the one "evaluate a changed model" function of this package: the change is
``prune_model`` on the dense model (restored afterwards), the metric is ``harness.zero_shot``.
It keys its cache exactly as the perplexity sweep keys its points (``analysis.sweep.point_key``:
dense fingerprint, prune config minus result-free fields, calibration for calibrated methods), so
it can move onto a shared point runner without changing a cache file name.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..analysis.sweep import point_key, tensor_sha256
from ..cancel import CancelToken, check_cancelled
from ..config import PruneConfig
from ..models import WeightBackup
from ..pruning import prune_model
from .cache import cached_zero_shot
from .harness import Progress, zero_shot
from .result import ZeroShotResult

__all__ = ["ZeroShotSettings", "PointData", "point_identity", "zero_shot_point", "zero_shot_sweep",
           "zero_shot_table"]


@dataclass(frozen=True)
class ZeroShotSettings:
    """What is asked of the harness: tasks, the first ``limit`` items each, requests per batch."""
    tasks: tuple[str, ...]
    limit: int | None
    batch_size: int = 8


@dataclass(frozen=True)
class PointData:
    """What every point shares: the dense model's fingerprint and the calibration windows."""
    fingerprint: dict
    calib_ids: torch.Tensor | None = None
    calibration: dict | None = field(default=None)
    prune_batch_size: int = 8


def point_identity(data: PointData, config: PruneConfig | None, model: nn.Module) -> dict:
    """JSON identity of the weights ``config`` gives the dense model, plus dtype and device."""
    from .. import __version__
    context = {"model": data.fingerprint, "version": __version__, "evaluation": "zero-shot",
               "calibration": {**(data.calibration or {}),
                               "ids_sha256": tensor_sha256(data.calib_ids)
                               if data.calib_ids is not None else None}}
    param = next(model.parameters())
    return {"weights": point_key(config, context), "dtype": str(param.dtype),
            "device": param.device.type}


def zero_shot_point(model: nn.Module, tokenizer, config: PruneConfig | None,
                    settings: ZeroShotSettings, data: PointData, *, pruned: bool = False,
                    cache_dir: str | os.PathLike | None = None,
                    cancel: CancelToken | None = None,
                    progress: Progress | None = None) -> ZeroShotResult:
    """Scores of the dense model (``config`` None) or of ``config`` applied to it.

    ``model`` is dense unless ``pruned`` says it already holds ``config``'s weights (the prune
    command evaluates the model it has just pruned). A dense model pruned here is restored.
    """
    def compute(missing: list[str]) -> ZeroShotResult:
        if config is None or pruned:
            return zero_shot(model, tokenizer, missing, settings.limit,
                             batch_size=settings.batch_size, cancel=cancel, progress=progress)
        backup = WeightBackup(model)
        try:
            point_config = PruneConfig(**{**config.to_dict(), "store_masks": False,
                                          "batch_size": data.prune_batch_size})
            prune_model(model, data.calib_ids if config.needs_calibration else None,
                        point_config)
            check_cancelled(cancel)
            return zero_shot(model, tokenizer, missing, settings.limit,
                             batch_size=settings.batch_size, cancel=cancel, progress=progress)
        finally:
            backup.restore(model)

    return cached_zero_shot(point_identity(data, config, model), settings.tasks, settings.limit,
                            settings.batch_size, compute, cache_dir=cache_dir)


def zero_shot_sweep(model: nn.Module, tokenizer, points: Sequence[PruneConfig | None],
                    settings: ZeroShotSettings, data: PointData, *,
                    cache_dir: str | os.PathLike | None = None,
                    cancel: CancelToken | None = None,
                    progress: Progress | None = None) -> list[tuple[PruneConfig | None,
                                                                    ZeroShotResult]]:
    """Every point's scores (dense first when ``None`` is among ``points``); cached points are
    read without pruning. ``progress`` counts tasks over all points."""
    results = []
    per_point = len(settings.tasks)
    for index, config in enumerate(points):
        check_cancelled(cancel)
        shifted = (None if progress is None else
                   lambda done, _total, task, i=index: progress(i * per_point + done,
                                                                len(points) * per_point, task))
        results.append((config, zero_shot_point(model, tokenizer, config, settings, data,
                                                cache_dir=cache_dir, cancel=cancel,
                                                progress=shifted)))
    return results


def zero_shot_table(results: list[tuple[PruneConfig | None, ZeroShotResult]]) -> pd.DataFrame:
    """One row per (point, task): label, method, structure, sparsity, the harness's numbers."""
    rows = []
    for config, result in results:
        labels = ({"label": "dense", "method": "dense", "structure": "dense", "sparsity": 0.0}
                  if config is None else
                  {"label": config.label(), "method": config.method,
                   "structure": config.structure, "sparsity": config.sparsity})
        protocol = {"harness": result.harness_version, "data": result.data_version,
                    "limit": result.limit, "num_fewshot": result.num_fewshot}
        rows.extend({**labels, **score.to_dict(), **protocol} for score in result.scores)
    return pd.DataFrame(rows)

