"""Planted tiny LLaMA for the "why Wanda works" tests (see test_why.py's docstring).

The RMSNorm weight of input channel 3 is 1000 in every block, so q/k/v and gate/up read a channel
far larger than the others, and every weight reading it has |W| = 0.002, below every layer's
median |W| (magnitude prunes them all, Wanda keeps them all). The embedding of token 5 has a
planted massive value 800 in residual channel 7. ``sample_from`` draws evaluation text from the
model itself, so the dense model is its true distribution.
"""
from __future__ import annotations

import torch

from conftest import VOCAB, make_tiny_model
from wanda_viz.analysis import collect_activation_report

__all__ = ["PLANTED", "SMALL", "MASSIVE_TOKEN", "MASSIVE_CHANNEL", "MASSIVE_VALUE", "NORM_FED",
           "planted_model", "norm_fed", "sample_from", "planted_setup", "hooks", "snapshot",
           "assert_unchanged"]

PLANTED, SMALL = 3, 0.002                  # planted outlier input channel of q/k/v, gate/up
MASSIVE_TOKEN, MASSIVE_CHANNEL, MASSIVE_VALUE = 5, 7, 800.0
NORM_FED = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")


def planted_model() -> torch.nn.Module:
    model = make_tiny_model("llama")
    with torch.no_grad():
        for block in model.model.layers:
            block.input_layernorm.weight[PLANTED] = 1000.0
            block.post_attention_layernorm.weight[PLANTED] = 1000.0
            for name, layer in block.named_modules():
                if name.split(".")[-1] in NORM_FED:  # |W| = 0.002, the others ~0.016
                    layer.weight[:, PLANTED] = SMALL * layer.weight[:, PLANTED].sign()
        model.model.embed_tokens.weight[MASSIVE_TOKEN, MASSIVE_CHANNEL] = MASSIVE_VALUE
        model.lm_head.weight *= 30.0  # a peaked next-token distribution
    return model


def norm_fed(layer: str) -> bool:
    return layer.split(".")[-1] in NORM_FED


@torch.no_grad()
def sample_from(model, n_windows: int = 32, length: int = 16, seed: int = 0) -> torch.Tensor:
    """(1, n_windows * length) tokens sampled from the model, each window starting with token 5."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.full((n_windows, 1), MASSIVE_TOKEN)
    for _ in range(length - 1):
        probs = model(ids).logits[:, -1].softmax(-1)
        ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return ids.reshape(1, -1)


def hooks(model) -> dict:
    """Hook ids per module (transformers installs some of its own, e.g. to record outputs)."""
    return {name: (tuple(m._forward_hooks), tuple(m._forward_pre_hooks))
            for name, m in model.named_modules()}


def snapshot(model) -> tuple[dict, dict]:
    return {k: v.clone() for k, v in model.state_dict().items()}, hooks(model)


def assert_unchanged(model, before: tuple[dict, dict]) -> None:
    weights, hook_ids = before
    after = model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights), "model weights changed"
    assert hooks(model) == hook_ids, "hooks added or removed"




def planted_setup():
    """(planted model, calibration ids (4, 16) starting with token 5, sampled eval ids, report)."""
    model = planted_model()
    generator = torch.Generator().manual_seed(1)
    calib = torch.randint(0, VOCAB, (4, 16), generator=generator)
    calib[:, 0] = MASSIVE_TOKEN
    report = collect_activation_report(model, calib)
    return model, calib, sample_from(model), report
