"""RIA and "relative importance" alone against hand-computed values and the official code's logic
(tests/ria_oracle.py): scores bit for bit, masks identical (the official per-layer ``<=`` rule
included), and whole-model masks identical on a tiny LLaMA with the same calibration windows, one
window per forward pass."""
from __future__ import annotations

import pytest
import torch

import ria_oracle as oracle
from helpers import official_and_our_windows
from wanda_viz.config import PruneConfig
from wanda_viz.pruning import nm_keep_mask, prune_model, topk_keep_mask
from wanda_viz.pruning.registry import RiaSettings, get_method
from wanda_viz.pruning.ria import reference_threshold_keep_mask, relative_importance, ria_scores
from wanda_viz.testing import make_tiny_model

SEQ_LEN, N_SAMPLES = 32, 16
STRUCTURES = {"unstructured": (0, 0), "2:4": (2, 4), "4:8": (4, 8)}


def _random(rows=48, cols=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=generator), torch.rand(cols, generator=generator) * 10


def _scores(ties: bool) -> torch.Tensor:
    scores = ria_scores(*_random())
    return torch.round(scores * 8) / 8 if ties else scores  # ties: few distinct values


def test_scores_match_hand_computed_values():
    weight = torch.tensor([[1.0, -2.0], [3.0, 4.0]])  # |W| column sums 4, 6; row sums 3, 7
    expected_ri = torch.tensor([[1 / 4 + 1 / 3, 2 / 6 + 2 / 3], [3 / 4 + 3 / 7, 4 / 6 + 4 / 7]])
    torch.testing.assert_close(relative_importance(weight), expected_ri)
    # (sqrt(16))^0.5 = 2, (sqrt(1))^0.5 = 1
    torch.testing.assert_close(ria_scores(weight, torch.tensor([16.0, 1.0])),
                               expected_ri * torch.tensor([[2.0, 1.0]]))


@pytest.mark.parametrize("a", [0.5, 1.0, 0.0])
def test_scores_equal_the_official_expressions(a):
    weight, scaler_row = _random()
    assert torch.equal(ria_scores(weight, scaler_row, a), oracle.ria_metric(weight, scaler_row, a))
    assert torch.equal(relative_importance(weight), oracle.ri_metric(weight))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("sparsity", [0.5, 0.6, 0.3])
def test_masks_equal_the_official_choice(sparsity, ties):
    scores = _scores(ties)
    layer = oracle.ria_mask(scores, sparsity)
    assert torch.equal(reference_threshold_keep_mask(scores, sparsity), ~layer)
    per_row = oracle.ria_mask(scores, sparsity, per_outneuron=True)
    assert torch.equal(topk_keep_mask(scores, sparsity, "row"), ~per_row)
    k = int(scores.numel() * sparsity)
    if not ties:  # `<=` the value at sorted index k: one more than k
        assert int(layer.sum()) == k + 1
    else:  # ...and every weight tied with it
        assert int(layer.sum()) > k + 1


@pytest.mark.parametrize("structure", ["2:4", "4:8"])
def test_nm_masks_equal_the_official_topk_loop(structure):
    n, m = STRUCTURES[structure]
    for ties in (False, True):
        scores = _scores(ties)
        assert torch.equal(nm_keep_mask(scores, n, m), ~oracle.ria_mask(scores, 0.5, n, m))


def test_a_zero_column_gives_nan_scores_that_are_kept_as_officially():
    weight, scaler_row = _random()
    weight[:, 3] = 0  # 0 / 0 in the column term
    scores = ria_scores(weight, scaler_row)
    assert torch.isnan(scores[:, 3]).all()
    keep = reference_threshold_keep_mask(scores, 0.5)
    assert torch.equal(keep, ~oracle.ria_mask(scores, 0.5)) and keep[:, 3].all()


def test_registry_entries():
    ria, ri = get_method("ria"), get_method("ri")
    assert (ria.needs_calibration, ri.needs_calibration) == (True, False)
    assert ria.default_group == ri.default_group == "layer"
    assert not ria.updates_weights and not ri.updates_weights
    assert PruneConfig(method="ria").comparison_group == "layer"
    assert PruneConfig(method="ria", settings={"a": 1.0}).settings == RiaSettings(a=1.0)
    assert PruneConfig(method="ria", group="row").label() == "ria 50% per-row"
    config = PruneConfig(method="ria", settings=RiaSettings(a=1.0))
    assert PruneConfig(**config.to_dict()) == config and config.label() == "ria 50% a=1"


@pytest.fixture(scope="module")
def windows():
    return official_and_our_windows(N_SAMPLES, SEQ_LEN)


def _model():
    model = make_tiny_model("llama", hidden_size=64, intermediate_size=128)
    model.seqlen = SEQ_LEN
    return model


def _assert_same(keep_masks: dict, prune_masks: dict) -> None:
    assert keep_masks.keys() == prune_masks.keys()
    for name, keep in keep_masks.items():
        assert torch.equal(keep, ~prune_masks[name]), name


@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("per_outneuron", [False, True])
def test_model_masks_equal_official_prune_ria(structure, per_outneuron, windows):
    loader, calib_ids = windows
    n, m = STRUCTURES[structure]
    theirs = oracle.prune_ria(_model(), loader, 0.5, n, m, per_outneuron=per_outneuron)
    group = "row" if per_outneuron else None
    ours = prune_model(_model(), calib_ids, PruneConfig(method="ria", structure=structure,
                                                         group=group, batch_size=1))
    _assert_same(ours.keep_masks, theirs)


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_model_masks_equal_official_ri(structure):
    n, m = STRUCTURES[structure]
    theirs = oracle.prune_ri(_model(), 0.5, n, m)
    ours = prune_model(_model(), None, PruneConfig(method="ri", structure=structure))
    _assert_same(ours.keep_masks, theirs)


def test_the_exponent_reaches_the_scores(windows):
    _, calib_ids = windows
    # a = 0: (sqrt(s))**0 == 1, so RIA is RI exactly; a = 0.5 differs
    ri = prune_model(_model(), None, PruneConfig(method="ri")).keep_masks
    flat = prune_model(_model(), calib_ids, PruneConfig(method="ria", settings=RiaSettings(a=0.0)))
    default = prune_model(_model(), calib_ids, PruneConfig(method="ria"))
    assert all(torch.equal(ri[k], flat.keep_masks[k]) for k in ri)
    assert any(not torch.equal(ri[k], default.keep_masks[k]) for k in ri)
