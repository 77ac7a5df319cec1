"""Outputs of "why Wanda works": figures and the ``why`` subcommand (planted tiny model)."""
from __future__ import annotations

import json

import pytest

from why_planted import planted_setup
from wanda_viz.analysis import ChannelSpec, WhySpec
from wanda_viz.analysis.why_run import run_why


@pytest.fixture(scope="module")
def setup():
    return planted_setup()


def test_figures(setup, make_runner):
    from wanda_viz.figures.why import (OUTLIER_COLOR, plot_activation_intervention,
                                       plot_channel_intervention, plot_disagreement_by_layer,
                                       plot_disagreement_vs_norm)
    model, calib, eval_ids, _ = setup
    result = run_why(make_runner(model, calib, eval_ids, max_windows=8),
                     WhySpec(channels=ChannelSpec(ks=(1, 2), seeds=(0, 1))))
    every = plot_disagreement_vs_norm(result.disagreement)
    assert every.layout.xaxis.type == "log"
    assert sum(len(t.x) for t in every.data) == 2 * len(result.disagreement.channels)
    layer = "model.layers.0.mlp.up_proj"
    one = plot_disagreement_vs_norm(result.disagreement, layer)
    assert len(one.data[0].x) == 32 and layer in one.layout.title.text
    assert "per output row" in one.layout.title.subtitle.text
    thin = plot_disagreement_vs_norm(result.disagreement, max_points=100)
    top = int(result.disagreement.channels["top_channel"].sum())
    assert top <= len(thin.data[0].x) <= 100 + top
    assert "Shown:" in thin.layout.title.subtitle.text
    with pytest.raises(ValueError, match="not in the report"):
        plot_disagreement_vs_norm(result.disagreement, "nope")
    by_layer = plot_disagreement_by_layer(result.disagreement)
    assert len(by_layer.data[0].x) == len(result.disagreement.layers) - 1
    cut = plot_channel_intervention(result.weights)
    names = [t.name for t in cut.data]
    assert names[-1].startswith("dense") and any("seeds" in n for n in names)
    outlier = next(t for t in cut.data if t.line.color == OUTLIER_COLOR)
    assert list(outlier.x) == [1, 2]
    assert cut.layout.yaxis.type == "log" and "perplexity:" in cut.layout.title.subtitle.text
    bars = plot_activation_intervention(result.activations)
    assert list(bars.data[0].y) == result.activations.table["perplexity"].tolist()


def test_why_command(tmp_path, capsys):
    from helpers import save_tiny_model, write_text
    from wanda_viz.cli import main
    folder = save_tiny_model(tmp_path / "model")
    text = write_text(tmp_path / "text.txt", 600)
    base = ["why", "--model", str(folder), "--calib-file", str(text), "--n-samples", "4",
            "--seq-len", "16", "--eval-file", str(text), "--max-eval-windows", "4",
            "--ks", "1,2", "--seeds", "0", "--cache-dir", str(tmp_path / "cache")]
    outputs = ["--out-json", str(tmp_path / "why.json"), "--out-csv", str(tmp_path / "why.csv")]
    assert main(base + ["--layer", "model.layers.1.mlp.down_proj"] + outputs) == 0
    out = capsys.readouterr().out
    assert "model.layers.1.mlp.down_proj: channels by input norm" in out
    assert "no massive activations" in out            # random weights have none
    assert "5 perplexity points computed, 0 from cache" in out   # dense, 2 outlier, 2 random
    payload = json.loads((tmp_path / "why.json").read_text())
    assert len(payload["weights"]["rows"]) == 5 and payload["activations"]["rows"] == []
    assert (tmp_path / "why_channels.csv").is_file()
    assert main(base) == 0
    assert "0 perplexity points computed, 5 from cache" in capsys.readouterr().out
    assert main(base + ["--ks", "1,x"]) == 2
    assert main(base + ["--layer", "lm_head"]) == 2
    assert "not a prunable layer" in capsys.readouterr().err
