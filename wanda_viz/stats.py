"""Per-layer input statistics, accumulated from forward hooks during calibration.

``InputNormStats`` is the Wanda statistic (locuslab/wanda lib/layerwrapper.py): per input channel j,
the running mean over calibration sequences of ``||X_j||^2`` (squared L2 norm over the tokens).
``HessianStats`` is SparseGPT's ``H = 2/n X X^T`` (IST-DASLab/sparsegpt sparsegpt.py add_batch).
Both accumulate in float32 even for fp16/bf16 models and use the reference's running-mean update
``s *= n/(n+k); n += k; s += ...`` (k = sequences in the batch). ``STATISTICS`` names every
accumulator; a method's registry entry lists the names it reads, and a new statistic (e.g. the
per-channel input mean and variance of DSnoT) is one class with ``add_batch`` and one entry here.
"""
from __future__ import annotations

import math

import torch

__all__ = ["STATS_DTYPE", "InputNormStats", "HessianStats", "STATISTICS", "CalibrationStats"]

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


# name -> accumulator class: ``cls(in_features, device, seq_len)`` with ``add_batch(inp)``.
STATISTICS: dict[str, type] = {"input_norm": InputNormStats, "hessian": HessianStats}


class CalibrationStats:
    """The statistics of one layer's input that a run needs, fed once per distinct input.

    The Wanda input norm is always kept (it is cheap, and the visualisations reuse it); the others
    are those named in ``statistics`` (``STATISTICS`` keys), read with ``get(name)``.
    """

    def __init__(self, in_features: int, device: torch.device | str, *,
                 statistics=(), seq_len: int | None = None):
        unknown = set(statistics) - set(STATISTICS)
        if unknown:
            raise ValueError(f"unknown statistics {sorted(unknown)}; known: "
                             f"{', '.join(STATISTICS)}")
        names = dict.fromkeys(("input_norm", *statistics))
        self.accumulators = {name: STATISTICS[name](in_features, device, seq_len) for name in names}

    def add_batch(self, inp: torch.Tensor) -> None:
        for accumulator in self.accumulators.values():
            accumulator.add_batch(inp)

    def get(self, name: str):
        """The accumulator ``name``, or None when this run does not collect it."""
        return self.accumulators.get(name)

    @property
    def norms(self) -> InputNormStats:
        return self.accumulators["input_norm"]

    @property
    def input_sq_norm(self) -> torch.Tensor:
        return self.norms.input_sq_norm

    @property
    def hessian(self) -> torch.Tensor | None:
        hess = self.get("hessian")
        return hess.hessian if hess is not None else None
