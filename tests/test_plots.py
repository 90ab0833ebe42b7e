"""rmt_lib.plots: every function returns a Figure, leaves pyplot alone, and draws the paper's conventions."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (only to check that plots never touch pyplot's state)

from rmt_lib import plots, probes  # noqa: E402

S, FACTS, QUESTION = 12, (2, 7), 11


@pytest.fixture(scope="module")
def trajectory():
    rng = np.random.default_rng(0)
    steps = rng.normal(0, 0.05, (S, 2, 3))  # (S, M, D)
    for f in FACTS:
        steps[f] += 1.0
    states = np.concatenate([np.zeros((1, 2, 3)), np.cumsum(steps, 0)])
    return probes.distance_matrix(states), probes.memory_change(states)


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plot function opened a pyplot figure (hidden global state)"


def _labels(axis) -> dict[str, str]:
    """tick label text -> its colour"""
    return {t.get_text(): matplotlib.colors.to_hex(t.get_color()) for t in axis.get_ticklabels()}


def test_distance_matrix_colours_marks_and_colourbar(trajectory):
    d, _ = trajectory
    fig = plots.plot_distance_matrix(d, fact_segments=FACTS, question_segment=QUESTION)
    assert isinstance(fig, Figure)
    ax, cax = fig.axes
    image = ax.images[0]
    assert image.get_cmap().name == "RdBu"
    low, high = image.cmap(image.norm(0.0)), image.cmap(image.norm(d.max()))
    assert low[0] > low[2], "small distances must be red"
    assert high[2] > high[0], "large distances must be blue"
    assert image.norm.vmin == 0.0 and image.norm.vmax == pytest.approx(d.max())
    assert "distance" in cax.get_ylabel()
    for axis in (ax.xaxis, ax.yaxis):  # marked on both axes, in colour
        labels = _labels(axis)
        assert labels["F1 (2)"] == plots.FACT_COLOUR and labels["F2 (7)"] == plots.FACT_COLOUR
        assert labels["Q (11)"] == plots.QUESTION_COLOUR
        assert "init" in labels
    np.testing.assert_array_equal(image.get_array(), d)


def test_distance_matrix_fact_in_question_segment_and_shared_segment(trajectory):
    d, _ = trajectory
    fig = plots.plot_distance_matrix(d, fact_segments=(4, 4, 11), question_segment=11)
    labels = _labels(fig.axes[0].xaxis)
    assert "F1,F2 (4)" in labels and "F3+Q (11)" in labels


def test_distance_matrix_rejects_bad_input(trajectory):
    d, _ = trajectory
    with pytest.raises(ValueError, match="square"):
        plots.plot_distance_matrix(d[:3])
    with pytest.raises(ValueError, match="outside"):
        plots.plot_distance_matrix(d, fact_segments=(S,))


def test_write_attention_labels_fact_tokens():
    rng = np.random.default_rng(1)
    tokens = [f"tok{i}" for i in range(6)]
    fact = np.array([0, 0, 1, 1, 0, 0], bool)
    fig = plots.plot_write_attention({"chosen": rng.random((3, 6)), "mean": rng.random((3, 6))}, tokens, fact)
    assert isinstance(fig, Figure)
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in image_axes] == ["chosen", "mean"]
    labels = _labels(image_axes[0].xaxis)
    assert labels["tok2"] == labels["tok3"] == plots.FACT_COLOUR
    assert labels["tok0"] == plots.OTHER_COLOUR
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


def test_memory_change_bars_coloured_by_role(trajectory):
    _, change = trajectory
    fig = plots.plot_memory_change(change, fact_segments=FACTS, question_segment=QUESTION, current=3)
    bars = fig.axes[0].patches[:S]
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in bars]
    assert colours[2] == colours[7] == plots.FACT_COLOUR
    assert colours[11] == plots.QUESTION_COLOUR and colours[0] == plots.OTHER_COLOUR
    np.testing.assert_allclose([b.get_height() for b in bars], change)


def test_statistic_plots_return_figures(trajectory):
    _, change = trajectory
    is_fact = np.isin(np.arange(S), FACTS)
    figs = [
        plots.plot_change_distributions(change[is_fact], change[~is_fact], question_values=change[[QUESTION]],
                                        first_values=change[:1]),
        plots.plot_head_shares(np.random.default_rng(3).random((2, 4)), chosen=(1, 2), baseline=0.2),
        plots.plot_intervals(["32 segments", "256 segments"], [0.99, 0.98], [0.98, 0.96], [1.0, 0.99], reference=0.97),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert "0.200" in figs[1].axes[0].get_title()
    with pytest.raises(ValueError):
        plots.plot_change_distributions([], [1.0])
    with pytest.raises(ValueError):
        plots.plot_head_shares(np.zeros(3))


def test_segment_frame_with_and_without_attention(trajectory):
    d, change = trajectory
    plain = plots.plot_segment_frame(3, d, change, fact_segments=FACTS, question_segment=QUESTION)
    with_attention = plots.plot_segment_frame(2, d, change, fact_segments=FACTS, attention=np.ones((2, 5)),
                                              attention_tokens=list("abcde"), attention_fact_mask=[0, 1, 1, 0, 0])
    assert len([a for a in plain.axes if a.get_label() != "<colorbar>"]) == 2
    assert any(ax.images for ax in with_attention.axes)
    with pytest.raises(ValueError):
        plots.plot_segment_frame(S, d, change)


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_figures_save_without_pyplot(trajectory, fmt):
    d, _ = trajectory
    buf = io.BytesIO()
    plots.plot_distance_matrix(d, fact_segments=FACTS).savefig(buf, format=fmt)
    assert buf.getvalue()[:5] in (b"\x89PNG\r", b"<?xml")


# --- Figure 8 from a tiny random model, and the figures CLI ---------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch

    from rmt_lib import paths
    from rmt_lib.data import load_tokenizer
    from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained

    torch.manual_seed(0)
    cfg = RMTConfig(vocab_size=load_tokenizer().vocab_size, hidden_size=8, num_layers=2, num_heads=2,
                    segment_size=8, num_memory_tokens=2)
    return save_pretrained(RecurrentMemoryTransformer(cfg), tmp_path_factory.mktemp("ckpt") / "model",
                           tokenizer_path=paths.TOKENIZER_PATH)


@pytest.fixture(scope="module")
def prose(tmp_path_factory):
    rng = np.random.default_rng(9)
    words = "the of and to a in that was her it his she he not be had with for as you at but on all".split()
    folder = tmp_path_factory.mktemp("prose")
    (folder / "p.txt").write_text(" ".join(" ".join(rng.choice(words, size=int(rng.integers(3, 9)))).capitalize() + "."
                                           for _ in range(400)))
    return folder


@pytest.mark.slow
def test_figures_cli_writes_four_panels(tiny_checkpoint, prose, tmp_path):
    import json

    from rmt_lib.cli import main

    out = tmp_path / "figs"
    assert main(["figures", "--checkpoint", str(tiny_checkpoint), "--output", str(out), "--heldout", "4",
                 "--background", str(prose)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"fig8{x}.{ext}" for x in "abcd" for ext in ("png", "svg")] + ["figure8.json"])
    assert all((out / n).stat().st_size > 1000 for n in names if n != "figure8.json")
    record = json.loads((out / "figure8.json").read_text())
    assert record["short"]["n_segments"] == 32 and record["long"]["n_segments"] == 256
    assert len(record["short"]["facts"]) == 2 and record["n_heldout"] == 4
    assert "<dc:date>" not in (out / "fig8a.svg").read_text()  # reproducible: no creation date


def test_save_figure_is_atomic_and_reproducible(trajectory, tmp_path):
    d, _ = trajectory
    first = plots.save_figure(plots.plot_distance_matrix(d), tmp_path / "a" / "fig")
    second = plots.save_figure(plots.plot_distance_matrix(d), tmp_path / "b" / "fig")
    assert [p.name for p in first] == ["fig.png", "fig.svg"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["fig.png", "fig.svg"]  # no temporary files
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()


def test_figures_cli_without_shipped_model_says_what_to_do(tmp_path, monkeypatch, capsys):
    from rmt_lib import paths
    from rmt_lib.cli import main

    monkeypatch.setattr(paths, "SHIPPED_MODEL_DIR", tmp_path / "missing")
    assert main(["figures", "--output", str(tmp_path / "figs")]) == 2
    assert "no shipped model" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()


def test_figures_display_themselves_in_jupyter_without_pyplot(trajectory):
    from IPython.core.formatters import DisplayFormatter

    d, _ = trajectory
    fig = plots.plot_distance_matrix(d)
    data, _ = DisplayFormatter().format(fig)  # what a notebook cell returning `fig` would show
    assert data["image/png"][:4] == b"\x89PNG"
    assert data["text/plain"].startswith("<NotebookFigure size")
    assert plots.plot_distance_matrix(d)._repr_png_() == data["image/png"]  # same data, same bytes
