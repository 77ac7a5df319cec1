"""Smoke tests: every benchmark script runs end to end at its tiniest size and writes valid JSON.

They check that the scripts work, never how fast anything is (no assertion on times).
Scripts are imported from ``benchmarks/`` and their ``main(argv)`` is called in-process, except
where the script itself starts subprocesses (per-configuration memory workers, the app).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = ["bench_prune", "bench_sequential", "bench_eval", "bench_sweep", "bench_app",
           "bench_scaling", "bench_gpu", "bench_concurrency", "bench_session_memory",
           "bench_real", "bench_kernel"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()  # scripts may call torch.set_num_threads(--threads)
    yield
    torch.set_num_threads(threads)


def _check(path: Path, name: str) -> dict:
    record = json.loads(path.read_text())
    assert record["benchmark"] == name
    machine = record["machine"]
    assert {"cpu_model", "cpu_count", "load_average", "torch_threads", "versions"} <= set(machine)
    assert len(record["load_average_end"]) == 3
    return record


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load(name).main(["--help"])
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_bench_prune(tmp_path):
    out = tmp_path / "prune.json"
    _load("bench_prune").main(["--sizes", "smoke", "demo", "--n-samples", "2", "--seq-len", "16",
                               "--repeats", "1", "--threads", "1", "--out", str(out)])
    record = _check(out, "bench_prune")
    runs = record["subjects"]["smoke"]["runs"]
    assert set(runs) == {f"{m} {s}" for m in ("magnitude", "wanda", "sparsegpt")
                         for s in ("unstructured", "2:4")}
    assert all(r["median"]["sparsity"] == pytest.approx(0.5) for r in runs.values())
    assert "floor_1pass_s" in record["subjects"]["smoke"]["floor"]
    demo = record["subjects"]["demo"]  # the repository ships the demo model: it is measured
    assert "skipped" not in demo and demo["subject"]["model"] == "demo-model"
    assert all(r["median"]["sparsity"] == pytest.approx(0.5) for r in demo["runs"].values())


def test_bench_sequential(tmp_path):
    out = tmp_path / "sequential.json"
    _load("bench_sequential").main(["--sizes", "smoke", "--batch-sizes", "2", "--n-samples", "2",
                                    "--seq-len", "16", "--repeats", "1", "--threads", "1",
                                    "--out", str(out)])
    row = _check(out, "bench_sequential")["rows"][0]
    assert row["peak_rss_mb"] > 0 and row["samples_per_s"] > 0


def test_bench_eval(tmp_path):
    out = tmp_path / "eval.json"
    _load("bench_eval").main(["--sizes", "smoke", "--seq-len", "16", "--max-windows", "2",
                              "--repeats", "1", "--threads", "1", "--out", str(out)])
    sub = _check(out, "bench_eval")["subjects"]["smoke"]
    assert sub["ppl_ours"] == pytest.approx(sub["ppl_hf"], rel=1e-4)


def test_bench_sweep(tmp_path):
    out = tmp_path / "sweep.json"
    _load("bench_sweep").main(["--size", "smoke", "--sparsities", "0.5", "--extend-with", "0.6",
                               "--structures", "unstructured", "--n-samples", "2", "--seq-len",
                               "16", "--max-windows", "2", "--threads", "1",
                               "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    record = _check(out, "bench_sweep")
    assert record["status"] == "measured" and record["subject"] == "smoke"
    assert record["runs"]["cold"]["computed"] == 4  # dense + 3 methods at 0.5
    assert record["runs"]["warm"]["computed"] == 0
    assert record["runs"]["extend"]["computed"] == 3


def test_bench_scaling(tmp_path):
    out = tmp_path / "scaling.json"
    _load("bench_scaling").main(["--smoke", "--repeats", "1", "--threads", "1",
                                 "--out", str(out)])
    row = _check(out, "bench_scaling")["rows"][0]
    assert set(row["methods"]) == {"wanda", "sparsegpt"}


def test_bench_gpu_without_cuda_fails_clearly(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = _load("bench_gpu").main(["--device", "cuda", "--out", str(tmp_path / "gpu.json")])
    assert code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()


def test_bench_gpu_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    _load("bench_gpu").main(["--device", "cpu", "--hidden", "64", "--intermediate", "172",
                             "--heads", "2", "--layers", "1", "--n-samples", "2", "--seq-len",
                             "16", "--dtype", "float32", "--threads", "1", "--out", str(out)])
    record = _check(out, "bench_gpu")
    assert "resident unstructured: sparsegpt/wanda prune_s" in record["mask_time_ratio"]


@pytest.mark.slow
def test_bench_app_cold_start(tmp_path):
    out = tmp_path / "app.json"
    _load("bench_app").main(["--cold-start-only", "--fresh", "--timeout", "120",
                             "--out", str(out)])
    record = _check(out, "bench_app")
    assert record["status"].startswith("measured")  # app.py and the demo model are in the repo
    assert record["protocol"]["fresh_machine"] and record["protocol"]["data_folder"] is None


def test_scripts_share_the_benchmarks_common_module():
    # The scripts share a helper module named "common": after loading one, the "common" in
    # sys.modules must be the benchmarks' one (not a test helper of the same name).
    _load("bench_kernel")
    assert Path(sys.modules["common"].__file__).parent == BENCH_DIR


def test_bench_session_memory(tmp_path):
    out = tmp_path / "memory.json"
    _load("bench_session_memory").main(["--size", "smoke", "--sessions", "2", "--runs", "3",
                                        "--before-sessions", "1", "--out", str(out)])
    results = _check(out, "bench_session_memory")["results"]
    assert results["before"]["sessions"] == 1 and results["after"]["sessions"] == 2
    assert results["after"]["store_entries"] == 2  # one SparseGPT run per session
    assert results["after"]["records_mb"] < results["before"]["records_mb_scaled"] / 4
