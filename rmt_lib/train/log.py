"""Training runs read back: the metrics log of a run, the curriculum as a table, and where the book's
training chapter trains."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rmt_lib import paper, paths
from rmt_lib.budgets import check_budget
from rmt_lib.display.tables import markdown_table
from rmt_lib.paths import Missing, relative
from rmt_lib.train.config import TrainConfig
from rmt_lib.train.run_folder import average_record, checkpoint_config, read_metrics


# The full budget's run is the README's `train --config default --output runs/default`: one folder for both, so
# that a reproduction trains the 38-minute curriculum once (whichever comes first trains, the other resumes
# the finished run, which costs seconds), and an interrupted run resumes from its last checkpoint.
FULL_TRAINING_DIR = paths.REPO_ROOT / "runs" / "default"


@contextmanager
def training_folder(budget: str, config: TrainConfig) -> Iterator[Path]:
    """Where the training chapter's run of `config` goes. ci: a temporary folder, removed afterwards (nothing
    under data/ changes); full: runs/default, the README's training run, kept (FULL_TRAINING_DIR says why).
    ValueError, before any work, when runs/default holds a run that `config` cannot continue."""
    if check_budget(budget) == "full":
        saved = checkpoint_config(FULL_TRAINING_DIR)
        if saved is not None and not config.continues(saved):
            raise ValueError(f"{relative(FULL_TRAINING_DIR)} holds a run of another configuration ({len(saved.stages)} "
                             f"stages to {saved.trained_length} segments), which the full budget would continue: "
                             "move that folder away, then run the chapter again")
        FULL_TRAINING_DIR.mkdir(parents=True, exist_ok=True)
        yield FULL_TRAINING_DIR
        return
    with tempfile.TemporaryDirectory(prefix="rmt-book-training-") as folder:
        yield Path(folder)


@dataclass(frozen=True, eq=False)
class StageLog:
    """One curriculum stage of a training log."""

    stage: int
    n_segments: int
    steps: np.ndarray  # (n,) step within the stage, 1-based
    loss: np.ndarray  # (n,) answer loss of each training batch
    accuracy: np.ndarray  # (n,) accuracy of each training batch
    val_steps: np.ndarray  # (k,) steps at which validation ran
    val_accuracy: np.ndarray  # (k,)
    best_val_accuracy: float
    seconds: float  # wall time of the stage (training, validation, checkpoints)
    finished: bool  # the log holds the stage's closing record

    @property
    def n_steps(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else 0


@dataclass(frozen=True, eq=False)
class TrainingLog:
    stages: tuple[StageLog, ...]
    source: str

    @property
    def total_seconds(self) -> float:
        return float(sum(s.seconds for s in self.stages))

    @property
    def total_steps(self) -> int:
        return sum(s.n_steps for s in self.stages)

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.stages)

    def __repr__(self) -> str:
        return f"TrainingLog({self.source!r}, stages={[s.n_segments for s in self.stages]})"

    def summary(self) -> str:
        """One or two sentences for the prose (glued as Markdown)."""
        last = self.stages[-1]
        path = " → ".join(str(s.n_segments) for s in self.stages)
        text = (f"{self.total_steps:,} training steps in {self.total_seconds / 60:.1f} minutes of wall time, through "
                f"{len(self.stages)} stage(s) of {path} segments; the best validation accuracy of the last stage "
                f"({last.n_segments} segments) was {last.best_val_accuracy:.3f}.")
        if not last.finished:
            text += " The last stage has no closing record: the run had not finished when this log was read."
        return text

    def _repr_markdown_(self) -> str:
        rows = [(s.stage + 1, s.n_segments, f"{s.n_steps:,}", f"{s.best_val_accuracy:.3f}", f"{s.seconds / 60:.1f}",
                 "yes" if s.finished else "**no (still running or stopped)**") for s in self.stages]
        rows.append(("all", "", f"{self.total_steps:,}", "", f"{self.total_seconds / 60:.1f}", ""))
        return markdown_table(["stage", "segments", "steps", "best validation accuracy", "wall time (min)", "finished"], rows)


@dataclass(frozen=True)
class CurriculumTable:
    """The stages of a `rmt_lib.train.TrainConfig`, for display."""

    config: Any  # TrainConfig
    name: str

    def __repr__(self) -> str:
        return f"CurriculumTable({self.name!r}, stages={[s.n_segments for s in self.config.stages]})"

    def _repr_markdown_(self) -> str:
        L = self.config.model.segment_size
        rows = [(k + 1, s.n_segments, f"{s.n_segments * L:,}", f"{s.max_steps:,}", s.batch_size,
                 f"{_stage_lr(self.config, s):.1e}") for k, s in enumerate(self.config.stages)]
        return markdown_table(["stage", "segments", "tokens per sample", "at most steps", "batch size", "peak learning rate"],
                         rows)


def _stage_lr(config, stage) -> float:
    """A stage's peak learning rate: its own where it sets one, else the config's."""
    own = getattr(stage, "lr", None)
    return float(own if own is not None else config.lr)


def curriculum_table(config, name: str) -> CurriculumTable:
    """The curriculum of a training preset as a table (stage, segments, tokens, step budget, batch size)."""
    if not getattr(config, "stages", None):
        raise ValueError("curriculum_table needs a rmt_lib.train.TrainConfig (it has no stages)")
    return CurriculumTable(config, name)


def answer_head_prose(config) -> str:
    """How a model with this RMTConfig answers, for the prose (glued as Markdown)."""
    if config.answer_head == "lm":
        return (f"by the backbone's own language-model head, read at the tokens of the {config.num_answers} "
                "candidate locations: the paper's LM loss on a one-token answer")
    return f"by a small classifier over the {config.num_answers} candidate locations"


def beyond_paper(config) -> str:
    """The curriculum's lengths past the paper's (32 segments), for the prose (glued as Markdown): "64 and 96"."""
    lengths = [str(s.n_segments) for s in config.stages if s.n_segments > paper.TRAINED_LENGTH]
    if not lengths:
        return f"no length past {paper.TRAINED_LENGTH}"
    return lengths[0] if len(lengths) == 1 else ", ".join(lengths[:-1]) + " and " + lengths[-1]


def read_training_log(path: str | Path) -> TrainingLog:
    """A `rmt_lib.train` metrics.jsonl, grouped by curriculum stage. A stage without its closing record
    (a run still going, or stopped) is kept and marked unfinished; records of other kinds are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {relative(path)}; `python -m rmt_lib train` writes one")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record["kind"] not in ("train", "stage"):
                continue  # a kind of record this reader does not plot (a later version's addition)
            int(record["stage"]), int(record["n_segments"]), float(record["elapsed"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{relative(path)}:{number}: not a training-log record ({type(err).__name__}: {err})") from None
        records.append(record)
    if not records:
        raise ValueError(f"{relative(path)} holds no records")
    stages, start = [], 0.0
    for stage in sorted({r["stage"] for r in records}):
        train = [r for r in records if r["stage"] == stage and r["kind"] == "train"]
        closing = [r for r in records if r["stage"] == stage and r["kind"] == "stage"]
        val = [r for r in train if "val_accuracy" in r]
        end = closing[-1]["elapsed"] if closing else (train[-1]["elapsed"] if train else start)
        best = closing[-1]["best_val_accuracy"] if closing else max((r["val_accuracy"] for r in val), default=float("nan"))
        n_segments = (closing or train)[0]["n_segments"]
        stages.append(StageLog(
            stage=stage, n_segments=n_segments,
            steps=np.array([r["step"] for r in train], dtype=np.int64),
            loss=np.array([r["loss"] for r in train], dtype=np.float64),
            accuracy=np.array([r["accuracy"] for r in train], dtype=np.float64),
            val_steps=np.array([r["step"] for r in val], dtype=np.int64),
            val_accuracy=np.array([r["val_accuracy"] for r in val], dtype=np.float64),
            best_val_accuracy=float(best), seconds=float(end - start), finished=bool(closing)))
        start = end
    return TrainingLog(tuple(stages), relative(path))


# What makes the shipped model's folder: the README's training command.
SHIPPED_RECIPE = "python -m rmt_lib train --config default --output runs/default --model-dir data/model"


def committed_training_log(model_dir: str | Path | None = None) -> TrainingLog | Missing:
    """The shipped model's training log (`data/model/metrics.jsonl`), or a note when it is absent."""
    folder = Path(model_dir) if model_dir is not None else paths.SHIPPED_MODEL_DIR
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return Missing("the shipped model's training log", relative(path),
                       SHIPPED_RECIPE)
    return read_training_log(path)


def average_summary(model_dir: str | Path | None = None) -> str | Missing:
    """Markdown: what the model folder (default: the shipped model) averages, from its metrics.jsonl's
    `average` record (rmt_lib.train.average): each model, the stages it trained after those all share, and
    their minutes; "" for a folder that is not an average, a note when it has no log."""
    path = (Path(model_dir) if model_dir is not None else paths.SHIPPED_MODEL_DIR) / "metrics.jsonl"
    if not path.is_file():
        return Missing("the model's training log", relative(path), SHIPPED_RECIPE)
    average = average_record(read_metrics(path))
    if average is None:
        return ""
    shared, start = average["shared_stages"], average["shared_elapsed"]
    rows = []
    for m in average["models"]:
        last = m["last_stage"]
        appended = last["stage"] + 1 - shared
        what = (f"the shared curriculum ({shared} stages)" if appended == 0 else
                f"{appended} stage{'s' if appended > 1 else ''} appended to it")
        seconds = last["elapsed"] - (0 if appended == 0 else start)
        rows.append([f"`{m['folder']}`", what, last["n_segments"], last["steps"], f"{last['best_val_accuracy']:.3f}",
                     f"{seconds / 60:.1f}"])
    return markdown_table(["model", "trained", "last stage (segments)", "its steps", "best validation", "minutes"],
                          rows)
