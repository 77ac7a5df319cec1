"""Side-by-side generation: the same prompt through the dense and pruned models.

One model object serves every variant: a pruned variant is a weight state (a ``WeightBackup``
taken after pruning, whose ``restore`` writes the pruned weights back) or any callable that puts
the model into that state; separate model objects work too. Decoding settings are identical
(greedy by default, or seeded sampling through ``generate_text``), so the first token where a
pruned model leaves the dense continuation is meaningful.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from ..evaluate import GenerationResult, generate_text
from ..layers import WeightBackup

__all__ = ["GenerationComparison", "first_divergence", "compare_generations", "Variant"]

# A pruned variant: a weight state with .restore(model), a callable(model), or a model object.
Variant = WeightBackup | Callable[[nn.Module], None] | nn.Module


def first_divergence(reference: list[int], other: list[int]) -> int | None:
    """Index of the first token where ``other`` differs from ``reference``; None if identical."""
    for index, (a, b) in enumerate(zip(reference, other)):
        if a != b:
            return index
    return None if len(reference) == len(other) else min(len(reference), len(other))


@dataclass
class GenerationComparison:
    """Generations of the same prompt; ``results["dense"]`` is the reference."""

    prompt: str
    results: dict[str, GenerationResult] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def dense(self) -> GenerationResult:
        return self.results["dense"]

    def divergence(self) -> dict[str, int | None]:
        """Variant -> first token index that differs from dense (None = same continuation)."""
        return {name: first_divergence(self.dense.token_ids, r.token_ids)
                for name, r in self.results.items()}

    def token_table(self) -> pd.DataFrame:
        """One row per generated token per variant, ready for a highlighted side-by-side view.

        Returns:
            DataFrame: variant, index, token, token_id, prob, same_as_dense, after_divergence.
        """
        rows = []
        dense_ids = self.dense.token_ids
        for name, result in self.results.items():
            diverged = first_divergence(dense_ids, result.token_ids)
            for index, (token, token_id, prob) in enumerate(
                    zip(result.tokens, result.token_ids, result.token_probs)):
                same = index < len(dense_ids) and dense_ids[index] == token_id
                rows.append({"variant": name, "index": index, "token": token,
                             "token_id": token_id, "prob": prob, "same_as_dense": same,
                             "after_divergence": diverged is not None and index >= diverged})
        return pd.DataFrame(rows, columns=["variant", "index", "token", "token_id", "prob",
                                           "same_as_dense", "after_divergence"])

    def summary(self) -> pd.DataFrame:
        """Per variant: text, tokens, tokens/s, first divergence, mean token probability."""
        divergence = self.divergence()
        rows = [{"variant": name, "text": r.text, "n_tokens": len(r.token_ids),
                 "tokens_per_s": r.tokens_per_s, "first_divergence": divergence[name],
                 "mean_prob": sum(r.token_probs) / len(r.token_probs) if r.token_probs else 0.0}
                for name, r in self.results.items()]
        return pd.DataFrame(rows)


def _apply(variant: Variant, model: nn.Module) -> nn.Module:
    """Put the shared model into the variant's state, or return the variant's own model."""
    if isinstance(variant, nn.Module):
        return variant
    if hasattr(variant, "restore"):
        variant.restore(model)
    else:
        variant(model)
    return model


def compare_generations(model: nn.Module, tokenizer, prompt: str,
                        variants: Mapping[str, Variant], *, max_new_tokens: int = 40,
                        do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                        seed: int = 0, dense: WeightBackup | None = None) -> GenerationComparison:
    """Generate ``prompt`` with the dense model and every pruned variant, same settings.

    Args:
        model: the model object shared by the weight-state variants.
        variants: name -> ``WeightBackup`` of pruned weights, callable(model) that applies a
            pruned state, or a separate model object. The name "dense" is reserved.
        dense: the dense weights; None = the model's current weights (taken before anything
            is applied). The model is left in this dense state on return.
    Returns:
        GenerationComparison with ``results`` dense first, then the variants in order.
    """
    if "dense" in variants:
        raise ValueError("the variant name 'dense' is reserved for the dense model")
    settings = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                "temperature": temperature, "top_p": top_p, "seed": seed}
    dense = dense or WeightBackup(model)
    comparison = GenerationComparison(prompt=prompt, settings=settings)
    try:
        dense.restore(model)
        comparison.results["dense"] = generate_text(model, tokenizer, prompt, **settings)
        for name, variant in variants.items():
            target = _apply(variant, model)
            comparison.results[name] = generate_text(target, tokenizer, prompt, **settings)
            dense.restore(model)
    finally:
        dense.restore(model)
    return comparison
