"""The evaluation setup of a job, resolved once: what every point is evaluated against.

``EvalSetup`` gathers the evaluation text (ids, label, ``seq_len`` read from ``EvalConfig``,
``max_windows``, batch size), the calibration windows and their description, the model
fingerprint, the point cache folder and the library version. Every analysis that evaluates a
changed model (sweep, ablation, why, zero-shot ...) takes it through a ``PointRunner``; nothing
re-derives ``seq_len`` from the calibration ids.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..captions import calibration_caption
from ..config import EvalConfig, eval_seq_len
from ..evaluate import count_eval_windows, eval_protocol
from .cache import default_cache_dir, tensor_sha256

__all__ = ["EvalSetup", "resolve_eval_setup", "library_version"]


def library_version() -> str:
    from .. import __version__  # at call time: the package __init__ has finished by then
    return __version__


@dataclass(frozen=True, eq=False)
class EvalSetup:
    """Everything a point is evaluated against (tensors on CPU, shared by every point; compared
    by identity, since tensors have no single truth value).

    Attributes:
        eval_ids: (1, n_tokens) evaluation text, or None for metrics that bring their own data.
        eval_label: what the text is ("WikiText-2 raw test"); seq_len: window length;
            max_windows: the first windows only (None = all); eval_batch_size: windows per pass.
        calib_ids: (n_samples, seq_len) calibration windows (None: no change reads them).
        calibration: their description (``get_calibration_ids``'s dict) for captions and keys.
        fingerprint: ``model_fingerprint(...)``; None = nothing is cached on disk.
        cache_dir: the point cache folder; batch_size: calibration windows per forward pass.
        calibration_key: description + hash of the ids (what a calibrated point is keyed on);
        eval_ids_sha256: hash of the evaluation ids. Both computed once, here.
    """

    eval_ids: torch.Tensor | None
    eval_label: str
    seq_len: int
    max_windows: int | None = None
    eval_batch_size: int = 1
    calib_ids: torch.Tensor | None = None
    calibration: dict | None = None
    fingerprint: dict | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    batch_size: int = 8
    version: str = field(default_factory=library_version)
    calibration_key: dict = field(init=False)
    eval_ids_sha256: str | None = field(init=False)

    def __post_init__(self) -> None:
        ids_hash = tensor_sha256(self.calib_ids) if self.calib_ids is not None else None
        object.__setattr__(self, "calibration_key",
                           {**(self.calibration or {}), "ids_sha256": ids_hash})
        object.__setattr__(self, "eval_ids_sha256", tensor_sha256(self.eval_ids)
                           if self.eval_ids is not None else None)

    @property
    def eval_protocol(self) -> str:
        """The perplexity caption ('WikiText-2 raw test, non-overlapping seq_len 128 ...')."""
        return eval_protocol(self.eval_ids, self.eval_label, self.seq_len, self.max_windows)

    @property
    def calibration_caption(self) -> str:
        return calibration_caption(self.calibration, self.calib_ids)

    def protocol_columns(self) -> dict:
        """Columns every row of a table shares: model, version, calibration, eval_protocol."""
        model = self.fingerprint.get("model") if self.fingerprint else None
        return {"model": model, "version": self.version,
                "calibration": self.calibration_caption, "eval_protocol": self.eval_protocol}


def resolve_eval_setup(model: nn.Module, evaluation: EvalConfig, *,
                       eval_ids: torch.Tensor | None, eval_label: str = "evaluation text",
                       calib_ids: torch.Tensor | None = None, calibration: dict | None = None,
                       fingerprint: dict | None = None,
                       cache_dir: str | os.PathLike | None = None,
                       batch_size: int = 8) -> EvalSetup:
    """The setup of a job on ``model``: ``seq_len`` from ``evaluation`` (``eval_seq_len``).

    Raises:
        ValueError: the evaluation text is shorter than one window (before anything is pruned).
    """
    seq_len = eval_seq_len(model, evaluation)
    if eval_ids is not None and count_eval_windows(eval_ids.numel(), seq_len,
                                                   evaluation.max_windows) == 0:
        raise ValueError(f"the evaluation text has {eval_ids.numel()} tokens, fewer than one "
                         f"window of seq_len = {seq_len}")
    return EvalSetup(eval_ids=eval_ids, eval_label=eval_label, seq_len=seq_len,
                     max_windows=evaluation.max_windows, eval_batch_size=evaluation.batch_size,
                     calib_ids=calib_ids, calibration=calibration, fingerprint=fingerprint,
                     cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
                     batch_size=batch_size)
