"""Why Wanda works: the three analyses in one run (one dense pass) and their exports.

``run_why`` collects one activation report (a single dense pass over all blocks: per-layer input
norms and the residual-stream top activations), then computes the per-channel disagreement of
Wanda and magnitude, the weight-space intervention (outlier vs random input channels) and the
activation-space intervention (massive activations set to zero / to their mean). The model is
dense and hook-free on return. Perplexity points go through the point runner (``points``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..points import PointRunner
from .export import export_table, table_to_records
from .outliers import collect_activation_report, find_massive_activations
from .why import TOP_SHARE, DisagreementReport, model_disagreement
from .why_activations import ActivationIntervention, ActivationSpec, activation_intervention
from .why_interventions import ChannelIntervention, ChannelSpec, channel_intervention

__all__ = ["WhyResult", "WhySpec", "run_why", "export_why"]

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


@dataclass(frozen=True)
class WhySpec:
    """Settings of the three analyses.

    Attributes:
        sparsity: sparsity of the Wanda and magnitude masks compared per channel.
        top_share: the share of channels (by input norm) that counts as "top".
        channels: the weight-space intervention (channel counts and random seeds).
        activations: the massive-activation thresholds.
    """

    sparsity: float = 0.5
    top_share: float = TOP_SHARE
    channels: ChannelSpec = ChannelSpec()
    activations: ActivationSpec = ActivationSpec()


@torch.no_grad()
def run_why(runner: PointRunner, spec: WhySpec = WhySpec(), *, tokenizer=None,
            model_name: str | None = None) -> WhyResult:
    """All three "why Wanda works" analyses on a dense model.

    Args:
        runner: the point runner of the dense model; its setup's calibration windows give the
            statistics and the massive-activation means, its evaluation text the perplexities.
        tokenizer / model_name: for the activation report's tokens and captions.
    Returns:
        WhyResult. ``activations`` is None (with ``activation_note``) when the model shows no
        massive activations on these windows.
    """
    setup = runner.setup
    with runner.hold() as held:  # the dense weights, not changed meanwhile
        report = collect_activation_report(held, setup.calib_ids, tokenizer=tokenizer,
                                           batch_size=setup.batch_size,
                                           calibration=setup.calibration, model_name=model_name)
        disagreement = model_disagreement(held, report, spec.sparsity, top_share=spec.top_share)
    weights = channel_intervention(runner, report.input_norms, spec.channels)
    thresholds = spec.activations
    massive = find_massive_activations(report, min_abs=thresholds.min_abs,
                                       min_ratio=thresholds.min_ratio)
    activations, note = None, ""
    try:
        dense_row = weights.table.iloc[0]  # the one dense point, shared
        activations = activation_intervention(
            runner, report, thresholds, dense={"perplexity": float(dense_row["perplexity"]),
                                               "cached": bool(dense_row["cached"])})
    except ValueError as err:  # no massive activations: nothing to intervene on
        note = str(err)
        logger.info("activation intervention skipped: %s", note)
    return WhyResult(disagreement, weights, activations, massive, note)


def export_why(result: WhyResult, *, out_json: str | Path | None = None,
               out_csv: str | Path | None = None) -> list[Path]:
    """Write the results; every table carries its protocol.

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
        if result.activation_note:
            payload["activations"] = {"note": result.activation_note, "rows": []}
        path = Path(out_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
        written.append(path)
    return written
