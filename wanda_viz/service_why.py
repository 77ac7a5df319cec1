"""Model job of the "Why it works" tab: the three analyses of ``analysis.why_run`` on the cached model.

Like the jobs of ``ui/engine.py`` (to be ported into ``wanda_viz/service/jobs.py``): it holds the
model cache lock for the whole job (``MODELS.use``), works on the cached DENSE model, and returns
CPU results; the model is dense and hook-free when it returns. Perplexity points are cached on disk
per model and calibration (the sweep cache folder, subfolder ``why``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .analysis import model_fingerprint
from .analysis.why_run import WhyResult, run_why
from .ui.cache import MODELS
from .ui.engine import EvalSpec, ModelSpec, _gpu
from .ui.settings import Limits

__all__ = ["why_job"]


@_gpu
def why_job(spec: ModelSpec, calib_ids: torch.Tensor, evaluation: EvalSpec, *,
            calibration: dict, limits: Limits, sparsity: float = 0.5,
            ks: Sequence[int] = (1, 2, 4, 8), seeds: Sequence[int] = (0, 1, 2),
            cache_dir: str | None = None) -> WhyResult:
    """Disagreement per input channel, outlier vs random channel cuts, massive activations."""
    with MODELS.use(spec.source, spec.device, spec.dtype, limits) as entry:
        eval_ids, label = entry.get_eval_ids(evaluation.source, evaluation.data_dir)
        fingerprint = model_fingerprint(spec.source, model=entry.model)
        return run_why(entry.model, calib_ids, eval_ids, tokenizer=entry.tokenizer,
                       sparsity=sparsity, ks=tuple(ks), seeds=tuple(seeds),
                       fingerprint=fingerprint, calibration=calibration, eval_label=label,
                       seq_len=calib_ids.shape[1], max_windows=evaluation.max_windows,
                       cache_dir=cache_dir, model_name=spec.label, dense=entry.backup)
