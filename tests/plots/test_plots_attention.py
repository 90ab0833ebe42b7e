"""rmt_lib.plots.attention: attention maps with the fact's tokens marked, per-head grids with the chosen
head outlined, and attention shares against their uniform baseline."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from rmt_lib import plots, probes
from rmt_lib.probes import HeadComparison

from .conftest import tick_colours


def _is_fact_red(patch) -> bool:
    return matplotlib.colors.to_hex(patch.get_edgecolor()) == plots.FACT_COLOUR


def test_write_attention_labels_fact_tokens():
    rng = np.random.default_rng(1)
    tokens = [f"tok{i}" for i in range(6)]
    fact = np.array([0, 0, 1, 1, 0, 0], bool)
    fig = plots.plot_write_attention({"chosen": rng.random((3, 6)), "mean": rng.random((3, 6))}, tokens, fact)
    assert isinstance(fig, Figure)
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in image_axes] == ["chosen", "mean"]
    labels = tick_colours(image_axes[0].xaxis)
    assert labels["tok2"] == labels["tok3"] == plots.FACT_COLOUR
    assert labels["tok0"] == plots.OTHER_COLOUR
    assert [p.get_x() for p in image_axes[0].patches if _is_fact_red(p)] == [1.5]  # one frame round tok2-tok3
    only_facts = plots.plot_write_attention(rng.random((3, 6)), tokens, fact, label_every_token=False)
    texts = [t.get_text() for t in only_facts.axes[0].get_xticklabels()]
    assert texts == ["", "", "tok2", "tok3", "", ""]
    with pytest.raises(ValueError, match="one token string"):
        plots.plot_write_attention(rng.random((3, 6)), tokens[:5], fact)


def test_read_attention_rows_and_columns():
    w = np.random.default_rng(2).random((4, 3))
    fig = plots.plot_read_attention(w, ["Where", "is", "Mary", "?"], title="(d)")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Where", "is", "Mary", "?"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["r0", "r1", "r2"]
    np.testing.assert_array_equal(ax.images[0].get_array(), w)
    with pytest.raises(ValueError, match="row label"):
        plots.plot_read_attention(w, ["a"])
    with pytest.raises(ValueError, match="2-d"):
        plots.plot_read_attention(np.zeros(3), ["a"])


def test_head_shares_annotates_every_cell_and_outlines_the_chosen_head():
    shares = np.random.default_rng(3).random((2, 4))  # (n_layers, n_heads)
    fig = plots.plot_head_shares(shares, chosen=(1, 2), baseline=0.2)
    ax = fig.axes[0]
    assert "0.200" in ax.get_title()
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.2f}" for v in shares.ravel())
    (outline,) = [p for p in ax.patches if _is_fact_red(p)]
    assert outline.get_xy() == (1.5, 0.5)
    assert ax.images[0].get_clim() == (0.0, pytest.approx(shares.max()))
    with pytest.raises(ValueError):
        plots.plot_head_shares(np.zeros(3))


def test_heads_compared_outlines_the_chosen_heads_on_one_colour_scale():
    cmp = HeadComparison("write", {"32": np.array([[0.1, 0.9], [0.2, 0.3]]), "256": np.array([[0.5, 0.4], [0.2, 0.1]])},
                         {"32": (0, 1), "256": None}, {"32": 0.2, "256": 0.2})
    fig = plots.plot_heads_compared(cmp)
    first, second = [ax for ax in fig.axes if ax.images]
    assert first.images[0].get_clim() == second.images[0].get_clim() == (0.0, 0.9)
    outlined = [p for p in first.patches if _is_fact_red(p)]
    assert len(outlined) == 1 and outlined[0].get_xy() == (0.5, -0.5)
    assert not second.patches
    # Light text on the dark half of the shared scale, dark text on the light half.
    colours = {t.get_text(): matplotlib.colors.to_hex(t.get_color()) for t in first.texts}
    assert colours["0.10"] == "#ffffff" and colours["0.90"] == "#000000"


def test_share_vs_baseline_draws_points_and_reference_lines():
    fig = plots.plot_share_vs_baseline({"mean": ([0.1, 0.2], [0.5, 0.6])}, target_lift=3.0)
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == 2
    assert any("target" in line.get_label() for line in ax.lines)
    with pytest.raises(ValueError, match="differ in length"):
        plots.plot_share_vs_baseline({"bad": ([0.1], [0.5, 0.6])})


def test_share_histograms_sum_to_one_per_series():
    fig = plots.plot_share_histograms({"a": [0.1, 0.2, 0.3], "b": [0.9]}, baseline=0.2)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == pytest.approx(2.0)
    assert any("uniform" in line.get_label() for line in ax.lines)


def test_share_plots_accept_what_the_probes_return():
    entries = [{"write_attention": [{"share": np.full((2, 2), 0.6), "token_share": 0.2}]} for _ in range(4)]
    w = probes.write_units(entries)
    fig = plots.plot_share_vs_baseline({"mean over heads": (w["token_share"], w["share_mean"])}, target_lift=3)
    assert len(fig.axes[0].collections[0].get_offsets()) == 4
