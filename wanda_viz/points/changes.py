"""Changes a point applies to the dense model: none, a pruning, a weight edit, forward hooks.

A ``Change`` says what identifies it (``key()``, part of the cache key), whether the calibration
windows enter its result (``uses_calibration``), whether it writes weights (``changes_weights``:
the runner then restores the dense weights from its ``WeightBackup`` afterwards, also on error or
``Cancelled``) and which info columns it reports (``columns``, e.g. achieved sparsity). ``apply``
is a context manager: entering changes the model and yields the info dict (it may keep filling
it while the metric runs, e.g. a hook's counters); leaving removes whatever it installed (hooks).
A new kind of change (all-layer interventions, sliding-window attention ...) is a subclass, or a
``WeightEdit`` / ``ForwardHooks`` built with a function.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

from torch import nn

from ..cancel import CancelToken
from ..pruning import PruneConfig, prune_model

__all__ = ["Change", "Dense", "Prune", "WeightEdit", "ForwardHooks", "PRUNE_COLUMNS"]

_RESULT_FREE = ("batch_size", "offload", "exec_device", "store_masks")  # change no result
PRUNE_COLUMNS = ("achieved_sparsity", "prune_s", "forward_s", "total_s")


class Change:
    """Base class: the dense model, unchanged (subclasses override what differs)."""

    uses_calibration: bool = False
    changes_weights: bool = False
    columns: tuple[str, ...] = ()

    def key(self) -> dict:
        raise NotImplementedError

    @contextlib.contextmanager
    def apply(self, model: nn.Module, setup, cancel: CancelToken | None) -> Iterator[dict]:
        yield {}


class Dense(Change):
    """No change: the dense model (one cached point shared by every analysis of a setup)."""

    def key(self) -> dict:
        return {"change": "dense"}


@dataclass(frozen=True)
class Prune(Change):
    """Prune the model with ``config`` (``prune_model``; the ablation's group is in the config).

    The setup's ``batch_size`` is used and masks are not kept (neither changes the result).
    """

    config: PruneConfig
    changes_weights = True
    columns = PRUNE_COLUMNS

    @property
    def uses_calibration(self) -> bool:  # type: ignore[override]
        return self.config.needs_calibration

    def key(self) -> dict:
        settings = {k: v for k, v in self.config.to_dict().items() if k not in _RESULT_FREE}
        return {"change": "prune", "config": settings}

    @contextlib.contextmanager
    def apply(self, model: nn.Module, setup, cancel: CancelToken | None) -> Iterator[dict]:
        config = replace(self.config, batch_size=setup.batch_size, store_masks=False)
        calib_ids = setup.calib_ids if config.needs_calibration else None
        result = prune_model(model, calib_ids, config, cancel=cancel)
        timings = result.timings
        yield {"achieved_sparsity": result.overall_sparsity,
               "prune_s": timings.get("prune_s", 0.0),
               "forward_s": timings.get("forward_s", 0.0) + timings.get("capture_s", 0.0),
               "total_s": timings.get("total_s", 0.0)}


@dataclass(frozen=True)
class WeightEdit(Change):
    """Any in-place edit of PRUNABLE weights: ``edit(model) -> info dict``.

    Attributes:
        name / settings: what the edit is (its cache key; settings must be JSON-able).
        uses_calibration: the edit was derived from the calibration windows (e.g. their norms).
    NOTE: the runner restores the prunable weights only (``WeightBackup``); an edit of other
    parameters must be a ``Change`` subclass that restores them when ``apply`` exits.
    """

    name: str
    settings: dict
    edit: Callable[[nn.Module], dict] = field(compare=False)
    uses_calibration: bool = False
    columns: tuple[str, ...] = ()
    changes_weights = True

    def key(self) -> dict:
        return {"change": self.name, **self.settings}

    @contextlib.contextmanager
    def apply(self, model: nn.Module, setup, cancel: CancelToken | None) -> Iterator[dict]:
        yield self.edit(model)


@dataclass(frozen=True)
class ForwardHooks(Change):
    """Hooks that change activations while the metric runs: ``install(model)`` is a context
    manager that adds them, yields an info dict (e.g. counters) and removes them on exit."""

    name: str
    settings: dict
    install: Callable[[nn.Module], AbstractContextManager[dict]] = field(compare=False)
    uses_calibration: bool = False
    columns: tuple[str, ...] = ()

    def key(self) -> dict:
        return {"change": self.name, **self.settings}

    @contextlib.contextmanager
    def apply(self, model: nn.Module, setup, cancel: CancelToken | None) -> Iterator[dict]:
        with self.install(model) as info:
            yield info
