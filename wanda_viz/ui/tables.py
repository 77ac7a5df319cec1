"""Tables as a reader sees them: human headers, numbers rounded for reading, key columns first.

Pure (DataFrame in, DataFrame out). The full-precision tables stay in the downloads and the API's
library calls; these are what the dashboard shows: 26479.4512 becomes 26479, 0.012345 becomes
0.0123, ``ratio_to_median`` becomes "x median", and the token that carries an activation comes
before the columns nobody needs first.
"""
from __future__ import annotations

import math

import pandas as pd

__all__ = ["round_for_reading", "readable_table", "RUNS", "LAYER_MAGNITUDES", "FEATURES",
           "MASSIVE", "THRESHOLDS", "AGREEMENT", "SWEEP", "GENERATION", "ABLATION",
           "WHY_WEIGHTS", "WHY_ACTIVATIONS"]


def round_for_reading(value):
    """26479.45 -> 26479; 51.564 -> 51.6; 2.3456 -> 2.35; 0.012345 -> 0.0123 (others as given)."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    magnitude = abs(value)
    if magnitude >= 100:
        return float(round(value))
    if magnitude >= 10:
        return round(value, 1)
    if magnitude >= 1 or magnitude == 0:
        return round(value, 2)
    return round(value, 2 - math.floor(math.log10(magnitude)))


def readable_table(table: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The ``columns`` (source name -> header) present in ``table``, in that order, rounded."""
    present = [c for c in columns if c in table.columns]
    out = table[present].rename(columns=columns)
    return out.apply(lambda col: col.map(round_for_reading) if col.dtype.kind == "f" else col)


# source column -> header; the order is the order shown
RUNS = {"run": "run", "perplexity": "perplexity", "x_dense": "x dense",
        "achieved": "achieved sparsity", "comparison group": "compared per",
        "prune_s": "prune time (s)", "forward_s": "calibration forward (s)"}
LAYER_MAGNITUDES = {"layer": "block", "top1": "top-1 |h|", "top2": "top-2 |h|",
                    "top3": "top-3 |h|", "median": "median |h|",
                    "top1_over_median": "top-1 / median"}
FEATURES = {"channel": "channel", "n_layers": "blocks", "layer_share": "share of blocks",
            "max_abs": "max |x|", "mean_position_share": "share of positions >= 6",
            "layers": "in blocks"}
MASSIVE = {"layer": "block", "channel": "channel", "token": "token", "abs": "|h|",
           "ratio_to_median": "x median", "position": "position", "sample": "window"}
THRESHOLDS = {"method": "method", "comparison group": "comparison group",
              "thresholds": "thresholds", "median": "median", "min": "min", "max": "max"}
AGREEMENT = {"method_a": "method A", "method_b": "method B", "spearman": "Spearman rank corr.",
             "jaccard": "overlap of pruned sets (Jaccard)",
             "share_of_a": "share of A's pruned also pruned by B"}
SWEEP = {"label": "run", "perplexity": "perplexity", "achieved_sparsity": "achieved sparsity",
         "group": "comparison group", "prune_s": "prune time (s)",
         "forward_s": "calibration forward (s)", "eval_s": "evaluation (s)",
         "cached": "from cache"}
GENERATION = {"variant": "model", "n_tokens": "tokens", "tokens_per_s": "tokens/s",
              "first_divergence": "first differing token", "differing": "tokens differing",
              "mean_prob": "mean probability"}
ABLATION = {"method": "method", "group": "comparison group", "sparsity": "sparsity",
            "perplexity": "perplexity", "achieved_sparsity": "achieved sparsity"}
WHY_WEIGHTS = {"kind": "channels cut", "k": "k per layer", "seed": "seed",
               "perplexity": "perplexity", "zeroed_share": "share of weights zeroed",
               "zeroed_weights": "weights zeroed", "cached": "from cache"}
WHY_ACTIVATIONS = {"intervention": "massive activations", "perplexity": "perplexity",
                   "replaced": "entries replaced", "first_token": "of them on the first token",
                   "windows": "windows", "cached": "from cache"}
