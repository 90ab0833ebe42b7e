"""rmt_lib.plots.figure8: the four panels from captured data, and the figures CLI that saves them."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from rmt_lib import plots, probes


class _Capture:
    """What figure8_panels reads of a `SampleCapture`: its entry and its write/read maps."""

    def __init__(self, n_segments: int, seed: int):
        rng = np.random.default_rng(seed)
        states = np.cumsum(rng.normal(size=(n_segments + 1, 2, 3)), axis=0)  # (S+1, M, D)
        self.entry = {"n_segments": n_segments, "distance_matrix": probes.distance_matrix(states),
                      "fact_segments": [1, n_segments - 3], "question_segment": n_segments - 1,
                      "prediction": "garden", "target": "office"}

    def write_map(self, fact, layer=None, head=None):
        weights = np.full((2, 5), 0.2 if layer is None else 0.5)  # (M, L)
        return weights, list("abcde"), np.array([0, 1, 1, 0, 0], bool)

    def read_map(self, layer=None, head=None):
        return np.full((3, 2), 0.5), ["Where", "is", "Mary?"]  # (Q, M), Q row labels


def test_figure8_panels_draw_the_four_panels_with_the_paper_names():
    inputs = SimpleNamespace(short=_Capture(32, 0), long=_Capture(256, 1), write_head=(1, 0), read_head=(0, 1),
                             heldout={"samples": [{}] * 4})
    panels = plots.figure8_panels(inputs)
    assert sorted(panels) == ["fig8a", "fig8b", "fig8c", "fig8d"]
    assert "32 segments, the paper's 16k" in panels["fig8a"].axes[0].get_title()
    assert "256 segments, the paper's 128k" in panels["fig8b"].axes[0].get_title()
    titles_c = [ax.get_title() for ax in panels["fig8c"].axes if ax.images]
    assert titles_c == ["layer 1, head 0 (chosen automatically on 4 held-out samples)", "mean over all layers and heads"]
    assert "segment 1" in panels["fig8c"].get_suptitle()
    assert "last segment (31)" in panels["fig8d"].get_suptitle()


def test_figure8_overview_puts_the_four_panels_in_one_figure():
    inputs = SimpleNamespace(short=_Capture(32, 0), long=_Capture(256, 1), write_head=(1, 0), read_head=(0, 1),
                             heldout={"samples": [{}] * 4})
    fig = plots.figure8_overview(inputs)
    assert len(fig.axes) == 4 and all(len(ax.images) == 1 for ax in fig.axes)
    assert all(ax.images[0].get_array().shape[2] == 4 for ax in fig.axes)  # each panel as drawn, RGBA
    assert "Figure 8" in fig.get_suptitle()


# --- the figures CLI, from a tiny random model ---------------------------------------------------


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


def test_figures_cli_without_shipped_model_says_what_to_do(tmp_path, monkeypatch, capsys):
    from rmt_lib import paths
    from rmt_lib.cli import main

    monkeypatch.setattr(paths, "SHIPPED_MODEL_DIR", tmp_path / "missing")
    assert main(["figures", "--output", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "missing") in err and "make reproduce" in err  # where it looked, what to run
    assert not (tmp_path / "figs").exists()
