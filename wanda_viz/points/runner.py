"""The one point runner: hold the model, back up, apply a change, evaluate, restore, cache.

Every analysis that evaluates a changed model (the sweep, the comparison-group ablation, the why
interventions; zero-shot accuracy and attention-sink interventions next) builds ``Change`` and
``Metric`` objects and calls ``PointRunner.run``. For each point the runner

1. checks the ``CancelToken`` (between points; ``prune_model`` and ``perplexity`` check inside);
2. builds the key (``point_key``: change, metric, model fingerprint, calibration if used,
   version) and serves a well-formed cached row when there is one;
3. otherwise takes the model (``model_for_point``: a service takes its shared model per point,
   so other jobs run in between), backs up its dense weights once (``WeightBackup``), applies the
   change, evaluates the metric, and restores the dense weights in ``finally`` (hooks are removed
   by the change's context) - also on error and on ``Cancelled``;
4. stores the row (change info + metric values + ``eval_s``), unless a metric value is not finite.

Rows come back as dicts with ``key`` and ``cached``; the analyses add their labels.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn
from tqdm.auto import tqdm

from ..cancel import CancelToken, check_cancelled
from ..layers import WeightBackup
from .cache import PointCache, point_key
from .changes import Change
from .metrics import Metric, Perplexity
from .setup import EvalSetup

__all__ = ["ModelHold", "PointRunner"]

logger = logging.getLogger(__name__)

# A factory of context managers yielding the dense model, entered around each computed point.
ModelHold = Callable[[], AbstractContextManager[nn.Module]]


class PointRunner:
    """Evaluates changed versions of one dense model against one ``EvalSetup``.

    Args:
        model: the DENSE model (dense again after every point).
        setup: what every point is evaluated against (``resolve_eval_setup``).
        model_for_point: entered around each computed point and around ``hold()``, yielding the
            dense model; None = ``model`` throughout.
        dense: an existing ``WeightBackup`` of the dense weights (None = taken when first
            needed, while the model is held).
        cancel: checked between points and passed to the change and the metric.
        metric: the default metric (``Perplexity()``).
    """

    def __init__(self, model: nn.Module, setup: EvalSetup, *,
                 model_for_point: ModelHold | None = None, dense: WeightBackup | None = None,
                 cancel: CancelToken | None = None, metric: Metric | None = None):
        self.model, self.setup, self.cancel = model, setup, cancel
        self.metric = metric or Perplexity()
        self._hold = model_for_point or (lambda: nullcontext(model))
        self._backup = dense
        self.cache = PointCache(setup.cache_dir) if setup.fingerprint is not None else None

    @contextmanager
    def hold(self) -> Iterator[nn.Module]:
        """The dense model, held (for work between points, e.g. a dense statistics pass)."""
        with self._hold() as model:
            yield model

    def key(self, change: Change, metric: Metric | None = None) -> str:
        """The cache key of a point (see ``cache.point_key``)."""
        metric = metric or self.metric
        setup = self.setup
        return point_key(change=change.key(), metric=metric.key(setup),
                         model=setup.fingerprint["fingerprint"] if setup.fingerprint else None,
                         calibration=setup.calibration_key if change.uses_calibration else None,
                         version=setup.version)

    @torch.no_grad()
    def run(self, change: Change, metric: Metric | None = None) -> dict:
        """One point: the cached row when there is a well-formed one, else computed and stored.

        Returns:
            {change info columns, metric columns, "eval_s", "key", "cached"}.
        """
        metric = metric or self.metric
        check_cancelled(self.cancel)
        key = self.key(change, metric)
        if self.cache is not None:
            row = self.cache.read(key, change.columns, metric.columns)
            if row is not None:
                return {**row, "key": key, "cached": True}
        row = self._compute(change, metric)
        problem = PointCache.problem(row, change.columns, metric.columns)
        if problem:
            logger.warning("point %s not cached: the computed row %s", key[:12], problem)
        elif self.cache is not None:
            self.cache.write(key, row, {"change": change.key(), "metric": metric.key(self.setup),
                                        "model": self.setup.fingerprint})
        return {**row, "key": key, "cached": False}

    def run_all(self, changes: Sequence[Change], *, desc: str = "points",
                callback: Callable[[int, int, dict], None] | None = None,
                show_progress: bool = True) -> list[dict]:
        """``run`` each change in order; ``callback(done, total, row)`` after each."""
        rows = []
        for done, change in enumerate(tqdm(changes, desc=desc, disable=not show_progress), 1):
            rows.append(self.run(change))
            if callback is not None:
                callback(done, len(changes), rows[-1])
        return rows

    def _compute(self, change: Change, metric: Metric) -> dict:
        with self.hold() as model:
            if change.changes_weights and self._backup is None:
                self._backup = WeightBackup(model)  # taken while the model is held
            try:
                with change.apply(model, self.setup, self.cancel) as info:
                    start = time.perf_counter()
                    values = metric.evaluate(model, self.setup, self.cancel)
                    eval_s = time.perf_counter() - start
                return {**info, **values, "eval_s": eval_s}
            finally:
                if change.changes_weights:
                    self._backup.restore(model)  # dense again before anyone else gets it
