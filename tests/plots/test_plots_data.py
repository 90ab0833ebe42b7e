"""rmt_lib.plots.data: where the facts lie, our grammar beside bAbI's (same layout without bAbI), and the
RMT's segment layout."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from rmt_lib import plots
from rmt_lib.data.stats import GrammarStats, grammar_comparison
from rmt_lib.paths import Missing

MISSING = Missing("the bAbI files", "../shared/babi", "make babi")


def _stats(name: str, tilt: float = 0.0) -> GrammarStats:
    return GrammarStats(name=name, n_questions=100, facts_per_question={k: 0.2 for k in (2, 4, 6, 8, 10)},
                        verbs={v: 0.2 for v in ("moved to", "went to", "went back to", "journeyed to", "travelled to")},
                        answers={loc: 1 / 6 for loc in ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")},
                        facts_back={"0": 0.4 + tilt, "1": 0.3, "2": 0.1, "3": 0.1, "4+": 0.1 - tilt})


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_segment_layout_draws_every_cell_and_the_memory_flow():
    M, L = 3, 10
    fig = plots.plot_segment_layout(M, L, n_segments=32, fact_tokens=(2, 5), question_tokens=2, answer="garden")
    ax = fig.axes[0]
    cells = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    # 3 calls x (M + L + M) cells, plus the fact and question cells drawn over them
    assert len(cells) == 3 * (2 * M + L) + 3 + 2
    assert sum(matplotlib.colors.to_hex(c.get_facecolor()) == plots.FACT_COLOUR for c in cells) == 3
    texts = _texts(fig)
    assert "segment 31" in texts and "memory state after segment 30" in texts
    assert "answer head: 'garden'" in texts and any("= 16 positions" in t for t in texts)


@pytest.mark.parametrize("bad", [dict(num_memory_tokens=0, segment_size=8), dict(num_memory_tokens=2, segment_size=8, n_segments=2),
                                 dict(num_memory_tokens=2, segment_size=8, fact_tokens=(6, 12))])
def test_segment_layout_rejects_what_it_cannot_draw(bad):
    with pytest.raises(ValueError):
        plots.plot_segment_layout(**bad)


def test_fact_positions_bars_and_uniform_line():
    fig = plots.plot_fact_positions(np.array([3, 1, 2, 2]), n_samples=4)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [3, 1, 2, 2]
    assert ax.lines[0].get_ydata()[0] == 2.0
    assert "8 facts in 4 samples of 4 segments" in ax.get_title(loc="left")
    with pytest.raises(ValueError):
        plots.plot_fact_positions(np.zeros((2, 2)))


def test_grammar_plot_keeps_its_layout_with_or_without_babi():
    ours = _stats("ours")
    with_babi = plots.plot_grammar_comparison(grammar_comparison(ours, _stats("bAbI", 0.05)))
    without = plots.plot_grammar_comparison(grammar_comparison(ours, MISSING))
    assert len(with_babi.axes) == len(without.axes) == 4
    assert repr(with_babi) == repr(without)  # what nbval compares of a figure
    assert sum(len(ax.patches) for ax in with_babi.axes) == 2 * sum(len(ax.patches) for ax in without.axes)
    assert any("bAbI files absent" in t for t in _texts(without))


def test_lengths_in_tokens_and_the_schematic_memory():
    fig = plots.plot_lengths_in_tokens({"16k": 32, "128k": 256}, paper_segment_size=512, our_segment_size=32)
    widths = sorted(b.get_width() for b in fig.axes[0].patches)
    assert widths == [32 * 32, 256 * 32, 32 * 512, 256 * 512]
    html = plots.memory_schematic_html(6, [1, 3])
    assert "<script" in html and "font-awesome" not in html  # offline: no CDN stylesheet
