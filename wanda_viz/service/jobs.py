"""Model-side jobs: take the cached dense model, work, return small CPU results (no Gradio).

A job holds the model cache lock (``MODELS.use``, first come first served) and the dense weights
are restored when it leaves, so one user's pruning never shows up in another user's view. Short
jobs hold it from start to end; the sweep and the group ablation take it once per point, so a
generation or a prune that arrives meanwhile runs between two points. Results are
small CPU objects (``PruneResult``, reports, tables) kept per user in a ``Session``.
On a ZeroGPU Space (the ``spaces`` package importable) every job runs inside ``spaces.GPU``; prune,
evaluate and generate happen in one call each and return CPU results. Locally nothing changes.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import pandas as pd
import torch

from ..analysis import (ActivationReport, GenerationComparison, ScoreReport, analyze_layer_scores,
                        collect_activation_report, compare_generations, group_ablation,
                        WhyResult, model_fingerprint, run_sweep, run_why, sweep_points)
from ..config import CalibConfig, EvalConfig, PruneConfig
from ..data import get_calibration_ids
from ..evaluate import evaluate, has_chat_template
from ..models import resolve_seq_len
from ..pruning import prune_model
from .cache import MODELS, CachedModel, describe_model, model_size
from .limits import Limits
from .plans import over_cap_message
from .session import ModelSpec, RunRecord, Session

__all__ = ["prune_job", "outliers_job", "scores_job", "ablation_job", "sweep_job",
           "generate_job", "check_sweep_size", "why_job"]

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


def _evaluate(entry: CachedModel, evaluation: EvalConfig, seq_len: int) -> tuple[float, str] | None:
    if evaluation.source is None:
        return None
    eval_ids, label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
    return evaluate(entry.model, eval_ids, label, seq_len, max_windows=evaluation.max_windows)


@_gpu
def prune_job(spec: ModelSpec, calib: CalibConfig, configs: tuple[PruneConfig, ...],
              evaluation: EvalConfig, *, limits: Limits, with_dense: bool = True,
              with_report: bool = True) -> Session:
    """Calibrate once, evaluate dense and record outliers (unless the session has them for this
    setup already), then prune and evaluate each config, restoring the dense weights after each."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        calib_ids, calibration = _calibrate(entry, calib)
        session = Session(model=spec, calib_spec=calib, eval_spec=evaluation,
                          model_info=describe_model(entry.model),
                          model_size=model_size(entry.model),
                          chat_model=has_chat_template(entry.tokenizer), calib_ids=calib_ids,
                          calibration=calibration)
        dense = _evaluate(entry, evaluation, calib_ids.shape[1]) if with_dense else None
        if dense is not None:
            session.dense_perplexity, session.eval_protocol = dense
        if with_report:
            session.report, session.report_tokens = _report(entry, spec, calib_ids, calibration)
        for config in configs:
            result = prune_model(entry.model, calib_ids, config, calibration=calibration,
                                 model_name=spec.label)
            scored = _evaluate(entry, evaluation, calib_ids.shape[1])
            session.runs[config.label()] = RunRecord.capture(
                entry.model, result, scored[0] if scored else None, calib_ids=calib_ids)
            entry.backup.restore(entry.model)
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


def check_sweep_size(methods, sparsities, structures, limits: Limits) -> int:
    """The number of pruned points of a sweep request; ValueError beyond the host's cap, naming
    a subset that fits (``plans.fitting_subset``)."""
    message = over_cap_message(methods, sparsities, structures, limits.max_sweep_points)
    if message is not None:
        raise ValueError(message)
    return len(sweep_points(methods, sparsities, structures, include_dense=False))


@_gpu
def ablation_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalConfig,
                 sparsity: float, *, limits: Limits) -> pd.DataFrame:
    """Comparison-group ablation (Wanda and magnitude, per row / layer / input) at one sparsity;
    the model is taken once per point."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, _label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        model, dense = entry.model, entry.backup
    return group_ablation(model, calib_ids, eval_ids, sparsity, seq_len=calib_ids.shape[1],
                          max_windows=evaluation.max_windows, dense=dense,
                          model_for_point=_model_per_point(spec, limits))


@_gpu
def sweep_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalConfig, *,
              methods: tuple[str, ...], sparsities: tuple[float, ...],
              structures: tuple[str, ...], calibration: dict, limits: Limits,
              cache_dir: str | None = None) -> pd.DataFrame:
    """Perplexity vs sparsity; points already on disk are read from the sweep cache, the others
    computed one at a time, each with the model taken anew (``WANDA_VIZ_MAX_SWEEP_POINTS`` caps
    the request, checked before anything runs)."""
    check_sweep_size(methods, sparsities, structures, limits)
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        fingerprint = model_fingerprint(spec.source, model=entry.model)
        model, dense = entry.model, entry.backup
    return run_sweep(model, calib_ids, eval_ids, fingerprint=fingerprint,
                     methods=methods, sparsities=sparsities, structures=structures,
                     calibration=calibration, eval_label=label, seq_len=calib_ids.shape[1],
                     max_windows=evaluation.max_windows, cache_dir=cache_dir, dense=dense,
                     model_for_point=_model_per_point(spec, limits))


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
            calibration: dict, limits: Limits, sparsity: float = 0.5,
            ks: tuple[int, ...] = (1, 2, 4, 8), seeds: tuple[int, ...] = (0, 1, 2),
            cache_dir: str | None = None) -> WhyResult:
    """Why Wanda works: per-channel disagreement, outlier-channel and massive-activation cuts.

    Like the sweep, the model is taken anew for the dense pass and for each perplexity point
    (other jobs run in between); points are cached on disk per model and calibration (``why/``).
    """
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        fingerprint = model_fingerprint(spec.source, model=entry.model)
        model, tokenizer, dense = entry.model, entry.tokenizer, entry.backup
    return run_why(model, calib_ids, eval_ids, tokenizer=tokenizer, sparsity=sparsity, ks=ks,
                   seeds=seeds, fingerprint=fingerprint, calibration=calibration,
                   eval_label=label, seq_len=calib_ids.shape[1],
                   max_windows=evaluation.max_windows, cache_dir=cache_dir,
                   model_name=spec.label, dense=dense,
                   model_for_point=_model_per_point(spec, limits))
