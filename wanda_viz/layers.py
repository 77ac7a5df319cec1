"""Layer geometry: decoder blocks, prunable layers and their (out, in) weights, found generically.

No per-family code paths: decoder blocks are found from transformers' own metadata
(``_no_split_modules``), prunable layers are every ``nn.Linear`` and GPT-2 style
``transformers.Conv1D`` inside a block (Conv1D stores its weight transposed, (in, out)).
Embeddings and ``lm_head`` sit outside the blocks and are never pruned. Nothing here loads a
model (that is ``loading.py``), so the kernels can read weights without importing the loader.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = [
    "find_decoder_layers", "find_prunable_layers", "weight_matrix", "model_device",
    "model_context_length", "resolve_seq_len", "resolve_device", "WeightBackup",
    "count_prunable_params",
]

logger = logging.getLogger(__name__)


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
    """Every nn.Linear and transformers Conv1D inside ``block``, keyed by qualified name.

    Raises:
        ValueError: ``block`` has parameters but no prunable layer (an architecture whose layers
            are of another type): pruning it would silently report a 0%-pruned model.
    """
    conv1d = _conv1d_class()
    kinds = (nn.Linear,) + ((conv1d,) if conv1d is not None else ())
    join = (lambda n: f"{prefix}.{n}" if prefix else n)
    found = {join(name): module for name, module in block.named_modules()
             if isinstance(module, kinds)}
    if not found and any(True for _ in block.parameters()):
        types = sorted({type(m).__name__ for m in block.modules()
                        if any(True for _ in m.parameters(recurse=False))})
        raise ValueError(f"{prefix or type(block).__name__} has parameters but no prunable layer "
                         f"(nn.Linear or transformers Conv1D); its layers with parameters are "
                         f"{', '.join(types)}")
    return found


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
