"""Subcommand ``sinks``: where the huge activations go (``python -m wanda_viz sinks ...``).

Attention on the first token per block and head, the implicit bias, the token x channel view of
one block, massive activations replaced in every block (vs random ones), the sliding-window
perplexity with and without the first tokens, and what magnitude and Wanda keep of the weights
reading the massive channels. ``--json`` records ``first_token_attention`` (a list over blocks of
lists over heads) and every other measure; perplexity points are cached like the why points.
"""
from __future__ import annotations

import argparse
import logging

import pandas as pd

from ..analysis.sinks_run import SinksResult, SinksSpec, export_sinks, git_commit, run_sinks
from ..analysis.sinks_view import PAPER_TEXT
from ..analysis.sliding_window import SlidingWindowConfig
from ..figures.sinks_text import (attention_takeaway, bias_takeaway, intervention_takeaway,
                                  pruning_takeaway, view_takeaway, window_takeaway)
from ..layers import find_decoder_layers
from ..loading import DEMO_MODEL_DIR
from .common import (add_cache_args, add_calib_args, add_eval_args, add_model_args,
                     load_calibration, load_model_from_args, point_runner)
from .why import _int_list

__all__ = ["add_arguments", "run", "spec_from_args"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("sinks")
    group.add_argument("--massive-abs", type=float, default=100.0, help="|h| above (100)")
    group.add_argument("--massive-ratio", type=float, default=1000.0,
                       help="|h| above this multiple of the median |h| (1000)")
    group.add_argument("--bias-block", type=int, default=None,
                       help="block whose implicit bias the summary describes (default: the first "
                            "whose input carries massive activations)")
    group.add_argument("--view-block", type=int, default=None,
                       help="block of the token x channel view (default: the first with massive "
                            "activations)")
    group.add_argument("--view-text", default=PAPER_TEXT,
                       help=f"text of the token x channel view ({PAPER_TEXT!r})")
    group.add_argument("--seeds", default="0,1,2", help="seeds of the random-entry control")
    group.add_argument("--no-interventions", action="store_true",
                       help="skip the all-block interventions")
    group.add_argument("--windows", default="16,32,64,128,256",
                       help="sliding-window sizes W (16,32,64,128,256); 'none' skips the demo")
    group.add_argument("--sink-tokens", type=int, default=4,
                       help="first tokens kept with the window (StreamingLLM: 4)")
    group.add_argument("--window-chunk", type=int, default=1024,
                       help="tokens of evaluation text per sliding-window pass (1024)")
    group.add_argument("--window-chunks", type=int, default=2, help="chunks evaluated (2)")
    group.add_argument("--sparsity", type=float, default=0.5,
                       help="sparsity of the magnitude and Wanda masks compared (0.5)")
    add_cache_args(group)
    add_calib_args(parser)
    add_eval_args(parser)
    parser.add_argument("--json", dest="out_json", default=None,
                        help="write every measure (first_token_attention: blocks x heads ...)")


def spec_from_args(args) -> SinksSpec:
    window = None
    if args.windows.strip().lower() != "none":
        window = SlidingWindowConfig(windows=tuple(_int_list(args.windows, "--windows")),
                                     sink_tokens=args.sink_tokens, chunk_len=args.window_chunk,
                                     max_chunks=args.window_chunks)
    return SinksSpec(min_abs=args.massive_abs, min_ratio=args.massive_ratio,
                     view_block=args.view_block, view_text=args.view_text,
                     interventions=not args.no_interventions,
                     seeds=tuple(_int_list(args.seeds, "--seeds")), window=window,
                     sparsity=args.sparsity)


def _print(title: str, table: pd.DataFrame | None, text: str, protocol: str = "") -> None:
    print(f"\n{title}")
    if table is not None:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(table)
              else "(none)")
    print(text)
    if protocol:
        print(f"protocol: {protocol}")


def _report(result: SinksResult, spec: SinksSpec, bias_block: int | None) -> None:
    sinks = result.sinks
    first = pd.DataFrame({"block": sinks.block_names,
                          "mean over heads": sinks.first_token.mean(dim=1).tolist(),
                          "max head": sinks.first_token.max(dim=1).values.tolist()})
    _print("Attention on the first token (mean over queries 1..T-1)", first,
           attention_takeaway(sinks), sinks.protocol())
    _print("The implicit bias", sinks.bias[["block", "sink_cosine", "rest_cosine",
                                            "sink_share"]], bias_takeaway(sinks, bias_block))
    _print("Token x channel view", None, view_takeaway(result.view), result.view.protocol())
    if result.interventions is not None:
        _print("Massive activations replaced in every block", result.interventions,
               intervention_takeaway(result.interventions), result.intervention_protocol)
    if result.window is not None:
        _print("Sliding-window attention", result.window, window_takeaway(result.window),
               result.window_protocol)
    _print("Pruning meets sinks", result.pruning_kinds,
           pruning_takeaway(result.pruning_kinds, spec.sparsity), result.pruning_protocol)
    for note in result.notes:
        print(f"note: {note}")


def run(args) -> int:
    """Where the huge activations go: attention sinks, implicit bias, interventions, windows."""
    spec = spec_from_args(args)
    model, tokenizer = load_model_from_args(args)
    _, blocks = find_decoder_layers(model)
    for option, block in (("--bias-block", args.bias_block), ("--view-block", args.view_block)):
        if block is not None and not 0 <= block < len(blocks):
            raise ValueError(f"{option} must be in 0..{len(blocks) - 1}, got {block}")
    calibration = load_calibration(args, tokenizer, model)
    runner = point_runner(args, model, tokenizer, calibration, cache=not args.no_cache,
                          need_eval=False)
    result = run_sinks(runner, spec, tokenizer=tokenizer, model_name=args.model)
    _report(result, spec, args.bias_block)
    if args.out_json:
        path = export_sinks(result, spec, args.out_json, extra={
            "model": args.model or str(DEMO_MODEL_DIR), "calibration": calibration[1],
            "evaluation": runner.setup.eval_label, "commit": git_commit(),
            "eval_setup": {"seq_len": runner.setup.seq_len,
                           "max_windows": runner.setup.max_windows,
                           "batch_size": runner.setup.batch_size}})
        print(f"wrote {path}")
    return 0
