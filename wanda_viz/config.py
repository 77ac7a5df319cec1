"""Run configuration: what to prune, how to calibrate, how to evaluate.

Frozen dataclasses validated once, at the boundary (``__post_init__``), so the rest of the library
can trust its inputs. ``PruneConfig`` lives beside the method registry (``pruning/config.py``) and
is re-exported here; calibration and evaluation follow the reference protocols (128 windows, seed 0;
non-overlapping perplexity windows, docs/PROTOCOLS.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from .layers import resolve_seq_len
from .pruning.config import PruneConfig, parse_structure

__all__ = ["PruneConfig", "CalibConfig", "EvalConfig", "parse_structure", "eval_seq_len"]


@dataclass(frozen=True)
class CalibConfig:
    """Calibration windows: ``n_samples`` windows of ``seq_len`` tokens drawn with ``seed``.

    Attributes:
        source: a dataset name (``data.CALIB_SOURCES``) or a text file; None when ``text`` is set.
        text: raw text to sample from (pasted or uploaded); None when ``source`` is set.
        text_label: how captions name ``text`` (e.g. "uploaded file notes.txt"); None: pasted.
        seq_len: None means the smaller of the model's context and 2048 (``resolve_seq_len``).
        data_dir: data folder (None: ``$WANDA_VIZ_DATA``).
    Frozen and hashable: the dashboard caches calibration windows per config.
    """

    source: str | None = None
    text: str | None = None
    text_label: str | None = None
    n_samples: int = 128
    seq_len: int | None = None
    seed: int = 0
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {self.n_samples}")
        if self.seq_len is not None and self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")


@dataclass(frozen=True)
class EvalConfig:
    """Perplexity protocol: non-overlapping windows of ``seq_len`` tokens (reference protocol).

    Attributes:
        source: "wikitext2" (raw test), "wikitext2-valid", a text file, or None (no perplexity).
        max_windows: evaluate only the first windows, for quick looks (None = all of them).
        seq_len: window length; None = the model's default (its context, capped at 2048). The
            dashboard and the command line set it to the calibration's ``seq_len``.
        batch_size: evaluation windows per forward pass.
    """

    source: str | None = "wikitext2"
    max_windows: int | None = None
    data_dir: str | None = None
    seq_len: int | None = None
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.seq_len is not None and self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {self.max_windows}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")


def eval_seq_len(model, evaluation: EvalConfig) -> int:
    """The evaluation window of ``evaluation`` for ``model``: the one rule, read everywhere."""
    return resolve_seq_len(model, evaluation.seq_len)
