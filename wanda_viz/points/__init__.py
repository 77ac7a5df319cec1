"""Points: one runner for everything that evaluates a changed model (see ``runner``).

``resolve_eval_setup`` -> ``EvalSetup`` (resolved once per job); ``PointRunner(model, setup)``;
``runner.run(change, metric)`` with a ``Change`` (``Dense``, ``Prune``, ``WeightEdit``,
``ForwardHooks`` or a subclass) and a ``Metric`` (``Perplexity`` or a subclass); one on-disk
cache (``PointCache``) keyed by ``point_key``.
"""
from .cache import (CACHE_ENV, PointCache, default_cache_dir, model_fingerprint, point_key,
                    tensor_sha256)
from .changes import PRUNE_COLUMNS, Change, Dense, ForwardHooks, Prune, WeightEdit
from .metrics import Metric, Perplexity
from .runner import ModelHold, PointRunner
from .setup import EvalSetup, library_version, resolve_eval_setup

__all__ = [
    "CACHE_ENV", "PointCache", "default_cache_dir", "model_fingerprint", "point_key",
    "tensor_sha256", "PRUNE_COLUMNS", "Change", "Dense", "ForwardHooks", "Prune", "WeightEdit",
    "Metric", "Perplexity", "ModelHold", "PointRunner", "EvalSetup", "library_version",
    "resolve_eval_setup",
]
