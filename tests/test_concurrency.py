"""Long jobs yield the shared model between points; the sweep size cap; queue groups and waits.

On the tiny checkpoint of conftest.py's app_env. Threads are ordered
with events and ``FairLock.wait_for_waiters``, never with sleeps.
"""
from __future__ import annotations

import threading

import pytest
import torch

from helpers import SETUP

TIMEOUT = 60.0
SWEEP = dict(methods=("magnitude", "wanda"), sparsities=(0.3, 0.5), structures=("unstructured",))


def _spec(**fields):
    from wanda_viz.analysis import SweepSpec
    return SweepSpec(**fields)


def _pruned_session():
    from wanda_viz.config import PruneConfig
    from wanda_viz.service import jobs
    from wanda_viz.ui.inputs import build_specs
    spec, calib, evaluation, limits = build_specs(**SETUP)
    session = jobs.prune_job(spec, calib, (PruneConfig(method="wanda", sparsity=0.5),),
                             evaluation, limits=limits)
    return session, limits


def _sweep(session, limits, cache_dir):
    from wanda_viz.service import jobs
    return jobs.sweep_job(session.model, session.calib_ids, session.eval_spec, _spec(**SWEEP),
                          calibration=session.calibration, limits=limits,
                          cache_dir=str(cache_dir))


def test_a_generation_runs_between_two_sweep_points(app_env, monkeypatch, tmp_path):
    from wanda_viz.points import Perplexity
    from wanda_viz.service import jobs
    from wanda_viz.service.cache import MODELS
    session, limits = _pruned_session()
    alone = _sweep(session, limits, tmp_path / "alone")  # reference: nobody else waiting
    (entry,) = MODELS._models.values()
    order, first_point, dense_at_generation = [], threading.Event(), []
    evaluate, compare = Perplexity.evaluate, jobs.compare_generations

    def traced_point(metric, model, setup, cancel):  # runs while the point holds the model
        order.append(f"point {len(order)}")
        if not first_point.is_set():
            first_point.set()
            assert MODELS.lock.wait_for_waiters(1, TIMEOUT)  # the generation queued meanwhile
        return evaluate(metric, model, setup, cancel)

    def traced_generation(model, *args, **kwargs):
        order.append("generation")
        dense_at_generation.append(all(torch.equal(entry.backup.weights[n], w)
                                       for n, w in _weights(model).items()))
        return compare(model, *args, **kwargs)

    monkeypatch.setattr(Perplexity, "evaluate", traced_point)
    monkeypatch.setattr(jobs, "compare_generations", traced_generation)
    results = {}
    sweeper = threading.Thread(target=lambda: results.setdefault(
        "sweep", _sweep(session, limits, tmp_path / "shared")), daemon=True)
    sweeper.start()
    assert first_point.wait(TIMEOUT)
    comparison = jobs.generate_job(session.model, session.runs, "the cat", limits=limits,
                                   max_new_tokens=3)
    sweeper.join(TIMEOUT)
    assert order[0] == "point 0" and order[1] == "generation"  # not after the whole sweep
    assert len(order) == 1 + len(alone)  # every other point ran after it
    assert dense_at_generation == [True]  # the sweep restored the dense weights first
    assert list(comparison.results) == ["dense", "wanda 50%"]
    shared = results["sweep"]
    assert shared["label"].tolist() == alone["label"].tolist()
    assert shared["perplexity"].tolist() == alone["perplexity"].tolist()  # identical results
    assert shared["key"].tolist() == alone["key"].tolist()  # and the same cache entries
    assert all(torch.equal(entry.backup.weights[n], w) for n, w in _weights(entry.model).items())


def _weights(model) -> dict:
    from wanda_viz.layers import WeightBackup
    return WeightBackup(model).weights


def test_waiting_for_the_model_is_reported(app_env):
    from wanda_viz.service.cache import MODELS, report_waits
    from wanda_viz.service.limits import get_limits
    from wanda_viz.ui.inputs import build_specs
    spec = build_specs(**SETUP)[0]
    seen, done = [], threading.Event()

    def waiting_job():
        with report_waits(seen.append), MODELS.use(spec.source, spec.device, spec.dtype,
                                                   get_limits()):
            done.set()

    with MODELS.lock:
        thread = threading.Thread(target=waiting_job, daemon=True)
        thread.start()
        assert MODELS.lock.wait_for_waiters(1, TIMEOUT)
    assert done.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert seen == [1]  # one job (the holder) was ahead


def test_a_sweep_over_the_cap_is_refused_before_any_work(app_env, monkeypatch):
    from wanda_viz.service import jobs
    from wanda_viz.service.cache import MODELS
    from wanda_viz.service.limits import get_limits
    from wanda_viz.ui.tabs import sweep
    monkeypatch.setenv("WANDA_VIZ_MAX_SWEEP_POINTS", "3")
    limits = get_limits()
    assert jobs.check_sweep_size(_spec(methods=("wanda",), sparsities=(0.3, 0.5),
                                       structures=("unstructured", "2:4")), limits) == 3
    with pytest.raises(ValueError, match=r"this sweep has 4 pruned points; this host runs at "
                                         r"most 3 per request \(WANDA_VIZ_MAX_SWEEP_POINTS\)"):
        jobs.check_sweep_size(_spec(methods=("magnitude", "wanda"), sparsities=(0.3, 0.5)),
                              limits)
    session, _limits = _pruned_session()
    MODELS.clear()
    with pytest.raises(Exception, match="WANDA_VIZ_MAX_SWEEP_POINTS") as err:
        sweep.on_sweep(session, methods=["magnitude", "wanda", "sparsegpt"],
                       sparsities=[0.5, 0.6], structures=["unstructured"])
    assert type(err.value).__name__ == "Error"  # gr.Error: shown to the user, app keeps serving
    assert "has 6 pruned points" in str(err.value)
    assert "This fits: magnitude, wanda and sparsegpt at 50% (3 points)" in \
        str(err.value)  # a subset within the cap
    assert MODELS.loaded() == []  # refused before the model was even loaded


def _point_runner_jobs() -> set[str]:
    """Endpoints whose job runs on a PointRunner (model per point), read from service/jobs.py
    and the other service/*_jobs.py modules (each with its own ``_point_runner``)."""
    import ast
    from pathlib import Path

    from wanda_viz import service
    found = set()
    for path in Path(service.__file__).parent.glob("*jobs.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {node.name.removesuffix("_job") for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.endswith("_job")
                  and any(isinstance(n, ast.Call) and getattr(n.func, "id", "") ==
                          "_point_runner" for n in ast.walk(node))}
    return found


def test_long_jobs_have_their_own_queue_and_show_progress(app_env):
    from helpers import documented_endpoints
    from wanda_viz.ui import build_demo
    demo = build_demo()
    named = {name.lstrip("/") for name in demo.get_api_info()["named_endpoints"]}
    events = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name in named}
    assert {f"/{name}" for name in events} == documented_endpoints()
    long_jobs = _point_runner_jobs()
    assert {"sweep", "ablation", "why"} <= long_jobs  # the reading itself works
    for name, fn in events.items():
        if name == "cancel":  # no model work: answered at once, outside both queues
            assert not fn.queue
            continue
        group = "long" if name in long_jobs else "gpu"
        assert (fn.concurrency_id, fn.concurrency_limit) == (group, 1), name
        assert fn.show_progress != "hidden", name  # Gradio shows the queue position
        assert fn.tracks_progress, name  # the handler's gr.Progress reaches the browser


def test_every_long_job_has_a_cancel_button(app_env):
    """Each job that evaluates points (the point runner's jobs) is cancelled by some button."""
    from wanda_viz.ui import build_demo
    demo = build_demo()
    fns = list(demo.fns.values())
    cancelled = {target for fn in fns for target in (getattr(fn, "cancels", None) or [])}
    long_ids = {fn.api_name: fn._id for fn in fns if fn.api_name in _point_runner_jobs()}
    assert {"sweep", "ablation", "why", "sinks"} <= set(long_ids)
    assert {name for name, fn_id in long_ids.items() if fn_id not in cancelled} == set()
