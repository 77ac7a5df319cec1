"""Command line for the successors: ``--method ri|ria``, ``--settings a=..``, ``--refine dsnot``
(with ``--refine-settings``), all from the registry."""
from __future__ import annotations

import json

import pytest

from helpers import save_tiny_model, write_text
from wanda_viz.cli import main


@pytest.fixture
def prune_args(tmp_path):
    model = save_tiny_model(tmp_path / "tiny-llama", "llama")
    calib, evaluation = write_text(tmp_path / "c.txt", 600, seed=1), write_text(tmp_path / "e.txt",
                                                                              400, seed=2)
    return ["prune", "--model", str(model), "--device", "cpu", "--calib-file", str(calib),
            "--eval-file", str(evaluation), "--n-samples", "4", "--seq-len", "16",
            "--max-eval-windows", "2"]


@pytest.mark.parametrize("extra,expected", [
    (["--method", "ria", "--settings", "a=1.0"],
     {"method": "ria", "settings": {"a": 1.0}, "refine": None}),
    (["--method", "ri"], {"method": "ri"}),
    (["--method", "sparsegpt", "--refine", "dsnot", "--refine-settings",
      "max_cycle_time=5,skip_layer=no_skip"],
     {"method": "sparsegpt", "refine": "dsnot", "refine_settings": {
         "max_cycle_time": 5, "update_threshold": 0.1, "pow_of_var_regrowing": 1.0,
         "skip_layer": "no_skip", "without_same_sign": True}}),
])
def test_successor_runs_record_their_settings(extra, expected, prune_args, tmp_path, capsys):
    summary_file = tmp_path / "summary.json"
    assert main([*prune_args, *extra, "--json", str(summary_file)]) == 0
    config = json.loads(summary_file.read_text())["config"]
    assert {key: config[key] for key in expected} == expected
    assert "perplexity" in capsys.readouterr().out


def test_refine_with_a_layer_group_is_a_user_error(prune_args, capsys):
    assert main([*prune_args, "--refine", "dsnot", "--group", "layer"]) == 2
    assert "DSnoT refines a per-row initial mask" in capsys.readouterr().err
