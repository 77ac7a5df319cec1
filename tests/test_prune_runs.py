"""Tab 1's prunes run as points of the one PointRunner (service/prune_runs.py).

The comparison's numbers are the library's (prune_model + perplexity on the same windows); a
cancel between two prunes leaves the cached model dense and raises ``Cancelled``.
"""
from __future__ import annotations

import pytest
import torch

from helpers import SETUP, dense_weights
from wanda_viz.cancel import Cancelled, CancelToken
from wanda_viz.config import PruneConfig, eval_seq_len


def _compare():
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import model
    return model.on_compare(Session(), **SETUP, sparsity=0.5, structure="unstructured")


def test_compare_numbers_are_the_librarys(app_env):
    from wanda_viz import prune_model
    from wanda_viz.evaluate import perplexity
    from wanda_viz.layers import WeightBackup
    from wanda_viz.service.cache import MODELS
    session = _compare()["session"]
    (entry,) = MODELS._models.values()
    eval_ids, _ = entry.get_eval_ids(session.eval_spec.source, session.eval_spec.data_dir)
    model, backup = entry.model, WeightBackup(entry.model)
    evaluation = session.eval_spec

    def ppl() -> float:
        return perplexity(model, eval_ids, eval_seq_len(model, evaluation),
                          max_windows=evaluation.max_windows, batch_size=evaluation.batch_size)

    assert ppl() == session.dense_perplexity
    for label, method in (("magnitude 50%", "magnitude"), ("wanda 50%", "wanda")):
        prune_model(model, session.calib_ids, PruneConfig(method=method, sparsity=0.5),
                    calibration=session.calibration)
        pruned = ppl()
        backup.restore(model)
        assert pruned == session.runs[label].perplexity  # bit for bit: the same computation
        assert session.runs[label].masks  # what tabs 3, 4 and 6 rebuild the run from


def test_a_cancel_between_prunes_leaves_the_model_dense(app_env, monkeypatch):
    from wanda_viz.service import get_limits, jobs, prune_runs
    from wanda_viz.service.cache import MODELS
    session = _compare()["session"]
    token, real = CancelToken(), prune_runs.RunRecord.capture
    captured = []

    def capture_then_cancel(*args, **kwargs):
        captured.append(real(*args, **kwargs))
        token.cancel()  # the user presses Cancel while the first run is being recorded
        return captured[-1]

    monkeypatch.setattr(prune_runs.RunRecord, "capture", capture_then_cancel)
    configs = (PruneConfig(method="magnitude", sparsity=0.6), PruneConfig(method="wanda",
                                                                        sparsity=0.6))
    with pytest.raises(Cancelled):
        jobs.prune_job(session.model, session.calib_spec, configs, session.eval_spec,
                       limits=get_limits(), with_report=False, cancel=token)
    assert len(captured) == 1  # the second prune never started
    (entry,) = MODELS._models.values()
    dense = dense_weights()
    assert all(torch.equal(dense[name], w) for name, w in entry.backup.weights.items())
