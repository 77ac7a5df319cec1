"""Shared fixtures: tiny random models built from configs (no downloads), calibration ids, data dir.

Sizes follow the transformers testers, with intermediate sizes divisible by 4 so that 2:4 and 4:8
structures apply to every layer. Model factories are function-scoped so pruning cannot leak.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM,
                          LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          OPTConfig, OPTForCausalLM, PhiConfig, PhiForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

# Tiny models gain nothing from intra-op threads; on a 2-core CI machine thread contention makes
# them many times slower (measured: 370 s vs 25 s for the engine tests).
torch.set_num_threads(1)

VOCAB = 99
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, max_position_embeddings=64)
TINY_CONFIGS = {
    "llama": (LlamaForCausalLM, lambda: LlamaConfig(**_COMMON, num_key_value_heads=2)),
    "mistral": (MistralForCausalLM, lambda: MistralConfig(**_COMMON, num_key_value_heads=2)),
    "qwen2": (Qwen2ForCausalLM, lambda: Qwen2Config(**_COMMON, num_key_value_heads=2)),
    "phi": (PhiForCausalLM, lambda: PhiConfig(**_COMMON)),
    "gpt_neox": (GPTNeoXForCausalLM, lambda: GPTNeoXConfig(**_COMMON)),
    "opt": (OPTForCausalLM, lambda: OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64,
                                              num_hidden_layers=2, num_attention_heads=4,
                                              max_position_embeddings=64, word_embed_proj_dim=32)),
    "gpt2": (GPT2LMHeadModel, lambda: GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                                                 n_positions=64, bos_token_id=0, eos_token_id=0)),
}


def make_tiny_model(family: str = "llama", seed: int = 0) -> torch.nn.Module:
    """A tiny random causal LM of ``family`` in eval mode, deterministic under ``seed``."""
    cls, make_config = TINY_CONFIGS[family]
    torch.manual_seed(seed)
    return cls(make_config()).eval()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def tiny_llama() -> torch.nn.Module:
    return make_tiny_model("llama")


@pytest.fixture
def tiny_opt() -> torch.nn.Module:
    return make_tiny_model("opt")


@pytest.fixture
def calib_ids() -> torch.Tensor:
    """Random token ids (4, 16), seeded."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, VOCAB, (4, 16), generator=generator)


@pytest.fixture
def data_dir() -> Path:
    """The shared data folder ($WANDA_VIZ_DATA or ../shared/data); skips if absent."""
    path = Path(os.environ.get("WANDA_VIZ_DATA", SHARED_DATA))
    if not (path / "wikitext-2-raw" / "wiki.test.raw").is_file():
        pytest.skip("shared data folder not available")
    return path
