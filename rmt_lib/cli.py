"""`python -m rmt_lib <command>` (also installed as `rmt-lib`): thin argument parsing over the library.

Each command has one `_add_<command>` function that declares its options and one `_run_<command>`
that calls into the library. Heavy imports happen inside the runners so that `--help` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

# name -> (help, add_arguments, run); filled by the _command decorator below.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def _command(name: str, help: str):
    """Register `add_arguments` under `name`; the runner is looked up as `_run_<name>`."""

    def register(add_arguments):
        _COMMANDS[name] = (help, add_arguments, lambda args: globals()[f"_run_{name}"](args))
        return add_arguments

    return register


class CLIError(Exception):
    """A user error found by the CLI itself: printed as one line, exit status 2."""


# Library errors that mean "the user's input was wrong": printed without a traceback, exit 2.
USER_ERRORS = (CLIError, ValueError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rmt_lib",
        description="Recurrent Memory Transformer on BABILong QA1: generate data, train, evaluate, probe, plot.",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: $RMT_DEVICE, else CUDA when present, else CPU)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_, add_arguments, _) in _COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # unknown command: argparse prints usage and exits 2
    try:
        return _COMMANDS[args.command][2](args) or 0
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
