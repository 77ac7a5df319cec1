"""The point runner: one key, a cache that never serves a bad row, pluggable changes and metrics,
dense weights and no hooks after every point, cancellation between points and inside a prune."""
from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

import pytest
import torch

from conftest import make_tiny_model
from wanda_viz.cancel import Cancelled, CancelToken
from wanda_viz.config import PruneConfig
from wanda_viz.points import Dense, ForwardHooks, Metric, Prune, WeightEdit

EVAL_IDS = torch.randint(0, 99, (1, 64), generator=torch.Generator().manual_seed(1))
FINGERPRINT = {"model": "tiny", "fingerprint": "tiny-v1"}


def _state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_dense_and_hook_free(model, dense: dict) -> None:
    assert all(torch.equal(dense[k], v) for k, v in model.state_dict().items())
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name


@dataclass(frozen=True)
class Accuracy(Metric):
    """A zero-shot-like metric: a dict of per-task numbers (here: fixed, or computed by ``fn``)."""

    tasks: tuple[str, ...] = ("boolq", "rte")
    value: float = 0.5
    name = "accuracy-test"
    columns = ("accuracy",)

    def key(self, setup) -> dict:
        return {"metric": self.name, "tasks": list(self.tasks)}

    def evaluate(self, model, setup, cancel) -> dict:
        return {"accuracy": {task: self.value for task in self.tasks}}


def _runner(make_runner, model, calib_ids, tmp_path, **kwargs):
    return make_runner(model, calib_ids, EVAL_IDS, fingerprint=FINGERPRINT, cache_dir=tmp_path,
                       **kwargs)


def test_one_key_per_point_shared_by_every_analysis(calib_ids, make_runner, tmp_path):
    model = make_tiny_model("llama")
    runner = _runner(make_runner, model, calib_ids, tmp_path)
    other_calib = _runner(make_runner, model, calib_ids + 1, tmp_path)
    # The dense point reads no calibration: one key whatever the windows; pruning reads them.
    assert runner.key(Dense()) == other_calib.key(Dense())
    wanda = Prune(PruneConfig(method="wanda"))
    assert runner.key(wanda) != other_calib.key(wanda)
    magnitude = Prune(PruneConfig(method="magnitude"))
    assert runner.key(magnitude) == other_calib.key(magnitude)
    # batch size and mask storage change no result, so no key; a metric's settings do.
    assert runner.key(wanda) == runner.key(Prune(PruneConfig(method="wanda", batch_size=2)))
    assert runner.key(Dense(), Accuracy()) != runner.key(Dense())
    assert runner.key(Dense(), Accuracy()) != runner.key(Dense(), Accuracy(tasks=("rte",)))


def test_points_are_cached_and_a_dict_metric_round_trips(calib_ids, make_runner, tmp_path):
    model = make_tiny_model("llama")
    runner = _runner(make_runner, model, calib_ids, tmp_path)
    first = runner.run(Prune(PruneConfig(method="wanda")))
    assert not first["cached"] and first["achieved_sparsity"] == pytest.approx(0.5)
    again = runner.run(Prune(PruneConfig(method="wanda")))
    assert again["cached"] and again["perplexity"] == first["perplexity"]
    accuracy = runner.run(Dense(), Accuracy())
    assert runner.run(Dense(), Accuracy())["accuracy"] == accuracy["accuracy"] == \
        {"boolq": 0.5, "rte": 0.5}
    assert runner.run(Dense(), Accuracy())["cached"]


@pytest.mark.parametrize("row", [
    {"row": {"perplexity": float("nan")}}, {"row": {"perplexity": "12"}}, {"row": {}},
    {"row": [1, 2]}, {"rows": {}}, "not json"])
def test_a_bad_cached_row_is_never_served(calib_ids, make_runner, tmp_path, caplog, row):
    model = make_tiny_model("llama")
    runner = _runner(make_runner, model, calib_ids, tmp_path)
    good = runner.run(Dense())
    path = tmp_path / f"{good['key']}.json"
    path.write_text(row if isinstance(row, str) else json.dumps(row), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="wanda_viz.points.cache"):
        again = runner.run(Dense())
    assert not again["cached"] and again["perplexity"] == good["perplexity"]
    assert "recomputing point" in caplog.text
    assert runner.run(Dense())["cached"]  # the recomputed row replaced the bad one


def test_a_non_finite_result_is_returned_but_not_stored(calib_ids, make_runner, tmp_path):
    model = make_tiny_model("llama")
    runner = _runner(make_runner, model, calib_ids, tmp_path)
    row = runner.run(Dense(), Accuracy(value=float("inf")))
    assert row["accuracy"]["boolq"] == float("inf") and not row["cached"]
    assert not (tmp_path / f"{row['key']}.json").exists()


def test_weight_edits_are_undone_and_hooks_removed(calib_ids, make_runner, tmp_path):
    model = make_tiny_model("llama")
    dense = _state(model)
    runner = _runner(make_runner, model, calib_ids, tmp_path)
    layer = "model.layers.0.mlp.down_proj"

    def zero(m) -> dict:
        dict(m.named_modules())[layer].weight.data.zero_()
        return {"zeroed": 1}

    edited = runner.run(WeightEdit("zero-down", {"layer": layer}, zero, columns=("zeroed",)))
    assert edited["zeroed"] == 1 and edited["perplexity"] != runner.run(Dense())["perplexity"]
    _assert_dense_and_hook_free(model, dense)

    @contextlib.contextmanager
    def scale(m):
        calls = {"calls": 0}

        def hook(module, inputs, output):
            calls["calls"] += 1
            return output * 2

        handle = dict(m.named_modules())["model.layers.1"].mlp.register_forward_hook(hook)
        try:
            yield calls
        finally:
            handle.remove()

    hooked = runner.run(ForwardHooks("double-mlp", {}, scale, columns=("calls",)))
    assert hooked["calls"] == 4  # filled while the metric ran: one call per window
    _assert_dense_and_hook_free(model, dense)


def test_cancel_between_points_keeps_finished_points(calib_ids, make_runner, tmp_path):
    model = make_tiny_model("llama")
    dense = _state(model)
    token = CancelToken()
    runner = _runner(make_runner, model, calib_ids, tmp_path, cancel=token)
    changes = [Dense(), Prune(PruneConfig(method="magnitude")), Prune(PruneConfig())]
    with pytest.raises(Cancelled):
        runner.run_all(changes, callback=lambda done, total, row: token.cancel(),
                       show_progress=False)
    _assert_dense_and_hook_free(model, dense)
    resumed = _runner(make_runner, model, calib_ids, tmp_path)
    assert [resumed.run(c)["cached"] for c in changes] == [True, False, False]


def test_cancel_inside_a_prune_restores_the_dense_model(calib_ids, make_runner, tmp_path):
    """Set while block 0 runs: prune_model stops at the next block boundary."""
    model = make_tiny_model("llama")
    dense = _state(model)
    token = CancelToken()
    handle = model.model.layers[0].register_forward_hook(lambda *args: token.cancel())
    runner = _runner(make_runner, model, calib_ids, tmp_path, cancel=token)
    with pytest.raises(Cancelled):
        runner.run(Prune(PruneConfig(method="sparsegpt")))
    handle.remove()
    _assert_dense_and_hook_free(model, dense)
    assert not list(tmp_path.glob("*.json"))  # nothing half-done was cached


def test_cancel_is_checked_inside_perplexity(calib_ids, make_runner, tmp_path):
    model = make_tiny_model("llama")
    token = CancelToken()
    handle = model.register_forward_hook(lambda *args: token.cancel())
    runner = _runner(make_runner, model, calib_ids, tmp_path, cancel=token)
    with pytest.raises(Cancelled):
        runner.run(Dense())
    handle.remove()
