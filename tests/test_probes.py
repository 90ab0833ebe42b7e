"""rmt_lib.probes: the pure statistics on hand-built data, then probe_samples on a tiny random model."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rmt_lib import probes
from rmt_lib.probes import AttentionLayout

# A hand-built trajectory of 2-d memory states: segment 1 and 3 hold facts (big moves), the others
# barely move the memory. Index 0 is the initial memory.
TRAJECTORY = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [3.0, 0.0], [3.0, 4.0], [3.0, 4.5]])
FACT_SEGMENTS = (1, 3)


def test_memory_change_of_hand_built_trajectory():
    np.testing.assert_allclose(probes.memory_change(TRAJECTORY), [0.0, 3.0, 0.0, 4.0, 0.5])


def test_distance_matrix_of_hand_built_trajectory():
    d = probes.distance_matrix(TRAJECTORY)
    assert d.shape == (6, 6)
    assert d[0, 2] == pytest.approx(3.0)
    assert d[0, 4] == pytest.approx(5.0)  # the 3-4-5 triangle
    assert d[1, 5] == pytest.approx(np.hypot(3.0, 4.5))
    assert d[2, 4] == pytest.approx(4.0)


def test_distance_matrix_flattens_memory_tokens():
    states = np.zeros((3, 2, 2))  # (N, M, D)
    states[1, 0, 0] = 1.0
    states[2, 1, 1] = 1.0
    d = probes.distance_matrix(states)
    np.testing.assert_allclose(d, [[0, 1, 1], [1, 0, np.sqrt(2)], [1, np.sqrt(2), 0]])


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
                  elements=st.floats(-100, 100, allow_nan=False)))
def test_distance_matrix_is_a_metric_matrix(states):
    d = probes.distance_matrix(states)
    n = states.shape[0]
    assert d.shape == (n, n)
    assert np.array_equal(d, d.T)  # exactly symmetric
    assert np.all(np.diag(d) == 0.0)  # exactly zero diagonal
    assert np.all(d >= 0.0)
    # agrees with direct differences, and its first off-diagonal IS memory_change
    flat = states.reshape(n, -1)
    direct = np.linalg.norm(flat[:, None] - flat[None, :], axis=-1)
    np.testing.assert_allclose(d, direct, atol=1e-6 * (1 + np.abs(flat).max()))
    change = probes.memory_change(states)
    assert np.array_equal(d[np.arange(n - 1), np.arange(1, n)], change)


def test_distance_matrix_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        probes.distance_matrix(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        probes.distance_matrix(np.zeros(3))


def test_auc_of_hand_built_trajectory_is_perfect():
    change = probes.memory_change(TRAJECTORY)
    is_fact = np.isin(np.arange(len(change)), FACT_SEGMENTS)
    assert probes.roc_auc(change, is_fact) == 1.0
    assert probes.roc_auc(-change, is_fact) == 0.0
    # (3 + 4) / 2 over (0 + 0 + 0.5) / 3
    assert probes.change_ratio(change, is_fact) == pytest.approx(3.5 / (0.5 / 3))


@pytest.mark.parametrize("scores, labels, expected", [
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # the textbook example
    ([1, 1, 2, 0], [1, 0, 1, 0], 0.875),  # one tied pair counts one half
    ([5, 5, 5, 5], [1, 0, 1, 0], 0.5),  # all tied: chance
    ([3, 2, 1], [True, False, False], 1.0),
])
def test_auc_known_values(scores, labels, expected):
    assert probes.roc_auc(scores, labels) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auc_equals_pairwise_definition(pairs):
    scores = np.array([p[0] for p in pairs], dtype=float)  # small integers: many ties
    labels = np.array([p[1] for p in pairs])
    if labels.all() or not labels.any():
        with pytest.raises(ValueError, match="both classes"):
            probes.roc_auc(scores, labels)
        return
    pos, neg = scores[labels], scores[~labels]
    brute = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert probes.roc_auc(scores, labels) == pytest.approx(brute)
    assert probes.roc_auc(-scores, labels) == pytest.approx(1.0 - brute)


def test_auc_rejects_mismatched_lengths_and_bad_labels():
    with pytest.raises(ValueError, match="length"):
        probes.roc_auc([1, 2], [True])
    with pytest.raises(ValueError, match="boolean"):
        probes.roc_auc([1, 2], [0, 2])


def test_change_ratio_with_explicit_distractors_ignores_question_segment():
    change = np.array([1.0, 10.0, 1.0, 100.0])  # segment 3 is the question segment
    is_fact = np.array([False, True, False, False])
    is_distractor = np.array([True, False, True, False])
    assert probes.change_ratio(change, is_fact, is_distractor) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="zero"):
        probes.change_ratio(np.array([0.0, 1.0]), np.array([False, True]))


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).normal(2.0, 1.0, size=300)
    a = probes.bootstrap_mean(values, seed=0)
    b = probes.bootstrap_mean(values, seed=0)
    c = probes.bootstrap_mean(values, seed=1)
    assert a == b  # same seed, same interval
    assert a != c  # seed 0 is a seed, not "no seed"
    assert a.estimate == pytest.approx(values.mean())
    assert a.low < a.estimate < a.high
    # the normal-theory 95% interval has half-width 1.96 * sd / sqrt(n)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (a.high - a.low) / 2 == pytest.approx(half, rel=0.15)
    assert a.n == 300 and a.confidence == 0.95
    assert set(a.to_dict()) == {"estimate", "low", "high", "confidence", "n"}


def test_bootstrap_constant_values_give_a_point_interval():
    iv = probes.bootstrap_mean([0.5] * 10)
    assert iv.low == iv.estimate == iv.high == 0.5


def test_bootstrap_drops_undefined_resamples():
    labels = np.array([True, False, False, False])
    scores = np.array([1.0, 0.0, 0.0, 0.0])
    iv = probes.bootstrap_interval(4, lambda idx: probes.roc_auc(scores[idx], labels[idx]), n_resamples=200)
    assert iv.estimate == 1.0 and iv.low == iv.high == 1.0


@pytest.mark.parametrize("kwargs", [dict(confidence=1.0), dict(n_resamples=0)])
def test_bootstrap_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        probes.bootstrap_mean([1.0, 2.0], **kwargs)


# --- attention shares ---------------------------------------------------------------------------

LAYOUT = AttentionLayout(num_memory_tokens=2, segment_size=4)  # P = 8: [r r | t t t t | w w]


def _uniform_causal(n_layers=1, n_heads=1, layout=LAYOUT) -> np.ndarray:
    P = layout.size
    a = np.tril(np.ones((P, P)))
    a /= a.sum(-1, keepdims=True)
    return np.broadcast_to(a, (n_layers, n_heads, P, P)).copy()


def test_layout_slices():
    assert (LAYOUT.size, LAYOUT.read, LAYOUT.segment, LAYOUT.write) == (8, slice(0, 2), slice(2, 6), slice(6, 8))
    with pytest.raises(ValueError):
        AttentionLayout(0, 4)


def test_uniform_write_attention_equals_token_share():
    fact = np.array([False, True, True, False])
    share = probes.write_attention_share(_uniform_causal(2, 3), LAYOUT, fact)
    assert share.shape == (2, 3)
    np.testing.assert_allclose(share, probes.token_share(fact))
    assert probes.token_share(fact) == 0.5


def test_write_attention_share_hand_built():
    a = np.zeros((1, 2, 8, 8))
    # head 0: both write rows put 0.6 on fact token (segment position 1 = column 3) and 0.2 on
    # another token, 0.2 on read memory (which must not count)
    a[0, 0, 6:, 3] = 0.6
    a[0, 0, 6:, 4] = 0.2
    a[0, 0, 6:, 0] = 0.2
    a[0, 1, 6:, 2:6] = 0.25  # head 1: uniform over the segment
    fact = np.array([False, True, False, False])
    share = probes.write_attention_share(a, LAYOUT, fact)
    np.testing.assert_allclose(share, [[0.75, 0.25]])
    assert probes.choose_head(share[None]) == (0, 0)


def test_write_attention_ignores_padding():
    a = np.zeros((1, 1, 8, 8))
    a[0, 0, 6:, 3] = 0.5  # fact token
    a[0, 0, 6:, 5] = 0.5
    fact = np.array([False, True, False, False])
    valid = np.array([False, True, True, True])  # position 0 is left padding
    assert probes.write_attention_share(a, LAYOUT, fact, valid)[0, 0] == pytest.approx(0.5)
    assert probes.token_share(fact, valid) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no"):
        probes.write_attention_share(a, LAYOUT, np.array([True, False, False, False]), valid)


def test_read_attention_share_and_uniform_baseline():
    a = _uniform_causal()
    # the last segment position sees 2 memory keys and 4 tokens: uniform share 2/6
    share = probes.read_attention_share(a, LAYOUT, [3])
    assert share[0, 0] == pytest.approx(2 / 6)
    assert probes.read_memory_baseline(LAYOUT, [3]) == pytest.approx(2 / 6)
    # two rows, 2/(2+3) and 2/(2+4), averaged; padding at position 0 removes one visible key
    assert probes.read_memory_baseline(LAYOUT, [2, 3]) == pytest.approx((2 / 5 + 2 / 6) / 2)
    valid = np.array([False, True, True, True])
    assert probes.read_memory_baseline(LAYOUT, [3], valid) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="segment"):
        probes.read_attention_share(a, LAYOUT, [4])
    with pytest.raises(ValueError, match="no question"):
        probes.read_memory_baseline(LAYOUT, [])


def test_attention_shape_is_checked():
    with pytest.raises(ValueError, match=r"\(n_layers, n_heads, 8, 8\)"):
        probes.write_attention_share(np.zeros((1, 7, 7)), LAYOUT, np.ones(4, bool))


def test_choose_head_takes_the_largest_mean_and_breaks_ties_low():
    scores = np.zeros((3, 2, 2))
    scores[:, 1, 0] = [0.9, 0.1, 0.8]  # mean 0.6
    scores[:, 0, 1] = [0.5, 0.5, 0.5]  # mean 0.5, but never the top of a single sample
    assert probes.choose_head(scores) == (1, 0)
    assert probes.choose_head(np.ones((2, 2, 2))) == (0, 0)
    with pytest.raises(ValueError):
        probes.choose_head(np.zeros((0, 2, 2)))


def test_attention_map_selects_or_averages():
    a = np.arange(2 * 2 * 8 * 8, dtype=float).reshape(2, 2, 8, 8)
    block = probes.attention_map(a, LAYOUT.write, LAYOUT.segment, layer=1, head=0)
    np.testing.assert_array_equal(block, a[1, 0, 6:, 2:6])
    mean = probes.attention_map(a, LAYOUT.write, LAYOUT.segment)
    np.testing.assert_allclose(mean, a.mean((0, 1))[6:, 2:6])
