"""What the memory holds: the decoding probe, memory patching and the decoded fact over time, on hand-built
states and on a tiny random RMT (the measurements on the shipped model are the chapter's)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from rmt_lib import budgets, probes
from rmt_lib.data import ACTORS, LOCATIONS, encode_sample, generate_samples
from rmt_lib.data.batching import NOT_SEEN
from rmt_lib.data.grammar import parse_fact, parse_question
from rmt_lib.model.capture import run_with_cache
from rmt_lib.probes.decode import LinearProbe, MemoryStates
from rmt_lib.probes.tracking import _wrong_tail
from tests.helpers import SEGMENT, background, model, tokenizer  # noqa: F401 (fixtures)



@pytest.fixture(scope="module")
def samples(background, tokenizer):
    return generate_samples("qa1", n_samples=12, n_segments=6, segment_size=SEGMENT, n_facts=2,
                            background=background, seed=0, tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------------------------
# The model continues from a given memory state.


def test_continuing_from_a_state_equals_the_uninterrupted_run(model, samples, tokenizer):
    enc = encode_sample(samples[0], tokenizer, SEGMENT)
    ids = enc.input_ids[None]  # (1, T)
    full, trace = run_with_cache(model, ids, enc.attention_mask[None])
    for s in (0, 2, 4):  # continue after segment s from the state the full run had there
        rest, _ = run_with_cache(model, ids[:, (s + 1) * SEGMENT:], memory=False,
                                 start_memory=trace.memory_states[:, s + 1])
        torch.testing.assert_close(rest.logits, full.logits, rtol=1e-5, atol=1e-6)


def test_a_start_memory_of_the_wrong_shape_is_refused(model, samples, tokenizer):
    ids = torch.as_tensor(encode_sample(samples[0], tokenizer, SEGMENT).input_ids[None])
    with pytest.raises(ValueError, match="memory has shape"):
        model(ids, memory=torch.zeros(1, 3, 8))


# ---------------------------------------------------------------------------------------------------------
# The decoding probe on hand-built states.


def _synthetic_states(n_samples: int, seed: int, noise: float = 0.05) -> MemoryStates:
    """States that hold the world state exactly (one-hot per actor, plus noise): a linear probe reads it."""
    rng = np.random.default_rng(seed)
    A, C, S = len(ACTORS), len(probes.CLASSES), 6
    states, world, last, facts = [], [], [], []
    for _ in range(n_samples):
        w = np.full((S + 1, A), NOT_SEEN)
        lf = np.full((S + 1, A), -1)
        fs = []
        for segment in sorted(rng.choice(S, size=3, replace=False)):
            a, loc = int(rng.integers(A)), int(rng.integers(len(LOCATIONS)))
            w[segment + 1:, a] = loc
            lf[segment + 1:, a] = segment
            fs.append((int(segment), a, loc))
        x = np.zeros((S + 1, A, C))
        x[np.arange(S + 1)[:, None], np.arange(A)[None], w] = 1.0
        states.append((x + noise * rng.standard_normal(x.shape)).reshape(S + 1, A, C).astype(np.float32))
        world.append(w), last.append(lf), facts.append(tuple(fs))
    asked = tuple(f[-1][1] for f in facts)
    targets = tuple(f[-1][2] for f in facts)
    starts = tuple(tuple(f[0] for f in fs) for fs in facts)  # no fact is cut
    return MemoryStates(tuple(states), tuple(world), tuple(last), tuple(facts), starts, asked, targets, targets)


def test_the_linear_probe_reads_a_linearly_held_world_state():
    probe = LinearProbe.fit(_synthetic_states(40, seed=0))
    result = probes.decoding_accuracy(probe, _synthetic_states(20, seed=1))
    assert result["overall"]["estimate"] == 1.0
    assert result["asked_at_question"]["estimate"] == 1.0
    assert [b["low"] for b in result["by_distance"]] == [0, 1, 2, 4][:len(result["by_distance"])]
    assert sum(b["n"] for b in result["by_distance"]) > 0


def test_the_probe_is_deterministic_and_reads_nothing_from_noise():
    train = _synthetic_states(30, seed=0)
    a, b = LinearProbe.fit(train), LinearProbe.fit(train)
    assert np.array_equal(a.weight, b.weight)
    noise = MemoryStates(tuple(np.random.default_rng(2).standard_normal(s.shape).astype(np.float32)
                               for s in train.states), *[getattr(train, f) for f in
                                                         ("world", "last_fact", "facts", "fact_starts", "asked",
                                                          "targets", "predictions")])
    control = probes.decoding_accuracy(LinearProbe.fit(noise), _synthetic_states(20, seed=1))
    assert control["asked_at_question"]["estimate"] < 0.5


def test_the_probe_is_fitted_to_its_minimum_so_the_states_last_bits_do_not_steer_it():
    # Another CPU's vector units round the memory states' last bits differently; a probe stopped after a
    # fixed number of steps followed them to other weights, and a probe at the (unique) minimum does not.
    train = _synthetic_states(30, seed=0)
    nudged = dataclasses.replace(train, states=tuple(s * np.float32(1 + 1e-6) for s in train.states))
    a, b = LinearProbe.fit(train), LinearProbe.fit(nudged)
    assert a.weight.dtype == np.float64
    np.testing.assert_allclose(a.weight, b.weight, atol=1e-3)
    with pytest.raises(ValueError, match="tolerance"):
        LinearProbe.fit(train, tolerance=0)


def test_probabilities_sum_to_one_and_records_have_every_state():
    data = _synthetic_states(3, seed=4)
    probe = LinearProbe.fit(data)
    p = probe.probabilities(data.states[0])
    assert p.shape == (7, len(ACTORS), len(probes.CLASSES))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    records = probes.decoding_records(probe, data)
    assert records[0]["decoded"].shape == (7, len(ACTORS)) and records[0]["answer_confidence"].shape == (7,)


def test_collected_states_match_the_world_state(model, tokenizer, samples):
    data = probes.collect_memory_states(model, tokenizer, samples[:4])
    for i, sample in enumerate(samples[:4]):
        assert data.states[i].shape == (7, 2, 8)  # (S + 1, M, D)
        assert (data.world[i][0] == NOT_SEEN).all()  # the initial memory has read nothing
        actor = ACTORS.index(parse_question(sample.question))
        assert data.asked[i] == actor
        assert data.world[i][-1, actor] == LOCATIONS.index(sample.target)
        segment, a, location = data.supporting_fact(i)
        assert a == actor and location == LOCATIONS.index(sample.target)
        assert data.last_fact[i][segment + 1, a] == segment and data.last_fact[i][segment, a] != segment


def test_the_untrained_copy_is_fresh_and_leaves_the_global_generator_alone(model):
    before = torch.random.get_rng_state()
    control = probes.untrained_copy(model, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert control.config == model.config
    assert not torch.equal(control.cell.initial_memory, model.cell.initial_memory)
    assert torch.equal(probes.untrained_copy(model, seed=3).cell.initial_memory, control.cell.initial_memory)


# ---------------------------------------------------------------------------------------------------------
# Patching.


def test_a_donor_is_the_same_story_with_the_supporting_fact_moved(model, tokenizer, samples, background):
    pairs = probes.patch_pairs(model, tokenizer, samples, seed=0, background=background)
    for pair in pairs:
        r, d = pair.recipient, pair.donor
        assert d.question == r.question and d.target != r.target
        assert len(d.facts) == len(r.facts)
        changed = [k for k, (a, b) in enumerate(zip(r.facts, d.facts)) if a != b]
        assert len(changed) == 1
        actor, verb, location = parse_fact(d.facts[changed[0]])
        assert (actor, verb) == parse_fact(r.facts[changed[0]])[:2] and location == d.target
        assert encode_sample(d, tokenizer, SEGMENT).n_segments == encode_sample(r, tokenizer, SEGMENT).n_segments
        assert d.input != r.input  # other prose


def test_patching_records_every_intervention(model, tokenizer, samples, background):
    pairs = probes.patch_pairs(model, tokenizer, samples, seed=0, background=background)
    result = probes.patch_memory(model, tokenizer, pairs, noise_scales=(1, 4), seed=0)
    assert len(result["samples"]) == len(pairs)
    eligible = [r for r in result["samples"] if r["eligible"]]
    assert result["summary"]["n_eligible"] == len(eligible) > 0
    recipients = probes.collect_memory_states(model, tokenizer, [p.recipient for p in pairs])
    donors = probes.collect_memory_states(model, tokenizer, [p.donor for p in pairs])
    for i, r in enumerate(result["samples"]):
        if not r["eligible"]:
            assert r["ineligible"] and "fact" not in r
            continue
        assert {"fact", "distractor", "reset", "noise_x1", "noise_x4"} <= set(r)
        assert r["fact_segment"] < r["n_segments"] - 1
        # before every token of every fact of both samples, cut facts included
        assert r["distractor_segment"] < min(*recipients.fact_starts[i], *donors.fact_starts[i])
    s = result["summary"]
    assert set(s["noise_changes"]) == {"1", "4"}
    for name in ("fact_follows", "distractor_changes", "reset_right"):
        assert 0.0 <= s[name]["low"] <= s[name]["estimate"] <= s[name]["high"] <= 1.0
    json.dumps(probes.to_json({"samples": [], "summary": {}, "patching": result}))  # the JSON takes it


def test_a_sample_without_a_fact_about_the_asked_actor_is_ineligible(model, tokenizer, samples, background):
    from rmt_lib.data import Sample

    named = {parse_fact(f)[0] for f in samples[0].facts}
    absent = next(a for a in ACTORS if a not in named)  # two facts name at most two of the four actors
    lone = Sample(input=samples[0].input, question=f"Where is {absent}?", target="garden", facts=samples[0].facts,
                  fact_char_spans=samples[0].fact_char_spans)
    pairs = probes.patch_pairs(model, tokenizer, [lone, samples[1]], seed=0, background=background)
    assert pairs[0].donor is None and pairs[1].donor is not None
    result = probes.patch_memory(model, tokenizer, pairs)
    assert result["samples"][0]["ineligible"] == "no fact about the asked actor"
    with pytest.raises(ValueError, match="no donor"):
        probes.intervention_frames(model, tokenizer, None, pairs[0])


def test_zero_noise_keeps_every_answer(model, tokenizer, samples, background):
    """The continuation itself changes nothing: noise of size zero is the run as it was."""
    pairs = probes.patch_pairs(model, tokenizer, samples, seed=0, background=background)
    result = probes.patch_memory(model, tokenizer, pairs, noise_scales=(0,), seed=0)
    assert result["summary"]["noise_changes"]["0"]["estimate"] == 0.0


def test_intervention_frames_cover_the_asked_segments(model, tokenizer, samples, background):
    probe = LinearProbe(np.zeros(16), np.ones(16), np.zeros((16, len(ACTORS) * len(probes.CLASSES))),
                        np.zeros(len(ACTORS) * len(probes.CLASSES)))  # reads nothing: uniform
    pair = probes.patch_pairs(model, tokenizer, samples[:1], seed=0, background=background)[0]
    frames = probes.intervention_frames(model, tokenizer, probe, pair, segments=[0, 3])
    assert frames.segments == (0, 3) and frames.answer.shape == (2, 3, len(LOCATIONS))
    np.testing.assert_allclose(frames.answer.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(frames.answer[0, 0], frames.answer[1, 0])  # "as run" does not depend on the edit
    with pytest.raises(ValueError, match="segments must lie"):
        probes.intervention_frames(model, tokenizer, probe, pair, segments=[5])  # the question's segment


# ---------------------------------------------------------------------------------------------------------
# Overwriting and retention.


def test_overwrite_samples_move_the_asked_actor_twice(tokenizer, background):
    made = probes.overwrite_samples(tokenizer, n_samples=6, n_segments=6, segment_size=SEGMENT, seed=1,
                                    background=background)
    for sample in made:
        actor = parse_question(sample.question)
        moves = [parse_fact(f)[2] for f in sample.facts if parse_fact(f)[0] == actor]
        assert len(moves) == 2 and moves[0] != moves[1] and sample.target == moves[1]


def test_overwriting_and_retention_on_hand_built_states():
    data = _synthetic_states(20, seed=3)
    probe = LinearProbe.fit(_synthetic_states(40, seed=0))
    retention = probes.fact_retention(probe, data)
    assert retention["summary"]["n_wrong"] == 0
    assert all(r["lost_at"] is None for r in retention["samples"])
    assert all(r["confidence"].min() > 0.5 for r in retention["samples"])


def test_retention_findings_say_what_was_found_and_never_leave_holes():
    text, finding = probes.retention_findings({"n_samples": 64, "n_wrong": 0}, 256)
    assert "All 64 samples" in text and "every one of the 64" in finding
    interval = {"estimate": 0.8, "low": 0.6, "high": 0.95}
    summary = {"n_samples": 200, "n_wrong": 12, "wrong_kept_fact": {"estimate": 0.25},
               "lost_at_fraction": [0.1, 0.5, 0.9], "auc_drift": interval, "auc_low_confidence": interval}
    text, finding = probes.retention_findings(summary, 256)
    assert "Of 12 wrong answers (of 200), 25%" in text and "0.50 of the way" in text
    assert "0.80 [0.60, 0.95]" in text and "anecdotes" not in text
    assert "25% still held the fact" in finding
    few = dict(summary, n_wrong=2, lost_at_fraction=[])
    few.pop("auc_drift"), few.pop("auc_low_confidence")
    text, _ = probes.retention_findings(few, 256)
    assert "ROC-AUC" not in text and "of the way" not in text and "anecdotes" in text
    assert "undefined" not in text


def test_the_wrong_tail_is_the_last_unbroken_run():
    assert _wrong_tail(np.array([], dtype=int), 5) is None
    assert _wrong_tail(np.array([1, 2]), 5) is None  # right again at the question
    assert _wrong_tail(np.array([3, 4]), 5) == 3
    assert _wrong_tail(np.array([0, 1, 3, 4]), 5) == 3
    assert _wrong_tail(np.array([0, 1, 2, 3, 4]), 5) == 0


def test_holds_budget_is_validated():
    assert budgets.HoldsBudget.named("ci").pairs >= 200
    with pytest.raises(ValueError, match="positive int"):
        budgets.HoldsBudget("x", train_samples=(0, 1), short_samples=1, long_samples=1, pairs=1, overwrite_samples=1)


def test_probe_cli_writes_decoding_and_patching_under_new_keys(model, samples, tmp_path, capsys):
    from rmt_lib import paths
    from rmt_lib.cli import main
    from rmt_lib.data import write_jsonl
    from rmt_lib.model import save_pretrained

    checkpoint = save_pretrained(model, tmp_path / "model", tokenizer_path=paths.TOKENIZER_PATH)
    src = write_jsonl(samples[:4], tmp_path / "in.jsonl")
    out = tmp_path / "probe.json"
    assert main(["probe", "--checkpoint", str(checkpoint), "--input", str(src), "--output", str(out),
                 "--no-progress", "--no-attention", "--decode", "--patch"]) == 0
    data = json.loads(out.read_text())
    assert {"samples", "summary", "decoding", "patching"} <= set(data)
    assert all({"n_segments", "memory_change", "distance_matrix"} <= set(e) for e in data["samples"])
    assert data["decoding"]["classes"] == list(probes.CLASSES)
    assert len(data["decoding"]["samples"]) == 4 and len(data["decoding"]["samples"][0]["decoded"]) == 7
    assert len(data["patching"]["samples"]) == 4
    assert "decoded location of the asked actor" in capsys.readouterr().out
