"""The RMT: parity with the bare backbone, BPTT truncation, capture invariance, memory, save/load."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig, from_pretrained, save_pretrained

TINY = dict(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, segment_size=6, num_memory_tokens=3)
BACKBONES = ["gpt2", "llama", "bloom"]


def tiny(backbone="gpt2", **changes) -> RecurrentMemoryTransformer:
    torch.manual_seed(0)
    return RecurrentMemoryTransformer(RMTConfig(backbone=backbone, **{**TINY, **changes})).eval()


def ids(batch=2, n_segments=3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, TINY["vocab_size"], (batch, n_segments * TINY["segment_size"]), generator=g)


# --- config -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    (dict(segment_size=0), "segment_size"),
    (dict(num_memory_tokens=-1), "num_memory_tokens"),
    (dict(num_memory_tokens=0), "recurrent=False"),
    (dict(recurrent=False), "num_memory_tokens=0"),
    (dict(max_positions=10), "needs 12 positions"),
    (dict(bptt_depth=0), "bptt_depth"),
    (dict(num_heads=3), "divisible"),
    (dict(backbone="gpt9"), "unknown backbone"),
    (dict(answer_head="lm"), "answer_token_id"),
    (dict(answer_head="lm", num_answers=2, answer_token_ids=(3, 64)), "below vocab_size 64"),
    (dict(aux_every_segment=True, num_aux_actors=0), "aux_every_segment"),
])
def test_config_rejects_invalid_combinations(changes, message):
    with pytest.raises(ValueError, match=message):
        RMTConfig(**{**TINY, **changes})


def test_config_round_trips_and_refuses_typos():
    cfg = RMTConfig(**TINY)
    assert RMTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown RMTConfig field"):
        RMTConfig.from_dict({**cfg.to_dict(), "num_memory_tokns": 4})


# --- parity -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", BACKBONES)
def test_parity_one_segment_no_memory_equals_bare_backbone(backbone):
    model = tiny(backbone, num_memory_tokens=0, recurrent=False)
    x = ids(n_segments=1)
    bare = AutoModelForCausalLM.from_config(model.config.backbone_config()).eval()
    bare.load_state_dict(model.backbone.state_dict())
    with torch.no_grad():
        ours = model.backbone.get_output_embeddings()(model.cell(x, None).hidden)  # (B, L, V)
        theirs = bare(input_ids=x).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


# --- BPTT -------------------------------------------------------------------------------------------

def _grads(model, x):
    model.train()
    model.zero_grad()
    model(x, labels=torch.tensor([0, 1])).loss.backward()
    first_segment_tokens = x[:, : TINY["segment_size"]].unique()
    later_tokens = x[:, TINY["segment_size"]:].unique()
    only_first = first_segment_tokens[~torch.isin(first_segment_tokens, later_tokens)]
    emb = model.backbone.get_input_embeddings().weight.grad
    return model.cell.initial_memory.grad, emb[only_first]


def test_bptt_full_reaches_the_first_segment():
    mem_grad, first_rows = _grads(tiny(), ids())
    assert mem_grad.abs().sum() > 0
    assert first_rows.abs().sum() > 0


@pytest.mark.parametrize("depth", [1, 2])
def test_bptt_truncation_cuts_gradients(depth):
    mem_grad, first_rows = _grads(tiny(bptt_depth=depth), ids(n_segments=3))
    assert mem_grad is None or mem_grad.abs().sum() == 0
    assert first_rows.abs().sum() == 0


def test_bptt_depth_covering_the_input_is_full_bptt():
    torch.testing.assert_close(_grads(tiny(bptt_depth=3), ids())[0], _grads(tiny(), ids())[0])


# --- capture ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", BACKBONES)
def test_capture_does_not_change_outputs(backbone):
    model = tiny(backbone)
    x = ids()
    with torch.no_grad():
        plain = model(x)
        captured = model(x, capture_memory=True, capture_attention=[0, -1])
    torch.testing.assert_close(plain.logits, captured.logits, rtol=0, atol=1e-5)
    assert model.backbone.config._attn_implementation == plain_impl(backbone)  # switched back


def plain_impl(backbone):
    return "eager" if backbone == "bloom" else "sdpa"


def test_capture_shapes_are_as_documented():
    model = tiny()
    B, S, M, L, D = 2, 3, TINY["num_memory_tokens"], TINY["segment_size"], TINY["hidden_size"]
    with torch.no_grad():
        out = model(ids(B, S), capture_memory=True, capture_attention=[1, -1])
    assert out.memory_states.shape == (B, S + 1, M, D)
    assert set(out.attentions) == {1, 2}
    for a in out.attentions.values():
        assert a.shape == (B, TINY["num_layers"], TINY["num_heads"], L + 2 * M, L + 2 * M)
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))  # rows are distributions
    torch.testing.assert_close(out.memory_states[:, 0], model.cell.initial_memory.expand(B, M, D))


def test_capture_asks_for_a_segment_that_does_not_exist():
    with pytest.raises(ValueError, match="segment 5"):
        tiny()(ids(n_segments=3), capture_attention=[5])


def test_input_not_a_multiple_of_segment_size_is_refused():
    with pytest.raises(ValueError, match="multiple of segment_size"):
        tiny()(ids()[:, :-1])


def test_memory_state_depends_only_on_the_past():
    model = tiny()
    a, b = ids(seed=1), ids(seed=1)
    b[:, -1] = (b[:, -1] + 1) % TINY["vocab_size"]  # change the last token only
    with torch.no_grad():
        ma = model(a, capture_memory=True).memory_states
        mb = model(b, capture_memory=True).memory_states
    torch.testing.assert_close(ma[:, :-1], mb[:, :-1])  # every state before the last segment is unchanged
    assert not torch.allclose(ma[:, -1], mb[:, -1])


# --- auxiliary loss ---------------------------------------------------------------------------------

def _aux_loss(model, x, aux) -> float:
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    return model(x, labels=labels, aux_labels=aux).aux_loss.item()


def test_aux_loss_at_every_segment_sees_every_segments_labels():
    x = ids(n_segments=3)  # (2, 18)
    aux = torch.randint(0, 7, (2, 3, 4), generator=torch.Generator().manual_seed(0))  # (B, S, actors)
    first_changed = aux.clone()
    first_changed[:, 0] = (first_changed[:, 0] + 1) % 7
    every, question_only = tiny(aux_every_segment=True), tiny()
    assert _aux_loss(every, x, aux) != _aux_loss(every, x, first_changed)
    assert _aux_loss(question_only, x, aux) == _aux_loss(question_only, x, first_changed)
    # The question's auxiliary logits are the last segment's under both settings (same weights).
    assert _aux_loss(every, x[:, -6:], aux[:, -1:]) == _aux_loss(question_only, x[:, -6:], aux[:, -1:])


def test_aux_labels_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="aux_labels has shape"):
        tiny()(ids(n_segments=3), labels=torch.zeros(2, dtype=torch.long), aux_labels=torch.zeros(2, 4, dtype=torch.long))


# --- memory carries information ---------------------------------------------------------------------

def _first_segment_task_accuracy(recurrent: bool, steps=250) -> float:
    """The answer is the first token of the first segment; the last segment is noise."""
    torch.manual_seed(0)
    cfg = dict(TINY, vocab_size=16, hidden_size=32, segment_size=4, num_aux_actors=0)
    if not recurrent:
        cfg.update(recurrent=False, num_memory_tokens=0)
    model = RecurrentMemoryTransformer(RMTConfig(**cfg, num_answers=6))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def batch(n):
        x = torch.randint(8, 16, (n, 8), generator=g)
        y = torch.randint(0, 6, (n,), generator=g)
        x[:, 0] = y + 2
        return x, y

    model.train()
    for _ in range(steps):
        x, y = batch(32)
        opt.zero_grad()
        model(x, labels=y).loss.backward()
        opt.step()
    model.eval()
    x, y = batch(512)
    with torch.no_grad():
        return (model(x).logits.argmax(-1) == y).float().mean().item()


@pytest.mark.slow
def test_memory_carries_information_across_segments():
    with_memory = _first_segment_task_accuracy(recurrent=True)
    without = _first_segment_task_accuracy(recurrent=False)
    assert with_memory > 0.9, with_memory
    assert without < 0.3, without  # chance is 1/6


# --- save / load ------------------------------------------------------------------------------------

def test_save_load_round_trips_bit_exactly(tmp_path):
    model = tiny()
    save_pretrained(model, tmp_path / "m", tokenizer_path=None)
    loaded = from_pretrained(tmp_path / "m")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with torch.no_grad():
        assert torch.equal(model(ids()).logits, loaded(ids()).logits)


def test_corrupted_weights_are_refused(tmp_path):
    folder = save_pretrained(tiny(), tmp_path / "m", tokenizer_path=None)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        from_pretrained(folder)


def test_missing_folder_or_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        from_pretrained(tmp_path / "nowhere")
    folder = save_pretrained(tiny(), tmp_path / "m", tokenizer_path=None)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(folder)


def test_config_that_does_not_match_the_weights_is_refused(tmp_path):
    folder = save_pretrained(tiny(), tmp_path / "m", tokenizer_path=None)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    sums = json.loads((folder / "checksums.json").read_text())
    from rmt_lib.model.checkpoint import sha256
    sums["config.json"] = sha256(folder / "config.json")
    (folder / "checksums.json").write_text(json.dumps(sums))
    with pytest.raises(ValueError, match="do not match its config.json"):
        from_pretrained(folder)


def test_memory_noise_perturbs_training_only_and_follows_the_seed():
    x = ids(n_segments=3)
    plain, noisy = tiny(), tiny(memory_noise=0.1)
    noisy.load_state_dict(plain.state_dict())
    with torch.no_grad():  # inference: no noise, whatever the config says
        assert torch.equal(plain(x, capture_memory=True).memory_states, noisy(x, capture_memory=True).memory_states)
    noisy.train()

    def states(seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            return noisy(x, capture_memory=True).memory_states  # (B, S + 1, M, D)

    a, b, c = states(0), states(0), states(1)
    assert torch.equal(a, b) and not torch.equal(a, c)  # the trainer seeds it per step: a resume repeats it
    clean = plain.train()(x, capture_memory=True).memory_states.detach()
    rms = clean[:, 1].pow(2).mean().sqrt()
    assert 0.05 * rms < (a[:, 1] - clean[:, 1]).pow(2).mean().sqrt() < 0.2 * rms  # about 10% of the state's RMS
    with pytest.raises(ValueError, match="memory_noise"):
        RMTConfig(**TINY, memory_noise=1.5)


def test_memory_change_weight_adds_the_relative_change_to_the_training_loss():
    torch.manual_seed(0)
    plain = tiny()
    weighted = tiny(memory_change_weight=2.0)
    weighted.load_state_dict(plain.state_dict())
    ids = torch.randint(5, 60, (2, 4 * TINY["segment_size"]))
    labels = torch.tensor([0, 1])
    # Sample 0: an actor moves at segment 2, so only segment 3's change (from 2 to 3) is quiet.
    # Sample 1: nobody moves, so every change after the first segment (1, 2, 3) is quiet.
    aux = torch.full((2, 4, 4), 6)
    aux[0, 2:, 0] = 1
    for model in (plain, weighted):
        model.train()
    a = plain(ids, labels=labels, aux_labels=aux)
    b = weighted(ids, labels=labels, aux_labels=aux, capture_memory=True)
    assert a.memory_change is None and b.memory_change > 0
    torch.testing.assert_close(b.loss, a.loss + 2.0 * b.memory_change)
    m = b.memory_states  # (B, S + 1, M, D); [:, s + 1] is the state after segment s
    rel = lambda i, s: ((m[i, s + 1] - m[i, s]).pow(2).sum() / m[i, s].pow(2).sum()).item()  # noqa: E731
    expected = (rel(0, 3) + rel(1, 1) + rel(1, 2) + rel(1, 3)) / 4
    assert b.memory_change.item() == pytest.approx(expected, rel=1e-5)
    weighted.eval()
    assert weighted(ids, labels=labels, aux_labels=aux).memory_change is None  # training only
    with pytest.raises(ValueError, match="memory_change_weight"):
        RMTConfig(**TINY, memory_change_weight=-1)
