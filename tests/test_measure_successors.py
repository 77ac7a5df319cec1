"""Smoke test: scripts/measure_successors.py runs end to end at its tiniest size (no timings)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_successors.py"


def _load():
    spec = importlib.util.spec_from_file_location("_measure_successors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_successors_writes_a_record_and_renders_it(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "successors.json"
    script = _load()
    try:
        assert script.main(["--model", str(SCRIPT.parents[1] / "assets" / "demo-model"),
                            "--n-samples", "2", "--seq-len", "16", "--max-eval-windows", "1",
                            "--calib-source", "bundled-wikitext2-valid",
                            "--eval-source", "bundled-wikitext2-test",
                            "--runs", "ri", "wanda + dsnot", "--out-json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    record = json.loads(out.read_text())
    assert len(record["git"]["commit"]) == 40
    assert record["settings"]["dsnot"]["max_cycle_time"] == 50
    runs = {(r["run"], r["level"]) for r in record["runs"]}
    assert runs == {(name, level) for name in ("ri", "wanda + dsnot")
                    for level in ("50%", "60%", "2:4")}
    assert all(r["perplexity"] > 1 and r["prune_cpu_s"] >= 0 for r in record["runs"])
    assert record["runs"][0]["group"] == "layer" and record["dense_perplexity"] > 1
    assert script.main(["--render", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| wanda + dsnot |" in printed and record["git"]["commit"][:7] in printed


def test_render_writes_between_the_markers_only(tmp_path):
    script = _load()
    record = {"model": "m", "git": {"commit": "c9c4550" + "0" * 33, "dirty": False}, "note": "",
              "calibration": {"source": "c4", "n_samples": 2, "seq_len": 16, "seed": 0},
              "eval_protocol": "wiki", "timing_protocol": "t", "dense_perplexity": 10.0,
              "json_path": "docs/x.json",
              "runs": [{"run": run, "level": level, "perplexity": ppl, "prune_cpu_s": 1.0}
                       for run, ppl in (("wanda", 20.0), ("wanda + dsnot", 21.5))
                       for level in ("50%", "2:4")]}
    (tmp_path / "docs").mkdir()
    for name in script.DOCS:
        (tmp_path / name).write_text("before\n<!-- successors:begin -->\nold\n"
                                     "<!-- successors:end -->\nafter\n")
    script.write_docs(record, root=tmp_path)
    full = (tmp_path / "docs" / "methods.md").read_text()
    short = (tmp_path / "README.md").read_text()
    assert full.startswith("before\n") and full.endswith("after\n") and "old" not in full
    assert "wanda + dsnot minus wanda: 50% +1.50, 2:4 +1.50" in full
    assert "| wanda + dsnot | 21.50 | 21.50 |" in short and "commit c9c4550" in short
