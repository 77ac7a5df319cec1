"""Argument groups every subcommand shares (model, calibration, evaluation) and what they build.

Choice lists come from the library (``data.CALIB_SOURCES``, ``data.EVAL_SOURCES``), so the command
line offers exactly what the library accepts.
"""
from __future__ import annotations

import argparse
import ast

import torch

from ..config import CalibConfig, EvalConfig
from ..data import (CALIB_SOURCES, EVAL_SOURCES, default_calibration_source, default_eval_source,
                    get_calibration_ids)
from ..data import get_eval_ids
from ..layers import resolve_seq_len
from ..loading import DEMO_MODEL_DIR, load_model
from ..points import PointRunner, default_cache_dir, model_fingerprint, resolve_eval_setup

__all__ = ["add_model_args", "add_calib_args", "add_eval_args", "add_cache_args", "load_model_from_args",
           "calib_config", "eval_config", "load_calibration", "point_runner", "csv_list",
           "settings_arg"]


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


def add_cache_args(group, *, no_cache: bool = True) -> None:
    """--cache-dir (the per-point cache) and, for analyses that can skip it, --no-cache."""
    group.add_argument("--cache-dir", default=None,
                       help=f"per-point JSON cache (default: {default_cache_dir()})")
    if no_cache:
        group.add_argument("--no-cache", action="store_true", help="recompute every point")


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


def csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def settings_arg(text: str | None, option: str) -> dict | None:
    """``"percdamp=0.05,block_size=64"`` -> {"percdamp": 0.05, "block_size": 64} (Python literals;
    other values stay strings); None when not given. The registry's dataclass validates them."""
    if not text:
        return None
    settings = {}
    for part in csv_list(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} takes key=value pairs such as percdamp=0.05, got {part!r}")
        try:
            settings[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            settings[key.strip()] = value.strip()
    return settings


def load_model_from_args(args):
    """(model, tokenizer) from the model argument group."""
    return load_model(args.model, device=args.device, dtype=args.dtype,
                      trust_remote_code=args.trust_remote_code, revision=args.revision,
                      gguf_file=args.gguf_file)


def calib_config(args) -> CalibConfig:
    """The calibration arguments; no source given = ``data.default_calibration_source``."""
    source = args.calib_file or args.calib_dataset or default_calibration_source(args.data_dir)
    return CalibConfig(source=source, n_samples=args.n_samples,
                       seq_len=args.seq_len, seed=args.seed, data_dir=args.data_dir)


def eval_config(args) -> EvalConfig:
    """The evaluation arguments; ``source`` None for ``--eval-dataset none``."""
    source = args.eval_file or (None if args.eval_dataset == "none" else
                                args.eval_dataset or default_eval_source(args.data_dir))
    # Evaluation windows are as long as the calibration windows (--seq-len), as in the reference.
    return EvalConfig(source=source, max_windows=args.max_eval_windows, data_dir=args.data_dir,
                      seq_len=args.seq_len)


def point_runner(args, model, tokenizer, calibration: tuple[torch.Tensor | None, dict | None], *,
                 cache: bool = True, need_eval: bool = True) -> PointRunner:
    """The point runner of a subcommand: its evaluation setup from the parsed arguments.

    Args:
        calibration: (calib_ids, description) from ``load_calibration`` (or (None, None)).
        cache: False = no on-disk cache (every point is computed).
        need_eval: False = ``--eval-dataset none`` gives a setup without an evaluation text
            (the caller skips its perplexity points); True = it is refused.
    """
    evaluation = eval_config(args)
    if evaluation.source is None and not need_eval:
        eval_ids, eval_label = None, "none"
    else:
        eval_ids, eval_label = get_eval_ids(tokenizer, source=evaluation.source,
                                            data_dir=evaluation.data_dir)
    fingerprint = model_fingerprint(args.model or DEMO_MODEL_DIR, revision=args.revision,
                                    model=model, cache_dir=args.cache_dir) if cache else None
    setup = resolve_eval_setup(model, evaluation, eval_ids=eval_ids, eval_label=eval_label,
                               calib_ids=calibration[0], calibration=calibration[1],
                               fingerprint=fingerprint, cache_dir=args.cache_dir,
                               batch_size=args.batch_size)
    return PointRunner(model, setup)


def load_calibration(args, tokenizer, model) -> tuple[torch.Tensor, dict]:
    """Calibration ids and their description from parsed arguments."""
    calib = calib_config(args)
    return get_calibration_ids(tokenizer, source=calib.source, n_samples=calib.n_samples,
                               seq_len=resolve_seq_len(model, calib.seq_len), seed=calib.seed,
                               data_dir=calib.data_dir)
