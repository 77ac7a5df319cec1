"""Command line: ``python -m wanda_viz <command> ...`` for headless runs, sweeps and analyses.

``COMMANDS`` is the one explicit table of subcommands: name -> (module with
``add_arguments(parser)`` and ``run(args) -> exit code``). Adding a subcommand is one module and
one entry; ``build_parser()`` alone knows every subcommand (nothing registers itself on import).
Bad input (and out of memory, GPU or CPU) ends with exit code 2 and one line
``error: <reason>`` on stderr, by the same policy as the dashboard (``wanda_viz.errors``).
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import user_message
from . import outliers, prune, sweep, why

__all__ = ["COMMANDS", "build_parser", "main"]

logger = logging.getLogger("wanda_viz")

COMMANDS = {
    "prune": prune,
    "sweep": sweep,
    "outliers": outliers,
    "why": why,
}


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
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except Exception as err:  # noqa: BLE001 - sorted by the one policy below
        message = user_message(err)
        if message is None:
            raise  # a bug: the traceback is what the reader needs
        print(f"error: {message}", file=sys.stderr)
        return 2
