"""The ``cxrlab`` command line: argparse subcommands, each calling one library function.

Each area of the package registers its own verbs from a module in ``cxrlab.commands``; this file only wires
them together and turns ``CxrlabError`` and ``OSError`` (permissions, missing paths, full disk, a folder where a
file was expected) into a one-line ``error: ...`` naming the path, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from cxrlab import __version__
from cxrlab.errors import CxrlabError, os_error_message

# Modules in cxrlab.commands, each exposing register(subparsers, data_subparsers).
COMMAND_MODULES = ("data_index", "data_merge", "data_split", "data_preview", "models", "train", "predict", "evaluate",
                   "explain", "ensemble", "uncertainty", "cv", "pseudo", "demo", "deploy", "study")


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one ``error: ...`` line (like every other error), not the usage block."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {' '.join(message.split())}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cxrlab", description="Train, evaluate, compare and explain chest X-ray classifiers."
    )
    parser.add_argument("--version", action="version", version=f"cxrlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    data = sub.add_parser("data", help="index, split, audit, cache and preview datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="VERB")
    data.set_defaults(func=lambda args: _missing_verb(data))
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"cxrlab.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cxrlab.commands.{name}":
                continue  # area not built yet
            raise
        module.register(sub, data_sub)
    return parser


def _missing_verb(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings reach a user as one ``warning: ...`` line, not a source listing."""
    print(f"warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version exit 0 as usual; a usage error returns 2 like any error
        if exc.code == 2:
            return 2
        raise
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CxrlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if exc.args == ("SIGTERM",):  # cxrlab.locks.terminate_as_interrupt: pre-emption, e.g. by Slurm
            print("terminated (SIGTERM); rerun the same command to resume", file=sys.stderr)
            return 143
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
