"""Why Wanda works: the three analyses in one run (one dense pass) and their exports.

``run_why`` collects one activation report (a single dense pass over all blocks: per-layer input
norms and the residual-stream top activations), then computes the per-channel disagreement of
Wanda and magnitude, the weight-space intervention (outlier vs random input channels) and the
activation-space intervention (massive activations set to zero / to their mean). The model is
dense and hook-free on return. Perplexity points are cached on disk (``analysis.why``).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..models import WeightBackup
from ..provenance import source_commit
from .export import export_table, table_to_records
from .outliers import collect_activation_report, find_massive_activations
from .why import TOP_SHARE, DisagreementReport, ModelHold, holder, model_disagreement
from .why_activations import ActivationIntervention, activation_intervention
from .why_interventions import ChannelIntervention, channel_intervention

__all__ = ["WhyResult", "run_why", "export_why"]

logger = logging.getLogger(__name__)


@dataclass
class WhyResult:
    """Disagreement, weight-space and activation-space results with their protocols (CPU)."""

    disagreement: DisagreementReport
    weights: ChannelIntervention
    activations: ActivationIntervention | None
    massive: pd.DataFrame          # the report's massive activations (all blocks)
    activation_note: str = ""      # why ``activations`` is None, if it is

    def tables(self) -> dict[str, tuple[pd.DataFrame, str]]:
        """name -> (table, protocol): layers, channels, weights, activations (when present)."""
        tables = {"layers": (self.disagreement.layers, self.disagreement.protocol()),
                  "channels": (self.disagreement.channels, self.disagreement.protocol()),
                  "weights": (self.weights.table, self.weights.protocol())}
        if self.activations is not None:
            tables["activations"] = (self.activations.table, self.activations.protocol())
        return tables


@torch.no_grad()
def run_why(model: nn.Module, calib_ids: torch.Tensor, eval_ids: torch.Tensor, *,
            tokenizer=None, sparsity: float = 0.5, ks: Sequence[int] = (1, 2, 4, 8),
            seeds: Sequence[int] = (0, 1, 2), top_share: float = TOP_SHARE,
            fingerprint: dict | None = None, calibration: dict | None = None,
            eval_label: str = "evaluation text", seq_len: int | None = None,
            max_windows: int | None = None, cache_dir=None, batch_size: int = 8,
            min_abs: float = 100.0, min_ratio: float = 1000.0,
            model_name: str | None = None, dense: WeightBackup | None = None,
            model_for_point: ModelHold | None = None) -> WhyResult:
    """All three "why Wanda works" analyses on a dense model.

    Args:
        calib_ids: (n_samples, seq_len) calibration windows (statistics, massive-activation means).
        eval_ids: (1, n_tokens) evaluation text for perplexity (non-overlapping seq_len windows).
        sparsity: sparsity of the two masks compared per channel.
        ks / seeds: channel counts of the weight-space intervention and random seeds.
        fingerprint: ``model_fingerprint(...)`` for the on-disk cache (None = no cache).
        dense: the dense weights' ``WeightBackup`` if one exists (None = taken when needed).
        model_for_point: entered around the dense pass and around each perplexity point,
            yields the dense model (a service's shared model, taken per step); None = ``model``.
    Returns:
        WhyResult. ``activations`` is None (with ``activation_note``) when the model shows no
        massive activations on these windows.
    """
    with holder(model, model_for_point)() as held:  # the dense weights, not changed meanwhile
        report = collect_activation_report(held, calib_ids, tokenizer=tokenizer,
                                           batch_size=batch_size, calibration=calibration,
                                           model_name=model_name)
        disagreement = model_disagreement(held, report, sparsity, top_share=top_share)
    shared = {"fingerprint": fingerprint, "calibration": calibration, "eval_label": eval_label,
              "seq_len": seq_len, "max_windows": max_windows, "cache_dir": cache_dir,
              "model_for_point": model_for_point}
    weights = channel_intervention(model, calib_ids, eval_ids, report.input_norms, ks=ks,
                                   seeds=seeds, dense=dense, **shared)
    massive = find_massive_activations(report, min_abs=min_abs, min_ratio=min_ratio)
    activations, note = None, ""
    try:
        dense_row = weights.table.iloc[0]  # the one dense point, shared
        activations = activation_intervention(
            model, calib_ids, eval_ids, report, min_abs=min_abs, min_ratio=min_ratio,
            batch_size=batch_size, dense={"perplexity": float(dense_row["perplexity"]),
                                          "cached": bool(dense_row["cached"])}, **shared)
    except ValueError as err:  # no massive activations: nothing to intervene on
        note = str(err)
        logger.info("activation intervention skipped: %s", note)
    return WhyResult(disagreement, weights, activations, massive, note)


def export_why(result: WhyResult, *, out_json: str | Path | None = None,
               out_csv: str | Path | None = None, provenance: dict | None = None) -> list[Path]:
    """Write the results; every table carries its protocol.

    ``provenance`` (the model, the settings) goes to the JSON's "provenance" record together with
    the code's git commit and version, so that the file says what produced it.

    CSV: ``out_csv`` holds the per-layer disagreement; ``<stem>_channels.csv`` (every channel),
    ``<stem>_weights.csv`` and ``<stem>_activations.csv`` go next to it (``export_table``).
    JSON: one file with every table except the full channel table, of which only each layer's
    top channels are kept (``top_channels``), so that the file stays small.
    """
    written = []
    tables = result.tables()
    if out_csv:
        base = Path(out_csv)
        for name, (table, protocol) in tables.items():
            path = base if name == "layers" else base.with_name(f"{base.stem}_{name}.csv")
            written.append(export_table(table, path, protocol=protocol))
    if out_json:
        channels = result.disagreement.channels
        payload = {name: {"protocol": protocol, "rows": table_to_records(table)}
                   for name, (table, protocol) in tables.items() if name != "channels"}
        payload["top_channels"] = {"protocol": result.disagreement.protocol(),
                                   "rows": table_to_records(channels[channels["top_channel"]])}
        payload["massive"] = {"rows": table_to_records(result.massive)}
        from .. import __version__  # at call time: the package __init__ has finished by then
        payload["provenance"] = {**(provenance or {}), "source": source_commit(),
                                 "wanda_viz": __version__}
        if result.activation_note:
            payload["activations"] = {"note": result.activation_note, "rows": []}
        path = Path(out_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
        written.append(path)
    return written
