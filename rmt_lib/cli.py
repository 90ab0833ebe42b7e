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
        runner = f"_run_{name.replace('-', '_')}"
        _COMMANDS[name] = (help, add_arguments, lambda args: globals()[runner](args))
        return add_arguments

    return register


class CLIError(Exception):
    """A user error found by the CLI itself: printed as one line, exit status 2."""


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (argparse turns the ValueError into its one-line error, exit 2)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive_int.__name__ = "positive int"  # what argparse's message calls the type: "invalid positive int value"

# Library errors that mean "the user's input was wrong": printed without a traceback, exit 2.
# OSError: a path the user gave that cannot be written (read-only, /sys, permission denied), named by its message.
USER_ERRORS = (CLIError, ValueError, OSError)


_DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: $RMT_DEVICE, else CUDA when present, else CPU)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rmt_lib",
        description="Recurrent Memory Transformer on BABILong QA1: generate data, train, evaluate, probe, plot.",
    )
    parser.add_argument("--device", default=None, help=_DEVICE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_, add_arguments, _) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_, description=help_)
        add_arguments(command)
        # Also after the command (`evaluate --device cpu`); SUPPRESS keeps the one given before it otherwise.
        command.add_argument("--device", default=argparse.SUPPRESS, help=_DEVICE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # unknown command: argparse prints usage and exits 2
    try:
        return _COMMANDS[args.command][2](args) or 0
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every output is written atomically: an interrupted command leaves none
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


# --- generate (owned by the data module) ------------------------------------------------------------------

PLACEMENTS = ("sentence", "aligned")  # rmt_lib.data.samples.PLACEMENTS, named here to keep --help import-free

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
    p.add_argument("--babi", default=None, metavar="FILE", help="take the facts from real bAbI QA1 stories in FILE "
                   "(e.g. qa1_single-supporting-fact_test.txt): sample i is the file's question i with the "
                   "statements before it, as BABILong builds its samples (default: the QA1 grammar)")
    p.add_argument("--placement", choices=PLACEMENTS, default="sentence",
                   help="sentence (default): facts at sentence boundaries wherever segments start, as BABILong "
                   "places them, so a segment boundary may cut a fact; aligned: no fact is ever cut")
    p.add_argument("--split", choices=("train", "validation", "test"), default="train", help="background split (Austen, by book)")
    p.add_argument("--background", default=None, metavar="DIR", help="folder of .txt files, or 'pg19' (default: Austen)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default: 0)")
    p.add_argument("--output", required=True, metavar="FILE.jsonl", help="where to write the samples")


def _run_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rmt_lib.data import generate_samples, read_babi_qa1, write_jsonl

    if args.samples < 1:
        raise CLIError(f"--samples must be at least 1, got {args.samples}")
    if args.babi is not None and args.facts is not None:
        raise CLIError("--facts and --babi exclude each other: a real bAbI story brings its own facts")
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
        placement=args.placement,
        stories=read_babi_qa1(args.babi) if args.babi is not None else None,
    )
    write_jsonl(samples, output)  # atomic: nothing is written when generation fails
    print(f"wrote {len(samples)} samples to {output}", file=sys.stderr)
    return 0


@_command("train", help="Train the RMT through a curriculum of longer and longer inputs, 1 -> 2 -> 4 -> ... segments "
                          "(the default preset goes past the paper's 32; its stages say how far).")
def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="default",
                   help="a preset (default: the shipped model; ci: minutes; tiny: seconds) or a JSON file of TrainConfig fields")
    p.add_argument("--output", default="runs/default", help="run folder: metrics.jsonl, checkpoint, model/ (default: runs/default)")
    p.add_argument("--model-dir", default=None, help="where the final model goes (default: OUTPUT/model)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --output")
    p.add_argument("--from-model", default=None, metavar="DIR",
                   help="continue a finished curriculum: DIR is a model folder written by train (its metrics.jsonl "
                        "says which stages it trained); only the --config stages appended after those are trained")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--compile", action="store_true", help="train with the memory cell under torch.compile "
                   "(faster steps after a compilation per batch shape; numbers equal eager's to rounding)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_train(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from rmt_lib.train import PRESETS, TrainConfig, train
    from rmt_lib.runtime import init_distributed

    if args.config in PRESETS:
        cfg = PRESETS[args.config]
    elif Path(args.config).is_file():
        cfg = TrainConfig.from_json(args.config)
    else:
        raise CLIError(f"--config {args.config!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    if args.compile:
        cfg = dataclasses.replace(cfg, compile=True)
    with init_distributed():
        train(cfg, args.output, resume=args.resume, device=args.device, progress=not args.no_progress,
              model_dir=args.model_dir, from_model=args.from_model)
    return 0


@_command("evaluate", help="Accuracy of a trained RMT on QA1 samples (yours as JSONL, or generated per length).")
def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model, data/model)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="BABILong-format JSONL: input, question, target (extra fields ignored)")
    source.add_argument("--segments", type=int, nargs="+", help="generate held-out samples of these lengths")
    p.add_argument("--samples", type=int, default=100, help="samples per length with --segments (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated samples (default 0)")
    p.add_argument("--facts", type=int, default=None, help="facts per generated sample (default: bAbI's 2-10)")
    p.add_argument("--babi", default=None, metavar="FILE", help="with --segments: the facts of real bAbI QA1 "
                   "stories from FILE (e.g. qa1_single-supporting-fact_test.txt), the first --samples of them at "
                   "every length, instead of the QA1 grammar")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"], help="background split (default test)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="samples per forward pass (default 32)")
    p.add_argument("--output", required=True, help="OUT.json: accuracy, by_length (95%% Wilson intervals), samples")


def _run_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rmt_lib.data import read_babi_qa1, read_jsonl
    from rmt_lib.evaluate import evaluate, generate_eval_samples
    from rmt_lib.jsonio import check_output_path, write_json
    from rmt_lib.runtime import seed_everything

    check_output_path(args.output)  # before minutes of evaluation, not after
    seed_everything(args.seed)
    model, tokenizer = _load_checkpoint(args.checkpoint, args.device)  # the folder's own tokenizer
    if args.input:
        samples = read_jsonl(args.input)
    else:
        if args.samples < 1 or min(args.segments) < 1:
            raise CLIError("--samples and every --segments value must be positive")
        if args.babi is not None and args.facts is not None:
            raise CLIError("--facts and --babi exclude each other: a real bAbI story brings its own facts")
        stories = read_babi_qa1(args.babi) if args.babi is not None else None
        samples = generate_eval_samples(args.segments, args.samples, seed=args.seed, split=args.split,
                                        n_facts=args.facts, segment_size=model.config.segment_size, tokenizer=tokenizer,
                                        stories=stories)
    result = evaluate(model, tokenizer, samples, batch_size=args.batch_size)
    result["checkpoint"] = str(args.checkpoint or "data/model")
    if args.babi is not None and not args.input:
        result["babi"] = Path(args.babi).name  # the facts came from these real bAbI stories
    write_json(args.output, result)
    for n, r in result["by_length"].items():
        print(f"{n:>6} segments: {r['accuracy']:.3f}  [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]  (n={r['total']})")
    print(f"accuracy {result['accuracy']:.4f} over {result['n_samples']} samples -> {args.output}")
    return 0


def _load_checkpoint(checkpoint: str | None, device: str | None):
    """The model at `checkpoint` (default: the shipped model) and the folder's own tokenizer."""
    from rmt_lib.model import load_model_folder
    from rmt_lib.runtime import resolve_device

    return load_model_folder(checkpoint, device=resolve_device(device))


@_command("probe", help="Figure 8 probes on your samples: memory change, distances, attention shares (JSON).")
def _add_probe(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model, data/model)")
    p.add_argument("--input", required=True, help="BABILong-format JSONL (input, question, target; facts are found "
                                                  "by the bAbI grammar where no fact_char_spans are given)")
    p.add_argument("--output", required=True, help="OUT.json: samples[] (n_segments, segment_char_spans, "
                                                   "memory_change, distance_matrix, ...) and summary")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="samples per forward pass (default 32)")
    p.add_argument("--no-attention", action="store_true", help="skip attention maps (memory statistics only)")
    p.add_argument("--decode", action="store_true",
                   help="also fit a linear decoding probe on the training book's memory states and read every "
                        "actor's location from each memory state (JSON key `decoding`)")
    p.add_argument("--patch", action="store_true",
                   help="also patch the memory: each sample against a donor (its story with the supporting "
                        "fact moved, in other prose), reset and noise (JSON key `patching`)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap, head-selection and patching seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_probe(args: argparse.Namespace) -> int:
    from rmt_lib.data import read_jsonl
    from rmt_lib.jsonio import check_output_path
    from rmt_lib.probes import probe_samples, write_probe_json
    from rmt_lib.runtime import seed_everything

    check_output_path(args.output)  # before the probing, not after
    seed_everything(args.seed)
    samples = read_jsonl(args.input)  # checks every line first: a bad line writes nothing
    if not samples:
        raise CLIError(f"{args.input} holds no samples")
    model, tokenizer = _load_checkpoint(args.checkpoint, args.device)
    result = probe_samples(model, tokenizer, samples, batch_size=args.batch_size, seed=args.seed,
                           attention_segments="none" if args.no_attention else "facts_and_question",
                           progress=not args.no_progress)
    result.update(_memory_probes(args, model, tokenizer, samples))
    write_probe_json(result, args.output)
    mc = result["summary"]["memory_change"]
    if "auc" in mc:
        print(f"memory-change AUC, fact vs. distractor segments: {mc['auc']['estimate']:.4f} "
              f"[{mc['auc']['low']:.4f}, {mc['auc']['high']:.4f}]; ratio {mc['ratio']['estimate']:.2f}")
    write = result["summary"]["write_attention"]
    if write:
        print(f"write attention on fact tokens: {write['mean_over_heads']['lift']['estimate']:.2f}x their share "
              f"(mean over heads)")
    if "decoding" in result:
        asked = result["decoding"]["summary"]["asked_at_question"]
        print(f"decoded location of the asked actor at the question: {asked['estimate']:.1%} right")
    if result.get("patching", {}).get("summary", {}).get("n_eligible"):
        follows = result["patching"]["summary"]["fact_follows"]
        print(f"patching after the fact segment: the answer follows the donor in {follows['estimate']:.1%}")
    print(f"probed {len(samples)} samples -> {args.output}")
    return 0


def _memory_probes(args: argparse.Namespace, model, tokenizer, samples) -> dict:
    """The decoding and patching results that --decode and --patch ask for (new keys of the probe JSON)."""
    from rmt_lib.data import ACTORS
    from rmt_lib.probes import decode, patch

    extra = {}
    if args.decode:
        probe = decode.fit_decoding_probe(model, tokenizer, progress=not args.no_progress)
        states = decode.collect_memory_states(model, tokenizer, samples, batch_size=args.batch_size)
        extra["decoding"] = {"classes": list(decode.CLASSES), "actors": list(ACTORS),
                             "summary": decode.decoding_accuracy(probe, states, seed=args.seed),
                             "samples": decode.decoding_records(probe, states)}
    if args.patch:
        pairs = patch.patch_pairs(model, tokenizer, samples, seed=args.seed)
        extra["patching"] = patch.patch_memory(model, tokenizer, pairs, seed=args.seed, batch_size=args.batch_size,
                                               progress=not args.no_progress)
    return extra


@_command("figures", help="Write Figure 8 (a)-(d) as PNG and SVG, from the shipped model or --checkpoint.")
def _add_figures(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped model, data/model)")
    p.add_argument("--output", required=True, help="folder for fig8a..fig8d (.png, .svg) and figure8.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the displayed samples (held-out ones use seed + 1)")
    p.add_argument("--heldout", type=int, default=64, help="held-out samples for the automatic head choice (default 64)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"], help="background split (default test)")
    p.add_argument("--background", default=None, help="a folder of .txt prose instead of the Austen split")
    p.add_argument("--claims", default=None, metavar="FILE.json", help="also measure every Figure 8 claim on "
                   "held-out samples with the book's full budget (minutes) and write them to FILE.json; the book's "
                   "landing page reads data/results/figure8_claims.json")


def _run_figures(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rmt_lib.jsonio import atomic_folder, check_output_path, write_json
    from rmt_lib.plots import figure8_panels, save_figure
    from rmt_lib.probes import figure8_inputs
    from rmt_lib.runtime import seed_everything

    if args.heldout < 1:
        raise CLIError("--heldout must be at least 1")
    if args.claims is not None:
        check_output_path(args.claims)  # before the work
    seed_everything(args.seed)
    out = Path(args.output)
    with atomic_folder(out) as tmp:  # all of the set or none of it: a failure part-way writes nothing
        model, tokenizer = _load_checkpoint(args.checkpoint, args.device)
        inputs = figure8_inputs(model, tokenizer, seed=args.seed, n_heldout=args.heldout, split=args.split,
                                background=args.background, cache=False)  # a command writes only its output
        names = [path.name for name, fig in figure8_panels(inputs).items() for path in save_figure(fig, tmp / name)]
        write_json(tmp / "figure8.json", inputs.describe(), indent=2)
    for name in [*names, "figure8.json"]:
        print(out / name)
    if args.claims is not None:
        from rmt_lib.probes.overview import measure_claims, write_claims

        print(write_claims(measure_claims(model, tokenizer, budget="full", progress=True), args.claims))
    return 0


# --- average (owned by the train module) -------------------------------------------------------------------

@_command("average", help="Average the weights of model folders trained from one start into one model folder.")
def _add_average(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="DIR", help="two or more model folders written by train, of one "
                   "model config and tokenizer (e.g. a curriculum's model and stages appended to it)")
    p.add_argument("--output", required=True, metavar="DIR", help="the model folder to write")


def _run_average(args: argparse.Namespace) -> int:
    from rmt_lib.train import average_models

    folder = average_models(args.models, _model_output(args.output))
    print(f"wrote {folder}: the average of {len(args.models)} models")
    return 0


def _model_output(output: str):
    """--output as a model folder to (re)write: refused, before the work, when it names something else."""
    from pathlib import Path

    from rmt_lib.jsonio import check_output_path

    out = Path(output)
    if not output or (out.exists() and not out.is_dir()):
        raise CLIError(f"--output {output!r} must name a folder to write the model into")
    if out.is_dir() and any(out.iterdir()) and not (out / "checksums.json").is_file():
        raise CLIError(f"--output {out} holds files that are not a model folder; it would be replaced, so "
                       "give a new or empty folder")
    check_output_path(out / "_")  # a parent that is a file, before the work
    return out


# --- import-rmt (owned by the model module) -----------------------------------------------------------------

@_command("import-rmt", help="Turn a checkpoint of the paper's RMT code (MemoryCell + RecurrentWrapper over GPT-2) "
                             "into a model folder that evaluate, probe, figures and the book read.")
def _add_import_rmt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dict", required=True, metavar="FILE", help="the reference state dict: .bin (read with "
                   "torch.load(weights_only=True), which refuses code) or .safetensors")
    p.add_argument("--backbone-config", required=True, metavar="DIR", help="a transformers GPT-2 config folder "
                   "(config.json), e.g. the gpt2 folder of a local Hugging Face cache")
    p.add_argument("--tokenizer", required=True, metavar="DIR", help="a folder with tokenizer.json, or vocab.json "
                   "+ merges.txt")
    p.add_argument("--num-memory-tokens", type=_positive_int, required=True, metavar="M", help="the paper: 16")
    p.add_argument("--segment-size", type=_positive_int, required=True, metavar="L", help="the paper: 512")
    p.add_argument("--output", required=True, metavar="DIR", help="the model folder to write")


def _run_import_rmt(args: argparse.Namespace) -> int:
    from rmt_lib.model.imported import import_reference_rmt

    _model_output(args.output)
    folder = import_reference_rmt(args.state_dict, args.backbone_config, args.tokenizer,
                                  num_memory_tokens=args.num_memory_tokens, segment_size=args.segment_size,
                                  output=args.output)
    print(f"wrote {folder}: evaluate, probe and figures take it with --checkpoint {folder}")
    return 0
