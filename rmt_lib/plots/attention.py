"""Where the memory looks: attention maps of one segment, per-head statistics, attention shares.

Panel (c) of Figure 8 is the write-memory queries attending to a segment's tokens, panel (d) the
question positions attending to the read memory. Maps are plain arrays; the per-head and per-unit
statistics come from `rmt_lib.probes`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from rmt_lib.plots.style import ATTENTION_CMAP, FACT_COLOUR, OTHER_COLOUR, QUESTION_COLOUR, new_figure


def _as_panels(weights: np.ndarray | Mapping[str, np.ndarray], default_title: str) -> list[tuple[str, np.ndarray]]:
    panels = list(weights.items()) if isinstance(weights, Mapping) else [(default_title, weights)]
    out = []
    for name, w in panels:
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"attention map {name!r} must be 2-d (rows, columns); got shape {w.shape}")
        out.append((name, w))
    if not out:
        raise ValueError("no attention map to plot")
    return out


def outline_columns(ax: Axes, mask: np.ndarray, n_rows: int) -> None:
    """A red frame around each run of marked columns (the fact's tokens) of an image with `n_rows` rows."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    for run in runs:
        ax.add_patch(Rectangle((run[0] - 0.5, -0.5), len(run), n_rows, fill=False,
                               edgecolor=FACT_COLOUR, linewidth=1.5))


def plot_write_attention(
    weights: np.ndarray | Mapping[str, np.ndarray],
    tokens: Sequence[str],
    fact_mask: Sequence[bool] | np.ndarray,
    *,
    title: str | None = None,
    label_every_token: bool = True,
) -> Figure:
    """Panel (c): write-memory queries (rows) attending to one segment's tokens (columns).

    `weights` is (M, L), or a mapping of titles to such maps (e.g. the chosen head and the mean over
    heads), drawn one under the other. `tokens` are the L token strings; the fact's tokens
    (`fact_mask`) are labelled in bold red, the others in grey (or left blank with
    ``label_every_token=False``).
    """
    panels = _as_panels(weights, "write attention")
    fact = np.asarray(fact_mask, dtype=bool)  # (L,)
    L = panels[0][1].shape[1]
    if len(tokens) != L or fact.shape != (L,):
        raise ValueError(f"need one token string and one fact flag per column ({L}); got {len(tokens)} and {fact.shape}")
    M = panels[0][1].shape[0]
    fig, axes = new_figure(max(6.0, 0.22 * L + 2.0), 0.35 * M * len(panels) + 1.6 * len(panels) + 0.4,
                           nrows=len(panels))
    for ax, (name, w) in zip(axes[:, 0], panels):
        image = ax.imshow(w, cmap=ATTENTION_CMAP, vmin=0.0, aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="attention", pad=0.01)
        ax.set_yticks(range(w.shape[0]), [f"w{i}" for i in range(w.shape[0])])
        ax.set_ylabel("write memory (query)")
        labels = [t if (label_every_token or f) else "" for t, f in zip(tokens, fact)]
        ax.set_xticks(range(L), labels, rotation=90, fontsize=7)
        for label, f in zip(ax.get_xticklabels(), fact):
            label.set_color(FACT_COLOUR if f else OTHER_COLOUR)
            if f:
                label.set_fontweight("bold")
        outline_columns(ax, fact, w.shape[0])
        ax.set_title(name, fontsize=10)
    axes[-1, 0].set_xlabel("segment tokens (key); fact tokens in red")
    if title:
        fig.suptitle(title)
    return fig


def plot_read_attention(
    weights: np.ndarray | Mapping[str, np.ndarray],
    row_labels: Sequence[str],
    *,
    title: str | None = None,
) -> Figure:
    """Panel (d): question/answer positions (rows) attending to the read-memory keys (columns).

    `weights` is (Q, M) or a mapping of titles to such maps; `row_labels` the Q token strings (the
    last row is the answer position, where the model reads its answer).
    """
    panels = _as_panels(weights, "read attention")
    Q, M = panels[0][1].shape
    if len(row_labels) != Q:
        raise ValueError(f"need one row label per query row ({Q}); got {len(row_labels)}")
    fig, axes = new_figure(3.0 * len(panels) + 1.5, 0.32 * Q + 1.8, ncols=len(panels))
    for ax, (name, w) in zip(axes[0], panels):
        image = ax.imshow(w, cmap=ATTENTION_CMAP, vmin=0.0, aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="attention", pad=0.02)
        ax.set_xticks(range(M), [f"r{i}" for i in range(M)], fontsize=8)
        ax.set_xlabel("read memory (key)")
        ax.set_yticks(range(Q), list(row_labels), fontsize=8)
        ax.set_title(name, fontsize=10)
    axes[0, 0].set_ylabel("question / answer position (query)")
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------------------
# Per-head statistics: one (layer x head) grid per panel
# ----------------------------------------------------------------------------------------------


def _head_grid(ax: Axes, shares: np.ndarray, *, vmax: float, chosen: tuple[int, int] | None) -> AxesImage:
    """Draw one (n_layers, n_heads) grid on a 0..vmax colour scale, each cell annotated, `chosen`
    (layer, head) outlined in red. Both per-head plots draw their grids with this."""
    n_layers, n_heads = shares.shape
    image = ax.imshow(shares, cmap=ATTENTION_CMAP, vmin=0.0, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(shares):  # white on the dark half of the colour scale, black on the light
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < vmax / 2 else "black")
    if chosen is not None:
        ax.add_patch(Rectangle((chosen[1] - 0.5, chosen[0] - 0.5), 1, 1, fill=False, edgecolor=FACT_COLOUR,
                               linewidth=2.5))
    ax.set_xticks(range(n_heads), [f"h{j}" for j in range(n_heads)])
    ax.set_yticks(range(n_layers), [f"L{i}" for i in range(n_layers)])
    ax.set_xlabel("head")
    return image


def plot_head_shares(
    shares: np.ndarray,
    *,
    chosen: tuple[int, int] | None = None,
    baseline: float | None = None,
    title: str | None = None,
    label: str = "attention share",
) -> Figure:
    """A (n_layers, n_heads) heatmap of a per-head statistic, each cell annotated.

    `chosen` (layer, head) is outlined; `baseline` (e.g. the uniform token share) is noted in the title.
    """
    s = np.asarray(shares, dtype=np.float64)  # (n_layers, n_heads)
    if s.ndim != 2:
        raise ValueError(f"shares must be (n_layers, n_heads); got shape {s.shape}")
    n_layers, n_heads = s.shape
    fig, axes = new_figure(1.0 * n_heads + 2.6, 0.8 * n_layers + 1.6)
    ax = axes[0, 0]
    image = _head_grid(ax, s, vmax=float(np.nanmax(s)) or 1.0, chosen=chosen)
    fig.colorbar(image, ax=ax, label=label)
    ax.set_ylabel("layer")
    full = title or label
    if baseline is not None:
        full += f"\n(uniform baseline {baseline:.3f})"
    ax.set_title(full, fontsize=10)
    return fig


def plot_heads_compared(comparison, *, title: str | None = None) -> Figure:
    """A `HeadComparison` (`rmt_lib.probes.head_comparison`): one (layer x head) grid per column on a
    shared colour scale (so the columns compare), each cell annotated, the chosen head outlined in red."""
    panels = [(name, np.asarray(v, dtype=np.float64)) for name, v in comparison.per_head.items()]  # (L, H) each
    if not panels:
        raise ValueError("no heads to compare")
    n_layers, n_heads = panels[0][1].shape
    fig, axes = new_figure(1.0 * n_heads * len(panels) + 2.4, 0.75 * n_layers + 1.7, ncols=len(panels))
    top = max(float(np.nanmax(s)) for _, s in panels) or 1.0
    image = None
    for ax, (name, s) in zip(axes[0], panels):
        image = _head_grid(ax, s, vmax=top, chosen=comparison.chosen.get(name))
        ax.set_title(f"{name}\n(uniform: {comparison.baseline[name]:.3f})", fontsize=9)
    axes[0, 0].set_ylabel("layer")
    what = {"write": "write-memory attention on fact tokens", "read": "question positions' attention on read memory"}
    fig.colorbar(image, ax=list(axes[0]), label="mean share")
    fig.suptitle(title or f"Per head: {what[comparison.kind]}; chosen head outlined", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# Attention shares per unit (e.g. per fact) against the uniform-attention baseline
# ----------------------------------------------------------------------------------------------


def plot_share_vs_baseline(series: Mapping[str, tuple[np.ndarray, np.ndarray]], *, target_lift: float | None = None,
                           xlabel: str = "uniform-attention share", ylabel: str = "attention share",
                           title: str | None = None) -> Figure:
    """One point per unit (e.g. per fact): its uniform-attention baseline (x) against the measured
    share (y), one colour per series. The line y = x is "no preference"; y = target_lift * x the target."""
    if not series:
        raise ValueError("no series to plot")
    fig, axes = new_figure(5.2, 4.2)
    ax = axes[0, 0]
    colours = [FACT_COLOUR, "#1f77b4", OTHER_COLOUR, "#2ca02c"]
    top_x = 0.0
    for (name, (x, y)), colour in zip(series.items(), colours):
        x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()  # (n,) each
        if x.shape != y.shape:
            raise ValueError(f"series {name!r}: x and y differ in length ({x.shape} vs {y.shape})")
        ax.scatter(x, y, s=10, alpha=0.6, color=colour, label=f"{name} (n={len(x)})", linewidths=0)
        top_x = max(top_x, float(x.max()) if len(x) else 0.0)
    grid = np.linspace(0.0, max(top_x * 1.1, 1e-3), 50)
    ax.plot(grid, grid, color=QUESTION_COLOUR, linestyle=":", linewidth=1, label="share = baseline (no preference)")
    if target_lift is not None:
        ax.plot(grid, np.minimum(target_lift * grid, 1.0), color=FACT_COLOUR, linestyle="--", linewidth=1,
                label=f"share = {target_lift:g} × baseline (target)")
    ax.set_xlim(0.0, grid[-1])
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_share_histograms(series: Mapping[str, np.ndarray], *, baseline: float | None = None,
                          xlabel: str = "attention share", title: str | None = None, bins: int = 30) -> Figure:
    """Distributions (fraction per bin, each series summing to one) of per-unit shares on [0, 1],
    with the uniform-attention `baseline` as a vertical line."""
    if not series:
        raise ValueError("no series to plot")
    fig, axes = new_figure(5.6, 3.2)
    ax = axes[0, 0]
    edges = np.linspace(0.0, 1.0, bins + 1)
    colours = ["#1f77b4", FACT_COLOUR, OTHER_COLOUR, "#2ca02c"]
    for (name, values), colour in zip(series.items(), colours):
        v = np.asarray(values, dtype=np.float64).ravel()
        if len(v) == 0:
            continue
        ax.hist(np.clip(v, 0.0, 1.0), bins=edges, weights=np.full(len(v), 1.0 / len(v)), alpha=0.55, color=colour,
                label=f"{name} (n={len(v)})")
    if baseline is not None:
        ax.axvline(baseline, color=QUESTION_COLOUR, linestyle="--", linewidth=1, label=f"uniform attention ({baseline:.3f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
