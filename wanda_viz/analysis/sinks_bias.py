"""The implicit attention bias: the part of an attention output that comes from the first token.

Sun et al. (arXiv 2402.17762, section 4.2) decompose a head's output ``sum_j p_qj v_j`` into the
terms of the tokens carrying massive activations and the rest, and find the former nearly
constant across queries and inputs: an implicit bias term. Here, per decoder block, with the
output projection ``W_o`` applied (its bias belongs to neither part):

    sink_q = W_o [p_hq0 v_h0]_h        rest_q = W_o [sum_{j>0} p_hqj v_hj]_h

``v_h0`` is read generically from the projection's input at query 0: a causal query 0 attends only
to key 0, so its head outputs are ``p_h00 v_h0`` (``p_h00 = 1`` unless the model has learned sink
logits, which the division below also covers). No per-family value code is needed.

Constancy is the mean cosine similarity between the vectors of different query positions (1..T-1):
pooled over every window, and within windows only; with unit vectors ``u_i``,
``mean_{i != j} cos = (||sum u_i||^2 - n) / (n (n - 1))``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .attention_probe import AttentionCall

__all__ = ["split_sink_output", "DirectionStats", "BIAS_COLUMNS", "bias_row"]

ACCUMULATE = torch.float64
BIAS_COLUMNS = ["block", "block_index", "sink_cosine", "rest_cosine", "sink_cosine_within",
                "rest_cosine_within", "sink_norm", "rest_norm", "sink_share"]


def split_sink_output(call: AttentionCall) -> tuple[torch.Tensor, torch.Tensor]:
    """(sink part, rest) of one attention call's output, without the projection bias.

    Returns:
        two (b, T, hidden) float32 tensors; their sum is ``proj_input @ W_o^T``.
    """
    probs, heads_in = call.probs.float(), call.proj_input.float()
    b, n_heads, seq_len, _ = probs.shape                         # (b, H, T, T)
    heads = heads_in.reshape(b, seq_len, n_heads, -1)             # (b, T, H, d_head)
    sink_value = heads[:, 0] / probs[:, :, 0, 0, None]            # (b, H, d_head): v_h0
    weight = probs[:, :, :, 0].transpose(1, 2).unsqueeze(-1)     # (b, T, H, 1): p_hq0
    sink_heads = (weight * sink_value.unsqueeze(1)).flatten(2)    # (b, T, H * d_head)
    projection = call.proj_weight.float()                         # (hidden, H * d_head)
    sink = sink_heads @ projection.T
    return sink, heads_in @ projection.T - sink


@dataclass
class DirectionStats:
    """Running mean pairwise cosine and mean norm of vectors, pooled and within windows."""

    unit_sum: torch.Tensor | None = None   # (hidden,) sum of unit vectors over every window
    n: int = 0
    within_num: float = 0.0                # sum over windows of ||sum u||^2 - n_w
    within_pairs: float = 0.0              # sum over windows of n_w (n_w - 1)
    norm_sum: float = 0.0

    def add(self, vectors: torch.Tensor) -> None:
        """Add (b, n, hidden) vectors: b windows, n query positions each."""
        vectors = vectors.to(ACCUMULATE)
        norm = vectors.norm(dim=-1)                               # (b, n)
        valid = (norm > 0).to(ACCUMULATE)
        per_window = F.normalize(vectors, dim=-1).sum(dim=1)      # (b, hidden)
        counts = valid.sum(dim=1)                                 # (b,)
        total = per_window.sum(dim=0).cpu()
        self.unit_sum = total if self.unit_sum is None else self.unit_sum + total
        self.n += int(counts.sum())
        self.within_num += float((per_window.square().sum(dim=-1) - counts).sum())
        self.within_pairs += float((counts * (counts - 1)).sum())
        self.norm_sum += float(norm.sum())

    @property
    def cosine(self) -> float:
        """Mean cosine over all pairs of vectors (any windows)."""
        if self.n < 2:
            return float("nan")
        return (float(self.unit_sum.square().sum()) - self.n) / (self.n * (self.n - 1))

    @property
    def cosine_within(self) -> float:
        """Mean cosine over pairs of vectors of the same window."""
        return self.within_num / self.within_pairs if self.within_pairs else float("nan")

    @property
    def mean_norm(self) -> float:
        return self.norm_sum / self.n if self.n else float("nan")


def bias_row(block: str, index: int, sink: DirectionStats, rest: DirectionStats) -> dict:
    """One ``BIAS_COLUMNS`` row; ``sink_share`` = mean |sink| / (mean |sink| + mean |rest|)."""
    total = sink.mean_norm + rest.mean_norm
    return {"block": block, "block_index": index, "sink_cosine": sink.cosine,
            "rest_cosine": rest.cosine, "sink_cosine_within": sink.cosine_within,
            "rest_cosine_within": rest.cosine_within, "sink_norm": sink.mean_norm,
            "rest_norm": rest.mean_norm,
            "sink_share": sink.mean_norm / total if total > 0 else float("nan")}
