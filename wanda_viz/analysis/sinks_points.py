"""The perplexity points of the sinks analyses: all-block interventions and the sliding window.

Every point is ``changed_point.evaluate_with_change`` (apply a change, measure, undo) wrapped in
the why analyses' disk cache (``why.cached_point``: a SHA-256 over the model fingerprint, the
calibration and evaluation protocol, the library version and the point's settings). Cancellation
is checked between points and at every decoder block.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import pandas as pd
import torch

from ..cancel import CancelToken, check_cancelled
from ..evaluate import count_eval_windows
from .changed_point import evaluate_with_change, perplexity_metric
from .sinks_interventions import BlockMeans, replace_in_all_blocks, replace_random_activations
from .sliding_window import (WINDOW_COLUMNS, SlidingWindowConfig, restrict_attention,
                             scored_tokens, tail_perplexity_metric, window_points)
from .why import ModelHold, cached_point, why_context
from .why_activations import INTERVENTIONS

__all__ = ["PointCache", "INTERVENTION_COLUMNS", "intervention_table", "window_table"]

INTERVENTION_COLUMNS = ["target", "mode", "seed", "perplexity", "replaced", "first_token",
                        "windows", "cached"]


@dataclass
class PointCache:
    """What the on-disk cache key needs; ``fingerprint`` None = no cache."""

    fingerprint: dict | None = None
    calibration: dict | None = None
    eval_label: str = "evaluation text"
    cache_dir: str | None = None


def _context(cache: PointCache, calib_ids, eval_ids, seq_len, max_windows):
    return why_context(cache.fingerprint, calib_ids, eval_ids, calibration=cache.calibration,
                       eval_label=cache.eval_label, seq_len=seq_len, max_windows=max_windows)


def _recording(factory, record: dict):
    """``factory``'s change, keeping the counter its context manager yields in ``record``."""
    @contextlib.contextmanager
    def change(model):
        with factory(model) as counter:
            record["counter"] = counter
            yield
    return change


def intervention_table(hold: ModelHold, calib_ids: torch.Tensor, eval_ids: torch.Tensor,
                       means: BlockMeans, *, seq_len: int, max_windows: int | None,
                       seeds: tuple[int, ...], cache: PointCache,
                       cancel: CancelToken | None = None) -> tuple[pd.DataFrame, dict]:
    """Dense, massive (zero, mean) and random (zero, mean, per seed) perplexity points.

    Args:
        hold: entered around each computed point, yields the dense model (``why.holder``).

    Returns:
        (table with ``INTERVENTION_COLUMNS``, shared protocol columns of ``why_context``).
    """
    context, shared = _context(cache, calib_ids, eval_ids, seq_len, max_windows)
    windows = count_eval_windows(eval_ids.numel(), seq_len, max_windows)
    metric = perplexity_metric(eval_ids, seq_len, max_windows)
    sites = [{"block": s.block, "channels": s.channels, "means": s.means} for s in means.sites]
    rule = {"min_abs": means.sites[0].min_abs, "min_ratio": means.sites[0].min_ratio}
    points = [("dense", "none", None)] + [("massive", mode, None) for mode in INTERVENTIONS] + \
        [("random", mode, seed) for mode in INTERVENTIONS for seed in seeds]
    rows = []
    for target, mode, seed in points:
        check_cancelled(cancel)
        if target == "dense":
            factory = None
        elif target == "massive":
            factory = functools.partial(replace_in_all_blocks, sites=means.sites, mode=mode)
        else:
            factory = functools.partial(replace_random_activations, means=means, mode=mode,
                                        seed=seed)
        settings = {"analysis": "sinks-intervention", "target": target, "mode": mode,
                    "seed": seed, "sites": sites, **rule, "columns": INTERVENTION_COLUMNS}

        def compute(target=target, mode=mode, seed=seed, factory=factory) -> dict:
            record: dict = {}
            change = _recording(factory, record) if factory is not None else None
            with hold() as model:
                ppl = evaluate_with_change(model, change, metric, cancel=cancel)
            counter = record.get("counter") or {"replaced": 0, "first_token": 0}
            return {"target": target, "mode": mode, "seed": seed, "perplexity": ppl,
                    "replaced": counter["replaced"], "first_token": counter["first_token"],
                    "windows": windows}
        rows.append(cached_point(settings, context, compute, cache_dir=cache.cache_dir))
    return pd.DataFrame(rows, columns=INTERVENTION_COLUMNS), shared


def window_table(hold: ModelHold, calib_ids: torch.Tensor, eval_ids: torch.Tensor,
                 config: SlidingWindowConfig, *, cache: PointCache,
                 cancel: CancelToken | None = None) -> pd.DataFrame:
    """Tail perplexity with full attention and with every window, with and without sinks.

    Args:
        hold: entered around each computed point, yields the dense model (``why.holder``).

    Returns:
        DataFrame with ``WINDOW_COLUMNS``; window None (NaN) = full attention.
    """
    context, _ = _context(cache, calib_ids, eval_ids, config.chunk_len, config.max_chunks)
    metric = tail_perplexity_metric(eval_ids, config)
    tokens = scored_tokens(eval_ids, config)
    rows = []
    for window, sinks in window_points(config):
        check_cancelled(cancel)
        settings = {"analysis": "sinks-window", "window": window, "sink_tokens": sinks,
                    "chunk_len": config.chunk_len, "max_chunks": config.max_chunks,
                    "start": config.start, "columns": WINDOW_COLUMNS}

        def compute(window=window, sinks=sinks) -> dict:
            change = functools.partial(restrict_attention, window=window, sink_tokens=sinks)
            with hold() as model:
                ppl = evaluate_with_change(model, change, metric, cancel=cancel)
            return {"window": window, "sink_tokens": sinks, "tokens": tokens, "perplexity": ppl}
        rows.append(cached_point(settings, context, compute, cache_dir=cache.cache_dir))
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)
