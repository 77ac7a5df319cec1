"""``python -m wanda_viz outliers``: outlier features and massive activations of a dense model.

One dense calibration pass; prints the Massive Activations per-layer table, the LLM.int8 outlier
features and the massive activations (docs PROTOCOLS.md), optionally as CSV or JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ..analysis.export import export_table, table_to_records
from ..analysis.outliers import (collect_activation_report, find_massive_activations,
                                 find_outlier_features, layer_magnitude_table)
from .common import add_calib_args, add_model_args, load_calibration, load_model_from_args

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args) -> int:
    """Outlier features and massive activations of the dense model on calibration windows."""
    if args.top_k < 3:
        raise ValueError(f"--top-k must be at least 3, got {args.top_k}")
    model, tokenizer = load_model_from_args(args)
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
