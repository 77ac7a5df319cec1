"""Bounded session memory: runs keep packed masks, SparseGPT's kept values live in one store
bounded in bytes, and an evicted run is recomputed bit for bit (with a log line)."""
from __future__ import annotations

import logging

import pytest
import torch

from conftest import make_tiny_model
from wanda_viz.config import PruneConfig
from wanda_viz.layers import WeightBackup, find_decoder_layers, find_prunable_layers, weight_matrix
from wanda_viz.pruning import prune_model
from wanda_viz.pruning.registry import METHOD_NAMES, get_method
from wanda_viz.service.session import RunRecord, Session
from wanda_viz.service.weights_store import UPDATED_WEIGHTS, UpdatedWeightsStore, values_nbytes




@pytest.fixture(autouse=True)
def _empty_store():
    UPDATED_WEIGHTS.clear()
    yield
    UPDATED_WEIGHTS.clear()


def _weights(model) -> dict[str, torch.Tensor]:
    prefix, blocks = find_decoder_layers(model)
    return {name: weight_matrix(layer).detach().clone()
            for name, layer in find_prunable_layers(blocks, prefix).items()}


def _pruned_record(model, method: str, calib: torch.Tensor, **config):
    """(record, the pruned weights right after pruning); the model is dense again on return."""
    dense = WeightBackup(model)
    result = prune_model(model, calib, PruneConfig(method=method, sparsity=0.5, **config))
    masks, pruned = dict(result.keep_masks), _weights(model)
    record = RunRecord.capture(model, result, 1.0, calib_ids=calib)
    dense.restore(model)
    return record, pruned, masks


@pytest.fixture
def calib() -> torch.Tensor:
    return torch.randint(0, 90, (4, 16), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_a_record_keeps_packed_masks_only_and_rebuilds_the_run(method, calib):
    model = make_tiny_model("llama")
    record, pruned, masks = _pruned_record(model, method, calib)
    assert record.result.keep_masks is None  # no bool masks (1 byte per weight) kept
    for name, mask in masks.items():
        assert torch.equal(record.masks[name].to_tensor(), mask)
    assert record.nbytes == sum(-(-m.numel() // 8) for m in masks.values())  # 1 bit per weight
    updates = get_method(method).updates_weights
    assert (record.weights_key is not None) == updates
    expected_store = sum(int(m.sum()) * 4 for m in masks.values()) if updates else 0
    assert UPDATED_WEIGHTS.nbytes == expected_store  # fp32 kept values only
    record.apply(model)
    assert all(torch.equal(pruned[n], w) for n, w in _weights(model).items())


def test_an_evicted_sparsegpt_run_is_recomputed_bit_for_bit(calib, caplog):
    model = make_tiny_model("llama")
    dense = WeightBackup(model)
    record, pruned, masks = _pruned_record(model, "sparsegpt", calib)
    masked_dense = {n: dense.weights[n] * masks[n] for n in masks}
    assert not all(torch.equal(pruned[n], w) for n, w in masked_dense.items())  # values updated
    original = UPDATED_WEIGHTS.get(record.weights_key)
    UPDATED_WEIGHTS.clear()  # evicted (another session's runs took the space)
    with caplog.at_level(logging.INFO, logger="wanda_viz.service.session"):
        record.apply(model)
    assert "recomputing sparsegpt 50%: its updated weights were evicted" in caplog.text
    assert all(torch.equal(pruned[n], w) for n, w in _weights(model).items())  # bit-identical
    rebuilt = UPDATED_WEIGHTS.get(record.weights_key)  # stored again
    assert all(torch.equal(original[n], v) for n, v in rebuilt.items())
    dense.restore(model)
    record.apply(model)  # now from the store, no recomputation
    assert caplog.text.count("recomputing") == 1
    assert all(torch.equal(pruned[n], w) for n, w in _weights(model).items())


def test_values_larger_than_the_bound_are_recomputed_when_needed(calib, monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB", "0")
    model = make_tiny_model("llama")
    record, pruned, _masks = _pruned_record(model, "sparsegpt", calib)
    assert record.weights_key not in UPDATED_WEIGHTS and UPDATED_WEIGHTS.nbytes == 0
    record.apply(model)
    assert all(torch.equal(pruned[n], w) for n, w in _weights(model).items())


def _values(n_floats: int, seed: int) -> dict[str, torch.Tensor]:
    return {"layer": torch.randn(n_floats, generator=torch.Generator().manual_seed(seed))}


def test_the_store_is_a_byte_bounded_lru(monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB", str(3 * 4096 / 2**20))  # 3 x 4 KiB
    store = UpdatedWeightsStore()
    for key in "abc":
        assert store.put(key, _values(1024, ord(key)))  # 4 KiB each: all fit
    assert store.nbytes == 3 * 4096 and len(store) == 3
    assert store.get("a") is not None  # "a" is now the most recent
    assert store.put("d", _values(1024, 4))  # evicts the least recently used: "b"
    assert "b" not in store and {"a", "c", "d"} <= {k for k in "abcd" if k in store}
    assert store.put("e", _values(2048, 5))  # 8 KiB: evicts "c" and "a"
    assert [k for k in "abcde" if k in store] == ["d", "e"] and store.nbytes == 3 * 4096
    assert not store.put("big", _values(4096, 6))  # 16 KiB alone exceeds the bound
    assert "big" not in store and store.nbytes == 3 * 4096
    store.discard("d")
    assert store.nbytes == values_nbytes(_values(2048, 0)) and len(store) == 1


def test_dropped_runs_free_their_store_entries(calib):
    from wanda_viz.service.session import ModelSpec
    model = make_tiny_model("llama")
    spec = ModelSpec("tiny", "tiny")
    first = Session(model=spec, runs={"sparsegpt 50%": _pruned_record(model, "sparsegpt",
                                                                        calib)[0]})
    key = first.runs["sparsegpt 50%"].weights_key
    wanda = Session(model=spec, runs={"wanda 50%": _pruned_record(model, "wanda", calib)[0]})
    merged = first.merge(wanda, max_runs=1)  # the oldest run leaves the session
    assert list(merged.runs) == ["wanda 50%"] and key not in UPDATED_WEIGHTS
    again = Session(model=spec, runs={"sparsegpt 50%": _pruned_record(model, "sparsegpt",
                                                                        calib)[0]})
    other = Session(model=ModelSpec("other", "other"))
    assert merged.merge(again, max_runs=6).runs.keys() == {"wanda 50%", "sparsegpt 50%"}
    new_key = merged.runs["sparsegpt 50%"].weights_key
    merged.merge(other, max_runs=6)  # a new setup starts over: the old runs are gone
    assert new_key not in UPDATED_WEIGHTS and UPDATED_WEIGHTS.nbytes == 0


def test_generation_after_eviction_matches_the_original_run(app_env, caplog):
    """Through the dashboard handlers: a SparseGPT run evicted between two generations."""
    from helpers import prune_with_ui as _prune
    from wanda_viz.ui.tabs import generate
    session = _prune(method="sparsegpt")["session"]
    decoding = dict(prompt="the cat", run="sparsegpt 50%", max_new_tokens=6, do_sample=False,
                    temperature=1.0, top_p=1.0, seed=0)
    stored = generate.on_generate(session, **decoding)["session"].generation
    UPDATED_WEIGHTS.clear()
    with caplog.at_level(logging.INFO, logger="wanda_viz.service.session"):
        rebuilt = generate.on_generate(session, **decoding)["session"].generation
    assert "recomputing sparsegpt 50%" in caplog.text
    for name in ("dense", "sparsegpt 50%"):
        assert rebuilt.results[name].token_ids == stored.results[name].token_ids
        assert rebuilt.results[name].token_probs == stored.results[name].token_probs
