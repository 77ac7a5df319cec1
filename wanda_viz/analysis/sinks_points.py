"""The perplexity points of the sinks analyses, on the shared point runner (``points``).

* all-block interventions: ``ForwardHooks`` changes (massive activations of every block, or as
  many random entries, set to zero or to their mean), the runner's default ``Perplexity``;
* the sliding window: ``ForwardHooks`` changes (``restrict_attention``) measured with
  ``TailPerplexity``, a ``Metric`` over long chunks of the evaluation text.

The runner builds the cache key (the one builder), backs up and restores, checks the
``CancelToken`` between points; ``TailPerplexity`` checks it before every chunk.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..evaluate import count_eval_windows
from ..layers import model_device
from ..points import Dense, ForwardHooks, Metric, PointRunner
from .sinks_interventions import BlockMeans, replace_in_all_blocks, replace_random_activations
from .sliding_window import (WINDOW_COLUMNS, SlidingWindowConfig, restrict_attention,
                             scored_tokens, text_chunks, window_points)
from .why_activations import INTERVENTIONS

__all__ = ["INTERVENTION_COLUMNS", "TailPerplexity", "intervention_changes", "window_change",
           "intervention_table", "window_table"]

INTERVENTION_COLUMNS = ["target", "mode", "seed", "perplexity", "replaced", "first_token",
                        "windows", "cached"]
_COUNTS = ("replaced", "first_token")


def _massive(means: BlockMeans, mode: str) -> ForwardHooks:
    sites = [{"block": s.block, "channels": s.channels, "means": s.means} for s in means.sites]
    rule = {"min_abs": means.sites[0].min_abs, "min_ratio": means.sites[0].min_ratio}
    return ForwardHooks("sinks-massive", {"mode": mode, "sites": sites, **rule},
                        lambda model: replace_in_all_blocks(model, means.sites, mode),
                        uses_calibration=True, columns=_COUNTS)


def _random(means: BlockMeans, mode: str, seed: int) -> ForwardHooks:
    sites = [{"block": s.block, "channels": s.channels} for s in means.sites]
    rule = {"min_abs": means.sites[0].min_abs, "min_ratio": means.sites[0].min_ratio}
    return ForwardHooks("sinks-random", {"mode": mode, "seed": seed, "sites": sites, **rule},
                        lambda model: replace_random_activations(model, means, mode, seed),
                        uses_calibration=True, columns=_COUNTS)


def intervention_changes(means: BlockMeans, seeds: tuple[int, ...]) -> list[tuple[dict, object]]:
    """(labels, change) of every point: dense, massive (zero, mean), random (mode x seed)."""
    points: list[tuple[dict, object]] = [({"target": "dense", "mode": "none", "seed": None},
                                          Dense())]
    points += [({"target": "massive", "mode": mode, "seed": None}, _massive(means, mode))
               for mode in INTERVENTIONS]
    points += [({"target": "random", "mode": mode, "seed": seed}, _random(means, mode, seed))
               for mode in INTERVENTIONS for seed in seeds]
    return points


def intervention_table(runner: PointRunner, means: BlockMeans,
                       seeds: tuple[int, ...]) -> pd.DataFrame:
    """Perplexity of every intervention point (``INTERVENTION_COLUMNS``), through ``runner``."""
    setup = runner.setup
    windows = count_eval_windows(setup.eval_ids.numel(), setup.seq_len, setup.max_windows)
    rows = []
    for labels, change in intervention_changes(means, seeds):
        row = runner.run(change)
        rows.append({"replaced": 0, "first_token": 0, **row, **labels, "windows": windows})
    return pd.DataFrame(rows, columns=INTERVENTION_COLUMNS)


@contextlib.contextmanager
def _windowed(model: nn.Module, window: int | None, sink_tokens: int) -> Iterator[dict]:
    with restrict_attention(model, window, sink_tokens):
        yield {}


def window_change(window: int | None, sink_tokens: int) -> ForwardHooks:
    """Each token sees the last ``window`` tokens (+ the first ``sink_tokens``); None = full."""
    return ForwardHooks("sinks-window", {"window": window, "sink_tokens": sink_tokens},
                        lambda model: _windowed(model, window, sink_tokens))


@dataclass(frozen=True)
class TailPerplexity(Metric):
    """exp(mean NLL) of the predictions at query positions ``start..T-2`` of every chunk of
    ``chunk_len`` tokens of the setup's evaluation text (the same predictions for every window)."""

    config: SlidingWindowConfig
    name = "tail-perplexity"
    columns = ("perplexity",)

    def key(self, setup) -> dict:
        config = self.config
        return {"metric": self.name, "label": setup.eval_label, "chunk_len": config.chunk_len,
                "max_chunks": config.max_chunks, "start": config.start,
                "ids_sha256": setup.eval_ids_sha256}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, setup, cancel: CancelToken | None) -> dict:
        if setup.eval_ids is None:
            raise ValueError("the sliding window needs an evaluation text (EvalSetup.eval_ids)")
        start, device, nll, count = self.config.start, model_device(model), 0.0, 0
        for chunk in text_chunks(setup.eval_ids, self.config):
            check_cancelled(cancel)
            batch = chunk[None].to(device)
            logits = model(batch, use_cache=False).logits[0, start:-1]    # (n, vocab)
            targets = batch[0, start + 1:]
            nll += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
            count += targets.numel()
        return {"perplexity": math.exp(nll / count)}


def window_table(runner: PointRunner, config: SlidingWindowConfig) -> pd.DataFrame:
    """Tail perplexity with full attention and with every window, with and without sinks.

    Returns:
        DataFrame with ``WINDOW_COLUMNS``; window None (NaN) = full attention.
    """
    metric = TailPerplexity(config)
    tokens = scored_tokens(runner.setup.eval_ids, config)
    rows = []
    for window, sinks in window_points(config):
        row = runner.run(window_change(window, sinks), metric)
        rows.append({**row, "window": window, "sink_tokens": sinks, "tokens": tokens})
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)
