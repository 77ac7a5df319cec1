"""Attention sinks: how much attention every head puts on the tokens carrying massive activations.

Sun et al. (arXiv 2402.17762, section 4) find that the tokens with massive activations (the first
token, the first delimiter) attract most of the attention of most heads; Xiao et al. (StreamingLLM,
arXiv 2309.17453) call them attention sinks. docs/PROTOCOLS.md: the first-token attention of a head
is the mean, over windows and query positions 1..T-1, of the attention probability on position 0
(eager attention, after softmax), i.e. exactly what ``output_attentions=True`` returns.

One forward pass over the calibration windows, on the eager path for that pass only
(``attention_probe.eager_attention``), records per block and head:

* ``first_token``: mean attention on position 0 (queries 1..T-1);
* ``other_massive``: mean attention on the other tokens that carry massive activations in that
  window (flagged at any block output with the rule of ``why_activations.flag_massive``: channels
  from the activation report, ``|h| > min_abs`` and ``> min_ratio x`` the window's median), summed
  over those tokens, over the queries that follow the first of them;
* the implicit bias of every block (``sinks_bias``): constancy of the first token's part of the
  attention output against the rest's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..captions import calibration_caption
from ..layers import find_decoder_layers, model_device
from .attention_probe import AttentionCall, cancel_at_blocks, eager_attention, record_attention
from .outliers import ActivationReport, find_massive_activations
from .sinks_bias import BIAS_COLUMNS, DirectionStats, bias_row, split_sink_output
from .why_activations import flag_massive

__all__ = ["MassiveRule", "SinkReport", "collect_sink_report", "TOKEN_COLUMNS"]

logger = logging.getLogger(__name__)

ACCUMULATE = torch.float64
TOKEN_COLUMNS = ["window", "position", "token_id", "token"]
MAX_TOKEN_ROWS = 500  # massive-token table rows kept (the counts use every window)


@dataclass(frozen=True)
class MassiveRule:
    """Where massive activations are (from an activation report) and the rule that flags them."""

    channels: tuple[int, ...]       # residual channels with a massive activation in some block
    blocks: tuple[int, ...]         # blocks whose output has one
    min_abs: float = 100.0
    min_ratio: float = 1000.0

    @classmethod
    def from_report(cls, report: ActivationReport, *, min_abs: float = 100.0,
                    min_ratio: float = 1000.0) -> MassiveRule:
        massive = find_massive_activations(report, min_abs=min_abs, min_ratio=min_ratio)
        order = massive.sort_values("abs", ascending=False)
        return cls(tuple(dict.fromkeys(int(c) for c in order["channel"])),
                   tuple(sorted({int(b) for b in massive["block_index"]})), min_abs, min_ratio)

    def describe(self) -> str:
        if not self.channels:
            return (f"no massive activations (|h| > {self.min_abs:g} and > {self.min_ratio:g} x "
                    "median)")
        return (f"massive activations (|h| > {self.min_abs:g} and > {self.min_ratio:g} x the "
                f"window's median |h|) in channels {list(self.channels)} of blocks "
                f"{self.blocks[0]}-{self.blocks[-1]}")


@dataclass
class SinkReport:
    """Attention on the sink tokens per block and head, and the implicit bias (CPU, picklable).

    Attributes:
        first_token: (n_layers, n_heads) mean attention probability on position 0.
        other_massive: (n_layers, n_heads) mean summed attention on the other massive tokens
            (NaN when no window has one).
        other_queries: queries behind ``other_massive`` (0 when NaN).
        bias: per block, ``sinks_bias.BIAS_COLUMNS``.
        massive_tokens: massive tokens other than position 0 (``TOKEN_COLUMNS``, at most
            ``MAX_TOKEN_ROWS`` rows); ``n_other_tokens`` counts them all.
        first_token_massive: windows whose position 0 carries a massive activation.
    """

    block_names: list[str]
    attention_names: list[str]
    first_token: torch.Tensor
    other_massive: torch.Tensor
    other_queries: int
    bias: pd.DataFrame
    massive_tokens: pd.DataFrame
    n_other_tokens: int
    first_token_massive: int
    rule: MassiveRule
    n_windows: int
    seq_len: int
    calibration: dict | None = None
    model_name: str | None = None

    @property
    def carrying_blocks(self) -> list[int]:
        """Blocks whose INPUT carries massive activations (the block after each one whose output
        does): their attention sees the massive tokens."""
        return [b + 1 for b in self.rule.blocks if b + 1 < len(self.block_names)]

    def protocol(self) -> str:
        return (f"eager attention probabilities after softmax, mean over {self.n_windows} windows "
                f"and query positions 1..{self.seq_len - 1} "
                f"({calibration_caption(self.calibration)});"
                f" {self.rule.describe()}")


@dataclass
class _Batch:
    """Per-batch column sums and diagonals of the attention of every block, (b, H, T) each."""

    colsum: dict[int, torch.Tensor] = field(default_factory=dict)
    diagonal: dict[int, torch.Tensor] = field(default_factory=dict)
    flags: torch.Tensor | None = None        # (b, T) massive at some block output


class _Accumulator:
    """Everything ``collect_sink_report`` sums over windows."""

    def __init__(self, n_layers: int, rule: MassiveRule):
        self.rule, self.n_layers = rule, n_layers
        self.first: list[torch.Tensor | None] = [None] * n_layers
        self.other: list[torch.Tensor | None] = [None] * n_layers
        self.sink = [DirectionStats() for _ in range(n_layers)]
        self.rest = [DirectionStats() for _ in range(n_layers)]
        self.queries = self.other_queries = self.windows = self.first_massive = 0
        self.tokens: list[tuple[int, int]] = []   # (window, position)
        self.n_other_tokens = 0
        self.batch = _Batch()

    def on_attention(self, call: AttentionCall) -> None:
        probs = call.probs.detach()
        colsum = probs.sum(dim=2).to(ACCUMULATE)                      # (b, H, T)
        diagonal = probs.diagonal(dim1=2, dim2=3).to(ACCUMULATE)      # (b, H, T)
        first = probs[:, :, 1:, 0].to(ACCUMULATE).sum(dim=(0, 2)).cpu()  # (H,) queries 1..T-1
        i = call.block_index
        self.first[i] = first if self.first[i] is None else self.first[i] + first
        self.batch.colsum[i], self.batch.diagonal[i] = colsum, diagonal
        sink, rest = split_sink_output(call)                           # (b, T, hidden)
        self.sink[i].add(sink[:, 1:])
        self.rest[i].add(rest[:, 1:])

    def on_block(self, hidden: torch.Tensor) -> None:
        if not self.rule.channels:
            return
        index = torch.tensor(self.rule.channels, device=hidden.device)
        flags = flag_massive(hidden, index, self.rule.min_abs, self.rule.min_ratio).any(-1)
        self.batch.flags = flags if self.batch.flags is None else self.batch.flags | flags

    def end_batch(self, batch_size: int, seq_len: int, offset: int) -> None:
        self.queries += batch_size * (seq_len - 1)
        self.windows += batch_size
        flags = self.batch.flags
        if flags is not None:
            flags = flags.cpu()
            self.first_massive += int(flags[:, 0].sum())
            for w in range(batch_size):
                self._add_other(w, torch.nonzero(flags[w, 1:]).flatten() + 1, seq_len, offset)
        self.batch = _Batch()

    def _add_other(self, w: int, positions: torch.Tensor, seq_len: int, offset: int) -> None:
        if positions.numel() == 0:
            return
        self.n_other_tokens += positions.numel()
        self.tokens += [(offset + w, int(p)) for p in positions[:MAX_TOKEN_ROWS]]
        first = int(positions[0])
        if first >= seq_len - 1:
            return
        self.other_queries += seq_len - 1 - first
        for i in range(self.n_layers):  # queries after ``first``: column sums less p[first, first]
            colsum, diagonal = self.batch.colsum[i][w].cpu(), self.batch.diagonal[i][w].cpu()
            total = colsum[:, positions].sum(dim=-1) - diagonal[:, first]   # (H,)
            self.other[i] = total if self.other[i] is None else self.other[i] + total


def _block_output_hooks(model: nn.Module, on_block) -> list:
    _, blocks = find_decoder_layers(model)

    def hook(module, args, output):
        on_block(output[0] if isinstance(output, (tuple, list)) else output)
    return [block.register_forward_hook(hook) for block in blocks]


def _report(acc: _Accumulator, sites, block_names, calib_ids, tokenizer, **extra) -> SinkReport:
    first = torch.stack(acc.first) / acc.queries
    heads = first.shape[1]
    other = (torch.stack([o if o is not None else torch.zeros(heads, dtype=ACCUMULATE)
                          for o in acc.other]) / acc.other_queries if acc.other_queries
             else torch.full_like(first, float("nan")))
    bias = pd.DataFrame([bias_row(name, i, acc.sink[i], acc.rest[i])
                         for i, name in enumerate(block_names)], columns=BIAS_COLUMNS)
    rows = [{"window": w, "position": p, "token_id": int(calib_ids[w, p]),
             "token": tokenizer.decode([int(calib_ids[w, p])]) if tokenizer is not None
             else f"<{int(calib_ids[w, p])}>"} for w, p in acc.tokens[:MAX_TOKEN_ROWS]]
    return SinkReport(block_names, [s.name for s in sites], first, other,
                      acc.other_queries, bias, pd.DataFrame(rows, columns=TOKEN_COLUMNS),
                      acc.n_other_tokens, acc.first_massive, acc.rule, acc.windows,
                      int(calib_ids.shape[1]), **extra)


@torch.no_grad()
def collect_sink_report(model: nn.Module, calib_ids: torch.Tensor, rule: MassiveRule, *,
                        tokenizer=None, batch_size: int = 4, cancel: CancelToken | None = None,
                        calibration: dict | None = None,
                        model_name: str | None = None) -> SinkReport:
    """One eager forward pass over ``calib_ids`` (n, T): attention on the sinks and the bias.

    The model's attention implementation is restored afterwards and every hook removed, also on
    error or cancellation; no weight is touched.
    """
    prefix, blocks = find_decoder_layers(model)
    if calib_ids.shape[1] < 2:
        raise ValueError("need windows of at least 2 tokens (queries 1..T-1)")
    acc = _Accumulator(len(blocks), rule)
    device = model_device(model)
    handles = _block_output_hooks(model, acc.on_block)
    try:
        with eager_attention(model), \
                record_attention(model, acc.on_attention) as (sites, check_recorded), \
                cancel_at_blocks(model, cancel):
            for offset in range(0, calib_ids.shape[0], batch_size):
                check_cancelled(cancel)
                batch = calib_ids[offset:offset + batch_size]
                model(batch.to(device), use_cache=False)
                check_recorded()
                acc.end_batch(batch.shape[0], batch.shape[1], offset)
    finally:
        for handle in handles:
            handle.remove()
    return _report(acc, sites, [f"{prefix}.{i}" for i in range(len(blocks))], calib_ids,
                   tokenizer, calibration=calibration, model_name=model_name)
