"""``python -m wanda_viz prune``: prune one model, print sparsity, timings and perplexity."""
from __future__ import annotations

import argparse

from ..config import PruneConfig, eval_seq_len
from ..data import check_source, get_eval_ids
from ..evaluate import evaluate
from ..files import check_writable, write_json_atomic
from ..pruning import prune_model
from ..pruning.registry import GROUPS, METHOD_NAMES, REFINEMENTS
from .common import (add_calib_args, add_eval_args, add_model_args, calib_config, eval_config,
                     load_calibration, load_model_from_args, settings_arg)
from .zero_shot_options import (add_zero_shot_args, dense_zero_shot, print_zero_shot,
                                prune_zero_shot, cli_zero_shot_runner, zero_shot_settings)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("pruning")
    group.add_argument("--method", default="wanda", choices=list(METHOD_NAMES))
    group.add_argument("--settings", default=None,
                       help="the method's own settings as key=value pairs, e.g. "
                       "percdamp=0.05,block_size=64 for sparsegpt (default: its registry defaults)")
    group.add_argument("--refine", default=None,
                       help="refine the method's masks (registered: "
                       f"{', '.join(REFINEMENTS) or 'none yet'})")
    group.add_argument("--refine-settings", default=None,
                       help="the refinement's settings as key=value pairs")
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
    add_zero_shot_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--compare-dense", action="store_true", help="also evaluate the dense model")
    out.add_argument("--save-model", default=None, help="write the pruned model (HF folder)")
    out.add_argument("--json", default=None, help="write the result summary as JSON")


def run(args) -> int:
    """Prune one model; print achieved sparsity, timings and perplexity.

    Everything that can be checked is checked before the model is loaded (configuration, data,
    output paths), and the pruned model is written before it is evaluated, so a late failure
    never throws away the pruning.
    """
    config = PruneConfig(method=args.method, sparsity=args.sparsity, structure=args.structure,
                         group=args.group, settings=settings_arg(args.settings, "--settings"),
                         refine=args.refine,
                         refine_settings=settings_arg(args.refine_settings, "--refine-settings"),
                         wanda_variant=args.wanda_variant, owl=args.owl,
                         batch_size=args.batch_size, offload=args.offload)
    calib, evaluation = calib_config(args), eval_config(args)
    if config.needs_calibration:
        check_source(calib.source, calib.data_dir)
    if evaluation.source is not None:
        check_source(evaluation.source, evaluation.data_dir, evaluation=True)
    zero_shot = zero_shot_settings(args)
    check_writable(args.save_model, args.json)
    model, tokenizer = load_model_from_args(args)
    seq_len = eval_seq_len(model, evaluation)  # refuses a seq_len beyond the context
    calib_ids, calib_info = (load_calibration(args, tokenizer, model)
                             if config.needs_calibration else (None, None))
    eval_ids = (get_eval_ids(tokenizer, source=evaluation.source, data_dir=evaluation.data_dir)
                if evaluation.source is not None else None)
    dense = _evaluate(model, eval_ids, seq_len, evaluation) if args.compare_dense else None
    runner = (cli_zero_shot_runner(args, model, evaluation, (calib_ids, calib_info))
              if zero_shot else None)
    dense_scores = dense_zero_shot(runner, tokenizer, zero_shot) if zero_shot else None
    result = prune_model(model, calib_ids, config, calibration=calib_info, model_name=args.model)
    _print_result(config, result)
    if args.save_model:
        model.save_pretrained(args.save_model)
        tokenizer.save_pretrained(args.save_model)
        print(f"saved pruned model to {args.save_model}")
    summary = result.summary()
    if dense is not None:
        print(f"dense perplexity {dense[0]:.3f}  [{dense[1]}]")
        summary["dense_perplexity"] = dense[0]
    pruned = _evaluate(model, eval_ids, seq_len, evaluation)
    if pruned is not None:
        print(f"perplexity {pruned[0]:.3f}  [{pruned[1]}]")
        summary.update(perplexity=pruned[0], eval_protocol=pruned[1])
    if zero_shot:
        scores = prune_zero_shot(model, tokenizer, zero_shot, runner.setup)
        print_zero_shot("dense", dense_scores)
        print_zero_shot(config.label(), scores)
        summary.update(zero_shot=scores.task_dict(), dense_zero_shot=dense_scores.task_dict(),
                       zero_shot_protocol={**scores.protocol(), "text": scores.protocol_text()})
    if args.json:
        write_json_atomic(args.json, summary)
    return 0


def _evaluate(model, eval_ids, seq_len: int, evaluation) -> tuple[float, str] | None:
    if eval_ids is None:
        return None
    ids, label = eval_ids
    return evaluate(model, ids, label, seq_len, max_windows=evaluation.max_windows)


def _print_result(config: PruneConfig, result) -> None:
    timings = result.timings
    print(f"{config.label()}: achieved sparsity {result.overall_sparsity:.4f} "
          f"(target {config.sparsity:.4f}, {len(result.layer_sparsity)} layers)")
    print(f"time: score/mask/update {timings.get('prune_s', 0):.2f}s, calibration forward "
          f"{timings.get('forward_s', 0) + timings.get('capture_s', 0):.2f}s, "
          f"total {timings.get('total_s', 0):.2f}s")
