"""``python -m wanda_viz sweep``: perplexity vs sparsity for several methods and structures.

Runs methods x sparsities x structures with the dense baseline through the on-disk cache of
``analysis.sweep`` and writes CSV / JSON / a self-contained HTML report.
"""
from __future__ import annotations

import argparse

from ..analysis.export import export_table
from ..analysis.sweep import SweepSpec, run_sweep
from ..config import parse_structure
from ..pruning.registry import DEFAULT_METHODS, GROUPS, needs_calibration, split_method_key
from .common import (add_cache_args, add_calib_args, add_eval_args, add_model_args, csv_list,
                     eval_config, load_calibration, load_model_from_args, point_runner)
from .zero_shot_options import add_zero_shot_args, sweep_zero_shot, zero_shot_settings

__all__ = ["add_arguments", "run"]

_PRINT_COLUMNS = ["method", "structure", "sparsity", "group", "perplexity", "achieved_sparsity",
                  "prune_s", "forward_s", "eval_s", "cached"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("sweep")
    group.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                       help="comma-separated methods, a refined one as base+refine such as "
                       "wanda+dsnot (default: %(default)s)")
    group.add_argument("--sparsities", default="0.5", help="comma-separated, e.g. 0.1,0.3,0.5")
    group.add_argument("--structures", default="unstructured",
                       help="comma-separated: unstructured, 2:4, 4:8 (N:M runs at N/M)")
    group.add_argument("--group", default=None, choices=list(GROUPS),
                       help="comparison group for magnitude/Wanda (default: each method's own)")
    group.add_argument("--no-dense", action="store_true", help="skip the dense baseline")
    add_cache_args(group, no_cache=False)
    add_calib_args(parser)
    add_eval_args(parser)
    add_zero_shot_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out-csv", default=None, help="write the table as CSV")
    out.add_argument("--out-json", default=None, help="write the table as JSON")
    out.add_argument("--report", default=None, help="write a self-contained HTML report")


def _sweep_settings(args) -> tuple[list[str], list[float], list[str]]:
    methods = csv_list(args.methods)
    if not methods:
        raise ValueError(f"--methods must list some methods, got {args.methods!r}")
    for method in methods:
        try:
            split_method_key(method)
        except ValueError as err:
            raise ValueError(f"--methods: {err}") from err
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
    calibration = (load_calibration(args, tokenizer, model)
                   if needs_calibration(methods) else (None, None))
    spec = SweepSpec(methods=tuple(methods), sparsities=tuple(sparsities),
                     structures=tuple(structures), group=args.group,
                     include_dense=not args.no_dense)
    runner = point_runner(args, model, tokenizer, calibration)
    table = run_sweep(runner, spec)
    calibrated = table.loc[table["calibration"] != "-", "calibration"]
    protocol = (f"calibration: {calibrated.iloc[0] if len(calibrated) else 'none (magnitude)'}; "
                f"perplexity: {table['eval_protocol'].iloc[0]}")
    print(table[_PRINT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if zero_shot:
        table, zero_shot_protocol = sweep_zero_shot(table, runner, tokenizer, spec, zero_shot)
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
