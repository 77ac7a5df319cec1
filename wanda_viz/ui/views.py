"""Text and table views of a session's results (pure: Session -> Markdown / DataFrame / lists).

Every number leaves here with its protocol next to it (docs/PROTOCOLS.md): the calibration windows,
the perplexity protocol, and the pruning time measured as the Wanda paper does (scores, masks and
weight updates only, calibration forward passes reported apart).
"""
from __future__ import annotations

import pandas as pd

from ..analysis import (GenerationComparison, GroupComparison, RunPerplexity, ScoreReport,
                        comparison_takeaway, find_massive_activations, find_outlier_features,
                        layer_magnitude_table, strongest_layer)
from ..captions import calibration_caption
from ..service import Session, describe_source
from . import tables

__all__ = ["SPEED_NOTE", "summary_markdown", "runs_table", "comparison_markdown",
           "comparison_frame", "run_choices", "layer_choices", "default_layer",
           "highlighted_tokens", "generation_table", "outlier_tables", "token_view",
           "thresholds_table", "agreement_table", "mask_markdown", "ablation_protocol",
           "sweep_table",
           "empty_message", "generation_summary"]

SPEED_NOTE = (
    "**Speed, honestly:** unstructured zeros are stored in dense tensors, so they make the model "
    "neither faster nor smaller. 2:4 sparsity can use semi-structured kernels "
    "(`torch.sparse.to_sparse_semi_structured`, compute capability >= 8.0) but often gives little "
    "or negative speedup on small or decode shapes. Tokens/s (tab 6) compare dense and pruned "
    "models with the same dense kernels.")


def empty_message(what: str) -> str:
    return f"*No {what} yet: run a prune (tab 1) or the button above.*"


def summary_markdown(session: Session) -> str:
    """The protocol of tab 1's numbers: model, calibration, perplexity, timing, speed note."""
    if session.model is None:
        return empty_message("results")
    origin = describe_source(session.model.source)
    lines = [f"**Model:** {session.model.label} ({session.model_info}"
             f"{f'; {origin}' if origin else ''})",
             f"**Calibration:** {calibration_caption(session.calibration)} (reference sampler)"]
    if session.eval_protocol:
        lines.append(f"**Perplexity protocol:** {session.eval_protocol}")
        lines.append(f"**Dense perplexity:** {session.dense_perplexity:.3f}")
    else:
        lines.append("**Perplexity:** not evaluated (evaluation set to none)")
    lines.append("**Pruning time:** scores + masks + weight updates only (as in the Wanda paper); "
                 "calibration forward passes are listed apart.")
    return "\n\n".join(lines + [SPEED_NOTE])


def _setting(labels: list[str], session: Session) -> str:
    configs = [session.runs[label].result.config for label in labels]
    structures = {c.structure for c in configs}
    sparsities = {c.sparsity for c in configs}
    if structures == {"unstructured"} and len(sparsities) == 1:
        return f"{sparsities.pop():.0%}"
    return ", ".join(sorted(structures)) if len(structures) == 1 else ""


def comparison_markdown(session: Session, labels: list[str]) -> str:
    """The takeaway of one action (its runs ``labels``), numbers computed from the session."""
    if session.model is None or not labels:
        return empty_message("results")
    runs = [RunPerplexity(label, session.runs[label].result.config.method,
                          session.runs[label].perplexity) for label in labels]
    return comparison_takeaway(runs, session.dense_perplexity, _setting(labels, session))


def comparison_frame(session: Session, labels: list[str]) -> pd.DataFrame:
    """run, method, perplexity of the action's evaluated runs (the bar chart's input)."""
    rows = [{"run": label, "method": session.runs[label].result.config.method,
             "perplexity": session.runs[label].perplexity} for label in labels
            if session.runs[label].perplexity is not None]
    return pd.DataFrame(rows, columns=["run", "method", "perplexity"])


def runs_table(session: Session) -> pd.DataFrame:
    """One row per pruned run of the session, with its perplexity as a multiple of dense."""
    rows = []
    dense = session.dense_perplexity
    for label, run in session.runs.items():
        timings = run.result.timings
        rows.append({
            "run": label, "perplexity": run.perplexity,
            "x_dense": round(run.perplexity / dense, 1) if run.perplexity and dense else None,
            "achieved": run.result.overall_sparsity,
            "comparison group": run.result.config.comparison_group,
            "prune_s": timings.get("prune_s", 0.0),
            "forward_s": timings.get("forward_s", 0.0) + timings.get("capture_s", 0.0)})
    table = pd.DataFrame(rows, columns=list(tables.RUNS))
    return tables.readable_table(table, tables.RUNS)


def run_choices(session: Session) -> list[str]:
    return list(session.runs)


def default_layer(session: Session) -> str | None:
    """The layer the pickers open on: the largest max / median input-channel norm (where Wanda
    and magnitude part most), else the first prunable layer."""
    if session.report is not None and session.report.input_norms:
        return strongest_layer(session.report)
    layers = layer_choices(session)
    return layers[0] if layers else None


def layer_choices(session: Session) -> list[str]:
    """Prunable layer names (qualified), from the runs or the activation report."""
    for run in session.runs.values():
        return run.result.layer_names
    if session.report is not None:
        return list(session.report.input_norms)
    return []


def outlier_tables(session: Session) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-layer top-1/2/3 vs median, LLM.int8 outlier features, massive activations)."""
    report = session.report
    features = find_outlier_features(report)
    features["layers"] = features["layers"].map(_block_ranges)  # "12-23": fits a table cell
    features["sites"] = features["sites"].map(", ".join)
    massive = find_massive_activations(report).sort_values("abs", ascending=False)
    return (tables.readable_table(layer_magnitude_table(report), tables.LAYER_MAGNITUDES),
            tables.readable_table(features, tables.FEATURES),
            tables.readable_table(massive, tables.MASSIVE))


def _block_ranges(names: list[str]) -> str:
    """["model.layers.12", ..., "model.layers.23", "model.layers.25"] -> "12-23, 25"."""
    indices = sorted(int(n.rsplit(".", 1)[-1]) for n in names if n.rsplit(".", 1)[-1].isdigit())
    ranges, start = [], None
    for i, index in enumerate(indices):
        start = index if start is None else start
        if i + 1 == len(indices) or indices[i + 1] != index + 1:
            ranges.append(f"{start}" if start == index else f"{start}-{index}")
            start = None
    return ", ".join(ranges) if ranges else ", ".join(names)


def token_view(session: Session) -> list[tuple[str, str | None]]:
    """Tokens of the calibration window holding the largest |h|, its top activations marked."""
    report, tokens = session.report, session.report_tokens
    if report is None or not tokens or report.top.empty:
        return []
    top = report.top
    sample = int(top.sort_values("abs", ascending=False)["sample"].iloc[0])
    massive = set(find_massive_activations(report).query("sample == @sample")["position"])
    marked = set(top[top["sample"] == sample]["position"])
    return [(token, "massive activation" if pos in massive else
             "top-k activation" if pos in marked else None) for pos, token in enumerate(tokens)]


def highlighted_tokens(comparison: GenerationComparison | None,
                       variant: str) -> list[tuple[str, str | None]]:
    """(token, category) pairs for gr.HighlightedText: tokens that differ from dense are marked."""
    if comparison is None or variant not in comparison.results:
        return []
    table = comparison.token_table()
    rows = table[table["variant"] == variant]
    chat = comparison.settings.get("chat")  # the answer starts a new turn: a line break
    pairs = [(comparison.prompt + ("\n" if chat else ""), None)]
    for token, same, after in zip(rows["token"], rows["same_as_dense"], rows["after_divergence"]):
        category = None if same and not after else ("differs" if not same else "after divergence")
        pairs.append((token, category))
    return pairs


def generation_summary(comparison: GenerationComparison) -> pd.DataFrame:
    """``comparison.summary()`` plus ``differing``: tokens of each variant unlike dense."""
    table = comparison.summary()
    tokens = comparison.token_table()
    differing = (~tokens["same_as_dense"]).groupby(tokens["variant"]).sum()
    table["differing"] = table["variant"].map(differing).fillna(0).astype(int)
    return table


def generation_table(comparison: GenerationComparison | None) -> pd.DataFrame:
    """Per variant: tokens, tokens/s, first divergence, differing tokens, mean probability."""
    if comparison is None:
        return pd.DataFrame()
    table = generation_summary(comparison)
    table["first_divergence"] = table["first_divergence"].map(
        lambda i: "-" if i is None or i != i else int(i) + 1)
    return tables.readable_table(table, tables.GENERATION)


def thresholds_table(report: ScoreReport) -> pd.DataFrame:
    """Per method: comparison group, number of thresholds and their median / min / max."""
    rows = [{"method": method, "comparison group": info["group"],
             "thresholds": len(info["values"]), "median": info["median"], "min": info["min"],
             "max": info["max"]} for method, info in report.thresholds.items()]
    return tables.readable_table(pd.DataFrame(rows), tables.THRESHOLDS)


def agreement_table(report: ScoreReport) -> pd.DataFrame:
    return tables.readable_table(report.agreement, tables.AGREEMENT)


def mask_markdown(report: ScoreReport, comparison: GroupComparison) -> str:
    """Headline numbers of the per-row vs per-layer comparison, with their protocol."""
    rows = comparison.row_sparsity_layer_mask
    return (f"**{report.layer}** ({report.shape[0]} x {report.shape[1]}), Wanda scores at "
            f"{report.sparsity:.0%} sparsity, calibration: "
            f"{calibration_caption(report.calibration)}.\n\n"
            f"The two masks disagree on **{comparison.disagreement:.2%}** of the weights. Under "
            f"one threshold per layer, row sparsity ranges from **{float(rows.min()):.1%}** to "
            f"**{float(rows.max()):.1%}**; per row, every row loses exactly "
            f"{int(report.shape[1] * report.sparsity)} of {report.shape[1]} weights.")


def ablation_protocol(session: Session) -> str:
    return (f"calibration: {calibration_caption(session.calibration)}; perplexity: "
            f"{session.eval_protocol or 'evaluation text'}")


def sweep_table(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs (the full table is in the downloads)."""
    return tables.readable_table(table, tables.SWEEP)
