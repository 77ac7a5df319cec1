"""Subcommand ``why``: why Wanda works, shown causally (``python -m wanda_viz why ...``).

One dense pass, then: where Wanda and magnitude disagree per input channel (against ``||X_j||``),
perplexity after cutting the weights that read the top-k outlier vs k random input channels of
every layer, and perplexity with the massive activations set to zero vs to their mean. Perplexity
points are cached on disk like sweep points.
"""
from __future__ import annotations

import argparse
import logging

import pandas as pd

from ..analysis.why import TOP_SHARE
from ..analysis.why_activations import ActivationSpec
from ..analysis.why_interventions import ChannelSpec
from ..analysis.why_run import WhyResult, WhySpec, export_why, run_why
from ..layers import find_decoder_layers, find_prunable_layers
from .common import (add_cache_args, add_calib_args, add_eval_args, add_model_args,
                     eval_config, load_calibration, load_model_from_args, point_runner)

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise ValueError(f"{option} must be comma-separated integers such as 1,2,4,8: {err}") \
            from err
    if not values:
        raise ValueError(f"{option} is empty")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("why Wanda works")
    group.add_argument("--sparsity", type=float, default=0.5,
                       help="sparsity of the Wanda and magnitude masks compared (0.5)")
    group.add_argument("--top-share", type=float, default=TOP_SHARE,
                       help="share of each layer's channels counted as its top channels (0.01)")
    group.add_argument("--layer", default=None,
                       help="also print the per-channel table of this prunable layer")
    group.add_argument("--ks", default="1,2,4,8", help="input channels cut per layer (1,2,4,8)")
    group.add_argument("--seeds", default="0,1,2", help="seeds of the random channels (0,1,2)")
    group.add_argument("--massive-abs", type=float, default=100.0, help="|h| above (100)")
    group.add_argument("--massive-ratio", type=float, default=1000.0,
                       help="|h| above this multiple of the median |h| (1000)")
    add_cache_args(group)
    add_calib_args(parser)
    add_eval_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out-csv", default=None, help="per-layer table as CSV; _channels.csv, "
                     "_weights.csv and _activations.csv go next to it")
    out.add_argument("--out-json", default=None, help="every table except the full channel "
                     "table (only each layer's top channels) in one JSON file")


def _print(title: str, table: pd.DataFrame, protocol: str) -> None:
    print(f"\n{title}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(table)
          else "(none)")
    print(f"protocol: {protocol}")


def _report(result: WhyResult, layer: str | None) -> None:
    disagreement = result.disagreement
    overall = disagreement.overall
    layers = disagreement.layers
    _print("Wanda vs magnitude, per layer (sorted by share on the top channels)",
           layers.sort_values("top_share", ascending=False), disagreement.protocol())
    print(f"over all layers: the top {disagreement.top_share:.0%} channels by ||X_j|| carry "
          f"{overall['top_share']:.1%} of {overall['disagreements']} disagreements (an even "
          f"spread: {overall['uniform_share']:.1%}) and {overall['top_share_wanda_only']:.1%} of "
          f"the weights only Wanda keeps")
    if layer is not None:
        channels = disagreement.channels
        _print(f"{layer}: channels by input norm", channels[channels["layer"] == layer]
               .sort_values("norm_rank").head(20), disagreement.protocol())
    _print("Cutting the weights that read k input channels per layer",
           result.weights.table, result.weights.protocol())
    if result.activations is None:
        print(f"\nMassive activations: {result.activation_note}")
    else:
        _print("Massive activations set to zero / to their mean", result.activations.table,
               result.activations.protocol())


def run(args) -> int:
    """Why Wanda works: per-channel disagreement, outlier-channel and massive-activation cuts."""
    evaluation = eval_config(args)
    if evaluation.source is None:
        raise ValueError("why needs perplexity: give --eval-file or --eval-dataset")
    spec = WhySpec(sparsity=args.sparsity, top_share=args.top_share,
                   channels=ChannelSpec(tuple(_int_list(args.ks, "--ks")),
                                        tuple(_int_list(args.seeds, "--seeds"))),
                   activations=ActivationSpec(args.massive_abs, args.massive_ratio))
    model, tokenizer = load_model_from_args(args)
    prefix, blocks = find_decoder_layers(model)
    if args.layer is not None and args.layer not in find_prunable_layers(blocks, prefix):
        raise ValueError(f"--layer {args.layer!r} is not a prunable layer of this model, e.g. "
                         + ", ".join(list(find_prunable_layers(blocks[0], f"{prefix}.0"))[:3]))
    runner = point_runner(args, model, tokenizer, load_calibration(args, tokenizer, model),
                          cache=not args.no_cache)
    result = run_why(runner, spec, tokenizer=tokenizer, model_name=args.model)
    _report(result, args.layer)
    rows = [result.weights.table]  # the activation table's dense row is the same point
    if result.activations is not None:
        table = result.activations.table
        rows.append(table[table["intervention"] != "dense"])
    cached = sum(int(t["cached"].sum()) for t in rows)
    print(f"\n{sum(len(t) for t in rows) - cached} perplexity points computed, {cached} from cache")
    setup = runner.setup
    settings = {"calibration": setup.calibration, "evaluation": setup.eval_label,
                "seq_len": setup.seq_len, "max_eval_windows": evaluation.max_windows,
                "sparsity": args.sparsity, "ks": list(spec.channels.ks),
                "seeds": list(spec.channels.seeds), "top_share": args.top_share}
    provenance = {"model": args.model or "embedded demo model", "settings": settings,
                  "command": "python -m wanda_viz " + " ".join(getattr(args, "argv", []))}
    for path in export_why(result, out_json=args.out_json, out_csv=args.out_csv,
                           provenance=provenance):
        print(f"wrote {path}")
    return 0
