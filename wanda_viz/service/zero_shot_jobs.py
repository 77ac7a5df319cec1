"""Dashboard job: zero-shot accuracy of the dense model and of the session's runs.

Like the sweep, the shared model is taken once per state (dense, then each run rebuilt from its
packed masks), so other users' jobs run in between; the dense weights are restored when a state
leaves the model. Scores are cached per state and task (``zeroshot.cached_zero_shot``), keyed as
the sweep keys its points, so asking again, or with one more task, computes only what is new.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd
import torch

from ..analysis.sweep import model_fingerprint
from ..cancel import CancelToken, check_cancelled
from ..zeroshot import (PointData, ZeroShotSettings, cached_zero_shot, check_zero_shot,
                        point_identity, zero_shot, zero_shot_table)
from .cache import MODELS
from .limits import Limits
from .session import Session

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


def zero_shot_job(session: Session, settings: ZeroShotSettings, *, limits: Limits,
                  cancel: CancelToken | None = None,
                  progress: Callable[[float, str], None] | None = None,
                  cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per (state, task): dense first, then the session's runs in their order.

    ``progress(fraction, description)`` follows tasks across all states; ``cancel`` is checked
    between states, between tasks and before every forward pass.
    """
    check_zero_shot(settings.tasks, settings.limit)  # data and harness present, before any work
    spec = session.model
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        fingerprint = model_fingerprint(spec.source, model=entry.model)
        data = PointData(fingerprint, session.calib_ids, session.calibration)
        identity_of = {"dense": point_identity(data, None, entry.model)}
        identity_of.update({label: point_identity(data, run.result.config, entry.model)
                            for label, run in session.runs.items()})
    states = [("dense", None), *session.runs.items()]
    per_state, results = len(settings.tasks), []
    for index, (label, run) in enumerate(states):
        check_cancelled(cancel)

        def report(done, _total, task, i=index, label=label):
            if progress is not None:
                progress((i * per_state + done) / (len(states) * per_state),
                         f"{label}: {task or 'done'}")

        def compute(missing: list[str], run=run, report=report):
            with MODELS.use(spec.source, spec.device, spec.dtype, limits) as held:
                if run is not None:
                    run.apply(held.model)  # restored by MODELS.use on the way out
                return zero_shot(held.model, held.tokenizer, missing, settings.limit,
                                 batch_size=settings.batch_size, cancel=cancel, progress=report)

        config = None if run is None else run.result.config
        results.append((config, cached_zero_shot(identity_of[label], settings.tasks,
                                                 settings.limit, settings.batch_size, compute,
                                                 cache_dir=cache_dir)))
    return zero_shot_table(results)
