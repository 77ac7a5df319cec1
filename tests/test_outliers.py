"""Outlier features and massive activations: golden tests with planted channels on a tiny LLaMA."""
from __future__ import annotations

import pickle

import pytest
import torch
from conftest import make_tiny_model

from wanda_viz.analysis import (collect_activation_report, find_massive_activations,
                                find_outlier_features, input_norm_table, layer_magnitude_table)
from wanda_viz.layers import find_decoder_layers

OUTLIER, MASSIVE, SECOND, LATE, FIRST_TOKEN = 5, 11, 13, 20, 7


class _Decoder:
    """Stands in for a tokenizer: only ``decode`` is used."""

    def decode(self, ids):
        return "<s>" if ids == [FIRST_TOKEN] else f"w{ids[0]}"


@pytest.fixture
def planted():
    """Channel 5 = 10 in every residual (all layers); channels 11 and 13 = 5000 and 3000 on
    token 7 (position 0); channel 20 blown up by block 1's down_proj only (layer 1 only)."""
    model = make_tiny_model("llama")
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[:, OUTLIER] = 10.0
        embedding[FIRST_TOKEN, MASSIVE] = 5000.0
        embedding[FIRST_TOKEN, SECOND] = 3000.0
        find_decoder_layers(model)[1][1].mlp.down_proj.weight[LATE, :] *= 30000
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(8, 99, (4, 32), generator=generator)  # token 7 only at position 0
    ids[:, 0] = FIRST_TOKEN
    return model, ids


SECOND_FEATURE = 9


@pytest.fixture
def planted_inputs():
    """Linear-layer inputs with planted LLM.int8 features: channels 5 and 9 are 10 in every
    residual (so each is 4.0 after RMSNorm); the attention-input norm of both blocks scales channel
    5 by 100 and block 1's FFN-input norm scales channel 9 by 100. Channel 20 is blown up on the
    residual of block 1 only (by its down_proj): it never enters a linear layer."""
    model = make_tiny_model("llama")
    blocks = find_decoder_layers(model)[1]
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[:, OUTLIER] = 10.0
        embedding[:, SECOND_FEATURE] = 10.0
        for block in blocks:
            block.input_layernorm.weight[OUTLIER] = 100.0
        blocks[1].post_attention_layernorm.weight[SECOND_FEATURE] = 100.0
        blocks[1].mlp.down_proj.weight[LATE, :] *= 30000
    ids = torch.randint(8, 99, (4, 32), generator=torch.Generator().manual_seed(0))
    return model, ids


def test_outlier_features_are_counted_on_linear_inputs(planted_inputs):
    model, ids = planted_inputs
    report = collect_activation_report(model, ids)
    assert report.site_names == ["model.layers.0.input_layernorm",
                                 "model.layers.0.post_attention_layernorm",
                                 "model.layers.1.input_layernorm",
                                 "model.layers.1.post_attention_layernorm"]
    assert report.site_readers[0] == [f"model.layers.0.self_attn.{p}_proj" for p in "qkv"]
    assert report.site_readers[1] == ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    features = find_outlier_features(report).set_index("channel")
    # 20 is huge on the residual stream (every position of block 1's output) but enters no
    # linear layer: not an LLM.int8 feature. 9 counts in block 1 only (its FFN input) = 50%.
    assert set(features.index) == {OUTLIER, SECOND_FEATURE}
    assert report.channel_share[1, LATE] == 1.0
    assert features.loc[OUTLIER, "layers"] == ["model.layers.0", "model.layers.1"]
    assert features.loc[OUTLIER, "sites"] == [report.site_names[0], report.site_names[2]]
    assert features.loc[SECOND_FEATURE, "layers"] == ["model.layers.1"]
    assert features.loc[SECOND_FEATURE, "sites"] == [report.site_names[3]]
    assert features.loc[OUTLIER, "mean_position_share"] == 1.0
    assert features.loc[OUTLIER, "max_abs"] == pytest.approx(400.0, rel=0.05)  # 4.0 x 100
    strict = find_outlier_features(report, min_layer_share=0.75)
    assert strict["channel"].tolist() == [OUTLIER]


def test_massive_activation_on_first_token(planted):
    model, ids = planted
    report = collect_activation_report(model, ids, tokenizer=_Decoder(), top_k=8)
    massive = find_massive_activations(report)
    # one row per (layer, position, channel): the 4 windows do not repeat the same activation
    assert len(massive) == 4
    assert sorted(zip(massive["layer"], massive["channel"])) == [
        ("model.layers.0", MASSIVE), ("model.layers.0", SECOND),
        ("model.layers.1", MASSIVE), ("model.layers.1", SECOND)]
    assert set(massive["position"]) == {0}
    assert set(massive["token_id"]) == {FIRST_TOKEN} and set(massive["token"]) == {"<s>"}
    assert massive["abs"].max() == pytest.approx(5000, rel=1e-3)  # measured 4999.99
    assert massive["abs"].min() == pytest.approx(3000, rel=1e-3)
    assert len(find_massive_activations(report, min_abs=4000)) == 2


def test_layer_table_and_report_is_small_and_picklable(planted):
    model, ids = planted
    report = collect_activation_report(model, ids)
    table = layer_magnitude_table(report)
    assert list(table["layer"]) == ["model.layers.0", "model.layers.1"]
    assert (table["top1"] >= table["top2"]).all() and (table["top2"] >= table["top3"]).all()
    assert table["top2"].round(-1).tolist() == [3000.0, 3000.0]  # the second planted channel
    assert (table["top1_over_median"] > 1000).all()
    assert report.channel_max.shape == (2, 32) and report.channel_share.shape == (2, 32)
    assert len(report.input_norms) == 14  # 7 prunable layers per LLaMA block
    norms = input_norm_table(report, "model.layers.0.self_attn.q_proj")
    # after RMSNorm the all-token outlier channel dominates the q_proj input norms (Wanda's view)
    assert norms["channel"].iloc[0] == OUTLIER and norms["ratio_to_median"].iloc[0] > 10
    restored = pickle.loads(pickle.dumps(report))
    assert torch.equal(restored.channel_max, report.channel_max)
    assert len(pickle.dumps(report)) < 100_000
    with pytest.raises(ValueError, match="threshold"):
        find_outlier_features(report, magnitude=3.0)


def test_no_hooks_left_and_model_unchanged(planted):
    model, ids = planted
    before = {k: v.clone() for k, v in model.state_dict().items()}
    collect_activation_report(model, ids)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("family", ["opt", "gpt2"])
def test_other_architectures(family, calib_ids):
    report = collect_activation_report(make_tiny_model(family), calib_ids)
    assert report.n_layers == 2 and report.hidden_size == 32
    # two normalised inputs per block: attention (q/k/v or c_attn) and the FFN's first layer
    assert len(report.site_names) == 4 and report.site_channel_share.shape == (4, 32)
    assert report.site_blocks == [0, 0, 1, 1]
    assert all(len(readers) >= 1 for readers in report.site_readers)
    assert len(layer_magnitude_table(report)) == 2
    widths = {norms.numel() for norms in report.input_norms.values()}
    assert 32 in widths and len(widths) == 2  # hidden-size inputs and MLP-width inputs
