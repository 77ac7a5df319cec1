"""Before a long job: the default sweep draws a curve within the cap, an oversized request is told
which subset fits, and the time estimates come from the committed benchmark records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from wanda_viz.service import estimates
from wanda_viz.service.plans import (SWEEP_SPARSITIES, count_points, default_sweep,
                                     fitting_subset, over_cap_message, sweep_plan)

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_sweep_is_a_curve_within_the_cap():
    for cap in (12, 36):
        methods, sparsities = default_sweep(cap)
        assert methods == ["magnitude", "wanda"] and sparsities == [0.3, 0.4, 0.5, 0.6, 0.7]
        assert count_points(methods, sparsities, ["unstructured"]) <= cap
    assert default_sweep(5) == (["magnitude", "wanda"], [0.5, 0.7])


@pytest.mark.parametrize("methods, structures, cap", [
    (["magnitude", "wanda", "sparsegpt"], ["unstructured", "2:4", "4:8"], 12),
    (["magnitude", "wanda", "sparsegpt"], ["unstructured"], 12),
    (["sparsegpt", "wanda", "magnitude"], ["unstructured", "2:4"], 7),
    (["wanda"], ["unstructured"], 4),
])
def test_an_oversized_request_gets_a_subset_that_fits(methods, structures, cap):
    assert count_points(methods, SWEEP_SPARSITIES, structures) > cap
    kept_methods, sparsities, kept_structures = fitting_subset(methods, SWEEP_SPARSITIES,
                                                               structures, cap)
    assert 0 < count_points(kept_methods, sparsities, kept_structures) <= cap
    assert set(kept_methods) <= set(methods) and set(sparsities) <= set(SWEEP_SPARSITIES)
    if len(methods) >= 2:  # a comparison is kept: magnitude and Wanda first
        assert set(kept_methods[:2]) == {"magnitude", "wanda"}
    message = over_cap_message(methods, SWEEP_SPARSITIES, structures, cap)
    assert f"at most {cap} per request" in message and "This fits:" in message
    assert fitting_subset(["wanda"], [0.5], ["unstructured"], cap) is None


def _json(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


def test_estimate_constants_are_the_committed_measurements():
    """The constants say where they come from; this keeps them equal to those records."""
    real = _json("benchmarks/results/bench_real_pass_end_1t.json")
    assert real["subject"]["n_samples"] * real["subject"]["seq_len"] == \
        estimates.CALIB_TOKENS_MEASURED and real["machine"]["torch_threads"] == 1
    for method in ("wanda", "sparsegpt"):
        ours = real["runs"][f"{method} unstructured"]["median"]["ours"]
        assert estimates.CALIB_FORWARD_S[method] == pytest.approx(ours["forward_s"], abs=0.01)
        assert estimates.MASK_S[method] == pytest.approx(ours["prune_s"], abs=0.01)
    magnitude = _json("benchmarks/results/bench_real_final_mw.json")["runs"]
    assert estimates.MASK_S["magnitude"] == pytest.approx(
        magnitude["magnitude unstructured"]["median"]["ours"]["prune_s"], abs=0.01)
    first = _json("benchmarks/results/real_model_defaults_issue13.json")
    assert (first["calibration"]["n_samples"], first["calibration"]["seq_len"]) == (16, 128)
    assert estimates.EVAL_S == pytest.approx(first["first_prune"]["dense_perplexity_s_cpu"],
                                             abs=0.01)
    assert estimates.REPORT_S == pytest.approx(first["first_prune"]["activation_report_s_cpu"],
                                               abs=0.01)


def test_estimates_scale_with_the_work_and_state_their_basis(monkeypatch):
    monkeypatch.setattr(estimates.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(estimates.torch, "get_num_threads", lambda: 1)
    real = estimates.Workload(estimates.REFERENCE_PARAMS, 576, 16 * 256, 8 * 128)
    # one Wanda point on the measured setup is the measured time, by construction
    assert estimates.point_seconds("wanda", real) == pytest.approx(14.49 + 2.26 + 3.28)
    double = estimates.Workload(2 * estimates.REFERENCE_PARAMS, 576, 2 * 16 * 256, 8 * 128)
    assert estimates.point_seconds("magnitude", double) == pytest.approx(2 * (2.23 + 3.28))
    text = sweep_plan(["magnitude", "wanda"], [0.3, 0.5], ["unstructured"], 12, real)
    assert text.startswith("Estimate: about **") and "4 pruned points" in text
    assert "bench_real_pass_end_1t.json" in text  # the basis is stated
    assert "Too many points" in sweep_plan(["magnitude", "wanda"], SWEEP_SPARSITIES,
                                           ["unstructured"], 12, real)
    assert "one dense pass and 19 perplexity points" in estimates.why_estimate(real, 4, 3)
    assert "6 pruned points" in estimates.ablation_estimate(real)
