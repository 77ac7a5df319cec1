"""The method registry: hand-computed scores, what each method needs, one entry adds a method,
and a refinement composes with any base method."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from wanda_viz.config import PruneConfig
from wanda_viz.pruning import prune_layer, prune_model
from wanda_viz.pruning import registry
from wanda_viz.pruning.registry import (DEFAULT_METHODS, METHOD_NAMES, MethodSpec,
                                        RefinementSpec, SparseGPTSettings, get_method,
                                        needs_calibration, needs_hessian, split_method_key)

WEIGHT = torch.tensor([[1.0, -2.0, 3.0, -4.0], [-0.5, 0.25, 8.0, 1.0]])


def _stats(input_sq_norm) -> SimpleNamespace:
    """What the score functions read of ``CalibrationStats``: the input norm, no Hessian."""
    return SimpleNamespace(input_sq_norm=torch.tensor(input_sq_norm), hessian=None)


def _layer() -> nn.Linear:
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(WEIGHT)
    return layer


def test_scores_match_hand_computed_values():
    settings = get_method("wanda").settings()
    assert torch.equal(get_method("magnitude").score(WEIGHT, None, settings), WEIGHT.abs())
    wanda = get_method("wanda").score(WEIGHT, _stats([4.0, 1.0, 0.25, 9.0]), settings)
    assert torch.equal(wanda, torch.tensor([[2.0, 2.0, 1.5, 12.0], [1.0, 0.25, 4.0, 3.0]]))


def test_what_each_method_needs():
    assert METHOD_NAMES == tuple(registry.METHODS) and DEFAULT_METHODS == METHOD_NAMES
    assert {"magnitude", "wanda", "sparsegpt"} <= set(METHOD_NAMES)
    assert [get_method(m).needs_calibration for m in ("magnitude", "wanda", "sparsegpt")] == \
        [False, True, True]
    assert [get_method(m).default_group for m in ("magnitude", "wanda", "sparsegpt")] == \
        ["layer", "row", "block"]
    assert get_method("sparsegpt").updates_weights and not get_method("wanda").updates_weights
    assert not needs_calibration(["magnitude"]) and needs_calibration(["magnitude", "wanda"])
    assert needs_hessian(["sparsegpt"]) and not needs_hessian(["magnitude", "wanda"])
    with pytest.raises(ValueError, match="SparseGPT saliency needs the layer's Hessian"):
        get_method("sparsegpt").score(WEIGHT, _stats([1.0] * 4), SparseGPTSettings())
    with pytest.raises(ValueError, match="method must be one of magnitude, wanda, sparsegpt"):
        get_method("obs")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_entry_is_complete(name):
    """What the figures, captions and UI read: present, and distinct where it must be."""
    spec = get_method(name)
    assert spec.label and spec.formula and spec.unit and spec.citation and spec.groups
    assert spec.color.startswith("#") and spec.dash and spec.marker
    assert set(spec.stats) <= {"input_norm", "hessian"} | set(_statistics())
    others = [get_method(m).color for m in METHOD_NAMES if m != name]
    assert spec.color not in others  # one colour per method, in every figure
    spec.settings()  # the settings dataclass has defaults


def _statistics():
    from wanda_viz.stats import STATISTICS
    return STATISTICS


def test_method_settings_are_a_frozen_dataclass_in_the_config():
    config = PruneConfig(method="sparsegpt", settings={"percdamp": 0.05})
    assert config.settings == SparseGPTSettings(block_size=128, percdamp=0.05)
    assert config.label() == "sparsegpt 50% percdamp=0.05"
    assert config.to_dict()["settings"] == {"block_size": 128, "percdamp": 0.05}
    assert PruneConfig(method="sparsegpt").settings == SparseGPTSettings()
    with pytest.raises(ValueError, match="block_size must be positive"):
        PruneConfig(method="sparsegpt", settings=SparseGPTSettings(block_size=0))
    with pytest.raises(ValueError, match="must be a SparseGPTSettings"):
        PruneConfig(method="sparsegpt", settings=registry.NoSettings())


def test_one_entry_adds_a_method(monkeypatch):
    # Prunes the LARGEST weights: unlike any real method, so the registry is what decides.
    largest_first = MethodSpec("largest-first", "largest first", "-|W|", "-|W|", "a test",
                               lambda w, stats, settings: -w.abs().float(), groups=("row",))
    monkeypatch.setitem(registry.METHODS, "largest-first", largest_first)
    config = PruneConfig(method="largest-first", sparsity=0.5)
    assert config.comparison_group == "row" and not config.needs_calibration
    layer = _layer()
    keep_mask, loss = prune_layer(layer, None, 0.5, config)
    assert loss is None
    assert keep_mask.tolist() == [[True, True, False, False], [True, True, False, False]]
    assert torch.equal(layer.weight, torch.tensor([[1.0, -2.0, 0.0, 0.0], [-0.5, 0.25, 0.0, 0.0]]))


def test_group_is_refused_where_the_method_fixes_it():
    with pytest.raises(ValueError, match="group does not apply"):
        PruneConfig(method="sparsegpt", group="row")
    assert PruneConfig(method="sparsegpt", group="block").comparison_group == "block"


# -- refinements -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlipSettings:
    rows: tuple[int, ...] = (0,)


def _identity(inp: registry.RefineInput) -> torch.Tensor:
    return inp.keep_mask


def _flip(inp: registry.RefineInput) -> torch.Tensor:
    """Inverts the base's mask on the rows named in the settings (a visible, checkable change)."""
    keep = inp.keep_mask.clone()
    for row in inp.config.refine_settings.rows:
        keep[row] = ~keep[row]
    return keep


@pytest.fixture
def refinements(monkeypatch):
    monkeypatch.setitem(registry.REFINEMENTS, "identity",
                        RefinementSpec("identity", "identity", "a test", _identity))
    monkeypatch.setitem(registry.REFINEMENTS, "flip",
                        RefinementSpec("flip", "flip", "a test", _flip, settings=FlipSettings))


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_identity_refinement_keeps_the_base_mask_of_any_method(refinements, method, calib_ids,
                                                               tiny_llama):
    """The base runs as score + group (SparseGPT: its saliency per column block, no OBS update)
    and the refinement sees exactly that mask."""
    from wanda_viz.pruning.pipeline import compute_keep_mask
    refined = PruneConfig(method=method, refine="identity")
    assert refined.method_key == f"{method}+identity" and not refined.updates_weights
    assert split_method_key(f"{method}+identity") == (method, "identity")
    result = prune_model(tiny_llama, calib_ids, refined)
    assert result.losses == {}  # no weight update ran
    assert result.overall_sparsity == pytest.approx(0.5, abs=0.01)
    for name, layer in tiny_llama.named_modules():
        if name in result.keep_masks:  # pruned weights are zero, kept ones untouched (non-zero)
            assert torch.equal(layer.weight != 0, result.keep_masks[name])
    layer = _layer()
    stats = _stats([4.0, 1.0, 0.25, 9.0])
    base = PruneConfig(method="wanda")
    keep, _ = prune_layer(layer, stats, 0.5, PruneConfig(method="wanda", refine="identity"))
    assert torch.equal(keep, compute_keep_mask(
        get_method("wanda").score(WEIGHT, stats, base.settings), 0.5, base))


def test_a_refinement_changes_the_mask_with_its_own_settings(refinements):
    config = PruneConfig(method="magnitude", group="row", refine="flip",
                         refine_settings=FlipSettings(rows=(1,)))
    assert config.label() == "magnitude+flip 50% per-row rows=(1,)"
    layer = _layer()
    keep, _ = prune_layer(layer, None, 0.5, config, name="layer")
    assert keep.tolist() == [[False, False, True, True], [True, True, False, False]]
    assert torch.equal(layer.weight, torch.tensor([[0.0, 0.0, 3.0, -4.0], [-0.5, 0.25, 0.0, 0.0]]))


def test_unknown_refinement_and_settings_without_one_are_refused(refinements):
    with pytest.raises(ValueError, match="refine must be one of identity, flip, got 'dsn'"):
        PruneConfig(refine="dsn")
    with pytest.raises(ValueError, match="refine_settings given without refine"):
        PruneConfig(refine_settings=FlipSettings())


def test_settings_from_the_command_line_are_validated_by_the_registry(tmp_path, capsys):
    from wanda_viz.cli import main
    from wanda_viz.cli.common import settings_arg
    assert settings_arg("percdamp=0.05,block_size=64", "--settings") == {"percdamp": 0.05,
                                                                         "block_size": 64}
    with pytest.raises(ValueError, match="sparsegpt has no setting alpha .*block_size, percdamp"):
        PruneConfig(method="sparsegpt", settings={"alpha": 1})
    assert main(["prune", "--method", "wanda", "--settings", "a=1"]) == 2
    assert "wanda has no setting a (its settings: none)" in capsys.readouterr().err


def test_the_dashboard_cites_every_method_and_refinement(refinements):
    from wanda_viz.figures import METHOD_COLORS
    from wanda_viz.figures._style import method_color, method_dash
    from wanda_viz.ui.texts import method_notes
    notes = method_notes()
    for name in METHOD_NAMES:
        spec = get_method(name)
        assert f"**{spec.label}** (`{name}`)" in notes and spec.citation in notes
        assert METHOD_COLORS[name] == spec.color
    assert "refinement **flip** (`--refine flip`" in notes
    assert method_color("wanda+flip") == get_method("wanda").color
    assert method_dash("wanda+flip") == "dash" and method_dash("wanda") == "solid"
    assert "per 128-column block" in notes  # SparseGPT's group width, from its settings
