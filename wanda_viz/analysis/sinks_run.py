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
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..models import resolve_seq_len
from .export import table_to_records
from .outliers import ActivationReport, collect_activation_report, find_massive_activations
from .sinks import MassiveRule, SinkReport, collect_sink_report
from .sinks_interventions import all_block_sites, measure_block_means
from .sinks_points import PointCache, intervention_table, window_table
from .sinks_pruning import (collect_input_peaks, kept_on_massive, massive_columns,
                            summarize_by_kind)
from .sinks_view import PAPER_TEXT, TokenChannelView, token_channel_view
from .sliding_window import SlidingWindowConfig, count_chunks
from .why import ModelHold, holder

__all__ = ["SinksConfig", "SinksResult", "run_sinks", "sinks_payload", "export_sinks", "git_commit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinksConfig:
    """What to measure; None for ``window`` or ``seeds=()`` skips that analysis."""

    min_abs: float = 100.0
    min_ratio: float = 1000.0
    view_block: int | None = None          # None = the first block with massive activations
    view_text: str = PAPER_TEXT
    interventions: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)     # random-entry controls
    eval_seq_len: int | None = None        # perplexity windows of the interventions
    max_eval_windows: int | None = None
    window: SlidingWindowConfig | None = field(default_factory=SlidingWindowConfig)
    sparsity: float = 0.5
    batch_size: int = 4

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


def _interventions(hold, calib_ids, eval_ids, report, config, cache, cancel):
    sites = all_block_sites(report, min_abs=config.min_abs, min_ratio=config.min_ratio)
    with hold() as model:
        seq_len = resolve_seq_len(model, config.eval_seq_len)
        means = measure_block_means(model, calib_ids, sites, batch_size=config.batch_size,
                                    cancel=cancel)
    table, shared = intervention_table(hold, calib_ids, eval_ids, means, seq_len=seq_len,
                                       max_windows=config.max_eval_windows, seeds=config.seeds,
                                       cache=cache, cancel=cancel)
    blocks = ", ".join(str(s.block_index) for s in means.sites)
    protocol = (f"massive entries (|h| > {config.min_abs:g} and > {config.min_ratio:g} x the "
                f"window's median) of the output of blocks {blocks} set to zero or to their mean "
                f"over the calibration windows ({shared['calibration']}); random: as many random "
                f"non-massive entries per window and block, set to zero or to their channel's "
                f"mean, seeds {list(config.seeds)}; perplexity: {shared['eval_protocol']}")
    return table, protocol


def _window(hold, calib_ids, eval_ids, config, cache, cancel):
    window = config.window
    table = window_table(hold, calib_ids, eval_ids, window, cache=cache, cancel=cancel)
    protocol = (f"each token sees the last W tokens (itself included), with or without the "
                f"first {window.sink_tokens}; attention mask with original positions (no "
                f"pos_shift); {cache.eval_label}, {int(table['tokens'].iloc[0])} predictions at "
                f"query positions {window.start}..{window.chunk_len - 2} of "
                f"{count_chunks(eval_ids, window)} chunk(s) of {window.chunk_len} tokens; "
                "exp(mean NLL)")
    return table, protocol


def _pruning(model, calib_ids, report, config, cancel):
    peaks = collect_input_peaks(model, calib_ids, batch_size=config.batch_size, cancel=cancel)
    columns = massive_columns(report, peaks, min_abs=config.min_abs, min_ratio=config.min_ratio)
    table = kept_on_massive(model, report, columns, config.sparsity)
    protocol = (f"magnitude (per layer) and Wanda (per output row) at {config.sparsity:.0%} on "
                f"the dense weights, Wanda's ||X_j|| from one dense pass; massive columns: the "
                f"massive residual channels of earlier blocks for layers reading a normalised "
                f"residual stream, else the input channels with |x| > {config.min_abs:g} and > "
                f"{config.min_ratio:g} x the layer input's median")
    return table, summarize_by_kind(table), protocol


def _dense_passes(model, calib_ids, config, cache, *, tokenizer, cancel, model_name, report):
    """(activation report, rule, sink report, view, pruning tables) of the dense model."""
    report = report or collect_activation_report(
        model, calib_ids, tokenizer=tokenizer, batch_size=config.batch_size,
        calibration=cache.calibration, model_name=model_name)
    rule = MassiveRule.from_report(report, min_abs=config.min_abs, min_ratio=config.min_ratio)
    check_cancelled(cancel)
    sinks = collect_sink_report(model, calib_ids, rule, tokenizer=tokenizer,
                                batch_size=config.batch_size, cancel=cancel,
                                calibration=cache.calibration, model_name=model_name)
    view_block = config.view_block if config.view_block is not None else \
        (rule.blocks[0] if rule.blocks else len(report.block_names) // 2)
    view = token_channel_view(model, _view_ids(tokenizer, config.view_text, calib_ids),
                              view_block, rule, tokenizer=tokenizer)
    return report, rule, sinks, view, _pruning(model, calib_ids, report, config, cancel)


@torch.no_grad()
def run_sinks(model: nn.Module, calib_ids: torch.Tensor, eval_ids: torch.Tensor | None,
              config: SinksConfig = SinksConfig(), *, tokenizer=None,
              cache: PointCache | None = None, cancel: CancelToken | None = None,
              model_name: str | None = None, report: ActivationReport | None = None,
              model_for_point: ModelHold | None = None) -> SinksResult:
    """Every sinks analysis on a dense model (``eval_ids`` None skips the perplexity ones).

    Args:
        report: the activation report of this model on ``calib_ids`` if already computed.
        model_for_point: entered around the dense passes and each perplexity point, yields the
            dense model (a service's shared model, taken per step); None = ``model``.
    """
    cache, hold, notes = cache or PointCache(), holder(model, model_for_point), []
    with hold() as held:
        report, rule, sinks, view, (pruning, kinds, pruning_protocol) = _dense_passes(
            held, calib_ids, config, cache, tokenizer=tokenizer, cancel=cancel,
            model_name=model_name, report=report)
    interventions, intervention_protocol = None, ""
    if eval_ids is not None and config.interventions and rule.channels:
        interventions, intervention_protocol = _interventions(hold, calib_ids, eval_ids, report,
                                                              config, cache, cancel)
    elif not rule.channels:
        notes.append(f"no interventions: {rule.describe()}")
    window, window_protocol = None, ""
    if eval_ids is not None and config.window is not None:
        window, window_protocol = _window(hold, calib_ids, eval_ids, config, cache, cancel)
    return SinksResult(rule, sinks, view, interventions, intervention_protocol, window,
                       window_protocol, pruning, kinds, pruning_protocol,
                       find_massive_activations(report, min_abs=config.min_abs,
                                                min_ratio=config.min_ratio), notes,
                       config.sparsity)


def _matrix(tensor: torch.Tensor) -> list[list[float | None]]:
    return [[None if v != v else float(v) for v in row] for row in tensor.tolist()]


def sinks_payload(result: SinksResult, config: SinksConfig) -> dict:
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
        "notes": result.notes, "settings": _settings(config)}
    for name, table in tables.items():
        payload[name] = table_to_records(table) if table is not None else None
    return payload


def _settings(config: SinksConfig) -> dict:
    settings = asdict(config)
    settings["view_text"] = config.view_text
    return settings


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of ``cwd`` (default: this package's folder), or None outside a repository."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def export_sinks(result: SinksResult, config: SinksConfig, path: str | Path, *,
                 extra: dict | None = None) -> Path:
    """Write ``sinks_payload`` (plus ``extra``: model, commit ...) as JSON."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {**(extra or {}), **sinks_payload(result, config)}
    out.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return out
