"""Evaluation: Wilson intervals, the OUT.json contract, and clear errors that leave no partial output."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rmt_lib.data import generate_samples, load_tokenizer, write_jsonl
from rmt_lib.evaluate import evaluate, generate_eval_samples, stream_threads
from rmt_lib.stats import wilson_interval
from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, save_pretrained

SMALL = RMTConfig(hidden_size=16, num_layers=1, num_heads=2, num_memory_tokens=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_pretrained(RecurrentMemoryTransformer(SMALL), tmp_path_factory.mktemp("ckpt") / "model")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rmt_lib", "evaluate", *args], capture_output=True, text=True)


@pytest.mark.parametrize("k, n, lo, hi", [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962)])
def test_wilson_interval_matches_known_values(k, n, lo, hi):
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)


def test_evaluate_returns_the_contract_in_input_order():
    torch.manual_seed(0)
    model = RecurrentMemoryTransformer(SMALL).eval()
    tok = load_tokenizer()
    samples = generate_eval_samples([2, 1], 3, seed=0, tokenizer=tok)  # longer first: output keeps input order
    result = evaluate(model, tok, samples, batch_size=2, progress=False)
    assert [r["n_segments"] for r in result["samples"]] == [2, 2, 2, 1, 1, 1]
    assert [r["target"] for r in result["samples"]] == [s.target for s in samples]
    assert result["accuracy"] == pytest.approx(sum(r["correct"] for r in result["samples"]) / 6)
    assert set(result["by_length"]) == {"1", "2"} and result["by_length"]["2"]["total"] == 3
    unbatched = [evaluate(model, tok, [s], progress=False)["samples"][0]["prediction"] for s in samples]
    assert unbatched == [r["prediction"] for r in result["samples"]]


def test_short_inputs_get_the_fact_counts_that_fit():
    samples = generate_eval_samples([1, 32], 10, seed=3)
    assert {len(s.facts) for s in samples[:10]} == {2}
    assert len({len(s.facts) for s in samples[10:]}) > 1


@pytest.mark.slow
def test_cli_evaluates_a_users_jsonl_with_extra_fields(tmp_path, checkpoint):
    lines = [dict(input="It was a fine day. Mary went to the garden. The rain came.", question="Where is Mary?",
                  target="garden", note="extra fields are ignored"),
             dict(input="Daniel journeyed to the office.", question="Where is Daniel?", target="office")]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = _cli("--checkpoint", str(checkpoint), "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.json"))
    assert result.returncode == 0, result.stderr
    out = json.loads((tmp_path / "o.json").read_text())
    assert [s["target"] for s in out["samples"]] == ["garden", "office"]
    assert all(s["n_segments"] == 1 and s["prediction"] in SMALL_LOCATIONS for s in out["samples"])


SMALL_LOCATIONS = {"bathroom", "bedroom", "garden", "hallway", "kitchen", "office"}


@pytest.mark.parametrize("content, message", [
    ('{"input": "a", "question": "Where is Mary?", "target": "garden"}\n{}\n', "bad.jsonl:2:"),
    ('{"input": "a", "question": "Where is Mary?", "target": "garden"}\n{not json\n', "bad.jsonl:2:"),
    ("", "no samples"),
    ('{"input": "Mary went to the moon.", "question": "What is Mary?", "target": "garden"}\n', "sample 1"),
    ('{"input": "Mary went to the garden.", "question": "Where is Mary?", "target": "moon"}\n', "sample 1"),
])
@pytest.mark.slow
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, checkpoint, content, message):
    (tmp_path / "bad.jsonl").write_text(content)
    result = _cli("--checkpoint", str(checkpoint), "--input", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "o.json"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.slow
def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path, checkpoint):
    write_jsonl(generate_samples("qa1", n_samples=1, n_segments=1, n_facts=2, seed=0), tmp_path / "s.jsonl")
    result = _cli("--checkpoint", str(tmp_path / "nope"), "--input", str(tmp_path / "s.jsonl"), "--output", str(tmp_path / "o.json"))
    assert result.returncode == 2 and "no model folder" in result.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in checkpoint.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"garbage")
    result = _cli("--checkpoint", str(broken), "--input", str(tmp_path / "s.jsonl"), "--output", str(tmp_path / "o.json"))
    assert result.returncode == 2 and "checksum mismatch" in result.stderr
    assert not (tmp_path / "o.json").exists()


def test_a_lone_sample_streams_on_one_thread_and_the_thread_count_comes_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    cpu = torch.device("cpu")
    try:
        with stream_threads(1, cpu):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with stream_threads(4, cpu):  # batches keep every thread
            assert torch.get_num_threads() == 2
        with stream_threads(1, torch.device("cuda")):  # the rule is about CPU threads only
            assert torch.get_num_threads() == 2
        tok = load_tokenizer()
        evaluate(RecurrentMemoryTransformer(SMALL).eval(), tok, generate_eval_samples([2], 1, seed=0, tokenizer=tok),
                 progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_supporting_fact_place_says_whether_the_answers_fact_was_cut_and_how_far_back():
    from rmt_lib.data import Sample, encode_sample
    from rmt_lib.evaluate import supporting_fact_place

    tokenizer = load_tokenizer()
    sample = Sample(input="Mary went to the garden. It was a long and quiet day. John moved to the office.",
                    question="Where is Mary?", target="garden")
    whole = encode_sample(sample, tokenizer, segment_size=64)  # one segment: nothing is cut
    assert supporting_fact_place(sample, whole) == {"supporting_fact_cut": False, "segments_from_fact": 0}
    tiny = encode_sample(sample, tokenizer, segment_size=1)  # a segment per token: every fact is cut
    place = supporting_fact_place(sample, tiny)
    assert place["supporting_fact_cut"] is True
    assert place["segments_from_fact"] == tiny.n_segments - tiny.fact_token_spans[0][1]  # after Mary's last token
    nobody = Sample(input="It rained all day.", question="Where is Mary?", target="garden")
    assert supporting_fact_place(nobody, encode_sample(nobody, tokenizer, 8)) == {
        "supporting_fact_cut": None, "segments_from_fact": None}


@pytest.mark.slow
def test_cli_evaluates_real_babi_stories(tmp_path, checkpoint):
    babi = tmp_path / "qa1.txt"
    babi.write_text("1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n"
                    "4 Daniel went back to the garden.\n5 Where is Daniel? \tgarden\t4\n")
    out = tmp_path / "b.json"
    result = _cli("--checkpoint", str(checkpoint), "--babi", str(babi), "--segments", "4", "--samples", "2",
                  "--output", str(out))
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(out.read_text())
    assert evaluation["babi"] == "qa1.txt" and [s["target"] for s in evaluation["samples"]] == ["bathroom", "garden"]
    assert all(isinstance(s["supporting_fact_cut"], bool) and s["segments_from_fact"] >= 0 for s in evaluation["samples"])
    refused = _cli("--checkpoint", str(checkpoint), "--babi", str(babi), "--segments", "4", "--samples", "3",
                   "--output", str(tmp_path / "c.json"))
    assert refused.returncode == 2 and "only 2 bAbI stories" in refused.stderr and not (tmp_path / "c.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("size", ["0", "-1", "two"])
def test_a_batch_size_below_one_is_refused_before_any_work(tmp_path, checkpoint, size):
    (tmp_path / "in.jsonl").write_text('{"input": "Mary went to the garden.", "question": "Where is Mary?", '
                                       '"target": "garden"}\n')
    out = tmp_path / "o.json"
    result = _cli("--checkpoint", str(checkpoint), "--input", str(tmp_path / "in.jsonl"), "--batch-size", size,
                  "--output", str(out))
    assert result.returncode == 2 and "--batch-size" in result.stderr and not out.exists()
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        evaluate(RecurrentMemoryTransformer(SMALL), load_tokenizer(), generate_samples("qa1", 1, n_segments=1, n_facts=2),
                 batch_size=int(size) if size != "two" else 0)
