"""Attention sinks: attention on the first token, the implicit bias, the token x channel view.

The planted model (``sinks_planted``) makes block 0's attention computable by hand; every family of
``wanda_viz.testing`` checks the measure against ``output_attentions=True`` and that the model is
left as it was (weights, hooks, attention implementation), also when the pass fails.
"""
from __future__ import annotations

import pytest
import torch

from wanda_viz.testing import TINY_VOCAB as VOCAB
from wanda_viz.testing import make_tiny_model
from sinks_planted import (DELIM, DELIM_CHANNEL, DELIM_POS, SINK, SINK_CHANNEL,
                           expected_first_token, expected_other, expected_parts, sink_model,
                           sink_windows)
from why_planted import assert_unchanged, snapshot
from wanda_viz.analysis import collect_activation_report
from wanda_viz.analysis.attention_probe import (eager_attention, find_attention_modules,
                                                record_attention)
from wanda_viz.analysis.sinks import MassiveRule, collect_sink_report
from wanda_viz.analysis.sinks_bias import DirectionStats, split_sink_output
from wanda_viz.analysis.sinks_view import token_channel_view
from wanda_viz.cancel import Cancelled, CancelToken

FAMILIES = ["llama", "opt", "gpt2", "gpt_neox", "phi", "qwen2"]


@pytest.fixture(scope="module")
def planted():
    model = sink_model()
    ids = sink_windows()
    rule = MassiveRule.from_report(collect_activation_report(model, ids))
    return model, ids, rule


def _attn_impls(model) -> dict:
    return {name: module.config._attn_implementation for name, module in model.named_modules()
            if hasattr(module, "config")}


def test_planted_rule_finds_both_massive_tokens(planted):
    _, _, rule = planted
    assert set(rule.channels) == {SINK_CHANNEL, DELIM_CHANNEL}
    assert rule.blocks == (0, 1)


def test_first_token_attention_matches_hand_computation(planted):
    model, ids, rule = planted
    report = collect_sink_report(model, ids, rule, batch_size=4)   # 6 windows: batches of 4, 2
    torch.testing.assert_close(report.first_token[0], expected_first_token(), rtol=1e-6,
                               atol=1e-7)  # float32 softmax; measured difference ~1e-8
    torch.testing.assert_close(report.other_massive[0], expected_other(), rtol=1e-5, atol=1e-7)
    assert report.first_token_massive == ids.shape[0]
    assert report.n_other_tokens == ids.shape[0]
    assert report.massive_tokens["position"].tolist() == [DELIM_POS] * ids.shape[0]
    assert report.other_queries == ids.shape[0] * (ids.shape[1] - 1 - DELIM_POS)


def test_sink_part_matches_hand_computation(planted):
    model, ids, _ = planted
    calls = []
    with eager_attention(model), record_attention(model, calls.append):
        model(ids)
    sink, rest = split_sink_output(calls[0])
    expected_sink, expected_rest = expected_parts(model, ids)
    torch.testing.assert_close(sink.double(), expected_sink, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(rest.double(), expected_rest, rtol=1e-4, atol=1e-6)


def _pairwise_cosine(vectors: torch.Tensor) -> float:
    unit = torch.nn.functional.normalize(vectors.reshape(-1, vectors.shape[-1]), dim=-1)
    cos = unit @ unit.T
    n = cos.shape[0]
    return float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1)))


def test_bias_constancy_matches_explicit_pairs(planted):
    model, ids, rule = planted
    report = collect_sink_report(model, ids, rule, batch_size=4)
    sink, rest = expected_parts(model, ids)
    row = report.bias.iloc[0]
    assert row["sink_cosine"] == pytest.approx(_pairwise_cosine(sink[:, 1:]), abs=1e-6)
    assert row["rest_cosine"] == pytest.approx(_pairwise_cosine(rest[:, 1:]), abs=1e-6)
    within = sum(_pairwise_cosine(sink[w, 1:]) for w in range(ids.shape[0])) / ids.shape[0]
    assert row["sink_cosine_within"] == pytest.approx(within, abs=1e-6)
    assert row["sink_norm"] == pytest.approx(float(sink[:, 1:].norm(dim=-1).mean()), rel=1e-5)
    # the planted sink is the same token with the same value in every window: a near-constant
    # bias, far more constant than the rest
    assert row["sink_cosine"] > 0.9 > row["rest_cosine"]


def test_direction_stats_hand_example():
    stats = DirectionStats()
    # window 0: (1, 0), (0, 1) -> cos 0; window 1: (2, 0), (3, 0) -> cos 1
    stats.add(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [3.0, 0.0]]]))
    # pooled pairs: of 6 pairs, (a,c), (a,d), (c,d) have cos 1, the rest 0
    assert stats.cosine == pytest.approx(3 / 6)
    assert stats.cosine_within == pytest.approx(0.5)
    assert stats.mean_norm == pytest.approx((1 + 1 + 2 + 3) / 4)


@pytest.mark.parametrize("family", FAMILIES)
def test_first_token_attention_equals_output_attentions(family):
    model = make_tiny_model(family)
    ids = torch.randint(0, VOCAB, (3, 10), generator=torch.Generator().manual_seed(1))
    before, impls = snapshot(model), _attn_impls(model)
    report = collect_sink_report(model, ids, MassiveRule((), ()), batch_size=3)
    assert_unchanged(model, before)
    assert _attn_impls(model) == impls and model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")
    attentions = model(ids, output_attentions=True, use_cache=False).attentions
    expected = torch.stack([a[:, :, 1:, 0].double().mean(dim=(0, 2)) for a in attentions])
    torch.testing.assert_close(report.first_token, expected, rtol=0, atol=1e-12)
    assert len(find_attention_modules(model)) == len(attentions)
    assert report.bias["sink_share"].between(0, 1).all()


def test_no_probabilities_off_the_eager_path_is_an_error(planted):
    model, ids, _ = planted
    previous = model.config._attn_implementation
    model.set_attn_implementation("sdpa")   # returns no attention probabilities
    calls = []
    try:
        with record_attention(model, calls.append) as (_, check):
            model(ids)                          # the hooks never raise ...
            with pytest.raises(ValueError, match="no probabilities"):
                check()                         # ... the caller's check does
    finally:
        model.set_attn_implementation(previous)
    assert calls == []


def test_restored_after_error_and_cancel(planted):
    model, ids, rule = planted
    before, impls = snapshot(model), _attn_impls(model)

    def boom(call):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with eager_attention(model), record_attention(model, boom):
            model(ids)
    assert_unchanged(model, before)
    assert _attn_impls(model) == impls
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        collect_sink_report(model, ids, rule, cancel=token)
    assert_unchanged(model, before)
    assert _attn_impls(model) == impls


def test_token_channel_view_labels_planted_tokens(planted):
    model, ids, rule = planted
    before = snapshot(model)
    view = token_channel_view(model, ids[0], 1, rule)
    assert_unchanged(model, before)
    assert set(view.massive_channels) == {SINK_CHANNEL, DELIM_CHANNEL}
    assert view.carrying_positions == [0, DELIM_POS]
    assert view.magnitude.shape == (ids.shape[1], 32)
    assert view.tokens[0] == f"<{SINK}>" and view.tokens[DELIM_POS] == f"<{DELIM}>"
    with pytest.raises(ValueError, match="block must be"):
        token_channel_view(model, ids[0], 5, rule)
