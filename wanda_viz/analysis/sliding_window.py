"""StreamingLLM's demonstration: window attention collapses unless the first tokens are kept.

Xiao et al. (arXiv 2309.17453; mit-han-lab/streaming-llm ``StartRecentKVCache``) keep the first
``start_size = 4`` tokens and the last ``recent_size`` tokens of the KV cache. Here each token sees
only the last ``window`` tokens (itself included), with or without the first ``sink_tokens``
tokens as well.

Positions (NOTE: a deliberate deviation from the reference): the reference re-assigns positions
inside the cache (``pos_shift``: keys at their cache slots 0..n-1, the query at n), which needs
per-family rotary code and token-by-token decoding. We use an attention mask with the ORIGINAL
positions instead: one forward pass per text chunk with a 4D additive mask (query t may attend to
key j iff t - window < j <= t, or j < sink_tokens when sinks are kept) and explicit
``position_ids = 0..T-1``. Every transformers causal LM accepts such a mask, the pass costs no more
than a normal one, and it equals streaming with the start+recent cache when keys keep their
original rotary positions (test: token-by-token decoding with that cache). pos_shift exists to
keep query-key distances inside the trained context for texts longer than it; our chunks are
shorter than the context, so every distance is one the model was trained on.

Perplexity is measured on the same predictions for every window: query positions
``start..T-2`` of each chunk (``start`` = the largest window), so each curve point restricts every
token scored and full attention is the reference line.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn


__all__ = ["SlidingWindowConfig", "window_keep", "restrict_attention", "text_chunks",
           "count_chunks", "scored_tokens", "window_points", "WINDOW_COLUMNS"]

WINDOW_COLUMNS = ["window", "sink_tokens", "perplexity", "tokens", "cached"]


@dataclass(frozen=True)
class SlidingWindowConfig:
    """Windows to try, tokens kept at the start, and how the long text is cut."""

    windows: tuple[int, ...] = (16, 32, 64, 128, 256)
    sink_tokens: int = 4           # StreamingLLM's start_size
    chunk_len: int = 1024          # tokens per forward pass (one long text chunk)
    max_chunks: int | None = 2

    def __post_init__(self):
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"windows must be positive integers, got {self.windows}")
        if self.sink_tokens < 1:
            raise ValueError(f"sink_tokens must be at least 1, got {self.sink_tokens}")
        if max(self.windows) + 2 > self.chunk_len:
            raise ValueError(f"the largest window ({max(self.windows)}) must be shorter than "
                             f"chunk_len - 1 ({self.chunk_len - 1})")
        if self.max_chunks is not None and self.max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1 or None, got {self.max_chunks}")

    @property
    def start(self) -> int:
        """First query position scored (every window restricts it)."""
        return max(self.windows)


def window_keep(seq_len: int, window: int | None, sink_tokens: int = 0) -> torch.Tensor:
    """Bool (T, T), query x key: True where the query may attend (causal, last ``window`` keys
    including itself, plus the first ``sink_tokens`` keys); ``window`` None = full causal."""
    query = torch.arange(seq_len).unsqueeze(1)
    key = torch.arange(seq_len).unsqueeze(0)
    keep = key <= query
    if window is not None:
        keep &= (key > query - window) | (key < sink_tokens)
    return keep


@contextlib.contextmanager
def restrict_attention(model: nn.Module, window: int | None,
                       sink_tokens: int = 0) -> Iterator[None]:
    """While inside, every forward call of ``model`` gets the sliding-window mask and explicit
    position ids 0..T-1 (a forward pre-hook on the model; removed on exit)."""
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seq_len = ids.shape[1]
        dtype = next(module.parameters()).dtype
        keep = window_keep(seq_len, window, sink_tokens).to(ids.device)
        mask = torch.zeros(seq_len, seq_len, dtype=dtype, device=ids.device)
        mask = mask.masked_fill(~keep, torch.finfo(dtype).min)[None, None]  # (1, 1, T, T)
        kwargs = {**kwargs, "attention_mask": mask.expand(ids.shape[0], 1, -1, -1),
                  "position_ids": torch.arange(seq_len, device=ids.device)[None]
                  .expand(ids.shape[0], -1)}
        return args, kwargs

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def text_chunks(eval_ids: torch.Tensor, config: SlidingWindowConfig) -> torch.Tensor:
    ids = eval_ids.reshape(-1)
    n = ids.numel() // config.chunk_len
    if config.max_chunks is not None:
        n = min(n, config.max_chunks)
    if n == 0:
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than one chunk of "
                         f"{config.chunk_len}")
    return ids[: n * config.chunk_len].view(n, config.chunk_len)   # (n, T)


def count_chunks(eval_ids: torch.Tensor, config: SlidingWindowConfig) -> int:
    """Text chunks evaluated."""
    return text_chunks(eval_ids, config).shape[0]


def scored_tokens(eval_ids: torch.Tensor, config: SlidingWindowConfig) -> int:
    """Predictions each curve point averages over."""
    return text_chunks(eval_ids, config).shape[0] * (config.chunk_len - 1 - config.start)


def window_points(config: SlidingWindowConfig) -> Sequence[tuple[int | None, int]]:
    """(window, sink tokens kept) of every curve point; (None, 0) = full attention."""
    points: list[tuple[int | None, int]] = [(None, 0)]
    for window in config.windows:
        points += [(window, 0), (window, config.sink_tokens)]
    return points
