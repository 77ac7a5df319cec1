"""What one dashboard user has computed: the ``Session`` and its pruned runs (small, CPU only).

A ``Session`` lives in the user's ``gr.State`` (deep-copied per browser session) or in a notebook
variable; nothing in it holds a model. ``RunRecord.apply`` rebuilds a run's pruned weights on the
dense cached model from its bit-packed keep-masks (1 bit per weight); SparseGPT's updated weights
live in the process-wide, byte-bounded ``UPDATED_WEIGHTS`` store and are recomputed when evicted.
"""
from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..analysis import ActivationReport, GenerationComparison, ScoreReport
from ..analysis.sinks_run import SinksResult
from ..analysis.why_run import WhyResult
from ..config import CalibConfig, EvalConfig
from ..pruning import prune_model
from ..pruning.state import KeptWeights, PackedMask, apply_packed_masks, pack_keep_masks
from ..result import PruneResult
from .weights_store import UPDATED_WEIGHTS

__all__ = ["ModelSpec", "RunRecord", "Session"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """Which cached model a job uses: ``source`` as given to ``load_model``."""

    source: str
    label: str
    device: str = "auto"
    dtype: str = "auto"


@dataclass
class RunRecord:
    """One pruned variant: its result (without bool masks), perplexity and packed keep-masks.

    Magnitude and Wanda only zero weights, so the packed masks rebuild the pruned model from the
    dense one exactly. SparseGPT also updates kept weights: their values go to ``UPDATED_WEIGHTS``
    under ``weights_key``; if evicted, ``apply`` re-runs the same config on ``calib_ids`` (the
    same windows, deterministic) and stores them again.
    """

    result: PruneResult                       # keep_masks None: ``masks`` holds them, packed
    perplexity: float | None = None
    masks: dict[str, PackedMask] = field(default_factory=dict)
    weights_key: str | None = None            # SparseGPT: its kept values in UPDATED_WEIGHTS
    calib_ids: torch.Tensor | None = None     # (n_samples, seq_len): what a rebuild prunes on

    @classmethod
    def capture(cls, model, result: PruneResult, perplexity: float | None = None, *,
                calib_ids: torch.Tensor | None = None) -> RunRecord:
        """The record of ``model`` just pruned to ``result`` (its bool masks are packed and
        dropped from the stored result; updated weights go to the shared store)."""
        if result.keep_masks is None:
            raise ValueError("the run was pruned with store_masks=False: nothing to rebuild from")
        record = cls(dataclasses.replace(result, keep_masks=None), perplexity,
                     pack_keep_masks(result.keep_masks), calib_ids=calib_ids)
        if result.config.updates_weights:
            record.weights_key = uuid.uuid4().hex
            UPDATED_WEIGHTS.put(record.weights_key,
                                KeptWeights.capture(model, result.keep_masks).values)
        return record

    @property
    def label(self) -> str:
        return self.result.config.label()

    @property
    def nbytes(self) -> int:
        """Bytes this record holds itself (packed masks; not the shared store's values)."""
        return sum(mask.nbytes for mask in self.masks.values())

    def apply(self, model) -> None:
        """Put the dense ``model`` into this run's pruned state."""
        if self.weights_key is None:
            apply_packed_masks(model, self.masks)
            return
        values = UPDATED_WEIGHTS.get(self.weights_key)
        if values is None:
            self._rebuild(model)
        else:
            KeptWeights(self.masks, values).apply(model)

    def _rebuild(self, model) -> None:
        """Re-run the pruning on the dense ``model`` (left pruned) and store its values again."""
        if self.calib_ids is None:
            raise ValueError(f"the updated weights of {self.label} were evicted and the run has "
                             "no calibration windows to recompute them: prune it again")
        logger.info("recomputing %s: its updated weights were evicted from the shared store "
                    "(WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB)", self.label)
        config = dataclasses.replace(self.result.config, store_masks=True)
        result = prune_model(model, self.calib_ids, config)
        rebuilt = pack_keep_masks(result.keep_masks)
        if any(not np.array_equal(rebuilt[n].bits, m.bits) for n, m in self.masks.items()):
            logger.warning("recomputed %s has different keep-masks than the original run "
                           "(non-deterministic kernels on this device?)", self.label)
        UPDATED_WEIGHTS.put(self.weights_key, KeptWeights.capture(model, result.keep_masks).values)

    def forget(self) -> None:
        """Free this run's entry in the shared store (the run is dropped from its session)."""
        if self.weights_key is not None:
            UPDATED_WEIGHTS.discard(self.weights_key)


@dataclass
class Session:
    """Everything one browser session has computed; small, CPU-only, deep-copyable."""

    model: ModelSpec | None = None
    calib_spec: CalibConfig | None = None
    eval_spec: EvalConfig | None = None
    model_info: str | None = None                # "5.2M parameters, cpu, torch.float32"
    model_size: tuple[int, int] | None = None    # (parameters, hidden size): time estimates
    chat_model: bool = False                     # its tokenizer has a chat template (instruct)
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
    why: WhyResult | None = None                 # tab 7; dense model, same windows: kept on merge
    zero_shot: pd.DataFrame | None = None        # tab 8; per (state, task), kept on merge
    sinks: SinksResult | None = None             # tab 9; dense model, same windows: kept on merge

    def same_setup(self, other: Session) -> bool:
        """Same model, calibration windows and perplexity protocol: runs compare side by side."""
        return (self.model, self.calib_spec, self.eval_spec) == \
            (other.model, other.calib_spec, other.eval_spec)

    def merge(self, new: Session, max_runs: int) -> Session:
        """Add ``new``'s runs to this session when the setup is the same, else start over."""
        if not self.same_setup(new):
            for run in self.runs.values():
                run.forget()
            return new
        for label, run in self.runs.items():
            if label in new.runs and new.runs[label] is not run:
                run.forget()  # replaced by a new run of the same config
        runs = {**self.runs, **new.runs}
        for label in list(runs)[:-max_runs] if len(runs) > max_runs else []:
            runs.pop(label).forget()
        self.runs, self.model_info, self.model_size = runs, new.model_info, new.model_size
        self.chat_model = new.chat_model
        if new.report is not None:
            self.report, self.report_tokens = new.report, new.report_tokens
        if new.eval_protocol is not None:
            self.dense_perplexity, self.eval_protocol = new.dense_perplexity, new.eval_protocol
        return self

    def release(self) -> None:
        """Free what this session holds in shared stores (its SparseGPT runs' kept weights) and
        drop its results: the session ended (Gradio's state delete callback, a closed tab)."""
        for run in self.runs.values():
            run.forget()
        self.runs.clear()
        self.report = self.scores = self.ablation = self.sweep = None
        self.generation = self.why = self.calib_ids = None
