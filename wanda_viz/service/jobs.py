"""Model-side jobs: take the cached dense model, work, return small CPU results (no Gradio).

A job holds the model cache lock (``MODELS.use``, first come first served) and the dense weights
are restored when it leaves, so one user's pruning never shows up in another user's view. Short
jobs hold it from start to end; the sweep, the group ablation and the why analyses run on a
``PointRunner`` that takes it once per point, so a generation or a prune that arrives meanwhile
runs between two points, and that stops between points (and inside a prune) when the job's
``CancelToken`` is set. The evaluation setup (``seq_len`` from ``EvalConfig``) is resolved once per
job by ``_point_runner``. Results are
small CPU objects (``PruneResult``, reports, tables) kept per user in a ``Session``.
On a ZeroGPU Space (the ``spaces`` package importable) every job runs inside ``spaces.GPU``; prune,
evaluate and generate happen in one call each and return CPU results. Locally nothing changes.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import pandas as pd
import torch

from ..analysis import (AblationSpec, ActivationReport, GenerationComparison, ScoreReport,
                        SweepSpec, WhyResult, WhySpec, analyze_layer_scores,
                        collect_activation_report, compare_generations, group_ablation,
                        run_sweep, run_why, sweep_points)
from ..analysis.sinks_run import SinksResult, SinksSpec, run_sinks
from ..cancel import CancelToken
from ..config import CalibConfig, EvalConfig, PruneConfig
from ..data import get_calibration_ids
from ..evaluate import has_chat_template
from ..layers import resolve_seq_len
from ..points import PointRunner, model_fingerprint, resolve_eval_setup
from .cache import MODELS, CachedModel, describe_model, model_size
from .limits import Limits
from .plans import over_cap_message
from .prune_runs import prune_runs
from .session import ModelSpec, RunRecord, Session

__all__ = ["prune_job", "outliers_job", "scores_job", "ablation_job", "sweep_job",
           "generate_job", "check_sweep_size", "why_job", "sinks_job"]

logger = logging.getLogger(__name__)


def _gpu(fn):
    """``spaces.GPU(fn)`` on a ZeroGPU Space; ``fn`` unchanged anywhere else."""
    try:
        import spaces  # optional: only present on Hugging Face Spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=120)(fn)


def _calibrate(entry: CachedModel, calib: CalibConfig) -> tuple[torch.Tensor, dict]:
    seq_len = resolve_seq_len(entry.model, calib.seq_len)
    return entry.get_calibration(calib, lambda: get_calibration_ids(
        entry.tokenizer, source=calib.source, text=calib.text, text_label=calib.text_label,
        n_samples=calib.n_samples, seq_len=seq_len, seed=calib.seed, data_dir=calib.data_dir))


@_gpu
def prune_job(spec: ModelSpec, calib: CalibConfig, configs: tuple[PruneConfig, ...],
              evaluation: EvalConfig, *, limits: Limits, with_dense: bool = True,
              with_report: bool = True, cancel: CancelToken | None = None) -> Session:
    """Calibrate once, record outliers (unless the session has them for this setup already), then
    evaluate dense (unless the session has it) and each config as points of one ``PointRunner``
    (``prune_runs``: it restores the dense weights after each, also on error or ``Cancelled``,
    and checks ``cancel`` between points, inside the prune and inside the evaluation)."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        calib_ids, calibration = _calibrate(entry, calib)
        session = Session(model=spec, calib_spec=calib, eval_spec=evaluation,
                          model_info=describe_model(entry.model),
                          model_size=model_size(entry.model),
                          chat_model=has_chat_template(entry.tokenizer), calib_ids=calib_ids,
                          calibration=calibration)
        if with_report:
            session.report, session.report_tokens = _report(entry, spec, calib_ids, calibration)
        eval_data = entry.get_eval_ids(evaluation.source, evaluation.data_dir) \
            if evaluation.source is not None else None
        runs = prune_runs(entry.model, configs, calib_ids=calib_ids, calibration=calibration,
                          evaluation=evaluation, eval_data=eval_data, dense=entry.backup,
                          with_dense=with_dense, model_name=spec.label, cancel=cancel)
        session.dense_perplexity, session.eval_protocol = runs.dense_perplexity, \
            runs.eval_protocol
        session.runs.update(runs.runs)
    return session


def _report(entry: CachedModel, spec: ModelSpec, calib_ids: torch.Tensor,
            calibration: dict) -> tuple[ActivationReport, list[str]]:
    """Activation report and the decoded tokens of the window holding the largest |h|."""
    report = collect_activation_report(entry.model, calib_ids, tokenizer=entry.tokenizer,
                                       calibration=calibration, model_name=spec.label)
    sample = int(report.top.sort_values("abs", ascending=False)["sample"].iloc[0]) \
        if len(report.top) else 0
    tokens = [entry.tokenizer.decode([t]) for t in calib_ids[sample].tolist()]
    return report, tokens


@_gpu
def outliers_job(spec: ModelSpec, calib_ids: torch.Tensor, calibration: dict, *,
                 limits: Limits) -> tuple[ActivationReport, list[str]]:
    """Outlier features / massive activations of the dense model on the session's windows."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        return _report(entry, spec, calib_ids, calibration)


@_gpu
def scores_job(spec: ModelSpec, calib_ids: torch.Tensor, layer: str, sparsity: float, *,
               calibration: dict, limits: Limits) -> ScoreReport:
    """Score distributions of one layer of the dense model (magnitude, Wanda, SparseGPT)."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        return analyze_layer_scores(entry.model, calib_ids, layer, sparsity,
                                    calibration=calibration)


def _model_per_point(spec: ModelSpec, limits: Limits):
    """A factory of ``MODELS.use`` contexts yielding the dense model: long jobs take the shared
    model once per point and queue (first come first served) behind whoever arrived meanwhile."""
    @contextmanager
    def hold():
        with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
            yield entry.model
    return hold


def _point_runner(spec: ModelSpec, evaluation: EvalConfig, limits: Limits, *,
                  calib_ids: torch.Tensor, calibration: dict | None,
                  cache_dir: str | None = None, cancel: CancelToken | None = None,
                  need_eval: bool = True) -> PointRunner:
    """The job's evaluation setup, resolved once while the model is held, and a runner that
    takes the shared model once per point. Without an evaluation text the job is refused, or
    (``need_eval=False``) gets a setup without one: only its dense passes run."""
    if evaluation.source is None and need_eval:
        raise ValueError("this analysis needs an evaluation text: choose one in tab 1 and prune")
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, label = (None, "none") if evaluation.source is None else \
            entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        setup = resolve_eval_setup(entry.model, evaluation, eval_ids=eval_ids, eval_label=label,
                                   calib_ids=calib_ids, calibration=calibration,
                                   fingerprint=model_fingerprint(spec.source, model=entry.model),
                                   cache_dir=cache_dir)
        model, dense = entry.model, entry.backup
    return PointRunner(model, setup, model_for_point=_model_per_point(spec, limits), dense=dense,
                       cancel=cancel)


def check_sweep_size(sweep: SweepSpec, limits: Limits) -> int:
    """The number of pruned points of a sweep request; ValueError beyond the host's cap, naming
    a subset that fits (``plans.fitting_subset``)."""
    message = over_cap_message(sweep.methods, sweep.sparsities, sweep.structures,
                               limits.max_sweep_points)
    if message is not None:
        raise ValueError(message)
    return len(sweep_points(SweepSpec(sweep.methods, sweep.sparsities, sweep.structures,
                                      include_dense=False)))


@_gpu
def ablation_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalConfig,
                 sparsity: float, *, limits: Limits, calibration: dict | None = None,
                 cache_dir: str | None = None, cancel: CancelToken | None = None) -> pd.DataFrame:
    """Comparison-group ablation (Wanda and magnitude, per row / layer / input) at one sparsity;
    the model is taken once per point, and points are cached like sweep points."""
    runner = _point_runner(spec, evaluation, limits, calib_ids=calib_ids, calibration=calibration,
                           cache_dir=cache_dir, cancel=cancel)
    return group_ablation(runner, AblationSpec(sparsity=sparsity))


@_gpu
def sweep_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalConfig,
              sweep: SweepSpec, *, calibration: dict, limits: Limits,
              cache_dir: str | None = None, cancel: CancelToken | None = None) -> pd.DataFrame:
    """Perplexity vs sparsity; points already on disk are read from the point cache, the others
    computed one at a time, each with the model taken anew (``WANDA_VIZ_MAX_SWEEP_POINTS`` caps
    the request, checked before anything runs)."""
    check_sweep_size(sweep, limits)
    runner = _point_runner(spec, evaluation, limits, calib_ids=calib_ids, calibration=calibration,
                           cache_dir=cache_dir, cancel=cancel)
    return run_sweep(runner, sweep)


@_gpu
def generate_job(spec: ModelSpec, runs: dict[str, RunRecord], prompt: str, *, limits: Limits,
                 **decoding) -> GenerationComparison:
    """Dense and every pruned variant on the same prompt with the same decoding settings."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        variants = {label: run.apply for label, run in runs.items()}
        return compare_generations(entry.model, entry.tokenizer, prompt, variants,
                                   dense=entry.backup, **decoding)


@_gpu
def why_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalConfig, *,
            calibration: dict, limits: Limits, why: WhySpec = WhySpec(),
            cache_dir: str | None = None, cancel: CancelToken | None = None) -> WhyResult:
    """Why Wanda works: per-channel disagreement, outlier-channel and massive-activation cuts.

    Like the sweep, the model is taken anew for the dense pass and for each perplexity point
    (other jobs run in between); points are cached on disk per model and calibration.
    """
    runner = _point_runner(spec, evaluation, limits, calib_ids=calib_ids, calibration=calibration,
                           cache_dir=cache_dir, cancel=cancel)
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        tokenizer = entry.tokenizer
    return run_why(runner, why, tokenizer=tokenizer, model_name=spec.label)


@_gpu
def sinks_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalConfig, *,
              calibration: dict, limits: Limits, sinks: SinksSpec = SinksSpec(),
              report: ActivationReport | None = None, cache_dir: str | None = None,
              cancel: CancelToken | None = None) -> SinksResult:
    """Where the huge activations go: attention sinks, implicit bias, interventions, windows.

    Like the why job, the model is taken anew for the dense passes and for each perplexity point;
    ``report`` (the session's activation report of the same windows) saves one dense pass.
    Without an evaluation text only the dense analyses run.
    """
    runner = _point_runner(spec, evaluation, limits, calib_ids=calib_ids, calibration=calibration,
                           cache_dir=cache_dir, cancel=cancel, need_eval=False)
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        tokenizer = entry.tokenizer
    return run_sinks(runner, sinks, tokenizer=tokenizer, model_name=spec.label, report=report)
