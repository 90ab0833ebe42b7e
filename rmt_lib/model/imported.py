"""Importing the paper's own RMT checkpoints into a model folder that every command and chapter reads.

The RMT authors' code (`booydar/recurrent-memory-transformer`, branch `babilong-release`,
`modeling_rmt/language_modeling.py`) wraps a Hugging Face GPT-2 in `MemoryCell` and `RecurrentWrapper`.
Its state dict holds the memory as ``memory_cell.memory`` (M, D) and the backbone's own keys under
``memory_cell.model.`` (``transformer.h.0.attn.c_attn.weight``, ..., ``lm_head.weight``). Both map onto
`RecurrentMemoryTransformer` one to one: the memory is `cell.initial_memory`, the backbone `cell.backbone`.
The layout is the same (`[memory | segment | memory]`, the next memory from the last hidden states at the
write positions); the imported config cuts segments as the reference does (`segment_alignment="left"`).

Answers, as the reference trains them (`run_finetuning_babilong_rmt.py`): the question is tokenized on its
own (no leading space) and followed by the token of "GEN", and the answer's tokens come after that. The
paper generates the answer there and compares the text with the target; an imported model here scores the
six QA1 locations by the LM head's logits at the GEN position, at the first token of each location as the
reference tokenizes it: the same head at the same position, read as a choice among the candidates rather
than as free text. One more difference: the reference tokenizes each fact and background sentence on its
own and joins the tokens, this project tokenizes the input text whole, so tokens at sentence boundaries
may differ (" Mary" against "Mary").

Safety: a `.bin` is read with `torch.load(weights_only=True)`, which refuses any pickle that holds more
than tensors (code included); the folder written holds safetensors and JSON only.
"""
from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rmt_lib.data.grammar import LOCATIONS
from rmt_lib.data.tokenizer import Tokenizer
from rmt_lib.model.checkpoint import save_pretrained
from rmt_lib.model.config import RMTConfig
from rmt_lib.model.recurrent import RecurrentMemoryTransformer

MEMORY_KEY = "memory_cell.memory"
BACKBONE_PREFIX = "memory_cell.model."
# GPT-2 attention buffers that older transformers versions saved with the weights; they hold no learned
# values (the causal mask, a large negative constant) and are rebuilt by the backbone itself.
IGNORED_BUFFERS = (".attn.bias", ".attn.masked_bias")
# GPT-2 config fields that shape the network beyond width, depth and heads; carried over as they are.
GPT2_ARCHITECTURE = ("n_inner", "activation_function", "layer_norm_epsilon", "scale_attn_weights",
                     "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file, or of a `.bin` state dict read with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such state dict: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except SafetensorError as err:
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    if path.suffix not in (".bin", ".pt", ".pth"):
        raise ValueError(f"{path}: expected a .bin (PyTorch state dict) or a .safetensors file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a plain state dict of tensors, so it is not loaded (torch.load with "
                         f"weights_only=True refuses anything else, code included): {first}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def map_reference_keys(state: dict[str, torch.Tensor], model: RecurrentMemoryTransformer) -> dict[str, torch.Tensor]:
    """The reference's keys renamed to `model`'s; ValueError listing unknown, missing or misshapen keys."""
    ours = model.state_dict()
    tied = "cell.backbone.lm_head.weight"  # tied to the token embeddings: one tensor, stored once
    mapped, unknown = {}, []
    for key, value in state.items():
        if key == MEMORY_KEY:
            mapped["cell.initial_memory"] = value
        elif key.startswith(BACKBONE_PREFIX):
            if key.endswith(IGNORED_BUFFERS):
                continue
            mapped["cell.backbone." + key[len(BACKBONE_PREFIX):]] = value
        else:
            unknown.append(key)
    unknown += [k for k in mapped if k not in ours]
    missing = [k for k in ours if k not in mapped and k != tied]
    if unknown or missing:
        raise ValueError("the state dict is not in the reference RMT's key layout (memory_cell.memory, "
                         f"memory_cell.model.<backbone keys>): unknown keys {_listed(unknown)}, missing "
                         f"{_listed(missing)}")
    if tied in mapped and not torch.equal(mapped.pop(tied), mapped["cell.backbone.transformer.wte.weight"]):
        raise ValueError("lm_head.weight differs from transformer.wte.weight: an untied LM head is not supported")
    misshapen = [f"{k} {tuple(v.shape)} != {tuple(ours[k].shape)}" for k, v in mapped.items()
                 if v.shape != ours[k].shape]
    if misshapen:
        raise ValueError(f"shapes differ from the backbone config: {_listed(misshapen)}")
    return mapped


def _listed(keys: list[str], most: int = 8) -> str:
    return "[]" if not keys else ", ".join(keys[:most]) + (f" (and {len(keys) - most} more)" if len(keys) > most else "")


def read_tokenizer(folder: str | Path) -> "HFTokenizer":  # noqa: F821
    """The HF tokenizer in `folder`: its `tokenizer.json`, or GPT-2's `vocab.json` + `merges.txt`."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    folder = Path(folder)
    try:
        if (folder / "tokenizer.json").is_file():
            return HFTokenizer.from_file(str(folder / "tokenizer.json"))
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            hf = HFTokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
            hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            hf.decoder = decoders.ByteLevel()
            return hf
    except Exception as err:  # the Rust library raises a bare Exception for a file it cannot read
        raise ValueError(f"the tokenizer in {folder} is not readable: {err}") from None
    raise FileNotFoundError(f"{folder} holds neither tokenizer.json nor vocab.json + merges.txt")


GEN = "GEN"  # the reference's answer prompt: `tokenizer.encode('GEN')[0]` follows the question


def answer_token_ids(tokenizer: Tokenizer) -> tuple[int, ...]:
    """The first token of each location as the reference tokenizes a target (on its own, no leading space);
    they must differ, or two answers would tie."""
    ids = tuple(tokenizer.encode(location)[0] for location in LOCATIONS)
    if len(set(ids)) != len(ids):
        raise ValueError(f"the tokenizer gives two locations the same first token ({dict(zip(LOCATIONS, ids))})")
    return ids


def imported_config(backbone_config: str | Path, tokenizer: Tokenizer, num_memory_tokens: int,
                    segment_size: int) -> RMTConfig:
    """The RMTConfig of a reference RMT over the transformers GPT-2 config in `backbone_config` (a folder)."""
    from transformers import AutoConfig

    try:
        hf = AutoConfig.from_pretrained(str(backbone_config), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"{backbone_config} is not a transformers config folder: {err}") from None
    if hf.model_type != "gpt2":
        raise ValueError(f"{backbone_config} configures a {hf.model_type!r} model; the paper's RMT is GPT-2")
    if tokenizer.vocab_size != hf.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the backbone's embeddings hold "
                         f"{hf.vocab_size}; give the tokenizer the model was trained with")
    defaults = type(hf)()
    extra = {k: getattr(hf, k) for k in GPT2_ARCHITECTURE
             if hasattr(hf, k) and getattr(hf, k) != getattr(defaults, k, None)}
    return RMTConfig(backbone="gpt2", vocab_size=hf.vocab_size, hidden_size=hf.n_embd, num_layers=hf.n_layer,
                     num_heads=hf.n_head, segment_size=segment_size, num_memory_tokens=num_memory_tokens,
                     segment_alignment="left", question_prefix="", answer_prompt_ids=(tokenizer.encode(GEN)[0],),
                     answer_head="lm", answer_token_ids=answer_token_ids(tokenizer),
                     num_aux_actors=0, max_positions=hf.n_positions, eos_token_id=tokenizer.eos_id,
                     pad_token_id=tokenizer.pad_id, extra_backbone_kwargs=extra)


def import_reference_rmt(state_dict: str | Path, backbone_config: str | Path, tokenizer: str | Path, *,
                         num_memory_tokens: int, segment_size: int, output: str | Path) -> Path:
    """Write a model folder (safetensors, config, tokenizer, checksums) from a reference RMT state dict."""
    if num_memory_tokens < 1 or segment_size < 1:
        raise ValueError("--num-memory-tokens and --segment-size must be at least 1")
    hf_tokenizer = read_tokenizer(tokenizer)
    wrapped = Tokenizer(hf_tokenizer, source=str(tokenizer))
    config = imported_config(backbone_config, wrapped, num_memory_tokens, segment_size)
    model = RecurrentMemoryTransformer(config)
    state = map_reference_keys(read_state_dict(state_dict), model)
    model.load_state_dict(state, strict=False)  # strict on our side: map_reference_keys listed every gap
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(json.dumps(json.loads(hf_tokenizer.to_str())), encoding="utf-8")
        return save_pretrained(model.eval(), output, tokenizer_path=path)
