"""Model discovery and loading: blocks and prunable layers for seven architectures, generically.

Decoder blocks come from ``_no_split_modules``; prunable layers are every nn.Linear / GPT-2 Conv1D
inside a block (Conv1D weights are stored (in, out) and exposed as (out, in) by weight_matrix).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM
from transformers.pytorch_utils import Conv1D

from conftest import make_tiny_model
from helpers import make_tokenizer, save_tiny_model
from wanda_viz.layers import (WeightBackup, count_prunable_params, find_decoder_layers,
                              find_prunable_layers, model_context_length, resolve_device,
                              resolve_seq_len, weight_matrix)
from wanda_viz.loading import load_model, resolve_dtype

LLAMA_LIKE = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
EXPECTED = {
    "llama": ("model.layers", LLAMA_LIKE),
    "mistral": ("model.layers", LLAMA_LIKE),
    "qwen2": ("model.layers", LLAMA_LIKE),
    "phi": ("model.layers", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                             "self_attn.dense", "mlp.fc1", "mlp.fc2"]),
    "gpt_neox": ("gpt_neox.layers", ["attention.query_key_value", "attention.dense",
                                     "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]),
    "opt": ("model.decoder.layers", ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj",
                                     "self_attn.out_proj", "fc1", "fc2"]),
    "gpt2": ("transformer.h", ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]),
}
FAMILIES = list(EXPECTED)


@pytest.mark.parametrize("family", FAMILIES)
def test_find_decoder_layers(family):
    model = make_tiny_model(family)
    prefix, blocks = find_decoder_layers(model)
    assert prefix == EXPECTED[family][0]
    assert isinstance(blocks, nn.ModuleList) and len(blocks) == 2
    assert dict(model.named_modules())[prefix] is blocks


@pytest.mark.parametrize("family", FAMILIES)
def test_find_prunable_layers(family):
    model = make_tiny_model(family)
    prefix, blocks = find_decoder_layers(model)
    layers = find_prunable_layers(blocks[1], f"{prefix}.1")
    assert sorted(layers) == sorted(f"{prefix}.1.{name}" for name in EXPECTED[family][1])
    modules = dict(model.named_modules())
    for name, layer in layers.items():
        assert modules[name] is layer  # qualified names resolve in the full model
    all_layers = find_prunable_layers(blocks, prefix)
    assert len(all_layers) == 2 * len(EXPECTED[family][1])
    assert not any("embed" in n or "lm_head" in n or "wte" in n for n in all_layers)


def test_gpt2_conv1d_weight_matrix_is_transposed_view():
    model = make_tiny_model("gpt2")
    c_fc = model.transformer.h[0].mlp.c_fc
    assert isinstance(c_fc, Conv1D)
    assert tuple(c_fc.weight.shape) == (32, 128)  # stored (in, out)
    view = weight_matrix(c_fc)
    assert tuple(view.shape) == (128, 32)  # (out, in)
    view[5, 7] = 0.0
    assert c_fc.weight[7, 5] == 0  # writes go to the parameter
    x = torch.randn(3, 32)
    torch.testing.assert_close(c_fc(x), x @ view.t() + c_fc.bias)


def test_weight_matrix_linear_shares_storage():
    layer = nn.Linear(4, 3)
    assert weight_matrix(layer).data_ptr() == layer.weight.data_ptr()
    assert tuple(weight_matrix(layer).shape) == (3, 4)


def test_count_prunable_params():
    model = make_tiny_model("llama")
    per_block = 32 * 32 * 2 + 16 * 32 * 2 + 64 * 32 * 3
    assert count_prunable_params(model) == 2 * per_block


def test_weight_backup_restores_bit_identical(calib_ids):
    from wanda_viz import PruneConfig, prune_model
    model = make_tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    backup = WeightBackup(model)
    prune_model(model, calib_ids, PruneConfig(method="sparsegpt"))
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    backup.restore(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_resolve_device_and_dtype():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype(torch.float16, torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_resolve_seq_len():
    model = make_tiny_model("llama")  # context 64
    assert model_context_length(model) == 64
    assert resolve_seq_len(model, None) == 64
    assert resolve_seq_len(model, 16) == 16
    with pytest.raises(ValueError, match="longer than the model allows"):
        resolve_seq_len(model, 65)


def test_load_model_from_folder(tmp_path):
    folder = save_tiny_model(tmp_path / "tiny", "llama")
    model, tokenizer = load_model(folder, device="cpu")
    reference = make_tiny_model("llama")
    assert not model.training and model.config.use_cache is False
    assert tokenizer.pad_token_id is not None
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_load_model_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nope" / "model"))


def test_load_model_refuses_non_causal(tmp_path):
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    make_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a causal language model"):
        load_model(str(tmp_path))


def test_load_model_unknown_hub_id_offline(monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    with pytest.raises(OSError, match="cannot reach the Hugging Face Hub .* local folder"):
        load_model("no-such-org/no-such-model-xyz")


def test_load_model_dtype(tmp_path):
    folder = save_tiny_model(tmp_path / "tiny", "gpt2")
    model, _ = load_model(folder, device="cpu", dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_a_block_without_prunable_layers_is_an_error_naming_its_layer_types():
    """Instead of a silent 0%-pruned model (e.g. an architecture with its own layer class)."""
    block = nn.Sequential(nn.Conv1d(4, 4, 1), nn.LayerNorm(4))
    with pytest.raises(ValueError, match=r"model.layers.0 has parameters but no prunable layer "
                                         r".*Conv1d, LayerNorm"):
        find_prunable_layers(block, "model.layers.0")
    assert find_prunable_layers(nn.Sequential(nn.ReLU()), "x") == {}  # no parameters: fine
