"""The streamed inference path (`MemoryCell.stream`): bit for bit the backbone's numbers, and only where it may run."""
from __future__ import annotations

import pytest
import torch

from rmt_lib.model import RecurrentMemoryTransformer, RMTConfig

TINY = dict(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, segment_size=6, num_memory_tokens=3)


def bloom(seed=0, **changes) -> RecurrentMemoryTransformer:
    """A Bloom RMT with every weight random, layer norms and biases included (their init would hide a skipped one)."""
    torch.manual_seed(seed)
    model = RecurrentMemoryTransformer(RMTConfig(backbone="bloom", **{**TINY, **changes})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model


def ids_and_mask(config: RMTConfig, batch: int, n_segments: int, pads: list[int], seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(2, config.vocab_size, (batch, n_segments * config.segment_size), generator=g)
    mask = torch.ones_like(x, dtype=torch.bool)
    for row, pad in enumerate(pads):
        mask[row, :pad] = False
        x[row, :pad] = config.pad_token_id
    return x, (None if mask.all() else mask)


def both_paths(model, x, mask, **kwargs):
    """(streamed, backbone) outputs of one forward under inference_mode."""
    with torch.inference_mode():
        streamed = model(x, mask, **kwargs)
        original = model.cell.stream
        model.cell.stream = lambda: None  # the backbone's own forward for every segment
        try:
            reference = model(x, mask, **kwargs)
        finally:
            model.cell.stream = original
    return streamed, reference


@pytest.mark.parametrize("memory", [("final_norm", "embedding_norm"), ("last_block", "embedding_norm"),
                                    ("last_block", "plain_norm")])
@pytest.mark.parametrize("batch, pads", [(1, [0]), (1, [4]), (3, [0, 7, 2])])
def test_stream_equals_the_backbone_bit_for_bit(batch, pads, memory):
    model = bloom(memory_path=memory[0], memory_input=memory[1])
    x, mask = ids_and_mask(model.config, batch, n_segments=5, pads=pads)
    streamed, reference = both_paths(model, x, mask, capture_memory=True)
    assert torch.equal(streamed.logits, reference.logits)
    assert torch.equal(streamed.aux_logits, reference.aux_logits)
    assert torch.equal(streamed.memory_states, reference.memory_states)


def test_stream_equals_the_backbone_at_the_shipped_size():
    model = bloom(seed=1, vocab_size=2048, hidden_size=64, num_layers=4, num_heads=4, segment_size=32,
                  num_memory_tokens=8, dropout=0.1)  # dropout: identity in eval mode on both paths
    x, mask = ids_and_mask(model.config, 1, n_segments=12, pads=[13])
    streamed, reference = both_paths(model, x, mask)
    assert torch.equal(streamed.logits, reference.logits)


def test_stream_is_used_in_inference_and_the_answer_does_not_move():
    model = bloom()
    x, _ = ids_and_mask(model.config, 2, n_segments=4, pads=[0, 0])
    calls = []
    original = type(model.cell).stream

    def counting(cell):
        s = original(cell)
        calls.append(s is not None)
        return s

    model.cell.stream = counting.__get__(model.cell)
    with torch.inference_mode():
        fast = model(x).logits
    with torch.no_grad():
        assert torch.equal(model(x).logits, fast)
    assert calls == [True, True]


def test_stream_with_attention_capture_keeps_the_maps_and_the_numbers():
    model = bloom()
    x, mask = ids_and_mask(model.config, 2, n_segments=4, pads=[0, 3])
    streamed, reference = both_paths(model, x, mask, capture_attention=[0, -1])
    assert torch.equal(streamed.logits, reference.logits)
    assert streamed.attentions.keys() == {0, 3}
    assert all(torch.equal(streamed.attentions[s], reference.attentions[s]) for s in (0, 3))


@pytest.mark.parametrize("backbone", ["gpt2", "llama"])
def test_no_stream_for_other_backbones(backbone):
    torch.manual_seed(0)
    model = RecurrentMemoryTransformer(RMTConfig(backbone=backbone, **TINY)).eval()
    with torch.inference_mode():
        assert model.cell.stream() is None


def test_no_stream_where_it_could_differ():
    model = bloom()
    assert model.cell.stream() is None  # gradients on: the backbone's autograd functions must run
    with torch.no_grad():
        assert model.cell.stream() is not None
        model.train()  # dropout would be live
        assert model.cell.stream() is None
        model.eval()
        handle = model.backbone.base_model.h[0].mlp.register_forward_hook(lambda *a: None)
        assert model.cell.stream() is None  # a hook must see its module run
        handle.remove()
        assert model.cell.stream() is not None
        assert model.double().cell.stream() is None  # tested in float32 only


def test_gelu_has_the_bits_of_blooms():
    from transformers.models.bloom.modeling_bloom import bloom_gelu_forward

    from rmt_lib.model.bloom_stream import _gelu

    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(4096, generator=g) * scale for scale in (1e-20, 1e-3, 1.0, 4.0, 30.0, 1e20)]
                  + [torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-45, -3.4e38])])
    with torch.inference_mode():
        assert torch.equal(_gelu(x).view(torch.int32), bloom_gelu_forward(x).view(torch.int32))


def test_the_last_layer_on_the_write_rows_alone_has_the_full_layers_bits_or_is_not_used():
    """`BloomStream(embeds, rows)` computes the last layer at `rows` only where that was checked to give the
    same bits on this machine's kernels; where it would not, it runs the whole layer. Either way: the same bits."""
    model = bloom(seed=1, vocab_size=2048, hidden_size=64, num_layers=4, num_heads=4, segment_size=32,
                  num_memory_tokens=8)
    write = slice(40, None)  # the write memory of a 32-token segment with 8 memory tokens
    embeds = torch.randn(2, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        stream = model.cell.stream()
        full = stream(embeds)  # (2, 48, 64)
        assert torch.equal(stream(embeds, rows=write), full[:, write])
        assert list(stream._rows_exact) == [((2, 48, 64), 40, None)]  # checked once for this shape ...
        assert model.cell.stream()._rows_exact is stream._rows_exact  # ... per model, not per forward call

        class Inexact:  # a last layer whose rows-only result differs, as it might on another BLAS
            def __init__(self, layer):
                self.layer = layer

            def __call__(self, h, bias, rows=None):
                out = self.layer(h, bias, rows)
                if rows is not None:
                    out = out.clone()
                    out[..., 0] += 1e-3  # one feature: the final layer norm does not undo it
                return out

        stream.layers[-1] = Inexact(stream.layers[-1])
        stream._rows_exact.clear()
        assert torch.equal(stream(embeds, rows=write), full[:, write])  # the whole layer ran instead
        assert stream._rows_exact == {((2, 48, 64), 40, None): False}


def test_segments_before_the_question_skip_the_hidden_states_only_in_the_stream():
    model = bloom()
    x, _ = ids_and_mask(model.config, 1, n_segments=3, pads=[0])
    with torch.inference_mode():
        memory = model.cell.initial_memory.unsqueeze(0)
        stream = model.cell.stream()
        skipped = model.cell(x[:, :6], memory, stream=stream, memory_only=True)
        kept = model.cell(x[:, :6], memory, stream=stream)
        assert skipped.hidden is None and torch.equal(skipped.memory, kept.memory)
        assert model.cell(x[:, :6], memory, memory_only=True).hidden is not None  # the backbone path keeps them


def silence_blocks(model: RecurrentMemoryTransformer):
    """Zero every Bloom block's output projections, so that each block adds nothing; returns the BloomModel."""
    base = model.backbone.transformer
    with torch.no_grad():
        for name, p in base.h.named_parameters():
            if "dense." in name or "dense_4h_to_h" in name:
                p.zero_()
    return base


def test_a_last_block_memory_passes_blocks_that_add_nothing_through_the_embedding_norm_alone():
    """memory_path="last_block": the memory is the last block's output at the write rows, so where every block
    adds zero (output projections zeroed), the next memory is the embedding norm of the one that went in: with
    the norm's initial weights a fixed point, once the norm's epsilon has stopped mattering (the initial
    memory is small); through the final norm as well ("final_norm"), the memory keeps moving."""
    states = {}
    for path in ("final_norm", "last_block"):
        torch.manual_seed(0)
        model = RecurrentMemoryTransformer(RMTConfig(backbone="bloom", memory_path=path, **TINY)).eval()
        base = silence_blocks(model)
        with torch.no_grad():
            base.ln_f.bias.normal_()  # a trained final norm is not neutral
        x, mask = ids_and_mask(model.config, 2, n_segments=4, pads=[0, 4])
        with torch.inference_mode():
            states[path] = model(x, mask, capture_memory=True).memory_states  # (2, 5, M, D)
    kept = states["last_block"]
    first = base.word_embeddings_layernorm(model.cell.initial_memory).detach()
    torch.testing.assert_close(kept[:, 1], first.expand_as(kept[:, 1]), rtol=0, atol=1e-5)
    torch.testing.assert_close(kept[:, 3:], kept[:, 2:3].expand_as(kept[:, 3:]), rtol=0, atol=1e-5)
    moved = states["final_norm"]
    assert (moved[:, 2] - moved[:, 1]).abs().max() > 1e-2


def test_a_plain_norm_memory_passes_blocks_that_add_nothing_unchanged():
    """memory_input="plain_norm": the memory enters normalised without learned scale or shift, which maps a
    normalised state to itself; with blocks that add nothing, and an embedding norm far from neutral, the
    memory after every segment is the second one's (the first is off by the norm's epsilon beside the small
    initial memory)."""
    torch.manual_seed(0)
    model = RecurrentMemoryTransformer(RMTConfig(backbone="bloom", memory_path="last_block", memory_input="plain_norm",
                                                 **TINY)).eval()
    base = silence_blocks(model)
    with torch.no_grad():
        base.word_embeddings_layernorm.weight.uniform_(0.5, 1.5)
        base.word_embeddings_layernorm.bias.normal_()
    x, mask = ids_and_mask(model.config, 2, n_segments=4, pads=[0, 4])
    with torch.inference_mode():
        kept = model(x, mask, capture_memory=True).memory_states  # (2, 5, M, D)
    torch.testing.assert_close(kept[:, 3:], kept[:, 2:3].expand_as(kept[:, 3:]), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="last_block"):
        RMTConfig(memory_input="plain_norm")


def test_a_last_block_memory_needs_the_bloom_backbone():
    with pytest.raises(ValueError, match="embedding norm"):
        RMTConfig(backbone="llama", memory_path="last_block")


def test_norm_contraction_is_one_for_neutral_norms_and_shrinks_with_a_biased_final_norm():
    from rmt_lib.model.inspect import memory_path_reason, norm_contraction

    torch.manual_seed(0)
    model = RecurrentMemoryTransformer(RMTConfig(backbone="bloom", **TINY)).eval()  # norms as initialised
    assert norm_contraction(model, 64, final_norm=False) == pytest.approx(1.0, abs=1e-3)
    with torch.no_grad():
        model.backbone.transformer.ln_f.weight.uniform_(0.5, 1.5)
        model.backbone.transformer.ln_f.bias.normal_()
    assert norm_contraction(model, 64, final_norm=True) < 0.5
    assert "within 32 segments" in memory_path_reason(model)
