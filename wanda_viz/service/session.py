"""What one dashboard user has computed: the ``Session`` and its pruned runs (small, CPU only).

A ``Session`` lives in the user's ``gr.State`` (deep-copied per browser session) or in a notebook
variable; nothing in it holds a model. ``RunRecord.apply`` rebuilds a run's pruned weights on the
dense cached model from its keep-masks (SparseGPT: from its stored updated weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from ..analysis import ActivationReport, GenerationComparison, ScoreReport
from ..config import CalibConfig, EvalConfig
from ..models import WeightBackup, find_decoder_layers, find_prunable_layers
from ..pruning import apply_keep_mask
from ..result import PruneResult

__all__ = ["ModelSpec", "RunRecord", "Session"]


@dataclass(frozen=True)
class ModelSpec:
    """Which cached model a job uses: ``source`` as given to ``load_model``."""

    source: str
    label: str
    device: str = "auto"
    dtype: str = "auto"


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
    calib_spec: CalibConfig | None = None
    eval_spec: EvalConfig | None = None
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
