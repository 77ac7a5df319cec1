"""Tab 1's prunes (the comparison, one method, a preset) as points of the one ``PointRunner``.

Each config is a ``KeptPrune`` change: the runner prunes the dense model, evaluates it and
restores the dense weights in ``finally`` (also on error and on ``Cancelled``), exactly as for a
sweep point; the change additionally hands the pruned model to ``capture`` after the metric has
run and before the restore, so the dashboard keeps what it shows of the run (a ``RunRecord``:
packed masks, SparseGPT's kept weights). Nothing is cached on disk here: a cached row would skip
the capture (the setup carries no fingerprint). Without an evaluation text the metric is
``NoMetric`` (the runs have no perplexity).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..cancel import CancelToken
from ..config import EvalConfig, PruneConfig
from ..layers import WeightBackup
from ..points import Dense, Metric, Perplexity, PointRunner, Prune, resolve_eval_setup
from ..pruning import prune_model
from ..result import PruneResult
from .session import RunRecord

__all__ = ["KeptPrune", "NoMetric", "PruneRuns", "prune_runs"]


@dataclass(frozen=True)
class KeptPrune(Prune):
    """``Prune`` that keeps its ``PruneResult`` (with masks, the config's ``store_masks``) and
    calls ``capture(model, result)`` while the model is still pruned."""

    capture: Callable[[nn.Module, PruneResult], None] | None = field(default=None, compare=False)
    model_name: str | None = field(default=None, compare=False)

    @contextlib.contextmanager
    def apply(self, model: nn.Module, setup, cancel: CancelToken | None) -> Iterator[dict]:
        calib_ids = setup.calib_ids if self.config.needs_calibration else None
        result = prune_model(model, calib_ids, self.config, calibration=setup.calibration,
                             model_name=self.model_name, cancel=cancel)
        timings = result.timings  # the same info columns as ``Prune``
        yield {"achieved_sparsity": result.overall_sparsity,
               "prune_s": timings.get("prune_s", 0.0),
               "forward_s": timings.get("forward_s", 0.0) + timings.get("capture_s", 0.0),
               "total_s": timings.get("total_s", 0.0)}
        if self.capture is not None:  # after the metric, before the runner restores
            self.capture(model, result)


@dataclass(frozen=True)
class NoMetric(Metric):
    """No evaluation (the user chose no evaluation text)."""

    name = "none"
    columns = ()

    def key(self, setup) -> dict:
        return {"metric": self.name}

    def evaluate(self, model: nn.Module, setup, cancel: CancelToken | None) -> dict:
        return {}


@dataclass
class PruneRuns:
    """What ``prune_runs`` returns: dense perplexity and protocol (None without an evaluation
    text or when not asked for) and one ``RunRecord`` per config label, in order."""

    dense_perplexity: float | None = None
    eval_protocol: str | None = None
    runs: dict[str, RunRecord] = field(default_factory=dict)


def prune_runs(model: nn.Module, configs: tuple[PruneConfig, ...], *, calib_ids: torch.Tensor,
               calibration: dict | None, evaluation: EvalConfig,
               eval_data: tuple[torch.Tensor, str] | None, dense: WeightBackup,
               with_dense: bool = True, model_name: str | None = None,
               cancel: CancelToken | None = None) -> PruneRuns:
    """Evaluate dense (if asked) and each config on one runner over the held dense ``model``.

    Args:
        eval_data: (evaluation ids, label), or None without an evaluation text.
        dense: the dense weights' backup (the model cache's); restored after every config.
    """
    eval_ids, label = eval_data if eval_data is not None else (None, "evaluation text")
    setup = resolve_eval_setup(model, evaluation, eval_ids=eval_ids, eval_label=label,
                               calib_ids=calib_ids, calibration=calibration)
    metric = Perplexity() if eval_ids is not None else NoMetric()
    runner = PointRunner(model, setup, dense=dense, cancel=cancel, metric=metric)
    out = PruneRuns()
    if with_dense and eval_ids is not None:
        out.dense_perplexity = runner.run(Dense())["perplexity"]
        out.eval_protocol = setup.eval_protocol
    for config in configs:
        records: list[RunRecord] = []

        def capture(pruned: nn.Module, result: PruneResult) -> None:
            # Packs the masks and stores SparseGPT's kept weights while the model is pruned.
            records.append(RunRecord.capture(pruned, result, calib_ids=calib_ids))

        row = runner.run(KeptPrune(config, capture=capture, model_name=model_name))
        (record,) = records
        record.perplexity = row.get("perplexity")
        out.runs[config.label()] = record
    return out
