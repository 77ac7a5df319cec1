"""Host limits and presets of the dashboard, read from environment variables at each call.

A free CPU Space has 2 vCPUs and 16 GB: the defaults keep one prune + evaluation of the embedded
model within seconds and refuse hub models that would not fit. A GPU host raises them with env vars:

| variable | default (CPU / CUDA) | meaning |
|---|---|---|
| WANDA_VIZ_MODEL | embedded demo model | model behind "embedded demo model"; when set, that entry is the default |
| WANDA_VIZ_ALLOW_LOCAL | 0 | allow arbitrary local folders typed by users |
| WANDA_VIZ_ALLOW_REMOTE_CODE | 0 | allow checkpoints that ship their own code |
| WANDA_VIZ_MAX_PARAMS | 200e6 / 3e9 | largest hub model (parameters) |
| WANDA_VIZ_MAX_MODELS | 1 | models kept in memory (LRU) |
| WANDA_VIZ_MAX_SAMPLES | 32 / 128 | calibration windows |
| WANDA_VIZ_MAX_SEQ_LEN | 256 / 2048 | tokens per calibration / evaluation window |
| WANDA_VIZ_MAX_EVAL_WINDOWS | 16 / 64 | perplexity windows |
| WANDA_VIZ_MAX_NEW_TOKENS | 64 / 256 | generation length |
| WANDA_VIZ_MAX_RUNS | 6 | pruned runs kept per browser session (oldest dropped) |
| WANDA_VIZ_MAX_SWEEP_POINTS | 12 / 36 | pruned points one sweep request may have |
| WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB | 1024 / 4096 | SparseGPT runs' kept weights, all sessions |
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..config import PruneConfig
from ..gguf import REAL_MODEL, REAL_MODEL_HUB_IDS, real_model_installed
from ..pruning.registry import get_method

__all__ = ["MODEL_ENV", "EMBEDDED", "REAL_MODEL", "HUB_MODELS", "DEFAULT_SAMPLES",
           "DEFAULT_SEQ_LEN", "DEFAULT_EVAL_WINDOWS", "Limits", "get_limits", "default_model",
           "model_choices", "default_model_choice", "PRESETS"]

MODEL_ENV = "WANDA_VIZ_MODEL"
EMBEDDED = "embedded demo model"          # dropdown label of the instant, 4M-parameter model
HUB_MODELS = ("gpt2", "facebook/opt-125m", "EleutherAI/pythia-160m", *REAL_MODEL_HUB_IDS,
              "TinyLlama/TinyLlama-1.1B-Chat-v1.0")
# Tab 1's defaults, chosen by measurement (scripts/measure_real_model.py, README "Real model"):
# the first Prune of the real model on 2 vCPUs (load, calibration, dense and pruned perplexity,
# activation report, Wanda 50%) answers within about a minute and every phenomenon shows.
DEFAULT_SAMPLES, DEFAULT_SEQ_LEN, DEFAULT_EVAL_WINDOWS = 16, 128, 8


def _env_number(name: str, cpu_default: float, gpu_default: float) -> float:
    raw = os.environ.get(name)
    if raw:
        return float(raw)
    return gpu_default if torch.cuda.is_available() else cpu_default


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Limits:
    """What this host allows one request to do."""

    max_params: float
    max_models: int
    max_samples: int
    max_seq_len: int
    max_eval_windows: int
    max_new_tokens: int
    max_runs: int
    max_sweep_points: int
    max_updated_weights_mb: float
    allow_local: bool
    allow_remote_code: bool


def get_limits() -> Limits:
    """The limits in force now (environment variables, else CPU or CUDA defaults)."""
    return Limits(
        max_params=_env_number("WANDA_VIZ_MAX_PARAMS", 200e6, 3e9),
        max_models=int(_env_number("WANDA_VIZ_MAX_MODELS", 1, 1)),
        max_samples=int(_env_number("WANDA_VIZ_MAX_SAMPLES", 32, 128)),
        max_seq_len=int(_env_number("WANDA_VIZ_MAX_SEQ_LEN", 256, 2048)),
        max_eval_windows=int(_env_number("WANDA_VIZ_MAX_EVAL_WINDOWS", 16, 64)),
        max_new_tokens=int(_env_number("WANDA_VIZ_MAX_NEW_TOKENS", 64, 256)),
        max_runs=int(_env_number("WANDA_VIZ_MAX_RUNS", 6, 6)),
        max_sweep_points=int(_env_number("WANDA_VIZ_MAX_SWEEP_POINTS", 12, 36)),
        max_updated_weights_mb=_env_number("WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB", 1024, 4096),
        allow_local=_env_flag("WANDA_VIZ_ALLOW_LOCAL"),
        allow_remote_code=_env_flag("WANDA_VIZ_ALLOW_REMOTE_CODE"),
    )


def default_model() -> str | None:
    """The model behind the EMBEDDED entry: $WANDA_VIZ_MODEL, else None (= assets/demo-model)."""
    return os.environ.get(MODEL_ENV) or None


def model_choices() -> list[str]:
    """The model dropdown: the real model when its wheel is installed, the embedded model, hub ids.
    """
    return [*([REAL_MODEL] if real_model_installed() else []), EMBEDDED, *HUB_MODELS]


def default_model_choice() -> str:
    """$WANDA_VIZ_MODEL's entry when the host set one, else the real model when installed, else
    the embedded demo model."""
    if default_model() is None and real_model_installed():
        return REAL_MODEL
    return EMBEDDED




def _comparison(methods: tuple[str, ...], structure: str = "unstructured") -> tuple[str, tuple]:
    """A preset comparing the named methods at 50%: its title (from their labels) and configs."""
    title = " vs ".join(get_method(m).label for m in methods)
    prefix = "50% unstructured" if structure == "unstructured" else structure
    return f"{prefix}: {title}", tuple(PruneConfig(method=m, sparsity=0.5, structure=structure)
                                       for m in methods)


# One-click comparisons of the Prune tab: name -> configs run on the same calibration windows.
# Each names its methods: a method added to the registry joins no preset by accident.
_CLASSIC = ("magnitude", "wanda", "sparsegpt")
PRESETS: dict[str, tuple[PruneConfig, ...]] = {
    **dict([_comparison(_CLASSIC), _comparison(_CLASSIC, "2:4")]),
    "Wanda per-row vs per-layer": (PruneConfig(method="wanda", sparsity=0.5, group="row"),
                                   PruneConfig(method="wanda", sparsity=0.5, group="layer")),
}
