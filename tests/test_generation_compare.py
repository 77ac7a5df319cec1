"""Dense vs pruned generation on one model object: divergence index and per-token table."""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import save_sentence_llama

from wanda_viz import PruneConfig, WeightBackup, load_model, prune_model
from wanda_viz.analysis import compare_generations, first_divergence

PROMPT = "the cat sat on the"


@pytest.fixture
def model_and_tokenizer(tmp_path):
    model, tokenizer = load_model(save_sentence_llama(tmp_path / "m"), device="cpu")
    model.generation_config.eos_token_id = None  # random weights: never stop early
    return model, tokenizer


def test_first_divergence_golden():
    assert first_divergence([1, 2, 3], [1, 2, 4]) == 2
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 2]) == 2
    assert first_divergence([5], [6]) == 0


def test_compare_dense_and_pruned_states(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    dense = WeightBackup(model)
    prune_model(model, None, PruneConfig(method="magnitude", sparsity=0.9))
    pruned = WeightBackup(model)
    dense.restore(model)
    unchanged = {k: v.clone() for k, v in model.state_dict().items()}
    comparison = compare_generations(model, tokenizer, PROMPT,
                                     {"magnitude 90%": pruned, "identity": lambda m: None},
                                     max_new_tokens=8)
    assert list(comparison.results) == ["dense", "magnitude 90%", "identity"]
    assert comparison.divergence()["identity"] is None
    table = comparison.token_table()
    assert list(table.columns) == ["variant", "index", "token", "token_id", "prob",
                                   "same_as_dense", "after_divergence"]
    assert len(table) == 24 and table.loc[table["variant"] == "identity", "same_as_dense"].all()
    assert table["prob"].between(0, 1).all()
    summary = comparison.summary().set_index("variant")
    assert (summary["tokens_per_s"] > 0).all() and (summary["n_tokens"] == 8).all()
    assert all(torch.equal(unchanged[k], v) for k, v in model.state_dict().items())
    pruned_ids = comparison.results["magnitude 90%"].token_ids
    expected = first_divergence(comparison.dense.token_ids, pruned_ids)
    assert comparison.divergence()["magnitude 90%"] == expected
    flags = table[table["variant"] == "magnitude 90%"]["same_as_dense"].tolist()
    if expected is not None:
        assert flags[expected] is False and all(flags[:expected])


def test_separate_model_object_as_variant(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    other = copy.deepcopy(model)
    prune_model(other, None, PruneConfig(method="magnitude", sparsity=0.5))
    comparison = compare_generations(model, tokenizer, PROMPT, {"copy 50%": other},
                                     max_new_tokens=4, do_sample=True, seed=3)
    assert comparison.settings["do_sample"]
    assert len(comparison.results["copy 50%"].token_ids) == 4
    with pytest.raises(ValueError, match="reserved"):
        compare_generations(model, tokenizer, PROMPT, {"dense": other})
