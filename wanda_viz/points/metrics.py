"""Metrics a point is evaluated with: perplexity now; zero-shot accuracy is another ``Metric``.

A ``Metric`` names itself and its settings, including the data it reads (``key(setup)``, part of
the cache key), lists the columns it returns (``columns``: each value a finite number or a dict
of them, e.g. ``{"accuracy": {"boolq": 0.62, ...}}``; the cache refuses rows where one is
missing or not finite) and evaluates the model in memory (``evaluate(model, setup, cancel)``).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..cancel import CancelToken
from ..evaluate import perplexity

__all__ = ["Metric", "Perplexity"]


class Metric:
    """Base class of point metrics (see the module docstring)."""

    name: str = ""
    columns: tuple[str, ...] = ()

    def key(self, setup) -> dict:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, setup, cancel: CancelToken | None) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Perplexity(Metric):
    """Perplexity on the setup's evaluation text by the reference protocol (``evaluate.py``)."""

    name = "perplexity"
    columns = ("perplexity",)

    def key(self, setup) -> dict:
        return {"metric": self.name, "label": setup.eval_label, "seq_len": setup.seq_len,
                "max_windows": setup.max_windows, "ids_sha256": setup.eval_ids_sha256}

    def evaluate(self, model: nn.Module, setup, cancel: CancelToken | None) -> dict:
        if setup.eval_ids is None:
            raise ValueError("perplexity needs an evaluation text (EvalSetup.eval_ids)")
        return {"perplexity": perplexity(model, setup.eval_ids, setup.seq_len,
                                         max_windows=setup.max_windows,
                                         batch_size=setup.eval_batch_size, show_progress=False,
                                         cancel=cancel)}

