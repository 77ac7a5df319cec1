"""Dashboard job: zero-shot accuracy of the dense model and of the session's runs.

Like the sweep, the shared model is taken per point: here once per state and task (dense, or a
run rebuilt from its packed masks), so other users' jobs wait at most one task; the dense weights
are restored each time the job lets the model go. Scores are cached per state and task (``zeroshot.cached_zero_shot``), keyed as
the sweep keys its points, so asking again, or with one more task, computes only what is new.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pandas as pd
import torch

from ..analysis.sweep import model_fingerprint
from ..cancel import CancelToken, check_cancelled
from ..zeroshot import (PointData, ZeroShotResult, ZeroShotSettings, cached_zero_shot,
                        check_zero_shot, point_identity, zero_shot, zero_shot_table)
from .cache import MODELS
from .limits import Limits
from .session import ModelSpec, RunRecord, Session

__all__ = ["ZERO_SHOT_LIMIT_ENV", "CPU_ZERO_SHOT_LIMIT", "GPU_ZERO_SHOT_LIMIT",
           "default_zero_shot_limit", "zero_shot_job"]

ZERO_SHOT_LIMIT_ENV = "WANDA_VIZ_ZERO_SHOT_LIMIT"
# Items per task by default; chosen by measurement (docs/zero-shot.md, "Dashboard default"):
# on 2 vCPUs the seven tasks of SmolLM2-135M take a few minutes per model state at this limit.
CPU_ZERO_SHOT_LIMIT, GPU_ZERO_SHOT_LIMIT = 20, 500


def default_zero_shot_limit() -> int:
    """``$WANDA_VIZ_ZERO_SHOT_LIMIT``, else the CPU or CUDA default."""
    raw = os.environ.get(ZERO_SHOT_LIMIT_ENV)
    if raw:
        return int(raw)
    return GPU_ZERO_SHOT_LIMIT if torch.cuda.is_available() else CPU_ZERO_SHOT_LIMIT


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every (state, task) step of one request shares."""
    spec: ModelSpec
    limits: Limits
    settings: ZeroShotSettings
    cancel: CancelToken | None
    progress: Callable[[float, str], None] | None
    cache_dir: str | os.PathLike | None
    total: int  # steps: states x tasks


def _score_task(job: _Job, identity: dict, run: RunRecord | None, task: str, step: int,
                label: str) -> ZeroShotResult:
    """One task of one state: from the cache, else with the shared model taken for it alone."""
    def report(done, _total, _task):
        if job.progress is not None:
            job.progress((step + min(done, 1.0)) / job.total, f"{label}: {task}")

    def compute(missing: list[str]):
        with MODELS.use(job.spec.source, job.spec.device, job.spec.dtype, job.limits) as held:
            if run is not None:
                run.apply(held.model)  # restored by MODELS.use on the way out
            return zero_shot(held.model, held.tokenizer, missing, job.settings.limit,
                             batch_size=job.settings.batch_size, cancel=job.cancel,
                             progress=report)

    check_cancelled(job.cancel)
    return cached_zero_shot(identity, [task], job.settings.limit, job.settings.batch_size,
                            compute, cache_dir=job.cache_dir)


def zero_shot_job(session: Session, settings: ZeroShotSettings, *, limits: Limits,
                  cancel: CancelToken | None = None,
                  progress: Callable[[float, str], None] | None = None,
                  cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per (state, task): dense first, then the session's runs in their order.

    ``progress(fraction, description)`` follows tasks across all states; ``cancel`` is checked
    between tasks and before every forward pass.
    """
    check_zero_shot(settings.tasks, settings.limit)  # data and harness present, before any work
    spec = session.model
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        data = PointData(model_fingerprint(spec.source, model=entry.model), session.calib_ids,
                         session.calibration)
        identity_of = {"dense": point_identity(data, None, entry.model)}
        identity_of.update({label: point_identity(data, run.result.config, entry.model)
                            for label, run in session.runs.items()})
    states = [("dense", None), *session.runs.items()]
    job = _Job(spec, limits, settings, cancel, progress, cache_dir,
               len(states) * len(settings.tasks))
    results = []
    for index, (label, run) in enumerate(states):
        scored = [_score_task(job, identity_of[label], run, task,
                              index * len(settings.tasks) + position, label)
                  for position, task in enumerate(settings.tasks)]
        merged = dataclasses.replace(scored[0], scores=tuple(s.scores[0] for s in scored))
        results.append((None if run is None else run.result.config, merged))
    return zero_shot_table(results)
