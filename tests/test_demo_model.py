"""The embedded demo model (assets/demo-model): it loads offline, fits a Space, and prunes."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from wanda_viz import (DEMO_MODEL_DIR, PruneConfig, WeightBackup, find_decoder_layers,
                       find_prunable_layers, generate_text, load_model, prune_model, weight_matrix)

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").is_file(),
                                reason="embedded demo model not present")


def test_weight_file_fits_a_space_and_is_fp16():
    weights = DEMO_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size < 10_000_000  # Spaces reject larger files without LFS
    with safe_open(str(weights), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}


def test_model_card_and_measurements_ship_with_it():
    card = (DEMO_MODEL_DIR / "README.md").read_text()
    report = json.loads((DEMO_MODEL_DIR / "measurements.json").read_text())
    assert f"{report['dense_full']['wikitext2_test']:.2f}" in card  # card rendered from the run
    assert {row["method"] for row in report["grid"]} == {"dense", "magnitude", "wanda", "sparsegpt"}


def test_loads_by_default_generates_and_prunes_exactly():
    model, tokenizer = load_model()  # None = the embedded model, CPU fp32
    assert next(model.parameters()).dtype == torch.float32
    first = generate_text(model, tokenizer, "Once upon a time", max_new_tokens=8)
    assert len(first.token_ids) == 8 and first.text.strip()
    prefix, blocks = find_decoder_layers(model)
    for layer in find_prunable_layers(blocks, prefix).values():
        assert weight_matrix(layer).shape[1] % 8 == 0  # 2:4 and 4:8 fit every row
    backup = WeightBackup(model)
    result = prune_model(model, None, PruneConfig(method="magnitude", sparsity=0.5, structure="2:4"))
    assert result.overall_sparsity == 0.5
    backup.restore(model)
    assert generate_text(model, tokenizer, "Once upon a time", max_new_tokens=8).text == first.text
