"""Takeaway sentences of the dense model's analyses: outliers, input norms, scores, why it works.

Pure functions of the analysis results (``ActivationReport``, ``ScoreReport``, ``WhyResult``
parts), each returning one or two Markdown sentences with the numbers that matter: which channel,
how large, how many times the median, on which token, from which block (Sun et al., arXiv
2402.17762); how much two methods agree, in words; what a cut costs against its control.
"""
from __future__ import annotations

import pandas as pd

from .highlights import input_norm_peak, massive_channel_summary
from .outliers import ActivationReport, find_outlier_features, layer_magnitude_table
from .scores import ScoreReport
from .takeaways import readable_number
from .why_activations import ActivationIntervention
from .why_interventions import ChannelIntervention

__all__ = ["outlier_takeaway", "input_norm_takeaway", "agreement_takeaway",
           "channel_cut_takeaway", "activation_takeaway", "spearman_words"]


def _token(token) -> str:
    return repr(token) if isinstance(token, str) else "?"


def _massive_sentence(report: ActivationReport, summary: pd.DataFrame) -> str:
    top = summary.iloc[0]
    names = report.block_names
    span = (f"block {top['first_block']}" if top["first_block"] == top["last_block"] else
            f"blocks {top['first_block']}-{top['last_block']}")
    text = (f"Channel **{top['channel']}** of the residual stream reaches "
            f"|h| = **{readable_number(top['max_abs'])}** at the output of {top['block']}, "
            f"**{readable_number(top['ratio_to_median'])}x** that block's median, on token "
            f"{_token(top['token'])} (position {top['position']}); it is massive in {span} "
            f"({top['n_blocks']} of {len(names)} blocks).")
    if len(summary) > 1:
        others = ", ".join(f"channel {r.channel} (up to {readable_number(r.max_abs)})"
                           for r in summary.iloc[1:3].itertuples())
        text += f" Also massive: {others}."
    return text


def outlier_takeaway(report: ActivationReport) -> str:
    """Which channel is largest, how large, how many times the median, which token and block."""
    summary = massive_channel_summary(report)
    if len(summary):
        text = _massive_sentence(report, summary)
    else:
        table = layer_magnitude_table(report)
        row = table.loc[table["top1_over_median"].idxmax()]
        top = report.top[report.top["layer"] == row["layer"]].sort_values("rank").iloc[0]
        text = (f"No massive activation (|h| > 100 and > 1000x the median). The largest relative "
                f"one: channel {int(top['channel'])} at the output of {row['layer']}, "
                f"|h| = {readable_number(row['top1'])}, "
                f"{readable_number(row['top1_over_median'])}x the median, on token "
                f"{_token(top['token'])}.")
    features = find_outlier_features(report)
    if len(features):
        first = features.iloc[0]
        text += (f" LLM.int8 outlier features on the linear layers' inputs: {len(features)} "
                 f"(channel {int(first['channel'])} in {int(first['n_layers'])} of "
                 f"{report.n_layers} blocks).")
    return text


def input_norm_takeaway(report: ActivationReport, layer: str) -> str:
    """The layer's largest input channel and what it does to Wanda's score."""
    peak = input_norm_peak(report, layer)
    return (f"In {layer}, input channel **{peak['channel']}** has ||X_j|| = "
            f"**{readable_number(peak['norm'])}**, **{readable_number(peak['ratio'])}x** the "
            "median channel: under Wanda a weight reading it scores that many times higher than "
            "an equally large weight on a median channel.")


def spearman_words(rho: float) -> str:
    """Spearman's rank correlation in words."""
    if rho != rho:
        return "cannot be compared"
    if rho >= 0.95:
        return "rank the weights almost identically"
    if rho >= 0.8:
        return "rank the weights similarly"
    if rho >= 0.5:
        return "rank the weights only loosely alike"
    return "rank the weights differently"


def _pair_row(agreement: pd.DataFrame, a: str, b: str):
    rows = agreement[(agreement["method_a"] == a) & (agreement["method_b"] == b)]
    return rows.iloc[0] if len(rows) else None


def agreement_takeaway(report: ScoreReport) -> str:
    """Magnitude against Wanda in words: how alike they rank, and the share they decide apart."""
    agreement = report.agreement
    row = _pair_row(agreement, "magnitude", "wanda")
    if row is None:
        return ""
    text = (f"In {report.layer} at {report.sparsity:.0%}, magnitude and Wanda "
            f"{spearman_words(row['spearman'])} (Spearman {row['spearman']:.2f}), yet "
            f"**{1 - row['share_of_a']:.1%}** of the weights magnitude prunes are kept by Wanda: "
            "there the input-channel norm outweighs the weight's size (tab 4 maps them).")
    sparsegpt = _pair_row(agreement, "wanda", "sparsegpt")
    if sparsegpt is not None:
        text += (f" SparseGPT and Wanda {spearman_words(sparsegpt['spearman'])} (Spearman "
                 f"{sparsegpt['spearman']:.2f}).")
    return text


def channel_cut_takeaway(result: ChannelIntervention) -> str:
    """Perplexity after cutting the k largest-norm channels against k random ones."""
    table = result.table
    dense = table.loc[table["kind"] == "dense", "perplexity"]
    outlier = table[table["kind"] == "outlier"].sort_values("k")
    random = table[table["kind"] == "random"]
    if outlier.empty or dense.empty:
        return ""
    dense_value, first = float(dense.iloc[0]), outlier.iloc[0]
    k = int(first["k"])
    control = random.loc[random["k"] == k, "perplexity"]
    text = (f"Zeroing the weights that read the **{k}** largest-norm input channel"
            f"{'s' if k > 1 else ''} of every layer ({first['zeroed_share']:.2%} of the weights) "
            f"takes perplexity from {readable_number(dense_value)} to "
            f"**{readable_number(first['perplexity'])}** "
            f"({first['perplexity'] / dense_value:,.0f}x)")
    if len(control):
        text += (f"; the same cut on {k} random channel{'s' if k > 1 else ''}: "
                 f"**{readable_number(control.mean())}** (mean of {len(control)} seeds)")
    return text + ". The few large channels carry what the model needs; random ones do not."


def activation_takeaway(result: ActivationIntervention | None, note: str = "") -> str:
    """Massive activations set to zero against set to their mean."""
    if result is None:
        return note
    table = result.table.set_index("intervention")
    if not {"dense", "zero", "mean"} <= set(table.index):
        return ""
    dense, zero, mean = (float(table.loc[k, "perplexity"]) for k in ("dense", "zero", "mean"))
    replaced, first = int(table.loc["zero", "replaced"]), int(table.loc["zero", "first_token"])
    return (f"Setting the {replaced} massive activations at the output of {result.sites.block} "
            f"({first} on the first token) to zero takes perplexity from "
            f"{readable_number(dense)} to **{readable_number(zero)}**; setting them to their "
            f"mean gives **{readable_number(mean)}**: they act as fixed biases the model "
            "relies on, so the weights that read them must survive pruning.")
