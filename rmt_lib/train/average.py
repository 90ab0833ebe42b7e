"""Weight averaging: one model from several trained from the same start (a "model soup", Wortsman et al., 2022).

Models fine-tuned from one model folder stay close enough in weight space that their uniform average is a
model too, often a better one than each: measured here on the 64-wide default curriculum's model and two
stages appended to it (the model shipped before the 96-wide one was that average; TrainConfig.stages says by
how much). It is an RMT like its ingredients, of one config and one tokenizer.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmt_lib.model import from_pretrained, save_pretrained
from rmt_lib.model.checkpoint import TOKENIZER, WEIGHTS, load_model_tensors, model_tensors, sha256
from rmt_lib.train.run_folder import AVERAGE, METRICS, finished_stages, is_average, read_metrics

_SAME_STAGE = ("n_segments", "steps", "best_val_accuracy", "elapsed")  # what two logs share when they share a stage


def average_models(folders: Sequence[str | Path], output: str | Path) -> Path:
    """Write the uniform average of the weights of `folders` (model folders written by `train` from one start:
    of one RMTConfig and tokenizer, their logs sharing their first stages) as the model folder `output`. Its
    metrics.jsonl is the first folder's training log, then one record of kind "average": `shared_stages` and
    `shared_elapsed` (the stages all share, and their seconds) and `models`, per ingredient its folder, the
    sha256 of its weights and its last stage. ValueError, with nothing
    written, for folders that cannot be averaged."""
    folders = [Path(f) for f in folders]
    logs = _check_folders(folders, Path(output))
    models = [from_pretrained(f) for f in folders]  # each verified against its checksums.json
    for folder, model in zip(folders[1:], models[1:]):
        if model.config != models[0].config:
            changed = sorted(k for k, v in model.config.to_dict().items() if models[0].config.to_dict()[k] != v)
            raise ValueError(f"{folder} holds another model than {folders[0]} (it differs in {changed}); "
                             "only models of one config average into one")
    shared = shared_stages(logs)
    if shared == 0:
        raise ValueError(f"{', '.join(map(str, folders))} share no first stage: they were not trained from one "
                         "start (a curriculum's model and stages appended to it with --from-model are)")
    tensors = [model_tensors(m) for m in models]
    # float64 sums: the same average whatever the folders' order
    load_model_tensors(models[0], {k: (sum(t[k].double() for t in tensors) / len(tensors)).to(v.dtype)
                                   for k, v in tensors[0].items()})
    record = {"kind": AVERAGE, "shared_stages": shared, "shared_elapsed": finished_stages(logs[0])[shared - 1]["elapsed"],
              "models": [
        {"folder": str(folder), "weights_sha256": sha256(folder / WEIGHTS), "last_stage": finished_stages(log)[-1]}
        for folder, log in zip(folders, logs)]}
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / METRICS
        metrics.write_text((folders[0] / METRICS).read_text(encoding="utf-8") + json.dumps(record) + "\n",
                           encoding="utf-8")
        return save_pretrained(models[0], output, tokenizer_path=folders[0] / TOKENIZER,
                               extra_files={METRICS: metrics})


def shared_stages(logs: Sequence[list[dict[str, Any]]]) -> int:
    """How many first finished stages every log records alike (the curriculum the models share)."""
    stages = [[tuple(r.get(k) for k in _SAME_STAGE) for r in finished_stages(log)] for log in logs]
    n = 0
    while all(len(s) > n and s[n] == stages[0][n] for s in stages):
        n += 1
    return n


def _check_folders(folders: list[Path], output: Path) -> list[list[dict[str, Any]]]:
    """The folders' training logs, after the cheap checks (before any weights are read): two or more distinct
    folders, none of them the output or an average, each with a log of finished stages and a tokenizer, one
    tokenizer for all."""
    if len(folders) < 2:
        raise ValueError(f"averaging takes two or more model folders, got {len(folders)}")
    resolved = [f.resolve() for f in folders]
    if len(set(resolved)) < len(resolved):
        raise ValueError("a model folder is given twice; give each ingredient once (the average weighs them alike)")
    if output.resolve() in resolved:
        raise ValueError(f"--output {output} is one of the folders to average; write the average somewhere else")
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder; give model folders written by train")
    logs = [read_metrics(f / METRICS) for f in folders]
    for folder, log in zip(folders, logs):
        if is_average(log):
            raise ValueError(f"{folder} is itself an average; average the folders it was made of")
        if not finished_stages(log):
            raise ValueError(f"{folder / METRICS} records no finished stage; average models whose training ended")
        if not (folder / TOKENIZER).is_file():
            raise ValueError(f"{folder} has no {TOKENIZER}; average model folders that carry their tokenizer")
        if sha256(folder / TOKENIZER) != sha256(folders[0] / TOKENIZER):
            raise ValueError(f"{folder} reads its inputs with another tokenizer than {folders[0]}; only models "
                             "of one tokenizer average into one")
    return logs
