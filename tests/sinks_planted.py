"""Planted tiny LLaMA whose first token is an attention sink by construction (test_sinks.py).

Block 0 is planted so that its attention is computable by hand:

* rotary positions are numerically the identity (linear scaling by 1e12: angles below 1e-10 rad);
* token SINK (always at position 0) has the embedding 800 * e_SINK_CHANNEL, token DELIM (always
  at position DELIM_POS) 800 * e_DELIM_CHANNEL; no other token has anything in those channels, so
  both carry massive activations;
* q_proj has zero weights and a per-head bias: every query of head h is the same vector;
* k_proj reads only SINK_CHANNEL: the key of SINK is K_SINK (per key head), every other key is 0.

So head h scores key 0 with ``s_h = q_h . k_sink / sqrt(d_head)`` and every other key with 0: a
query at position t puts ``e^s_h / (e^s_h + t)`` on position 0 and ``1 / (e^s_h + t)`` on each
other key. ``expected_*`` compute the attention, the sink part and the rest of block 0's output
from these formulas and the weights, without running the model.
"""
from __future__ import annotations

import math

import torch

from wanda_viz.testing import TINY_VOCAB as VOCAB
from wanda_viz.testing import make_tiny_model

__all__ = ["SINK", "DELIM", "DELIM_POS", "SINK_CHANNEL", "DELIM_CHANNEL", "SEQ_LEN", "SCORES",
           "sink_model", "sink_windows", "expected_first_token", "expected_other",
           "expected_parts"]

SINK, DELIM, DELIM_POS = 5, 6, 5
SINK_CHANNEL, DELIM_CHANNEL, MASSIVE = 7, 9, 800.0
SEQ_LEN, HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 12, 32, 4, 2, 8
SCORES = (3.0, 1.0, 2.0, 0.5)   # s_h: head h's score on the sink (after 1/sqrt(d_head))


def sink_model() -> torch.nn.Module:
    model = make_tiny_model("llama", attention_bias=True,
                            rope_parameters={"rope_type": "linear", "factor": 1e12,
                                             "rope_theta": 10000.0})
    norm_scale = math.sqrt(HIDDEN)   # RMSNorm of 800 e_c is sqrt(hidden) e_c (norm weight 1)
    with torch.no_grad():
        embed = model.model.embed_tokens.weight
        embed[:, [SINK_CHANNEL, DELIM_CHANNEL]] = 0.0
        embed[SINK], embed[DELIM] = 0.0, 0.0
        embed[SINK, SINK_CHANNEL] = MASSIVE
        embed[DELIM, DELIM_CHANNEL] = MASSIVE
        attn = model.model.layers[0].self_attn
        k_sink = torch.ones(KV_HEADS, HEAD_DIM)                      # each key head: all ones
        attn.k_proj.weight.zero_()
        attn.k_proj.bias.zero_()
        attn.k_proj.weight[:, SINK_CHANNEL] = k_sink.flatten() / norm_scale
        attn.q_proj.weight.zero_()
        scale = math.sqrt(HEAD_DIM)   # q . k_sink = HEAD_DIM * c, so c = s * sqrt(d) / d
        attn.q_proj.bias.copy_(torch.cat([torch.full((HEAD_DIM,), s * scale / HEAD_DIM)
                                          for s in SCORES]))
    return model


def sink_windows(n: int = 6, seed: int = 0) -> torch.Tensor:
    """(n, SEQ_LEN) random ids without SINK/DELIM, SINK at 0 and DELIM at DELIM_POS."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, VOCAB, (n, SEQ_LEN), generator=generator)
    ids[:, 0], ids[:, DELIM_POS] = SINK, DELIM
    return ids


def expected_first_token() -> torch.Tensor:
    """(H,) mean over queries 1..T-1 of e^s / (e^s + t)."""
    return torch.tensor([sum(math.exp(s) / (math.exp(s) + t) for t in range(1, SEQ_LEN))
                         / (SEQ_LEN - 1) for s in SCORES], dtype=torch.float64)


def expected_other() -> torch.Tensor:
    """(H,) mean over queries after DELIM of 1 / (e^s + t)."""
    queries = range(DELIM_POS + 1, SEQ_LEN)
    return torch.tensor([sum(1 / (math.exp(s) + t) for t in queries) / len(queries)
                         for s in SCORES], dtype=torch.float64)


@torch.no_grad()
def expected_parts(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block 0's (sink part, rest), (n, T, hidden) each, from the formulas (float64)."""
    layer = model.model.layers[0]
    attn, norm = layer.self_attn, layer.input_layernorm
    x = model.model.embed_tokens.weight[ids].double()                          # (n, T, d)
    normed = x / torch.sqrt(x.square().mean(-1, keepdim=True) + norm.variance_epsilon)
    normed = normed * norm.weight.double()
    values = normed @ attn.v_proj.weight.double().T + attn.v_proj.bias.double()  # (n, T, kv*dh)
    values = values.view(*ids.shape, KV_HEADS, HEAD_DIM)
    n, seq_len = ids.shape
    sink = torch.zeros(n, seq_len, HEADS, HEAD_DIM, dtype=torch.float64)
    rest = torch.zeros_like(sink)
    for h, s in enumerate(SCORES):
        v = values[:, :, h // (HEADS // KV_HEADS)]                            # (n, T, dh)
        for t in range(seq_len):
            denominator = math.exp(s) + t
            sink[:, t, h] = math.exp(s) / denominator * v[:, 0]
            rest[:, t, h] = v[:, 1:t + 1].sum(dim=1) / denominator
    weight = attn.o_proj.weight.double()
    return sink.flatten(2) @ weight.T, rest.flatten(2) @ weight.T
