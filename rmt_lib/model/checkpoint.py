"""Save and load a trained RMT as one folder: safetensors weights, JSON config, tokenizer, checksums.

Nothing is ever unpickled. Every file is listed with its sha256 in ``checksums.json`` and verified on load.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rmt_lib import paths
from rmt_lib.model.config import RMTConfig
from rmt_lib.model.recurrent import RecurrentMemoryTransformer

WEIGHTS, CONFIG, TOKENIZER, CHECKSUMS = "model.safetensors", "config.json", "tokenizer.json", "checksums.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_pretrained(model: RecurrentMemoryTransformer, directory: str | Path, *,
                    tokenizer_path: str | Path | None = paths.TOKENIZER_PATH,
                    extra_files: dict[str, str | Path] | None = None) -> Path:
    """Write the model folder atomically: built in a temporary sibling, then renamed into place.

    ``extra_files`` maps a file name in the folder to a source path (a metrics log, say); they are
    checksummed like the rest.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_file(model_tensors(model), tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n")
        if tokenizer_path is not None:
            shutil.copyfile(tokenizer_path, tmp / TOKENIZER)
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / name)
        sums = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
        (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def from_pretrained(directory: str | Path | None = None, device: str | torch.device = "cpu") -> RecurrentMemoryTransformer:
    """Load a model folder written by `save_pretrained` (default: the shipped model), verifying checksums."""
    directory = Path(directory) if directory is not None else paths.SHIPPED_MODEL_DIR
    verify_checksums(directory)
    try:
        config = RMTConfig.from_dict(json.loads((directory / CONFIG).read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{directory / CONFIG} is not a valid RMT config: {err}") from err
    model = RecurrentMemoryTransformer(config)
    try:
        state = load_file(directory / WEIGHTS)
    except SafetensorError as err:
        raise ValueError(f"{directory / WEIGHTS} is not a readable safetensors file: {err}") from err
    try:
        load_model_tensors(model, state)
    except ValueError as err:
        raise ValueError(f"the weights in {directory} do not match its config.json: {err}") from err
    return model.to(device).eval()


def load_model_folder(directory: str | Path | None = None, device: str | torch.device = "cpu"):
    """(model, tokenizer) of a model folder (default: the shipped model): the one way every command, chapter
    and benchmark loads a model. The tokenizer is the folder's own `tokenizer.json` (checksummed with the
    weights), so a model trained with another vocabulary reads its inputs as it was trained to."""
    from rmt_lib.data.tokenizer import load_tokenizer

    directory = Path(directory) if directory is not None else paths.SHIPPED_MODEL_DIR
    if not directory.is_dir():
        what = "no shipped model" if directory == paths.SHIPPED_MODEL_DIR else "no model folder"
        raise FileNotFoundError(f"{what} at {directory}: make it with the README's training commands (`make "
                                "reproduce` runs them) or pass --checkpoint DIR (a folder written by save_pretrained)")
    model = from_pretrained(directory, device=device)
    own = directory / TOKENIZER
    tokenizer = load_tokenizer(own if own.is_file() else None)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"{own} has {tokenizer.vocab_size} tokens but the model in {directory} expects "
                         f"vocab_size {model.config.vocab_size}")
    return model, tokenizer


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's tensors, each stored once.

    safetensors refuses tensors that share memory (tied input/output embeddings), so aliases are dropped;
    `load_model_tensors` restores them through the tie.
    """
    return {k: v.detach().cpu().clone().contiguous() for k, v in _dedupe(model.state_dict()).items()}


def load_model_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load `model_tensors` output; ValueError naming what is missing, unexpected or misshapen."""
    own = model.state_dict()
    mismatched = [k for k, v in tensors.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"shapes differ for {mismatched[:5]}")
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if k not in _tied_names(model)]
    if missing or unexpected:
        raise ValueError(f"missing {missing[:5]}, unexpected {unexpected[:5]}")


def verify_checksums(directory: Path) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(f"no model folder at {directory}; train one (python -m rmt_lib train) or pass "
                                "--checkpoint DIR")
    listing = directory / CHECKSUMS
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} is missing: the folder was not written by save_pretrained")
    for name, expected in _read_listing(listing).items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {CHECKSUMS} but missing")
        if sha256(path) != expected:
            raise ValueError(f"checksum mismatch for {path}: the file is corrupt or was changed after saving")
    for required in (WEIGHTS, CONFIG):
        if not (directory / required).is_file():
            raise FileNotFoundError(f"{directory / required} is missing")


def _read_listing(listing: Path) -> dict[str, str]:
    """checksums.json: file name -> sha256; it must cover the weights and the config, or it verifies nothing."""
    try:
        entries = json.loads(listing.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{listing} is not JSON ({err}); rewrite the folder with save_pretrained") from None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise ValueError(f"{listing} must map file names to sha256 hex digests, got {type(entries).__name__}")
    if unlisted := [name for name in (WEIGHTS, CONFIG) if name not in entries]:
        raise ValueError(f"{listing} does not list {unlisted}, so it verifies nothing; rewrite the folder with "
                         "save_pretrained")
    return entries


def _tied_names(model: torch.nn.Module) -> set[str]:
    """Parameter names that alias another one (tied input/output embeddings)."""
    seen: dict[int, str] = {}
    tied = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if tensor.data_ptr() in seen:
            tied.add(name)
        else:
            seen[tensor.data_ptr()] = name
    return tied


def _dedupe(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            out[name] = tensor
    return out
