"""Why Wanda works: per-channel disagreement, weight-space and activation-space interventions.

A tiny LLaMA with PLANTED outlier channels (``why_planted``): input channel 3 of q/k/v and gate/up
is huge and every weight reading it is small, the paper's mechanism; token 5 carries a planted
massive activation. Evaluation text is sampled from the dense model itself, so the dense model is
its true distribution and any change raises the expected perplexity (by the KL divergence); the
planted channels must hurt far more than random ones.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from conftest import VOCAB, make_tiny_model
from why_planted import (MASSIVE_CHANNEL, MASSIVE_TOKEN, PLANTED, SMALL, assert_unchanged,
                         hooks, norm_fed, planted_model, planted_setup, snapshot)
from wanda_viz.analysis.why import (channel_disagreement, layer_disagreement, model_disagreement,
                                    summarize_disagreement, top_channel_count)
from wanda_viz.analysis.why_activations import (activation_intervention, massive_sites,
                                                measure_massive_means,
                                                replace_massive_activations)
from wanda_viz.analysis.why_interventions import (ChannelSpec, channel_intervention,
                                                  select_channels,
                                                  zero_input_channels)
from wanda_viz.analysis.why_run import WhySpec, export_why, run_why


@pytest.fixture(scope="module")
def setup():
    return planted_setup()


def test_channel_disagreement_hand_example():
    # Column 0 has tiny weights but input norm 100 (others 1). Magnitude per layer prunes the 8
    # smallest |W| = column 0, row 0's rest and W[1,1]; Wanda (x100 on column 0) prunes columns
    # 1, 2 of every row. Kept by Wanda only: column 0 x 4 rows, W[0,3]. Magnitude only:
    # W[1,2], W[2,1], W[2,2], W[3,1], W[3,2].
    weight = torch.tensor([[0.1, 1, 2, 3], [0.2, 4, 5, 6], [0.3, 7, 8, 9], [0.4, 10, 11, 12]])
    table = channel_disagreement(weight, torch.tensor([1e4, 1, 1, 1]), 0.5, layer="L")
    assert table["wanda_only"].tolist() == [4, 0, 0, 1]
    assert table["magnitude_only"].tolist() == [0, 2, 3, 0]
    assert table["disagreements"].tolist() == [4, 2, 3, 1]
    assert table["norm_rank"].tolist() == [1, 2, 3, 4]          # ties by index
    assert table["top_channel"].tolist() == [True, False, False, False]
    report_layers = summarize_disagreement(table)
    assert report_layers["top_share"].item() == pytest.approx(4 / 10)
    assert report_layers["top_share_wanda_only"].item() == pytest.approx(4 / 5)
    assert report_layers["uniform_share"].item() == pytest.approx(1 / 4)


def test_top_channel_count():
    assert [top_channel_count(n) for n in (4, 100, 101, 576, 1536)] == [1, 1, 2, 6, 16]


def test_disagreement_sits_on_planted_channels(setup):
    model, _, _, report = setup
    result = model_disagreement(model, report, 0.5)
    modules = dict(model.named_modules())
    for layer, table in result.channels.groupby("layer"):
        if not norm_fed(layer):
            continue
        row = table.set_index("channel").loc[PLANTED]
        others = table[table["channel"] != PLANTED]
        assert row["norm_rank"] == 1 and row["top_channel"], layer
        assert row["disagreements"] > others["disagreements"].max(), layer
        # By hand: the per-layer magnitude cut (the numel/2-th smallest |W|) lies above 0.002, so
        # magnitude prunes the whole column; Wanda's scores there (0.002 x a norm ~100x the
        # others) top every row, so Wanda keeps it: every row counts once, in wanda_only.
        weight = modules[layer].weight.abs()
        assert torch.kthvalue(weight.flatten(), weight.numel() // 2).values > SMALL
        assert (row["wanda_only"], row["magnitude_only"]) == (weight.shape[0], 0), layer
    fed = result.layers[result.layers["layer"].map(norm_fed)]
    assert (fed["top_share"] > 3 * fed["uniform_share"]).all()
    assert result.overall["layer"] == "all layers"
    assert "per output row" in result.protocol() and "one dense pass" in result.protocol()


def test_layer_and_all_layer_statistics_agree(setup):
    model, calib, _, report = setup
    name = "model.layers.1.mlp.down_proj"
    one = layer_disagreement(model, calib, name, 0.5)
    every = model_disagreement(model, report, 0.5, layers=[name])
    torch.testing.assert_close(torch.tensor(one.channels["input_norm"].values),
                               torch.tensor(every.channels["input_norm"].values), rtol=1e-5,
                               atol=0)
    assert one.channels["disagreements"].tolist() == every.channels["disagreements"].tolist()
    assert len(one.layers) == 1  # no "all layers" row for a single layer


def test_select_channels(setup):
    _, _, _, report = setup
    norms = report.input_norms
    outliers = select_channels(norms, 1)
    assert all(outliers[name].tolist() == [PLANTED] for name in norms if norm_fed(name))
    random = {s: select_channels(norms, 4, seed=s, exclude_top=8) for s in (0, 1)}
    again = select_channels(norms, 2, seed=0, exclude_top=8)
    for name, norm in norms.items():
        top8 = set(torch.sort(norm, descending=True, stable=True).indices[:8].tolist())
        assert not top8 & set(random[0][name].tolist())
        assert again[name].tolist() == random[0][name].tolist()[:2]   # nested across k
    block = "model.layers.0."
    assert random[0][block + "self_attn.q_proj"].tolist() == \
        random[0][block + "self_attn.v_proj"].tolist()               # same input, same draw
    assert any(random[0][n].tolist() != random[1][n].tolist() for n in norms)


def test_zero_input_channels_counts(setup):
    model = planted_model()
    channels = {"model.layers.0.mlp.down_proj": torch.tensor([1, 2])}
    assert zero_input_channels(model, channels) == 32 * 2
    assert (model.model.layers[0].mlp.down_proj.weight[:, [1, 2]] == 0).all()


def test_outlier_channels_hurt_more_than_random(setup, tmp_path, make_runner):
    model, calib, eval_ids, report = setup
    before = snapshot(model)
    runner = make_runner(model, calib, eval_ids, cache_dir=tmp_path,
                         fingerprint={"model": "planted", "fingerprint": "planted-v1"})
    spec = ChannelSpec(ks=(1, 2), seeds=(0, 1, 2))
    result = channel_intervention(runner, report.input_norms, spec)
    assert_unchanged(model, before)
    table = result.table
    assert table["kind"].tolist() == ["dense"] + ["outlier"] * 2 + ["random"] * 6
    dense = table.loc[table["kind"] == "dense", "perplexity"].item()
    for k in (1, 2):
        outlier = table[(table["kind"] == "outlier") & (table["k"] == k)]
        random = table[(table["kind"] == "random") & (table["k"] == k)]
        assert outlier["zeroed_weights"].item() == random["zeroed_weights"].iloc[0]
        assert outlier["perplexity"].item() > 1.5 * dense
        assert outlier["perplexity"].item() > 1.2 * random["perplexity"].max()
    assert not table["cached"].any()
    cached = channel_intervention(runner, report.input_norms, spec)
    assert cached.table["cached"].all()
    assert cached.table["perplexity"].tolist() == table["perplexity"].tolist()
    assert "perplexity:" in result.protocol() and "4 x 16 tokens" in result.protocol()


def test_massive_sites_and_means(setup):
    model, calib, _, report = setup
    sites = massive_sites(report)
    assert (sites.block, sites.block_index, sites.channels[0]) == \
        ("model.layers.0", 0, MASSIVE_CHANNEL)
    sites = measure_massive_means(model, calib, sites)
    with torch.no_grad():   # by hand: block 0's output at the planted token (first position)
        hidden = model(calib, output_hidden_states=True).hidden_states[1]
    expected = hidden[:, 0, MASSIVE_CHANNEL].double().mean().item()
    assert sites.means[MASSIVE_CHANNEL] == pytest.approx(expected, rel=1e-6)
    assert sites.counts[MASSIVE_CHANNEL] == int((calib == MASSIVE_TOKEN).sum())


def test_zero_destroys_mean_keeps(setup, tmp_path, make_runner):
    model, calib, eval_ids, report = setup
    before = snapshot(model)
    result = activation_intervention(make_runner(model, calib, eval_ids), report)
    assert_unchanged(model, before)
    ppl = result.table.set_index("intervention")["perplexity"]
    replaced = result.table.set_index("intervention")["replaced"]
    assert replaced["zero"] == replaced["mean"] == int((eval_ids == MASSIVE_TOKEN).sum())
    assert replaced["dense"] == 0
    first = result.table.set_index("intervention")["first_token"]
    assert first["zero"] == first["mean"] == eval_ids.numel() // 16   # every window starts with 5
    assert ppl["zero"] > 1.5 * ppl["dense"]
    assert abs(ppl["mean"] - ppl["dense"]) < 0.01 * ppl["dense"]
    assert "model.layers.0" in result.protocol()


def test_hook_removed_on_error(setup):
    model, calib, _, report = setup
    sites = measure_massive_means(model, calib, massive_sites(report))
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        with replace_massive_activations(model, sites, "zero"):
            assert hooks(model) != before[1]   # the hook is on while inside
            raise RuntimeError("boom")
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="mode"):
        with replace_massive_activations(model, sites, "half"):
            pass


def _spec(ks=(1,), seeds=(0,)) -> WhySpec:
    return WhySpec(channels=ChannelSpec(ks=ks, seeds=seeds))


def test_run_why_and_export(setup, tmp_path, make_runner):
    model, calib, eval_ids, _ = setup
    before = snapshot(model)
    result = run_why(make_runner(model, calib, eval_ids, max_windows=8), _spec())
    assert_unchanged(model, before)
    assert result.activations is not None and not result.massive.empty
    dense = result.weights.table.iloc[0]
    assert dense["kind"] == "dense"       # one dense point serves both interventions
    assert result.activations.table.iloc[0]["perplexity"] == dense["perplexity"]
    written = export_why(result, out_json=tmp_path / "why.json", out_csv=tmp_path / "why.csv")
    assert {p.name for p in written} == {"why.json", "why.csv", "why_channels.csv",
                                         "why_weights.csv", "why_activations.csv"}
    payload = json.loads((tmp_path / "why.json").read_text())
    assert set(payload) >= {"layers", "weights", "activations", "top_channels", "massive"}
    assert payload["weights"]["protocol"].startswith("zero every weight")
    top = pd.DataFrame(payload["top_channels"]["rows"])
    assert top["top_channel"].all() and len(top) == len(result.disagreement.layers) - 1
    channels = pd.read_csv(tmp_path / "why_channels.csv", comment="#")
    assert len(channels) == len(result.disagreement.channels)
    assert (tmp_path / "why.csv").read_text().startswith("# protocol: Wanda")


def test_no_massive_activations_is_reported_not_raised(tmp_path, make_runner):
    model = make_tiny_model("llama")   # random weights: no |h| > 100
    calib = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    result = run_why(make_runner(model, calib, calib.reshape(1, -1)), _spec())
    assert result.activations is None and "no massive activations" in result.activation_note
    assert "activations" not in result.tables()


def test_model_taken_per_step_and_dense_between(setup, make_runner):
    import contextlib
    model, calib, eval_ids, _ = setup
    before = snapshot(model)
    dense_between = []

    @contextlib.contextmanager
    def hold():   # what a service does: lend its shared model for one step
        dense_between.append(all(torch.equal(before[0][k], v)
                                 for k, v in model.state_dict().items()))
        yield model
        dense_between.append(all(torch.equal(before[0][k], v)
                                 for k, v in model.state_dict().items()))

    run_why(make_runner(model, calib, eval_ids, max_windows=4, model_for_point=hold),
            _spec(ks=(1, 2)))
    assert_unchanged(model, before)
    # dense pass, dense point, 2 outlier + 2 random cuts, massive means, zero, mean: 9 steps
    assert len(dense_between) == 2 * 9 and all(dense_between)
