"""Command line: ``python -m wanda_viz <command> ...`` for headless runs, sweeps and analyses.

``COMMANDS`` is the one explicit table of subcommands: name -> (module with
``add_arguments(parser)`` and ``run(args) -> exit code``). Adding a subcommand is one module and
one entry; ``build_parser()`` alone knows every subcommand (nothing registers itself on import).
Bad input ends with exit code 2 and one line ``error: <reason>`` on stderr.
"""
from __future__ import annotations

import argparse
import logging
import sys

import torch

from ..data import DataUnavailableError
from . import outliers, prune, sweep, why

__all__ = ["COMMANDS", "build_parser", "main"]

logger = logging.getLogger("wanda_viz")

COMMANDS = {
    "prune": prune,
    "sweep": sweep,
    "outliers": outliers,
    "why": why,
}
USER_ERRORS = (ValueError, OSError, DataUnavailableError, torch.OutOfMemoryError)
_OOM = ("out of memory: use fewer or shorter calibration windows, a smaller batch size, "
        "--offload or a smaller model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wanda_viz",
                                     description="Prune causal LMs and see why pruning works.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        summary = (command.run.__doc__ or "").strip().split("\n")[0] or None
        sub_parser = sub.add_parser(name, help=summary)
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in saved results
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except USER_ERRORS as err:
        message = _OOM if isinstance(err, torch.OutOfMemoryError) else err
        print(f"error: {message}", file=sys.stderr)
        return 2
