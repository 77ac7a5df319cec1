"""Zero-shot figure, takeaway and caption: pure functions of a hand-made result table."""
from __future__ import annotations

import math

import pytest

from wanda_viz import figures
from wanda_viz.config import PruneConfig
from wanda_viz.zeroshot import TaskScore, ZeroShotResult, zero_shot_table


def _result(accs: dict, n: int = 100) -> ZeroShotResult:
    scores = []
    for task, acc in accs.items():
        se = math.sqrt(acc * (1 - acc) / (n - 1))  # the harness's sample-stddev / sqrt(n)
        norm = None if task in ("boolq", "rte") else acc + 0.01
        scores.append(TaskScore(task, acc, se, norm, None if norm is None else se, n, 500,
                                "validation", "test", "1.0", "lic", "src"))
    return ZeroShotResult(tuple(scores), "0.4.13", "0.9.0", limit=n)


@pytest.fixture
def table():
    return zero_shot_table([
        (None, _result({"boolq": 0.60, "arc_easy": 0.50})),
        (PruneConfig(method="wanda", sparsity=0.5), _result({"boolq": 0.58, "arc_easy": 0.49})),
        (PruneConfig(method="magnitude", sparsity=0.5), _result({"boolq": 0.40, "arc_easy": 0.30})),
    ])


def test_takeaway_states_the_means_and_what_is_within_noise(table):
    text = figures.zero_shot_takeaway(table)
    assert "over 2 tasks, first 100 items each" in text
    assert "dense 55.0%" in text and "wanda 50% 53.5% (-1.5 points)" in text
    assert "magnitude 50% 35.0% (-20.0 points)" in text
    assert text.endswith("Within noise of dense (gap under two standard errors): wanda 50%; "
                         "more items narrow the error bars.")


def test_means_and_their_standard_error(table):
    means = figures.zero_shot_means(table).set_index("label")
    dense = table[table["label"] == "dense"]
    assert means.loc["dense", "mean"] == pytest.approx(0.55)
    assert means.loc["dense", "mean_se"] == pytest.approx(
        math.sqrt((dense["acc_stderr"] ** 2).sum()) / 2)


def test_figure_bars_per_run_dense_line_and_chance(table):
    fig = figures.plot_zero_shot(table, caption=figures.zero_shot_caption(table, "tiny"))
    names = [trace.name for trace in fig.data]
    assert names[:2] == ["wanda 50%", "magnitude 50%"] and "dense" in names
    dense = next(t for t in fig.data if t.name == "dense")
    assert [y for y in dense.y if y is not None] == [0.60, 0.60, 0.50, 0.50, 0.55, 0.55]
    chance = next(t for t in fig.data if (t.name or "").startswith("chance"))
    assert [y for y in chance.y if y is not None] == [0.5, 0.5, 0.25, 0.25]  # no chance for mean
    assert list(fig.layout.xaxis.ticktext) == ["boolq", "arc_easy", "mean"]
    caption = fig.layout.title.subtitle.text.replace("<br>", " ")
    assert "lm-evaluation-harness 0.4.13, 0-shot" in caption and "first 100 items" in caption
    assert "arc_easy, boolq evaluate test" in caption


def test_acc_norm_view_leaves_out_tasks_without_it(table):
    fig = figures.plot_zero_shot(table, metric="acc_norm")
    assert list(fig.layout.xaxis.ticktext) == ["arc_easy", "mean"]
    assert "acc_norm" in fig.layout.title.text
