"""Subcommands ``sweep`` and ``outliers`` for ``python -m wanda_viz`` (registered in COMMANDS).

``sweep`` runs methods x sparsities x structures with the dense baseline through the on-disk cache
of ``analysis.sweep`` and writes CSV / JSON / a self-contained HTML report; ``outliers`` runs one
dense calibration pass and prints the Massive Activations per-layer table, the LLM.int8 outlier
features and the massive activations (docs/PROTOCOLS.md).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from ..cli import COMMANDS, add_calib_args, add_eval_args, add_model_args, load_calibration
from ..config import METHODS, parse_structure
from ..data import default_eval_source, get_eval_ids
from ..models import DEMO_MODEL_DIR, load_model, resolve_seq_len
from .export import export_table, table_to_records
from .outliers import (collect_activation_report, find_massive_activations,
                       find_outlier_features, layer_magnitude_table)
from .sweep import default_cache_dir, model_fingerprint, run_sweep

__all__ = ["add_sweep_args", "run_sweep_command", "add_outliers_args", "run_outliers_command"]

logger = logging.getLogger(__name__)

_PRINT_COLUMNS = ["method", "structure", "sparsity", "group", "perplexity", "achieved_sparsity",
                  "prune_s", "forward_s", "eval_s", "cached"]


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _load(args):
    model, tokenizer = load_model(args.model, device=args.device, dtype=args.dtype,
                                  trust_remote_code=args.trust_remote_code, revision=args.revision,
                                  gguf_file=getattr(args, "gguf_file", None))
    return model, tokenizer


# -- sweep ------------------------------------------------------------------------------------

def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("sweep")
    group.add_argument("--methods", default="magnitude,wanda,sparsegpt",
                       help="comma-separated methods (default: %(default)s)")
    group.add_argument("--sparsities", default="0.5", help="comma-separated, e.g. 0.1,0.3,0.5")
    group.add_argument("--structures", default="unstructured",
                       help="comma-separated: unstructured, 2:4, 4:8 (N:M runs at N/M)")
    group.add_argument("--group", default=None, choices=["row", "layer", "input"],
                       help="comparison group for magnitude/Wanda (default: each method's own)")
    group.add_argument("--no-dense", action="store_true", help="skip the dense baseline")
    group.add_argument("--cache-dir", default=None,
                       help=f"per-point JSON cache (default: {default_cache_dir()})")
    add_calib_args(parser)
    add_eval_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out-csv", default=None, help="write the table as CSV")
    out.add_argument("--out-json", default=None, help="write the table as JSON")
    out.add_argument("--report", default=None, help="write a self-contained HTML report")


def _sweep_settings(args) -> tuple[list[str], list[float], list[str]]:
    methods = _csv_list(args.methods)
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ValueError(f"--methods must list some of {', '.join(METHODS)}, got {args.methods!r}")
    try:
        sparsities = [float(s) for s in _csv_list(args.sparsities)]
    except ValueError as err:
        raise ValueError(f"--sparsities must be numbers such as 0.3,0.5: {err}") from err
    structures = _csv_list(args.structures)
    for structure in structures:
        parse_structure(structure)
    if args.eval_file is None and args.eval_dataset == "none":
        raise ValueError("a sweep needs perplexity: give --eval-file or --eval-dataset")
    return methods, sparsities, structures


def run_sweep_command(args) -> int:
    """Perplexity vs sparsity for several methods and structures (cached per point)."""
    methods, sparsities, structures = _sweep_settings(args)
    model, tokenizer = _load(args)
    seq_len = resolve_seq_len(model, args.seq_len)
    needs_calib = any(m != "magnitude" for m in methods)
    calib_ids, calib_info = load_calibration(args, tokenizer, model) if needs_calib else (None, None)
    eval_source = args.eval_file or args.eval_dataset or default_eval_source(args.data_dir)
    eval_ids, eval_label = get_eval_ids(tokenizer, source=eval_source, data_dir=args.data_dir)
    fingerprint = model_fingerprint(args.model or DEMO_MODEL_DIR, revision=args.revision,
                                    model=model, cache_dir=args.cache_dir)
    table = run_sweep(model, calib_ids, eval_ids, fingerprint=fingerprint, methods=methods,
                      sparsities=sparsities, structures=structures, group=args.group,
                      include_dense=not args.no_dense, calibration=calib_info,
                      eval_label=eval_label, seq_len=seq_len, max_windows=args.max_eval_windows,
                      cache_dir=args.cache_dir, batch_size=args.batch_size)
    calibrated = table.loc[table["calibration"] != "-", "calibration"]
    protocol = (f"calibration: {calibrated.iloc[0] if len(calibrated) else 'none (magnitude)'}; "
                f"perplexity: {table['eval_protocol'].iloc[0]}")
    print(table[_PRINT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"protocol: {protocol}")
    print(f"{int((~table['cached']).sum())} computed, {int(table['cached'].sum())} from cache")
    if args.out_csv:
        export_table(table, args.out_csv, protocol=protocol)
    if args.out_json:
        export_table(table, args.out_json, protocol=protocol)
    if args.report:
        from ..figures import write_sweep_report  # plotly only when a report is asked for
        write_sweep_report(table, args.report)
        print(f"report written to {args.report}")
    return 0


# -- outliers ---------------------------------------------------------------------------------

def add_outliers_args(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_calib_args(parser)
    group = parser.add_argument_group("thresholds (LLM.int8 and Massive Activations defaults)")
    group.add_argument("--magnitude", type=float, default=6.0, help="outlier magnitude (6.0)")
    group.add_argument("--min-layer-share", type=float, default=0.25, help="share of layers (0.25)")
    group.add_argument("--min-position-share", type=float, default=0.06,
                       help="share of sequence positions (0.06)")
    group.add_argument("--massive-abs", type=float, default=100.0, help="|h| above (100)")
    group.add_argument("--massive-ratio", type=float, default=1000.0,
                       help="|h| above this multiple of the layer median (1000)")
    group.add_argument("--top-k", type=int, default=16,
                       help="largest activations recorded per layer (16)")
    out = parser.add_argument_group("output")
    out.add_argument("--out-csv", default=None, help="per-layer table as CSV; outlier features "
                     "and massive activations go next to it (_features.csv, _massive.csv)")
    out.add_argument("--out-json", default=None, help="all three tables in one JSON file")


def _outlier_tables(args, report) -> dict[str, pd.DataFrame]:
    return {
        "layers": layer_magnitude_table(report),
        "features": find_outlier_features(report, min_layer_share=args.min_layer_share,
                                          min_position_share=args.min_position_share),
        "massive": find_massive_activations(report, min_abs=args.massive_abs,
                                            min_ratio=args.massive_ratio),
    }


def run_outliers_command(args) -> int:
    """Outlier features and massive activations of the dense model on calibration windows."""
    if args.top_k < 3:
        raise ValueError(f"--top-k must be at least 3, got {args.top_k}")
    model, tokenizer = _load(args)
    calib_ids, calib_info = load_calibration(args, tokenizer, model)
    report = collect_activation_report(model, calib_ids, tokenizer=tokenizer,
                                       threshold=args.magnitude, top_k=args.top_k,
                                       batch_size=args.batch_size, calibration=calib_info,
                                       model_name=args.model)
    tables = _outlier_tables(args, report)
    titles = {"layers": "Per-layer |h|: top-1/2/3 and median (Massive Activations)",
              "features": f"LLM.int8 outlier features on the linear layers' inputs (|x| >= "
                          f"{args.magnitude:g} on >= {args.min_position_share:.0%} of positions, "
                          f"in >= {args.min_layer_share:.0%} of layers)",
              "massive": f"Massive activations (|h| > {args.massive_abs:g} and > "
                         f"{args.massive_ratio:g} x layer median)"}
    for key, table in tables.items():
        print(f"\n{titles[key]}: {len(table)} rows")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
              if len(table) else "(none)")
    print(f"\nprotocol: {report.protocol()}")
    if args.out_csv:
        base = Path(args.out_csv)
        export_table(tables["layers"], base, protocol=report.protocol())
        for key in ("features", "massive"):
            export_table(tables[key], base.with_name(f"{base.stem}_{key}.csv"),
                         protocol=report.protocol())
    if args.out_json:
        payload = {"protocol": report.protocol(), "calibration": calib_info,
                   **{key: table_to_records(t) for key, t in tables.items()}}
        Path(args.out_json).write_text(json.dumps(payload, indent=1, default=str),
                                       encoding="utf-8")
    return 0


COMMANDS["sweep"] = (add_sweep_args, run_sweep_command)
COMMANDS["outliers"] = (add_outliers_args, run_outliers_command)
