"""Sweeps: on-disk cache hits, invalidation, extension, fingerprints and the dense restore (the
point runner's cache, seen through the sweep)."""
from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest
import torch
from conftest import make_tiny_model
from helpers import save_sentence_llama

import wanda_viz.points.changes as changes_module
from wanda_viz.analysis import SweepSpec, run_sweep, sweep_points
from wanda_viz.config import EvalConfig
from wanda_viz.files import file_sha256
from wanda_viz.points import PointRunner, model_fingerprint, resolve_eval_setup

EVAL_IDS = torch.randint(0, 99, (1, 96), generator=torch.Generator().manual_seed(1))


def _calib(seed: int) -> tuple[torch.Tensor, dict]:
    ids = torch.randint(0, 99, (4, 16), generator=torch.Generator().manual_seed(seed))
    return ids, {"source": "random ids", "n_samples": 4, "seq_len": 16, "seed": seed}


@pytest.fixture
def prune_calls(monkeypatch) -> list:
    """Counts prune_model calls made by the sweep."""
    calls = []
    original = changes_module.prune_model

    def counting(model, calib_ids, config, **kwargs):
        calls.append(config.label())
        return original(model, calib_ids, config, **kwargs)

    monkeypatch.setattr(changes_module, "prune_model", counting)
    return calls


def _runner(model, calib_seed=0, fingerprint=None, cache_dir=None, eval_ids=EVAL_IDS):
    ids, info = _calib(calib_seed)
    setup = resolve_eval_setup(model, EvalConfig(seq_len=16, max_windows=2), eval_ids=eval_ids,
                               calib_ids=ids, calibration=info,
                               fingerprint=fingerprint or model_fingerprint(model=model),
                               cache_dir=cache_dir)
    return PointRunner(model, setup)


def _sweep(model, calib_seed=0, fingerprint=None, cache_dir=None, callback=None, **kwargs):
    spec = SweepSpec(**{"methods": ("magnitude", "wanda", "sparsegpt"), **kwargs})
    return run_sweep(_runner(model, calib_seed, fingerprint, cache_dir), spec, callback=callback,
                     show_progress=False)


def test_points_with_nm_structures():
    points = sweep_points(SweepSpec(("wanda", "sparsegpt"), (0.3, 0.5),
                                    ("unstructured", "2:4", "4:8"), group="layer"))
    assert points[0] is None  # dense baseline
    labels = [p.label() for p in points[1:]]
    assert labels == ["wanda 30% per-layer", "sparsegpt 30%", "wanda 50% per-layer",
                      "sparsegpt 50%", "wanda 50% 2:4 per-layer", "sparsegpt 50% 2:4",
                      "wanda 50% 4:8 per-layer", "sparsegpt 50% 4:8"]


def test_cache_hit_computes_nothing(tmp_path, prune_calls):
    model = make_tiny_model("llama")
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    first = _sweep(model, cache_dir=tmp_path, structures=("unstructured", "2:4"))
    assert len(prune_calls) == 6 and not first["cached"].any()
    assert all(torch.equal(dense[k], v) for k, v in model.state_dict().items())
    assert first.loc[first["method"] == "wanda", "achieved_sparsity"].tolist() == [0.5, 0.5]
    second = _sweep(model, cache_dir=tmp_path, structures=("unstructured", "2:4"))
    assert len(prune_calls) == 6 and second["cached"].all()
    assert second["perplexity"].tolist() == first["perplexity"].tolist()


def test_extension_computes_only_the_new_points(tmp_path, prune_calls):
    model = make_tiny_model("llama")
    _sweep(model, cache_dir=tmp_path)
    prune_calls.clear()
    table = _sweep(model, cache_dir=tmp_path, sparsities=(0.5, 0.7))
    assert sorted(prune_calls) == ["magnitude 70%", "sparsegpt 70%", "wanda 70%"]
    assert table.loc[~table["cached"], "sparsity"].tolist() == [0.7, 0.7, 0.7]


def test_other_seed_misses_calibrated_points_only(tmp_path, prune_calls):
    model = make_tiny_model("llama")
    _sweep(model, cache_dir=tmp_path)
    prune_calls.clear()
    table = _sweep(model, calib_seed=1, cache_dir=tmp_path)
    assert sorted(prune_calls) == ["sparsegpt 50%", "wanda 50%"]  # magnitude needs no data
    assert table.set_index("method")["cached"].to_dict() == {
        "dense": True, "magnitude": True, "wanda": False, "sparsegpt": False}


def test_other_weights_miss_everything(tmp_path, prune_calls):
    folders = [save_sentence_llama(tmp_path / f"m{seed}", seed=seed) for seed in (0, 1)]
    fingerprints = [model_fingerprint(f, cache_dir=tmp_path / "cache") for f in folders]
    assert fingerprints[0]["fingerprint"] != fingerprints[1]["fingerprint"]
    model = make_tiny_model("llama")  # the same model object: only the fingerprint differs
    _sweep(model, fingerprint=fingerprints[0], cache_dir=tmp_path / "cache")
    table = _sweep(model, fingerprint=fingerprints[1], cache_dir=tmp_path / "cache")
    assert not table["cached"].any() and len(prune_calls) == 6


def test_file_hash_memo_follows_mtime_and_size(tmp_path):
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"abc")
    first = file_sha256(file, tmp_path)
    assert (tmp_path / "file_hashes.json").is_file()
    assert file_sha256(file, tmp_path) == first
    file.write_bytes(b"abcd")
    os.utime(file, ns=(1, 1))
    assert file_sha256(file, tmp_path) != first


@pytest.mark.parametrize("broken", ['{"truncated": ', "[1, 2]", "\x00\xff"])
def test_unreadable_hash_index_is_rebuilt_with_a_log_line(tmp_path, broken, caplog):
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"abc")
    expected = hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "file_hashes.json").write_text(broken, encoding="utf-8", errors="surrogateescape")
    with caplog.at_level(logging.WARNING, logger="wanda_viz.files"):
        assert file_sha256(file, tmp_path) == expected
    assert "rebuilding" in caplog.text
    # the rebuilt index is valid JSON again and serves the next call
    assert json.loads((tmp_path / "file_hashes.json").read_text()) != {}
    assert file_sha256(file, tmp_path) == expected


def test_callback_and_default_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(tmp_path / "env-cache"))
    model = make_tiny_model("llama")
    seen = []
    _sweep(model, methods=("magnitude",), callback=lambda d, t, row: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    assert len(list((tmp_path / "env-cache").glob("*.json"))) == 2


def test_export_table_csv_and_json_round_trip(tmp_path):
    import json

    import pandas as pd

    from wanda_viz.analysis import export_table

    table = pd.DataFrame({"channel": [3, 7], "layers": [["model.layers.0"], []],
                          "ppl": [1.5, float("nan")], "norm": [torch.tensor(2.0), 1.0]})
    export_table(table, tmp_path / "t.csv", protocol="seed 0")
    assert (tmp_path / "t.csv").read_text().startswith("# protocol: seed 0\n")
    back = pd.read_csv(tmp_path / "t.csv", comment="#")
    assert back["channel"].tolist() == [3, 7] and json.loads(back["layers"][0]) == [
        "model.layers.0"]
    export_table(table, tmp_path / "t.json", protocol="seed 0")
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["protocol"] == "seed 0" and payload["rows"][1]["ppl"] is None
    assert payload["rows"][0]["norm"] == 2.0 and payload["rows"][0]["layers"] == ["model.layers.0"]
    with pytest.raises(ValueError, match=".csv or .json"):
        export_table(table, tmp_path / "t.xlsx")


def test_hub_fingerprint_uses_cached_snapshot_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "a" * 40
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert model_fingerprint("org/tiny")["fingerprint"] == f"hub:org/tiny@{commit}"
    assert model_fingerprint("org/absent", revision="v1")["fingerprint"] == "hub:org/absent@v1"


def test_corrupt_cache_file_is_recomputed_and_short_eval_fails_early(tmp_path, prune_calls):
    model = make_tiny_model("llama")
    first = _sweep(model, methods=("wanda",), cache_dir=tmp_path)
    (tmp_path / f"{first['key'].iloc[1]}.json").write_text("{not json")
    second = _sweep(model, methods=("wanda",), cache_dir=tmp_path)
    assert second["cached"].tolist() == [True, False] and len(prune_calls) == 2
    with pytest.raises(ValueError, match="fewer than one window"):
        _runner(model, cache_dir=tmp_path, eval_ids=EVAL_IDS[:, :10])
    assert len(prune_calls) == 2
