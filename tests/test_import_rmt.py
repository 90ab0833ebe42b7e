"""`import-rmt`: the reference RMT's checkpoints (MemoryCell + RecurrentWrapper over GPT-2) as model folders,
on tiny checkpoints built here in the reference's key layout, as .bin (torch.save) and .safetensors."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from tokenizers import Tokenizer as HFTokenizer

from rmt_lib import paths
from rmt_lib.data import LOCATIONS
from rmt_lib.model import load_model_folder

M, L = 4, 16  # memory tokens, segment size
VOCAB = 2048 + 6  # the project's tokenizer and the six locations (below)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A GPT-2 of width 64 and 2 layers over the project's tokenizer, saved as the reference saves an RMT."""
    root = tmp_path_factory.mktemp("reference")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=1,
                        eos_token_id=1)
    gpt2 = GPT2LMHeadModel(config).eval()
    (root / "gpt2").mkdir()
    config.save_pretrained(root / "gpt2")
    (root / "tok").mkdir()
    # The project's tokenizer, with the six locations as whole tokens: the reference tokenizes a target on its
    # own (no leading space), and GPT-2 gives each location a first token of its own there; the project's
    # vocabulary, trained on space-led words, would not ("bathroom" and "bedroom" both start with "b").
    hf = HFTokenizer.from_file(str(paths.TOKENIZER_PATH))
    hf.add_tokens(list(LOCATIONS))
    hf.save(str(root / "tok" / "tokenizer.json"))
    bpe = json.loads(paths.TOKENIZER_PATH.read_text())["model"]  # the same vocabulary as GPT-2's two files
    (root / "files").mkdir()
    (root / "files" / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (root / "files" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    memory = torch.randn(M, 64) * 0.02
    state = {"memory_cell.memory": memory, **{f"memory_cell.model.{k}": v for k, v in gpt2.state_dict().items()}}
    torch.save(state, root / "rmt.bin")
    save_file({k: v.clone().contiguous() for k, v in state.items()}, root / "rmt.safetensors")
    return root, gpt2, memory, state


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmt_lib", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def import_args(root, state_dict, output, config="gpt2", tokenizer="tok"):
    return ["import-rmt", "--state-dict", state_dict, "--backbone-config", root / config,
            "--tokenizer", root / tokenizer, "--num-memory-tokens", M, "--segment-size", L, "--output", output]


def reference_memory_states(gpt2, memory, ids: torch.Tensor) -> list[torch.Tensor]:
    """The reference's recurrence written out: segments cut from the left (the last one shorter), each run
    as [memory | segment | memory] embeddings, the next memory from the write positions' last hidden states."""
    states, mem = [], memory[None]  # (1, M, D)
    for start in range(0, ids.shape[1], L):
        embeds = torch.cat([mem, gpt2.transformer.wte(ids[:, start:start + L]), mem], dim=1)
        mem = gpt2.transformer(inputs_embeds=embeds).last_hidden_state[:, -M:]
        states.append(mem)
    return states


def test_gpt2s_two_tokenizer_files_read_as_the_same_tokenizer(reference):
    from rmt_lib.model.imported import read_tokenizer

    root, *_ = reference
    text = " Mary went to the garden. It rained all day, and nobody went out."
    whole = HFTokenizer.from_file(str(paths.TOKENIZER_PATH))
    assert read_tokenizer(root / "files").encode(text).ids == whole.encode(text).ids


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["bin", "safetensors"])
def test_an_imported_model_carries_the_references_memory(reference, tmp_path, suffix):
    root, gpt2, memory, _ = reference
    done = run_cli(*import_args(root, root / f"rmt.{suffix}", tmp_path / "model"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == \
        ["checksums.json", "config.json", "model.safetensors", "tokenizer.json"]
    model, tokenizer = load_model_folder(tmp_path / "model")
    assert model.config.segment_alignment == "left" and model.config.num_memory_tokens == M
    ids = torch.randint(2, VOCAB, (1, 3 * L + 5))  # not a multiple of the segment size
    with torch.no_grad():
        ours = model(ids, capture_memory=True).memory_states[0]  # (S + 1, M, D): initial memory first
        expected = reference_memory_states(gpt2, memory, ids)
    assert len(ours) == len(expected) + 1 == 5
    torch.testing.assert_close(ours[0], memory, atol=1e-5, rtol=0)
    for s, want in enumerate(expected):
        torch.testing.assert_close(ours[s + 1], want[0], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_an_imported_model_answers_where_the_reference_generates(reference, tmp_path):
    """The reference puts the question (tokenized alone) and its GEN token after the input and generates the
    answer there; the imported model's six scores are the LM head's logits at that position."""
    from rmt_lib.data import LOCATIONS, Sample, encode_sample

    root, gpt2, memory, _ = reference
    assert run_cli(*import_args(root, root / "rmt.bin", tmp_path / "model")).returncode == 0
    model, tokenizer = load_model_folder(tmp_path / "model")
    sample = Sample("Mary went to the garden. " + "It rained all day. " * 5, "Where is Mary?", "garden")
    gen = tokenizer.encode("GEN")[0]
    ids = tokenizer.encode(sample.input) + tokenizer.encode(sample.question) + [gen]
    encoded = encode_sample(sample, tokenizer, L, **model.config.encoding)
    assert encoded.input_ids.tolist() == ids and model.config.answer_prompt_ids == (gen,)
    ids = torch.tensor([ids])
    with torch.no_grad():
        ours = model(ids).logits[0]  # (6,)
        mem, starts = memory[None], range(0, ids.shape[1], L)
        for start in list(starts)[:-1]:
            embeds = torch.cat([mem, gpt2.transformer.wte(ids[:, start:start + L]), mem], dim=1)
            mem = gpt2.transformer(inputs_embeds=embeds).last_hidden_state[:, -M:]
        last = torch.cat([mem, gpt2.transformer.wte(ids[:, list(starts)[-1]:])], dim=1)  # generate: no write memory
        logits = gpt2(inputs_embeds=last).logits[0, -1]  # (V,) where the reference generates
    candidates = [tokenizer.encode(location)[0] for location in LOCATIONS]
    torch.testing.assert_close(ours, logits[candidates], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_an_imported_model_is_evaluated_and_probed_like_ours(reference, tmp_path):
    root, *_ = reference
    assert run_cli(*import_args(root, root / "rmt.bin", tmp_path / "model")).returncode == 0
    sample = {"input": "Mary went to the garden. " + "It rained all day. " * 12, "question": "Where is Mary?",
              "target": "garden"}
    (tmp_path / "s.jsonl").write_text(json.dumps(sample) + "\n")
    for command in ("evaluate", "probe"):
        done = run_cli(command, "--checkpoint", tmp_path / "model", "--input", tmp_path / "s.jsonl",
                       "--output", tmp_path / f"{command}.json")
        assert done.returncode == 0, done.stderr
    probed = json.loads((tmp_path / "probe.json").read_text())["samples"][0]
    assert probed["read_attention"] is not None and probed["n_segments"] == len(probed["memory_change"])


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def _bad_inputs(root, state):
    """case -> (files to write under root, import arguments' changes, words of the error)."""
    renamed = {k.replace("memory_cell.", "cell."): v for k, v in state.items()}
    small = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    wide_vocab = GPT2Config(vocab_size=3000, n_embd=64, n_layer=2, n_head=4, n_positions=64)
    return {
        "a wrong key layout": (lambda: torch.save(renamed, root / "renamed.bin"), {"state_dict": root / "renamed.bin"},
                               ["key layout", "cell.memory"]),
        "a shape mismatch": (lambda: small.save_pretrained(root / "small"), {"config": "small"}, ["shapes differ"]),
        "a pickle that holds code": (lambda: (root / "code.bin").write_bytes(pickle.dumps({"x": _RunsCode()})),
                                     {"state_dict": root / "code.bin"}, ["weights_only"]),
        "a tokenizer that does not fit": (lambda: wide_vocab.save_pretrained(root / "wide"), {"config": "wide"},
                                          [f"{VOCAB} tokens", "3000"]),
    }


@pytest.mark.parametrize("case", ["a wrong key layout", "a shape mismatch", "a pickle that holds code",
                                  "a tokenizer that does not fit"])
@pytest.mark.slow
def test_bad_checkpoints_are_refused(reference, tmp_path, case):
    root, _, _, state = reference
    write, changes, words = _bad_inputs(root, state)[case]
    write()
    args = import_args(root, changes.get("state_dict", root / "rmt.bin"), tmp_path / "model",
                       config=changes.get("config", "gpt2"))
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(w in errors[0] for w in words), errors[0]
    assert "this pickle ran code" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def test_left_alignment_pads_nothing_and_cuts_from_the_start():
    from rmt_lib.data import Sample, encode_sample, load_tokenizer
    from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig

    tokenizer = load_tokenizer()
    sample = Sample("Mary went to the garden. " + "It rained all day. " * 6, "Where is Mary?", "garden")
    right, left = (encode_sample(sample, tokenizer, L, alignment) for alignment in ("right", "left"))
    pad = len(right.input_ids) - len(left.input_ids)
    assert pad > 0 and left.attention_mask.all() and right.input_ids[pad:].tolist() == left.input_ids.tolist()
    assert left.n_segments == right.n_segments == -(-len(left.input_ids) // L)
    assert left.fact_token_spans == ((0, right.fact_token_spans[0][1] - pad),) and left.fact_segments == (0,)
    model = RecurrentMemoryTransformer(RMTConfig(hidden_size=16, num_layers=1, num_heads=2, segment_size=L,
                                                 num_memory_tokens=2, segment_alignment="left"))
    ids = torch.as_tensor(left.input_ids)[None]
    assert model(ids).logits.shape == (1, 6)
    padded = torch.ones_like(ids, dtype=torch.bool)
    padded[0, 0] = False
    with pytest.raises(ValueError, match="unpadded"):
        model(ids, attention_mask=padded)
