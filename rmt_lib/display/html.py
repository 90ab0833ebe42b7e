"""HTML views of samples: the text segment by segment, facts highlighted, the question last."""
from __future__ import annotations

import html
from dataclasses import dataclass

from collections.abc import Sequence

from rmt_lib.data import EncodedSample, Sample, find_facts

FACT_HIGHLIGHT = "#ffd0d0"  # background of fact sentences, in the sample views and the scrubbers alike


def highlight_facts(text: str, start: int, end: int, fact_spans: Sequence[tuple[int, int]]) -> str:
    """`text[start:end]`, HTML-escaped, with the parts of the facts at `fact_spans` ([a, b) characters of
    `text`) that fall inside it marked (``<mark class="rmt-fact">``): a fact cut by a segment boundary is
    marked in both segments."""
    pieces, pos = [], start
    for a, b in sorted(fact_spans):
        a, b = max(a, pos), min(b, end)
        if a < b:
            pieces += [html.escape(text[pos:a]),
                       f'<mark class="rmt-fact" style="background:{FACT_HIGHLIGHT}">{html.escape(text[a:b])}</mark>']
            pos = b
    pieces.append(html.escape(text[pos:end]))
    return "".join(pieces)


@dataclass(frozen=True, eq=False)
class SampleView:
    """One sample as the model reads it: segment by segment, facts highlighted, the question last."""

    sample: Sample
    encoded: EncodedSample

    def __repr__(self) -> str:
        return f"SampleView(n_segments={self.encoded.n_segments}, facts={len(self.sample.facts)})"

    def _repr_html_(self) -> str:
        s, e = self.sample, self.encoded
        spans = s.fact_char_spans or tuple(find_facts(s.input))  # user samples: by the grammar, as encode_sample
        pad = int((~e.attention_mask).sum())
        blocks = []
        for k, (a, b) in enumerate(e.segment_char_spans):
            text = highlight_facts(s.input, a, b, spans)
            if k == 0 and pad:
                text = f'<span style="color:#999">[{pad} padding tokens]</span> ' + text
            roles = (["fact"] if k in e.fact_segments else []) + (["question"] if k == e.n_segments - 1 else [])
            if k == e.n_segments - 1:
                text += f' <b class="rmt-question">{html.escape(s.question)}</b>'
            colour = "#d62728" if "fact" in roles else "#111" if roles else "#7f7f7f"
            label = f"segment {k}" + (f" ({', '.join(roles)})" if roles else "")
            blocks.append(
                f'<div style="display:flex;gap:8px;border-top:1px solid #ddd;padding:2px 0">'
                f'<div style="flex:0 0 10em;color:{colour};font-size:85%">{label}</div>'
                f'<div style="font-family:serif;line-height:1.4">{text}</div></div>')
        answer = f'<p style="margin:4px 0">answer: <b>{html.escape(s.target)}</b></p>'
        return f'<div class="rmt-sample">{"".join(blocks)}{answer}</div>'


def sample_view(sample: Sample, encoded: EncodedSample) -> SampleView:
    """`sample` with its `encode_sample` result, for display (HTML)."""
    if len(encoded.segment_char_spans) != encoded.n_segments:
        raise ValueError("encoded does not belong to a whole sample: segment_char_spans and n_segments disagree")
    if encoded.segment_char_spans and encoded.segment_char_spans[-1][1] != len(sample.input):
        raise ValueError("encoded was made from another sample (its segments do not end where this input does); "
                         "pass encode_sample(sample, ...)")
    return SampleView(sample, encoded)
