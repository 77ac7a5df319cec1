"""Model-side jobs of the dashboard: take the cached dense model, work, return CPU results.

A job holds the model cache lock from start to end (``MODELS.use``) and the dense weights are
restored when it leaves, so one user's pruning never shows up in another user's view. Results are
small CPU objects (``PruneResult``, reports, tables) that the UI keeps per session in ``gr.State``.
On a ZeroGPU Space (the ``spaces`` package importable) every job runs inside ``spaces.GPU``; prune,
evaluate and generate happen in one call each and return CPU results. Locally nothing changes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..analysis import (ActivationReport, GenerationComparison, ScoreReport, analyze_layer_scores,
                        collect_activation_report, compare_generations, group_ablation,
                        model_fingerprint, run_sweep)
from ..config import PruneConfig
from ..data import get_calibration_ids
from ..evaluate import count_eval_windows, perplexity, perplexity_protocol
from ..models import (WeightBackup, find_decoder_layers, find_prunable_layers, model_device,
                      resolve_seq_len)
from ..pruning import apply_keep_mask, prune_model
from ..result import PruneResult
from .cache import MODELS, CachedModel
from .settings import Limits

__all__ = ["ModelSpec", "CalibSpec", "EvalSpec", "RunRecord", "Session", "PRESETS",
           "prune_job", "outliers_job", "scores_job", "ablation_job", "sweep_job", "generate_job"]

logger = logging.getLogger(__name__)

# One-click comparisons of the Prune tab: name -> configs run on the same calibration windows.
PRESETS: dict[str, tuple[PruneConfig, ...]] = {
    "50% unstructured: magnitude vs Wanda vs SparseGPT": tuple(
        PruneConfig(method=m, sparsity=0.5) for m in ("magnitude", "wanda", "sparsegpt")),
    "2:4: magnitude vs Wanda vs SparseGPT": tuple(
        PruneConfig(method=m, sparsity=0.5, structure="2:4")
        for m in ("magnitude", "wanda", "sparsegpt")),
    "Wanda per-row vs per-layer": (PruneConfig(method="wanda", sparsity=0.5, group="row"),
                                   PruneConfig(method="wanda", sparsity=0.5, group="layer")),
}


def _gpu(fn):
    """``spaces.GPU(fn)`` on a ZeroGPU Space; ``fn`` unchanged anywhere else."""
    try:
        import spaces  # optional: only present on Hugging Face Spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=120)(fn)


@dataclass(frozen=True)
class ModelSpec:
    """Which cached model a job uses: ``source`` as given to ``load_model``."""

    source: str
    label: str
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class CalibSpec:
    """Calibration windows: a dataset name / file (``source``) or raw ``text``."""

    source: str | None
    text: str | None
    n_samples: int
    seq_len: int
    seed: int = 0
    data_dir: str | None = None


@dataclass(frozen=True)
class EvalSpec:
    """Perplexity protocol: ``source`` "wikitext2" (test), "wikitext2-valid" or None (skip)."""

    source: str | None
    max_windows: int
    data_dir: str | None = None


@dataclass
class RunRecord:
    """One pruned variant: its result, its perplexity and, for SparseGPT, its updated weights.

    Magnitude and Wanda only zero weights, so the keep-masks in ``result`` rebuild the pruned model
    from the dense one exactly; SparseGPT also updates kept weights, so those are stored (CPU).
    """

    result: PruneResult
    perplexity: float | None = None
    weights: WeightBackup | None = None

    @property
    def label(self) -> str:
        return self.result.config.label()

    def apply(self, model) -> None:
        """Put the dense ``model`` into this run's pruned state."""
        if self.weights is not None:
            self.weights.restore(model)
            return
        prefix, blocks = find_decoder_layers(model)
        for name, layer in find_prunable_layers(blocks, prefix).items():
            apply_keep_mask(layer, self.result.keep_masks[name])


@dataclass
class Session:
    """Everything one browser session has computed; small, CPU-only, deep-copyable."""

    model: ModelSpec | None = None
    calib_spec: CalibSpec | None = None
    eval_spec: EvalSpec | None = None
    model_info: str | None = None                # "5.2M parameters, cpu, torch.float32"
    calib_ids: torch.Tensor | None = None        # (n_samples, seq_len), reused by every analysis
    calibration: dict | None = None
    eval_protocol: str | None = None
    dense_perplexity: float | None = None
    runs: dict[str, RunRecord] = field(default_factory=dict)
    report: ActivationReport | None = None
    report_tokens: list[str] | None = None      # tokens of the window with the largest |h|
    scores: ScoreReport | None = None
    ablation: pd.DataFrame | None = None
    sweep: pd.DataFrame | None = None
    generation: GenerationComparison | None = None

    def same_setup(self, other: Session) -> bool:
        """Same model, calibration windows and perplexity protocol: runs compare side by side."""
        return (self.model, self.calib_spec, self.eval_spec) == \
            (other.model, other.calib_spec, other.eval_spec)

    def merge(self, new: Session, max_runs: int) -> Session:
        """Add ``new``'s runs to this session when the setup is the same, else start over."""
        if not self.same_setup(new):
            return new
        runs = {**self.runs, **new.runs}
        for label in list(runs)[:-max_runs] if len(runs) > max_runs else []:
            runs.pop(label)
        self.runs, self.model_info = runs, new.model_info
        if new.report is not None:
            self.report, self.report_tokens = new.report, new.report_tokens
        if new.eval_protocol is not None:
            self.dense_perplexity, self.eval_protocol = new.dense_perplexity, new.eval_protocol
        return self


def _calibrate(entry: CachedModel, calib: CalibSpec) -> tuple[torch.Tensor, dict]:
    seq_len = resolve_seq_len(entry.model, calib.seq_len)
    return entry.get_calibration(calib, lambda: get_calibration_ids(
        entry.tokenizer, source=calib.source, text=calib.text, n_samples=calib.n_samples,
        seq_len=seq_len, seed=calib.seed, data_dir=calib.data_dir))


def _evaluate(entry: CachedModel, evaluation: EvalSpec, seq_len: int) -> tuple[float, str] | None:
    if evaluation.source is None:
        return None
    eval_ids, label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
    ppl = perplexity(entry.model, eval_ids, seq_len, max_windows=evaluation.max_windows)
    total = count_eval_windows(eval_ids.numel(), seq_len)
    used = count_eval_windows(eval_ids.numel(), seq_len, evaluation.max_windows)
    return ppl, perplexity_protocol(label, seq_len, used, total)


@_gpu
def prune_job(spec: ModelSpec, calib: CalibSpec, configs: tuple[PruneConfig, ...],
              evaluation: EvalSpec, *, limits: Limits, with_dense: bool = True,
              with_report: bool = True) -> Session:
    """Calibrate once, evaluate dense and record outliers (unless the session has them for this
    setup already), then prune and evaluate each config, restoring the dense weights after each."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        calib_ids, calibration = _calibrate(entry, calib)
        session = Session(model=spec, calib_spec=calib, eval_spec=evaluation,
                          model_info=_describe(entry.model), calib_ids=calib_ids,
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
            weights = WeightBackup(entry.model) if config.method == "sparsegpt" else None
            session.runs[config.label()] = RunRecord(result, scored[0] if scored else None, weights)
            entry.backup.restore(entry.model)
    return session


def _describe(model) -> str:
    n_params = sum(p.numel() for p in model.parameters())
    return f"{n_params / 1e6:,.1f}M parameters, {model_device(model)}, {model.dtype}"


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


@_gpu
def ablation_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalSpec,
                 sparsity: float, *, limits: Limits) -> pd.DataFrame:
    """Comparison-group ablation (Wanda and magnitude, per row / layer / input) at one sparsity."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, _label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        return group_ablation(entry.model, calib_ids, eval_ids, sparsity,
                              seq_len=calib_ids.shape[1], max_windows=evaluation.max_windows)


@_gpu
def sweep_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalSpec, *,
              methods: tuple[str, ...], sparsities: tuple[float, ...],
              structures: tuple[str, ...], calibration: dict, limits: Limits,
              cache_dir: str | None = None) -> pd.DataFrame:
    """Perplexity vs sparsity; points already on disk are read from the sweep cache."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        fingerprint = model_fingerprint(spec.source, model=entry.model)
        return run_sweep(entry.model, calib_ids, eval_ids, fingerprint=fingerprint,
                         methods=methods, sparsities=sparsities, structures=structures,
                         calibration=calibration, eval_label=label, seq_len=calib_ids.shape[1],
                         max_windows=evaluation.max_windows, cache_dir=cache_dir)


@_gpu
def generate_job(spec: ModelSpec, runs: dict[str, RunRecord], prompt: str, *, limits: Limits,
                 **decoding) -> GenerationComparison:
    """Dense and every pruned variant on the same prompt with the same decoding settings."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        variants = {label: run.apply for label, run in runs.items()}
        return compare_generations(entry.model, entry.tokenizer, prompt, variants,
                                   dense=entry.backup, **decoding)
