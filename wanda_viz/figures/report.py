"""Self-contained HTML report of a sweep: the plotly figure (plotly.js embedded), table, protocol.

Opens offline in any browser: ``include_plotlyjs=True`` inlines plotly.js (about 4.5 MB).
"""
from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from .results import plot_sweep, sweep_caption

__all__ = ["write_sweep_report"]

_TABLE_COLUMNS = ["method", "structure", "sparsity", "group", "perplexity", "achieved_sparsity",
                  "prune_s", "forward_s", "eval_s", "cached"]
_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
          "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
          "padding:3px 8px;text-align:right}th{background:#f3f3f3}.protocol{color:#444}")


def write_sweep_report(table: pd.DataFrame, path: str | os.PathLike, *,
                       title: str = "wanda-viz sweep", protocol: str | None = None) -> Path:
    """Write one HTML file with the perplexity-vs-sparsity figure, the table and the protocol.

    Args:
        table: from ``run_sweep``.
        protocol: extra protocol text (default: the caption derived from the table).
    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = plot_sweep(table).to_html(full_html=False, include_plotlyjs=True)
    columns = [c for c in _TABLE_COLUMNS if c in table.columns]
    rows = table[columns].to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
    text = protocol or sweep_caption(table)
    out.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='protocol'><b>Protocol.</b> {html.escape(text)}</p>{figure}"
        f"<h2>Results</h2>{rows}<p class='protocol'>Pruning time counts score, mask and weight "
        "updates only (Wanda paper protocol); forward = calibration passes. Unstructured zeros "
        "stored in dense tensors give no speedup.</p></body></html>", encoding="utf-8")
    return out
