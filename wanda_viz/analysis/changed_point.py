"""Evaluate a changed model: apply a change, measure a metric, undo the change. Cancellable.

The one place where the sinks analyses evaluate a changed model (massive activations replaced,
attention windows restricted), kept as a single small function so that it can move onto the
shared point runner: a *change* is a factory of context managers that apply the change on enter
and undo it on exit (hooks removed, weights restored), also when the evaluation fails or is
cancelled; a *metric* maps the model to a number (perplexity by the reference protocol, or the
sliding-window perplexity of ``sliding_window``). ``cancel_at_blocks`` lets a long forward pass
stop at a decoder-block boundary.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import torch
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..evaluate import perplexity
from ..models import find_decoder_layers

__all__ = ["ModelChange", "Metric", "cancel_at_blocks", "perplexity_metric", "evaluate_with_change"]

# model -> context manager that applies a change while entered
ModelChange = Callable[[nn.Module], AbstractContextManager]


@contextlib.contextmanager
def cancel_at_blocks(model: nn.Module, cancel: CancelToken | None) -> Iterator[None]:
    """While inside, every decoder block first checks ``cancel`` (raises ``Cancelled``)."""
    if cancel is None:
        yield
        return
    _, blocks = find_decoder_layers(model)
    handles = [block.register_forward_pre_hook(lambda module, args: check_cancelled(cancel))
               for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


Metric = Callable[[nn.Module], float]


def perplexity_metric(eval_ids: torch.Tensor, seq_len: int,
                      max_windows: int | None = None) -> Metric:
    """The reference perplexity of a model on ``eval_ids`` (1, n_tokens), as a metric."""
    return lambda model: perplexity(model, eval_ids, seq_len, max_windows=max_windows,
                                    show_progress=False)


@torch.no_grad()
def evaluate_with_change(model: nn.Module, change: ModelChange | None, metric: Metric, *,
                         cancel: CancelToken | None = None) -> float:
    """``metric(model)`` with ``change`` applied; the change is undone on return, also on error.

    Args:
        change: None = the unchanged model.
        metric: e.g. ``perplexity_metric(eval_ids, seq_len)``.
        cancel: checked before the evaluation and at every decoder block.
    """
    check_cancelled(cancel)
    with (change(model) if change is not None else contextlib.nullcontext()), \
            cancel_at_blocks(model, cancel):
        return metric(model)
