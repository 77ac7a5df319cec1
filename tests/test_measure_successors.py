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
    assert script.main(["--render", str(out)]) == 0
    assert "| wanda + dsnot |" in capsys.readouterr().out
