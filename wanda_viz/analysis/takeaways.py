"""One sentence per result that says what it shows, with its numbers (pure, no model, no UI).

Every figure of the dashboard opens with such a sentence: this module writes those of the pruning
results (the one-click comparison, the comparison-group ablation, the sweep, the generation);
``takeaways_mechanism`` those of the dense model's analyses (outliers, scores, why it works).
Wording follows the numbers: "Wanda keeps what magnitude destroys" is only said when it does.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..pruning.registry import METHODS, REFINEMENTS

__all__ = ["readable_number", "times_text", "RunPerplexity", "comparison_takeaway",
           "ablation_takeaway", "sweep_takeaway", "generation_takeaway"]


def readable_number(value: float | None) -> str:
    """Rounded for reading: 26,479 / 644 / 51.6 / 2.35 / 0.0123; "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def times_text(ratio: float) -> str:
    """2.1x, 12.5x, 789x: one decimal below 100."""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def _times(value: float, dense: float | None) -> str:
    return f"{times_text(value / dense)} dense" if dense else "-"


@dataclass(frozen=True)
class RunPerplexity:
    """One pruned run: its label ("wanda 50%"), method and perplexity (None: not evaluated)."""

    label: str
    method: str
    perplexity: float | None


def _label(method: str, fallback: str | None = None) -> str:
    """The method's label from its registry entry ("Wanda"; "Wanda + DSnoT" for "wanda+dsnot")."""
    base, _, refine = method.partition("+")
    if base not in METHODS:
        return fallback if fallback is not None else method
    label = METHODS[base].label
    return f"{label} + {REFINEMENTS[refine].label}" if refine in REFINEMENTS else label


def _verdict(by_method: dict[str, float]) -> str:
    if "wanda" not in by_method or "magnitude" not in by_method:
        return ""
    ratio = by_method["magnitude"] / by_method["wanda"]
    if ratio >= 2:
        return (f" Removing the same share of every layer, magnitude pruning ends with a "
                f"{ratio:.1f}x higher perplexity than Wanda: it deletes small weights that read a "
                "few very large input channels, which Wanda keeps (tabs 2 and 7 show them).")
    if ratio >= 1.1:
        return f" Wanda ends {ratio - 1:.0%} better than magnitude."
    if ratio > 1 / 1.1:
        return (" Wanda and magnitude end within 10% of each other: this model has no input "
                "channels large enough to make them differ (a real LLM such as SmolLM2-135M has).")
    return f" Magnitude ends {1 / ratio - 1:.0%} better than Wanda on this model."


def _run_phrase(first: bool, name: str, setting: str, value: float,
                dense: float | None) -> str:
    shown = f"**{readable_number(value)}**"
    if first:
        times = f" ({times_text(value / dense)} dense {readable_number(dense)})" if dense else ""
        return f"{name}{f' at {setting}' if setting else ''}: perplexity {shown}{times}"
    return f"{name}: {shown}" + (f" ({times_text(value / dense)})" if dense else "")


def comparison_takeaway(runs: Sequence[RunPerplexity], dense: float | None,
                        setting: str) -> str:
    """"Wanda at 50%: perplexity 106 (2.1x dense 51.6); magnitude: 644 (12.5x). ..." (Markdown).

    Args:
        runs: the runs of one action, in the order they were run (Wanda is named first).
        dense: the dense perplexity on the same evaluation windows (None: not evaluated).
        setting: what the runs share, e.g. "50%" or "2:4".
    """
    scored = [r for r in runs if r.perplexity is not None]
    if not scored:
        return f"Pruned at {setting}; no perplexity (the evaluation text is set to none)."
    order = sorted(scored, key=lambda r: r.method != "wanda")  # stable: run order otherwise
    single = len(order) == 1
    phrases = [_run_phrase(i == 0, order[i].label if single else
                           _label(order[i].method, order[i].label), "" if single else setting,
                           order[i].perplexity, dense) for i in range(len(order))]
    by_method = {r.method: r.perplexity for r in scored}
    return "; ".join(phrases) + "." + _verdict(by_method)


def ablation_takeaway(table: pd.DataFrame) -> str:
    """Per method: perplexity per row against one threshold per layer (the paper's Table 8)."""
    pruned = table[table["method"] != "dense"]
    if pruned.empty:
        return ""
    sentences = []
    for method, part in pruned.groupby("method", sort=False):
        values = dict(zip(part["group"], part["perplexity"]))
        if "row" in values and "layer" in values:
            change = values["layer"] / values["row"] - 1
            delta = "the same" if abs(change) < 0.005 else f"{change:+.0%}"
            sentences.append(f"{_label(method)}: per row "
                             f"{readable_number(values['row'])}, one threshold per layer "
                             f"{readable_number(values['layer'])} ({delta})")
    sparsity = float(pruned["sparsity"].iloc[0])
    return f"At {sparsity:.0%}: " + "; ".join(sentences) + "." if sentences else ""


def _pair(lines: pd.DataFrame) -> tuple[str, str] | None:
    methods = list(dict.fromkeys(lines["method"]))
    if "wanda" in methods and "magnitude" in methods:
        return "wanda", "magnitude"
    return (methods[0], methods[1]) if len(methods) >= 2 else None


def sweep_takeaway(table: pd.DataFrame) -> str:
    """Where the methods part: their perplexity at the lowest and highest common sparsity."""
    dense = table.loc[table["method"] == "dense", "perplexity"]
    dense_value = float(dense.iloc[0]) if len(dense) else None
    lines = table[(table["method"] != "dense") & (table["structure"] == "unstructured")]
    pair = _pair(lines)
    if pair is None:
        return "Add a second method to compare: one line never tells which choice matters."
    wide = lines.pivot_table(index="sparsity", columns="method", values="perplexity")
    wide = wide[list(pair)].dropna()
    if wide.empty:
        return ""
    low, high = wide.index.min(), wide.index.max()
    good, bad = (_label(m) for m in pair)

    def at(sparsity: float) -> str:
        a, b = wide.loc[sparsity, pair[0]], wide.loc[sparsity, pair[1]]
        return (f"at {sparsity:.0%}, {good} {readable_number(a)} "
                f"({_times(a, dense_value)}) and {bad} {readable_number(b)} "
                f"({_times(b, dense_value)})")
    if low == high:
        return f"One sparsity only: {at(low)}. Add sparsities to see where the lines part."
    gap_low = wide.loc[low, pair[1]] / wide.loc[low, pair[0]]
    gap_high = wide.loc[high, pair[1]] / wide.loc[high, pair[0]]
    return (f"{at(low)[0].upper()}{at(low)[1:]}; {at(high)}. The ratio {bad} / {good} goes "
            f"from {times_text(gap_low)} to {times_text(gap_high)}: the gap opens at high "
            "sparsity.")


def generation_takeaway(summary: pd.DataFrame) -> str:
    """First divergence, tokens that differ and confidence of a pruned run against dense.

    Args:
        summary: ``GenerationComparison.summary()`` plus a ``differing`` column (tokens of the
            variant that differ from dense).
    """
    if len(summary) < 2:
        return ""
    dense, run = summary.iloc[0], summary.iloc[1]
    first = run["first_divergence"]
    where = ("follows the dense continuation to the end" if first is None or first != first
             else f"leaves the dense continuation at token {int(first) + 1} of "
                  f"{int(run['n_tokens'])}")
    speed = (f"Tokens/s ({dense['tokens_per_s']:.1f} dense, {run['tokens_per_s']:.1f} pruned) are "
             "not a speed comparison: both run the same dense kernels, zeros included, so they "
             "differ only by noise (other work on the machine).")
    return (f"{run['variant']} {where}; {int(run.get('differing', 0))} of "
            f"{int(run['n_tokens'])} tokens differ. Mean probability of the chosen tokens: "
            f"{run['mean_prob']:.2f} pruned, {dense['mean_prob']:.2f} dense. {speed}")
