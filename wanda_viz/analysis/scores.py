"""Score distributions of one layer: |W|, Wanda and SparseGPT saliency, thresholds and agreement.

Scores (docs/PROTOCOLS.md): magnitude ``|W_ij|``; Wanda ``|W_ij| * ||X_j||_2`` (arXiv 2306.11695,
eq. 1); SparseGPT ``W_ij^2 / [H^-1]_jj^2`` (arXiv 2301.00774, section 3.4) with
``H = 2 X X^T / n`` + damping, computed on the dense weight (the kernel recomputes it per
column block on updated weights, so this is the first block's view). Each method's settings (its
registry ``settings`` dataclass: SparseGPT's ``percdamp`` and ``block_size``) are read from
``settings``, so the view shows the same scores and groups a prune with those settings uses.
Statistics come from the DENSE model: one forward pass with a hook on the chosen layer only.
Agreement: Spearman rank correlation (average ranks for ties, torch only, no scipy) and overlap of
the pruned sets at a sparsity, each method in its own reference comparison group.
"""
from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..calibration import record_inputs, stop_forward_at
from ..layers import find_decoder_layers, find_prunable_layers, model_device, weight_matrix
from ..pruning.masks import block_keep_mask, topk_keep_mask
from ..pruning.registry import METHOD_NAMES, get_method
from ..stats import CalibrationStats

__all__ = [
    "SCORE_METHODS", "ScoreReport", "collect_layer_stats", "compute_layer_scores",
    "group_keep_mask", "score_thresholds", "rank_values", "spearman_correlation",
    "pruned_overlap", "score_agreement", "check_prunable_layer", "analyze_layer_scores",
]

SCORE_METHODS = METHOD_NAMES  # every registered method has a score
SPEARMAN_MAX_ELEMENTS = 4_000_000  # NOTE: larger layers are ranked on a seeded random subset


@dataclass
class ScoreReport:
    """Scores of one layer under each method, their thresholds and agreement (CPU, picklable).

    Attributes:
        layer: qualified layer name; shape: (out_features, in_features).
        scores: method -> (out, in) float32 scores (higher = more important).
        keep_masks: method -> (out, in) bool keep-mask at ``sparsity`` in the method's group.
        groups: method -> comparison group used ("layer", "row", "input", "block").
        thresholds: method -> summary of the pruning threshold(s) (see ``score_thresholds``).
        agreement: pairwise table: method_a, method_b, spearman, jaccard, share_of_a.
    """

    layer: str
    shape: tuple[int, int]
    sparsity: float
    scores: dict[str, torch.Tensor]
    keep_masks: dict[str, torch.Tensor]
    groups: dict[str, str]
    thresholds: dict[str, dict]
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: dict | None = None


@torch.no_grad()
def collect_layer_stats(model: nn.Module, calib_ids: torch.Tensor, layer_name: str, *,
                        statistics: Collection[str] = ("hessian",),
                        batch_size: int = 8) -> CalibrationStats:
    """Input statistics (the Wanda norm and ``statistics``) of ONE layer of the dense model.

    Args:
        layer_name: qualified name, e.g. "model.layers.0.mlp.down_proj".
        calib_ids: (n_samples, seq_len) token ids.
        statistics: ``stats.STATISTICS`` names besides the norm (default: the Hessian).
    Returns:
        CalibrationStats with ``input_sq_norm`` (in,) and the asked statistics (float32).
    """
    modules = dict(model.named_modules())
    if layer_name not in modules:
        raise ValueError(f"no layer named {layer_name!r} in {type(model).__name__}")
    layer = modules[layer_name]
    in_features = weight_matrix(layer).shape[1]
    device = model_device(model)
    make = (lambda _n, lyr: CalibrationStats(in_features, lyr.weight.device,
                                             statistics=statistics, seq_len=calib_ids.shape[1]))
    # End each forward pass at the layer, once its input is recorded (the pre-hook registered
    # first runs first): nothing after it can change that input.
    with record_inputs({layer_name: layer}, make) as stats, \
            stop_forward_at(layer, before=True) as run:
        for batch in calib_ids.split(batch_size):
            run(model, batch.to(device), use_cache=False)
    return stats[layer_name]


def method_settings(methods, settings: dict | None = None) -> dict[str, object]:
    """Each method's settings: ``settings[method]`` when given, else its registry defaults."""
    given = settings or {}
    return {m: given.get(m) or get_method(m).settings() for m in methods}


def compute_layer_scores(weight: torch.Tensor, stats: CalibrationStats | None,
                         methods: tuple[str, ...] = SCORE_METHODS,
                         settings: dict | None = None) -> dict[str, torch.Tensor]:
    """Scores of each method for a weight (out, in); float32 on CPU.

    ``stats`` is needed for Wanda (input_sq_norm) and SparseGPT (hessian; not modified);
    ``settings``: method -> its settings (default: the registry's defaults).
    """
    chosen = method_settings(methods, settings)
    scores = {m: get_method(m).score(weight, stats, chosen[m]) for m in methods}
    return {m: s.detach().float().cpu() for m, s in scores.items()}


def group_keep_mask(scores: torch.Tensor, sparsity: float, group: str,
                    block_size: int | None = None) -> torch.Tensor:
    """Keep-mask (out, in) pruning the lowest scores per group: row, layer, input or block.

    "block" is SparseGPT's: one ranking over all rows of each ``block_size``-column block.
    """
    if group != "block":
        return topk_keep_mask(scores, sparsity, group)
    if block_size is None:
        raise ValueError("the 'block' group needs the method's block_size")
    return block_keep_mask(scores, sparsity, block_size)


def score_thresholds(scores: torch.Tensor, keep_mask: torch.Tensor, group: str,
                     block_size: int | None = None) -> dict:
    """The score threshold(s) a keep-mask implies: the largest pruned score per group.

    Returns:
        {"group", "median", "min", "max", "values"}: ``values`` is a list with one threshold per
        group (one for "layer", out_features for "row", in_features for "input", one per
        ``block_size``-column block for "block"); NaN where a group prunes nothing.
    """
    pruned = scores.masked_fill(keep_mask, float("-inf"))
    if group == "layer":
        values = pruned.max().reshape(1)
    elif group == "row":
        values = pruned.max(dim=1).values
    elif group == "input":
        values = pruned.max(dim=0).values
    elif group == "block" and block_size:
        values = torch.stack([pruned[:, i:i + block_size].max()
                              for i in range(0, scores.shape[1], block_size)])
    else:
        raise ValueError(f"group must be row, layer, input or block (with block_size), got "
                         f"{group!r}")
    values = values.masked_fill(torch.isinf(values), float("nan"))
    finite = values[~torch.isnan(values)]
    summary = (lambda f: float(f(finite)) if finite.numel() else float("nan"))
    return {"group": group, "median": summary(torch.median), "min": summary(torch.min),
            "max": summary(torch.max), "values": values.tolist()}


def rank_values(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a flat tensor, ties sharing their average rank (float64)."""
    flat = values.flatten()
    order = torch.argsort(flat, stable=True)
    _, inverse, counts = torch.unique(flat[order], return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # last 1-based rank of each distinct value
    average = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(flat, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def spearman_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rho: Pearson correlation of the average ranks of a and b (same shape)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    ra, rb = rank_values(a), rank_values(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = (ra.square().sum() * rb.square().sum()).sqrt()
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def pruned_overlap(keep_a: torch.Tensor, keep_b: torch.Tensor) -> dict[str, float]:
    """Overlap of the pruned sets: Jaccard |A&B|/|A|B| and share of A also pruned by B."""
    pruned_a, pruned_b = ~keep_a, ~keep_b
    both = (pruned_a & pruned_b).sum().item()
    union = (pruned_a | pruned_b).sum().item()
    count_a = pruned_a.sum().item()
    return {"jaccard": both / union if union else float("nan"),
            "share_of_a": both / count_a if count_a else float("nan")}


def score_agreement(scores: dict[str, torch.Tensor], keep_masks: dict[str, torch.Tensor], *,
                    max_elements: int | None = SPEARMAN_MAX_ELEMENTS,
                    seed: int = 0) -> pd.DataFrame:
    """Pairwise Spearman correlation and pruned-set overlap between methods.

    Args:
        max_elements: rank at most this many weights (one seeded random subset shared by all
            methods) to bound the cost of sorting huge layers; None = all. Overlap is exact.
    Returns:
        DataFrame: method_a, method_b, spearman, jaccard, share_of_a.
    """
    numel = next(iter(scores.values())).numel() if scores else 0
    subset = None
    if max_elements is not None and numel > max_elements:
        generator = torch.Generator().manual_seed(seed)
        subset = torch.randperm(numel, generator=generator)[:max_elements]
    pick = (lambda t: t.flatten()[subset] if subset is not None else t)
    rows = []
    for a, b in itertools.combinations(scores, 2):
        rows.append({"method_a": a, "method_b": b,
                     "spearman": spearman_correlation(pick(scores[a]), pick(scores[b])),
                     **pruned_overlap(keep_masks[a], keep_masks[b])})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "spearman", "jaccard",
                                       "share_of_a"])


@torch.no_grad()
def check_prunable_layer(model: nn.Module, layer_name: str) -> None:
    """A ValueError naming the layers that can be chosen when ``layer_name`` is not one of them."""
    prefix, blocks = find_decoder_layers(model)
    names = list(find_prunable_layers(blocks, prefix))
    if layer_name in names:
        return
    suffixes = list(dict.fromkeys(name[len(prefix) + 1:].split(".", 1)[1] for name in names))
    raise ValueError(f"{layer_name!r} is not a prunable linear layer: choose "
                     f"{prefix}.<block 0-{len(blocks) - 1}>.<{' | '.join(suffixes)}>, "
                     f"e.g. {names[0]!r}")


def analyze_layer_scores(model: nn.Module, calib_ids: torch.Tensor, layer_name: str,
                         sparsity: float = 0.5, *, methods: tuple[str, ...] = SCORE_METHODS,
                         groups: dict[str, str] | None = None, batch_size: int = 8,
                         settings: dict | None = None,
                         calibration: dict | None = None) -> ScoreReport:
    """Everything the score-distribution view shows for one layer of the dense model.

    Args:
        layer_name: qualified prunable layer name.
        sparsity: share pruned for the thresholds and the overlap, in [0, 1).
        groups: method -> comparison group; default each method's reference group (magnitude:
            layer, Wanda: row, SparseGPT: its column block).
        settings: method -> its settings (registry dataclass); default the registry's.
    Returns:
        ScoreReport (scores, keep-masks, thresholds, agreement table).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    check_prunable_layer(model, layer_name)
    needed = tuple(dict.fromkeys(s for m in methods for s in get_method(m).stats))
    stats = (collect_layer_stats(model, calib_ids, layer_name, statistics=needed,
                                 batch_size=batch_size) if needed else None)
    weight = weight_matrix(dict(model.named_modules())[layer_name])
    own = method_settings(methods, settings)
    scores = compute_layer_scores(weight, stats, methods, own)
    chosen = {m: (groups or {}).get(m, get_method(m).default_group) for m in methods}
    widths = {m: getattr(own[m], "block_size", None) for m in methods}
    keep_masks = {m: group_keep_mask(scores[m], sparsity, chosen[m], widths[m]) for m in methods}
    thresholds = {m: score_thresholds(scores[m], keep_masks[m], chosen[m], widths[m])
                  for m in methods}
    return ScoreReport(layer=layer_name, shape=tuple(weight.shape), sparsity=sparsity,
                       scores=scores, keep_masks=keep_masks, groups=chosen,
                       thresholds=thresholds, agreement=score_agreement(scores, keep_masks),
                       calibration=calibration)
