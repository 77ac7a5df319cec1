"""Where the huge activations go: every sinks analysis in one run, and its JSON export.

``run_sinks`` reuses the activation report (one dense pass: where the massive activations are),
then measures the attention on the sink tokens and the implicit bias (one eager pass), the token x
channel view of one block, the all-block interventions, the sliding-window curve and how much of
the weights reading the massive channels magnitude and Wanda keep. The model is dense, hook-free
and on its own attention implementation on return, also on error or cancellation.
"""
from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..cancel import check_cancelled
from ..points import PointRunner
from .export import table_to_records
from .outliers import ActivationReport, collect_activation_report, find_massive_activations
from .sinks import MassiveRule, SinkReport, collect_sink_report
from .sinks_interventions import all_block_sites, measure_block_means
from .sinks_points import intervention_table, window_table
from .sinks_pruning import (collect_input_peaks, kept_on_massive, massive_columns,
                            summarize_by_kind)
from .sinks_view import PAPER_TEXT, TokenChannelView, token_channel_view
from .sliding_window import SlidingWindowConfig, count_chunks

__all__ = ["SinksSpec", "SinksResult", "run_sinks", "sinks_payload", "export_sinks", "git_commit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinksSpec:
    """What to measure; None for ``window`` or ``seeds=()`` skips that analysis.

    The evaluation text, its windows and the calibration windows (and their batch size) come
    from the point runner's ``EvalSetup``.
    """

    min_abs: float = 100.0
    min_ratio: float = 1000.0
    view_block: int | None = None          # None = the first block with massive activations
    view_text: str = PAPER_TEXT
    interventions: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)     # random-entry controls
    window: SlidingWindowConfig | None = field(default_factory=SlidingWindowConfig)
    sparsity: float = 0.5

    def __post_init__(self):
        if not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.min_abs <= 0 or self.min_ratio <= 0:
            raise ValueError("min_abs and min_ratio must be positive")


@dataclass
class SinksResult:
    """Every sinks measure with its protocol (CPU, picklable)."""

    rule: MassiveRule
    sinks: SinkReport
    view: TokenChannelView
    interventions: pd.DataFrame | None
    intervention_protocol: str
    window: pd.DataFrame | None
    window_protocol: str
    pruning: pd.DataFrame
    pruning_kinds: pd.DataFrame
    pruning_protocol: str
    massive: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    sparsity: float = 0.5                  # of the pruning comparison


def _view_ids(tokenizer, text: str, calib_ids: torch.Tensor) -> torch.Tensor:
    if tokenizer is None:
        return calib_ids[0, :16]
    return torch.tensor(tokenizer(text, return_tensors=None)["input_ids"])


def _interventions(runner: PointRunner, report: ActivationReport, spec: SinksSpec):
    setup = runner.setup
    sites = all_block_sites(report, min_abs=spec.min_abs, min_ratio=spec.min_ratio)
    with runner.hold() as model:
        means = measure_block_means(model, setup.calib_ids, sites, batch_size=setup.batch_size,
                                    cancel=runner.cancel)
    table = intervention_table(runner, means, spec.seeds)
    shared = setup.protocol_columns()
    blocks = ", ".join(str(s.block_index) for s in means.sites)
    protocol = (f"massive entries (|h| > {spec.min_abs:g} and > {spec.min_ratio:g} x the "
                f"window's median) of the output of blocks {blocks} set to zero or to their mean "
                f"over the calibration windows ({shared['calibration']}); random: as many random "
                f"non-massive entries per window and block, set to zero or to their channel's "
                f"mean, seeds {list(spec.seeds)}; perplexity: {shared['eval_protocol']}")
    return table, protocol


def _window(runner: PointRunner, spec: SinksSpec):
    window, setup = spec.window, runner.setup
    table = window_table(runner, window)
    protocol = (f"each token sees the last W tokens (itself included), with or without the "
                f"first {window.sink_tokens}; attention mask with original positions (no "
                f"pos_shift); {setup.eval_label}, {int(table['tokens'].iloc[0])} predictions at "
                f"query positions {window.start}..{window.chunk_len - 2} of "
                f"{count_chunks(setup.eval_ids, window)} chunk(s) of {window.chunk_len} tokens; "
                "exp(mean NLL)")
    return table, protocol


def _pruning(model, setup, report, spec, cancel):
    peaks = collect_input_peaks(model, setup.calib_ids, batch_size=setup.batch_size,
                                cancel=cancel)
    columns = massive_columns(report, peaks, min_abs=spec.min_abs, min_ratio=spec.min_ratio)
    table = kept_on_massive(model, report, columns, spec.sparsity)
    protocol = (f"magnitude (per layer) and Wanda (per output row) at {spec.sparsity:.0%} on "
                f"the dense weights, Wanda's ||X_j|| from one dense pass; massive columns: the "
                f"massive residual channels of earlier blocks for layers reading a normalised "
                f"residual stream, else the input channels with |x| > {spec.min_abs:g} and > "
                f"{spec.min_ratio:g} x the layer input's median")
    return table, summarize_by_kind(table), protocol


def _dense_passes(model, setup, spec, *, tokenizer, cancel, model_name, report):
    """(activation report, rule, sink report, view, pruning tables) of the dense model."""
    calib_ids, calibration = setup.calib_ids, setup.calibration
    report = report or collect_activation_report(
        model, calib_ids, tokenizer=tokenizer, batch_size=setup.batch_size,
        calibration=calibration, model_name=model_name)
    rule = MassiveRule.from_report(report, min_abs=spec.min_abs, min_ratio=spec.min_ratio)
    check_cancelled(cancel)
    sinks = collect_sink_report(model, calib_ids, rule, tokenizer=tokenizer,
                                batch_size=setup.batch_size, cancel=cancel,
                                calibration=calibration, model_name=model_name)
    view_block = spec.view_block if spec.view_block is not None else \
        (rule.blocks[0] if rule.blocks else len(report.block_names) // 2)
    view = token_channel_view(model, _view_ids(tokenizer, spec.view_text, calib_ids),
                              view_block, rule, tokenizer=tokenizer)
    return report, rule, sinks, view, _pruning(model, setup, report, spec, cancel)


@torch.no_grad()
def run_sinks(runner: PointRunner, spec: SinksSpec = SinksSpec(), *, tokenizer=None,
              model_name: str | None = None,
              report: ActivationReport | None = None) -> SinksResult:
    """Every sinks analysis on the runner's dense model and setup.

    The calibration windows are ``runner.setup.calib_ids``; without an evaluation text
    (``setup.eval_ids`` None) the perplexity analyses are skipped. Cancellation: the runner's
    ``CancelToken`` (between points, at every decoder block of the dense passes).

    Args:
        report: the activation report of this model on the calibration windows if computed.
    """
    setup, notes = runner.setup, []
    if setup.calib_ids is None:
        raise ValueError("the sinks analyses need calibration windows (EvalSetup.calib_ids)")
    with runner.hold() as held:
        report, rule, sinks, view, (pruning, kinds, pruning_protocol) = _dense_passes(
            held, setup, spec, tokenizer=tokenizer, cancel=runner.cancel,
            model_name=model_name, report=report)
    interventions, intervention_protocol = None, ""
    if setup.eval_ids is not None and spec.interventions and rule.channels:
        interventions, intervention_protocol = _interventions(runner, report, spec)
    elif not rule.channels:
        notes.append(f"no interventions: {rule.describe()}")
    window, window_protocol = None, ""
    if setup.eval_ids is not None and spec.window is not None:
        window, window_protocol = _window(runner, spec)
    return SinksResult(rule, sinks, view, interventions, intervention_protocol, window,
                       window_protocol, pruning, kinds, pruning_protocol,
                       find_massive_activations(report, min_abs=spec.min_abs,
                                                min_ratio=spec.min_ratio), notes,
                       spec.sparsity)


def _matrix(tensor: torch.Tensor) -> list[list[float | None]]:
    return [[None if v != v else float(v) for v in row] for row in tensor.tolist()]


def sinks_payload(result: SinksResult, spec: SinksSpec) -> dict:
    """JSON-ready: ``first_token_attention`` (blocks x heads) and every other measure."""
    sinks, view = result.sinks, result.view
    tables = {"bias": sinks.bias, "massive_tokens": sinks.massive_tokens,
              "interventions": result.interventions, "sliding_window": result.window,
              "pruning": result.pruning, "pruning_kinds": result.pruning_kinds,
              "massive": result.massive}
    payload = {
        "first_token_attention": _matrix(sinks.first_token),
        "other_massive_attention": _matrix(sinks.other_massive),
        "blocks": sinks.block_names, "attention_modules": sinks.attention_names,
        "massive_rule": asdict(result.rule), "carrying_blocks": sinks.carrying_blocks,
        "other_massive_queries": sinks.other_queries,
        "other_massive_tokens": sinks.n_other_tokens,
        "first_token_massive_windows": sinks.first_token_massive, "windows": sinks.n_windows,
        "seq_len": sinks.seq_len, "attention_protocol": sinks.protocol(),
        "view": {"block": view.block, "tokens": view.tokens,
                 "massive_channels": view.massive_channels,
                 "carrying_positions": view.carrying_positions, "median": view.median,
                 "magnitude": [[round(float(v), 4) for v in row]
                               for row in view.magnitude.tolist()],
                 "protocol": view.protocol()},
        "protocols": {"interventions": result.intervention_protocol,
                      "sliding_window": result.window_protocol,
                      "pruning": result.pruning_protocol},
        "notes": result.notes, "settings": _settings(spec)}
    for name, table in tables.items():
        payload[name] = table_to_records(table) if table is not None else None
    return payload


def _settings(spec: SinksSpec) -> dict:
    settings = asdict(spec)
    settings["view_text"] = spec.view_text
    return settings


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of ``cwd`` (default: this package's folder), or None outside a repository."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def export_sinks(result: SinksResult, spec: SinksSpec, path: str | Path, *,
                 extra: dict | None = None) -> Path:
    """Write ``sinks_payload`` (plus ``extra``: model, commit ...) as JSON."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {**(extra or {}), **sinks_payload(result, spec)}
    out.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return out
