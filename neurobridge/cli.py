"""The ``neurobridge`` command.

Each subcommand lives next to the code it drives and exposes ``add_parser(subparsers)`` and
``run(args) -> int``; this module only wires them together.

Examples
--------
$ neurobridge benchmark                      # efficientnet_lite0 on kriegeskorte92
$ neurobridge datasets list
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]

_SUBCOMMANDS = {
    "benchmark": "neurobridge.benchmark._cli",
    "datasets": "neurobridge.datasets._cli",
}


def _parser() -> argparse.ArgumentParser:
    from neurobridge import __version__

    parser = argparse.ArgumentParser(prog="neurobridge", description="Bridge brain data and model data.")
    parser.add_argument("--version", action="version", version=f"neurobridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _SUBCOMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(_SUBCOMMANDS[args.command])
    try:
        return int(module.run(args) or 0)
    except (FileNotFoundError, ValueError, KeyError, ImportError) as err:
        print(f"neurobridge {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
