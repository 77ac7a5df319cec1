"""Configuration validation: bad inputs raise ValueError with a message naming the bad value."""
from __future__ import annotations

import pytest

from wanda_viz.config import CalibConfig, EvalConfig, PruneConfig, parse_structure


@pytest.mark.parametrize("text,expected", [
    ("unstructured", None), ("none", None), ("", None), ("2:4", (2, 4)), (" 4:8 ", (4, 8)),
    ("1:4", (1, 4)),
])
def test_parse_structure(text, expected):
    assert parse_structure(text) == expected


@pytest.mark.parametrize("text,message", [
    ("2-4", "must be 'unstructured' or 'N:M'"), ("a:b", "N:M"), ("4:2", "0 < N < M"),
    ("0:4", "0 < N < M"), ("2:4:8", "N:M"),
])
def test_parse_structure_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_structure(text)


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="random"), r"method must be one of magnitude, wanda, sparsegpt, got 'random'"),
    (dict(sparsity=1.0), r"sparsity must be in \[0, 1\), got 1.0"),
    (dict(sparsity=-0.1), r"sparsity must be in \[0, 1\)"),
    (dict(sparsity=0.3, structure="2:4"), r"2:4 requires sparsity == 2/4 = 0.5, got 0.3"),
    (dict(sparsity=0.5, structure="4:8x"), "structure must be"),
    (dict(group="column"), "group must be one of row, layer, input"),
    (dict(method="sparsegpt", group="row"), "group does not apply"),
    (dict(method="magnitude", wanda_variant=True), "unstructured Wanda only"),
    (dict(structure="2:4", wanda_variant=True), "unstructured Wanda only"),
    (dict(structure="2:4", owl=True), "OWL"),
    (dict(owl=True, owl_lambda=0.6), "owl_lambda"),
    (dict(method="sparsegpt", settings={"block_size": 0}), "block_size must be positive"),
    (dict(batch_size=0), "positive"),
    (dict(method="sparsegpt", settings={"percdamp": 0.0}), "percdamp must be positive"),
])
def test_prune_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PruneConfig(**kwargs)


def test_prune_config_defaults_and_labels():
    config = PruneConfig()
    assert (config.method, config.sparsity, config.nm) == ("wanda", 0.5, None)
    assert config.comparison_group == "row"
    assert PruneConfig(method="magnitude").comparison_group == "layer"
    assert PruneConfig(method="sparsegpt").comparison_group == "block"
    assert PruneConfig(method="magnitude").needs_calibration is False
    assert PruneConfig(method="magnitude", owl=True).needs_calibration is True
    assert PruneConfig(structure="2:4").label() == "wanda 50% 2:4"
    assert PruneConfig(method="wanda", group="layer").label() == "wanda 50% per-layer"
    assert PruneConfig(sparsity=0.6, structure="unstructured").nm is None
    assert PruneConfig().to_dict()["method"] == "wanda"


def test_prune_config_is_frozen():
    with pytest.raises(AttributeError):
        PruneConfig().sparsity = 0.7  # type: ignore[misc]


@pytest.mark.parametrize("make,message", [
    (lambda: CalibConfig(n_samples=0), "n_samples must be at least 1, got 0"),
    (lambda: CalibConfig(seq_len=1), "seq_len must be at least 2, got 1"),
    (lambda: EvalConfig(seq_len=1), "seq_len must be at least 2"),
    (lambda: EvalConfig(max_windows=0), "max_windows must be at least 1"),
    (lambda: EvalConfig(batch_size=0), "batch_size must be positive"),
])
def test_calib_and_eval_config_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_calib_and_eval_configs_compare_by_value():
    # The dashboard caches calibration windows per CalibConfig and compares sessions by them.
    a = CalibConfig(source="wikitext2", n_samples=4, seq_len=32)
    assert a == CalibConfig(source="wikitext2", n_samples=4, seq_len=32) and hash(a) == hash(
        CalibConfig(source="wikitext2", n_samples=4, seq_len=32))
    assert a != CalibConfig(text="pasted", n_samples=4, seq_len=32)
    assert EvalConfig().source == "wikitext2" and EvalConfig(source=None).source is None


def test_calib_config_reference_defaults():
    config = CalibConfig()
    assert (config.n_samples, config.seq_len, config.seed) == (128, None, 0)
