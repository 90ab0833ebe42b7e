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


# --- generate (owned by the data module) ------------------------------------------------------------------

_PROGRESS_TOKENS = 1_000_000  # show a progress bar on stderr when a job generates more tokens than this


@_command("generate", help="Generate BABILong QA1 samples (bAbI facts hidden in background prose) as JSONL.")
def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="qa1", help="bAbI task (default: qa1)")
    p.add_argument("--samples", type=int, required=True, metavar="N", help="number of samples")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--segments", type=int, metavar="S", help="length in segments of --segment-size tokens")
    length.add_argument("--tokens", type=int, metavar="T", help="length in tokens (input + question)")
    p.add_argument("--segment-size", type=int, default=32, metavar="L", help="tokens per segment (default: 32)")
    p.add_argument("--facts", type=int, default=None, metavar="F", help="facts per sample (default: bAbI's 2-10)")
    p.add_argument("--split", choices=("train", "validation", "test"), default="train", help="background split (Austen, by book)")
    p.add_argument("--background", default=None, metavar="DIR", help="folder of .txt files, or 'pg19' (default: Austen)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default: 0)")
    p.add_argument("--output", required=True, metavar="FILE.jsonl", help="where to write the samples")


def _run_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rmt_lib.data import generate_samples, write_jsonl

    if args.samples < 1:
        raise CLIError(f"--samples must be at least 1, got {args.samples}")
    output = Path(args.output)
    if output.is_dir():
        raise CLIError(f"--output {output} is a folder; give a file name such as {output / 'samples.jsonl'}")
    total = args.tokens if args.tokens is not None else (args.segments or 0) * args.segment_size
    samples = generate_samples(
        task=args.task,
        n_samples=args.samples,
        n_segments=args.segments,
        tokens=args.tokens,
        segment_size=args.segment_size,
        n_facts=args.facts,
        split=args.split,
        background=args.background,
        seed=args.seed,
        progress=args.samples * max(total, 0) > _PROGRESS_TOKENS,
    )
    write_jsonl(samples, output)  # atomic: nothing is written when generation fails
    print(f"wrote {len(samples)} samples to {output}", file=sys.stderr)
    return 0
