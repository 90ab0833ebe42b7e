"""How much each chapter computes, by budget, defined once: "ci" (CI and nbval: minutes) and "full" (the
published numbers). The chapters and `scripts/run_book.py` read these; a chapter's parameters cell holds
only the budget's name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rmt_lib.paper import FIGURE8_LONG, FIGURE8_SHORT

Budget = Literal["ci", "full"]
BUDGETS: tuple[str, ...] = ("ci", "full")
TRAINING_PRESET: dict[str, str] = {"ci": "ci", "full": "default"}  # budget -> rmt_lib.train.PRESETS key


def check_budget(budget: str) -> Budget:
    """`budget` itself when it names a budget; else a ValueError that lists them."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r} (the book's parameters cell)")
    return budget  # type: ignore[return-value]


@dataclass(frozen=True)
class ProbeBudget:
    """Held-out samples measured per length: `short_samples` at 32 segments, `long_samples` at 256."""

    name: str
    short_samples: int  # at FIGURE8_SHORT segments (the paper's "16k")
    long_samples: int  # at FIGURE8_LONG segments (the paper's "128k")

    def __post_init__(self) -> None:
        for field_name in ("short_samples", "long_samples"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ProbeBudget.{field_name} must be a positive int, got {value!r}")

    @classmethod
    def named(cls, budget: str) -> "ProbeBudget":
        """The book's budgets: "ci" (CI and nbval: fewer samples at 256 segments) and "full" (>= 200 each)."""
        return PROBE_BUDGETS[check_budget(budget)]

    def n_samples(self, n_segments: int) -> int:
        if n_segments == FIGURE8_SHORT:
            return self.short_samples
        if n_segments == FIGURE8_LONG:
            return self.long_samples
        raise ValueError(f"the budget covers {FIGURE8_SHORT} and {FIGURE8_LONG} segments, not {n_segments}")


PROBE_BUDGETS: dict[str, ProbeBudget] = {
    # 200 samples at 32 segments take seconds; 256 segments cost 8x per sample, so CI measures fewer there.
    "ci": ProbeBudget("ci", short_samples=200, long_samples=64),
    "full": ProbeBudget("full", short_samples=200, long_samples=200),
}


@dataclass(frozen=True)
class EvalBudget:
    """Lengths (in segments) and samples per length of one live evaluation."""

    lengths: tuple[int, ...]
    samples: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.lengths or len(self.lengths) != len(self.samples):
            raise ValueError(f"EvalBudget needs one sample count per length; got {self.lengths} and {self.samples}")
        if min(self.lengths) < 1 or min(self.samples) < 1 or list(self.lengths) != sorted(set(self.lengths)):
            raise ValueError("EvalBudget lengths must be increasing and positive, and every count positive")

    @property
    def segment_reads(self) -> int:
        """Segments the RMT reads in all (its cost grows with this)."""
        return sum(n * k for n, k in zip(self.lengths, self.samples))


EVAL_BUDGETS: dict[str, EvalBudget] = {
    # About a minute on 2 cores: CI and nbval.
    "ci": EvalBudget(lengths=(1, 2, 4, 8, 16, 32, 256), samples=(100, 100, 100, 100, 100, 100, 50)),
    # The full measurement: >= 500 per length up to 256 segments, 100 at 1,024 and 2,048 (the paper's "1M").
    "full": EvalBudget(lengths=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 2048),
                       samples=(500,) * 9 + (100, 100)),
}


@dataclass(frozen=True)
class HoldsBudget:
    """What the chapter "What the memory holds" measures: the decoding probe's training samples (at 32
    and 64 segments, training book), held-out samples at 32 and 256 segments, patching pairs and
    overwriting samples (at 32 segments)."""

    name: str
    train_samples: tuple[int, int]  # at 32 and at 64 segments
    short_samples: int
    long_samples: int
    pairs: int
    overwrite_samples: int

    def __post_init__(self) -> None:
        counts = (*self.train_samples, self.short_samples, self.long_samples, self.pairs, self.overwrite_samples)
        if len(self.train_samples) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in counts):
            raise ValueError(f"HoldsBudget {self.name!r}: every count must be a positive int, got {counts}")

    @classmethod
    def named(cls, budget: str) -> "HoldsBudget":
        return HOLDS_BUDGETS[check_budget(budget)]


HOLDS_BUDGETS: dict[str, HoldsBudget] = {
    # About a minute and a half on 2 cores; a sixth of the pairs are not eligible (a fact in the first or
    # the question's segment), so 240 pairs leave about 200.
    "ci": HoldsBudget("ci", train_samples=(400, 50), short_samples=200, long_samples=64, pairs=240,
                      overwrite_samples=200),
    "full": HoldsBudget("full", train_samples=(800, 100), short_samples=500, long_samples=200, pairs=600,
                        overwrite_samples=500),
}
