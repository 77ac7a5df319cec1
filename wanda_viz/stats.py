"""Per-layer input statistics, accumulated from forward hooks during calibration.

``InputNormStats`` is the Wanda statistic (locuslab/wanda lib/layerwrapper.py): per input channel j,
the running mean over calibration sequences of ``||X_j||^2`` (squared L2 norm over the tokens).
``HessianStats`` is SparseGPT's ``H = 2/n X X^T`` (IST-DASLab/sparsegpt sparsegpt.py add_batch).
Both accumulate in float32 even for fp16/bf16 models and use the reference's running-mean update
``s *= n/(n+k); n += k; s += ...`` (k = sequences in the batch).
``InputMomentStats`` is what DSnoT reads (zyxxmu/DSnoT lib/layerwrapper.py @ 4c029df), kept only
when a refinement asks for it (``CalibrationStats(moments=True)``).
"""
from __future__ import annotations

import math

import torch

__all__ = ["STATS_DTYPE", "InputNormStats", "HessianStats", "InputMomentStats",
           "CalibrationStats"]

STATS_DTYPE = torch.float32  # accumulate in fp32 even for fp16/bf16 models


def _as_tokens(inp: torch.Tensor, seq_len: int | None = None) -> tuple[torch.Tensor, int]:
    """(batch, seq, in) or (seq, in) -> ((tokens, in) in fp32, number of sequences).

    NOTE: some blocks flatten (batch * seq, in) before their MLP (OPT's fc1/fc2); with ``seq_len``
    known, such a 2-D input counts as ``rows // seq_len`` sequences, so batching cannot change
    the running mean (the reference feeds one sequence at a time and never sees this case).
    """
    n_sequences = inp.shape[0] if inp.dim() == 3 else 1
    if inp.dim() == 2 and seq_len and inp.shape[0] > seq_len and inp.shape[0] % seq_len == 0:
        n_sequences = inp.shape[0] // seq_len
    return inp.reshape(-1, inp.shape[-1]).to(STATS_DTYPE), n_sequences


class InputNormStats:
    """Wanda's ``input_sq_norm``: (in_features,) mean over sequences of sum_t x_tj^2."""

    def __init__(self, in_features: int, device: torch.device | str = "cpu",
                 seq_len: int | None = None):
        self.input_sq_norm = torch.zeros(in_features, dtype=STATS_DTYPE, device=device)
        self.n_samples = 0  # calibration sequences seen
        self.seq_len = seq_len

    def add_batch(self, inp: torch.Tensor) -> None:
        tokens, k = _as_tokens(inp, self.seq_len)  # (T, in)
        self.input_sq_norm *= self.n_samples / (self.n_samples + k)
        self.n_samples += k
        self.input_sq_norm += tokens.square().sum(dim=0) / self.n_samples


class HessianStats:
    """SparseGPT's ``hessian``: (in, in) running mean of 2 x x^T over calibration sequences."""

    def __init__(self, in_features: int, device: torch.device | str = "cpu",
                 seq_len: int | None = None):
        self.hessian = torch.zeros(in_features, in_features, dtype=STATS_DTYPE, device=device)
        self.n_samples = 0
        self.seq_len = seq_len

    def add_batch(self, inp: torch.Tensor) -> None:
        tokens, k = _as_tokens(inp, self.seq_len)  # (T, in)
        self.hessian *= self.n_samples / (self.n_samples + k)
        self.n_samples += k
        tokens = math.sqrt(2 / self.n_samples) * tokens
        self.hessian += tokens.t() @ tokens


class InputMomentStats:
    """DSnoT's per-input-channel statistics, folded one sequence at a time as the reference does.

    ``input_sum`` (DSnoT's ``sum_metric_row``): running mean over sequences of sum_t x_tj.
    ``input_var`` (its ``var``): token-weighted running mean of each sequence's own (biased)
    variance of x_j. NOTE: a mean of per-sequence variances, not the pooled variance of all
    tokens; the reference hooks see one window per forward pass, so folding sequence by sequence
    is what keeps batching from changing it. The reference's running ``mean`` is never read by
    ``prune_DSnoT`` and is not kept.
    """

    def __init__(self, in_features: int, device: torch.device | str = "cpu",
                 seq_len: int | None = None):
        self.input_sum = torch.zeros(in_features, dtype=STATS_DTYPE, device=device)
        self.input_var = torch.zeros(in_features, dtype=STATS_DTYPE, device=device)
        self.n_samples = 0  # sequences
        self.n_tokens = 0
        self.seq_len = seq_len

    def add_batch(self, inp: torch.Tensor) -> None:
        tokens, k = _as_tokens(inp, self.seq_len)  # (k * T, in)
        for sequence in tokens.chunk(k):
            self._add_sequence(sequence.t())  # (in, T), the reference's layout

    def _add_sequence(self, inp: torch.Tensor) -> None:
        var = torch.var(inp, dim=1, unbiased=False)
        count = inp.shape[1]
        self.input_var = var if self.n_tokens == 0 else (
            (self.input_var * self.n_tokens + var * count) / (self.n_tokens + count))
        self.n_tokens += count
        self.input_sum *= self.n_samples / (self.n_samples + 1)
        self.n_samples += 1
        self.input_sum += torch.sum(inp, dim=1) / self.n_samples


class CalibrationStats:
    """What a pruning method needs of one layer's inputs: the Wanda norm, optionally the Hessian
    and DSnoT's moments.

    The input norm is always kept (it is cheap, and the visualisations reuse it).
    """

    def __init__(self, in_features: int, device: torch.device | str, *, hessian: bool = False,
                 seq_len: int | None = None, moments: bool = False):
        self.norms = InputNormStats(in_features, device, seq_len)
        self.hess = HessianStats(in_features, device, seq_len) if hessian else None
        self.moments = InputMomentStats(in_features, device, seq_len) if moments else None

    def add_batch(self, inp: torch.Tensor) -> None:
        self.norms.add_batch(inp)
        if self.hess is not None:
            self.hess.add_batch(inp)
        if self.moments is not None:
            self.moments.add_batch(inp)

    @property
    def input_sq_norm(self) -> torch.Tensor:
        return self.norms.input_sq_norm

    @property
    def hessian(self) -> torch.Tensor | None:
        return self.hess.hessian if self.hess is not None else None
