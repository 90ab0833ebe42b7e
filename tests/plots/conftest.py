"""Shared by the plot tests: a headless backend, a check that no plot touches pyplot's global state,
and one small memory trajectory with known fact segments."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (only to check that plots never touch pyplot's state)

from rmt_lib import probes  # noqa: E402

S, FACTS, QUESTION = 12, (2, 7), 11  # the trajectory's segments, fact segments and question segment


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plot function opened a pyplot figure (hidden global state)"


@pytest.fixture(scope="session")
def trajectory():
    """(distance (S+1, S+1), change (S,)) of a memory that jumps at the fact segments."""
    rng = np.random.default_rng(0)
    steps = rng.normal(0, 0.05, (S, 2, 3))  # (S, M, D)
    for f in FACTS:
        steps[f] += 1.0
    states = np.concatenate([np.zeros((1, 2, 3)), np.cumsum(steps, 0)])  # (S+1, M, D), index 0 = initial
    return probes.distance_matrix(states), probes.memory_change(states)


def tick_colours(axis) -> dict[str, str]:
    """tick label text -> its colour"""
    return {t.get_text(): matplotlib.colors.to_hex(t.get_color()) for t in axis.get_ticklabels()}
