"""``python -m wanda_viz prune``: prune one model, print sparsity, timings and perplexity."""
from __future__ import annotations

import argparse
import json

from ..config import PruneConfig
from ..models import resolve_seq_len
from ..pruning import prune_model
from ..pruning.registry import GROUPS, METHOD_NAMES
from .common import (add_calib_args, add_eval_args, add_model_args, evaluate_from_args,
                     load_calibration, load_model_from_args)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("pruning")
    group.add_argument("--method", default="wanda", choices=list(METHOD_NAMES))
    group.add_argument("--sparsity", type=float, default=0.5, help="share of weights removed")
    group.add_argument("--structure", default="unstructured",
                       help="unstructured or N:M such as 2:4, 4:8 (needs sparsity = N/M)")
    group.add_argument("--group", default=None, choices=list(GROUPS),
                       help="comparison group (default: row for Wanda, layer for magnitude)")
    group.add_argument("--wanda-variant", action="store_true",
                       help="Wanda appendix variant with alpha search")
    group.add_argument("--owl", action="store_true", help="OWL outlier-weighted block sparsity")
    group.add_argument("--offload", action="store_true",
                       help="keep the model on CPU and move one block at a time to the GPU")
    add_calib_args(parser)
    add_eval_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--compare-dense", action="store_true", help="also evaluate the dense model")
    out.add_argument("--save-model", default=None, help="write the pruned model (HF folder)")
    out.add_argument("--json", default=None, help="write the result summary as JSON")


def run(args) -> int:
    """Prune one model; print achieved sparsity, timings and perplexity."""
    config = PruneConfig(method=args.method, sparsity=args.sparsity, structure=args.structure,
                         group=args.group, wanda_variant=args.wanda_variant, owl=args.owl,
                         batch_size=args.batch_size, offload=args.offload)
    model, tokenizer = load_model_from_args(args)
    seq_len = resolve_seq_len(model, args.seq_len)
    calib_ids, calib_info = (load_calibration(args, tokenizer, model)
                             if config.needs_calibration else (None, None))
    dense = evaluate_from_args(args, model, tokenizer, seq_len) if args.compare_dense else None
    result = prune_model(model, calib_ids, config, calibration=calib_info, model_name=args.model)
    evaluation = evaluate_from_args(args, model, tokenizer, seq_len)
    summary = result.summary()
    timings = result.timings
    print(f"{config.label()}: achieved sparsity {result.overall_sparsity:.4f} "
          f"(target {config.sparsity:.4f}, {len(result.layer_sparsity)} layers)")
    print(f"time: score/mask/update {timings.get('prune_s', 0):.2f}s, calibration forward "
          f"{timings.get('forward_s', 0) + timings.get('capture_s', 0):.2f}s, "
          f"total {timings.get('total_s', 0):.2f}s")
    if dense is not None:
        print(f"dense perplexity {dense[0]:.3f}  [{dense[1]}]")
        summary["dense_perplexity"] = dense[0]
    if evaluation is not None:
        print(f"perplexity {evaluation[0]:.3f}  [{evaluation[1]}]")
        summary.update(perplexity=evaluation[0], eval_protocol=evaluation[1])
    if args.save_model:
        model.save_pretrained(args.save_model)
        tokenizer.save_pretrained(args.save_model)
        print(f"saved pruned model to {args.save_model}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return 0
