"""Takeaway sentences and highlights: numbers computed from the result, wording that follows them.

Hand-made tables give exact expected sentences; the planted tiny LLaMA (outlier input channel 3
in every block, a massive value 800 in residual channel 7 on token 5) checks that the outlier
sentence and the default layer find what was planted.
"""
from __future__ import annotations

import pandas as pd
import pytest

from why_planted import MASSIVE_CHANNEL, PLANTED, planted_setup
from wanda_viz.analysis import (RunPerplexity, ablation_takeaway, comparison_takeaway,
                                generation_takeaway, input_norm_peak, input_norm_takeaway,
                                massive_channel_summary, outlier_takeaway, readable_number,
                                spearman_words, strongest_layer, sweep_takeaway)


@pytest.fixture(scope="module")
def report():
    return planted_setup()[3]


def test_readable_numbers():
    assert [readable_number(v) for v in (26479.45, 644.0, 51.564, 2.3456, 0.012345, None)] == \
        ["26,479", "644", "51.6", "2.35", "0.0123", "-"]


def test_comparison_names_wanda_first_with_times_dense_and_a_verdict_from_the_numbers():
    runs = [RunPerplexity("magnitude 50%", "magnitude", 644.0),
            RunPerplexity("wanda 50%", "wanda", 105.83)]
    text = comparison_takeaway(runs, 51.56, "50%")
    assert text.startswith("Wanda at 50%: perplexity **106** (2.1x dense 51.6); "
                           "magnitude: **644** (12.5x).")
    assert "6.1x higher perplexity than Wanda" in text
    close = comparison_takeaway([RunPerplexity("magnitude 50%", "magnitude", 211.0),
                                 RunPerplexity("wanda 50%", "wanda", 206.0)], 200.0, "50%")
    assert "within 10% of each other" in close and "higher perplexity" not in close
    better = comparison_takeaway([RunPerplexity("m", "magnitude", 150.0),
                                  RunPerplexity("w", "wanda", 100.0)], 90.0, "2:4")
    assert better.startswith("Wanda at 2:4:") and "Wanda ends 50% better" in better
    single = comparison_takeaway([RunPerplexity("wanda 50% OWL", "wanda", 99.0)], 50.0, "50%")
    assert single == "wanda 50% OWL: perplexity **99.0** (2.0x dense 50.0)."
    assert "no perplexity" in comparison_takeaway([RunPerplexity("w", "wanda", None)], None, "x")


def test_sweep_ablation_and_generation_sentences():
    sweep = pd.DataFrame([("dense", "dense", 0.0, 50.0), ("wanda", "unstructured", 0.3, 60.0),
                          ("magnitude", "unstructured", 0.3, 90.0),
                          ("wanda", "unstructured", 0.7, 500.0),
                          ("magnitude", "unstructured", 0.7, 25000.0)],
                         columns=["method", "structure", "sparsity", "perplexity"])
    assert sweep_takeaway(sweep) == (
        "At 30%, Wanda 60.0 (1.2x dense) and magnitude 90.0 (1.8x dense); at 70%, Wanda 500 "
        "(10.0x dense) and magnitude 25,000 (500x dense). The ratio magnitude / Wanda goes "
        "from 1.5x to 50.0x: the gap opens at high sparsity.")
    ablation = pd.DataFrame({"method": ["dense", "wanda", "wanda"], "group": ["-", "row", "layer"],
                             "sparsity": [0.0, 0.5, 0.5], "perplexity": [50.0, 100.0, 120.0]})
    assert ablation_takeaway(ablation) == \
        "At 50%: Wanda: per row 100, one threshold per layer 120 (+20%)."
    summary = pd.DataFrame({"variant": ["dense", "wanda 50%"], "n_tokens": [40, 40],
                            "tokens_per_s": [23.2, 25.5], "first_divergence": [None, 3],
                            "mean_prob": [0.45, 0.36], "differing": [0, 12]})
    text = generation_takeaway(summary)
    assert text.startswith("wanda 50% leaves the dense continuation at token 4 of 40; 12 of 40 "
                           "tokens differ.")
    assert "(23.2 dense, 25.5 pruned) are not a speed comparison" in text
    assert "differ only by noise" in text


def test_outliers_sentence_and_default_layer_find_the_planted_features(report):
    summary = massive_channel_summary(report)
    assert summary["channel"].tolist()[0] == MASSIVE_CHANNEL
    top = summary.iloc[0]
    text = outlier_takeaway(report)
    assert text.startswith(f"Channel **{MASSIVE_CHANNEL}** of the residual stream reaches "
                           f"|h| = **{readable_number(top['max_abs'])}**")
    assert f"**{readable_number(top['ratio_to_median'])}x** that block's median" in text
    layer = strongest_layer(report)
    peak = input_norm_peak(report, layer)
    assert peak["channel"] == PLANTED and peak["ratio"] > 50  # the planted channel, far above
    ratios = {name: float(n.max() / n.median()) for name, n in report.input_norms.items()}
    assert ratios[layer] == max(ratios.values())
    assert f"input channel **{PLANTED}**" in input_norm_takeaway(report, layer)


def test_spearman_in_words():
    assert [spearman_words(r) for r in (0.99, 0.9, 0.6, 0.1)] == [
        "rank the weights almost identically", "rank the weights similarly",
        "rank the weights only loosely alike", "rank the weights differently"]
