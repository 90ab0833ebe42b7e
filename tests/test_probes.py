"""rmt_lib.probes: the pure statistics on hand-built data, then probe_samples on a tiny random model."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rmt_lib import probes, stats
from rmt_lib.probes import AttentionLayout
from tests.helpers import SEGMENT, background, model, tokenizer  # noqa: F401 (fixtures)

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
    assert stats.roc_auc(change, is_fact) == 1.0
    assert stats.roc_auc(-change, is_fact) == 0.0
    # (3 + 4) / 2 over (0 + 0 + 0.5) / 3
    assert probes.change_ratio(change, is_fact) == pytest.approx(3.5 / (0.5 / 3))


@pytest.mark.parametrize("scores, labels, expected", [
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # the textbook example
    ([1, 1, 2, 0], [1, 0, 1, 0], 0.875),  # one tied pair counts one half
    ([5, 5, 5, 5], [1, 0, 1, 0], 0.5),  # all tied: chance
    ([3, 2, 1], [True, False, False], 1.0),
])
def test_auc_known_values(scores, labels, expected):
    assert stats.roc_auc(scores, labels) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auc_equals_pairwise_definition(pairs):
    scores = np.array([p[0] for p in pairs], dtype=float)  # small integers: many ties
    labels = np.array([p[1] for p in pairs])
    if labels.all() or not labels.any():
        with pytest.raises(ValueError, match="both classes"):
            stats.roc_auc(scores, labels)
        return
    pos, neg = scores[labels], scores[~labels]
    brute = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert stats.roc_auc(scores, labels) == pytest.approx(brute)
    assert stats.roc_auc(-scores, labels) == pytest.approx(1.0 - brute)


def test_auc_rejects_mismatched_lengths_and_bad_labels():
    with pytest.raises(ValueError, match="length"):
        stats.roc_auc([1, 2], [True])
    with pytest.raises(ValueError, match="boolean"):
        stats.roc_auc([1, 2], [0, 2])


def test_change_ratio_with_explicit_distractors_ignores_question_segment():
    change = np.array([1.0, 10.0, 1.0, 100.0])  # segment 3 is the question segment
    is_fact = np.array([False, True, False, False])
    is_distractor = np.array([True, False, True, False])
    assert probes.change_ratio(change, is_fact, is_distractor) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="zero"):
        probes.change_ratio(np.array([0.0, 1.0]), np.array([False, True]))


def test_uniformity_p_value_tells_an_even_spread_from_a_lopsided_one():
    from rmt_lib.stats import uniformity_p_value
    even = np.random.default_rng(1).multinomial(3200, np.full(32, 1 / 32))
    assert uniformity_p_value(even) > 0.01 and uniformity_p_value(even) == uniformity_p_value(even)
    lopsided = np.array([200] + [100] * 31)
    assert uniformity_p_value(lopsided, n_draws=999) == pytest.approx(1 / 1000)
    with pytest.raises(ValueError, match="two non-negative counts"):
        uniformity_p_value([5])


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).normal(2.0, 1.0, size=300)
    a = stats.bootstrap_mean(values, seed=0)
    b = stats.bootstrap_mean(values, seed=0)
    c = stats.bootstrap_mean(values, seed=1)
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
    iv = stats.bootstrap_mean([0.5] * 10)
    assert iv.low == iv.estimate == iv.high == 0.5


def test_bootstrap_drops_undefined_resamples():
    labels = np.array([True, False, False, False])
    scores = np.array([1.0, 0.0, 0.0, 0.0])
    iv = stats.bootstrap_interval(4, lambda idx: stats.roc_auc(scores[idx], labels[idx]), n_resamples=200)
    assert iv.estimate == 1.0 and iv.low == iv.high == 1.0


@pytest.mark.parametrize("kwargs", [dict(confidence=1.0), dict(n_resamples=0)])
def test_bootstrap_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        stats.bootstrap_mean([1.0, 2.0], **kwargs)


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


# --- pooled AUC and summaries on hand-built entries ---------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.integers(0, 3)), min_size=2, max_size=25))
def test_pooled_auc_with_weights_equals_auc_of_repeated_data(rows):
    scores = np.array([r[0] for r in rows], float)
    labels = np.array([r[1] for r in rows])
    weights = np.array([r[2] for r in rows])
    rep = np.repeat(np.arange(len(rows)), weights)
    if labels[rep].all() or not labels[rep].any():
        return
    assert stats.pooled_auc(scores, labels, weights) == pytest.approx(stats.roc_auc(scores[rep], labels[rep]))
    if labels.any() and not labels.all():
        assert stats.pooled_auc(scores, labels) == pytest.approx(stats.roc_auc(scores, labels))


def _entry(change, facts, correct=True, write=(), read=None):
    S = len(change)
    return {"n_segments": S, "memory_change": np.asarray(change, float), "fact_segments": list(facts),
            "question_segment": S - 1, "question_segments": [S - 1], "correct": correct,
            "write_attention": list(write), "read_attention": read}


def test_summary_of_hand_built_entries():
    # facts change the memory by 3-4, distractors by 0-1, the question segment by 10 and the first
    # segment (from the initial memory) by 7: both are left out of "auc" but not of "auc_all_other"
    entries = [_entry([7.0, 3.0, 0.2, 4.0, 0.5, 10.0], [1, 3]), _entry([3.5, 1.0, 0.1, 0.0, 10.0], [0], correct=False)]
    s = probes.summarize(entries, n_resamples=200)
    mc = s["memory_change"]
    assert mc["auc"]["estimate"] == 1.0 and mc["auc"]["low"] == 1.0
    # all other: 3 facts x 8 others (2 question, 1 first); each fact loses to both 10s and to the 7
    assert mc["auc_all_other"]["estimate"] == pytest.approx(1 - 9 / 24)
    assert mc["ratio"]["estimate"] == pytest.approx((3 + 4 + 3.5) / 3 / ((0.2 + 0.5 + 1.0 + 0.1 + 0.0) / 5))
    assert mc["question_mean"]["estimate"] == 10.0 and mc["first_mean"]["estimate"] == 7.0
    assert {k: v for k, v in mc.items() if k.startswith("n_")} == {
        "n_fact_segments": 3, "n_distractor_segments": 5, "n_first_segments": 1, "n_question_segments": 2}
    assert s["accuracy"]["estimate"] == 0.5
    assert s["write_attention"] is None and s["read_attention"] is None
    assert s["bootstrap"] == {"n_resamples": 200, "confidence": 0.95, "seed": 0, "unit": "sample", "method": "percentile"}


def test_segment_roles_priority():
    roles = probes.segment_roles(_entry([1.0, 2.0, 3.0, 4.0], [3]))  # a fact in the question segment
    assert roles["fact"].tolist() == [False, False, False, True]
    assert roles["first"].tolist() == [True, False, False, False]
    assert not roles["question"].any() and roles["distractor"].tolist() == [False, True, True, False]
    assert probes.segment_roles(_entry([1.0, 2.0], [0]))["first"].sum() == 0  # a fact in segment 0 is a fact
    assert sum(m.astype(int) for m in roles.values()).tolist() == [1, 1, 1, 1]  # one role each


def test_head_choice_is_made_on_other_samples_than_it_is_measured_on():
    rng = np.random.default_rng(0)
    entries = []
    for i in range(40):
        share = rng.uniform(0.1, 0.2, size=(2, 3))
        share[1, 2] = 0.8  # one head writes the facts
        write = [{"fact": 0, "segment": 1, "token_share": 0.2, "share": share}]
        read = {"segment": 4, "query_positions": [3], "memory_baseline": 0.25, "memory_share": share[::-1] / 2}
        entries.append(_entry([0.1, 2.0, 0.1, 0.2, 0.3], [1], write=write, read=read))
    s = probes.summarize(entries, n_resamples=100, seed=3)
    w = s["write_attention"]
    assert (w["chosen_head"]["layer"], w["chosen_head"]["head"]) == (1, 2)
    assert w["chosen_head"]["share"]["estimate"] == pytest.approx(0.8)
    assert w["chosen_head"]["lift"]["estimate"] == pytest.approx(4.0)
    assert w["chosen_head"]["share"]["n"] == s["head_selection"]["n_measured"] == 20
    assert w["token_share"]["estimate"] == pytest.approx(0.2)
    np.testing.assert_allclose(w["per_head_share"], np.mean([e["write_attention"][0]["share"] for e in entries], 0))
    r = s["read_attention"]
    assert (r["chosen_head"]["layer"], r["chosen_head"]["head"]) == (0, 2)
    assert r["memory_baseline"]["estimate"] == 0.25
    assert r["prose_control"] is None  # no sample has prose positions in its question segment


def test_the_prose_control_compares_question_and_prose_lifts_paired():
    entries = []
    for i in range(20):
        read = {"segment": 4, "query_positions": [3], "memory_baseline": 0.25, "memory_share": np.full((2, 2), 0.5),
                "prose_positions": [0, 1, 2], "prose_baseline": 0.4, "prose_share": np.full((2, 2), 0.4 + i / 1000)}
        entries.append(_entry([0.1, 2.0, 0.1, 0.2, 0.3], [1], read=read))
    control = probes.summarize(entries, n_resamples=100, seed=3)["read_attention"]["prose_control"]
    assert control["n"] == 20 and control["question_lift"]["estimate"] == pytest.approx(2.0)
    prose_lift = np.mean([0.4 + i / 1000 for i in range(20)]) / 0.4
    assert control["prose_lift"]["estimate"] == pytest.approx(prose_lift)
    assert control["lift_difference"]["estimate"] == pytest.approx(2.0 - prose_lift)
    assert control["lift_difference"]["low"] <= control["lift_difference"]["estimate"] <= control["lift_difference"]["high"]
    text = probes.prose_control_finding({"prose_control": control})
    assert "above zero" in text and "the question attends to the memory more" in text and "over 20 samples" in text
    flat = dict(control, lift_difference={"estimate": 0.0, "low": -0.1, "high": 0.1})
    assert "no more than the prose" in probes.prose_control_finding({"prose_control": flat})
    assert "could not be measured" in probes.prose_control_finding({"prose_control": None})


def test_chosen_head_is_measured_only_on_samples_it_was_not_chosen_on():
    selection = probes.summary._selection_mask(30, 0.5, seed=7)
    entries = []
    for selected in selection:
        share = np.full((1, 2), 0.1)
        share[0, 0 if selected else 1] = 0.9  # head 0 wins on the selection samples only
        entries.append(_entry([0.1, 2.0, 0.1], [1], write=[{"fact": 0, "segment": 1, "token_share": 0.1, "share": share}]))
    chosen = probes.summarize(entries, n_resamples=20, seed=7)["write_attention"]["chosen_head"]
    assert (chosen["layer"], chosen["head"]) == (0, 0)
    assert chosen["share"]["estimate"] == pytest.approx(0.1)  # its score where it was not chosen


def test_summary_rejects_no_samples():
    with pytest.raises(ValueError, match="at least one"):
        probes.summarize([])


# --- probe_samples on a tiny random model -------------------------------------------------------

torch = pytest.importorskip("torch")

from rmt_lib.data import Sample, encode_sample, generate_samples  # noqa: E402
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig  # noqa: E402



@pytest.fixture(scope="module")
def samples(background, tokenizer):
    """Two lengths interleaved, so batching by length must put results back in input order."""
    short = generate_samples("qa1", n_samples=5, n_segments=3, segment_size=SEGMENT, n_facts=2,
                             background=background, seed=0, tokenizer=tokenizer)
    long = generate_samples("qa1", n_samples=5, n_segments=5, segment_size=SEGMENT, n_facts=2,
                            background=background, seed=1, tokenizer=tokenizer)
    return [s for pair in zip(short, long) for s in pair]


@pytest.fixture(scope="module")
def result(model, tokenizer, samples):
    return probes.probe_samples(model, tokenizer, samples, batch_size=3, progress=False, n_resamples=50)


def test_probe_entries_follow_the_contract(result, samples):
    assert len(result["samples"]) == len(samples)
    for entry, sample in zip(result["samples"], samples):
        S = entry["n_segments"]
        assert S == (3 if len(entry["segment_char_spans"]) == 3 else 5)
        assert entry["memory_change"].shape == (S,)
        d = entry["distance_matrix"]
        assert d.shape == (S + 1, S + 1)
        assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
        assert np.array_equal(d[np.arange(S), np.arange(1, S + 1)], entry["memory_change"])
        assert entry["fact_segments"] == list(sample.fact_segments)
        assert entry["target"] == sample.target


def test_segment_spans_tile_the_input(result, samples):
    for entry, sample in zip(result["samples"], samples):
        spans = entry["segment_char_spans"]
        assert spans[0][0] == 0 and spans[-1][1] == len(sample.input)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no gaps, no overlaps
        assert all(a <= b for a, b in spans)
        # the segment of a fact holds the end of its text (a fact cut by a boundary starts one segment earlier)
        for (_, c1), s in zip(entry["fact_char_spans"], entry["fact_segments"]):
            assert spans[s][0] < c1 <= spans[s][1]


def test_probe_agrees_with_the_models_own_forward_pass(result, model, tokenizer, samples):
    from rmt_lib.data import LOCATIONS

    for entry, sample in zip(result["samples"], samples):
        enc = encode_sample(sample, tokenizer, SEGMENT)
        mask = None if enc.attention_mask.all() else torch.from_numpy(enc.attention_mask[None])
        with torch.no_grad():
            out = model(torch.from_numpy(enc.input_ids[None]), attention_mask=mask, capture_memory=True)
        assert entry["prediction"] == LOCATIONS[int(out.logits[0].argmax())]
        np.testing.assert_allclose(entry["memory_change"], probes.memory_change(out.memory_states[0].numpy()),
                                   rtol=1e-4, atol=1e-5)


def test_attention_numbers_are_shares(result):
    for entry in result["samples"]:
        assert len(entry["write_attention"]) == 2
        for w in entry["write_attention"]:
            assert w["share"].shape == (2, 2) and np.all((w["share"] >= 0) & (w["share"] <= 1))
            assert 0 < w["token_share"] < 1
        read = entry["read_attention"]
        assert read["segment"] == entry["n_segments"] - 1
        assert np.all((read["memory_share"] > 0) & (read["memory_share"] < 1))
        assert 0 < read["memory_baseline"] < 1
        assert not set(read["prose_positions"]) & set(read["query_positions"])  # the control has no question
        assert read["prose_share"].shape == read["memory_share"].shape and 0 < read["prose_baseline"] < 1
    summary = result["summary"]
    assert summary["n_samples"] == 10 and summary["n_segments"] == [3, 5]
    assert summary["write_attention"]["n_units"] == 20 and summary["read_attention"]["n_units"] == 10


def test_small_attention_budget_gives_the_same_numbers(result, model, tokenizer, samples):
    tight = probes.probe_samples(model, tokenizer, samples, batch_size=3, progress=False, n_resamples=50,
                                 attention_budget_bytes=1)  # one sample per pass
    for a, b in zip(result["samples"], tight["samples"]):
        np.testing.assert_allclose(a["memory_change"], b["memory_change"], rtol=1e-4, atol=1e-6)
        for wa, wb in zip(a["write_attention"], b["write_attention"]):
            np.testing.assert_allclose(wa["share"], wb["share"], rtol=1e-4, atol=1e-6)


def test_batches_respect_size_length_and_budget():
    class Enc:
        def __init__(self, T, facts):
            self.input_ids, self.fact_segments, self.n_segments = np.zeros(T), facts, T // 4

    encoded = [Enc(16, (0,)), Enc(8, (0,)), Enc(16, (1,)), Enc(16, (2,)), Enc(8, (1,))]
    plain = list(probes.run._batches(encoded, 2, "none", 1000))
    assert [b[0] for b in plain] == [[1, 4], [0, 2], [3]] and all(not b[1] for b in plain)
    budget = list(probes.run._batches(encoded, 10, "facts_and_question", 4))  # 2 samples x 2 segments at most
    for idx, wanted in budget:
        assert len(idx) * len(wanted) <= 4 or len(idx) == 1
        assert all(set(encoded[i].fact_segments) | {encoded[i].n_segments - 1} <= wanted for i in idx)
    assert sorted(i for idx, _ in budget for i in idx) == list(range(5))


def test_user_sample_without_spans_is_found_by_the_grammar(model, tokenizer):
    text = ("It was a fine day and she was glad of it. Mary went to the garden. " * 2
            + "Nothing else was said of the matter for some time. Daniel journeyed to the office. The end came.")
    sample = Sample.from_dict({"input": text, "question": "Where is Mary?", "target": "garden", "extra": 1})
    entry = probes.probe_samples(model, tokenizer, [sample], progress=False, n_resamples=10)["samples"][0]
    assert len(entry["fact_char_spans"]) == 3
    assert [text[a:b] for a, b in entry["fact_char_spans"]][-1] == "Daniel journeyed to the office."
    assert len(entry["fact_segments"]) == 3 and len(entry["write_attention"]) == 3


def test_attention_segments_none_skips_attention(model, tokenizer, samples):
    r = probes.probe_samples(model, tokenizer, samples[:2], progress=False, attention_segments="none", n_resamples=10)
    assert all(e["write_attention"] == [] and e["read_attention"] is None for e in r["samples"])
    assert r["summary"]["write_attention"] is None
    with pytest.raises(ValueError, match="attention_segments"):
        probes.probe_samples(model, tokenizer, samples[:1], progress=False, attention_segments="all")


def test_baseline_model_without_memory_is_refused(tokenizer, samples):
    baseline = RecurrentMemoryTransformer(RMTConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_layers=1,
                                                    num_heads=2, segment_size=SEGMENT, num_memory_tokens=0,
                                                    recurrent=False))
    with pytest.raises(ValueError, match="no memory"):
        probes.probe_samples(baseline, tokenizer, samples[:1], progress=False)


def test_json_is_written_atomically_and_round_trips(result, tmp_path):
    import json

    path = probes.write_probe_json(result, tmp_path / "out" / "probe.json")
    data = json.loads(path.read_text())
    assert [p.name for p in path.parent.iterdir()] == ["probe.json"]  # no temporary file left
    for entry, original in zip(data["samples"], result["samples"]):
        assert set(entry) >= {"n_segments", "segment_char_spans", "memory_change", "distance_matrix"}
        S, d = entry["n_segments"], entry["distance_matrix"]
        assert len(entry["memory_change"]) == S and len(d) == S + 1
        assert all(d[i][j] == d[j][i] for i in range(S + 1) for j in range(S + 1))
        assert all(d[s][s + 1] == entry["memory_change"][s] for s in range(S))
        np.testing.assert_allclose(entry["memory_change"], original["memory_change"], rtol=1e-5)
    assert data["summary"]["memory_change"]["auc"]["n"] == 10


def test_capture_sample_gives_panel_maps(model, tokenizer, samples, result):
    cap = probes.capture_sample(model, tokenizer, samples[0])
    np.testing.assert_allclose(cap.entry["memory_change"], result["samples"][0]["memory_change"], rtol=1e-4, atol=1e-6)
    w, tokens, mask = cap.write_map(0)
    assert w.shape == (2, SEGMENT) and len(tokens) == SEGMENT and mask.shape == (SEGMENT,) and mask.any()
    head = cap.write_map(0, layer=1, head=0)[0]
    np.testing.assert_allclose(head, cap.attentions[cap.entry["fact_segments"][0]][1, 0, -2:, 2:2 + SEGMENT])
    r, labels = cap.read_map()
    assert r.shape == (len(labels), 2) and labels[-1].endswith("(answer)")
    assert "?" in labels[-1]
    with pytest.raises(ValueError, match="fact 5"):
        cap.write_map(5)


# --- the probe CLI ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    from rmt_lib import paths
    from rmt_lib.model import save_pretrained

    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "model", tokenizer_path=paths.TOKENIZER_PATH)


def test_probe_cli_writes_the_contract(checkpoint, samples, tmp_path, capsys):
    import json

    from rmt_lib.cli import main
    from rmt_lib.data import write_jsonl

    src = write_jsonl(samples[:4], tmp_path / "in.jsonl")
    out = tmp_path / "probe.json"
    assert main(["probe", "--checkpoint", str(checkpoint), "--input", str(src), "--output", str(out),
                 "--no-progress", "--batch-size", "2"]) == 0
    data = json.loads(out.read_text())
    assert [e["n_segments"] for e in data["samples"]] == [3, 5, 3, 5]  # input order
    assert all(len(e["memory_change"]) == e["n_segments"] for e in data["samples"])
    assert "auc" in data["summary"]["memory_change"] and data["summary"]["write_attention"]["n_units"] == 8
    assert "probed 4 samples" in capsys.readouterr().out


def test_probe_cli_errors_are_clear_and_write_nothing(checkpoint, tmp_path, capsys, monkeypatch):
    from rmt_lib import paths
    from rmt_lib.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x", "question": "Where is Mary?", "target": "garden"}\n{not json\n')
    out = tmp_path / "probe.json"
    assert main(["probe", "--checkpoint", str(checkpoint), "--input", str(bad), "--output", str(out)]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err and not out.exists()
    monkeypatch.setattr(paths, "SHIPPED_MODEL_DIR", tmp_path / "no-model")
    good = tmp_path / "good.jsonl"
    good.write_text('{"input": "Mary went to the garden.", "question": "Where is Mary?", "target": "garden"}\n')
    assert main(["probe", "--input", str(good), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no shipped model" in err and "--checkpoint" in err and not out.exists()


def test_change_by_role_pools_segments():
    roles = probes.change_by_role([_entry([0.5, 3.0, 0.2, 4.0, 10.0], [1, 3]), _entry([3.5, 1.0, 9.0], [0])])
    assert roles["fact"].tolist() == [3.0, 4.0, 3.5]
    assert roles["distractor"].tolist() == [0.2, 1.0]
    assert roles["first"].tolist() == [0.5]
    assert roles["question"].tolist() == [10.0, 9.0]


def test_probe_generated_is_reproducible(model, tokenizer, background):
    kw = dict(n_segments=3, n_samples=3, seed=2, background=background, progress=False, n_resamples=20)
    a = probes.probe_generated(model, tokenizer, **kw)
    b = probes.probe_generated(model, tokenizer, **kw)
    assert a["summary"] == b["summary"]
    assert all(len(e["fact_segments"]) == 2 for e in a["samples"])


def test_probe_drift_summarises_how_the_drift_comes_about(model, tokenizer, background):
    out = probes.probe_drift(model, tokenizer, n_samples=3, n_segments=12, min_stretch=3, background=background)
    records = out["records"]
    assert len(records) == 3 and all(r["stretch"] >= 3 and r["path"] >= r["drift"] - 1e-9 for r in records)
    for key, per_sample in (("ratio", [r["drift"] / r["jump"] for r in records]),
                            ("path_over_jump", [r["path"] / r["jump"] for r in records]),
                            ("straightness", [r["drift"] / r["path"] for r in records])):
        assert out[key]["estimate"] == pytest.approx(float(np.median(per_sample)))
        assert out[key]["low"] <= out[key]["estimate"] <= out[key]["high"]
    assert out["stretch"] == float(np.median([r["stretch"] for r in records]))


def test_drift_conclusion_follows_the_check_and_says_how_the_memory_drifts():
    drift = {"straightness": {"low": 0.05, "high": 0.15}, "stretch": 100, "ratio": {"estimate": 0.9},
             "path_over_jump": {"estimate": 10.0}}
    assert probes.drift_conclusion(drift, met=True).startswith("The paper's blocks are reproduced")
    text = probes.drift_conclusion(drift, met=False)
    assert "only half reproduced" in text and "about 0.10 of a fact's jump" in text and "wanders, ending 0.90" in text


def test_reset_finding_reads_the_interval_against_chance():
    assert probes.reset_finding({"low": 0.16, "high": 0.27}, 1 / 6) == (
        "not distinguishable from", "there is no sign that the answer reaches the fact without the memory")
    assert probes.reset_finding({"low": 0.3, "high": 0.4}, 1 / 6)[0] == "above"


def test_drift_shape_compares_the_steps_with_a_random_walk():
    def shape(low, high, stretch=100):  # a random walk: straightness about 0.1
        return probes.drift_shape({"straightness": {"low": low, "high": high}, "stretch": stretch})
    assert "one direction" in shape(0.4, 0.6)
    assert "cancel" in shape(0.01, 0.04)
    assert "random directions would" in shape(0.05, 0.15) and "wanders" in shape(0.05, 0.15)


def test_drift_compares_a_distractor_stretch_with_the_next_facts_jump():
    # 8 segments of 4 tokens; fact A in segment 1, fact B cut across segments 5 and 6.
    states = np.zeros((9, 1, 2))
    states[2:, 0, 0] = 1.0  # A moves the memory by 1 ...
    states[3:6, 0, 1] = [0.1, 0.2, 0.3]  # ... the distractors 2-4 drift it by 0.3 in all ...
    states[7:, 0, 0] = 3.0  # ... and B (segments 5-6) jumps by 2 (from state 5 to state 7)
    states[6, 0, 0] = 2.0
    entry = {"n_segments": 8, "distance_matrix": probes.distance_matrix(states), "question_token_span": [30, 32],
             "fact_token_spans": [[20, 26], [4, 8]]}
    (record,) = probes.drift(entry, min_stretch=3)
    assert record["stretch"] == 3  # segments 2, 3 and 4 lie between A (ends in 1) and B (starts in 5)
    assert record["drift"] == pytest.approx(np.hypot(0, 0.3)) and record["jump"] == pytest.approx(np.hypot(2, 0.3))
    assert record["ratio"] == pytest.approx(record["drift"] / record["jump"])
    assert record["path"] == pytest.approx(0.3)  # every step went the same way: drift is the whole path
    assert probes.drift(entry, min_stretch=4) == []
    states[4, 0, 1] = -0.1  # a step back: the way grows to 0.1 + 0.2 + 0.4, the drift stays 0.3
    entry["distance_matrix"] = probes.distance_matrix(states)
    (record,) = probes.drift(entry, min_stretch=3)
    assert record["path"] == pytest.approx(0.7) and record["drift"] == pytest.approx(0.3)
