"""The decoding probe: what a memory state holds, read back by a linear map.

A linear probe is trained to read every actor's current location, or "not seen yet", from the memory
state after each segment. It is trained on samples of the training book and measured on samples of the
test book, against the true world state. The same probe trained on an *untrained* RMT's memory states
(`untrained_copy`) is the control: what a linear read of a transformer's states finds without learning.

    train = collect_memory_states(model, tokenizer, train_samples)
    probe = LinearProbe.fit(train)
    result = decoding_accuracy(probe, collect_memory_states(model, tokenizer, test_samples))
    result["asked_at_question"]                    # {"estimate", "low", "high", ...}

States are indexed as `rmt_lib.model.capture.Trace` indexes them: state 0 is the initial memory and state
``s + 1`` the memory after segment ``s``. The question's segment reads state ``n_segments - 1`` (the
memory after the segment before it): that is the state "at the question".
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rmt_lib.data import ACTORS, LOCATIONS, encode_qa1, find_facts, generate_samples
from rmt_lib.data.batching import NOT_SEEN, aux_labels, batches_by_length
from rmt_lib.data.grammar import parse_fact, parse_question
from rmt_lib.model.capture import run_with_cache
from rmt_lib.probes.heldout import MEASURE_SEED
from rmt_lib.stats import DEFAULT_BOOTSTRAP_SEED, bootstrap_interval, bootstrap_mean

TRAIN_SEED = 5  # the probe's training samples (training book); held-out samples use probes.MEASURE_SEED
CLASSES: tuple[str, ...] = (*LOCATIONS, "not seen")  # what the probe reads per actor; NOT_SEEN is the last
DISTANCE_EDGES: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # bins of segments since a fact


@dataclass(frozen=True, eq=False)
class MemoryStates:
    """The memory states of some samples beside the world state each should hold."""

    states: tuple[np.ndarray, ...]  # per sample (S + 1, M, D) float32; [0] is the initial memory
    world: tuple[np.ndarray, ...]  # per sample (S + 1, A) int64: each actor's CLASSES index at each state
    last_fact: tuple[np.ndarray, ...]  # per sample (S + 1, A) int64: segment of the actor's last fact read, -1
    facts: tuple[tuple[tuple[int, int, int], ...], ...]  # per sample, per fact: (segment, actor, location)
    fact_starts: tuple[tuple[int, ...], ...]  # per sample, per fact: the segment of its first token
    asked: tuple[int, ...]  # ACTORS index of the actor the question asks about
    targets: tuple[int, ...]  # LOCATIONS index of the right answer
    predictions: tuple[int, ...]  # LOCATIONS index of the model's answer
    input_ids: tuple[np.ndarray, ...] = ()  # per sample (T,) the token ids it was run on

    def __len__(self) -> int:
        return len(self.states)

    def n_segments(self, i: int) -> int:
        return len(self.states[i]) - 1

    def question_state(self, i: int) -> int:
        """The index of the state that sample i's question segment reads."""
        return self.n_segments(i) - 1

    def supporting_fact(self, i: int) -> tuple[int, int, int]:
        """(segment, actor, location) of the last fact about the asked actor: the one the answer needs."""
        return [f for f in self.facts[i] if f[1] == self.asked[i]][-1]

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Every state of every sample as (features (N, M * D), labels (N, A)), the probe's training set."""
        x = np.concatenate([s.reshape(len(s), -1) for s in self.states])
        y = np.concatenate(self.world)
        return x, y


def collect_memory_states(model, tokenizer, samples: Sequence, *, batch_size: int = 32,
                          progress: bool = False) -> MemoryStates:
    """Run `model` over `samples` (`rmt_lib.data.Sample`, facts found by the bAbI grammar where a sample
    lists none) and keep every memory state and the world state it should hold."""
    cfg = model.config
    if not cfg.recurrent or not cfg.num_memory_tokens:
        raise ValueError("this model has no memory state to decode; probe an RMT")
    samples = [with_facts(s) for s in samples]
    encoded = encode_qa1(samples, tokenizer, cfg.segment_size, **cfg.encoding)
    states: list = [None] * len(samples)
    predictions: list = [None] * len(samples)
    with tqdm(total=len(samples), desc="memory states", unit="sample", disable=not progress) as bar:
        for idx, batch in batches_by_length(samples, encoded, batch_size):
            out, trace = run_with_cache(model, batch.input_ids, batch.attention_mask)
            for row, i in enumerate(idx):
                states[i] = trace.memory_states[row]  # (S + 1, M, D)
                predictions[i] = int(out.logits[row].argmax())
            bar.update(len(idx))
    described = [_world(s, e, cfg.segment_size) for s, e in zip(samples, encoded)]
    world, last, facts, starts = zip(*described) if described else ((),) * 4
    return MemoryStates(tuple(states), tuple(world), tuple(last), tuple(facts), tuple(starts),
                        tuple(ACTORS.index(parse_question(s.question)) for s in samples),
                        tuple(e.target_index for e in encoded), tuple(predictions),
                        tuple(e.input_ids for e in encoded))


def fit_decoding_probe(model, tokenizer, *, lengths: Sequence[int] = (32, 64), n_samples: Sequence[int] = (400, 50),
                       seed: int = TRAIN_SEED, background=None, progress: bool = False) -> LinearProbe:
    """A `LinearProbe` fitted on `model`'s memory states of `n_samples[k]` training-book samples of
    `lengths[k]` segments (bAbI's 2-10 facts each). Same arguments, same probe."""
    if len(lengths) != len(n_samples) or not lengths:
        raise ValueError(f"give one sample count per length; got lengths {tuple(lengths)}, n_samples {tuple(n_samples)}")
    samples = [s for k, (n_segments, n) in enumerate(zip(lengths, n_samples))
               for s in generate_samples("qa1", n_samples=n, n_segments=n_segments, split="train", seed=seed + k,
                                         background=background, segment_size=model.config.segment_size,
                                         tokenizer=tokenizer)]
    return LinearProbe.fit(collect_memory_states(model, tokenizer, samples, progress=progress))


def held_out_states(model, tokenizer, *, n_segments: int, n_samples: int, seed: int = MEASURE_SEED, n_facts: int | None = None,
                    background=None, progress: bool = False) -> MemoryStates:
    """`collect_memory_states` of `n_samples` test-book samples (`n_facts` facts; None: bAbI's 2-10)."""
    samples = generate_samples("qa1", n_samples=n_samples, n_segments=n_segments, n_facts=n_facts, split="test",
                               seed=seed, background=background, segment_size=model.config.segment_size,
                               tokenizer=tokenizer)
    return collect_memory_states(model, tokenizer, samples, progress=progress)


def with_facts(sample):
    """The sample with its facts listed with their spans: its own where it lists both, else every fact
    sentence the bAbI grammar finds in its input (the input is the truth of what the model reads)."""
    if sample.facts and sample.fact_char_spans:
        return sample
    spans = tuple(find_facts(sample.input))
    return dataclasses.replace(sample, facts=tuple(sample.input[a:b] for a, b in spans), fact_char_spans=spans)


def _world(sample, enc, segment_size: int) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """(S + 1, A) world state and (S + 1, A) last-fact segment per state, the facts as (segment, actor,
    location), and the segment of each fact's first token. State 0, the initial memory, has seen nothing;
    state s + 1 holds the world after segment s (`aux_labels`)."""
    world = np.concatenate([np.full((1, len(ACTORS)), NOT_SEEN, dtype=np.int64), aux_labels(sample, enc)])
    last = np.full(world.shape, -1, dtype=np.int64)
    facts = []
    for text, segment in zip(sample.facts, enc.fact_segments, strict=True):  # with_facts lists them all
        actor, _, location = parse_fact(text)
        a = ACTORS.index(actor)
        last[segment + 1:, a] = segment  # every state after the fact's segment has read it
        facts.append((int(segment), a, LOCATIONS.index(location)))
    starts = tuple(int(t0 // segment_size) for t0, _ in enc.fact_token_spans)
    return world, last, tuple(facts), starts


def untrained_copy(model, seed: int = 0):
    """An RMT of the same configuration with freshly initialised weights: the decoding probe's control."""
    from rmt_lib.model.recurrent import RecurrentMemoryTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        control = RecurrentMemoryTransformer(model.config)
    return control.to(next(model.parameters()).device).eval()


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """A multinomial logistic regression per actor on the standardised, flattened memory state."""

    mean: np.ndarray  # (F,) feature means of the training states
    scale: np.ndarray  # (F,) their standard deviations
    weight: np.ndarray  # (F, A * C)
    bias: np.ndarray  # (A * C,)

    @classmethod
    def fit(cls, train: MemoryStates, *, l2: float = 1e-3, max_iter: int = 2000,
            tolerance: float = 1e-6) -> "LinearProbe":
        """Fit on every state of `train`: full-batch L-BFGS from zero weights, in float64, until no gradient
        entry exceeds `tolerance`. The loss is strictly convex, so running it to its minimum (not for a fixed
        number of steps) gives the same probe for the same states on any CPU: stopped early, the last bits
        of the states, which differ between vector units, steered the path and flipped decoded classes."""
        if l2 < 0 or max_iter < 1 or tolerance <= 0:
            raise ValueError(f"l2 must be >= 0, max_iter >= 1 and tolerance > 0, got {l2}, {max_iter}, {tolerance}")
        x, y = train.training_set()  # (N, F), (N, A)
        x = x.astype(np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        xs = torch.from_numpy((x - mean) / scale)
        labels = torch.from_numpy(y).flatten()  # (N * A,)
        C = len(CLASSES)
        linear = torch.nn.Linear(xs.shape[1], y.shape[1] * C, dtype=torch.float64)
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        opt = torch.optim.LBFGS(linear.parameters(), max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=tolerance, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(linear(xs).view(-1, C), labels) + l2 * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return cls(mean, scale, linear.weight.detach().numpy().T.copy(), linear.bias.detach().numpy().copy())

    def probabilities(self, states: np.ndarray) -> np.ndarray:
        """(N, M, D) memory states -> (N, A, C) probability of each class (CLASSES) per actor."""
        x = (np.asarray(states, dtype=np.float64).reshape(len(states), -1) - self.mean) / self.scale
        logits = (x @ self.weight + self.bias).reshape(len(states), -1, len(CLASSES))
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)

    def decode(self, states: np.ndarray) -> np.ndarray:
        """(N, M, D) -> (N, A) the most probable class per actor."""
        return self.probabilities(states).argmax(axis=-1)


def decoding_accuracy(probe: LinearProbe, data: MemoryStates, *, seed: int = DEFAULT_BOOTSTRAP_SEED) -> dict:
    """How often the probe reads the true world state, each with a 95% bootstrap interval over samples:
    ``overall`` (every actor at every state after a segment), ``asked_at_question`` (the asked actor in the
    state the question reads), and ``by_distance``: actors already seen, by segments since their last
    fact was read (0: the fact's segment was the last one read)."""
    if not len(data):
        raise ValueError("decoding_accuracy needs at least one sample")
    decoded = [probe.decode(s) for s in data.states]  # per sample (S + 1, A)
    right = [d == w for d, w in zip(decoded, data.world)]  # (S + 1, A) per sample
    overall = _ratio_interval([r[1:].sum() for r in right], [r[1:].size for r in right], seed)  # after a segment
    asked = np.array([right[i][data.question_state(i), data.asked[i]] for i in range(len(data))], dtype=float)
    # Segments since each actor's last fact was read; -1 where no fact has named the actor yet.
    since = [np.where(f >= 0, np.arange(len(f))[:, None] - 1 - f, -1) for f in data.last_fact]
    bins = []
    for lo, hi in zip(DISTANCE_EDGES[:-1], DISTANCE_EDGES[1:]):
        inside = [(d >= lo) & (d < hi) for d in since]
        den = [int(m.sum()) for m in inside]
        if sum(den):
            num = [int(r[m].sum()) for r, m in zip(right, inside)]
            bins.append({"low": lo, "high": hi, "n": sum(den), "accuracy": _ratio_interval(num, den, seed)})
    return {"n_samples": len(data), "overall": overall, "asked_at_question": bootstrap_mean(asked, seed=seed).to_dict(),
            "by_distance": bins}


def _ratio_interval(num: Sequence[int], den: Sequence[int], seed: int) -> dict:
    """sum(num) / sum(den) with a bootstrap interval resampling samples (the units behind num and den)."""
    n, d = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return bootstrap_interval(len(n), lambda idx: n[idx].sum() / d[idx].sum() if d[idx].sum() else float("nan"),
                              seed=seed).to_dict()


def decoding_records(probe: LinearProbe, data: MemoryStates) -> list[dict]:
    """Per sample (the probe JSON's ``decoding.samples``): ``decoded``, the CLASSES index of every actor at
    every state (S + 1, A), and ``answer_confidence``, the probe's probability of the right answer for the
    asked actor at each state (S + 1,)."""
    records = []
    for i, states in enumerate(data.states):
        p = probe.probabilities(states)  # (S + 1, A, C)
        records.append({"decoded": p.argmax(axis=-1).astype(np.int64),
                        "answer_confidence": p[:, data.asked[i], data.targets[i]].astype(np.float32)})
    return records
