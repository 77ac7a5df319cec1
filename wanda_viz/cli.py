"""Command line: ``python -m wanda_viz prune ...`` for headless runs and sweeps.

Bad input ends with exit code 2 and one line ``error: <reason>`` on stderr; the shared argument
groups (model, calibration, evaluation) are reused by every subcommand.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

import torch

from .config import CalibConfig, PruneConfig
from .data import (CALIB_SOURCES, EVAL_SOURCES, DataUnavailableError, default_calibration_source,
                   default_eval_source, get_calibration_ids, get_eval_ids)
from .evaluate import count_eval_windows, perplexity, perplexity_protocol
from .models import load_model, resolve_seq_len
from .pruning import prune_model

__all__ = ["main", "build_parser", "add_model_args", "add_calib_args", "add_eval_args",
           "load_calibration", "evaluate_from_args", "COMMANDS"]

logger = logging.getLogger("wanda_viz")
# Subcommand name -> (add_arguments(parser), run(args) -> exit code). Other modules register here.
COMMANDS: dict[str, tuple[Callable, Callable]] = {}
USER_ERRORS = (ValueError, OSError, DataUnavailableError, torch.OutOfMemoryError)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help="Hugging Face id, local folder, .gguf file, or smollm2-135m (the real "
                       "SmolLM2-135M-Instruct GGUF, loaded dequantized; default: the embedded "
                       "demo model)")
    group.add_argument("--gguf-file", default=None,
                       help="GGUF file name inside the --model folder or hub repo")
    group.add_argument("--revision", default=None, help="hub branch, tag or commit")
    group.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda ...")
    group.add_argument("--dtype", default="auto", help="auto (bf16/fp16 on CUDA, fp32 on CPU), "
                       "float32, float16, bfloat16")
    group.add_argument("--trust-remote-code", action="store_true",
                       help="run code shipped with the checkpoint (off by default)")
    group.add_argument("--data-dir", default=None,
                       help="data folder with wikitext-2-raw/ (default: $WANDA_VIZ_DATA)")


def add_calib_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("calibration (reference sampler)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--calib-file", default=None, help="text file to sample windows from")
    source.add_argument("--calib-dataset", default=None, choices=list(CALIB_SOURCES),
                        help="wikitext2 = raw train split (reference); from the data folder, "
                        "else the datasets hub; bundled-* ship with wanda-viz (default: wikitext2 "
                        "if the data folder or hub has it, else the folder's validation split, "
                        "else bundled-wikitext2-valid)")
    group.add_argument("--n-samples", type=int, default=128, help="calibration windows (128)")
    group.add_argument("--seq-len", type=int, default=None,
                       help="tokens per window (default: min(model context, 2048))")
    group.add_argument("--seed", type=int, default=0, help="sampler seed (0)")
    group.add_argument("--batch-size", type=int, default=8,
                       help="calibration windows per forward pass through a block (8)")


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation (reference perplexity protocol)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--eval-file", default=None, help="text file for perplexity")
    source.add_argument("--eval-dataset", default=None, choices=[*EVAL_SOURCES, "none"],
                        help="wikitext2 = raw test split; none = skip perplexity (default: "
                        "wikitext2 if the data folder or hub has it, else bundled-wikitext2-test)")
    group.add_argument("--max-eval-windows", type=int, default=None,
                       help="evaluate only the first N windows (quick look)")


def load_calibration(args, tokenizer, model) -> tuple[torch.Tensor, dict]:
    """Calibration ids and their description from parsed arguments."""
    calib = CalibConfig(n_samples=args.n_samples, seq_len=args.seq_len, seed=args.seed)
    seq_len = resolve_seq_len(model, calib.seq_len)
    source = args.calib_file or args.calib_dataset or default_calibration_source(args.data_dir)
    return get_calibration_ids(tokenizer, source=source,
                               n_samples=calib.n_samples, seq_len=seq_len, seed=calib.seed,
                               data_dir=args.data_dir)


def evaluate_from_args(args, model, tokenizer, seq_len: int) -> tuple[float, str] | None:
    """(perplexity, protocol caption) by the reference protocol, or None with --eval-dataset none."""
    if args.eval_file is None and args.eval_dataset == "none":
        return None
    source = args.eval_file or args.eval_dataset or default_eval_source(args.data_dir)
    eval_ids, label = get_eval_ids(tokenizer, source=source, data_dir=args.data_dir)
    ppl = perplexity(model, eval_ids, seq_len, max_windows=args.max_eval_windows)
    total = count_eval_windows(eval_ids.numel(), seq_len)
    used = count_eval_windows(eval_ids.numel(), seq_len, args.max_eval_windows)
    return ppl, perplexity_protocol(label, seq_len, used, total)


# -- prune ------------------------------------------------------------------------------------

def _add_prune_args(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    group = parser.add_argument_group("pruning")
    group.add_argument("--method", default="wanda", choices=["wanda", "magnitude", "sparsegpt"])
    group.add_argument("--sparsity", type=float, default=0.5, help="share of weights removed")
    group.add_argument("--structure", default="unstructured",
                       help="unstructured or N:M such as 2:4, 4:8 (needs sparsity = N/M)")
    group.add_argument("--group", default=None, choices=["row", "layer", "input"],
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


def _run_prune(args) -> int:
    """Prune one model; print achieved sparsity, timings and perplexity."""
    config = PruneConfig(method=args.method, sparsity=args.sparsity, structure=args.structure,
                         group=args.group, wanda_variant=args.wanda_variant, owl=args.owl,
                         batch_size=args.batch_size, offload=args.offload)
    model, tokenizer = load_model(args.model, device=args.device, dtype=args.dtype,
                                  trust_remote_code=args.trust_remote_code, revision=args.revision,
                                  gguf_file=args.gguf_file)
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


COMMANDS["prune"] = (_add_prune_args, _run_prune)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wanda_viz",
                                     description="Prune causal LMs and see why pruning works.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=(run.__doc__ or "").strip().split("\n")[0] or None)
        add_arguments(sub_parser)
        sub_parser.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .analysis import cli as _analysis_cli  # noqa: F401  (registers sweep, outliers)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except USER_ERRORS as err:
        message = "out of memory: use fewer or shorter calibration windows, a smaller batch " \
            "size, --offload or a smaller model" if isinstance(err, torch.OutOfMemoryError) else err
        print(f"error: {message}", file=sys.stderr)
        return 2
