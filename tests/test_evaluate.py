"""Perplexity by the reference protocol and reproducible generation.

A model with constant (all-zero) logits predicts the uniform distribution, so its perplexity is
exactly vocab_size, whatever the text (HOUSE_STYLE B8).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_tiny_model
from helpers import make_tokenizer
from wanda_viz.captions import calibration_caption
from wanda_viz.evaluate import (count_eval_windows, evaluate, generate_text, perplexity,
                                perplexity_protocol)


class ConstantLM(nn.Module):
    """Zero logits for every position; records the windows it was asked about."""

    def __init__(self, vocab_size: int = 50, context: int = 64):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, max_position_embeddings=context)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device
        self.windows: list[torch.Tensor] = []

    def forward(self, input_ids, use_cache=False):
        self.windows.extend(input_ids.clone())
        logits = torch.zeros(*input_ids.shape, self.config.vocab_size) + self.anchor
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("vocab_size", [2, 50, 32000])
def test_constant_logits_give_vocab_size(vocab_size):
    ids = torch.randint(0, vocab_size, (1, 120), generator=torch.Generator().manual_seed(0))
    model = ConstantLM(vocab_size)
    assert perplexity(model, ids, 16, show_progress=False) == pytest.approx(vocab_size, rel=1e-6)
    assert len(model.windows) == 120 // 16  # non-overlapping, the remainder dropped


def test_windows_are_non_overlapping_in_order():
    model = ConstantLM()
    perplexity(model, torch.arange(50).reshape(1, -1), 10, batch_size=3, show_progress=False)
    assert torch.equal(torch.stack(model.windows), torch.arange(50).reshape(5, 10))


def test_max_windows_caps():
    model = ConstantLM()
    perplexity(model, torch.arange(100) % 50, 10, max_windows=3, show_progress=False)
    assert len(model.windows) == 3
    assert count_eval_windows(100, 10) == 10 and count_eval_windows(100, 10, 3) == 3
    assert count_eval_windows(100, 10, 30) == 10


def test_capped_perplexity_is_that_of_the_first_windows():
    model = make_tiny_model("llama")
    ids = torch.randint(0, 99, (1, 200), generator=torch.Generator().manual_seed(1))
    capped = perplexity(model, ids, 16, max_windows=2, show_progress=False)
    assert capped == pytest.approx(perplexity(model, ids[:, :32], 16, show_progress=False))


def test_matches_mean_window_cross_entropy():
    model = make_tiny_model("opt")
    ids = torch.randint(0, 99, (1, 100), generator=torch.Generator().manual_seed(2))
    windows = ids[:, :96].reshape(6, 16)
    with torch.no_grad():
        logits = model(windows).logits
    losses = [F.cross_entropy(logits[i, :-1], windows[i, 1:]) for i in range(6)]
    expected = math.exp(torch.stack(losses).mean().item())
    for batch_size in (1, 4):
        ours = perplexity(model, ids, 16, batch_size=batch_size, show_progress=False)
        assert ours == pytest.approx(expected, rel=1e-5)


def test_too_short_text_and_too_long_window_raise():
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(ConstantLM(), torch.arange(15), 16, show_progress=False)
    with pytest.raises(ValueError, match="longer than the model allows"):
        perplexity(ConstantLM(context=64), torch.arange(200) % 50, 65, show_progress=False)


def test_default_seq_len_is_the_context():
    model = ConstantLM(context=20)
    perplexity(model, torch.arange(100) % 50, show_progress=False)
    assert len(model.windows) == 5 and model.windows[0].numel() == 20


def test_protocol_caption():
    caption = perplexity_protocol("WikiText-2 raw test", 256, 10, 1120)
    assert "seq_len 256" in caption and "first 10 of 1120" in caption
    assert "all 5" in perplexity_protocol("x", 8, 5, 5)


def test_evaluate_gives_perplexity_and_its_protocol():
    model = ConstantLM(vocab_size=50, context=20)
    ids = torch.arange(100) % 50  # 5 windows of the default seq_len = the context, 20
    ppl, protocol = evaluate(model, ids, "numbers", max_windows=3, show_progress=False)
    assert ppl == pytest.approx(50.0) and len(model.windows) == 3
    assert protocol == ("numbers, non-overlapping seq_len 20 windows (first 3 of 5), "
                        "exp(mean next-token NLL)")
    with pytest.raises(ValueError, match="longer than the model allows"):
        evaluate(model, ids, "numbers", 40)


def test_calibration_caption():
    calibration = {"source": "wikitext2", "n_samples": 32, "seq_len": 256, "seed": 0}
    assert calibration_caption(calibration) == "wikitext2, 32 x 256 tokens, seed 0"
    assert calibration_caption(None, torch.zeros(4, 16)) == \
        "calibration windows, 4 x 16 tokens, seed ?"
    assert calibration_caption(None) == "no calibration"


@pytest.fixture
def tiny_lm():
    return make_tiny_model("llama"), make_tokenizer()


def test_greedy_generation_is_deterministic(tiny_lm):
    model, tokenizer = tiny_lm
    first = generate_text(model, tokenizer, "the time of", max_new_tokens=8)
    second = generate_text(model, tokenizer, "the time of", max_new_tokens=8)
    assert first.token_ids == second.token_ids and first.text == second.text
    assert 1 <= len(first.token_ids) <= 8
    assert len(first.tokens) == len(first.token_probs) == len(first.token_ids)
    assert all(0 < p <= 1 for p in first.token_probs)


def test_seeded_sampling_is_reproducible_and_keeps_global_rng(tiny_lm):
    model, tokenizer = tiny_lm
    torch.manual_seed(123)
    state = torch.get_rng_state()
    runs = {seed: generate_text(model, tokenizer, "the time of", max_new_tokens=10,
                                do_sample=True, seed=seed).token_ids for seed in range(4)}
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    again = generate_text(model, tokenizer, "the time of", max_new_tokens=10, do_sample=True,
                          seed=2).token_ids
    assert again == runs[2]
    assert len({tuple(ids) for ids in runs.values()}) > 1  # different seeds differ (here: all)


def test_generation_input_errors(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match="empty"):
        generate_text(model, tokenizer, "   ")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_text(model, tokenizer, "the", max_new_tokens=0)
    with pytest.raises(ValueError, match="context"):
        generate_text(model, tokenizer, "the of", max_new_tokens=64)  # context is 64
