"""``python -m wanda_viz sweep``: perplexity vs sparsity for several methods and structures.

Runs methods x sparsities x structures with the dense baseline through the on-disk cache of
``analysis.sweep`` and writes CSV / JSON / a self-contained HTML report.
"""
from __future__ import annotations

import argparse

from ..analysis.export import export_table
from ..analysis.sweep import default_cache_dir, model_fingerprint, run_sweep, sweep_points
from ..config import parse_structure
from ..data import get_eval_ids
from ..models import DEMO_MODEL_DIR, resolve_seq_len
from ..pruning.registry import GROUPS, METHOD_NAMES, needs_calibration
from ..zeroshot import PointData
from .common import (add_calib_args, add_eval_args, add_model_args, csv_list, eval_config,
                     load_calibration, load_model_from_args)
from .zero_shot_options import add_zero_shot_args, sweep_zero_shot, zero_shot_settings

__all__ = ["add_arguments", "run"]

_PRINT_COLUMNS = ["method", "structure", "sparsity", "group", "perplexity", "achieved_sparsity",
                  "prune_s", "forward_s", "eval_s", "cached"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("sweep")
    group.add_argument("--methods", default="magnitude,wanda,sparsegpt",
                       help="comma-separated methods (default: %(default)s)")
    group.add_argument("--sparsities", default="0.5", help="comma-separated, e.g. 0.1,0.3,0.5")
    group.add_argument("--structures", default="unstructured",
                       help="comma-separated: unstructured, 2:4, 4:8 (N:M runs at N/M)")
    group.add_argument("--group", default=None, choices=list(GROUPS),
                       help="comparison group for magnitude/Wanda (default: each method's own)")
    group.add_argument("--no-dense", action="store_true", help="skip the dense baseline")
    group.add_argument("--cache-dir", default=None,
                       help=f"per-point JSON cache (default: {default_cache_dir()})")
    add_calib_args(parser)
    add_eval_args(parser)
    add_zero_shot_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out-csv", default=None, help="write the table as CSV")
    out.add_argument("--out-json", default=None, help="write the table as JSON")
    out.add_argument("--report", default=None, help="write a self-contained HTML report")


def _sweep_settings(args) -> tuple[list[str], list[float], list[str]]:
    methods = csv_list(args.methods)
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if not methods or unknown:
        raise ValueError(f"--methods must list some of {', '.join(METHOD_NAMES)}, "
                         f"got {args.methods!r}")
    try:
        sparsities = [float(s) for s in csv_list(args.sparsities)]
    except ValueError as err:
        raise ValueError(f"--sparsities must be numbers such as 0.3,0.5: {err}") from err
    structures = csv_list(args.structures)
    for structure in structures:
        parse_structure(structure)
    if eval_config(args).source is None:
        raise ValueError("a sweep needs perplexity: give --eval-file or --eval-dataset")
    return methods, sparsities, structures


def run(args) -> int:
    """Perplexity vs sparsity for several methods and structures (cached per point)."""
    methods, sparsities, structures = _sweep_settings(args)
    zero_shot = zero_shot_settings(args)
    model, tokenizer = load_model_from_args(args)
    seq_len = resolve_seq_len(model, args.seq_len)
    calib_ids, calib_info = (load_calibration(args, tokenizer, model)
                             if needs_calibration(methods) else (None, None))
    evaluation = eval_config(args)
    eval_ids, eval_label = get_eval_ids(tokenizer, source=evaluation.source,
                                        data_dir=evaluation.data_dir)
    fingerprint = model_fingerprint(args.model or DEMO_MODEL_DIR, revision=args.revision,
                                    model=model, cache_dir=args.cache_dir)
    table = run_sweep(model, calib_ids, eval_ids, fingerprint=fingerprint, methods=methods,
                      sparsities=sparsities, structures=structures, group=args.group,
                      include_dense=not args.no_dense, calibration=calib_info,
                      eval_label=eval_label, seq_len=seq_len, max_windows=evaluation.max_windows,
                      cache_dir=args.cache_dir, batch_size=args.batch_size)
    calibrated = table.loc[table["calibration"] != "-", "calibration"]
    protocol = (f"calibration: {calibrated.iloc[0] if len(calibrated) else 'none (magnitude)'}; "
                f"perplexity: {table['eval_protocol'].iloc[0]}")
    print(table[_PRINT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if zero_shot:
        points = sweep_points(methods, sparsities, structures, group=args.group,
                              include_dense=not args.no_dense)
        data = PointData(fingerprint, calib_ids, calib_info, prune_batch_size=args.batch_size)
        table, zero_shot_protocol = sweep_zero_shot(table, model, tokenizer, points, zero_shot,
                                                    data, args.cache_dir)
        protocol += f"; zero-shot: {zero_shot_protocol}"
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
