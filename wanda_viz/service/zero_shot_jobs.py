"""Dashboard job: zero-shot accuracy of the dense model and of the session's runs.

Every (state, task) is one point of the one point runner (``ZeroShot`` metric with that task), so
it is cached by the ``PointCache`` under the one key: asking again, or with one more task,
computes only what is new, and the shared model is taken per point, so other users' jobs wait at
most one task. A session run is applied from its kept masks (``RunState``: no re-pruning) and
keyed as the ``Prune`` point of its config, so its rows are the sweep's points'.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..cancel import CancelToken
from ..points import Change, Dense, PointRunner, Prune, model_fingerprint
from ..zeroshot import (ZeroShot, ZeroShotSettings, check_zero_shot, result_from_row,
                        zero_shot_runner, zero_shot_table)
from .cache import MODELS
from .jobs import _model_per_point
from .limits import Limits
from .session import RunRecord, Session

__all__ = ["ZERO_SHOT_LIMIT_ENV", "CPU_ZERO_SHOT_LIMIT", "GPU_ZERO_SHOT_LIMIT",
           "default_zero_shot_limit", "RunState", "zero_shot_job"]

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


@dataclass(frozen=True)
class RunState(Change):
    """A session run's pruned state, rebuilt from its kept masks (and SparseGPT's kept values):
    the same weights as ``Prune(config)`` on the session's windows, hence the same key."""

    run: RunRecord = field(compare=False)
    changes_weights = True

    @property
    def _prune(self) -> Prune:
        return Prune(self.run.result.config)

    @property
    def uses_calibration(self) -> bool:  # type: ignore[override]
        return self._prune.uses_calibration

    def key(self) -> dict:
        return self._prune.key()

    @contextlib.contextmanager
    def apply(self, model, setup, cancel: CancelToken | None) -> Iterator[dict]:
        self.run.apply(model)  # the runner restores the dense weights afterwards
        yield {}


def _point_runner(session: Session, limits: Limits, cancel: CancelToken | None,
                  cache_dir: str | os.PathLike | None) -> tuple[PointRunner, object]:
    """A runner over the session's model and windows that takes the shared model per point,
    and the tokenizer."""
    spec = session.model
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        runner = zero_shot_runner(
            entry.model, fingerprint=model_fingerprint(spec.source, model=entry.model),
            calib_ids=session.calib_ids, calibration=session.calibration, cache_dir=cache_dir,
            evaluation=session.eval_spec, model_for_point=_model_per_point(spec, limits),
            dense=entry.backup, cancel=cancel)
        return runner, entry.tokenizer


def zero_shot_job(session: Session, settings: ZeroShotSettings, *, limits: Limits,
                  cancel: CancelToken | None = None,
                  progress: Callable[[float, str], None] | None = None,
                  cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per (state, task): dense first, then the session's runs in their order.

    ``progress(fraction, description)`` follows tasks across all states; ``cancel`` is checked
    between points (tasks) and before every forward pass of the harness.
    """
    check_zero_shot(settings.tasks, settings.limit)  # data and harness present, before any work
    runner, tokenizer = _point_runner(session, limits, cancel, cache_dir)
    states = [("dense", None, Dense()),
              *((label, run, RunState(run)) for label, run in session.runs.items())]
    total = len(states) * len(settings.tasks)
    results = []
    for index, (label, run, change) in enumerate(states):
        scored = []
        for position, task in enumerate(settings.tasks):
            step = index * len(settings.tasks) + position
            metric = ZeroShot(ZeroShotSettings((task,), settings.limit, settings.batch_size),
                              tokenizer=tokenizer,
                              progress=_report(progress, step, total, f"{label}: {task}"))
            scored.append(result_from_row(runner.run(change, metric)))
        merged = dataclasses.replace(scored[0], scores=tuple(s.scores[0] for s in scored))
        results.append((None if run is None else run.result.config, merged))
    if progress is not None:
        progress(1.0, "done")
    return zero_shot_table(results)


def _report(progress, step: int, total: int, description: str):
    if progress is None:
        return None
    return lambda done, _total, _task: progress((step + min(done, 1.0)) / total, description)
