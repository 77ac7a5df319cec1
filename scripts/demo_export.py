"""Export and evaluation helpers for the embedded demo model (see train_demo_model.py).

Writes the trained model as a plain Hugging Face folder (config.json, fp16 `model.safetensors`,
tokenizer files, generation_config.json), measures held-out perplexity the way the Wanda
repository's `eval_ppl` does (non-overlapping windows, mean token cross-entropy, exp), and
writes `training_log.json`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

__all__ = [
    "MAX_WEIGHT_BYTES",
    "export_model",
    "load_exported",
    "compute_perplexity",
    "generate_sample",
    "write_training_log",
]

logger = logging.getLogger(__name__)

MAX_WEIGHT_BYTES = 10_000_000  # Hugging Face Spaces reject files over 10 MB pushed without LFS
EXPORT_DTYPE = torch.float16


def export_model(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: str | Path
) -> Path:
    """Save an fp16 copy of `model` plus tokenizer and generation config to `out_dir`.

    The training model is left untouched (it stays fp32 for further training).

    Returns:
        Path of the written `model.safetensors`.

    Raises:
        ValueError: if the weight file exceeds `MAX_WEIGHT_BYTES`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    half = LlamaForCausalLM(model.config).to(EXPORT_DTYPE)
    half.load_state_dict({k: v.to(EXPORT_DTYPE) for k, v in model.state_dict().items()})
    half.config.dtype = EXPORT_DTYPE
    half.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.8,
        top_k=40,
        max_new_tokens=64,
    )
    half.save_pretrained(out)
    tokenizer.save_pretrained(out)
    weights = out / "model.safetensors"
    size = weights.stat().st_size
    if size > MAX_WEIGHT_BYTES:
        raise ValueError(f"{weights} is {size:,} bytes, over the {MAX_WEIGHT_BYTES:,} byte limit")
    logger.info("exported model to %s (%.2f MB weights)", out, size / 1e6)
    return weights


def load_exported(out_dir: str | Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Load an exported folder the way users will, upcast to fp32 for CPU evaluation."""
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    return model.eval(), tokenizer


@torch.no_grad()
def compute_perplexity(
    model: LlamaForCausalLM, windows: torch.Tensor, batch_size: int = 8
) -> float:
    """Perplexity over `windows`, `(n_windows, seq_len)` int64: exp of the mean token CE."""
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for start in range(0, windows.shape[0], batch_size):
        batch = windows[start : start + batch_size]  # (b, T)
        logits = model(input_ids=batch).logits[:, :-1].float()  # (b, T-1, V)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
        )
        total_nll += nll.item()
        total_tokens += batch[:, 1:].numel()
    model.train(was_training)
    return math.exp(total_nll / total_tokens)


@torch.no_grad()
def generate_sample(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    prompt: str,
    *,
    max_new_tokens: int = 48,
    seed: int = 0,
) -> str:
    """Sample a continuation of `prompt` with the model's generation config (seeded)."""
    torch.manual_seed(seed)  # generate() samples from the global RNG
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=max_new_tokens)  # (1, prompt + new)
    return tokenizer.decode(out[0], skip_special_tokens=True)


def write_training_log(out_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write `record` as `training_log.json` in `out_dir` and return its path."""
    path = Path(out_dir) / "training_log.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)
    return path
