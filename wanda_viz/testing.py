"""Tiny random causal LMs for tests, benchmarks and notebooks: built from configs, no downloads.

One builder serves the test suite (every supported family at hidden 32, 2 blocks), the UI tests'
saved checkpoint and the benchmarks' random LLaMA sizes (through ``overrides``). Intermediate sizes
divide by 4, so 2:4 and 4:8 structures apply to every layer.
"""
from __future__ import annotations

import torch
from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM,
                          LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          OPTConfig, OPTForCausalLM, PhiConfig, PhiForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

__all__ = ["TINY_VOCAB", "TINY_CONFIGS", "tiny_config", "make_tiny_model"]

TINY_VOCAB = 99
_COMMON = dict(vocab_size=TINY_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, max_position_embeddings=64)
# family -> (model class, default config fields): sizes as in the transformers testers.
TINY_CONFIGS = {
    "llama": (LlamaForCausalLM, LlamaConfig, dict(_COMMON, num_key_value_heads=2)),
    "mistral": (MistralForCausalLM, MistralConfig, dict(_COMMON, num_key_value_heads=2)),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config, dict(_COMMON, num_key_value_heads=2)),
    "phi": (PhiForCausalLM, PhiConfig, dict(_COMMON)),
    "gpt_neox": (GPTNeoXForCausalLM, GPTNeoXConfig, dict(_COMMON)),
    "opt": (OPTForCausalLM, OPTConfig, dict(vocab_size=TINY_VOCAB, hidden_size=32, ffn_dim=64,
                                            num_hidden_layers=2, num_attention_heads=4,
                                            max_position_embeddings=64, word_embed_proj_dim=32)),
    "gpt2": (GPT2LMHeadModel, GPT2Config, dict(vocab_size=TINY_VOCAB, n_embd=32, n_layer=2,
                                               n_head=4, n_positions=64, bos_token_id=0,
                                               eos_token_id=0)),
}


def tiny_config(family: str = "llama", **overrides):
    """The config of a tiny ``family`` model; ``overrides`` replace any field (sizes, context)."""
    if family not in TINY_CONFIGS:
        raise ValueError(f"family must be one of {', '.join(TINY_CONFIGS)}, got {family!r}")
    _cls, config_cls, fields = TINY_CONFIGS[family]
    return config_cls(**{**fields, **overrides})


def make_tiny_model(family: str = "llama", seed: int = 0, *, dtype: torch.dtype = torch.float32,
                    **overrides) -> torch.nn.Module:
    """A random causal LM of ``family`` in eval mode, deterministic under ``seed``."""
    config = tiny_config(family, **overrides)
    torch.manual_seed(seed)
    return TINY_CONFIGS[family][0](config).to(dtype).eval()
