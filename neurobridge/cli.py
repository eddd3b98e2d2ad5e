"""The ``neurobridge`` command.

Each subcommand lives next to the code it drives and exposes ``add_parser(subparsers)`` and
``run(args) -> int``; this module only wires them together and turns errors into one line on stderr
(the traceback with ``--debug``).

Exit status: 0 success, 1 an error while running (missing data, a model's own code failed), 2 a usage
error (an argument names no benchmark, model, function or device that can be used), 130 interrupted.

Examples
--------
$ neurobridge benchmark                      # efficientnet_lite0 on kriegeskorte92
$ neurobridge datasets list
$ neurobridge benchmark --model my_net.py:build --debug   # full traceback on errors
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

__all__ = ["main", "CommandError"]

_SUBCOMMANDS = {
    "benchmark": "neurobridge.benchmark._cli",
    "datasets": "neurobridge.datasets._cli",
}

_DEBUG_HINT = "run again with --debug for the traceback"


class CommandError(Exception):
    """An error a subcommand reports as one line (``message``) with exit status ``code`` (2: usage error).

    Examples
    --------
    >>> CommandError("--device cuda: no CUDA device is available; use --device cpu").code
    2
    """

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    from neurobridge import __version__

    parser = argparse.ArgumentParser(prog="neurobridge", description="Bridge brain data and model data.")
    parser.add_argument("--version", action="version", version=f"neurobridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("--debug", action="store_true", help="on errors, print the full traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _SUBCOMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.add_parser(sub)
    for p in sub.choices.values():  # --debug also after the subcommand; SUPPRESS keeps the top-level value
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on errors, print the full traceback")
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _message(err: BaseException, debug: bool = False) -> tuple[str, int]:
    """The line printed for ``err`` (without the program prefix) and the exit status; ``debug``: the traceback
    is printed too, so the line does not ask for it."""
    try:
        from neurobridge.models import ModelBuildError, ModelSpecError
    except ImportError:  # pragma: no cover (a broken install: still print one line)
        ModelBuildError = ModelSpecError = ()  # noqa: N806

    if isinstance(err, CommandError):
        return _one_line(err), err.code
    if isinstance(err, ModelSpecError):
        return f"--model {err.spec}: {_one_line(err.reason)}", 2
    if isinstance(err, ModelBuildError):
        hint = f" ({_DEBUG_HINT})" if err.__cause__ is not None and not debug else ""
        return f"--model {err.spec}: {_one_line(err.reason)}{hint}", 1
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str) and " " in err.args[0]:
        return _one_line(err.args[0]), 1  # our KeyErrors carry a sentence; str(KeyError) would quote it
    if isinstance(err, FileNotFoundError | ValueError | ImportError | OSError):
        return _one_line(err), 1
    what = f"{type(err).__name__}: {_one_line(err)}" if str(err).strip() else type(err).__name__
    hint = "see the traceback above" if debug else _DEBUG_HINT
    return f"unexpected {what}; {hint} (and report it if it points into neurobridge)", 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Errors print one line, ``neurobridge <command>: error: <what is wrong>; <how to fix it>``, on stderr;
    ``--debug`` (before or after the subcommand) prints the traceback first.

    Examples
    --------
    >>> main(["benchmark", "--list"]) == 0  # doctest: +SKIP
    True
    """
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
    except KeyboardInterrupt:
        print(f"neurobridge {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 (every error becomes one line; --debug shows the traceback)
        if args.debug:
            traceback.print_exception(err, file=sys.stderr)
        line, code = _message(err, args.debug)
        print(f"neurobridge {args.command}: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover (python -m neurobridge.cli: run the importable module's main, so
    # that the CommandError raised by subcommands is the class main() catches)
    from neurobridge.cli import main as _main

    sys.exit(_main())
