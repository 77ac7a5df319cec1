"""Token x channel magnitudes of one decoder block's output (Sun et al. 2024, Fig. 1).

For one short text, ``|h|`` of the residual stream after a chosen block, every token by every
channel. The massive entries are flagged with the rule of ``why_activations.flag_massive``
(``|h| > min_abs`` and ``> min_ratio x`` the median ``|h|`` of this text at this block), over all
channels, so the view labels what is massive *in this text*: the channels and the tokens carrying
them (in LLaMA-style models the first token and the first delimiter).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..calibration import stop_forward_at
from ..layers import find_decoder_layers, model_device
from .sinks import MassiveRule
from .why_activations import flag_massive

__all__ = ["PAPER_TEXT", "TokenChannelView", "token_channel_view"]

PAPER_TEXT = "Summer is warm. Winter is cold."  # the sentence of Sun et al.'s first figure


@dataclass
class TokenChannelView:
    """|h| (T, hidden) of one block's output for one text, and what is massive in it (CPU)."""

    block: str
    block_index: int
    tokens: list[str]
    magnitude: torch.Tensor            # (T, hidden) float32
    massive_channels: list[int]        # largest first
    carrying_positions: list[int]      # tokens with a massive entry
    median: float
    rule: MassiveRule

    def protocol(self) -> str:
        return (f"|h| of the output of {self.block} (residual stream) for one text of "
                f"{len(self.tokens)} tokens; massive: |h| > {self.rule.min_abs:g} and > "
                f"{self.rule.min_ratio:g} x this text's median |h| ({self.median:.3g})")


def _decode(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id]) if tokenizer is not None else f"<{token_id}>"


@torch.no_grad()
def token_channel_view(model: nn.Module, ids: torch.Tensor, block_index: int,
                       rule: MassiveRule, *, tokenizer=None) -> TokenChannelView:
    """|h| of decoder block ``block_index``'s output for ``ids`` (T,) or (1, T).

    The forward pass stops after that block; the hook is removed on return, also on error.
    """
    prefix, blocks = find_decoder_layers(model)
    if not 0 <= block_index < len(blocks):
        raise ValueError(f"block must be in 0..{len(blocks) - 1}, got {block_index}")
    ids = ids.reshape(1, -1)
    captured = {}

    def observe(output):
        captured["hidden"] = (output[0] if isinstance(output, (tuple, list)) else output).detach()

    with stop_forward_at(blocks[block_index], observe=observe) as run:
        run(model, ids.to(model_device(model)), use_cache=False)
    hidden = captured["hidden"].float()                          # (1, T, hidden)
    channels = torch.arange(hidden.shape[-1], device=hidden.device)
    flags = flag_massive(hidden, channels, rule.min_abs, rule.min_ratio)[0].cpu()  # (T, hidden)
    magnitude = hidden[0].abs().cpu()
    peak = torch.where(flags, magnitude, torch.zeros_like(magnitude)).amax(dim=0)
    massive = [int(c) for c in torch.argsort(peak, descending=True) if peak[c] > 0]
    return TokenChannelView(
        block=f"{prefix}.{block_index}", block_index=block_index,
        tokens=[_decode(tokenizer, int(t)) for t in ids[0]], magnitude=magnitude,
        massive_channels=massive, carrying_positions=torch.nonzero(flags.any(dim=1)).flatten()
        .tolist(), median=float(magnitude.median()), rule=rule)
