"""Tables the book shows: one Markdown renderer (`markdown_table`), and `ResultTable`, statistics with their
intervals, one column per measured set, Markdown in the book and rounded text for nbval."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rmt_lib.jsonio import lookup


def percent(share: float) -> str:
    """A share as a percentage: one decimal, two below 1% (so that a small share does not read as 0.0%)."""
    return f"{100 * share:.{1 if share >= 0.01 else 2}f}%"


def interval_text(interval: Mapping, digits: int = 3) -> str:
    """An interval ({"estimate", "low", "high", ...}) for the prose: '0.990 [0.988, 0.993]'."""
    e, lo, hi = (float(interval[k]) for k in ("estimate", "low", "high"))
    return f"{e:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; a bare | inside a cell is escaped so that it does not split the cell."""
    def line(cells) -> str:
        return "|" + "|".join(f" {c} " if c != "" else " " for c in (str(c).replace("|", "\\|") for c in cells)) + "|"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(row) for row in rows])


@dataclass(frozen=True)
class ResultTable:
    """Rows of statistics, one column per measured set (e.g. per length); each cell an estimate with
    its 95% interval, or None. Renders as Markdown in the book and as rounded text elsewhere."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Mapping | None, ...]], ...]
    digits: int = 3

    def __post_init__(self) -> None:
        for label, cells in self.rows:
            if len(cells) != len(self.columns):
                raise ValueError(f"row {label!r} has {len(cells)} cells for {len(self.columns)} columns")

    def cell(self, value: Mapping | None) -> str:
        if value is None:
            return "–"
        if value.get("count"):
            return str(int(value["estimate"]))
        d = self.digits
        est = f"{float(value['estimate']):.{d}f}"
        low, high = value.get("low"), value.get("high")
        if low is None or high is None or (float(low) == float(high) == float(value["estimate"])):
            return est
        if math.isnan(float(low)):
            return f"{est} [no interval]"
        return f"{est} [{float(low):.{d}f}, {float(high):.{d}f}]"

    def to_markdown(self) -> str:
        head = f"**{self.title}** (estimate [95% bootstrap interval])\n\n"
        return head + markdown_table(["", *self.columns], [[label, *(self.cell(c) for c in cells)]
                                                           for label, cells in self.rows])

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        table = [["", *self.columns]] + [[label, *(self.cell(c) for c in cells)] for label, cells in self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        out = [self.title + " (estimate [95% bootstrap interval])"]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        return "\n".join(out)

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's text/plain
        p.text(str(self))


def count_cell(n: int | None) -> Mapping | None:
    """A count as a table cell (shown as an integer, without an interval)."""
    return None if n is None else {"estimate": int(n), "count": True}


def _table(title: str, summaries: Mapping[str, Mapping], spec, digits: int = 3) -> ResultTable:
    columns = tuple(summaries)
    rows = tuple((label, tuple(get(s) for s in summaries.values())) for label, get in spec)
    return ResultTable(title, columns, rows, digits)


def change_table(summaries: Mapping[str, Mapping]) -> ResultTable:
    """Memory change per segment (panels a, b), one column per summary."""
    spec = [
        ("samples", lambda s: count_cell(s["n_samples"])),
        ("answer accuracy", lambda s: s["accuracy"]),
        ("ROC-AUC `auc`: fact vs. distractor segments (segment 0 and the question segment left out)",
         lambda s: lookup(s, "memory_change", "auc")),
        ("ROC-AUC `auc_all_other`: fact vs. every other segment", lambda s: lookup(s, "memory_change", "auc_all_other")),
        ("ROC-AUC within each sample, averaged", lambda s: lookup(s, "memory_change", "auc_per_sample")),
        ("ratio: mean change at fact / at distractor segments", lambda s: lookup(s, "memory_change", "ratio")),
        ("mean change, fact segments", lambda s: lookup(s, "memory_change", "fact_mean")),
        ("mean change, distractor segments", lambda s: lookup(s, "memory_change", "distractor_mean")),
        ("mean change, segment 0 (from the initial memory)", lambda s: lookup(s, "memory_change", "first_mean")),
        ("mean change, question segment", lambda s: lookup(s, "memory_change", "question_mean")),
    ]
    return _table("Memory change ‖m_t − m_{t−1}‖ over held-out samples", summaries, spec)


def _chosen(part: str, stat: str):
    return lambda s: lookup(s, part, "chosen_head", stat)


def chosen_heads(summaries: Mapping[str, Mapping], part: Literal["write_attention", "read_attention"]) -> dict:
    """{column: "layer L, head H (chosen on N samples, measured on the other M)" or None}."""
    out = {}
    for label, s in summaries.items():
        c = lookup(s, part, "chosen_head")
        sel = s.get("head_selection", {})
        out[label] = None if c is None else (f"layer {c['layer']}, head {c['head']} (chosen on "
                                             f"{sel.get('n_selection')} samples, measured on the other "
                                             f"{sel.get('n_measured')})")
    return out


def write_table(summaries: Mapping[str, Mapping]) -> ResultTable:
    """Write attention on the fact's tokens (panel c), one column per summary."""
    spec = [
        ("facts measured", lambda s: count_cell(lookup(s, "write_attention", "n_units"))),
        ("fact's share of its segment's tokens (uniform attention)", lambda s: lookup(s, "write_attention", "token_share")),
        ("write attention on fact tokens, mean over heads", lambda s: lookup(s, "write_attention", "mean_over_heads", "share")),
        ("lift (share / token share), mean over heads", lambda s: lookup(s, "write_attention", "mean_over_heads", "lift")),
        ("write attention on fact tokens, chosen head", _chosen("write_attention", "share")),
        ("lift, chosen head (measured on held-out half)", _chosen("write_attention", "lift")),
    ]
    return _table("Write-memory attention on the fact's tokens", summaries, spec)


def _complement(interval: Mapping | None) -> Mapping | None:
    if interval is None:
        return None
    return {"estimate": 1.0 - interval["estimate"], "low": 1.0 - interval["high"], "high": 1.0 - interval["low"]}


def read_table(summaries: Mapping[str, Mapping]) -> ResultTable:
    """Read attention of the question positions on read memory vs. segment tokens (panel d)."""
    spec = [
        ("samples measured", lambda s: count_cell(lookup(s, "read_attention", "n_units"))),
        ("memory share under uniform causal attention", lambda s: lookup(s, "read_attention", "memory_baseline")),
        ("attention on read memory, mean over heads", lambda s: lookup(s, "read_attention", "mean_over_heads", "share")),
        ("attention on segment tokens, mean over heads",
         lambda s: _complement(lookup(s, "read_attention", "mean_over_heads", "share"))),
        ("lift (memory share / uniform), mean over heads", lambda s: lookup(s, "read_attention", "mean_over_heads", "lift")),
        ("attention on read memory, chosen head", _chosen("read_attention", "share")),
        ("lift, chosen head (measured on held-out half)", _chosen("read_attention", "lift")),
        ("control: lift of the segment's prose positions, mean over heads",
         lambda s: lookup(s, "read_attention", "prose_control", "prose_lift")),
        ("question lift minus prose lift (paired)",
         lambda s: lookup(s, "read_attention", "prose_control", "lift_difference")),
    ]
    return _table("Question positions' attention on read memory", summaries, spec)
