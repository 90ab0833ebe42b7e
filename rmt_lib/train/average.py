"""Weight averaging: one model from several trained from the same start (a "model soup", Wortsman et al., 2022).

Models fine-tuned from one model folder stay close enough in weight space that their uniform average is a
model too, often a better one than each: measured here on the default curriculum's model and two stages
appended to it (the shipped model is that average; TrainConfig.stages says by how much). It is an RMT like
its ingredients, of one config and one tokenizer.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rmt_lib.model import from_pretrained, save_pretrained
from rmt_lib.model.checkpoint import TOKENIZER, WEIGHTS, load_model_tensors, model_tensors, sha256
from rmt_lib.train.loop import AVERAGE, METRICS, _metrics, is_average


def average_models(folders: Sequence[str | Path], output: str | Path) -> Path:
    """Write the uniform average of the weights of `folders` (model folders written by `train`, of one
    RMTConfig and one tokenizer) as the model folder `output`. Its metrics.jsonl is the first folder's
    training log, then one record of kind "average" naming each ingredient, the sha256 of its weights and
    its last finished stage. ValueError, with nothing written, for folders that cannot be averaged."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise ValueError(f"averaging takes two or more model folders, got {len(folders)}")
    models = [from_pretrained(f) for f in folders]  # each verified against its checksums.json
    first = models[0].config
    for folder, model in zip(folders[1:], models[1:]):
        if model.config != first:
            changed = sorted(k for k, v in model.config.to_dict().items() if first.to_dict()[k] != v)
            raise ValueError(f"{folder} holds another model than {folders[0]} (it differs in {changed}); "
                             "only models of one config average into one")
        if sha256(folder / TOKENIZER) != sha256(folders[0] / TOKENIZER):
            raise ValueError(f"{folder} reads its inputs with another tokenizer than {folders[0]}; only models "
                             "of one tokenizer average into one")
    logs = [_metrics(f / METRICS) for f in folders]
    for folder, log in zip(folders, logs):
        if is_average(log):
            raise ValueError(f"{folder} is itself an average; average the folders it was made of")
    tensors = [model_tensors(m) for m in models]
    # float64 sums: the same average whatever the folders' order
    load_model_tensors(models[0], {k: (sum(t[k].double() for t in tensors) / len(tensors)).to(v.dtype)
                                   for k, v in tensors[0].items()})
    record = {"kind": AVERAGE, "models": [
        {"folder": str(folder), "weights_sha256": sha256(folder / WEIGHTS),
         "last_stage": next((r for r in reversed(log) if r.get("kind") == "stage"), None)}
        for folder, log in zip(folders, logs)]}
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / METRICS
        metrics.write_text((folders[0] / METRICS).read_text(encoding="utf-8") + json.dumps(record) + "\n",
                           encoding="utf-8")
        return save_pretrained(models[0], output, tokenizer_path=folders[0] / TOKENIZER,
                               extra_files={METRICS: metrics})
