"""Tab 1's primitive UI values -> validated model spec, calibration and evaluation configs, limits.

Every limit is checked here, before any model is touched, so a bad value costs nothing.
"""
from __future__ import annotations

from pathlib import Path

from ..config import CalibConfig, EvalConfig
from ..data import (BUNDLED_CALIB, BUNDLED_EVAL, CALIB_SOURCES, EVAL_SOURCES, DataUnavailableError,
                    check_text,
                    default_calibration_source, default_eval_source, list_text_files,
                    read_text_file, resolve_data_dir)
from ..service import EMBEDDED, Limits, ModelSpec, get_limits, resolve_model_source

__all__ = ["PASTE", "UPLOAD", "calibration_choices", "default_calibration", "eval_choices",
           "default_eval", "check_range", "build_specs"]

PASTE, UPLOAD = "pasted text", "uploaded .txt file"


def calibration_choices() -> list[str]:
    """Named datasets, pasted/uploaded text and every text file of the data folder."""
    try:
        root = resolve_data_dir()
        files = [str(p.relative_to(root)) for p in list_text_files(root)] if root else []
    except DataUnavailableError:
        files = []
    return [*CALIB_SOURCES, PASTE, UPLOAD, *files]


def default_calibration() -> str:
    """WikiText-2 train (reference) from the data folder or the hub, else the data folder's
    validation split, else the bundled validation slice (offline; the caption names it)."""
    try:
        return default_calibration_source()
    except DataUnavailableError:  # $WANDA_VIZ_DATA names a missing folder
        return BUNDLED_CALIB


def eval_choices() -> list[str]:
    """Named evaluation texts (``data.EVAL_SOURCES``) and "none" (no perplexity)."""
    return [*EVAL_SOURCES, "none"]


def default_eval() -> str:
    """WikiText-2 raw test (reference) from the data folder or the hub, else the bundled slice."""
    try:
        return default_eval_source()
    except DataUnavailableError:
        return BUNDLED_EVAL


def check_range(name: str, value, low, high) -> None:
    if value is None or not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} on this host, got {value}")


def _calib_text(calib_source: str, calib_text: str | None,
                calib_file) -> tuple[str | None, str | None]:
    """(text, caption label) for pasted or uploaded calibration text; (None, None) otherwise."""
    if calib_source == PASTE:
        text = check_text(calib_text or "", "the pasted calibration text")
        return text, None  # captions say "pasted text (<n> characters)"
    if calib_source == UPLOAD:
        if not calib_file:
            raise ValueError("upload a .txt file for calibration")
        path = Path(calib_file if isinstance(calib_file, str) else calib_file.name)
        what = f"the uploaded file {path.name!r}"
        text = read_text_file(path, what=what)
        return text, f"uploaded file {path.name} ({len(text)} characters)"
    return None, None


def build_specs(*, model_choice, device, dtype, calib_source, calib_text, calib_file, n_samples,
                seq_len, seed, eval_source, eval_windows
                ) -> tuple[ModelSpec, CalibConfig, EvalConfig, Limits]:
    """Validate tab 1's values against the host limits; build the model, calibration, eval specs."""
    limits = get_limits()
    check_range("n_samples", n_samples, 1, limits.max_samples)
    check_range("seq_len", seq_len, 8, limits.max_seq_len)
    check_range("evaluation windows", eval_windows, 1, limits.max_eval_windows)
    source = resolve_model_source(model_choice, limits)
    label = "embedded demo model" if model_choice == EMBEDDED else model_choice.strip()
    text, text_label = _calib_text(calib_source, calib_text, calib_file)
    calib = CalibConfig(source=None if text is not None else calib_source, text=text,
                        text_label=text_label,
                        n_samples=int(n_samples), seq_len=int(seq_len), seed=int(seed or 0))
    # Evaluation windows are as long as the calibration windows, as in the reference protocol.
    evaluation = EvalConfig(source=None if eval_source == "none" else eval_source,
                            max_windows=int(eval_windows), seq_len=int(seq_len))
    return ModelSpec(source, label, device, dtype), calib, evaluation, limits
